/* Python frames in native traces: what the tracer's generic files
 * (modules.c, capture.c, unwind.c, pyframes.c, snapshot.c) share with the
 * one file per CPython version that reads the interpreter's structures
 * (py311.c, py312.c, py313.c). Plain C types only: the version files are
 * compiled against that version's internal headers, which must not meet
 * the allocator's. docs/python.md says how the pieces fit. */
#ifndef SM_TRACER_PYTHON_H
#define SM_TRACER_PYTHON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tracer/snapfmt.h"

/* A Python frame in a trace is a tagged value where a native frame holds a
 * return address: user-space addresses never have the top bit set. The
 * low 32 bits are the frame's id in pyframes.c's table (from 1). */
#define SM_PY_FRAME_TAG ((uintptr_t)1 << 63)
/* In a native skeleton (capture.c): the place of one C-level call of the
 * interpreter's eval loop, which the Python frames it runs replace. */
#define SM_PY_EVAL_MARK (SM_PY_FRAME_TAG | ((uintptr_t)1 << 62))
static inline bool sm_py_is_tagged(uintptr_t frame) { return (frame & SM_PY_FRAME_TAG) != 0; }
/* A trace's module slot for a tagged frame (table.c, snapshot.c). */
#define SM_PY_MODULE_SLOT 0xfffeu

/* The default depth in a CPython process (python.c). */
#define SM_PY_DEPTH 64

/* C-level eval calls read per capture (more are treated as plain frames of
 * the interpreter: dropped, see unwind.c). */
#define SM_PY_MAX_EVALS 32
/* Frames a reader follows at most per capture, incomplete ones included
 * (a bound on a chain that should end long before). */
#define SM_PY_MAX_STEPS 100000

/* One Python frame as the capture reads it: its code object and the index
 * (in code units) of the instruction it is at (-1: not started). */
typedef struct sm_py_frame {
  uintptr_t code;
  int32_t lasti;
} sm_py_frame_t;

/* This thread's Python stack, innermost first, grouped by the C-level eval
 * call that runs each frame. */
typedef struct sm_py_stack {
  unsigned nevals;                       /* eval calls read */
  bool more;                             /* the stack went on past what was read */
  uintptr_t anchor[SM_PY_MAX_EVALS];     /* an address inside each eval call's C frame, ascending */
  uint16_t first[SM_PY_MAX_EVALS + 1];   /* eval i runs frame[first[i] .. first[i+1]) */
  unsigned nframes;
  sm_py_frame_t frame[SM_SNAP_MAX_FRAMES];
} sm_py_stack_t;

/* What the per-thread cache of frames (pyframes.c) checks a code object
 * against: the addresses of the objects it holds, its first line, and its
 * location table's bytes (the lines are a function of those and the first
 * line). Addresses alone would not do: a dead code object's address, and
 * its objects', are reused by the next one (pyframes.c says how it knows). */
typedef struct sm_py_ident {
  uintptr_t file, name, table;
  int32_t firstline;
  uint32_t table_len;        /* bytes of the location table (0: none readable) */
  const uint8_t *table_data; /* its bytes, live while the code object is */
} sm_py_ident_t;

/* One frame described, laid out as pyframes.c's table keys it (so that
 * it needs no copy): the line (0 unknown, as tracemalloc reports it), the
 * lengths, then the file name and the function name, UTF-8, not NUL-ended,
 * one after the other. */
#define SM_PY_FILE_MAX SM_SNAP_PY_FILE_MAX
#define SM_PY_NAME_MAX SM_SNAP_PY_NAME_MAX
typedef struct sm_py_desc {
  uint32_t line;
  uint32_t file_len, name_len;
  char text[SM_PY_FILE_MAX + SM_PY_NAME_MAX]; /* the file name, then the function name */
} sm_py_desc_t;
#define SM_PY_DESC_FIXED 12u /* bytes before text */
_Static_assert(offsetof(sm_py_desc_t, text) == SM_PY_DESC_FIXED, "a desc is a key without padding");

typedef struct sm_py_rt sm_py_rt_t;

/* One supported CPython version's reader. Each function reads only memory
 * the allocating thread can prove live (its own thread state and frames,
 * and the objects they hold references to), never calls into the
 * interpreter and never allocates. */
typedef struct sm_py_ops {
  unsigned version;      /* major << 8 | minor */
  size_t runtime_size;   /* sizeof the _PyRuntime object in that version's headers */
  /* This thread's Python thread state, or 0 (none, not yet, finalizing). */
  uintptr_t (*thread)(const sm_py_rt_t *rt);
  /* Reads the thread's stack into st, at most max_frames frames. */
  void (*stack)(const sm_py_rt_t *rt, uintptr_t tstate, unsigned max_frames, sm_py_stack_t *st);
  /* False when code is not a code object. */
  bool (*ident)(const sm_py_rt_t *rt, uintptr_t code, sm_py_ident_t *id);
  bool (*describe)(const sm_py_rt_t *rt, uintptr_t code, int32_t lasti, sm_py_desc_t *d);
} sm_py_ops_t;

/* The interpreter found in this process (python.c). */
struct sm_py_rt {
  uintptr_t runtime;                           /* &_PyRuntime */
  uintptr_t code_type, unicode_type, bytes_type; /* &PyCode_Type, &PyUnicode_Type, &PyBytes_Type */
  uintptr_t lo, hi;                            /* the interpreter object's address range */
  uint32_t module;                             /* its index in the module map */
  unsigned long version;                       /* Py_Version (PY_VERSION_HEX) */
  const sm_py_ops_t *ops;
};

/* ---- python.c */
/* Set (once, under mod_lock) when a supported interpreter was found and
 * python=1: captures then read Python frames. */
extern bool sm_py_on;
extern sm_py_rt_t sm_py_rt;
/* Lookups in a loaded object's dynamic symbol table (modules.c): the
 * address and size of a defined symbol. */
struct dl_phdr_info;
bool sm_module_symbol(const struct dl_phdr_info *info, const char *name, uintptr_t *addr, size_t *size);
/* From modules.c, for each newly loaded object (mod_lock held, inside
 * dl_iterate_phdr): whether it is a CPython interpreter, and which. */
void sm_python_probe(const struct dl_phdr_info *info, uint32_t module, uintptr_t lo, uintptr_t hi);
/* From the library's constructor: PYTHONMALLOC=malloc for a traced Python
 * process that did not set it. */
void sm_python_environ(void);
/* After a dlclose (preload/dl.c): if the interpreter's object is no longer
 * loaded, stop reading it (takes the loader's lock). */
void sm_python_unloaded(void);
/* When tracing turns on with no depth given (tracer.c): an interpreter's
 * frames being read, the depth becomes SM_PY_DEPTH if it was less; true if
 * it changed. */
bool sm_python_deepen(void);

/* ---- pycommon.c: what the readers share */
/* The line of instruction lasti (code units; -1: not started, which gives
 * firstline) from a location table of 3.11 to 3.13; -1 for no line. */
int sm_py_line(const uint8_t *table, size_t len, int firstline, int lasti);
/* len code points of `kind` bytes each (1, 2 or 4) at data, as UTF-8 into
 * out, at most cap bytes (cut at a character); returns the bytes written. */
uint32_t sm_py_utf8(unsigned kind, const void *data, size_t len, char *out, uint32_t cap);

/* ---- py311.c, py312.c, py313.c: one reader per version, each built when
 * that version's headers were found (tracer/meson.build) */
extern const sm_py_ops_t sm_py311_ops;
extern const sm_py_ops_t sm_py312_ops;
extern const sm_py_ops_t sm_py313_ops;

#endif
