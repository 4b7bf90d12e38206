/* The DWARF index of the symbolizer (sym_internal.h). Indexed lazily: at
 * first use the unit DIEs' address ranges (not .debug_aranges, which some
 * compilers omit); the first time an address falls in a unit, that unit's
 * functions (subprograms with code). A lookup then finds the unit, then the
 * function, and walks down the function's DIE tree through the lexical
 * blocks and inlined subroutines that contain the address: that path is
 * the inline chain. File names: relative names are joined to an absolute
 * DW_AT_comp_dir and absolute paths are cleaned lexically
 * (build/../src/x.c -> src/x.c); names relative to a relative comp_dir (as
 * in Debian's glibc) are left as recorded. */
#include <dwarf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/sym_internal.h"
#include "tools/util.h"

#define MAX_SCOPE_DEPTH 32 /* nesting of namespaces/classes we index through */

static void cu_add_func(sm_symcu_t *ci, Dwarf_Die *die) {
  Dwarf_Addr base, lo, hi;
  ptrdiff_t off = 0;
  bool added = false;
  uint32_t idx = (uint32_t)ci->nfdies;
  while ((off = dwarf_ranges(die, off, &base, &lo, &hi)) > 0) {
    if (hi <= lo) continue;
    if (!added) {
      if (ci->nfdies == ci->capfdies) {
        ci->capfdies = ci->capfdies ? ci->capfdies * 2 : 16;
        ci->fdies = xrealloc(ci->fdies, ci->capfdies * sizeof(*ci->fdies));
      }
      ci->fdies[ci->nfdies++] = *die;
      added = true;
    }
    sm_spans_push(&ci->funcs, lo, hi, 0, idx);
  }
}

static void cu_index_scope(sm_symcu_t *ci, Dwarf_Die *parent, int depth) {
  Dwarf_Die child;
  if (depth > MAX_SCOPE_DEPTH || dwarf_child(parent, &child) != 0) return;
  do {
    switch (dwarf_tag(&child)) {
      case DW_TAG_subprogram:
        cu_add_func(ci, &child);
        break;
      case DW_TAG_namespace:
      case DW_TAG_module:
      case DW_TAG_class_type:
      case DW_TAG_structure_type:
      case DW_TAG_union_type:
      case DW_TAG_interface_type:
        cu_index_scope(ci, &child, depth + 1);
        break;
      default:
        break;
    }
  } while (dwarf_siblingof(&child, &child) == 0);
}

static void cu_index(sm_symcu_t *ci) {
  if (ci->indexed) return;
  ci->indexed = true;
  cu_index_scope(ci, &ci->topdie, 0);
  sm_spans_finish(&ci->funcs);
}

/* Adds one unit to the index, if it has code: its address ranges, or
 * those of its functions (indexed now) when it has none. */
static void add_unit(sm_symfile_t *m, size_t *cap, Dwarf_Die *cudie, Dwarf_Die *topdie) {
  if (m->ncus == *cap) {
    *cap = *cap ? *cap * 2 : 64;
    m->cus = xrealloc(m->cus, *cap * sizeof(*m->cus));
  }
  sm_symcu_t *ci = &m->cus[m->ncus];
  memset(ci, 0, sizeof(*ci));
  ci->cudie = *cudie;
  ci->topdie = *topdie;
  uint32_t idx = (uint32_t)m->ncus;
  Dwarf_Addr base, lo, hi;
  ptrdiff_t off = 0;
  bool any = false;
  while ((off = dwarf_ranges(cudie, off, &base, &lo, &hi)) > 0) {
    if (hi <= lo) continue;
    sm_spans_push(&m->cu_spans, lo, hi, 0, idx);
    any = true;
  }
  if (!any) {
    cu_index(ci);
    for (size_t i = 0; i < ci->funcs.n; i++) {
      sm_spans_push(&m->cu_spans, ci->funcs.v[i].lo, ci->funcs.v[i].hi, 0, idx);
      any = true;
    }
  }
  if (any) {
    m->ncus++;
  } else {
    sm_spans_free(&ci->funcs);
    free(ci->fdies);
  }
}

void sm_symdw_init(sm_symfile_t *m) {
  if (m->dw_tried) return;
  m->dw_tried = true;
  Dwarf_Addr dwbias = 0;
  Dwarf *dw = dwfl_module_getdwarf(m->mod, &dwbias);
  if (!dw) return;
  m->dw = dw;
  m->dw_off = m->bias - dwbias;
  size_t cap = 0;
  Dwarf_CU *cu = NULL, *next = NULL;
  for (;;) {
    Dwarf_Half version;
    uint8_t unit_type;
    Dwarf_Die cudie, subdie;
    memset(&subdie, 0, sizeof(subdie));
    if (dwarf_get_units(dw, cu, &next, &version, &unit_type, &cudie, &subdie) != 0) break;
    cu = next;
    if (unit_type == DW_UT_type || unit_type == DW_UT_split_type) continue;
    int tag = dwarf_tag(&cudie);
    if (tag != DW_TAG_compile_unit && tag != DW_TAG_partial_unit && tag != DW_TAG_skeleton_unit) continue;
    add_unit(m, &cap, &cudie, (unit_type == DW_UT_skeleton && subdie.cu != NULL) ? &subdie : &cudie);
  }
  sm_spans_finish(&m->cu_spans);
}

sm_symcu_t *sm_symdw_unit(sm_symfile_t *m, uint64_t pc) {
  long at = sm_spans_find(&m->cu_spans, pc);
  if (at < 0) return NULL;
  sm_symcu_t *ci = &m->cus[m->cu_spans.v[at].idx];
  cu_index(ci);
  return ci;
}

