/* The token path's hot parts in C: the usual compact JWT taken apart in one call and its
   registered claims tested in another (`tppolicy.token.verify`), and the claim of
   `MemoryReplayStore` (`tppolicy.token.replay`). Each has a Python form that gives the
   same answers, used when this module is not built.

   `split(token, max_bytes, loads)` returns (header segment, signing input, claims,
   signature, brackets) for a token of the usual shape: an exact str of ASCII characters,
   at most `max_bytes` of them, three non-empty segments of the base64url alphabet
   without padding, the claims and signature segments canonical (no length of 1 mod 4,
   no bits set past the last byte). The claims are `loads(bytes)` (orjson's reader);
   `brackets` counts the "[" and "{" bytes of the decoded claims, a bound on how deeply
   they can nest. Anything else returns None, and the verifier's careful path (Python)
   reads the token again and says what is wrong: this function accepts a subset of what
   that path accepts, and gives for it exactly what that path gives, so a token is
   judged alike with the module and without it (tests/property/test_compact.py).

   In Python the same work was two splits, three scans for characters base64url lacks,
   two paddings and two calls into pybase64 (whose keyword parsing and alphabet
   translation cost more than its decoding), and an encode: about 1 us per token beside
   a 19 us RSA verify. The header segment is not decoded here: the verifier keeps the
   verdict on each header it has seen.

   `registered(claims, now, leeway, max_lifetime, audience)` is the verifier's test of the
   usual registered claims (`registered_usual` in Python): exp, iat and nbf integers with
   exp in the future, iat and nbf not, a lifetime within bounds, aud the audience, jti and
   sub strings when present. True only when it is sure they pass; False sends the claims to
   the Python test, which accepts them or says what is wrong: it accepts a subset of what
   the Python test accepts (numbers past 2^52, where a double is no longer exact, are left
   to it).

   `Claims` is the base of `tppolicy.token.replay.MemoryReplayStore`: its `claim` in C, the
   same steps as the Python form (`_ClaimsInPython.claim`): the clock read, a sweep when
   one is due (the store's `_sweep`, Python), a new key's entry set by one
   `dict.setdefault` and listed under its expiry's slot, a live key refused; anything else
   (a key not a str, an expiry not an int, a key whose time has passed, which is taken over
   under the store's lock) goes to the store's Python methods. Between the setdefault and
   the listing no Python code runs (str keys, int slots), so the GIL makes the claim of a
   new key atomic, as it does in Python.

   The tables and names are written once when the module loads and only read after;
   nothing here but `Claims` objects keeps state between calls. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define INVALID UINT32_C(0x80000000)

/* A base64url character's value, 0x80 for any other byte. */
static uint8_t value_of[256];
/* The four characters of a group, each shifted to its place: a group of four decodes to
   quad[0][a] | quad[1][b] | quad[2][c] | quad[3][d] (24 bits), INVALID set by any
   character outside the alphabet. */
static uint32_t quad[4][256];

static void
fill_tables(void)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    memset(value_of, 0x80, sizeof(value_of));
    for (int i = 0; i < 64; i++) {
        value_of[(unsigned char)alphabet[i]] = (uint8_t)i;
    }
    for (int c = 0; c < 256; c++) {
        uint32_t v = value_of[c];
        for (int place = 0; place < 4; place++) {
            quad[place][c] = v & 0x80 ? INVALID : v << (18 - 6 * place);
        }
    }
}

/* Unpadded base64url [s, s + n) as a new bytes object; NULL with no error set when the
   segment is empty, has a length of 1 mod 4, a character outside the alphabet or bits
   set past its last byte (NULL with an error set: no memory). */
static PyObject *
decode(const unsigned char *s, Py_ssize_t n)
{
    if (n == 0 || n % 4 == 1) {
        return NULL;
    }
    Py_ssize_t groups = n / 4, rest = n % 4;
    PyObject *out = PyBytes_FromStringAndSize(NULL, groups * 3 + (rest ? rest - 1 : 0));
    if (out == NULL) {
        return NULL;
    }
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    uint32_t seen = 0;
    for (Py_ssize_t g = 0; g < groups; g++, s += 4, o += 3) {
        uint32_t v = quad[0][s[0]] | quad[1][s[1]] | quad[2][s[2]] | quad[3][s[3]];
        seen |= v;
        o[0] = (unsigned char)(v >> 16);
        o[1] = (unsigned char)(v >> 8);
        o[2] = (unsigned char)v;
    }
    if (rest == 2) {  /* 12 bits: one byte, 4 spare bits that must be 0 */
        uint32_t v = quad[0][s[0]] | quad[1][s[1]];
        seen |= v | ((v & 0xFFFF) ? INVALID : 0);
        o[0] = (unsigned char)(v >> 16);
    }
    else if (rest == 3) {  /* 18 bits: two bytes, 2 spare bits that must be 0 */
        uint32_t v = quad[0][s[0]] | quad[1][s[1]] | quad[2][s[2]];
        seen |= v | ((v & 0xFF) ? INVALID : 0);
        o[0] = (unsigned char)(v >> 16);
        o[1] = (unsigned char)(v >> 8);
    }
    if (seen & INVALID) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* Whether [s, s + n) is a non-empty run of base64url characters. */
static int
in_alphabet(const unsigned char *s, Py_ssize_t n)
{
    uint8_t seen = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        seen |= value_of[s[i]];
    }
    return n > 0 && !(seen & 0x80);
}

