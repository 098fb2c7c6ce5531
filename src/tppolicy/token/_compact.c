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

/* ------------------------------------------------------------ flat claims, read at once */
/* The usual claims are one JSON object of names and plain values: strings of printable
   ASCII without escapes, integers, true, false, null. `flat_object` reads exactly those
   and gives the dict orjson gives for them (the same keys in the same order, a name given
   twice holding its last value, the same values and classes); for anything else (an
   escape, a byte past ASCII or below 0x20, a number with a fraction, an exponent, a
   leading zero or more than 18 digits, an array, a nested object, text after the object)
   it answers "not sure" and the caller asks orjson, which reads or refuses it. After an
   RSA verify orjson's code is out of the CPU's caches and a GitHub token's claims cost it
   2.7 us; this loop is small.

   Names are kept in a small table (by a hash of their bytes, each slot holding the last
   name seen there): the usual token's names are the same objects each time, their hash
   computed once. The table holds at most KEY_SLOTS strings, whatever tokens come. */
#define KEY_SLOTS 512
#define MAX_CACHED_KEY 64
static PyObject *key_cache[KEY_SLOTS];

/* 1 for a byte a plain string holds: printable ASCII and DEL, but '"' and '\\'. */
static uint8_t plain[256];

static void
fill_plain(void)
{
    for (int c = 0; c < 256; c++) {
        plain[c] = c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
    }
}

static PyObject *
ascii_text(const char *s, Py_ssize_t n)
{
    PyObject *text = PyUnicode_New(n, 127);
    if (text != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(text), s, (size_t)n);
    }
    return text;
}

static PyObject *
cached_key(const char *s, Py_ssize_t n)
{
    if (n > MAX_CACHED_KEY) {
        return ascii_text(s, n);
    }
    /* the slot from the name's first and last eight bytes and its length, read without
       a loop (a loop's exit, at each name's own length, is a mispredicted branch) */
    uint64_t head = 0, tail = 0;
    if (n >= 8) {
        memcpy(&head, s, 8);
        memcpy(&tail, s + n - 8, 8);
    }
    else {
        memcpy(&head, s, (size_t)n);
    }
    uint64_t h = (head ^ (tail * UINT64_C(0x9E3779B97F4A7C15)) ^ (uint64_t)n)
                 * UINT64_C(0xBF58476D1CE4E5B9);
    PyObject **slot = &key_cache[(h >> 40) & (KEY_SLOTS - 1)];
    PyObject *known = *slot;
    if (known != NULL && PyUnicode_GET_LENGTH(known) == n
            && memcmp(PyUnicode_1BYTE_DATA(known), s, (size_t)n) == 0) {
        return Py_NewRef(known);
    }
    PyObject *fresh = ascii_text(s, n);
    if (fresh != NULL && PyObject_Hash(fresh) != -1) {  /* its hash kept in the string */
        Py_XSETREF(*slot, Py_NewRef(fresh));
    }
    return fresh;
}

#define SKIP_SPACE(p, end) \
    while ((p) < (end) && (*(p) == ' ' || *(p) == '\t' || *(p) == '\n' || *(p) == '\r')) { \
        (p)++; \
    }

/* The end of a plain string starting at p (after its opening quote): the closing quote,
   or NULL when the string is not plain or not closed. */
static const char *
plain_end(const char *p, const char *end)
{
    /* eight bytes at a time while none is below 0x20, past 0x7f, '"' or '\\' */
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    while (end - p >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        uint64_t quote = v ^ (ones * '"'), slash = v ^ (ones * '\\');
        uint64_t stop = (v | ((v - ones * 0x20) & ~v) | ((quote - ones) & ~quote)
                         | ((slash - ones) & ~slash)) & highs;
        if (stop != 0) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            /* the lowest flagged byte is the first stop: a flag is exact up to the first
               byte that has one (a borrow only goes to the bytes after it); no loop over
               the last bytes, whose exit a branch predictor misses */
            p += __builtin_ctzll(stop) >> 3;
            return *p == '"' ? p : NULL;
#else
            break;
#endif
        }
        p += 8;
    }
    while (p < end && plain[(unsigned char)*p]) {
        p++;
    }
    return p < end && *p == '"' ? p : NULL;
}

