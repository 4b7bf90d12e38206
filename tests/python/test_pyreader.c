/* A CPython reader (tracer/py311.c, py312.c or py313.c: SM_READER names its
 * ops) against the interpreter itself, in one process that embeds that
 * version: the line of every instruction of every code object reachable
 * from a set of standard modules, as sm_py_line decodes it, must be
 * PyCode_Addr2Line's; and describe() must give each code object's file
 * name (as os.fsencode gives it) and qualified name (UTF-8), and ident()
 * the objects it holds. Names with accents, a character outside
 * the BMP and an undecodable byte in a file name are among them. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "tests/testhelper.h"
#include "tracer/python.h"

#ifndef SM_READER
#error "SM_READER: the reader's ops, e.g. sm_py311_ops"
#endif

/* Code objects to check: those of every function and class body in the
 * modules, found through co_consts, and of a few made here. */
static const char *const collect =
    "import sys, types, importlib\n"
    "mods = ['json', 'email.parser', 'asyncio', 'typing', 'collections', 'argparse', 'dataclasses', 'enum',\n"
    "        'inspect', 'tracemalloc', 'sqlite3', 'logging', 'unittest', 'decimal', 'difflib']\n"
    "codes = []\n"
    "def walk(co):\n"
    "    codes.append(co)\n"
    "    for c in co.co_consts:\n"
    "        if isinstance(c, types.CodeType): walk(c)\n"
    "src = 'def donn\\u00e9es():\\n    return [1,\\n        2]\\nclass K\\U0001D49C:\\n    def m(self): pass\\n'\n"
    "walk(compile(src, 'pkg/caf\\u00e9/\\U0001F600\\udcff.py', 'exec'))\n"
    "walk(compile('x = (1 +\\n 2)\\n' * 300 + 'y = 1\\n', 'long.py', 'exec'))\n"
    "for name in mods:\n"
    "    m = importlib.import_module(name)\n"
    "    for v in list(vars(m).values()):\n"
    "        for f in [v] + (list(vars(v).values()) if isinstance(v, type) else []):\n"
    "            co = getattr(f, '__code__', None)\n"
    "            if isinstance(co, types.CodeType): walk(co)\n"
    "import os\n"
    "names = [(os.fsencode(c.co_filename), c.co_qualname.encode('utf-8', 'surrogatepass')) for c in codes]\n";

static void check_code(const sm_py_rt_t *rt, PyCodeObject *co, PyObject *fname, PyObject *qname, long *mismatches) {
  PyObject *table = co->co_linetable;
  const uint8_t *bytes = (const uint8_t *)PyBytes_AS_STRING(table);
  size_t len = (size_t)PyBytes_GET_SIZE(table);
  int n = (int)Py_SIZE(co);
  for (int lasti = -1; lasti <= n; lasti++) {
    int want = lasti < 0 ? co->co_firstlineno : lasti < n ? PyCode_Addr2Line(co, lasti * 2) : -1;
    int got = sm_py_line(bytes, len, co->co_firstlineno, lasti);
    if (got != want && (*mismatches)++ < 10)
      fprintf(stderr, "%s: instruction %d: line %d, the interpreter says %d\n", PyBytes_AS_STRING(qname), lasti, got,
              want);
  }
  sm_py_desc_t d;
  CHECK(SM_READER.describe(rt, (uintptr_t)co, n > 1 ? 1 : -1, &d));
  const char *name = d.text + d.file_len;
  CHECK_MSG(d.file_len == (uint32_t)PyBytes_GET_SIZE(fname) && memcmp(d.text, PyBytes_AS_STRING(fname), d.file_len) == 0,
            "file %.*s, want %s", (int)d.file_len, d.text, PyBytes_AS_STRING(fname));
  CHECK_MSG(d.name_len == (uint32_t)PyBytes_GET_SIZE(qname) && memcmp(name, PyBytes_AS_STRING(qname), d.name_len) == 0,
            "name %.*s, want %s", (int)d.name_len, name, PyBytes_AS_STRING(qname));
  int line = n > 1 ? PyCode_Addr2Line(co, 2) : co->co_firstlineno;
  CHECK(d.line == (uint32_t)(line > 0 ? line : 0));
  sm_py_ident_t id;
  CHECK(SM_READER.ident(rt, (uintptr_t)co, &id));
  CHECK(id.file == (uintptr_t)co->co_filename && id.name == (uintptr_t)co->co_qualname &&
        id.table == (uintptr_t)co->co_linetable && id.firstline == co->co_firstlineno);
}

int main(void) {
  Py_Initialize();
  PyObject *globals = PyDict_New();
  PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins());
  PyObject *r = PyRun_String(collect, Py_file_input, globals, globals);
  if (!r) {
    PyErr_Print();
    return 1;
  }
  Py_DECREF(r);
  PyObject *codes = PyDict_GetItemString(globals, "codes");
  PyObject *names = PyDict_GetItemString(globals, "names");
  sm_py_rt_t rt = {.code_type = (uintptr_t)&PyCode_Type, .unicode_type = (uintptr_t)&PyUnicode_Type,
                   .bytes_type = (uintptr_t)&PyBytes_Type};
  long mismatches = 0;
  Py_ssize_t ncodes = PyList_GET_SIZE(codes);
  for (Py_ssize_t i = 0; i < ncodes; i++) {
    PyObject *pair = PyList_GET_ITEM(names, i);
    check_code(&rt, (PyCodeObject *)PyList_GET_ITEM(codes, i), PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1),
               &mismatches);
  }
  CHECK_MSG(ncodes > 1500, "only %zd code objects", ncodes);
  CHECK_MSG(mismatches == 0, "%ld instructions got another line than PyCode_Addr2Line's", mismatches);
  /* Not a code object: refused, nothing read past its type. */
  sm_py_desc_t d;
  sm_py_ident_t id;
  CHECK(!SM_READER.describe(&rt, (uintptr_t)globals, 0, &d));
  CHECK(!SM_READER.ident(&rt, (uintptr_t)globals, &id));
  /* A table that ends early, or whose first byte is not an entry's. */
  static const uint8_t cut[] = {0x80 | (13 << 3) | 1, 0x40}; /* a varint that never ends */
  CHECK(sm_py_line(cut, sizeof cut, 5, 0) == -1);
  static const uint8_t bad[] = {0x01};
  CHECK(sm_py_line(bad, sizeof bad, 5, 0) == -1);
  fprintf(stderr, "%zd code objects\n", ncodes);
  Py_Finalize();
  return test_summary();
}
