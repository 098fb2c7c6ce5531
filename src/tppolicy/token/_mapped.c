/* tppolicy's mapped replay store (`tppolicy.token.replay.MappedReplayStore`): claimed keys in
   a file every process maps MAP_SHARED, a claim a few atomic operations on the page cache.

   The file (created and checked by replay.py; `create` writes its header):
   - a header page: magic, format version, the parameters (segments S, slots per segment,
     window seconds, probe limit, the file's size), a 16-byte random secret (SipHash's key),
     the boot its lock was made in, a process-shared robust mutex, then one state word
     per segment;
   - S segments of `slots` entries {uint64 tag; int64 expires_at}, 16 bytes each.

   A claim of `key` until `expires_at`: epoch = expires_at / window, its segment epoch % S,
   tag = SipHash-2-4(secret, key's UTF-8) + epoch * 0x9E3779B97F4A7C15 (0 taken as 1). The
   epoch in the tag makes an entry written into a segment after it was recycled (a claimant
   stopped for a whole window between its state read and its write) match no later key.
   A segment's state word is epoch + 2 of the epoch it serves (0: never used, all zero;
   1: being cleared). When it serves the claim's epoch the claim is lock-free: linear
   probing from the tag, the tag word taken from 0 by compare-and-swap (the expiry stored
   after), never removed within the epoch, so that claimants of one key meet on one slot and
   exactly one wins. The same tag found: refused, unless its expiry is of this epoch and
   has passed (taken over by compare-and-swap of the expiry; an expiry of another epoch, or
   0 while its winner writes it, is refused: fail closed).

   A segment serving an older epoch is recycled under the mutex (the GIL released while
   waiting): marked 1, zeroed (a hole punched, so the file stays sparse; memset where the
   file system cannot), then given the new epoch. A process killed while holding the mutex
   leaves it to the next locker (EOWNERDEAD: made consistent, the segment cleared again).
   A segment serving a newer epoch means a clock ran ahead (see ahead()): an error, the
   claim refused (fail closed). */

#define PY_SSIZE_T_CLEAN
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HEADER_BYTES 4096
#define MAGIC "tppolicy-replay\n"  /* 16 bytes, no NUL kept */
#define FORMAT_VERSION 1
#define MUTEX_AT 128
#define STATES_AT 512
#define MAX_SEGMENTS ((HEADER_BYTES - STATES_AT) / 8)
#define STATE_EMPTY 0
#define STATE_CLEARING 1
#define STATE_BIAS 2
#define GOLDEN 0x9E3779B97F4A7C15ULL

/* the header's fields, at fixed offsets, in the host's byte order (replay.py reads them
   with struct "=": keep in step) */
typedef struct {
    char magic[16];          /* 0 */
    uint32_t version;        /* 16 */
    uint32_t header_bytes;   /* 20 */
    uint32_t segments;       /* 24 */
    uint32_t probe_limit;    /* 28 */
    uint64_t slots;          /* 32 */
    int64_t window;          /* 40 */
    uint64_t file_bytes;     /* 48 */
    unsigned char secret[16];  /* 56 */
    unsigned char boot[16];    /* 72: the boot (Linux's boot_id) the lock was made in */
} Header;

typedef struct {
    uint64_t tag;
    int64_t expires_at;
} Slot;

/* ------------------------------------------------------------------------- SipHash-2-4 */

static inline uint64_t
load_le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                   \
    do {                                                           \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);  \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                     \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                     \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);  \
    } while (0)

/* SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012): two
   compression rounds per 8-byte word, four finalization rounds. */
