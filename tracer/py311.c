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
  for (const _PyCFrame *cf = ts->cframe; cf && cf != root; cf = cf->previous) {
    if (st->nevals == SM_PY_MAX_EVALS || st->nframes == max || (uintptr_t)cf <= last) {
      st->more = true; /* (a chain that does not climb the stack is not followed) */
      return;
    }
    const _PyInterpreterFrame *f = cf->current_frame;
    if (!f) continue; /* (not a call that is running frames) */
    bool entry = false;
    for (; f && !entry; f = f->previous) {
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
  return true;
}

/* ---- strings */

static uint32_t put_utf8(char *out, uint32_t n, uint32_t cap, uint32_t cp) {
  uint8_t b[4];
  uint32_t k;
  if (cp > 0x10FFFF) cp = 0xFFFD;
  if (cp < 0x80) {
    b[0] = (uint8_t)cp;
    k = 1;
  } else if (cp >= 0xDC80 && cp <= 0xDCFF) {
    /* How Python keeps a file name's undecodable byte (surrogateescape):
     * give the byte back. */
    b[0] = (uint8_t)(cp - 0xDC00);
    k = 1;
  } else if (cp < 0x800) {
    b[0] = (uint8_t)(0xC0 | (cp >> 6));
    b[1] = (uint8_t)(0x80 | (cp & 0x3F));
    k = 2;
  } else if (cp < 0x10000) {
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD; /* other lone surrogates */
    b[0] = (uint8_t)(0xE0 | (cp >> 12));
    b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (uint8_t)(0x80 | (cp & 0x3F));
    k = 3;
  } else {
    b[0] = (uint8_t)(0xF0 | (cp >> 18));
    b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (uint8_t)(0x80 | (cp & 0x3F));
    k = 4;
  }
  if (n + k > cap) return UINT32_MAX; /* full: stop at a character boundary */
  for (uint32_t i = 0; i < k; i++) out[n + i] = (char)b[i];
  return n + k;
}

/* A str as UTF-8, truncated to cap bytes; "?" for anything but a ready,
 * compact str (code objects' names and file names always are). */
static uint32_t utf8_of(const sm_py_rt_t *rt, const PyObject *o, char *out, uint32_t cap) {
  const PyASCIIObject *a = (const PyASCIIObject *)o;
  if (!o || (uintptr_t)Py_TYPE(o) != rt->unicode_type || !a->state.ready || !a->state.compact || a->length < 0) {
    out[0] = '?';
    return 1;
  }
  const void *data = a->state.ascii ? (const void *)(a + 1) : (const void *)((const PyCompactUnicodeObject *)o + 1);
  unsigned kind = a->state.kind;
  uint32_t n = 0;
  for (Py_ssize_t i = 0; i < a->length; i++) {
    uint32_t cp;
    if (kind == PyUnicode_1BYTE_KIND) cp = ((const Py_UCS1 *)data)[i];
    else if (kind == PyUnicode_2BYTE_KIND) cp = ((const Py_UCS2 *)data)[i];
    else if (kind == PyUnicode_4BYTE_KIND) cp = ((const Py_UCS4 *)data)[i];
    else break;
    uint32_t next = put_utf8(out, n, cap, cp);
    if (next == UINT32_MAX) break;
    n = next;
  }
  return n;
}

/* ---- lines */

/* A location table (Objects/locations.md in CPython's source) is a run of
 * entries, each starting with a byte that has its top bit set: bits 3-6
 * are the entry's form, bits 0-2 its length in code units minus one. Only
 * some forms move the line: 13 (no columns) and 14 (long) by a signed
 * varint that follows, 11 and 12 by one and two; 15 means "no location"
 * for its instructions without moving the line. Varints are 6 bits a
 * byte, low bits first, bit 6 set on every byte but the last. */
static int varint(const uint8_t **p, const uint8_t *end, uint32_t *out) {
  uint32_t v = 0;
  for (unsigned shift = 0; *p < end && shift < 32; shift += 6) {
    uint8_t b = *(*p)++;
    v |= (uint32_t)(b & 63) << shift;
    if (!(b & 64)) {
      *out = v;
      return 1;
    }
  }
  return 0;
}

int sm_py311_line(const uint8_t *table, size_t len, int firstline, int lasti) {
  if (lasti < 0) return firstline; /* not started: the interpreter says the def line */
  const uint8_t *p = table, *end = table + len;
  int line = firstline;
  long at = 0;
  while (p < end) {
    uint8_t head = *p++;
    if (!(head & 128)) return -1; /* not an entry's first byte */
    unsigned form = (head >> 3) & 15;
    long units = (head & 7) + 1;
    uint32_t v;
    const uint8_t *q = p;
    if (form == 13 || form == 14) {
      if (!varint(&q, end, &v)) return -1;
      line += (v & 1) ? -(int)(v >> 1) : (int)(v >> 1);
    } else if (form == 11 || form == 12) {
      line += (int)form - 10;
    }
    if (lasti < at + units) return form == 15 ? -1 : line;
    at += units;
    while (p < end && !(*p & 128)) p++; /* the rest of the entry: columns */
  }
  return -1; /* past the table */
}

static bool describe311(const sm_py_rt_t *rt, uintptr_t code, int32_t lasti, sm_py_desc_t *d) {
  const PyCodeObject *co = (const PyCodeObject *)code;
  if (!is_code(rt, co)) return false;
  d->file_len = utf8_of(rt, co->co_filename, d->file, sizeof d->file);
  d->name_len = utf8_of(rt, co->co_qualname, d->name, sizeof d->name);
  const PyBytesObject *t = (const PyBytesObject *)co->co_linetable;
  int line = -1;
  if (t && (uintptr_t)Py_TYPE(t) == rt->bytes_type && Py_SIZE(t) >= 0)
    line = sm_py311_line((const uint8_t *)t->ob_sval, (size_t)Py_SIZE(t), co->co_firstlineno, lasti);
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
