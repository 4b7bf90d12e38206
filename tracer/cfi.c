/* Unwind rules from the loaded objects' .eh_frame (DWARF call frame
 * information), reduced to the little a stack walk on x86-64 needs.
 *
 * For almost every instruction of compiled code the canonical frame address
 * (CFA, the caller's stack pointer) is rsp or rbp plus a constant, the
 * return address sits at CFA - 8, and the caller's rbp is either untouched
 * or saved at a constant offset from the CFA. sm_cfi_lookup() finds the FDE
 * covering a pc through the object's PT_GNU_EH_FRAME search table, runs the
 * CIE's and FDE's instructions up to the pc and returns that rule; anything
 * beyond it (expressions, signal frames, registers saved in registers) is
 * reported as SM_CFI_NONE and the caller falls back to libunwind.
 *
 * Runs inside malloc: it allocates nothing and reads only the loader's live
 * object list (dl_iterate_phdr) and the mapped eh_frame sections. */
#include <link.h>
#include <string.h>

#include "tracer/tracer.h"

/* DWARF pointer encodings (the low nibble is the format, the high the base). */
enum {
  PE_ABSPTR = 0x00, PE_ULEB128 = 0x01, PE_UDATA2 = 0x02, PE_UDATA4 = 0x03, PE_UDATA8 = 0x04,
  PE_SLEB128 = 0x09, PE_SDATA2 = 0x0a, PE_SDATA4 = 0x0b, PE_SDATA8 = 0x0c,
  PE_PCREL = 0x10, PE_DATAREL = 0x30, PE_INDIRECT = 0x80, PE_OMIT = 0xff,
};

/* x86-64 DWARF register numbers. */
enum { REG_RBP = 6, REG_RSP = 7, REG_RA = 16 };

/* What the walker needs of a register rule. */
enum { RULE_SAME, RULE_OFFSET, RULE_UNDEFINED, RULE_OTHER };

typedef struct cfa_state {
  int cfa_reg;       /* DWARF register, or -1 for an expression */
  int64_t cfa_off;
  uint8_t rbp_rule, ra_rule;
  int64_t rbp_off, ra_off;
} cfa_state_t;

typedef struct reader {
  const uint8_t *p, *end;
  bool bad;
} reader_t;

static uint64_t rd_uleb(reader_t *r) {
  uint64_t v = 0;
  unsigned shift = 0;
  while (r->p < r->end) {
    uint8_t b = *r->p++;
    if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
    if (!(b & 0x80)) return v;
  }
  r->bad = true;
  return 0;
}

static int64_t rd_sleb(reader_t *r) {
  uint64_t v = 0;
  unsigned shift = 0;
  uint8_t b = 0x80;
  while (r->p < r->end && (b & 0x80)) {
    b = *r->p++;
    if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
  }
  if (b & 0x80) {
    r->bad = true;
    return 0;
  }
  if (shift < 64 && (b & 0x40)) v |= ~(uint64_t)0 << shift;
  return (int64_t)v;
}

static uint64_t rd_fixed(reader_t *r, unsigned n) {
  if ((size_t)(r->end - r->p) < n) {
    r->bad = true;
    r->p = r->end;
    return 0;
  }
  uint64_t v = 0;
  memcpy(&v, r->p, n); /* little-endian */
  r->p += n;
  return v;
}

/* Reads a pointer in encoding enc; datarel is relative to `data`. */
static uintptr_t rd_ptr(reader_t *r, uint8_t enc, uintptr_t data) {
  if (enc == PE_OMIT) return 0;
  uintptr_t here = (uintptr_t)r->p;
  uint64_t v;
  switch (enc & 0x0f) {
  case PE_ABSPTR: v = rd_fixed(r, 8); break;
  case PE_ULEB128: v = rd_uleb(r); break;
  case PE_UDATA2: v = rd_fixed(r, 2); break;
  case PE_UDATA4: v = rd_fixed(r, 4); break;
  case PE_UDATA8: v = rd_fixed(r, 8); break;
  case PE_SLEB128: v = (uint64_t)rd_sleb(r); break;
  case PE_SDATA2: v = (uint64_t)(int64_t)(int16_t)rd_fixed(r, 2); break;
  case PE_SDATA4: v = (uint64_t)(int64_t)(int32_t)rd_fixed(r, 4); break;
  case PE_SDATA8: v = rd_fixed(r, 8); break;
  default: r->bad = true; return 0;
  }
  switch (enc & 0x70) {
  case 0: break;
  case PE_PCREL: v += here; break;
  case PE_DATAREL: v += data; break;
  default: r->bad = true; return 0; /* textrel, funcrel, aligned: not used by gcc or clang */
  }
  if (enc & PE_INDIRECT) {
    r->bad = true; /* only personality pointers use it, and we skip those unread */
    return 0;
  }
  return (uintptr_t)v;
}

