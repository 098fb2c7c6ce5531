/* `Engine.check_token`'s usual answer in one call (`tppolicy.decide.engine`).

   An index server's usual token is allowed by one normal publisher, its jti new. In
   Python its path after the RSA verify ran five functions and some 250 bytecodes of
   glue (the engine's, the decision core's quick answer, the jti's claim), each one
   slower after the RSA call (whose code evicts the interpreter's from the CPU's caches
   and branch predictors) than in a loop of checks. `TokenPath(engine, core, verifier,
   replay, audience, margin, max_jti, result)` holds what that path reads, and
   `TokenPath.check(token)` takes the same steps in C:

   - the verifier's straight path (`verifier._usual`, `_compact.Usual`); without one, or
     when it hands the token back (None), check returns None: the engine verifies it;
   - the decision core's quick answer (`Decider.allowed`): the issuer's index, its
     compiled check of the claims against its quick table, for a core with no host
     lookup and claims whose `aud` is the engine's audience;
   - the jti's claim (`use_jti`): a `jti` that is a str of at most `max_jti` characters,
     none a control character (C0, DEL, C1), claimed in the replay store as
     "{issuer}/{jti}" until exp + leeway + margin (the verifier's leeway; a float made an
     int, as use_jti does);
   - the result: `result(decision, None, claims)` (a `CheckResult`); for a class of
     slots `_decision`, `_action` and `_claims` made by object.__new__, as CheckResult is,
     the instance is allocated and its three slots set here, which is all its __init__
     does: no Python frame after the RSA call (a tenth of the path's cost beside it).

   check returns that result; or, once the token is verified but the path is not the
   usual one (no quick answer, another issuer of the provider, an unusual jti, a
   pending publisher's decision), the `VerifiedToken`, which the engine decides from
   (no second verify); or, after a claim that did not return True (the jti used, or the
   store's own answer) or raised, `engine._claimed(verified, decision, outcome)`, which
   gives what `use_jti` gives. A `TokenError` from the verifier propagates (the engine
   answers it); so does any other exception, as in Python. The engine calls it only for
   a request without upload values, no decision records and no decision hook. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"

typedef struct {
    PyObject_HEAD
    PyObject *engine, *core, *verifier, *replay, *audience, *margin, *result;
    Py_ssize_t max_jti;
    /* where `result`'s instances hold `_decision`, `_action` and `_claims` (its
       __slots__), when it is a class whose instances can be made without its __init__
       (which only sets them); 0: the class is called */
    Py_ssize_t offsets[3];
} TokenPath;

static const char *result_slots[3] = {"_decision", "_action", "_claims"};

static PyObject *name_usual, *name_leeway, *name_lookup_for, *name_issuers, *name_check, *name_quick,
    *name_issuer, *name_aud, *name_jti, *name_exp, *name_claim, *name_claimed, *name_allowed,
    *name_pending, *name_slash;

/* 1 when `jti` is a str the store can hold (see use_jti), 0 otherwise. */
static int
usual_jti(PyObject *jti, Py_ssize_t max_jti)
{
    if (!PyUnicode_CheckExact(jti) || PyUnicode_GET_LENGTH(jti) > max_jti) {
        return 0;
    }
    if (PyUnicode_IS_ASCII(jti)) {
        const unsigned char *s = PyUnicode_1BYTE_DATA(jti);
        for (Py_ssize_t i = 0, n = PyUnicode_GET_LENGTH(jti); i < n; i++) {
            if (s[i] < 0x20 || s[i] == 0x7f) {
                return 0;
            }
        }
        return 1;
    }
    int kind = PyUnicode_KIND(jti);
    const void *data = PyUnicode_DATA(jti);
    for (Py_ssize_t i = 0, n = PyUnicode_GET_LENGTH(jti); i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
            return 0;
        }
    }
    return 1;
}

