/* The symbolizer's parts (symbolize.h is its API), one concern a file:
 *   symbolize.c  the API: modules and handles, the per-address cache, and
 *                resolve(), which puts an address's frames together
 *   sym_elf.c    an ELF file: opening it with libdwfl, its executable
 *                segments, its symbol table
 *   sym_dwarf.c  the DWARF index: units, functions, inline chains, source
 *                paths and function names
 *   sym_debug.c  the search for separate debug files (build-id, debuglink,
 *                dwz alternate files), as libdwfl's callbacks
 *   spans.c      the address-span index the ELF and DWARF parts share
 *   intern.c     the string table every returned string lives in
 * Naming: functions used across these files are sm_sym<part>_<verb>
 * (sm_symelf_open, sm_symdw_chain); a file's own helpers have no prefix;
 * types are sm_sym*_t. Out of memory: util.c's x* functions, the tool's
 * one policy (one line, exit 2); nothing here returns NULL for it. */
#ifndef SM_TOOLS_SYM_INTERNAL_H
#define SM_TOOLS_SYM_INTERNAL_H

#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <sys/stat.h>

#include "tools/intern.h"
#include "tools/spans.h"
#include "tools/symbolize.h"

#define SYS_DEBUG_DIR "/usr/lib/debug"
#define MAX_CHAIN 64       /* deepest inline chain kept */

/* A compilation unit of the DWARF index. */
typedef struct sm_symcu {
  Dwarf_Die cudie;   /* unit DIE: owner of the line table */
  Dwarf_Die topdie;  /* DIE whose subtree holds the functions (split unit) */
  bool indexed;
  sm_spans_t funcs;  /* idx -> fdies[] */
  Dwarf_Die *fdies;
  size_t nfdies, capfdies;
} sm_symcu_t;

typedef struct sm_symcache_slot {
  uint64_t addr;
  uint32_t first;  /* index into the symbolizer's frame array */
  uint16_t count;  /* frames (0: nothing known) */
  uint16_t used;
} sm_symcache_slot_t;

/* One file on disk (one inode), however many handles name it: a snapshot
 * may name one library under many spellings (a/./b, a//b, links), and each
 * would otherwise load its symbols and DWARF again. */
typedef struct sm_symfile {
  sm_symbolizer_t *owner;
  char *path;        /* the first name it was opened by */
  dev_t dev;
  ino_t ino;

  sm_sym_status_t status; /* OK or MISSING (not an ELF file libdwfl can read) */
  Dwfl *dwfl;
  Dwfl_Module *mod;
  uint64_t bias;     /* dwfl address = file vaddr + bias */
  uint8_t *file_id;  /* build-id of the file at path */
  size_t file_id_len;
  uint64_t (*segs)[2];  /* executable PT_LOAD ranges, file vaddrs */
  size_t nsegs;

  bool dw_tried;
  Dwarf *dw;
  uint64_t dw_off;   /* DWARF address = file vaddr + dw_off (mod 2^64) */
  sm_symcu_t *cus;
  size_t ncus;
  sm_spans_t cu_spans;  /* idx -> cus[] */

  bool syms_tried;
  sm_spans_t syms;      /* ELF symbols, dwfl addresses; idx -> symnames[] */
  const char **symnames;

  sm_symcache_slot_t *cache;
  size_t cache_cap, cache_count;
} sm_symfile_t;

typedef struct sm_symhandle sm_symhandle_t; /* symbolize.c */

struct sm_symbolizer {
  sm_symhandle_t **hands;
  size_t nhands, caphands;
  int *handtab;  /* open addressing: index into hands by (path, build-id), -1 free */
  size_t handtab_cap;
  sm_symfile_t **mods;  /* the files */
  size_t nmods, capmods;
  int *filetab;  /* open addressing: index into mods by (dev, inode), -1 free */
  size_t filetab_cap;
  char **dirs;  /* debug directories, SNAPMALLOC_DEBUG_DIRS first */
  size_t ndirs;
  sm_intern_t *strings;
  sm_sym_frame_t *frames;
  size_t nframes, capframes;
};

/* symbolize.c */
/* name demangled if it is a mangled C++ name, interned (memoised). */
const char *sm_sym_demangled(sm_symbolizer_t *s, const char *name);
/* Opens path read-only if it is a regular file (st filled), or -1: the
 * path comes from an untrusted snapshot or a file it names. */
int sm_sym_open(const char *path, struct stat *st);

/* sym_elf.c */
/* Reads the file open on fd (consumed) and decides m->status. */
void sm_symelf_open(sm_symfile_t *m, int fd);
void sm_symelf_close(sm_symfile_t *m);
/* Whether vaddr lies in an executable segment (true without program headers). */
bool sm_symelf_has_code(const sm_symfile_t *m, uint64_t vaddr);
/* Name of the ELF symbol containing addr (dwfl address), demangled, or
 * NULL; *raw (if raw) gets the name as it is in the table. */
const char *sm_symelf_name(sm_symbolizer_t *s, sm_symfile_t *m, uint64_t addr, const char **raw);

/* sym_dwarf.c */
/* Indexes the file's units (once; m->dw stays NULL without DWARF). */
void sm_symdw_init(sm_symfile_t *m);
/* The unit holding DWARF address pc, its functions indexed; or NULL. */
sm_symcu_t *sm_symdw_unit(sm_symfile_t *m, uint64_t pc);
/* Fills chain[0..n) for pc in cu: the concrete function, then each inlined
 * subroutine inward; returns n (0: no function holds pc). */
int sm_symdw_chain(sm_symcu_t *cu, uint64_t pc, Dwarf_Die *chain);
const char *sm_symdw_source_path(sm_symbolizer_t *s, Dwarf_Die *cudie, const char *raw);
void sm_symdw_call_site(sm_symbolizer_t *s, Dwarf_Die *inl, const char **file, int *line);
/* A function DIE's name; *from_mangled: it came from a mangled linkage name. */
const char *sm_symdw_function_name(sm_symbolizer_t *s, Dwarf_Die *die, bool *from_mangled);

/* sym_debug.c: libdwfl's callbacks, with our own debug-file search. */
extern const Dwfl_Callbacks sm_symdebug_callbacks;

#endif
