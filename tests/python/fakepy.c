/* Something that looks like a CPython interpreter to python.c's probe: a
 * shared library defining _PyRuntime and what else the macros say, for
 * tests/python/probe.c. Built against the 3.11 headers, so that the object
 * sizes are the real ones unless FAKE_RUNTIME_SIZE says otherwise. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_runtime.h>

#ifdef FAKE_RUNTIME_SIZE
/* (the header declares _PyRuntime: another type needs the assembler) */
__asm__(".globl _PyRuntime\n.type _PyRuntime, @object\n.size _PyRuntime, " FAKE_RUNTIME_SIZE
        "\n.bss\n.balign 64\n_PyRuntime:\n.zero " FAKE_RUNTIME_SIZE "\n.previous");
#else
_PyRuntimeState _PyRuntime; /* all zero: no thread state key yet, as before Py_Initialize */
#endif
#ifdef FAKE_VERSION
const unsigned long Py_Version = FAKE_VERSION;
#endif
#ifdef FAKE_DEBUG
Py_ssize_t _Py_RefTotal;
#endif
#ifndef FAKE_NO_TYPES
PyTypeObject PyCode_Type, PyUnicode_Type, PyBytes_Type;
#endif