/* ---------------------------------------------------------------- finding the FDE */

typedef struct find_arg {
  uintptr_t pc;
  const uint8_t *hdr; /* the object's .eh_frame_hdr, or NULL */
  const uint8_t *hdr_end;
  bool in_object;     /* pc lies in one of the object's PT_LOAD segments */
} find_arg_t;

static int find_object(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  find_arg_t *a = arg;
  const ElfW(Phdr) *eh = NULL;
  bool hit = false;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_LOAD) {
      uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
      if (a->pc >= lo && a->pc < lo + ph->p_memsz) hit = true;
    } else if (ph->p_type == PT_GNU_EH_FRAME) {
      eh = ph;
    }
  }
  if (!hit) return 0;
  a->in_object = true;
  if (eh) {
    a->hdr = (const uint8_t *)(info->dlpi_addr + eh->p_vaddr);
    a->hdr_end = a->hdr + eh->p_memsz;
  }
  return 1;
}

/* The FDE covering pc, through the binary search table of .eh_frame_hdr.
 * Returns its address, or NULL. */
static const uint8_t *find_fde(uintptr_t pc, bool *in_object) {
  find_arg_t a = {.pc = pc};
  sm_modules_iterate(find_object, &a);
  *in_object = a.in_object;
  if (!a.hdr || a.hdr_end - a.hdr < 4 || a.hdr[0] != 1) return NULL;
  uint8_t ptr_enc = a.hdr[1], count_enc = a.hdr[2], table_enc = a.hdr[3];
  /* Both toolchains write the table as pairs of 4-byte offsets from the
   * header; that fixed layout is what makes a binary search possible. */
  if (table_enc != (PE_DATAREL | PE_SDATA4)) return NULL;
  reader_t r = {a.hdr + 4, a.hdr_end, false};
  uintptr_t base = (uintptr_t)a.hdr;
  (void)rd_ptr(&r, ptr_enc, base);
  uint64_t count = rd_ptr(&r, count_enc, base);
  if (r.bad || count == 0 || (uint64_t)(r.end - r.p) / 8 < count) return NULL;
  const int32_t *table = (const int32_t *)r.p;
  size_t lo = 0, hi = count; /* find the last entry whose start <= pc */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if ((uintptr_t)(base + (intptr_t)table[2 * mid]) <= pc) lo = mid;
    else hi = mid;
  }
  if ((uintptr_t)(base + (intptr_t)table[2 * lo]) > pc) return NULL;
  return (const uint8_t *)(base + (intptr_t)table[2 * lo + 1]);
}

/* ---------------------------------------------------------------- CIE and FDE */

typedef struct cie {
  uint64_t code_align;
  int64_t data_align;
  uint64_t ra_reg;
  uint8_t fde_enc;
  bool has_aug_len; /* 'z' */
  bool signal;      /* 'S': a signal trampoline's frame */
  const uint8_t *insns, *end;
} cie_t;

/* Reads the length field of a CIE or FDE; NULL on a terminator or overflow. */
static const uint8_t *entry_body(const uint8_t *p, const uint8_t **end) {
  uint32_t len32;
  __builtin_memcpy(&len32, p, 4);
  if (len32 == 0) return NULL;
  p += 4;
  uint64_t len = len32;
  if (len32 == 0xffffffffu) {
    __builtin_memcpy(&len, p, 8);
    p += 8;
  }
  if (len > (1u << 30)) return NULL;
  *end = p + len;
  return p;
}

