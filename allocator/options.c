/* Option tables and the parser (see options.h). Values accept 1/0,
 * true/false, yes/no, on/off for booleans and K/M/G/T (KiB/MiB/GiB/TiB) suffixes
 * for sizes. */
#include "allocator/options.h"

#include <signal.h>
#include <sys/auxv.h>

#include "allocator/msg.h"
#include "allocator/types.h"

sm_options_t sm_opt;

/* ---- the allocator's options */
static const char *const policies[] = {"best", "first", "next", NULL};
static const char *const thp_modes[] = {"never", "auto", "always", "dense", NULL};

/* An empty default, read at every start-up as it is stored
 * (SM_RUNTIME_DATA). */
SM_RUNTIME_DATA static const char no_text[] = "";

static const sm_option_t alloc_rows[] = {
    {.name = "policy", .kind = SM_OPT_NAME, .order = 8, .flags = SM_OPT_INDEX, SM_OPTION_FIELD(policy),
     .def = SM_POLICY_BEST, .names = policies},
    {.name = "increment", .kind = SM_OPT_SIZE, .order = 9, SM_OPTION_FIELD(increment),
     .min = (long long)SM_SEGMENT_SIZE, .max = 512LL << 20, .def = 16 * SM_MiB},
    /* A large chunk must span at most SM_SEGMAP_MAX_SLOTS (252) segments
     * of the one-byte segment map (1008 MiB): a block of `huge` bytes plus
     * its chunk's header, or `increment`, stays far below at 512 MiB. */
    {.name = "huge", .kind = SM_OPT_SIZE, .order = 10, SM_OPTION_FIELD(huge),
     .min = (long long)SM_POOL_MAX + 1, .max = 512LL << 20, .def = 32 * SM_MiB},
    {.name = "retain", .kind = SM_OPT_SIZE, .order = 11, SM_OPTION_FIELD(retain),
     .min = 0, .max = 1LL << 40, .def = 4 * SM_MiB},
    {.name = "thp", .kind = SM_OPT_NAME, .order = 18, SM_OPTION_FIELD(thp), .def = SM_THP_AUTO, .names = thp_modes},
    {.name = "thp_min", .kind = SM_OPT_SIZE, .order = 19, SM_OPTION_FIELD(thp_min),
     .min = 0, .max = 1LL << 40, .def = 64 * SM_MiB},
    {.name = "verbose", .kind = SM_OPT_BOOL, .order = 12, SM_OPTION_FIELD(verbose), .def = 0},
    {.name = "free_checks", .kind = SM_OPT_BOOL, .order = 14, SM_OPTION_FIELD(free_checks), .def = 1},
    {.name = "run", .kind = SM_OPT_ID, .order = 15, SM_OPTION_FIELD(run), .def_text = no_text},
};
_Static_assert((512 << 20) / SM_SEGMENT_SIZE + 2 <= SM_SEGMAP_MAX_SLOTS, "huge/increment ranges must fit the segment map");

/* The large arena grows in whole segments. */
SM_RUNTIME static void alloc_finish(sm_options_t *o) { o->increment = sm_align_up(o->increment, SM_SEGMENT_SIZE); }

static const sm_option_table_t alloc_options = {alloc_rows, sizeof alloc_rows / sizeof alloc_rows[0], alloc_finish};
SM_OPTION_TABLE(alloc_options);

/* ---- the registered tables: every SM_OPTION_TABLE in the library, put
 * by the linker between these two symbols */
extern const sm_option_table_t *const __start_sm_option_tables[] __attribute__((visibility("hidden")));
extern const sm_option_table_t *const __stop_sm_option_tables[] __attribute__((visibility("hidden")));

#define EACH_TABLE(t) \
  for (const sm_option_table_t *const *t = __start_sm_option_tables; t < __stop_sm_option_tables; t++)

void sm_options_each(void (*fn)(const sm_option_t *row, void *arg), void *arg) {
  EACH_TABLE(t) {
    for (unsigned i = 0; i < (*t)->n; i++) fn(&(*t)->rows[i], arg);
  }
}

unsigned sm_options_count(void) {
  unsigned n = 0;
  EACH_TABLE(t) n += (*t)->n;
  return n;
}

static bool str_eq(const char *a, size_t alen, const char *b) {
  size_t i = 0;
  for (; i < alen && b[i]; i++) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
    if (x != y) return false;
  }
  return i == alen && b[i] == '\0';
}

/* Parses an unsigned decimal with an optional K/M/G/T suffix (times 1024^n)
 * and an optional trailing "B"/"iB". */