static PyObject *
split(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "split(token, max_bytes, loads) takes 3 arguments");
        return NULL;
    }
    PyObject *token = args[0], *loads = args[2];
    Py_ssize_t max_bytes = PyLong_AsSsize_t(args[1]);
    if (max_bytes == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyUnicode_CheckExact(token)) {
        Py_RETURN_NONE;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(token) < 0) {
        return NULL;
    }
#endif
    Py_ssize_t n = PyUnicode_GET_LENGTH(token);
    if (!PyUnicode_IS_ASCII(token) || n > max_bytes) {
        Py_RETURN_NONE;
    }
    const unsigned char *s = PyUnicode_1BYTE_DATA(token), *end = s + n;
    const unsigned char *first = memchr(s, '.', (size_t)n);
    if (first == NULL) {
        Py_RETURN_NONE;
    }
    const unsigned char *second = memchr(first + 1, '.', (size_t)(end - first - 1));
    if (second == NULL || memchr(second + 1, '.', (size_t)(end - second - 1)) != NULL
            || !in_alphabet(s, first - s)) {
        Py_RETURN_NONE;
    }
    PyObject *raw = decode(first + 1, second - first - 1);
    if (raw == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyObject *signature = decode(second + 1, end - second - 1);
    if (signature == NULL) {
        Py_DECREF(raw);
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    /* Flat claims hold no bracket but the first "{": two scans (memchr) find that out,
       and only other claims have theirs counted. */
    const char *r = PyBytes_AS_STRING(raw);
    size_t size = (size_t)PyBytes_GET_SIZE(raw);  /* at least 1: a segment is not empty */
    Py_ssize_t brackets = r[0] == '{';
    if (memchr(r, '[', size) != NULL || memchr(r + 1, '{', size - 1) != NULL) {
        brackets = 0;
        for (size_t i = 0; i < size; i++) {
            brackets += (r[i] == '[') | (r[i] == '{');
        }
    }
    PyObject *claims = PyObject_CallOneArg(loads, raw);
    Py_DECREF(raw);
    if (claims == NULL) {
        Py_DECREF(signature);
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {  /* not JSON: said by the careful path */
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        return NULL;
    }
    PyObject *head = PyUnicode_Substring(token, 0, first - s);
    PyObject *signed_ = PyBytes_FromStringAndSize((const char *)s, second - s);
    PyObject *count = PyLong_FromSsize_t(brackets);
    PyObject *result = NULL;
    if (head != NULL && signed_ != NULL && count != NULL) {
        result = PyTuple_Pack(5, head, signed_, claims, signature, count);
    }
    Py_XDECREF(head);
    Py_XDECREF(signed_);
    Py_XDECREF(count);
    Py_DECREF(claims);
    Py_DECREF(signature);
    return result;
}

/* The registered claims' names, interned when the module loads. */
static PyObject *name_exp, *name_iat, *name_nbf, *name_aud, *name_jti, *name_sub;

/* Numbers a double holds exactly, with room for a difference of two of them. */
#define EXACT ((long long)1 << 52)

/* A float, or an int within +-2^52, as a double; 0 for anything else. */
static int
as_double(PyObject *value, double *out)
{
    if (PyFloat_CheckExact(value)) {
        *out = PyFloat_AS_DOUBLE(value);
        return isfinite(*out);
    }
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || v > EXACT || v < -EXACT) {
            return 0;
        }
        *out = (double)v;
        return 1;
    }
    return 0;
}

/* The claim `name` as an int within +-2^52 (1), missing or null (-1 when `optional`),
   or anything else (0, an error set when the lookup failed). */
static int
time_claim(PyObject *claims, PyObject *name, int optional, long long *out)
{
    PyObject *value = PyDict_GetItemWithError(claims, name);
    if (value == NULL || value == Py_None) {
        return !PyErr_Occurred() && optional ? -1 : 0;
    }
    if (!PyLong_CheckExact(value)) {  /* bool is a subclass: refused, as `is int` does */
        return 0;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || v > EXACT || v < -EXACT) {
        return 0;
    }
    *out = v;
    return 1;
}

