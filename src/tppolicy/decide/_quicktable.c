/* The quick table of tppolicy's index: str -> object, each slot holding its key's bytes.

   `ProviderIndex.quick` maps a lookup key ("owner\x1frepository\x1fid\x1fworkflow") to
   the publisher's allowed decision, with the entry's shape beside it (its aux, `put`).
   A dict finds an entry through its index array, its entries array and the key object
   (three or four cache lines, each a trip to main memory for a random key among a
   million); this table reads one 128-byte slot, which holds the key's hash, its UTF-8
   bytes (up to SLOT_INLINE of them; a longer key's bytes are copied on the heap), the
   value and the aux: a random lookup costs one trip, and the value's own line, both
   of which a quick check asks for ahead (`prefetch`, `aux`, `value`). Open addressing
   with linear probing, at most half full; a deleted entry leaves its hash (probing
   goes on past it) until the next resize.

   Only exact str keys are stored; any other key (a str subclass, a string with a lone
   surrogate, which has no UTF-8 form) is never found. Every function runs under the
   GIL and calls no Python code before the table is consistent (a value's finalizer,
   run by a decref, sees a whole table), so lock-free readers in other threads see the
   table before or after a change, never during it. Hashes are Python's own (SipHash,
   salted per process unless PYTHONHASHSEED is set), mixed with a secret of the process
   before they choose a slot (`first_slot`): keys probing one run of slots cannot be
   chosen from outside, even when Python's hashes can be foreseen. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

/* Asks the CPU for the cache line holding `address` (for reading, 0, or writing, 1),
   without waiting for it; nothing where the compiler has no such builtin. */
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(address, write) __builtin_prefetch((address), (write), 3)
#else
#define PREFETCH(address, write) ((void)(address))
#endif

#define SLOT_BYTES 128
#define SLOT_INLINE (SLOT_BYTES - sizeof(Py_hash_t) - 2 * sizeof(PyObject *) - sizeof(uint32_t))
/* hash, value, aux, length, then the key's UTF-8 bytes: inline when they fit, else a
   copy. */
typedef struct {
    Py_hash_t hash;          /* 0: empty; -1 never (a str's hash is never -1) */
    PyObject *value;         /* NULL: empty or deleted (hash != 0: deleted) */
    PyObject *aux;           /* what `put` stored beside the value (NULL: None) */
    uint32_t length;
    char bytes[SLOT_INLINE];/* the key, or (length > SLOT_INLINE) a pointer to a copy */
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    Py_ssize_t mask;         /* capacity - 1; capacity a power of two */
    int shift;               /* 64 - log2(capacity): a hash's first slot, see first_slot */
    Py_ssize_t used;         /* live entries */
    Py_ssize_t filled;       /* live + deleted */
} QuickTable;

/* A secret of this process (os.urandom, when the module loads), mixed into every hash
   before it chooses a slot: with PYTHONHASHSEED set (say, to 0), Python's str hashes
   are known in advance, and keys chosen to share their low bits would all probe one
   run of slots; with the secret, which slot a hash starts at cannot be foreseen. */
static uint64_t table_salt;

/* The slot a hash probes first: Fibonacci hashing of the salted hash (its top bits). */
static inline size_t
first_slot(const QuickTable *self, Py_hash_t hash)
{
    return (size_t)((((uint64_t)hash ^ table_salt) * UINT64_C(0x9E3779B97F4A7C15))
                    >> self->shift);
}

static const char *
slot_key(const Slot *slot)
{
    if (slot->length <= SLOT_INLINE) {
        return slot->bytes;
    }
    const char *copy;
    memcpy(&copy, slot->bytes, sizeof(copy));
    return copy;
}

static void
slot_clear_key(Slot *slot)
{
    if (slot->length > SLOT_INLINE) {
        char *copy;
        memcpy(&copy, slot->bytes, sizeof(copy));
        PyMem_RawFree(copy);
    }
    slot->length = 0;
}

