/* Offline symbolizer for snapmalloc's command-line tool.
 *
 * A traced frame is (module, offset): the module is identified by its path
 * and GNU build-id, the offset is an address in the ELF file's own virtual
 * address space (return address minus load bias).  This module turns such
 * frames into function / file / line, expanding inlined calls, using libdw
 * (elfutils) for DWARF and the ELF symbol tables for everything else.
 *
 * Not thread-safe: use one symbolizer per thread, or lock around it.
 * The implementation needs libdw, libelf and libstdc++ (for __cxa_demangle)
 * at link time.
 */
#ifndef SM_TOOLS_SYMBOLIZE_H
#define SM_TOOLS_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sm_sym_frame {
  const char *function; /* demangled name, or NULL if unknown */
  const char *file;     /* source file path as recorded in DWARF (absolute if comp_dir known), or NULL */
  int line;             /* 0 if unknown */
  bool inlined;         /* true: this frame was inlined into the next one in the array */
} sm_sym_frame_t;

typedef enum sm_sym_status {
  SM_SYM_OK = 0,          /* file found, build-id matches (or the snapshot had none) */
  SM_SYM_MISSING = 1,     /* file not found / not readable / not ELF */
  SM_SYM_MISMATCH = 2,    /* file found but its build-id differs from the recorded one */
} sm_sym_status_t;

typedef struct sm_symbolizer sm_symbolizer_t;

/* Creates a symbolizer.  The environment variable SNAPMALLOC_DEBUG_DIRS
 * (colon separated directories, each searched as DIR/.build-id/xx/rest.debug
 * and DIR/<dir of the module>/<debuglink name>) is read here, once; the
 * system directory /usr/lib/debug is always searched after those.
 * Never returns NULL: running out of memory ends the tool with one line and
 * exit status 2, as util.c's x* functions do (sym_internal.h). */
sm_symbolizer_t *sm_sym_new(void);

/* Frees the symbolizer, its open files and every string it returned. */
void sm_sym_free(sm_symbolizer_t *s);

/* Registers a module; returns its handle (>= 0), or -1 when path is NULL.
 * Registering the same path with the same build-id again returns the same
 * handle.  The file is opened lazily (by the first
 * sm_sym_status or sm_sym_lookup on it).  build_id may be NULL/0, which
 * means "accept whatever file is at path". */
int sm_sym_add_module(sm_symbolizer_t *s, const char *path, const uint8_t *build_id, size_t build_id_len);

/* Status of a module (opens it if not done yet).  An invalid handle gives
 * SM_SYM_MISSING. */
sm_sym_status_t sm_sym_status(sm_symbolizer_t *s, int module);

/* Symbolizes vaddr (file virtual address) in module.  If is_return_address,
 * looks up vaddr - 1 (so the line is the call's line, not the next one).
 * Fills out[0..n-1], innermost first: inline frames first (inlined=true), the
 * real (outermost) function last (inlined=false).  Returns n >= 1 when
 * anything is known (at least a symbol-table name), 0 when nothing is (the
 * caller then prints module+offset).  Never returns frames for a
 * SM_SYM_MISMATCH or SM_SYM_MISSING module, nor for an address outside the
 * module's executable segments (returns 0).
 * If the inline chain is deeper than max, the innermost max-1 frames and the
 * outermost (real) function are returned.
 * Results are cached per (module, address); strings stay valid until
 * sm_sym_free. */
int sm_sym_lookup(sm_symbolizer_t *s, int module, uint64_t vaddr, bool is_return_address, sm_sym_frame_t *out, int max);

#ifdef __cplusplus
}
#endif

#endif
