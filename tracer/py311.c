/* Reading CPython 3.11's own structures from inside malloc: the thread
 * state of the allocating thread, its frames, their code objects, and
 * line numbers from a code object's location table.
 *
 * Compiled against 3.11's internal headers (Py_BUILD_CORE), so that every
 * offset is the compiler's, from the very structures the interpreter was
 * built with; python.c accepts an interpreter only if its Py_Version is
 * 3.11.1 or later and its _PyRuntime object has this file's
 * sizeof(_PyRuntimeState). Nothing here calls the interpreter (the link
 * test checks that libsnapmalloc.so refers to no Py symbol) or allocates:
 * the functions only load memory.
 *
 * What makes the loads safe (docs/python.md):
 * - The thread state is the one the interpreter keeps for this very thread
 *   in its thread-specific key (PyGILState_GetThisThreadState reads the
 *   same). The interpreter clears that key before it frees the state when
 *   the thread ends, and deletes the key at finalization before it frees
 *   the states. The one state freed under a live thread is a daemon
 *   thread's, by the finalizing thread: so while _PyRuntime._finalizing
 *   names another thread, nothing is read.
 * - A thread's frames change only when that thread runs Python code, which
 *   it is not doing while it is inside malloc; whether it holds the GIL
 *   does not matter. Since 3.11.1 (gh-99729) a frame leaves the chain
 *   before it is cleared.
 * - Each frame holds a strong reference to its code object, and the code
 *   object to its names and location table; the code's type is checked
 *   before anything else in it is read, and strings and bytes by type too.
 *   Location tables and names are immutable; the specialising interpreter
 *   rewrites instructions in place, which are never read here (an
 *   instruction's index is pointer arithmetic). */
#define NDEBUG 1 /* the headers' asserts would read objects before our checks do */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_code.h>
#include <internal/pycore_frame.h>
#include <internal/pycore_runtime.h>
#include <limits.h>
#include <pthread.h>

#include "tracer/python.h"

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030C0000
#error "tracer/py311.c needs the headers of CPython 3.11"
#endif

static uintptr_t thread311(const sm_py_rt_t *rt) {
  _PyRuntimeState *r = (_PyRuntimeState *)rt->runtime;
  Py_tss_t *key = &r->gilstate.autoTSSkey;
  if (!__atomic_load_n(&key->_is_initialized, __ATOMIC_ACQUIRE)) return 0;
  pthread_key_t k = __atomic_load_n(&key->_key, __ATOMIC_RELAXED);
  if (k >= PTHREAD_KEYS_MAX) return 0; /* glibc does not check the bound itself */
  PyThreadState *ts = pthread_getspecific(k);
  if (!ts) return 0;
  PyThreadState *fin = _PyRuntimeState_GetFinalizing(r);
  if (fin && fin != ts) return 0;
  return (uintptr_t)ts;
}

static bool is_code(const sm_py_rt_t *rt, const PyCodeObject *co) {
  return co && (uintptr_t)Py_TYPE(co) == rt->code_type;
}

/* The instruction a frame is at: prev_instr, counted in code units from
 * the start of its code (-1 before the first; tracemalloc and tracebacks
 * read the same field). Anything outside the code is reported as -1. */
static int32_t lasti_of(const _PyInterpreterFrame *f, const PyCodeObject *co) {
  intptr_t d = (intptr_t)((uintptr_t)f->prev_instr - (uintptr_t)_PyCode_CODE(co));
  if (d % (intptr_t)sizeof(_Py_CODEUNIT)) return -1;
  d /= (intptr_t)sizeof(_Py_CODEUNIT);
  return d >= 0 && d < Py_SIZE(co) ? (int32_t)d : -1;
}

/* Every C-level call of the eval loop has a _PyCFrame of its own on the C
 * stack, linked from the thread state (innermost first) down to the state's
 * root_cframe; it runs the frames from its current_frame back to the one
 * marked is_entry, the frame it was called with. A frame that has not
 * reached its first instruction (still making its cells: "incomplete", as
 * _PyFrame_IsIncomplete says) is left out, as the interpreter's tracebacks
 * and tracemalloc leave it out: what it allocates belongs to its caller's
 * line. A call whose frames are all left out still has its anchor, so that
 * its C frame is replaced, by nothing. */