static bool parse_number(const char *v, size_t len, bool allow_suffix, unsigned long long *res) {
  if (len == 0) return false;
  unsigned long long n = 0;
  size_t i = 0;
  for (; i < len && v[i] >= '0' && v[i] <= '9'; i++) {
    if (n > (~0ULL - 9) / 10) return false;
    n = n * 10 + (unsigned)(v[i] - '0');
  }
  if (i == 0) return false;
  if (i < len && allow_suffix) {
    unsigned shift = 0;
    switch (v[i]) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    case 'b': case 'B': shift = 0; break;
    default: return false;
    }
    if (v[i] != 'b' && v[i] != 'B') {
      i++;
      if (i < len && (v[i] == 'i')) i++;
      if (i < len && (v[i] == 'b' || v[i] == 'B')) i++;
    } else {
      i++;
    }
    if (n > (~0ULL >> shift)) return false;
    n <<= shift;
  }
  if (i != len) return false;
  *res = n;
  return true;
}

/* Seconds with up to three decimals ("2", "0.5", "1.250") into
 * milliseconds: at least one digit before the point, one to three after
 * it when there is one. "1.", ".5", "1e3" and "0.0001" are refused rather
 * than rounded. */
static bool parse_seconds(const char *v, size_t len, unsigned long long *ms) {
  size_t dot = 0;
  while (dot < len && v[dot] != '.') dot++;
  unsigned long long whole;
  if (!parse_number(v, dot, false, &whole) || whole > (~0ULL / 1000) - 1000) return false;
  unsigned long long frac = 0;
  if (dot < len) {
    size_t digits = len - dot - 1;
    if (digits < 1 || digits > 3) return false;
    for (size_t i = dot + 1; i < len; i++) {
      if (v[i] < '0' || v[i] > '9') return false;
      frac = frac * 10 + (unsigned)(v[i] - '0');
    }
    for (size_t i = digits; i < 3; i++) frac *= 10;
  }
  *ms = whole * 1000 + frac;
  return true;
}

static bool parse_bool(const char *v, size_t len, bool *res) {
  static const char *yes[] = {"1", "true", "yes", "on"};
  static const char *no[] = {"0", "false", "no", "off"};
  for (int i = 0; i < 4; i++) {
    if (str_eq(v, len, yes[i])) { *res = true; return true; }
    if (str_eq(v, len, no[i])) { *res = false; return true; }
  }
  return false;
}

static bool parse_signal(const char *v, size_t len, int *res) {
  if (len > 3 && (v[0] == 'S' || v[0] == 's') && str_eq(v, 3, "sig")) {
    v += 3;
    len -= 3;
  }
  if (str_eq(v, len, "usr1")) { *res = SIGUSR1; return true; }
  if (str_eq(v, len, "usr2")) { *res = SIGUSR2; return true; }
  if (str_eq(v, len, "none")) { *res = 0; return true; }
  unsigned long long n;
  if (!parse_number(v, len, false, &n)) return false;
  if (n != 0 && (n < 1 || n > 64 || n == SIGKILL || n == SIGSTOP)) return false;
  *res = (int)n;
  return true;
}

const sm_option_t *sm_options_find(const char *name, size_t len) {
  EACH_TABLE(t) {
    for (unsigned i = 0; i < (*t)->n; i++)
      if (str_eq(name, len, (*t)->rows[i].name)) return &(*t)->rows[i];
  }
  return NULL;
}

static const sm_option_t *row_at(unsigned order) {
  EACH_TABLE(t) {
    for (unsigned i = 0; i < (*t)->n; i++)
      if ((*t)->rows[i].order == order) return &(*t)->rows[i];
  }
  return NULL;
}

/* ---- a field, through exactly its width */
static void store(const sm_option_t *row, sm_options_t *o, unsigned long long v) {
  char *f = (char *)o + row->offset;
  switch (row->width) {
  case 1: *(uint8_t *)f = (uint8_t)v; break;
  case 2: *(uint16_t *)f = (uint16_t)v; break;
  case 4: *(uint32_t *)f = (uint32_t)v; break;
  case 8: *(uint64_t *)f = (uint64_t)v; break;
  default: break; /* no such row: the unit test walks them all */
  }
}

static unsigned long long load(const sm_option_t *row, const sm_options_t *o) {
  const char *f = (const char *)o + row->offset;
  switch (row->width) {
  case 1: return *(const uint8_t *)f;
  case 2: return *(const uint16_t *)f;
  case 4: return *(const uint32_t *)f;
  case 8: return *(const uint64_t *)f;
  default: return 0;
  }
}