/* The claim `name` absent, null or an exact str (1); anything else (0). */
static int
text_or_none(PyObject *claims, PyObject *name)
{
    PyObject *value = PyDict_GetItemWithError(claims, name);
    return value == NULL ? !PyErr_Occurred() : value == Py_None || PyUnicode_CheckExact(value);
}

static PyObject *
registered(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "registered(claims, now, leeway, max_lifetime, audience) takes 5 "
                        "arguments");
        return NULL;
    }
    PyObject *claims = args[0], *audience = args[4];
    double now, leeway, max_lifetime;
    long long exp, iat, nbf = 0;
    if (!PyDict_CheckExact(claims) || !PyUnicode_CheckExact(audience)
            || !as_double(args[1], &now) || !as_double(args[2], &leeway)
            || !as_double(args[3], &max_lifetime)
            || time_claim(claims, name_exp, 0, &exp) != 1
            || time_claim(claims, name_iat, 0, &iat) != 1) {
        goto unsure;
    }
    int has_nbf = time_claim(claims, name_nbf, 1, &nbf);
    if (has_nbf == 0) {
        goto unsure;
    }
    /* As Python computes them: now - leeway and now + leeway in doubles (exact inputs),
       compared with integers a double holds exactly. */
    double late = now + leeway;
    if (!(now - leeway < (double)exp && 0 <= iat && (double)iat <= late
          && (double)(exp - iat) <= max_lifetime
          && (has_nbf == -1 || (0 <= nbf && (double)nbf <= late)))) {
        goto unsure;
    }
    PyObject *aud = PyDict_GetItemWithError(claims, name_aud);
    if (aud == NULL || !PyUnicode_CheckExact(aud)) {
        goto unsure;
    }
    int same = PyUnicode_Compare(aud, audience);
    if (same != 0 || !text_or_none(claims, name_jti) || !text_or_none(claims, name_sub)) {
        goto unsure;
    }
    Py_RETURN_TRUE;
unsure:
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_FALSE;
}

/* ------------------------------------------------------------- MemoryReplayStore's claim */
typedef struct {
    PyObject_HEAD
    PyObject *keys;    /* dict: key -> (expires_at,), a tuple only its claim made */
    PyObject *due;     /* dict: expiry slot -> the keys claimed in it */
    PyObject *clock;   /* () -> now */
    double next_sweep;
} Claims;

static PyObject *name_sweep, *name_take_over, *name_claim_slowly, *slot_seconds;

static PyObject *
claims_claim(Claims *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL || nargs != 2 || !PyUnicode_CheckExact(args[0])
            || !PyLong_CheckExact(args[1]) || self->keys == NULL || !PyDict_Check(self->keys)
            || self->due == NULL || !PyDict_CheckExact(self->due) || self->clock == NULL) {
        /* keywords, other types, a store not set up: the store's Python method says */
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
    PyObject *key = args[0], *expires_at = args[1];
    PyObject *now = PyObject_CallNoArgs(self->clock);
    if (now == NULL) {
        return NULL;
    }
    PyObject *keys = NULL, *mine = NULL, *slot = NULL, *result = NULL;
    double now_seconds = PyFloat_AsDouble(now);
    if (now_seconds == -1.0 && PyErr_Occurred()) {
        goto done;
    }
    if (now_seconds >= self->next_sweep) {
        PyObject *swept = PyObject_CallMethodOneArg((PyObject *)self, name_sweep, now);
        if (swept == NULL) {
            goto done;
        }
        Py_DECREF(swept);
    }
    keys = Py_NewRef(self->keys);  /* held: the sweep above ran Python code */
    mine = PyTuple_Pack(1, expires_at);
    if (mine == NULL) {
        goto done;
    }
    PyObject *current = PyDict_SetDefault(keys, key, mine);  /* borrowed */
    if (current == NULL) {
        goto done;
    }
    if (current == mine) {  /* a new key: listed for the sweep, then claimed */
        slot = PyNumber_FloorDivide(expires_at, slot_seconds);
        if (slot == NULL) {
            goto done;
        }
        PyObject *due = self->due;
        PyObject *listed = PyDict_GetItemWithError(due, slot);  /* borrowed */
        if (listed == NULL) {
            if (PyErr_Occurred()) {
                goto done;
            }
            PyObject *fresh = PyList_New(0);
            if (fresh == NULL) {
                goto done;
            }
            listed = PyDict_SetDefault(due, slot, fresh);
            Py_DECREF(fresh);
            if (listed == NULL) {
                goto done;
            }
        }
        if (PyList_Check(listed) && PyList_Append(listed, key) < 0) {
            goto done;
        }
        result = Py_NewRef(Py_True);
        goto done;
    }
    if (PyTuple_CheckExact(current) && PyTuple_GET_SIZE(current) == 1) {
        int live = PyObject_RichCompareBool(PyTuple_GET_ITEM(current, 0), now, Py_GT);
        if (live < 0) {
            goto done;
        }
        if (live) {
            result = Py_NewRef(Py_False);
            goto done;
        }
    }
    /* taken, its time passed: taken over under the store's lock (Python) */
    result = PyObject_CallMethodObjArgs((PyObject *)self, name_take_over, key, expires_at,
                                        now, NULL);
done:
    Py_DECREF(now);
    Py_XDECREF(keys);
    Py_XDECREF(mine);
    Py_XDECREF(slot);
    return result;
}