static void stack311(const sm_py_rt_t *rt, uintptr_t tsu, unsigned max, sm_py_stack_t *st) {
  PyThreadState *ts = (PyThreadState *)tsu;
  const _PyCFrame *root = &ts->root_cframe;
  uintptr_t last = 0;
  st->nevals = st->nframes = 0;
  st->more = false;
  st->first[0] = 0;
  if (max > SM_SNAP_MAX_FRAMES) max = SM_SNAP_MAX_FRAMES;
  unsigned steps = 0;
  for (const _PyCFrame *cf = ts->cframe; cf && cf != root; cf = cf->previous) {
    if (st->nevals == SM_PY_MAX_EVALS || st->nframes == max || (uintptr_t)cf <= last) {
      st->more = true; /* (a chain that does not climb the stack is not followed) */
      return;
    }
    const _PyInterpreterFrame *f = cf->current_frame;
    if (!f) continue; /* (not a call that is running frames) */
    bool entry = false;
    for (; f && !entry; f = f->previous) {
      if (++steps > SM_PY_MAX_STEPS) { /* (a chain this long is not a real one) */
        st->more = true;
        break;
      }
      const PyCodeObject *co = f->f_code;
      if (!is_code(rt, co)) {
        st->more = true; /* not what 3.11 puts there: stop reading */
        break;
      }
      entry = f->is_entry;
      if (f->owner != FRAME_OWNED_BY_GENERATOR && f->prev_instr < _PyCode_CODE(co) + co->_co_firsttraceable)
        continue; /* incomplete */
      if (st->nframes == max) {
        st->more = true;
        break;
      }
      st->frame[st->nframes].code = (uintptr_t)co;
      st->frame[st->nframes].lasti = lasti_of(f, co);
      st->nframes++;
    }
    last = (uintptr_t)cf;
    st->anchor[st->nevals] = last;
    st->first[++st->nevals] = (uint16_t)st->nframes;
    if (st->more) return;
  }
}

static bool ident311(const sm_py_rt_t *rt, uintptr_t code, sm_py_ident_t *id) {
  const PyCodeObject *co = (const PyCodeObject *)code;
  if (!is_code(rt, co)) return false;
  id->file = (uintptr_t)co->co_filename;
  id->name = (uintptr_t)co->co_qualname;
  id->table = (uintptr_t)co->co_linetable;
  id->firstline = co->co_firstlineno;
  const PyBytesObject *t = (const PyBytesObject *)co->co_linetable;
  bool ok = t && (uintptr_t)Py_TYPE(t) == rt->bytes_type && Py_SIZE(t) >= 0 && Py_SIZE(t) <= UINT32_MAX;
  id->table_len = ok ? (uint32_t)Py_SIZE(t) : 0;
  id->table_data = ok ? (const uint8_t *)t->ob_sval : NULL;
  return true;
}

/* A str as UTF-8 (sm_py_utf8), truncated to cap bytes; "?" for anything
 * but a ready, compact str (code objects' names and file names are). */
static uint32_t utf8_of(const sm_py_rt_t *rt, const PyObject *o, char *out, uint32_t cap) {
  const PyASCIIObject *a = (const PyASCIIObject *)o;
  if (!o || (uintptr_t)Py_TYPE(o) != rt->unicode_type || !a->state.ready || !a->state.compact || a->length < 0) {
    out[0] = '?';
    return 1;
  }
  const void *data = a->state.ascii ? (const void *)(a + 1) : (const void *)((const PyCompactUnicodeObject *)o + 1);
  return sm_py_utf8(a->state.kind, data, (size_t)a->length, out, cap);
}

static bool describe311(const sm_py_rt_t *rt, uintptr_t code, int32_t lasti, sm_py_desc_t *d) {
  const PyCodeObject *co = (const PyCodeObject *)code;
  if (!is_code(rt, co)) return false;
  d->file_len = utf8_of(rt, co->co_filename, d->text, SM_PY_FILE_MAX);
  d->name_len = utf8_of(rt, co->co_qualname, d->text + d->file_len, SM_PY_NAME_MAX);
  const PyBytesObject *t = (const PyBytesObject *)co->co_linetable;
  int line = -1;
  if (t && (uintptr_t)Py_TYPE(t) == rt->bytes_type && Py_SIZE(t) >= 0)
    line = sm_py_line((const uint8_t *)t->ob_sval, (size_t)Py_SIZE(t), co->co_firstlineno, lasti);
  d->line = line > 0 ? (uint32_t)line : 0;
  return true;
}

const sm_py_ops_t sm_py311_ops = {
    .version = 0x030b,
    .runtime_size = sizeof(_PyRuntimeState),
    .thread = thread311,
    .stack = stack311,
    .ident = ident311,
    .describe = describe311,
};