/* A string field: the value, which the caller checked fits (len < width). */
static void store_text(const sm_option_t *row, sm_options_t *o, const char *v, size_t len) {
  char *f = (char *)o + row->offset;
  for (size_t i = 0; i < len; i++) f[i] = v[i];
  f[len] = '\0';
}

static void set_defaults(sm_options_t *o) {
  *o = (sm_options_t){0};
  EACH_TABLE(t) {
    for (unsigned i = 0; i < (*t)->n; i++) {
      const sm_option_t *row = &(*t)->rows[i];
      if (row->kind == SM_OPT_PATH || row->kind == SM_OPT_ID) store_text(row, o, row->def_text, __builtin_strlen(row->def_text));
      else store(row, o, (unsigned long long)row->def);
    }
  }
}

/* SM_OPT_NAME: the index of the name v spells (or, with SM_OPT_INDEX, of
 * the digit it is). */
static bool parse_name(const sm_option_t *row, const char *v, size_t len, unsigned long long *res) {
  for (unsigned i = 0; row->names[i]; i++) {
    char digit[2] = {(char)('0' + i), '\0'};
    if (str_eq(v, len, row->names[i]) || ((row->flags & SM_OPT_INDEX) && i < 10 && str_eq(v, len, digit))) {
      *res = i;
      return true;
    }
  }
  return false;
}

static bool id_chars(const char *v, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= '0' && v[i] <= '9') ||
          v[i] == '_' || v[i] == '-'))
      return false;
  return true;
}

/* Parses v for row and, if it is good, writes it to the row's field (and
 * nothing else); false leaves the field as it was. */
static bool parse_value(const sm_option_t *row, sm_options_t *o, const char *v, size_t len) {
  unsigned long long n = 0;
  bool b;
  int sig;
  switch (row->kind) {
  case SM_OPT_BOOL:
    if (!parse_bool(v, len, &b)) return false;
    n = b;
    break;
  case SM_OPT_NUMBER:
  case SM_OPT_SIZE:
    if (!parse_number(v, len, row->kind == SM_OPT_SIZE, &n) || (long long)n < row->min || (long long)n > row->max)
      return false;
    break;
  case SM_OPT_SECONDS:
    if (!parse_seconds(v, len, &n) || (long long)n < row->min || (long long)n > row->max) return false;
    break;
  case SM_OPT_SIGNAL:
    if (!parse_signal(v, len, &sig)) return false;
    n = (unsigned)sig;
    break;
  case SM_OPT_NAME:
    if (!parse_name(row, v, len, &n)) return false;
    break;
  case SM_OPT_ID:
  case SM_OPT_PATH:
    if (len == 0 || len >= row->width || (row->kind == SM_OPT_ID && !id_chars(v, len))) return false;
    store_text(row, o, v, len);
    return true;
  default:
    return false;
  }
  store(row, o, n);
  return true;
}

/* What a row's values look like, for the warning about a bad one. */
static void expected(const sm_option_t *row, char *buf, size_t cap) {
  switch (row->kind) {
  case SM_OPT_BOOL: sm_snprintf(buf, cap, "0 or 1"); break;
  case SM_OPT_NUMBER: sm_snprintf(buf, cap, "a whole number within range %lld..%lld", row->min, row->max); break;
  case SM_OPT_SIZE:
    sm_snprintf(buf, cap, "a size in bytes (K/M/G/T suffixes) within range %lld..%lld", row->min, row->max);
    break;
  case SM_OPT_SECONDS:
    sm_snprintf(buf, cap, "seconds (up to 3 decimals) within range %lld..%lld", row->min / 1000, row->max / 1000);
    break;
  case SM_OPT_PATH: sm_snprintf(buf, cap, "a non-empty path pattern"); break;
  case SM_OPT_ID: sm_snprintf(buf, cap, "1 to %u letters, digits, '_' or '-'", row->width - 1u); break;
  case SM_OPT_SIGNAL: sm_snprintf(buf, cap, "USR1, USR2 or 0"); break;
  case SM_OPT_NAME: {
    size_t k = 0;
    for (unsigned i = 0; row->names[i] && k < cap; i++) {
      const char *sep = i == 0 ? "" : row->names[i + 1] ? ", " : " or ";
      k += sm_snprintf(buf + k, cap - k, "%s%s", sep, row->names[i]);
    }
    break;
  }
  default: sm_snprintf(buf, cap, "?"); break;
  }
}