static int
claims_traverse(Claims *self, visitproc visit, void *arg)
{
    Py_VISIT(self->keys);
    Py_VISIT(self->due);
    Py_VISIT(self->clock);
    return 0;
}

static int
claims_clear(Claims *self)
{
    Py_CLEAR(self->keys);
    Py_CLEAR(self->due);
    Py_CLEAR(self->clock);
    return 0;
}

static void
claims_dealloc(Claims *self)
{
    PyObject_GC_UnTrack(self);
    claims_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef claims_methods[] = {
    {"claim", (PyCFunction)(void (*)(void))claims_claim, METH_FASTCALL | METH_KEYWORDS,
     "claim(key, expires_at) -> True when the key was not held (now held until "
     "expires_at), False when it is held and live"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef claims_members[] = {
    {"_keys", T_OBJECT_EX, offsetof(Claims, keys), 0, "key -> (expires_at,)"},
    {"_due", T_OBJECT_EX, offsetof(Claims, due), 0, "expiry slot -> keys claimed in it"},
    {"_clock", T_OBJECT_EX, offsetof(Claims, clock), 0, "() -> now"},
    {"_next_sweep", T_DOUBLE, offsetof(Claims, next_sweep), 0, "when the next sweep is due"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ClaimsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tppolicy.token._compact.Claims",
    .tp_doc = "MemoryReplayStore's claim in C (see tppolicy.token.replay).",
    .tp_basicsize = sizeof(Claims),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)claims_dealloc,
    .tp_traverse = (traverseproc)claims_traverse,
    .tp_clear = (inquiry)claims_clear,
    .tp_methods = claims_methods,
    .tp_members = claims_members,
};

static PyMethodDef module_methods[] = {
    {"split", (PyCFunction)(void (*)(void))split, METH_FASTCALL,
     "split(token, max_bytes, loads) -> (header segment, signing input, claims, signature, "
     "brackets), or None for a token the careful path must read"},
    {"registered", (PyCFunction)(void (*)(void))registered, METH_FASTCALL,
     "registered(claims, now, leeway, max_lifetime, audience) -> True when the usual "
     "registered claims surely pass, else False (the Python test decides)"},
    {NULL, NULL, 0, NULL},
};

static int
module_exec(PyObject *module)
{
    fill_tables();
    /* the claims' names, then the store's Python methods the C claim calls */
    static PyObject **names[] = {&name_exp, &name_iat, &name_nbf, &name_aud, &name_jti,
                                 &name_sub, &name_sweep, &name_take_over, &name_claim_slowly};
    static const char *texts[] = {"exp", "iat", "nbf", "aud", "jti", "sub",
                                  "_sweep", "_take_over", "_claim_slowly"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        if (*names[i] == NULL) {  /* once per process, kept for its life */
            *names[i] = PyUnicode_InternFromString(texts[i]);
            if (*names[i] == NULL) {
                return -1;
            }
        }
    }
    if (slot_seconds == NULL) {
        slot_seconds = PyLong_FromLong(16);  /* replay._SLOT */
        if (slot_seconds == NULL) {
            return -1;
        }
    }
    if (PyType_Ready(&ClaimsType) < 0) {
        return -1;
    }
    if (PyModule_AddIntConstant(module, "SLOT_SECONDS", 16) < 0) {  /* replay._SLOT */
        return -1;
    }
    return PyModule_AddObjectRef(module, "Claims", (PyObject *)&ClaimsType);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tppolicy.token._compact",
    .m_doc = "The token path's hot parts (see tppolicy.token.verify and tppolicy.token.replay).",
    .m_size = 0,
    .m_methods = module_methods,
    .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit__compact(void)
{
    return PyModuleDef_Init(&module_def);
}