static uint64_t
siphash24(uint64_t k0, uint64_t k1, const unsigned char *in, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1,
             v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    const unsigned char *end = in + (len & ~(size_t)7);
    for (; in != end; in += 8) {
        uint64_t m = load_le64(in);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = ((uint64_t)len) << 56;
    switch (len & 7) {
    case 7: b |= ((uint64_t)in[6]) << 48; /* fall through */
    case 6: b |= ((uint64_t)in[5]) << 40; /* fall through */
    case 5: b |= ((uint64_t)in[4]) << 32; /* fall through */
    case 4: b |= ((uint64_t)in[3]) << 24; /* fall through */
    case 3: b |= ((uint64_t)in[2]) << 16; /* fall through */
    case 2: b |= ((uint64_t)in[1]) << 8;  /* fall through */
    case 1: b |= ((uint64_t)in[0]); break;
    case 0: break;
    }
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* --------------------------------------------------------------------------- the store */

typedef struct {
    PyObject_HEAD
    unsigned char *map;      /* the whole file; NULL: not attached, or unmapped */
    size_t map_bytes;
    int fd;
    int closed;              /* close() called: claims refused, unmapped when not busy */
    Py_ssize_t busy;         /* threads using the mapping with the GIL released */
    uint32_t segments, probe_limit;
    uint64_t slots, mask;
    int64_t window;
    double horizon;          /* (segments - 2) * window: how far ahead an expiry may be */
    uint64_t k0, k1;
    int64_t *states;         /* in the header page */
    pthread_mutex_t *mutex;  /* in the header page */
    Slot *data;              /* segment 0's first slot */
    PyObject *clock;         /* () -> now; NULL: CLOCK_REALTIME read here */
    PyObject *error;         /* ReplayStoreError(path, problem, hint) */
    PyObject *path;
} Mapped;

static PyObject *name_claim_slowly;

_Static_assert(MUTEX_AT + sizeof(pthread_mutex_t) <= STATES_AT, "the lock fits its place");
_Static_assert(sizeof(Header) <= MUTEX_AT, "the fields fit their place");

static int
as_fd(PyObject *value)
{
    long fd = PyLong_AsLong(value);
    if (fd == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (fd < 0 || fd > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a file descriptor");
        return -1;
    }
    return (int)fd;
}
static int stop_while_clearing_fd = -1;  /* a test's hook: see _stop_while_clearing */

static void
unmap(Mapped *self)
{
    if (self->map != NULL) {
        munmap(self->map, self->map_bytes);
        self->map = NULL;
    }
    if (self->fd >= 0) {
        close(self->fd);
        self->fd = -1;
    }
}

/* ReplayStoreError(path, problem, hint) set as the current exception; NULL. */
static PyObject *
fail(Mapped *self, const char *problem, const char *hint)
{
    if (self->error == NULL || self->path == NULL) {
        PyErr_Format(PyExc_RuntimeError, "%s (%s)", problem, hint);
        return NULL;
    }
    PyObject *exc = PyObject_CallFunction(self->error, "Oss", self->path, problem, hint);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject *
fail_closed_store(Mapped *self)
{
    return fail(self, "the store is closed",
                "open a new MappedReplayStore on the file (close() ends this one's use)");
}

/* One thread done with the mapping without the GIL; unmapped if close() came meanwhile. */
static void
done_busy(Mapped *self)
{
    self->busy--;
    if (self->closed && self->busy == 0) {
        unmap(self);
    }
}

static void
zero_segment(Mapped *self, uint32_t segment)
{
    size_t bytes = (size_t)self->slots * sizeof(Slot);
    off_t at = (off_t)HEADER_BYTES + (off_t)segment * (off_t)bytes;
    if (stop_while_clearing_fd >= 0) {  /* a test kills the process here (kill -9) */
        memset(self->data + (size_t)segment * self->slots, 0, bytes / 2);
        ssize_t written = write(stop_while_clearing_fd, "c", 1);
        (void)written;
        for (;;) {
            pause();
        }
    }
#ifdef FALLOC_FL_PUNCH_HOLE
    /* the pages freed: the file stays sparse; every mapping reads zeros from now on */
    if (fallocate(self->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, (off_t)bytes) == 0) {
        return;
    }
#else
    (void)at;
#endif
    memset(self->data + (size_t)segment * self->slots, 0, bytes);
}

/* The segment made to serve `want` (an epoch + STATE_BIAS), under the file's mutex:
   0 when it serves it, 1 when it serves a newer epoch, -1 with an exception set. */
static int
recycle(Mapped *self, uint32_t segment, int64_t want)
{
    int rc, answer = 0;
    int64_t *state = &self->states[segment];
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
    rc = pthread_mutex_lock(self->mutex);
    if (rc == EOWNERDEAD) {  /* its holder died (kill -9): its work is redone below */
        rc = pthread_mutex_consistent(self->mutex);
        if (rc != 0) {
            pthread_mutex_unlock(self->mutex);
        }
    }
    if (rc == 0) {
        int64_t now_serving = __atomic_load_n(state, __ATOMIC_ACQUIRE);
        if (now_serving == want) {
            answer = 0;
        }
        else if (now_serving >= STATE_BIAS && now_serving > want) {
            answer = 1;
        }
        else {  /* never used, an older epoch, or a clearing left by a process that died */
            __atomic_store_n(state, (int64_t)STATE_CLEARING, __ATOMIC_RELEASE);
            if (now_serving != STATE_EMPTY) {
                zero_segment(self, segment);
            }
            __atomic_store_n(state, want, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(self->mutex);
    }
    Py_END_ALLOW_THREADS
    done_busy(self);
    if (rc != 0) {
        char problem[300];
        snprintf(problem, sizeof problem, "cannot take the file's lock (%s)", strerror(rc));
        fail(self, problem, "the file's lock is damaged: remove the file once no token it "
             "recorded is still live (it is made again at the next open)");
        return -1;
    }
    if (self->closed) {
        fail_closed_store(self);
        return -1;
    }
    return answer;
}

/* A claim whose segment serves a later window than its expiry's. With one clock and the
   horizon kept, that later window was claimed at least a window after this expiry passed:
   this claim read its clock that long ago, or some process's clock ran ahead (a step of
   the system clock, a clock given to a store). The key cannot be looked up (its entries
   went with its window): refused with an error (fail closed; the SQLite store would take
   the key again), rather than True for every later claim of it. */
static PyObject *
ahead(Mapped *self, int64_t serving, int64_t want)
{
    char problem[400];
    snprintf(problem, sizeof problem, "the claim's segment serves a window %lld s later "
             "than its expiry's: a clock of a process using the file ran ahead of this "
             "one's (or this claim read its clock that long ago)",
             (long long)((serving - want) * self->window));
    (void)fail(self, problem, "set the system clock right; if a clock ran ahead, remove "
               "the file (the claims of tokens still live go with it) or wait for the time "
               "to catch up");
    return NULL;
}

static PyObject *
mapped_claim(Mapped *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL || nargs != 2 || !PyUnicode_CheckExact(args[0])
            || !PyLong_CheckExact(args[1])) {
        /* keywords, other types: the store's Python method checks them (checked_claim) */
        Py_ssize_t given = nargs + (kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0);
        PyObject *stack[4] = {(PyObject *)self, NULL, NULL, NULL};
        if (given > 3) {
            PyErr_SetString(PyExc_TypeError, "claim(key, expires_at) takes 2 arguments");
            return NULL;
        }
        for (Py_ssize_t i = 0; i < given; i++) {
            stack[i + 1] = args[i];
        }
        return PyObject_VectorcallMethod(name_claim_slowly, stack, (size_t)(nargs + 1),
                                         kwnames);
    }
    if (self->map == NULL || self->closed) {
        return self->closed ? fail_closed_store(self)
                            : fail(self, "the store is not open", "make it with "
                                   "MappedReplayStore(path)");
    }
    double now;
    if (self->clock == NULL) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        now = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    }
    else {
        PyObject *read = PyObject_CallNoArgs(self->clock);
        if (read == NULL) {
            return NULL;
        }
        now = PyFloat_AsDouble(read);
        Py_DECREF(read);
        if (now == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
        if (self->map == NULL || self->closed) {  /* the clock ran Python code */
            return fail_closed_store(self);
        }
    }
    int overflow;
    long long expires_at = PyLong_AsLongLongAndOverflow(args[1], &overflow);
    if (expires_at == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (overflow < 0 || (overflow == 0 && (double)expires_at <= now)) {
        Py_RETURN_TRUE;  /* its time has passed: nothing to keep */
    }
    if (!(now >= 0)) {
        return fail(self, "the clock reads a time before 1970 (or not a number)",
                    "give the store a clock reading Unix time (time.time)");
    }
    if (overflow > 0 || (double)expires_at - now > self->horizon) {
        char problem[300];
        snprintf(problem, sizeof problem, "the expiry is more than %.0f s ahead of now "
                 "((segments - 2) * window: the furthest this file keeps a claim)",
                 self->horizon);
        return fail(self, problem, "make the file with more segments or a longer window "
                    "(remove it once no token it recorded is still live), or accept "
                    "tokens living less long");
    }
    Py_ssize_t length;
    const char *utf8 = PyUnicode_AsUTF8AndSize(args[0], &length);
    PyObject *encoded = NULL;
    if (utf8 == NULL) {  /* lone surrogates: their own bytes (no valid UTF-8 has them) */
        PyErr_Clear();
        encoded = PyUnicode_AsEncodedString(args[0], "utf-8", "surrogatepass");
        if (encoded == NULL) {
            return NULL;
        }
        utf8 = PyBytes_AS_STRING(encoded);
        length = PyBytes_GET_SIZE(encoded);
    }
    uint64_t hash = siphash24(self->k0, self->k1, (const unsigned char *)utf8, (size_t)length);
    Py_XDECREF(encoded);

    int64_t epoch = (int64_t)expires_at / self->window;
    uint64_t tag = hash + (uint64_t)epoch * GOLDEN;
    if (tag == 0) {
        tag = 1;
    }
    uint32_t segment = (uint32_t)((uint64_t)epoch % self->segments);
    int64_t want = epoch + STATE_BIAS;
    int64_t serving = __atomic_load_n(&self->states[segment], __ATOMIC_ACQUIRE);
    if (serving != want) {
        int recycled = serving >= STATE_BIAS && serving > want ? 1
                                                                : recycle(self, segment, want);
        if (recycled < 0) {
            return NULL;
        }
        if (recycled == 1) {  /* a later window took the segment: see ahead() */
            return ahead(self, serving, want);
        }
    }
    Slot *base = self->data + (size_t)segment * self->slots;
    uint64_t i = (tag ^ (tag >> 32)) & self->mask;
    for (uint32_t n = 0; n < self->probe_limit; n++, i = (i + 1) & self->mask) {
        Slot *slot = base + i;
        uint64_t seen = __atomic_load_n(&slot->tag, __ATOMIC_ACQUIRE);
        if (seen == 0) {
            if (__atomic_compare_exchange_n(&slot->tag, &seen, tag, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE)) {
                __atomic_store_n(&slot->expires_at, (int64_t)expires_at, __ATOMIC_RELEASE);
                Py_RETURN_TRUE;
            }
            /* another claimant took the slot: `seen` is its tag */
        }
        if (seen == tag) {
            int64_t held = __atomic_load_n(&slot->expires_at, __ATOMIC_ACQUIRE);
            if (held == 0 || held / self->window != epoch || (double)held > now) {
                Py_RETURN_FALSE;  /* live, being written, or foreign: refused */
            }
            /* its time has passed: taken over by one claimant */
            if (__atomic_compare_exchange_n(&slot->expires_at, &held, (int64_t)expires_at, 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                Py_RETURN_TRUE;
            }
            Py_RETURN_FALSE;
        }
    }
    char problem[300];
    snprintf(problem, sizeof problem, "no free slot within %u probes of the key in its "
             "segment (%llu slots for the claims expiring in one %lld s window)",
             self->probe_limit, (unsigned long long)self->slots, (long long)self->window);
    return fail(self, problem, "make the file with more slots per segment (remove it once "
                "no token it recorded is still live; it is made again at the next open)");
}

static PyObject *
mapped_attach(Mapped *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "_attach(fd, clock, error, path)");
        return NULL;
    }
    if (self->map != NULL || self->closed) {
        PyErr_SetString(PyExc_ValueError, "the store is already attached");
        return NULL;
    }
    int fd = as_fd(args[0]);
    if (fd == -1) {
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (!S_ISREG(st.st_mode) || st.st_size < HEADER_BYTES) {
        PyErr_SetString(PyExc_ValueError, "not a replay store file (too short)");
        return NULL;
    }
    size_t bytes = (size_t)st.st_size;
    unsigned char *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    /* the parameters copied once (replay.py checked them; checked again for memory safety:
       a file changed meanwhile cannot make this process read outside its mapping) */
    Header header;
    memcpy(&header, map, sizeof header);
    if (memcmp(header.magic, MAGIC, 16) != 0 || header.version != FORMAT_VERSION
            || header.header_bytes != HEADER_BYTES || header.segments < 3
            || header.segments > MAX_SEGMENTS || header.slots < 64
            || header.slots > ((uint64_t)1 << 26) || (header.slots & (header.slots - 1)) != 0
            || header.window < 1 || header.window > ((int64_t)1 << 32)
            || header.probe_limit < 1 || header.probe_limit > header.slots
            || header.file_bytes != bytes
            || header.file_bytes != HEADER_BYTES + (uint64_t)header.segments * header.slots
                                                   * sizeof(Slot)) {
        munmap(map, bytes);
        PyErr_SetString(PyExc_ValueError, "the header changed while the file was opened");
        return NULL;
    }
    int own = dup(fd);
    if (own < 0) {
        munmap(map, bytes);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->map = map;
    self->map_bytes = bytes;
    self->fd = own;
    self->segments = header.segments;
    self->probe_limit = header.probe_limit;
    self->slots = header.slots;
    self->mask = header.slots - 1;
    self->window = header.window;
    self->horizon = (double)(header.segments - 2) * (double)header.window;
    self->k0 = load_le64(header.secret);
    self->k1 = load_le64(header.secret + 8);
    self->states = (int64_t *)(map + STATES_AT);
    self->mutex = (pthread_mutex_t *)(map + MUTEX_AT);
    self->data = (Slot *)(map + HEADER_BYTES);
    Py_XSETREF(self->clock, args[1] == Py_None ? NULL : Py_NewRef(args[1]));
    Py_XSETREF(self->error, Py_NewRef(args[2]));
    Py_XSETREF(self->path, Py_NewRef(args[3]));
    Py_RETURN_NONE;
}

static PyObject *
mapped_sync(Mapped *self, PyObject *Py_UNUSED(ignored))
{
    if (self->map == NULL || self->closed) {
        return fail_closed_store(self);
    }
    int rc;
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
    rc = msync(self->map, self->map_bytes, MS_SYNC);
    Py_END_ALLOW_THREADS
    int saved = errno;
    done_busy(self);
    if (rc != 0) {
        char problem[300];
        snprintf(problem, sizeof problem, "cannot write the claims to the disk (msync: %s)",
                 strerror(saved));
        return fail(self, problem, "check the disk and the file system holding the file");
    }
    Py_RETURN_NONE;
}

static PyObject *
mapped_close(Mapped *self, PyObject *Py_UNUSED(ignored))
{
    self->closed = 1;
    if (self->busy == 0) {
        unmap(self);
    }
    Py_RETURN_NONE;
}

static PyObject *
mapped_get_closed(Mapped *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->closed || self->map == NULL);
}

static PyObject *
mapped_get_parameters(Mapped *self, void *Py_UNUSED(closure))
{
    if (self->map == NULL && !self->closed) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("{s:I,s:K,s:L,s:I}", "segments", self->segments, "slots",
                         (unsigned long long)self->slots, "window", (long long)self->window,
                         "probe_limit", self->probe_limit);
}

static PyObject *
mapped_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwargs))
{
    Mapped *self = (Mapped *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->fd = -1;
    }
    return (PyObject *)self;
}

static int
mapped_traverse(Mapped *self, visitproc visit, void *arg)
{
    Py_VISIT(self->clock);
    Py_VISIT(self->error);
    Py_VISIT(self->path);
    return 0;
}

static int
mapped_clear(Mapped *self)
{
    Py_CLEAR(self->clock);
    Py_CLEAR(self->error);
    Py_CLEAR(self->path);
    return 0;
}

static void
mapped_dealloc(Mapped *self)
{
    PyObject_GC_UnTrack(self);
    unmap(self);  /* no thread is busy: each holds a reference while it is */
    mapped_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);  /* a subclass's type: its dealloc drops it */
}

static PyMethodDef mapped_methods[] = {
    {"claim", (PyCFunction)(void (*)(void))mapped_claim, METH_FASTCALL | METH_KEYWORDS,
     "claim(key, expires_at) -> True when the key was not held (now held until "
     "expires_at), False when it is held and live"},
    {"_attach", (PyCFunction)(void (*)(void))mapped_attach, METH_FASTCALL,
     "_attach(fd, clock, error, path): map the file open at fd (checked by the caller)"},
    {"sync", (PyCFunction)mapped_sync, METH_NOARGS,
     "sync(): write the claims made so far to the disk (msync)"},
    {"close", (PyCFunction)mapped_close, METH_NOARGS,
     "close(): unmap the file; later claims raise ReplayStoreError"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef mapped_getset[] = {
    {"closed", (getter)mapped_get_closed, NULL, "whether the file is unmapped", NULL},
    {"parameters", (getter)mapped_get_parameters, NULL,
     "the file's segments, slots, window and probe limit", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject MappedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tppolicy.token._mapped.Mapped",
    .tp_doc = "The mapped replay store's file and claim (see MappedReplayStore).",
    .tp_basicsize = sizeof(Mapped),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = mapped_new,
    .tp_dealloc = (destructor)mapped_dealloc,
    .tp_traverse = (traverseproc)mapped_traverse,
    .tp_clear = (inquiry)mapped_clear,
    .tp_methods = mapped_methods,
    .tp_getset = mapped_getset,
};

/* ------------------------------------------------------------------ module functions */

/* A fresh process-shared robust mutex in the header page's lock area (zeroed first):
   0, or the error number of the call that failed. */
static int
make_lock(unsigned char *page)
{
    pthread_mutexattr_t attributes;
    int rc = pthread_mutexattr_init(&attributes);
    if (rc != 0) {
        return rc;
    }
    rc = pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
    if (rc == 0) {
        rc = pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
    }
    if (rc == 0) {
        memset(page + MUTEX_AT, 0, STATES_AT - MUTEX_AT);
        rc = pthread_mutex_init((pthread_mutex_t *)(page + MUTEX_AT), &attributes);
    }
    pthread_mutexattr_destroy(&attributes);
    return rc;
}

static PyObject *
create(PyObject *Py_UNUSED(module), PyObject *args)
{
    int fd;
    unsigned int segments, probe_limit;
    unsigned long long slots;
    long long window;
    Py_buffer secret;
    if (!PyArg_ParseTuple(args, "iIKLIy*", &fd, &segments, &slots, &window, &probe_limit,
                          &secret)) {
        return NULL;
    }
    if (secret.len != 16 || segments < 3 || segments > MAX_SEGMENTS || slots < 64
            || slots > (1ULL << 26) || (slots & (slots - 1)) != 0 || window < 1
            || window > (1LL << 32) || probe_limit < 1 || probe_limit > slots) {
        PyBuffer_Release(&secret);
        PyErr_SetString(PyExc_ValueError, "parameters out of bounds");
        return NULL;
    }
    Header header;
    memset(&header, 0, sizeof header);
    memcpy(header.magic, MAGIC, 16);
    header.version = FORMAT_VERSION;
    header.header_bytes = HEADER_BYTES;
    header.segments = segments;
    header.probe_limit = probe_limit;
    header.slots = slots;
    header.window = window;
    header.file_bytes = HEADER_BYTES + (uint64_t)segments * slots * sizeof(Slot);
    memcpy(header.secret, secret.buf, 16);
    PyBuffer_Release(&secret);
    if (ftruncate(fd, (off_t)header.file_bytes) != 0) {  /* sparse: pages made as used */
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    unsigned char *page = mmap(NULL, HEADER_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (page == MAP_FAILED) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    memset(page, 0, HEADER_BYTES);
    int rc = make_lock(page);
    if (rc == 0) {
        /* the magic last: a header with it is whole (the file is linked in only then) */
        memcpy(page + 16, (unsigned char *)&header + 16, sizeof header - 16);
        memcpy(page, MAGIC, 16);
        if (msync(page, HEADER_BYTES, MS_SYNC) != 0) {
            rc = errno;
        }
    }
    munmap(page, HEADER_BYTES);
    if (rc != 0) {
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *
siphash(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer key, data;
    if (!PyArg_ParseTuple(args, "y*y*", &key, &data)) {
        return NULL;
    }
    if (key.len != 16) {
        PyBuffer_Release(&key);
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "SipHash's key is 16 bytes");
        return NULL;
    }
    uint64_t h = siphash24(load_le64(key.buf), load_le64((unsigned char *)key.buf + 8),
                           data.buf, (size_t)data.len);
    PyBuffer_Release(&key);
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLongLong(h);
}

static PyObject *
stop_while_clearing(PyObject *Py_UNUSED(module), PyObject *arg)
{
    int fd = as_fd(arg);
    if (fd == -1) {
        return NULL;
    }
    stop_while_clearing_fd = fd;
    Py_RETURN_NONE;
}

/* A fresh lock in the file open at fd, for a boot the file has not seen: a lock word left
   on the disk by an OS crash names an owner of another boot, whom no process's death
   will ever release (a robust mutex is released by its owner's exit only). replay.py
   calls this under flock(), which every opener takes, before any process of this boot
   uses the lock. */
static PyObject *
reset_lock(PyObject *Py_UNUSED(module), PyObject *args)
{
    int fd;
    Py_buffer boot;
    if (!PyArg_ParseTuple(args, "iy*", &fd, &boot)) {
        return NULL;
    }
    if (boot.len != 16) {
        PyBuffer_Release(&boot);
        PyErr_SetString(PyExc_ValueError, "a boot id is 16 bytes");
        return NULL;
    }
    unsigned char *page = mmap(NULL, HEADER_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (page == MAP_FAILED) {
        PyBuffer_Release(&boot);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    int rc = make_lock(page);
    if (rc == 0) {
        memcpy(page + offsetof(Header, boot), boot.buf, 16);
        if (msync(page, HEADER_BYTES, MS_SYNC) != 0) {
            rc = errno;
        }
    }
    PyBuffer_Release(&boot);
    munmap(page, HEADER_BYTES);
    if (rc != 0) {
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"create", create, METH_VARARGS,
     "create(fd, segments, slots, window, probe_limit, secret): size the file open at fd "
     "(sparse) and write its header, the lock made in place"},
    {"reset_lock", reset_lock, METH_VARARGS,
     "reset_lock(fd, boot): a fresh lock in the file open at fd, made in the boot `boot` "
     "(16 bytes); only while no process of this boot uses the file"},
    {"siphash24", siphash, METH_VARARGS,
     "siphash24(key, data) -> SipHash-2-4 of data under the 16-byte key, as an int"},
    {"_stop_while_clearing", stop_while_clearing, METH_O,
     "_stop_while_clearing(fd): tests only: a segment's clearing, half done and holding "
     "the file's lock, writes one byte to fd and stops the thread for good"},
    {NULL, NULL, 0, NULL},
};

static int
module_exec(PyObject *module)
{
    if (name_claim_slowly == NULL) {
        name_claim_slowly = PyUnicode_InternFromString("_claim_slowly");
        if (name_claim_slowly == NULL) {
            return -1;
        }
    }
    if (PyType_Ready(&MappedType) < 0) {
        return -1;
    }
    if (PyModule_AddIntConstant(module, "HEADER_BYTES", HEADER_BYTES) < 0
            || PyModule_AddIntConstant(module, "FORMAT_VERSION", FORMAT_VERSION) < 0
            || PyModule_AddIntConstant(module, "STATES_AT", STATES_AT) < 0
            || PyModule_AddIntConstant(module, "MAX_SEGMENTS", MAX_SEGMENTS) < 0) {
        return -1;
    }
    return PyModule_AddObjectRef(module, "Mapped", (PyObject *)&MappedType);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tppolicy.token._mapped",
    .m_doc = "The mapped replay store's file and claim (see tppolicy.token.replay).",
    .m_size = 0,
    .m_methods = module_methods,
    .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit__mapped(void)
{
    return PyModuleDef_Init(&module_def);
}