/* A function DIE's name: its mangled linkage name demangled (C++: with scope
 * and parameters); otherwise DW_AT_name.  A linkage name that is not
 * mangled is only an assembler label (glibc's __GI_ aliases, asm("...")),
 * so the source name is preferred to it. */
const char *sm_symdw_function_name(sm_symbolizer_t *s, Dwarf_Die *die, bool *from_mangled) {
  Dwarf_Attribute attr;
  const char *link = NULL, *name = NULL;
  *from_mangled = false;
  if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attr)) link = dwarf_formstring(&attr);
  if (!link && dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr))
    link = dwarf_formstring(&attr);
  if (link && link[0] == '_' && link[1] == 'Z') {
    const char *d = sm_sym_demangled(s, link);
    if (d && strcmp(d, link) != 0) {
      *from_mangled = true;
      return d;
    }
  }
  if (dwarf_attr_integrate(die, DW_AT_name, &attr)) name = dwarf_formstring(&attr);
  if (name && name[0]) return sm_intern(s->strings, name);
  return (link && link[0]) ? sm_sym_demangled(s, link) : NULL;
}

/* Source path of a line-table or call-site file name: relative names are
 * put under the unit's compilation directory when that is absolute, and
 * absolute results are cleaned lexically ("." and "dir/.." removed). */
const char *sm_symdw_source_path(sm_symbolizer_t *s, Dwarf_Die *cudie, const char *raw) {
  if (!raw) return NULL;
  char buf[PATH_MAX * 2];
  const char *path = raw;
  if (raw[0] != '/') {
    Dwarf_Attribute attr;
    const char *comp = NULL;
    if (cudie && dwarf_attr(cudie, DW_AT_comp_dir, &attr)) comp = dwarf_formstring(&attr);
    if (!comp || comp[0] != '/') return sm_intern(s->strings, raw);
    int n = snprintf(buf, sizeof(buf), "%s/%s", comp, raw);
    if (n < 0 || (size_t)n >= sizeof(buf)) return sm_intern(s->strings, raw);
    path = buf;
  }
  /* Lexical clean-up of an absolute path into out. */
  char out[PATH_MAX * 2];
  size_t len = 0;
  const char *p = path;
  while (*p) {
    while (*p == '/') p++;
    const char *e = p;
    while (*e && *e != '/') e++;
    size_t cl = (size_t)(e - p);
    if (cl == 0 || (cl == 1 && p[0] == '.')) {
      /* skip */
    } else if (cl == 2 && p[0] == '.' && p[1] == '.') {
      while (len > 0 && out[len - 1] != '/') len--;
      if (len > 0) len--;  /* the slash; at the root ".." stays at the root */
    } else {
      if (len + 1 + cl >= sizeof(out)) return sm_intern(s->strings, path);
      out[len++] = '/';
      memcpy(out + len, p, cl);
      len += cl;
    }
    p = e;
  }
  if (len == 0) out[len++] = '/';
  out[len] = '\0';
  return sm_intern(s->strings, out);
}

/* Call site of an inlined-subroutine DIE. */
void sm_symdw_call_site(sm_symbolizer_t *s, Dwarf_Die *inl, const char **file, int *line) {
  Dwarf_Attribute attr;
  Dwarf_Word v;
  *file = NULL;
  *line = 0;
  if (dwarf_attr(inl, DW_AT_call_line, &attr) && dwarf_formudata(&attr, &v) == 0 && v <= INT_MAX)
    *line = (int)v;
  if (dwarf_attr(inl, DW_AT_call_file, &attr) && dwarf_formudata(&attr, &v) == 0) {
    Dwarf_Die cudie;
    Dwarf_Files *files;
    size_t nfiles;
    if (dwarf_diecu(inl, &cudie, NULL, NULL) && dwarf_getsrcfiles(&cudie, &files, &nfiles) == 0 &&
        v < nfiles)
      *file = sm_symdw_source_path(s, &cudie, dwarf_filesrc(files, v, NULL, NULL));
  }
}

/* Walks down from a function DIE through the scopes containing pc.  Fills
 * chain[0..n): chain[0] the concrete function, then each inlined subroutine
 * inward. */
static int function_chain(Dwarf_Die *fn, uint64_t pc, Dwarf_Die *chain) {
  int n = 0;
  chain[n++] = *fn;
  Dwarf_Die cur = *fn;
  for (int guard = 0; guard < 1024; guard++) {
    Dwarf_Die child;
    if (dwarf_child(&cur, &child) != 0) break;
    int tag = 0;
    bool found = false;
    do {
      tag = dwarf_tag(&child);
      if (tag == DW_TAG_inlined_subroutine || tag == DW_TAG_lexical_block ||
          tag == DW_TAG_try_block || tag == DW_TAG_catch_block || tag == DW_TAG_subprogram) {
        if (dwarf_haspc(&child, pc) == 1) {
          found = true;
          break;
        }
      }
    } while (dwarf_siblingof(&child, &child) == 0);
    if (!found) break;
    if (tag == DW_TAG_subprogram) {
      n = 0;  /* a nested function: it is the real frame */
      chain[n++] = child;
    } else if (tag == DW_TAG_inlined_subroutine && n < MAX_CHAIN) {
      chain[n++] = child;
    }
    cur = child;
  }
  return n;
}

int sm_symdw_chain(sm_symcu_t *cu, uint64_t pc, Dwarf_Die *chain) {
  long f = cu->funcs.n ? sm_spans_find(&cu->funcs, pc) : -1;
  return f >= 0 ? function_chain(&cu->fdies[cu->funcs.v[f].idx], pc, chain) : 0;
}