/* 1 with *out the dict, 0 when not sure (the caller asks orjson), -1 with an error set. */
static int
flat_object(const char *p, const char *end, PyObject **out)
{
    SKIP_SPACE(p, end);
    if (p >= end || *p != '{') {
        return 0;
    }
    p++;
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        return -1;
    }
    SKIP_SPACE(p, end);
    if (p < end && *p == '}') {
        p++;
        goto tail;
    }
    for (;;) {
        if (p >= end || *p != '"') {
            goto unsure;
        }
        const char *name = p + 1, *name_end = plain_end(name, end);
        if (name_end == NULL) {
            goto unsure;
        }
        p = name_end + 1;
        SKIP_SPACE(p, end);
        if (p >= end || *p != ':') {
            goto unsure;
        }
        p++;
        SKIP_SPACE(p, end);
        if (p >= end) {
            goto unsure;
        }
        PyObject *value;
        char c = *p;
        if (c == '"') {
            const char *text = p + 1, *text_end = plain_end(text, end);
            if (text_end == NULL) {
                goto unsure;
            }
            value = ascii_text(text, text_end - text);
            p = text_end + 1;
        }
        else if (c == '-' || (c >= '0' && c <= '9')) {
            int negative = c == '-';
            const char *digits = p + negative, *q = digits;
            while (q < end && *q >= '0' && *q <= '9') {
                q++;
            }
            Py_ssize_t count = q - digits;
            if (count == 0 || count > 18 || (digits[0] == '0' && count > 1)
                    || (q < end && (*q == '.' || *q == 'e' || *q == 'E'))) {
                goto unsure;
            }
            long long number = 0;
            for (const char *d = digits; d < q; d++) {
                number = number * 10 + (*d - '0');
            }
            value = PyLong_FromLongLong(negative ? -number : number);
            p = q;
        }
        else if (c == 't' && end - p >= 4 && memcmp(p, "true", 4) == 0) {
            value = Py_NewRef(Py_True);
            p += 4;
        }
        else if (c == 'f' && end - p >= 5 && memcmp(p, "false", 5) == 0) {
            value = Py_NewRef(Py_False);
            p += 5;
        }
        else if (c == 'n' && end - p >= 4 && memcmp(p, "null", 4) == 0) {
            value = Py_NewRef(Py_None);
            p += 4;
        }
        else {
            goto unsure;
        }
        if (value == NULL) {
            goto fail;
        }
        PyObject *key = cached_key(name, name_end - name);
        if (key == NULL) {
            Py_DECREF(value);
            goto fail;
        }
        int set = PyDict_SetItem(dict, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (set < 0) {
            goto fail;
        }
        SKIP_SPACE(p, end);
        if (p < end && *p == ',') {
            p++;
            SKIP_SPACE(p, end);
            continue;
        }
        if (p < end && *p == '}') {
            p++;
            break;
        }
        goto unsure;
    }
tail:
    SKIP_SPACE(p, end);
    if (p != end) {
        goto unsure;
    }
    *out = dict;
    return 1;
unsure:
    Py_DECREF(dict);
    return 0;
fail:
    Py_DECREF(dict);
    return -1;
}

static PyObject *
flat_loads(PyObject *module, PyObject *raw)
{
    (void)module;
    if (!PyBytes_Check(raw)) {
        PyErr_SetString(PyExc_TypeError, "flat_loads takes bytes");
        return NULL;
    }
    PyObject *dict = NULL;
    const char *s = PyBytes_AS_STRING(raw);
    int found = flat_object(s, s + PyBytes_GET_SIZE(raw), &dict);
    if (found < 0) {
        return NULL;
    }
    return found ? dict : Py_NewRef(Py_None);
}

/* The parts of a token of the usual shape (see `split`): 1 with `*claims` (loads of the
   claims segment; with `flat`, read by `flat_object` when they are flat), `*signature`,
   the lengths of the header segment and of the signing input
   and the count of brackets set; 0 for a token of any other shape; -1 with an error set. */