static bool parse_cie(const uint8_t *at, cie_t *c) {
  const uint8_t *end;
  const uint8_t *p = entry_body(at, &end);
  if (!p) return false;
  reader_t r = {p, end, false};
  if (rd_fixed(&r, 4) != 0) return false; /* a CIE's id is 0 in .eh_frame */
  uint8_t version = (uint8_t)rd_fixed(&r, 1);
  if (version != 1 && version != 3) return false;
  const char *aug = (const char *)r.p;
  size_t auglen = strnlen(aug, (size_t)(r.end - r.p));
  if (aug + auglen >= (const char *)r.end) return false;
  r.p += auglen + 1;
  memset(c, 0, sizeof *c);
  c->fde_enc = PE_ABSPTR;
  c->code_align = rd_uleb(&r);
  c->data_align = rd_sleb(&r);
  c->ra_reg = version == 1 ? rd_fixed(&r, 1) : rd_uleb(&r);
  const uint8_t *aug_end = NULL;
  for (size_t i = 0; i < auglen && !r.bad; i++) {
    switch (aug[i]) {
    case 'z': {
      if (i != 0) return false;
      uint64_t n = rd_uleb(&r);
      if (n > (uint64_t)(r.end - r.p)) return false;
      c->has_aug_len = true;
      aug_end = r.p + n;
      break;
    }
    case 'R': c->fde_enc = (uint8_t)rd_fixed(&r, 1); break;
    case 'L': (void)rd_fixed(&r, 1); break;
    case 'P': { /* personality routine: skip its pointer without following it */
      uint8_t enc = (uint8_t)rd_fixed(&r, 1);
      (void)rd_ptr(&r, (uint8_t)(enc & ~PE_INDIRECT), 0);
      break;
    }
    case 'S': c->signal = true; break;
    case 'B': break;
    default:
      if (!aug_end) return false; /* unknown and unskippable */
      r.p = aug_end;
      i = auglen;
    }
  }
  if (r.bad) return false;
  if (aug_end) r.p = aug_end;
  c->insns = r.p;
  c->end = end;
  return true;
}

/* Runs the CFA instructions of [p, end) while the location stays <= pc.
 * init is the state after the CIE's instructions (for DW_CFA_restore).
 * Returns false on anything it cannot follow. */
static bool run_cfa(const cie_t *c, const uint8_t *p, const uint8_t *end, uintptr_t loc, uintptr_t pc,
                    cfa_state_t *s, const cfa_state_t *init) {
  cfa_state_t saved[8];
  unsigned nsaved = 0;
  reader_t r = {p, end, false};
  while (r.p < r.end && !r.bad) {
    uint8_t op = *r.p++;
    uint64_t reg = 0;
    int64_t off = 0;
    uint8_t rule = RULE_OTHER;
    switch (op >> 6) {
    case 1: /* advance_loc */
      loc += (op & 0x3f) * c->code_align;
      if (loc > pc) return true;
      continue;
    case 2: /* offset */
      reg = op & 0x3f;
      off = (int64_t)rd_uleb(&r) * c->data_align;
      rule = RULE_OFFSET;
      goto set_reg;
    case 3: /* restore */
      reg = op & 0x3f;
      goto restore_reg;
    }
    switch (op) {
    case 0x00: break; /* nop */
    case 0x01: /* set_loc */
      loc = rd_ptr(&r, c->fde_enc, 0);
      if (loc > pc) return true;
      break;
    case 0x02: loc += rd_fixed(&r, 1) * c->code_align; if (loc > pc) return true; break;
    case 0x03: loc += rd_fixed(&r, 2) * c->code_align; if (loc > pc) return true; break;
    case 0x04: loc += rd_fixed(&r, 4) * c->code_align; if (loc > pc) return true; break;
    case 0x05: /* offset_extended */
      reg = rd_uleb(&r);
      off = (int64_t)rd_uleb(&r) * c->data_align;
      rule = RULE_OFFSET;
      goto set_reg;
    case 0x06: /* restore_extended */
      reg = rd_uleb(&r);
      goto restore_reg;
    case 0x07: reg = rd_uleb(&r); rule = RULE_UNDEFINED; goto set_reg;
    case 0x08: reg = rd_uleb(&r); rule = RULE_SAME; goto set_reg;
    case 0x09: reg = rd_uleb(&r); (void)rd_uleb(&r); rule = RULE_OTHER; goto set_reg; /* register */
    case 0x0a: /* remember_state */
      if (nsaved == sizeof saved / sizeof saved[0]) return false;
      saved[nsaved++] = *s;
      break;
    case 0x0b: /* restore_state: the CFA rule is restored too (gcc relies on it) */
      if (nsaved == 0) return false;
      *s = saved[--nsaved];
      break;
    case 0x0c: s->cfa_reg = (int)rd_uleb(&r); s->cfa_off = (int64_t)rd_uleb(&r); break;
    case 0x0d: s->cfa_reg = (int)rd_uleb(&r); break;
    case 0x0e: s->cfa_off = (int64_t)rd_uleb(&r); break;
    case 0x0f: { /* def_cfa_expression */
      uint64_t n = rd_uleb(&r);
      if (n > (uint64_t)(r.end - r.p)) return false;
      r.p += n;
      s->cfa_reg = -1;
      break;
    }
    case 0x10: case 0x16: { /* expression, val_expression */
      reg = rd_uleb(&r);
      uint64_t n = rd_uleb(&r);
      if (n > (uint64_t)(r.end - r.p)) return false;
      r.p += n;
      rule = RULE_OTHER;
      goto set_reg;
    }
    case 0x11: /* offset_extended_sf */
      reg = rd_uleb(&r);
      off = rd_sleb(&r) * c->data_align;
      rule = RULE_OFFSET;
      goto set_reg;
    case 0x12: s->cfa_reg = (int)rd_uleb(&r); s->cfa_off = rd_sleb(&r) * c->data_align; break;
    case 0x13: s->cfa_off = rd_sleb(&r) * c->data_align; break;
    case 0x14: case 0x15: /* val_offset(_sf) */
      reg = rd_uleb(&r);
      if (op == 0x14) (void)rd_uleb(&r);
      else (void)rd_sleb(&r);
      rule = RULE_OTHER;
      goto set_reg;
    case 0x2e: (void)rd_uleb(&r); break; /* GNU_args_size */
    case 0x2f: /* GNU_negative_offset_extended */
      reg = rd_uleb(&r);
      off = -(int64_t)rd_uleb(&r) * c->data_align;
      rule = RULE_OFFSET;
      goto set_reg;
    default:
      return false;
    }
    continue;
  set_reg:
    if (reg == REG_RBP) {
      s->rbp_rule = rule;
      s->rbp_off = off;
    } else if (reg == c->ra_reg) {
      s->ra_rule = rule;
      s->ra_off = off;
    }
    continue;
  restore_reg:
    if (!init) return false; /* restore inside the CIE itself */
    if (reg == REG_RBP) {
      s->rbp_rule = init->rbp_rule;
      s->rbp_off = init->rbp_off;
    } else if (reg == c->ra_reg) {
      s->ra_rule = init->ra_rule;
      s->ra_off = init->ra_off;
    }
  }
  return !r.bad;
}

