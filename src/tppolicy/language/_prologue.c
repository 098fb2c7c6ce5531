/* A compiled function's claims prologue in one call (`tppolicy.language.compile`).

   A compiled check begins by reading the claims it needs into locals: each required claim
   read and its class tested (a missing or mistyped one refuses), each typed claim tested
   when present, each other claim read (a present value of another class than declared
   stands as the wrong-type marker). In Python that is five to nine bytecodes a claim, a
   third of an allowed GitHub check's bytecodes. `Prologue(names, classes, kinds, wrong)`
   does the same reads and tests in C: `Prologue.take(claims)` returns the tuple of the
   values, in the order given, or None where the Python prologue returns its refusal.

   kinds: 0 a required claim (refused when missing or, with a class, of another class;
   without a class, when missing or null), 1 a typed claim (refused when present, not null,
   of another class), 2 another claim (a present value, not null, of another class than
   its class is `wrong`; with no class, taken as it is). A class is matched exactly
   (`value.__class__ is cls`, as the Python prologue tests it: a bool is not an int).
   Claims that are not an exact dict are read through their `get` method, as Python does.

   Nothing is kept between calls: the object holds its constant arguments only. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject_HEAD
    Py_ssize_t count;
    PyObject *names;    /* tuple of str */
    PyObject *classes;  /* tuple of classes or None */
    PyObject *wrong;    /* the wrong-type marker */
    unsigned char *kinds;
} Prologue;

static PyObject *name_get;

static PyObject *
prologue_take(Prologue *self, PyObject *claims)
{
    PyObject *values = PyTuple_New(self->count);
    if (values == NULL) {
        return NULL;
    }
    int exact = PyDict_CheckExact(claims);
    for (Py_ssize_t i = 0; i < self->count; i++) {
        PyObject *name = PyTuple_GET_ITEM(self->names, i);
        PyObject *value;
        if (exact) {
            value = PyDict_GetItemWithError(claims, name);  /* borrowed */
            if (value == NULL) {
                if (PyErr_Occurred()) {
                    goto fail;
                }
                value = Py_None;
            }
            Py_INCREF(value);
        }
        else {
            value = PyObject_CallMethodOneArg(claims, name_get, name);
            if (value == NULL) {
                goto fail;
            }
        }
        PyTuple_SET_ITEM(values, i, value);  /* the tuple owns it, freed with it */
        PyObject *cls = PyTuple_GET_ITEM(self->classes, i);
        int kind = self->kinds[i];
        if (kind == 0) {
            if (cls == Py_None ? value == Py_None : (PyObject *)Py_TYPE(value) != cls) {
                goto refused;
            }
        }
        else if (cls != Py_None && value != Py_None && (PyObject *)Py_TYPE(value) != cls) {
            if (kind == 1) {
                goto refused;
            }
            PyTuple_SET_ITEM(values, i, Py_NewRef(self->wrong));
            Py_DECREF(value);
        }
    }
    return values;
refused:
    Py_DECREF(values);
    Py_RETURN_NONE;
fail:
    Py_DECREF(values);
    return NULL;
}

static int
prologue_traverse(Prologue *self, visitproc visit, void *arg)
{
    Py_VISIT(self->names);
    Py_VISIT(self->classes);
    Py_VISIT(self->wrong);
    return 0;
}

static int
prologue_clear(Prologue *self)
{
    Py_CLEAR(self->names);
    Py_CLEAR(self->classes);
    Py_CLEAR(self->wrong);
    return 0;
}

static void
prologue_dealloc(Prologue *self)
{
    PyObject_GC_UnTrack(self);
    prologue_clear(self);
    PyMem_Free(self->kinds);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
prologue_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *names, *classes, *kinds, *wrong;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "Prologue takes positional arguments only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!O!O!O:Prologue", &PyTuple_Type, &names, &PyTuple_Type,
                          &classes, &PyTuple_Type, &kinds, &wrong)) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    if (PyTuple_GET_SIZE(classes) != count || PyTuple_GET_SIZE(kinds) != count) {
        PyErr_SetString(PyExc_ValueError, "Prologue: names, classes and kinds differ in length");
        return NULL;
    }
    unsigned char *codes = PyMem_Malloc((size_t)(count > 0 ? count : 1));
    if (codes == NULL) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i), *cls = PyTuple_GET_ITEM(classes, i);
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(kinds, i));
        if (kind == -1 && PyErr_Occurred()) {
            PyMem_Free(codes);
            return NULL;
        }
        if (!PyUnicode_CheckExact(name) || (cls != Py_None && !PyType_Check(cls))
                || kind < 0 || kind > 2) {
            PyMem_Free(codes);
            PyErr_SetString(PyExc_ValueError, "Prologue: a name is a str, a class a type or "
                            "None, a kind 0, 1 or 2");
            return NULL;
        }
        codes[i] = (unsigned char)kind;
    }
    Prologue *self = (Prologue *)type->tp_alloc(type, 0);
    if (self == NULL) {
        PyMem_Free(codes);
        return NULL;
    }
    self->count = count;
    self->names = Py_NewRef(names);
    self->classes = Py_NewRef(classes);
    self->wrong = Py_NewRef(wrong);
    self->kinds = codes;
    return (PyObject *)self;
}

static PyMethodDef prologue_methods[] = {
    {"take", (PyCFunction)prologue_take, METH_O,
     "take(claims) -> the claims' values in order, or None when the prologue refuses"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PrologueType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tppolicy.language._prologue.Prologue",
    .tp_doc = "A compiled function's claims prologue in C (see tppolicy.language.compile).",
    .tp_basicsize = sizeof(Prologue),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = prologue_new,
    .tp_dealloc = (destructor)prologue_dealloc,
    .tp_traverse = (traverseproc)prologue_traverse,
    .tp_clear = (inquiry)prologue_clear,
    .tp_methods = prologue_methods,
};

static int
module_exec(PyObject *module)
{
    if (name_get == NULL) {
        name_get = PyUnicode_InternFromString("get");  /* kept for the process's life */
        if (name_get == NULL) {
            return -1;
        }
    }
    if (PyType_Ready(&PrologueType) < 0) {
        return -1;
    }
    return PyModule_AddObjectRef(module, "Prologue", (PyObject *)&PrologueType);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tppolicy.language._prologue",
    .m_doc = "A compiled function's claims prologue in one call (see tppolicy.language.compile).",
    .m_size = 0,
    .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit__prologue(void)
{
    return PyModuleDef_Init(&module_def);
}