static PyObject *
tokenpath_check(TokenPath *self, PyObject *token)
{
    PyObject *usual = PyObject_GetAttr(self->verifier, name_usual);
    if (usual == NULL) {
        return NULL;
    }
    if (usual == Py_None) {
        return usual;  /* None: the engine verifies the token */
    }
    PyObject *verified = PyObject_CallOneArg(usual, token);
    Py_DECREF(usual);
    if (verified == NULL || verified == Py_None) {
        return verified;
    }
    PyObject *lookup_for = NULL, *issuers = NULL, *index = NULL, *check = NULL, *quick = NULL,
        *decision = NULL, *own = NULL, *key = NULL, *expires_at = NULL, *claimed = NULL,
        *pending = NULL, *result = NULL;
    if (!PyTuple_Check(verified) || PyTuple_GET_SIZE(verified) != 4) {
        goto verified_only;
    }
    PyObject *claims = PyTuple_GET_ITEM(verified, 1), *issuer = PyTuple_GET_ITEM(verified, 2);
    if (!PyDict_CheckExact(claims) || !PyUnicode_CheckExact(issuer)) {
        goto verified_only;
    }
    /* Decider.allowed */
    lookup_for = PyObject_GetAttr(self->core, name_lookup_for);
    if (lookup_for == NULL) {
        goto fail;
    }
    if (lookup_for != Py_None) {
        goto verified_only;
    }
    issuers = PyObject_GetAttr(self->core, name_issuers);
    if (issuers == NULL) {
        goto fail;
    }
    if (!PyDict_Check(issuers)) {
        goto verified_only;
    }
    index = PyDict_GetItemWithError(issuers, issuer);
    if (index == NULL) {
        if (PyErr_Occurred()) {
            goto fail;
        }
        goto verified_only;
    }
    Py_INCREF(index);
    check = PyObject_GetAttr(index, name_check);
    if (check == NULL) {
        goto fail;
    }
    if (check == Py_None) {
        goto verified_only;
    }
    PyObject *aud = PyDict_GetItemWithError(claims, name_aud);
    if (aud == NULL) {
        if (PyErr_Occurred()) {
            goto fail;
        }
        goto verified_only;
    }
    if (!PyUnicode_CheckExact(aud)) {
        goto verified_only;
    }
    int same = PyUnicode_Compare(aud, self->audience);
    if (same == -1 && PyErr_Occurred()) {
        goto fail;
    }
    if (same != 0) {
        goto verified_only;
    }
    quick = PyObject_GetAttr(index, name_quick);
    if (quick == NULL) {
        goto fail;
    }
    PyObject *arguments[2] = {claims, quick};
    decision = PyObject_Vectorcall(check, arguments, 2, NULL);
    if (decision == NULL) {
        goto fail;
    }
    if (decision == Py_None) {
        goto verified_only;
    }
    own = PyObject_GetAttr(index, name_issuer);
    if (own == NULL) {
        goto fail;
    }
    if (own != issuer) {
        int equal = PyUnicode_Check(own) ? PyUnicode_Compare(own, issuer) : 1;
        if (equal == -1 && PyErr_Occurred()) {
            goto fail;
        }
        if (equal != 0) {  /* another issuer of the provider: the engine says which */
            goto verified_only;
        }
    }
    /* the decision allows, for a normal publisher */
    PyObject *allowed = PyObject_GetAttr(decision, name_allowed);
    if (allowed == NULL) {
        goto fail;
    }
    Py_DECREF(allowed);
    if (allowed != Py_True) {
        goto verified_only;
    }
    /* a normal publisher's: `pending` is its record's pending_project is not None, set
       when the record made the decision (the record itself is not read: a cache line) */
    pending = PyObject_GetAttr(decision, name_pending);
    if (pending == NULL) {
        goto fail;
    }
    if (pending != Py_False) {
        goto verified_only;
    }
    /* use_jti */
    if (self->replay != Py_None) {
        PyObject *jti = PyDict_GetItemWithError(claims, name_jti);
        if (jti == NULL && PyErr_Occurred()) {
            goto fail;
        }
        if (jti != NULL && jti != Py_None) {
            PyObject *exp = PyDict_GetItemWithError(claims, name_exp);
            if (exp == NULL) {
                if (PyErr_Occurred()) {
                    goto fail;
                }
                goto verified_only;
            }
            if (!usual_jti(jti, self->max_jti) || !PyLong_CheckExact(exp)) {
                goto verified_only;
            }
            PyObject *leeway = PyObject_GetAttr(self->verifier, name_leeway);
            if (leeway == NULL) {
                goto fail;
            }
            PyObject *late = PyNumber_Add(exp, leeway);
            Py_DECREF(leeway);
            if (late == NULL) {
                goto claim_failed;
            }
            expires_at = PyNumber_Add(late, self->margin);
            Py_DECREF(late);
            if (expires_at == NULL) {
                goto claim_failed;
            }
            if (!PyLong_CheckExact(expires_at)) {
                Py_SETREF(expires_at, PyNumber_Long(expires_at));
                if (expires_at == NULL) {
                    goto claim_failed;
                }
            }
            key = PyUnicode_Concat(issuer, name_slash);
            if (key == NULL) {
                goto fail;
            }
            PyUnicode_Append(&key, jti);
            if (key == NULL) {
                goto fail;
            }
            PyObject *claim_arguments[3] = {self->replay, key, expires_at};
            claimed = PyObject_VectorcallMethod(name_claim, claim_arguments,
                                                3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (claimed == NULL) {
                goto claim_failed;
            }
            if (claimed != Py_True) {  /* used, or the store's own answer: use_jti says */
                PyObject *finish[4] = {self->engine, verified, decision, claimed};
                result = PyObject_VectorcallMethod(name_claimed, finish,
                                                   4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
                goto done;
            }
        }
    }
    if (self->offsets[0] != 0) {  /* `result(decision, None, claims)` without a frame */
        result = ((PyTypeObject *)self->result)->tp_alloc((PyTypeObject *)self->result, 0);
        if (result != NULL) {
            PyObject *fields[3] = {decision, Py_None, claims};
            for (int i = 0; i < 3; i++) {
                *(PyObject **)((char *)result + self->offsets[i]) = Py_NewRef(fields[i]);
            }
        }
    }
    else {
        PyObject *made[3] = {decision, Py_None, claims};
        result = PyObject_Vectorcall(self->result, made, 3, NULL);
    }
    goto done;
claim_failed:
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        goto fail;
    }
    {
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *error = PyErr_GetRaisedException();
#else
        PyObject *kind, *error, *traceback;
        PyErr_Fetch(&kind, &error, &traceback);
        PyErr_NormalizeException(&kind, &error, &traceback);
        if (traceback != NULL && error != NULL) {
            PyException_SetTraceback(error, traceback);
        }
        Py_XDECREF(kind);
        Py_XDECREF(traceback);
#endif
        if (error == NULL) {
            goto fail;
        }
        PyObject *finish[4] = {self->engine, verified, decision, error};
        result = PyObject_VectorcallMethod(name_claimed, finish,
                                           4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(error);
    }
    goto done;
verified_only:
    result = Py_NewRef(verified);
    goto done;
fail:
done:
    Py_DECREF(verified);
    Py_XDECREF(lookup_for);
    Py_XDECREF(issuers);
    Py_XDECREF(index);
    Py_XDECREF(check);
    Py_XDECREF(quick);
    Py_XDECREF(decision);
    Py_XDECREF(own);
    Py_XDECREF(key);
    Py_XDECREF(expires_at);
    Py_XDECREF(claimed);
    Py_XDECREF(pending);
    return result;
}

static int
tokenpath_traverse(TokenPath *self, visitproc visit, void *arg)
{
    Py_VISIT(self->engine);
    Py_VISIT(self->core);
    Py_VISIT(self->verifier);
    Py_VISIT(self->replay);
    Py_VISIT(self->audience);
    Py_VISIT(self->margin);
    Py_VISIT(self->result);
    return 0;
}

static int
tokenpath_clear(TokenPath *self)
{
    Py_CLEAR(self->engine);
    Py_CLEAR(self->core);
    Py_CLEAR(self->verifier);
    Py_CLEAR(self->replay);
    Py_CLEAR(self->audience);
    Py_CLEAR(self->margin);
    Py_CLEAR(self->result);
    return 0;
}

static void
tokenpath_dealloc(TokenPath *self)
{
    PyObject_GC_UnTrack(self);
    tokenpath_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The offsets of `result`'s slots `_decision`, `_action` and `_claims` into `offsets`,
   for a class made by object.__new__ whose slots they are (object members that may be
   set); all 0 for any other callable (then it is called). -1 with an error set. */
static int
find_offsets(PyObject *result, Py_ssize_t *offsets)
{
    offsets[0] = offsets[1] = offsets[2] = 0;
    if (!PyType_Check(result) || ((PyTypeObject *)result)->tp_new != PyBaseObject_Type.tp_new
            || ((PyTypeObject *)result)->tp_alloc != PyType_GenericAlloc) {
        return 0;
    }
    Py_ssize_t found[3];
    for (int i = 0; i < 3; i++) {
        PyObject *descriptor = PyObject_GetAttrString(result, result_slots[i]);
        if (descriptor == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                return -1;
            }
            PyErr_Clear();
            return 0;
        }
        int usable = Py_IS_TYPE(descriptor, &PyMemberDescr_Type)
            && ((PyMemberDescrObject *)descriptor)->d_common.d_type == (PyTypeObject *)result
            && ((PyMemberDescrObject *)descriptor)->d_member->type == T_OBJECT_EX
            && !(((PyMemberDescrObject *)descriptor)->d_member->flags & READONLY);
        found[i] = usable ? ((PyMemberDescrObject *)descriptor)->d_member->offset : 0;
        Py_DECREF(descriptor);
        if (found[i] <= 0) {
            return 0;
        }
    }
    memcpy(offsets, found, sizeof(found));
    return 0;
}

static PyObject *
tokenpath_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *engine, *core, *verifier, *replay, *audience, *margin, *result;
    Py_ssize_t max_jti;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "TokenPath takes positional arguments only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OOOOUOnO:TokenPath", &engine, &core, &verifier, &replay,
                          &audience, &margin, &max_jti, &result)) {
        return NULL;
    }
    TokenPath *self = (TokenPath *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->engine = Py_NewRef(engine);
    self->core = Py_NewRef(core);
    self->verifier = Py_NewRef(verifier);
    self->replay = Py_NewRef(replay);
    self->audience = Py_NewRef(audience);
    self->margin = Py_NewRef(margin);
    self->max_jti = max_jti;
    self->result = Py_NewRef(result);
    if (find_offsets(result, self->offsets) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyMethodDef tokenpath_methods[] = {
    {"check", (PyCFunction)tokenpath_check, METH_O,
     "check(token) -> the CheckResult of the usual token, the VerifiedToken to decide from, "
     "or None (the engine verifies the token)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TokenPathType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tppolicy.decide._usual.TokenPath",
    .tp_doc = "Engine.check_token's usual answer in C (see tppolicy.decide.engine).",
    .tp_basicsize = sizeof(TokenPath),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = tokenpath_new,
    .tp_dealloc = (destructor)tokenpath_dealloc,
    .tp_traverse = (traverseproc)tokenpath_traverse,
    .tp_clear = (inquiry)tokenpath_clear,
    .tp_methods = tokenpath_methods,
};

static int
module_exec(PyObject *module)
{
    static PyObject **names[] = {&name_usual, &name_leeway, &name_lookup_for, &name_issuers,
                                 &name_check, &name_quick, &name_issuer, &name_aud, &name_jti,
                                 &name_exp, &name_claim, &name_claimed, &name_allowed,
                                 &name_pending, &name_slash};
    static const char *texts[] = {"_usual", "leeway", "lookup_for", "issuers", "check",
                                  "quick", "issuer", "aud", "jti", "exp", "claim", "_claimed",
                                  "allowed", "pending", "/"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        if (*names[i] == NULL) {  /* once per process, kept for its life */
            *names[i] = PyUnicode_InternFromString(texts[i]);
            if (*names[i] == NULL) {
                return -1;
            }
        }
    }
    if (PyType_Ready(&TokenPathType) < 0) {
        return -1;
    }
    return PyModule_AddObjectRef(module, "TokenPath", (PyObject *)&TokenPathType);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tppolicy.decide._usual",
    .m_doc = "Engine.check_token's usual answer in one call (see tppolicy.decide.engine).",
    .m_size = 0,
    .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit__usual(void)
{
    return PyModuleDef_Init(&module_def);
}
