/* Reading snapshot files: every field is validated (magic, version,
 * checksum, every count, length and index) before anything is believed. */
#ifndef SM_TOOLS_SNAPREAD_H
#define SM_TOOLS_SNAPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tracer/snapfmt.h"

/* Limits on what the reader accepts (docs/snapshot-format.md): a snapshot
 * is untrusted input, and these keep the tool's memory and time in
 * proportion to what a real snapshot can hold. */
#define SM_SNAP_MAX_FILE (1ull << 30)     /* bytes in a snapshot file */
#define SM_SNAP_MAX_PATH 4095u            /* bytes in a module or program path (PATH_MAX - 1) */
#define SM_SNAP_MAX_MODULES 65536u        /* modules (the tracer's table holds 4096) */
#define SM_SNAP_MAX_TRACES (1u << 22)     /* trace records */
#define SM_SNAP_MAX_TOTAL INT64_MAX       /* live bytes or blocks summed over traces, per class */
#define SM_SNAP_MAX_PYFRAMES (1u << 22)   /* Python frames (the tracer's table holds 4M) */

typedef struct sm_snap_module {
  uint64_t bias, start, end;
  char *path;              /* NUL-terminated copy */
  uint8_t *build_id;       /* points into the file buffer */
  uint32_t build_id_len;
} sm_snap_module_t;

typedef struct sm_snap_frame {
  uint32_t module;         /* index, SM_SNAP_NO_MODULE, or SM_SNAP_PY_MODULE */
  uint64_t offset;         /* return address - module bias (raw address without module; a
                              Python frame's index in sm_snap_t.pyframes) */
} sm_snap_frame_t;

/* A Python frame (PYFRAMES, version 3). */
typedef struct sm_snap_pyframe {
  char *file;              /* NUL-terminated copies */
  char *function;
  uint32_t line;           /* 0: unknown */
} sm_snap_pyframe_t;

typedef struct sm_snap_trace {
  uint32_t id;
  uint16_t nframes, flags;
  uint64_t size, count;
  uint64_t leak[SM_LEAK_CLASSES][2]; /* (size, count) per class */
  /* Version 2 on (zero in a version-1 file): live bytes and blocks when traced
   * memory was at its peak, and the flow since tracing started or the last
   * peak reset: blocks and bytes allocated, blocks freed by their thread
   * before it allocated again (temporary). */
  uint64_t peak_size, peak_count;
  uint64_t allocations, allocated, temporary;
  sm_snap_frame_t *frames;           /* innermost first */
} sm_snap_trace_t;

typedef struct sm_snap {
  char *path;
  uint32_t version;        /* format version of the file (1 to 3) */
  bool has_flow;           /* version 2 on: the traces' peak and flow fields are known */
  uint64_t peak_rss;       /* version 2 on: the process's peak RSS (VmHWM), bytes; 0 if unknown */
  uint64_t pid, time_ns, traced_current, traced_peak, rss, heap_mapped, heap_inuse, meta_mapped;
  uint64_t sequence, sample_bytes;
  uint32_t depth, flags;
  char *program, *options;
  char *cmdline;           /* arguments separated by NUL */
  size_t cmdline_len;
  sm_snap_module_t *modules;
  uint32_t nmodules;
  sm_snap_trace_t *traces;
  size_t ntraces;
  sm_snap_frame_t *frames_; /* version 3: the FRAMES section, which traces' frames are copied from */
  uint32_t nframes_;
  sm_snap_pyframe_t *pyframes; /* version 3: the PYFRAMES section (NULL: none) */
  uint32_t npyframes;
  uint32_t py_module;      /* the interpreter's module index, or SM_SNAP_NO_MODULE */
  uint32_t py_version;     /* its PY_VERSION_HEX; 0 without PYFRAMES */
  uint8_t *modules_buffer_; /* the file's bytes when read by sm_snap_read (build-ids point here) */
} sm_snap_t;

/* Reads and validates path, which must be a regular file of at most
 * SM_SNAP_MAX_FILE bytes (never a FIFO or a device: see sm_open_regular).
 * On failure returns -1 and writes one line (without the file name)
 * describing what is wrong into err. */
int sm_snap_read(const char *path, sm_snap_t *snap, char *err, size_t errlen);
/* Same, from a buffer (used by the fuzzer). The buffer must outlive snap. */
int sm_snap_parse(const uint8_t *data, size_t len, sm_snap_t *snap, char *err, size_t errlen);
void sm_snap_free(sm_snap_t *snap);

#endif