static int
split_parts(PyObject *token, Py_ssize_t max_bytes, PyObject *loads, int flat,
            Py_ssize_t *head_length, Py_ssize_t *signed_length, PyObject **claims,
            PyObject **signature, Py_ssize_t *brackets)
{
    if (!PyUnicode_CheckExact(token)) {
        return 0;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(token) < 0) {
        return -1;
    }
#endif
    Py_ssize_t n = PyUnicode_GET_LENGTH(token);
    if (!PyUnicode_IS_ASCII(token) || n > max_bytes) {
        return 0;
    }
    const unsigned char *s = PyUnicode_1BYTE_DATA(token), *end = s + n;
    const unsigned char *first = memchr(s, '.', (size_t)n);
    if (first == NULL) {
        return 0;
    }
    const unsigned char *second = memchr(first + 1, '.', (size_t)(end - first - 1));
    if (second == NULL || memchr(second + 1, '.', (size_t)(end - second - 1)) != NULL
            || !in_alphabet(s, first - s)) {
        return 0;
    }
    PyObject *raw = decode(first + 1, second - first - 1);
    if (raw == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *sig = decode(second + 1, end - second - 1);
    if (sig == NULL) {
        Py_DECREF(raw);
        return PyErr_Occurred() ? -1 : 0;
    }
    /* Flat claims hold no bracket but the first "{": two scans (memchr) find that out,
       and only other claims have theirs counted. */
    const char *r = PyBytes_AS_STRING(raw);
    size_t size = (size_t)PyBytes_GET_SIZE(raw);  /* at least 1: a segment is not empty */
    Py_ssize_t count = r[0] == '{';
    if (memchr(r, '[', size) != NULL || memchr(r + 1, '{', size - 1) != NULL) {
        count = 0;
        for (size_t i = 0; i < size; i++) {
            count += (r[i] == '[') | (r[i] == '{');
        }
    }
    PyObject *loaded = NULL;
    if (flat && flat_object(r, r + size, &loaded) < 0) {
        Py_DECREF(raw);
        Py_DECREF(sig);
        return -1;
    }
    if (loaded == NULL) {
        loaded = PyObject_CallOneArg(loads, raw);
    }
    Py_DECREF(raw);
    if (loaded == NULL) {
        Py_DECREF(sig);
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {  /* not JSON: said by the careful path */
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    *head_length = first - s;
    *signed_length = second - s;
    *claims = loaded;
    *signature = sig;
    *brackets = count;
    return 1;
}

static PyObject *
split(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "split(token, max_bytes, loads) takes 3 arguments");
        return NULL;
    }
    PyObject *token = args[0];
    Py_ssize_t max_bytes = PyLong_AsSsize_t(args[1]);
    if (max_bytes == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t head_length, signed_length, brackets;
    PyObject *claims, *signature;
    int found = split_parts(token, max_bytes, args[2], 0, &head_length, &signed_length,
                            &claims, &signature, &brackets);
    if (found <= 0) {
        if (found < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyObject *head = PyUnicode_Substring(token, 0, head_length);
    PyObject *signed_ = PyBytes_FromStringAndSize((const char *)PyUnicode_1BYTE_DATA(token),
                                                  signed_length);
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

/* The usual registered claims' test (see `registered`): 1 when they surely pass, 0 when
   the Python test must decide, -1 with an error set. */
static int
registered_sure(PyObject *claims, PyObject *now_value, PyObject *leeway_value,
                PyObject *max_lifetime_value, PyObject *audience)
{
    double now, leeway, max_lifetime;
    long long exp, iat, nbf = 0;
    if (!PyDict_CheckExact(claims) || !PyUnicode_CheckExact(audience)
            || !as_double(now_value, &now) || !as_double(leeway_value, &leeway)
            || !as_double(max_lifetime_value, &max_lifetime)
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
    return 1;
unsure:
    return PyErr_Occurred() ? -1 : 0;
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
    int sure = registered_sure(args[0], args[1], args[2], args[3], args[4]);
    if (sure < 0) {
        return NULL;
    }
    return Py_NewRef(sure ? Py_True : Py_False);
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

/* ------------------------------------------------------------ the verifier's usual path */
/* `Usual(...)` is `Verifier.verify`'s straight path in one call, for a verifier whose
   values it holds (the verifier makes a new one when one of them is set): the token taken
   apart (`split_parts`), the header's verdict (the last header's, else the one the
   verifier's header cache holds: an accepted header of an RSA algorithm), the issuer's
   provider and its algorithms, the key (the one `KeyCache.get` returns first, read from
   the cache's entries, `KeyCache.held_keys`; else `get` itself, Python), the RSA signature
   (cryptography's `verify`, as the verifier calls it), the clock and the registered
   claims; the `VerifiedToken` it returns is the one the Python path returns. Anything
   else returns None before the signature is checked, and the Python path reads the token
   again and says what is wrong; a signature that does not verify, and registered claims
   the C test is not sure of, go to the verifier's own functions (`refuse_signature`,
   `refuse_claims`), which raise its error or, for the claims, return when they pass. */
typedef struct {
    PyObject_HEAD
    Py_ssize_t max_bytes;
    Py_ssize_t max_nesting;
    int flat;                    /* flat claims read by flat_object (loads is orjson's) */
    PyObject *loads;             /* bytes -> the claims (orjson.loads) */
    PyObject *headers;           /* dict: header segment -> its verdict (_Header) */
    PyObject *issuers;           /* dict: iss -> provider */
    PyObject *algorithms;        /* dict: provider -> frozenset of algorithm names */
    PyObject *held;              /* dict: issuer -> entry holding `keys` (kid -> key), or None */
    PyObject *get_key;           /* (issuer, kid) -> VerificationKey or None */
    PyObject *padding;           /* cryptography's PKCS1v15() */
    PyObject *invalid;           /* cryptography's InvalidSignature */
    PyObject *clock;             /* () -> now */
    PyObject *leeway, *max_lifetime, *audience;
    PyObject *refuse_signature;  /* (kid) -> raises the verifier's bad-signature */
    PyObject *refuse_claims;     /* (claims, now) -> None when they pass, else raises */
    PyObject *verified;          /* VerifiedToken (a tuple subclass) */
    PyObject *last;              /* (head, fields, alg, kid, hash) of the last header */
} Usual;

static PyObject *name_refusal, *name_rsa_hash, *name_alg, *name_kid, *name_fields,
    *name_iss, *name_algorithms, *name_key, *name_verify, *name_keys;

/* The verdict tuple (head, fields, alg, kid, hash) of the header [s, s + n): the last
   one's, or made from the header cache's entry; a new reference, NULL with no error set
   when the header is not cached, refused or not of an RSA algorithm (the Python path
   reads it), NULL with an error set on failure. */
static PyObject *
usual_header(Usual *self, const unsigned char *s, Py_ssize_t n)
{
    PyObject *last = self->last;
    if (last != NULL) {
        PyObject *head = PyTuple_GET_ITEM(last, 0);
        if (PyUnicode_GET_LENGTH(head) == n && memcmp(PyUnicode_1BYTE_DATA(head), s,
                                                      (size_t)n) == 0) {
            return Py_NewRef(last);
        }
    }
    PyObject *head = PyUnicode_FromStringAndSize((const char *)s, n);
    if (head == NULL) {
        return NULL;
    }
    PyObject *verdict = PyDict_GetItemWithError(self->headers, head);  /* borrowed */
    if (verdict == NULL) {
        Py_DECREF(head);
        return NULL;
    }
    Py_INCREF(verdict);
    PyObject *result = NULL, *refusal = NULL, *hash = NULL, *fields = NULL, *alg = NULL,
        *kid = NULL;
    refusal = PyObject_GetAttr(verdict, name_refusal);
    if (refusal == NULL || refusal != Py_None) {
        goto done;
    }
    hash = PyObject_GetAttr(verdict, name_rsa_hash);
    if (hash == NULL || hash == Py_None) {
        goto done;
    }
    fields = PyObject_GetAttr(verdict, name_fields);
    alg = fields == NULL ? NULL : PyObject_GetAttr(verdict, name_alg);
    kid = alg == NULL ? NULL : PyObject_GetAttr(verdict, name_kid);
    if (kid == NULL || !PyUnicode_CheckExact(alg) || !PyUnicode_CheckExact(kid)) {
        goto done;
    }
    result = PyTuple_Pack(5, head, fields, alg, kid, hash);
    if (result != NULL) {
        Py_XSETREF(self->last, Py_NewRef(result));  /* one pointer: atomic between threads */
    }
done:
    Py_DECREF(head);
    Py_DECREF(verdict);
    Py_XDECREF(refusal);
    Py_XDECREF(hash);
    Py_XDECREF(fields);
    Py_XDECREF(alg);
    Py_XDECREF(kid);
    return result;
}

static PyObject *
usual_verify(Usual *self, PyObject *token)
{
    Py_ssize_t head_length, signed_length, brackets;
    PyObject *claims = NULL, *signature = NULL, *verdict = NULL, *key = NULL,
        *allowed = NULL, *public = NULL, *signing_input = NULL, *now = NULL,
        *result = NULL;
    int found = split_parts(token, self->max_bytes, self->loads, self->flat, &head_length,
                            &signed_length, &claims, &signature, &brackets);
    if (found <= 0) {
        return found < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (!PyDict_CheckExact(claims) || brackets > self->max_nesting) {
        goto careful;
    }
    const unsigned char *s = PyUnicode_1BYTE_DATA(token);
    verdict = usual_header(self, s, head_length);
    if (verdict == NULL) {
        goto careful;
    }
    PyObject *fields = PyTuple_GET_ITEM(verdict, 1), *alg = PyTuple_GET_ITEM(verdict, 2),
        *kid = PyTuple_GET_ITEM(verdict, 3), *hash = PyTuple_GET_ITEM(verdict, 4);
    PyObject *issuer = PyDict_GetItemWithError(claims, name_iss);  /* borrowed */
    if (issuer == NULL || !PyUnicode_CheckExact(issuer)) {
        goto careful;
    }
    PyObject *provider = PyDict_GetItemWithError(self->issuers, issuer);  /* borrowed */
    if (provider == NULL) {
        goto careful;
    }
    Py_INCREF(provider);  /* held: the key's look-up runs Python code */
    PyObject *algorithms = PyDict_GetItemWithError(self->algorithms, provider);
    int allows = algorithms == NULL ? 0 : PySequence_Contains(algorithms, alg);
    if (allows != 1) {
        Py_DECREF(provider);
        goto careful;
    }
    Py_INCREF(issuer);
    if (self->held != Py_None) {  /* the key `get` returns first, without calling it */
        PyObject *entry = PyDict_GetItemWithError(self->held, issuer);  /* borrowed */
        PyObject *keys = entry == NULL ? NULL : PyObject_GetAttr(entry, name_keys);
        if (keys != NULL && PyDict_CheckExact(keys)) {
            key = PyDict_GetItemWithError(keys, kid);
            Py_XINCREF(key);
        }
        Py_XDECREF(keys);
        if (key == NULL && PyErr_Occurred()) {
            goto fail_held;
        }
    }
    if (key == NULL) {
        PyObject *lookup[2] = {issuer, kid};
        key = PyObject_Vectorcall(self->get_key, lookup, 2, NULL);
    }
    if (key == NULL || key == Py_None) {  /* unknown, or not fetched: said by the careful path */
        goto careful_held;
    }
    allowed = PyObject_GetAttr(key, name_algorithms);
    if (allowed == NULL || PySequence_Contains(allowed, alg) != 1) {
        goto careful_held;
    }
    public = PyObject_GetAttr(key, name_key);
    signing_input = public == NULL ? NULL : PyBytes_FromStringAndSize((const char *)s,
                                                                       signed_length);
    if (signing_input == NULL) {
        goto fail_held;
    }
    PyObject *call[5] = {public, signature, signing_input, self->padding, hash};
    PyObject *checked = PyObject_VectorcallMethod(name_verify, call,
                                                  5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (checked == NULL) {
        if (PyErr_ExceptionMatches(self->invalid)) {
            PyErr_Clear();
            PyObject *refused = PyObject_CallOneArg(self->refuse_signature, kid);
            Py_XDECREF(refused);  /* it raises */
            if (refused != NULL) {
                PyErr_SetString(PyExc_RuntimeError, "refuse_signature returned");
            }
        }
        goto fail_held;
    }
    Py_DECREF(checked);
    now = PyObject_CallNoArgs(self->clock);
    if (now == NULL) {
        goto fail_held;
    }
    int sure = registered_sure(claims, now, self->leeway, self->max_lifetime, self->audience);
    if (sure < 0) {
        goto fail_held;
    }
    if (!sure) {
        PyObject *pair[2] = {claims, now};
        PyObject *passed = PyObject_Vectorcall(self->refuse_claims, pair, 2, NULL);
        if (passed == NULL) {
            goto fail_held;
        }
        Py_DECREF(passed);
    }
    result = ((PyTypeObject *)self->verified)->tp_alloc((PyTypeObject *)self->verified, 4);
    if (result != NULL) {
        PyTuple_SET_ITEM(result, 0, Py_NewRef(fields));
        PyTuple_SET_ITEM(result, 1, Py_NewRef(claims));
        PyTuple_SET_ITEM(result, 2, Py_NewRef(issuer));
        PyTuple_SET_ITEM(result, 3, Py_NewRef(provider));
    }
    goto done_held;
careful_held:
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            goto fail_held;
        }
        PyErr_Clear();  /* the careful path asks again and says what failed */
    }
    result = Py_NewRef(Py_None);
fail_held:
done_held:
    Py_DECREF(issuer);
    Py_DECREF(provider);
    goto done;
careful:
    if (PyErr_Occurred()) {
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(claims);
    Py_XDECREF(signature);
    Py_XDECREF(verdict);
    Py_XDECREF(key);
    Py_XDECREF(allowed);
    Py_XDECREF(public);
    Py_XDECREF(signing_input);
    Py_XDECREF(now);
    return result;
}

static int
usual_traverse(Usual *self, visitproc visit, void *arg)
{
    Py_VISIT(self->loads);
    Py_VISIT(self->headers);
    Py_VISIT(self->issuers);
    Py_VISIT(self->algorithms);
    Py_VISIT(self->held);
    Py_VISIT(self->get_key);
    Py_VISIT(self->padding);
    Py_VISIT(self->invalid);
    Py_VISIT(self->clock);
    Py_VISIT(self->leeway);
    Py_VISIT(self->max_lifetime);
    Py_VISIT(self->audience);
    Py_VISIT(self->refuse_signature);
    Py_VISIT(self->refuse_claims);
    Py_VISIT(self->verified);
    Py_VISIT(self->last);
    return 0;
}

static int
usual_clear(Usual *self)
{
    Py_CLEAR(self->loads);
    Py_CLEAR(self->headers);
    Py_CLEAR(self->issuers);
    Py_CLEAR(self->algorithms);
    Py_CLEAR(self->held);
    Py_CLEAR(self->get_key);
    Py_CLEAR(self->padding);
    Py_CLEAR(self->invalid);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->leeway);
    Py_CLEAR(self->max_lifetime);
    Py_CLEAR(self->audience);
    Py_CLEAR(self->refuse_signature);
    Py_CLEAR(self->refuse_claims);
    Py_CLEAR(self->verified);
    Py_CLEAR(self->last);
    return 0;
}

static void
usual_dealloc(Usual *self)
{
    PyObject_GC_UnTrack(self);
    usual_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
usual_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Py_ssize_t max_bytes, max_nesting;
    int flat;
    PyObject *loads, *headers, *issuers, *algorithms, *held, *get_key, *padding, *invalid,
        *clock,
        *leeway, *max_lifetime, *audience, *refuse_signature, *refuse_claims, *verified;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "Usual takes positional arguments only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "nnpOO!O!O!OOOOOOOUOOO:Usual", &max_bytes, &max_nesting,
                          &flat, &loads, &PyDict_Type, &headers, &PyDict_Type, &issuers,
                          &PyDict_Type, &algorithms, &held, &get_key, &padding, &invalid,
                          &clock, &leeway, &max_lifetime, &audience, &refuse_signature,
                          &refuse_claims, &verified)) {
        return NULL;
    }
    if (!PyType_Check(verified) || !PyType_IsSubtype((PyTypeObject *)verified, &PyTuple_Type)
            || !PyExceptionClass_Check(invalid) || (held != Py_None && !PyDict_Check(held))) {
        PyErr_SetString(PyExc_TypeError, "Usual: verified is a tuple class, invalid an "
                        "exception class");
        return NULL;
    }
    Usual *self = (Usual *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->max_bytes = max_bytes;
    self->max_nesting = max_nesting;
    self->flat = flat;
    self->loads = Py_NewRef(loads);
    self->headers = Py_NewRef(headers);
    self->issuers = Py_NewRef(issuers);
    self->algorithms = Py_NewRef(algorithms);
    self->held = Py_NewRef(held);
    self->get_key = Py_NewRef(get_key);
    self->padding = Py_NewRef(padding);
    self->invalid = Py_NewRef(invalid);
    self->clock = Py_NewRef(clock);
    self->leeway = Py_NewRef(leeway);
    self->max_lifetime = Py_NewRef(max_lifetime);
    self->audience = Py_NewRef(audience);
    self->refuse_signature = Py_NewRef(refuse_signature);
    self->refuse_claims = Py_NewRef(refuse_claims);
    self->verified = Py_NewRef(verified);
    self->last = NULL;
    return (PyObject *)self;
}

static PyMethodDef usual_methods[] = {
    {"verify", (PyCFunction)usual_verify, METH_O,
     "verify(token) -> the VerifiedToken, or None for a token the Python path must read"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject UsualType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tppolicy.token._compact.Usual",
    .tp_doc = "Verifier.verify's straight path in C (see tppolicy.token.verify).",
    .tp_basicsize = sizeof(Usual),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = usual_new,
    .tp_dealloc = (destructor)usual_dealloc,
    .tp_traverse = (traverseproc)usual_traverse,
    .tp_clear = (inquiry)usual_clear,
    .tp_methods = usual_methods,
};

static PyMethodDef module_methods[] = {
    {"split", (PyCFunction)(void (*)(void))split, METH_FASTCALL,
     "split(token, max_bytes, loads) -> (header segment, signing input, claims, signature, "
     "brackets), or None for a token the careful path must read"},
    {"flat_loads", (PyCFunction)flat_loads, METH_O,
     "flat_loads(raw) -> the claims orjson.loads gives, when they are flat; else None"},
    {"registered", (PyCFunction)(void (*)(void))registered, METH_FASTCALL,
     "registered(claims, now, leeway, max_lifetime, audience) -> True when the usual "
     "registered claims surely pass, else False (the Python test decides)"},
    {NULL, NULL, 0, NULL},
};

static int
module_exec(PyObject *module)
{
    fill_tables();
    fill_plain();
    /* the claims' names, then the store's Python methods the C claim calls */
    static PyObject **names[] = {&name_exp, &name_iat, &name_nbf, &name_aud, &name_jti,
                                 &name_sub, &name_sweep, &name_take_over, &name_claim_slowly,
                                 &name_refusal, &name_rsa_hash, &name_alg, &name_kid,
                                 &name_fields, &name_iss, &name_algorithms, &name_key,
                                 &name_verify, &name_keys};
    static const char *texts[] = {"exp", "iat", "nbf", "aud", "jti", "sub",
                                  "_sweep", "_take_over", "_claim_slowly", "refusal",
                                  "rsa_hash", "alg", "kid", "fields", "iss", "algorithms",
                                  "key", "verify", "keys"};
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
    if (PyType_Ready(&ClaimsType) < 0 || PyType_Ready(&UsualType) < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "Usual", (PyObject *)&UsualType) < 0) {
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