/* Slot arrays of HUGE_PAGE bytes or more are mapped on their own, aligned to 2 MB pages
   and (Linux) asked to be backed by them: among a million publishers a random lookup
   then costs no page-table walk, which on a virtual machine costs about as much as the
   line itself. Smaller ones come from malloc. */
#define HUGE_PAGE ((size_t)2 << 20)

static size_t
slots_bytes(Py_ssize_t capacity)
{
    return (size_t)capacity * SLOT_BYTES;
}

static Slot *
alloc_slots(Py_ssize_t capacity)
{
    size_t bytes = slots_bytes(capacity);
    void *memory = NULL;
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    if (bytes >= HUGE_PAGE) {  /* a multiple of 2 MB: capacity is a power of two */
        void *mapped = mmap(NULL, bytes + HUGE_PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mapped == MAP_FAILED) {
            return NULL;
        }
        uintptr_t start = ((uintptr_t)mapped + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
        size_t before = start - (uintptr_t)mapped;
        if (before) {
            munmap(mapped, before);
        }
        if (HUGE_PAGE - before) {
            munmap((char *)start + bytes, HUGE_PAGE - before);
        }
#ifdef MADV_HUGEPAGE
        madvise((void *)start, bytes, MADV_HUGEPAGE);  /* best effort: 4 KB pages else */
#endif
        return (Slot *)start;  /* zero-filled by the kernel */
    }
#endif
    if (posix_memalign(&memory, SLOT_BYTES, bytes) != 0) {
        return NULL;
    }
    memset(memory, 0, bytes);
    return (Slot *)memory;
}

static void
free_slots(Slot *slots, Py_ssize_t capacity)
{
    if (slots == NULL) {
        return;
    }
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    if (slots_bytes(capacity) >= HUGE_PAGE) {
        munmap(slots, slots_bytes(capacity));
        return;
    }
#endif
    free(slots);
}

#define NOT_HELD 1  /* key_parts: a key the table never holds (no exception set) */

/* The key's UTF-8 bytes and hash: 0; NOT_HELD for a key that is not an exact str or
   has no UTF-8 form (a lone surrogate); -1 with an exception set for any other error. */
static int
key_parts(PyObject *key, const char **bytes, Py_ssize_t *length, Py_hash_t *hash)
{
    if (!PyUnicode_CheckExact(key)) {
        return NOT_HELD;
    }
    *bytes = PyUnicode_AsUTF8AndSize(key, length);
    if (*bytes == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear();
            return NOT_HELD;
        }
        return -1;
    }
    if (*length > UINT32_MAX - 1) {
        PyErr_SetString(PyExc_ValueError, "key too long");
        return -1;
    }
    *hash = PyObject_Hash(key);
    if (*hash == -1) {
        return -1;
    }
    if (*hash == 0) {
        *hash = 1;  /* 0 marks an empty slot */
    }
    return 0;
}

/* key_parts for a key the table must be able to hold (a store): -1 with a TypeError
   for one it never holds. */
static int
held_parts(PyObject *key, const char **bytes, Py_ssize_t *length, Py_hash_t *hash)
{
    int parts = key_parts(key, bytes, length, hash);
    if (parts == NOT_HELD) {
        PyErr_SetString(PyExc_TypeError, "QuickTable keys are str with a UTF-8 form");
        return -1;
    }
    return parts;
}

/* The slot holding the key, or NULL; `*probes` (if given) counts the slots read. */
static inline Slot *
probe(QuickTable *self, const char *bytes, Py_ssize_t length, Py_hash_t hash,
      Py_ssize_t *probes)
{
    if (self->slots == NULL) {
        return NULL;
    }
    size_t mask = (size_t)self->mask;
    size_t i = first_slot(self, hash);
    for (;;) {
        Slot *slot = &self->slots[i];
        if (probes != NULL) {
            ++*probes;
        }
        if (slot->hash == 0) {
            return NULL;
        }
        if (slot->hash == hash && slot->value != NULL && slot->length == (uint32_t)length
                && memcmp(slot_key(slot), bytes, (size_t)length) == 0) {
            return slot;
        }
        i = (i + 1) & mask;
    }
}