bool sm_cfi_lookup(uintptr_t pc, sm_cfi_rule_t *out) {
  out->kind = SM_CFI_NONE;
  bool in_object = false;
  const uint8_t *fde = find_fde(pc, &in_object);
  if (!fde) return false;
  const uint8_t *end;
  const uint8_t *p = entry_body(fde, &end);
  if (!p) return false;
  reader_t r = {p, end, false};
  const uint8_t *id_at = r.p;
  uint32_t cie_off = (uint32_t)rd_fixed(&r, 4);
  if (cie_off == 0) return false; /* that is a CIE */
  cie_t c;
  if (!parse_cie(id_at - cie_off, &c) || c.signal || c.ra_reg != REG_RA) return false;
  uintptr_t start = rd_ptr(&r, c.fde_enc, 0);
  uintptr_t range = rd_ptr(&r, (uint8_t)(c.fde_enc & 0x0f), 0);
  if (r.bad || pc < start || pc - start >= range) return false;
  if (c.has_aug_len) {
    uint64_t n = rd_uleb(&r);
    if (r.bad || n > (uint64_t)(r.end - r.p)) return false;
    r.p += n;
  }
  cfa_state_t s = {.cfa_reg = REG_RSP, .cfa_off = 8, .rbp_rule = RULE_SAME, .ra_rule = RULE_OFFSET, .ra_off = -8};
  if (!run_cfa(&c, c.insns, c.end, start, UINTPTR_MAX, &s, NULL)) return false;
  cfa_state_t init = s;
  if (!run_cfa(&c, r.p, r.end, start, pc, &s, &init)) return false;

  if (s.ra_rule == RULE_UNDEFINED) { /* the outermost frame (_start, clone) */
    out->kind = SM_CFI_END;
    return true;
  }
  if (s.ra_rule != RULE_OFFSET || s.ra_off != -8) return false;
  if (s.cfa_reg != REG_RSP && s.cfa_reg != REG_RBP) return false;
  if (s.cfa_off <= 0 || s.cfa_off > INT32_MAX) return false;
  if (s.rbp_rule == RULE_OFFSET) {
    if (s.rbp_off >= 0 || s.rbp_off < INT16_MIN) return false;
    out->rbp_off = (int16_t)s.rbp_off;
    out->rbp_saved = true;
  } else if (s.rbp_rule == RULE_SAME) {
    out->rbp_off = 0;
    out->rbp_saved = false;
  } else {
    return false;
  }
  out->cfa_off = (int32_t)s.cfa_off;
  out->kind = s.cfa_reg == REG_RSP ? SM_CFI_RSP : SM_CFI_RBP;
  return true;
}