bool sm_options_apply(sm_options_t *o, const char *item, size_t len) {
  size_t klen = 0;
  while (klen < len && item[klen] != '=') klen++;
  if (klen == len) {
    sm_warning("SNAPMALLOC_OPTIONS: \"%.*s\" is not key=value; ignored", (int)len, item);
    return false;
  }
  const char *v = item + klen + 1;
  size_t vlen = len - klen - 1;
  const sm_option_t *row = sm_options_find(item, klen);
  if (!row) {
    sm_warning("SNAPMALLOC_OPTIONS: unknown option \"%.*s\"; ignored", (int)klen, item);
    return false;
  }
  if (!parse_value(row, o, v, vlen)) {
    char expect[128];
    expected(row, expect, sizeof expect);
    sm_warning("SNAPMALLOC_OPTIONS: invalid value \"%.*s\" for %s (expected %s); using the default", (int)vlen, v,
               row->name, expect);
    return false;
  }
  o->given |= 1u << row->order;
  return true;
}

SM_RUNTIME int sm_options_parse(sm_options_t *o, const char *spec) {
  set_defaults(o);
  int bad = 0;
  const char *p = spec ? spec : "";
  while (*p) {
    while (*p == ',' || *p == ' ') p++;
    if (!*p) break;
    const char *e = p;
    while (*e && *e != ',') e++;
    size_t len = (size_t)(e - p);
    while (len && p[len - 1] == ' ') len--;
    if (!sm_options_apply(o, p, len)) bad++;
    p = e;
  }
  EACH_TABLE(t) {
    if ((*t)->finish) (*t)->finish(o);
  }
  return bad;
}

bool sm_options_given(const sm_options_t *o, const char *name) {
  const sm_option_t *row = sm_options_find(name, __builtin_strlen(name));
  return row && ((o->given >> row->order) & 1);
}

extern char **environ;

/* The raw SNAPMALLOC_OPTIONS text (snapshots record it), copied because a
 * program may change its environment later. */
static SM_BIG_BSS char spec_copy[1024];
const char *sm_options_spec;

bool sm_secure;

void sm_options_init(void) {
  /* A setuid, setgid or file-capability program (the kernel's AT_SECURE,
   * as glibc's own tunables) takes nothing from the environment of the
   * user who started it: SNAPMALLOC_OPTIONS could make it write a file of
   * that user's choosing with its privileges. It runs on the defaults
   * (tracing off, so no snapshot) and says nothing: its stderr may be a
   * file the program opened in place of a closed descriptor 2. */
  if (getauxval(AT_SECURE)) {
    sm_secure = true;
    sm_options_parse(&sm_opt, NULL);
    return;
  }
  const char *spec = NULL;
  SM_RUNTIME_DATA static const char key[] = "SNAPMALLOC_OPTIONS=";
  for (char **e = environ; e && *e; e++) {
    size_t i = 0;
    while (key[i] && (*e)[i] == key[i]) i++;
    if (!key[i]) {
      spec = *e + i;
      break;
    }
  }
  if (spec) {
    size_t i = 0;
    for (; spec[i] && i + 1 < sizeof spec_copy; i++) spec_copy[i] = spec[i];
    spec_copy[i] = '\0';
    sm_options_spec = spec_copy;
  }
  sm_options_parse(&sm_opt, spec);
}

size_t sm_options_format(const sm_options_t *o, const sm_option_t *row, char *buf, size_t cap) {
  const char *text = (const char *)o + row->offset;
  switch (row->kind) {
  case SM_OPT_PATH: return sm_snprintf(buf, cap, "%s", text);
  case SM_OPT_ID: return sm_snprintf(buf, cap, "%s", text[0] ? text : "(none)");
  case SM_OPT_NAME: {
    unsigned long long i = load(row, o), n = 0;
    while (row->names[n]) n++;
    return sm_snprintf(buf, cap, "%s", i < n ? row->names[i] : "?");
  }
  case SM_OPT_SECONDS: { /* milliseconds as seconds: 500 -> "0.5", 5000 -> "5" */
    unsigned long long ms = load(row, o);
    char frac[5] = {'.', (char)('0' + ms % 1000 / 100), (char)('0' + ms % 100 / 10), (char)('0' + ms % 10), '\0'};
    for (int i = 3; i > 0 && frac[i] == '0'; i--) frac[i] = '\0';
    return sm_snprintf(buf, cap, "%llu%s", ms / 1000, frac[1] ? frac : "");
  }
  default: return sm_snprintf(buf, cap, "%llu", load(row, o));
  }
}

void sm_options_print(const sm_options_t *o) {
  unsigned n = sm_options_count();
  for (unsigned k = 0; k < n; k++) {
    const sm_option_t *row = row_at(k);
    if (!row) continue;
    char value[SM_OUT_MAX + 16];
    sm_options_format(o, row, value, sizeof value);
    sm_info("option %s = %s", row->name, value);
  }
}