static Slot *
find(QuickTable *self, const char *bytes, Py_ssize_t length, Py_hash_t hash)
{
    return probe(self, bytes, length, hash, NULL);
}

/* The slot holding `key` in *found (NULL: absent, or a key the table cannot hold);
   -1 with an exception set for any other error. */
static int
lookup(QuickTable *self, PyObject *key, Slot **found)
{
    const char *bytes;
    Py_ssize_t length;
    Py_hash_t hash;
    *found = NULL;
    int parts = key_parts(key, &bytes, &length, &hash);
    if (parts == 0) {
        *found = find(self, bytes, length, hash);
    }
    return parts < 0 ? -1 : 0;
}

/* Empties a live slot (deleted: its hash stays, so probing goes on past it); the
   value's reference goes to the caller, and the aux's to *aux, to drop once the table
   is consistent. */
static PyObject *
take(QuickTable *self, Slot *slot, PyObject **aux)
{
    PyObject *old = slot->value;
    *aux = slot->aux;
    slot->value = NULL;
    slot->aux = NULL;
    slot_clear_key(slot);
    self->used--;
    return old;
}

/* The entries in a new array of `capacity` slots (a power of two), without the
   deleted ones. */
static int
resize(QuickTable *self, Py_ssize_t capacity)
{
    if (capacity > PY_SSIZE_T_MAX / SLOT_BYTES) {
        PyErr_NoMemory();
        return -1;
    }
    Slot *slots = alloc_slots(capacity);
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Slot *old = self->slots;
    Py_ssize_t old_capacity = old == NULL ? 0 : self->mask + 1;
    size_t mask = (size_t)capacity - 1;
    int shift = 64;
    for (Py_ssize_t c = capacity; c > 1; c >>= 1) {
        shift--;
    }
    self->shift = shift;  /* first_slot of the new array (the old one is only read) */
    for (Py_ssize_t j = 0; j < old_capacity; j++) {
        Slot *from = &old[j];
        if (from->value == NULL) {
            slot_clear_key(from);
            continue;
        }
        size_t i = first_slot(self, from->hash);
        while (slots[i].hash != 0) {
            i = (i + 1) & mask;
        }
        memcpy(&slots[i], from, sizeof(Slot));  /* moves the value's reference and the key */
    }
    free_slots(old, old_capacity);
    self->slots = slots;
    self->mask = capacity - 1;
    self->filled = self->used;
    return 0;
}

