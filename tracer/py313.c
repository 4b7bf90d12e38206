/* Reading CPython 3.13's structures from inside malloc: the allocating
 * thread's state and frames, as py311.c reads 3.11's (its comment says
 * why each load is safe; the same holds here). Compiled against 3.13's
 * internal headers; python.c uses it only for an interpreter whose
 * Py_Version is 3.13 and whose _PyRuntime has this file's size, which a
 * free-threaded build's does not.
 *
 * What changed from 3.12: no _PyCFrame. The thread state points at its
 * innermost frame (current_frame), and each C-level call of the eval loop
 * puts an entry frame of its own on the C stack (owner
 * FRAME_OWNED_BY_CSTACK, no code object) between the frames it runs and
 * its caller's: that entry frame is the call's anchor. A frame holds its
 * code in f_executable and the instruction it is at in instr_ptr (no
 * longer the one before it). */
#define NDEBUG 1 /* the headers' asserts would read objects before our checks do */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_code.h>
#include <internal/pycore_frame.h>
#include <internal/pycore_runtime.h>
#include <limits.h>
#include <pthread.h>

#include "tracer/python.h"

#if PY_VERSION_HEX < 0x030D0000 || PY_VERSION_HEX >= 0x030E0000
#error "tracer/py313.c needs the headers of CPython 3.13"
#endif
#ifdef Py_GIL_DISABLED
#error "tracer/py313.c reads the default (GIL) build of 3.13, not the free-threaded one"
#endif

static uintptr_t thread313(const sm_py_rt_t *rt) {
  _PyRuntimeState *r = (_PyRuntimeState *)rt->runtime;
  Py_tss_t *key = &r->autoTSSkey;
  if (!__atomic_load_n(&key->_is_initialized, __ATOMIC_ACQUIRE)) return 0;
  pthread_key_t k = __atomic_load_n(&key->_key, __ATOMIC_RELAXED);
  if (k >= PTHREAD_KEYS_MAX) return 0; /* glibc does not check the bound itself */
  PyThreadState *ts = pthread_getspecific(k);
  if (!ts) return 0;
  PyThreadState *fin = _PyRuntimeState_GetFinalizing(r);
  if (fin && fin != ts) return 0;
  return (uintptr_t)ts;
}

static const PyCodeObject *code_of(const sm_py_rt_t *rt, const _PyInterpreterFrame *f) {
  const PyObject *x = f->f_executable;
  return x && (uintptr_t)Py_TYPE(x) == rt->code_type ? (const PyCodeObject *)x : NULL;
}

static int32_t lasti_of(const _PyInterpreterFrame *f, const PyCodeObject *co) {
  intptr_t d = (intptr_t)((uintptr_t)f->instr_ptr - (uintptr_t)_PyCode_CODE(co));
  if (d % (intptr_t)sizeof(_Py_CODEUNIT)) return -1;
  d /= (intptr_t)sizeof(_Py_CODEUNIT);
  return d >= 0 && d < Py_SIZE(co) ? (int32_t)d : -1;
}

/* The chain from current_frame, cut into groups by the entry frames: the
 * frames before an entry frame are the ones its eval call runs. */
static void stack313(const sm_py_rt_t *rt, uintptr_t tsu, unsigned max, sm_py_stack_t *st) {
  const PyThreadState *ts = (const PyThreadState *)tsu;
  uintptr_t last = 0;
  st->nevals = st->nframes = 0;
  st->more = false;
  st->first[0] = 0;
  if (max > SM_SNAP_MAX_FRAMES) max = SM_SNAP_MAX_FRAMES;
  unsigned steps = 0;
  for (const _PyInterpreterFrame *f = ts->current_frame; f; f = f->previous) {
    if (++steps > SM_PY_MAX_STEPS) { /* (a chain this long is not a real one) */
      st->more = true;
      break;
    }
    if (f->owner == FRAME_OWNED_BY_CSTACK) {
      if (st->nevals == SM_PY_MAX_EVALS || (uintptr_t)f <= last) {
        st->more = true; /* (a chain that does not climb the stack is not followed) */
        break;
      }
      last = (uintptr_t)f;
      st->anchor[st->nevals] = last;
      st->first[++st->nevals] = (uint16_t)st->nframes;
      if (st->more) return; /* the call whose frames filled the depth has its anchor */
      continue;
    }
    if (st->more) continue; /* full: only the entry frame of this call is wanted */
    const PyCodeObject *co = code_of(rt, f);
    if (!co) {
      st->more = true; /* not what 3.13 puts there: stop reading */
      break;
    }
    if (f->owner != FRAME_OWNED_BY_GENERATOR && f->instr_ptr < _PyCode_CODE(co) + co->_co_firsttraceable)
      continue; /* incomplete, as tracebacks and tracemalloc leave it out */
    if (st->nframes == max) {
      st->more = true;
      continue;
    }
    st->frame[st->nframes].code = (uintptr_t)co;
    st->frame[st->nframes].lasti = lasti_of(f, co);
    st->nframes++;
  }
  /* Frames read after the last entry frame found belong to no eval call
   * that was found: they are not kept. */
  st->nframes = st->first[st->nevals];
}

static bool ident313(const sm_py_rt_t *rt, uintptr_t code, sm_py_ident_t *id) {
  const PyCodeObject *co = (const PyCodeObject *)code;
  if (!co || (uintptr_t)Py_TYPE(co) != rt->code_type) return false;
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

static uint32_t utf8_of(const sm_py_rt_t *rt, const PyObject *o, char *out, uint32_t cap) {
  const PyASCIIObject *a = (const PyASCIIObject *)o;
  if (!o || (uintptr_t)Py_TYPE(o) != rt->unicode_type || !a->state.compact || a->length < 0) {
    out[0] = '?';
    return 1;
  }
  const void *data = a->state.ascii ? (const void *)(a + 1) : (const void *)((const PyCompactUnicodeObject *)o + 1);
  return sm_py_utf8(a->state.kind, data, (size_t)a->length, out, cap);
}

static bool describe313(const sm_py_rt_t *rt, uintptr_t code, int32_t lasti, sm_py_desc_t *d) {
  const PyCodeObject *co = (const PyCodeObject *)code;
  if (!co || (uintptr_t)Py_TYPE(co) != rt->code_type) return false;
  d->file_len = utf8_of(rt, co->co_filename, d->text, SM_PY_FILE_MAX);
  d->name_len = utf8_of(rt, co->co_qualname, d->text + d->file_len, SM_PY_NAME_MAX);
  const PyBytesObject *t = (const PyBytesObject *)co->co_linetable;
  int line = -1;
  if (t && (uintptr_t)Py_TYPE(t) == rt->bytes_type && Py_SIZE(t) >= 0)
    line = sm_py_line((const uint8_t *)t->ob_sval, (size_t)Py_SIZE(t), co->co_firstlineno, lasti);
  d->line = line > 0 ? (uint32_t)line : 0;
  return true;
}

const sm_py_ops_t sm_py313_ops = {
    .version = 0x030d,
    .runtime_size = sizeof(_PyRuntimeState),
    .thread = thread313,
    .stack = stack313,
    .ident = ident313,
    .describe = describe313,
};
