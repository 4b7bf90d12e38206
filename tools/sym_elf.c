/* The ELF side of the symbolizer (sym_internal.h): a file opened with
 * libdwfl (offline: reported by path, with our own debug-file search), its
 * executable segments, and its symbol table indexed so that among aliases
 * the most public name wins (malloc, not __GI___libc_malloc); an address
 * past the end of every sized symbol (alignment padding) gets no name. */
#include <gelf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/sym_internal.h"
#include "tools/util.h"

void sm_symelf_close(sm_symfile_t *m) {
  if (m->dwfl) dwfl_end(m->dwfl);
  m->dwfl = NULL;
  m->mod = NULL;
  m->dw = NULL;
}

/* Reads the file open on fd (consumed) and decides its status. */
void sm_symelf_open(sm_symfile_t *m, int fd) {
  m->status = SM_SYM_MISSING;
  m->dwfl = dwfl_begin(&sm_symdebug_callbacks);
  if (!m->dwfl) {
    close(fd);
    return;
  }
  dwfl_report_begin(m->dwfl);
  m->mod = dwfl_report_offline(m->dwfl, sm_base_name(m->path), m->path, fd); /* consumes fd on success */
  dwfl_report_end(m->dwfl, NULL, NULL);
  if (!m->mod) {
    close(fd);
    sm_symelf_close(m);
    return;
  }
  void **ud = NULL;
  dwfl_module_info(m->mod, &ud, NULL, NULL, NULL, NULL, NULL, NULL);
  if (ud) *ud = m;

  GElf_Addr bias = 0;
  Elf *elf = dwfl_module_getelf(m->mod, &bias);
  if (!elf) {
    sm_symelf_close(m);
    return;
  }
  m->bias = bias;

  const unsigned char *bits = NULL;
  GElf_Addr id_vaddr;
  int idlen = dwfl_module_build_id(m->mod, &bits, &id_vaddr);
  if (idlen > 0 && bits) {
    m->file_id = xmalloc((size_t)idlen);
    memcpy(m->file_id, bits, (size_t)idlen);
    m->file_id_len = (size_t)idlen;
  }
  /* Executable segments: addresses outside them are not code. */
  size_t nph = 0;
  if (elf_getphdrnum(elf, &nph) == 0 && nph > 0) {
    m->segs = xcalloc(nph, sizeof(*m->segs));
    for (int pass = 0; pass < 2 && m->nsegs == 0; pass++) { /* no executable one: every PT_LOAD */
      for (size_t i = 0; i < nph; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD) continue;
        if (pass == 0 && !(ph.p_flags & PF_X)) continue;
        m->segs[m->nsegs][0] = ph.p_vaddr;
        m->segs[m->nsegs][1] = ph.p_vaddr + ph.p_memsz;
        m->nsegs++;
      }
    }
  }
  m->status = SM_SYM_OK;
}

bool sm_symelf_has_code(const sm_symfile_t *m, uint64_t vaddr) {
  if (m->nsegs == 0) return true;  /* no program headers (ET_REL): cannot tell */
  for (size_t i = 0; i < m->nsegs; i++)
    if (vaddr >= m->segs[i][0] && vaddr < m->segs[i][1]) return true;
  return false;
}

/* Preference among symbols at one address (lower is better): global, then
 * weak, then local; then fewer leading underscores (malloc over
 * __libc_malloc over __GI___libc_malloc); then shorter. */
static uint32_t symbol_rank(const GElf_Sym *sym, const char *name) {
  uint32_t bind;
  switch (GELF_ST_BIND(sym->st_info)) {
    case STB_GLOBAL: bind = 0; break;
    case STB_WEAK: bind = 1; break;
    case STB_LOCAL: bind = 2; break;
    default: bind = 3; break;
  }
  uint32_t under = 0;
  while (name[under] == '_' && under < 9) under++;
  size_t len = strlen(name);
  return bind * 1000000u + under * 10000u + (uint32_t)(len < 9999 ? len : 9999);
}

typedef struct sym_tmp {
  uint64_t lo, size;
  uint32_t rank;
  const char *name;
} sym_tmp;

static int sym_tmp_cmp(const void *a, const void *b) {
  const sym_tmp *x = a, *y = b;
  if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
  return (x->rank > y->rank) - (x->rank < y->rank);
}

/* Indexes the module's function symbols (whichever table dwfl found:
 * .symtab of the file or its debug file, .dynsym, MiniDebugInfo). */
static void module_symtab_init(sm_symfile_t *m) {
  if (m->syms_tried) return;
  m->syms_tried = true;
  int nsym = dwfl_module_getsymtab(m->mod);
  if (nsym <= 1) return;
  sym_tmp *tmp = xmalloc((size_t)nsym * sizeof(*tmp));
  size_t n = 0;
  for (int i = 1; i < nsym; i++) {
    GElf_Sym sym;
    GElf_Addr addr;
    GElf_Word shndx;
    const char *name = dwfl_module_getsym_info(m->mod, i, &sym, &addr, &shndx, NULL, NULL);
    if (!name || !name[0] || shndx == SHN_UNDEF || shndx == SHN_ABS) continue;
    int type = GELF_ST_TYPE(sym.st_info);
    if (type != STT_FUNC && type != STT_GNU_IFUNC && !(type == STT_NOTYPE && sym.st_size > 0))
      continue;
    if (name[0] == '$' || (name[0] == '.' && name[1] == 'L')) continue;
    tmp[n].lo = addr;
    tmp[n].size = sym.st_size;
    tmp[n].rank = symbol_rank(&sym, name);
    tmp[n].name = name;
    n++;
  }
  qsort(tmp, n, sizeof(*tmp), sym_tmp_cmp);
  m->symnames = xmalloc((n ? n : 1) * sizeof(*m->symnames));
  for (size_t i = 0; i < n; i++) {
    uint64_t hi = tmp[i].lo + tmp[i].size;
    if (tmp[i].size == 0) {
      /* Sizeless: up to the next symbol, within a page. */
      size_t j = i + 1;
      while (j < n && tmp[j].lo == tmp[i].lo) j++;
      hi = tmp[i].lo + 4096;
      if (j < n && tmp[j].lo < hi) hi = tmp[j].lo;
      if (hi <= tmp[i].lo) hi = tmp[i].lo + 1;
    }
    if (hi < tmp[i].lo) hi = UINT64_MAX;
    m->symnames[i] = tmp[i].name;
    /* Greater order wins among symbols at the same address: invert rank. */
    sm_spans_push(&m->syms, tmp[i].lo, hi, UINT32_MAX - tmp[i].rank, (uint32_t)i);
  }
  free(tmp);
  sm_spans_finish(&m->syms);
}

/* Name of the ELF symbol containing addr (demangled), or NULL.  *raw gets
 * the symbol's name as it is in the table. */
const char *sm_symelf_name(sm_symbolizer_t *s, sm_symfile_t *m, uint64_t addr, const char **raw) {
  module_symtab_init(m);
  long i = m->syms.n ? sm_spans_find(&m->syms, addr) : -1;
  const char *r = i >= 0 ? m->symnames[m->syms.v[i].idx] : NULL;
  if (raw) *raw = r;
  return r ? sm_sym_demangled(s, r) : NULL;
}