static PyObject *
table_subscript(QuickTable *self, PyObject *key)
{
    Slot *slot;
    if (lookup(self, key, &slot) < 0) {
        return NULL;
    }
    if (slot == NULL) {  /* absent, or a key the table cannot hold */
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    return Py_NewRef(slot->value);
}

/* table[key] = value (aux: None), or put(key, value, aux); value NULL: del table[key]. */
static int
store(QuickTable *self, PyObject *key, PyObject *value, PyObject *aux)
{
    const char *bytes;
    Py_ssize_t length;
    Py_hash_t hash;
    if (held_parts(key, &bytes, &length, &hash) < 0) {
        return -1;
    }
    Slot *slot = find(self, bytes, length, hash);
    if (value == NULL) {  /* del table[key] */
        if (slot == NULL) {
            PyErr_SetObject(PyExc_KeyError, key);
            return -1;
        }
        PyObject *old_aux;
        PyObject *old = take(self, slot, &old_aux);
        Py_DECREF(old);
        Py_XDECREF(old_aux);
        return 0;
    }
    if (aux == Py_None) {
        aux = NULL;
    }
    if (slot != NULL) {
        /* Both set before either old reference is dropped: a finalizer sees the new pair. */
        PyObject *old = slot->value, *old_aux = slot->aux;
        slot->value = Py_NewRef(value);
        slot->aux = Py_XNewRef(aux);
        Py_DECREF(old);
        Py_XDECREF(old_aux);
        return 0;
    }
    Py_ssize_t capacity = self->slots == NULL ? 0 : self->mask + 1;
    if ((self->filled + 1) * 2 > capacity) {
        /* At most half full. Doubled when a quarter or more is live, else rebuilt at the
           same size without the deleted entries: either way a quarter of the slots at
           least stays free for insertions before the next resize (amortised O(1)). */
        Py_ssize_t grown = (self->used + 1) * 4 > capacity ? (capacity ? capacity * 2 : 8)
                                                           : capacity;
        if (resize(self, grown) < 0) {
            return -1;
        }
    }
    char *copy = NULL;
    if ((size_t)length > SLOT_INLINE) {
        copy = PyMem_RawMalloc((size_t)length);
        if (copy == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(copy, bytes, (size_t)length);
    }
    size_t mask = (size_t)self->mask;
    size_t i = first_slot(self, hash);
    while (self->slots[i].hash != 0) {
        i = (i + 1) & mask;
    }
    Slot *free_slot = &self->slots[i];
    free_slot->hash = hash;
    free_slot->length = (uint32_t)length;
    if (copy != NULL) {
        memcpy(free_slot->bytes, &copy, sizeof(copy));
    } else {
        memcpy(free_slot->bytes, bytes, (size_t)length);
    }
    free_slot->aux = Py_XNewRef(aux);
    free_slot->value = Py_NewRef(value);
    self->used++;
    self->filled++;
    return 0;
}

static int
table_set(QuickTable *self, PyObject *key, PyObject *value)
{
    return store(self, key, value, NULL);
}

/* put(key, value, aux): table[key] = value, with `aux` kept beside it in the slot. */
static PyObject *
table_put(QuickTable *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "put(key, value, aux)");
        return NULL;
    }
    if (store(self, args[0], args[1], args[2]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static Py_ssize_t
table_length(QuickTable *self)
{
    return self->used;
}

/* The arguments of pop and get, (key[, default]): the key's slot in *slot (see
   lookup); -1 with an exception set for a wrong count or a failing key. */
static int
key_and_default(QuickTable *self, const char *usage, PyObject *const *args,
                Py_ssize_t nargs, Slot **slot)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    return lookup(self, args[0], slot);
}

static PyObject *
table_pop(QuickTable *self, PyObject *const *args, Py_ssize_t nargs)
{
    Slot *slot;
    if (key_and_default(self, "pop(key[, default])", args, nargs, &slot) < 0) {
        return NULL;
    }
    if (slot != NULL) {
        PyObject *aux;
        PyObject *value = take(self, slot, &aux);
        Py_XDECREF(aux);
        return value;
    }
    if (nargs == 2) {
        return Py_NewRef(args[1]);
    }
    PyErr_SetObject(PyExc_KeyError, args[0]);
    return NULL;
}

static PyObject *
table_get(QuickTable *self, PyObject *const *args, Py_ssize_t nargs)
{
    Slot *slot;
    if (key_and_default(self, "get(key[, default])", args, nargs, &slot) < 0) {
        return NULL;
    }
    return Py_NewRef(slot != NULL ? slot->value : nargs == 2 ? args[1] : Py_None);
}

static int
table_contains(QuickTable *self, PyObject *key)
{
    Slot *slot;
    if (lookup(self, key, &slot) < 0) {
        return -1;
    }
    return slot != NULL;
}

/* The reads of a quick check (`tppolicy.language.compile`), which takes a publisher's
   entry in two steps so that the value's own cache line, which a random check among a
   million publishers takes from main memory, is on its way while the rules run:

   - prefetch(key): asks the CPU for the key's first slot and returns at once (the
     check runs the rules that need no publisher value meanwhile);
   - aux(key): the aux stored beside the key's value (None: absent, or stored with
     none), asking the CPU for the value's first cache lines without reading them;
   - value(key, aux): the key's value when its aux is still `aux` (the object, not an
     equal one), else None: an entry changed between the two reads (another thread put
     another publisher there) is never returned for rules run against the old aux. */
static PyObject *
table_prefetch(QuickTable *self, PyObject *key)
{
    const char *bytes;
    Py_ssize_t length;
    Py_hash_t hash;
    int parts = key_parts(key, &bytes, &length, &hash);
    if (parts < 0) {
        return NULL;
    }
    if (parts == 0 && self->slots != NULL) {
        /* The slot, and the next one: at most half full, a lookup among a million
           keys reads a second slot for about 45% of them (linear probing). */
        size_t i = first_slot(self, hash);
        const char *slot = (const char *)&self->slots[i];
        const char *next = (const char *)&self->slots[(i + 1) & (size_t)self->mask];
        PREFETCH(slot, 0);
        PREFETCH(slot + 64, 0);
        PREFETCH(next, 0);
        PREFETCH(next + 64, 0);
    }
    Py_RETURN_NONE;
}

static PyObject *
table_aux(QuickTable *self, PyObject *key)
{
    Slot *slot;
    if (lookup(self, key, &slot) < 0) {
        return NULL;
    }
    if (slot == NULL || slot->aux == NULL) {
        Py_RETURN_NONE;
    }
    const char *value = (const char *)slot->value;
    PREFETCH(value, 1);  /* its reference count is written on return */
    PREFETCH(value + 64, 0);  /* the rest of a small object's fields */
    return Py_NewRef(slot->aux);
}

static PyObject *
table_value(QuickTable *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "value(key, aux)");
        return NULL;
    }
    Slot *slot;
    if (lookup(self, args[0], &slot) < 0) {
        return NULL;
    }
    PyObject *aux = args[1] == Py_None ? NULL : args[1];
    if (slot == NULL || slot->aux != aux) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(slot->value);
}

/* _probes(key): the slots a lookup of `key` reads (tests: no run of slots grows long). */
static PyObject *
table_probes(QuickTable *self, PyObject *key)
{
    const char *bytes;
    Py_ssize_t length;
    Py_hash_t hash;
    if (held_parts(key, &bytes, &length, &hash) < 0) {
        return NULL;
    }
    Py_ssize_t probes = 0;
    probe(self, bytes, length, hash, &probes);
    return PyLong_FromSsize_t(probes);
}

/* The live entries as a list, in slot order: their values, or (key, value) pairs. */
static PyObject *
listed(QuickTable *self, int pairs)
{
    PyObject *list = PyList_New(0);
    if (list == NULL || self->slots == NULL) {
        return list;
    }
    for (Py_ssize_t j = 0; j <= self->mask; j++) {
        Slot *slot = &self->slots[j];
        if (slot->value == NULL) {
            continue;
        }
        PyObject *item = Py_NewRef(slot->value);
        if (pairs) {
            PyObject *key = PyUnicode_DecodeUTF8(slot_key(slot), (Py_ssize_t)slot->length,
                                                 NULL);
            PyObject *pair = key == NULL ? NULL : PyTuple_Pack(2, key, item);
            Py_XDECREF(key);
            Py_SETREF(item, pair);
        }
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
    }
    return list;
}

static PyObject *
table_values(QuickTable *self, PyObject *Py_UNUSED(ignored))
{
    return listed(self, 0);
}

static PyObject *
table_items(QuickTable *self, PyObject *Py_UNUSED(ignored))
{
    return listed(self, 1);
}

static int
table_traverse(QuickTable *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    if (self->slots != NULL) {
        for (Py_ssize_t j = 0; j <= self->mask; j++) {
            Py_VISIT(self->slots[j].value);
            Py_VISIT(self->slots[j].aux);
        }
    }
    return 0;
}

static int
table_clear(QuickTable *self)
{
    Slot *slots = self->slots;
    Py_ssize_t capacity = slots == NULL ? 0 : self->mask + 1;
    self->slots = NULL;
    self->mask = 0;
    self->used = self->filled = 0;
    for (Py_ssize_t j = 0; j < capacity; j++) {
        slot_clear_key(&slots[j]);
        Py_CLEAR(slots[j].value);
        Py_CLEAR(slots[j].aux);
    }
    free_slots(slots, capacity);
    return 0;
}

static void
table_dealloc(QuickTable *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    table_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *
table_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if ((kwds != NULL && PyDict_GET_SIZE(kwds) != 0) || PyTuple_GET_SIZE(args) != 0) {
        PyErr_SetString(PyExc_TypeError, "QuickTable() takes no arguments");
        return NULL;
    }
    QuickTable *self = (QuickTable *)type->tp_alloc(type, 0);
    return (PyObject *)self;
}

static PyMethodDef table_methods[] = {
    {"pop", (PyCFunction)(void (*)(void))table_pop, METH_FASTCALL, "pop(key[, default])"},
    {"get", (PyCFunction)(void (*)(void))table_get, METH_FASTCALL, "get(key[, default])"},
    {"values", (PyCFunction)table_values, METH_NOARGS, "the values, in no order"},
    {"items", (PyCFunction)table_items, METH_NOARGS, "(key, value) pairs, in no order"},
    {"put", (PyCFunction)(void (*)(void))table_put, METH_FASTCALL,
     "put(key, value, aux): table[key] = value, aux kept beside it"},
    {"prefetch", (PyCFunction)table_prefetch, METH_O,
     "prefetch(key): ask the CPU for the key's slot; returns None at once"},
    {"aux", (PyCFunction)table_aux, METH_O,
     "aux(key): the aux stored beside the key's value (None: absent or none)"},
    {"value", (PyCFunction)(void (*)(void))table_value, METH_FASTCALL,
     "value(key, aux): the key's value if its aux is still `aux` (that object), else None"},
    {"_probes", (PyCFunction)table_probes, METH_O, "slots a lookup of the key reads"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot table_slots[] = {
    {Py_tp_new, table_new},
    {Py_tp_dealloc, table_dealloc},
    {Py_tp_traverse, table_traverse},
    {Py_tp_clear, table_clear},
    {Py_tp_methods, table_methods},
    {Py_mp_subscript, table_subscript},
    {Py_mp_ass_subscript, table_set},
    {Py_mp_length, table_length},
    {Py_sq_contains, table_contains},
    {Py_tp_doc, "A str -> object table whose slots hold the keys' bytes inline."},
    {0, NULL},
};

static PyType_Spec table_spec = {
    .name = "tppolicy.decide._quicktable.QuickTable",
    .basicsize = sizeof(QuickTable),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = table_slots,
};

static int
module_exec(PyObject *module)
{
    PyObject *os = PyImport_ImportModule("os");
    PyObject *random = os == NULL ? NULL : PyObject_CallMethod(os, "urandom", "i", 8);
    Py_XDECREF(os);
    if (random == NULL) {
        return -1;
    }
    if (!PyBytes_Check(random) || PyBytes_GET_SIZE(random) != 8) {
        Py_DECREF(random);
        PyErr_SetString(PyExc_RuntimeError, "os.urandom(8) gave no 8 bytes");
        return -1;
    }
    memcpy(&table_salt, PyBytes_AS_STRING(random), sizeof(table_salt));
    Py_DECREF(random);
    PyObject *type = PyType_FromModuleAndSpec(module, &table_spec, NULL);
    if (type == NULL) {
        return -1;
    }
    int result = PyModule_AddObjectRef(module, "QuickTable", type);
    Py_DECREF(type);
    return result;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tppolicy.decide._quicktable",
    .m_doc = "The index's quick table (see tppolicy.decide.index).",
    .m_size = 0,
    .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit__quicktable(void)
{
    return PyModuleDef_Init(&module_def);
}

_Static_assert(sizeof(Slot) == SLOT_BYTES, "a slot is two cache lines");
