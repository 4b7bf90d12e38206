/* Option table and parser (see options.h). Values accept 1/0, true/false,
 * yes/no, on/off for booleans and K/M/G (KiB/MiB/GiB) suffixes for sizes. */
#include "allocator/options.h"

#include <signal.h>
#include <sys/auxv.h>

#include "allocator/msg.h"
#include "allocator/types.h"

sm_options_t sm_opt;

typedef enum { OPT_BOOL, OPT_INT, OPT_SIZE, OPT_STRING, OPT_SIGNAL, OPT_POLICY, OPT_UNWIND, OPT_ID } opt_kind_t;

typedef struct opt_desc {
  const char *name;
  opt_kind_t kind;
  long long min, max; /* inclusive bounds for OPT_INT / OPT_SIZE */
  size_t offset;      /* field in sm_options_t */
} opt_desc_t;

#define FIELD(f) __builtin_offsetof(sm_options_t, f)

static const opt_desc_t descs[] = {
    {"trace", OPT_BOOL, 0, 1, FIELD(trace)},
    {"depth", OPT_INT, 1, 128, FIELD(depth)},
    {"out", OPT_STRING, 0, 0, FIELD(out)},
    {"at_exit", OPT_BOOL, 0, 1, FIELD(at_exit)},
    {"signal", OPT_SIGNAL, 0, 0, FIELD(signal)},
    {"interval", OPT_INT, 0, 86400, FIELD(interval)},
    {"sample", OPT_SIZE, 0, 1LL << 40, FIELD(sample)},
    {"leaks", OPT_BOOL, 0, 1, FIELD(leaks)},
    {"policy", OPT_POLICY, 0, 0, FIELD(policy)},
    {"increment", OPT_SIZE, (long long)SM_SEGMENT_SIZE, 512LL << 20, FIELD(increment)},
    /* A large chunk must span at most SM_SEGMAP_MAX_SLOTS (254) segments
     * of the one-byte segment map (1016 MiB): a block of `huge` bytes plus
     * its chunk's header, or `increment`, stays far below at 512 MiB. */
    {"huge", OPT_SIZE, (long long)SM_POOL_MAX + 1, 512LL << 20, FIELD(huge)},
    {"retain", OPT_SIZE, 0, 1LL << 40, FIELD(retain)},
    {"verbose", OPT_BOOL, 0, 1, FIELD(verbose)},
    {"unwind", OPT_UNWIND, 0, 0, FIELD(unwind)},
    {"free_checks", OPT_BOOL, 0, 1, FIELD(free_checks)},
    {"run", OPT_ID, 0, 0, FIELD(run)},
};
#define NDESCS (sizeof descs / sizeof descs[0])
_Static_assert((512 << 20) / SM_SEGMENT_SIZE + 2 <= 254, "huge/increment ranges must fit the segment map");

static void set_defaults(sm_options_t *o) {
  *o = (sm_options_t){0};
  o->depth = 16;
  const char *out = "snapmalloc.%e.%p.%n.snap";
  size_t i = 0;
  for (; out[i]; i++) o->out[i] = out[i];
  o->out[i] = '\0';
  o->at_exit = true;
  o->signal = SIGUSR2;
  o->leaks = true;
  o->policy = SM_POLICY_BEST;
  o->increment = 16 * SM_MiB;
  o->huge = 32 * SM_MiB;
  o->retain = 4 * SM_MiB;
  o->free_checks = true;
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

/* Parses an unsigned decimal with an optional K/M/G suffix (times 1024^n)
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

static bool parse_policy(const char *v, size_t len, sm_policy_t *res) {
  if (str_eq(v, len, "best") || str_eq(v, len, "0")) { *res = SM_POLICY_BEST; return true; }
  if (str_eq(v, len, "first") || str_eq(v, len, "1")) { *res = SM_POLICY_FIRST; return true; }
  if (str_eq(v, len, "next") || str_eq(v, len, "2")) { *res = SM_POLICY_NEXT; return true; }
  return false;
}

static bool parse_unwind(const char *v, size_t len, sm_unwinder_t *res) {
  if (str_eq(v, len, "fast")) { *res = SM_UNWIND_FAST; return true; }
  if (str_eq(v, len, "libunwind")) { *res = SM_UNWIND_LIBUNWIND; return true; }
  if (str_eq(v, len, "check")) { *res = SM_UNWIND_CHECK; return true; }
  return false;
}

/* Applies one "key=value" item; returns false (after one warning) if bad. */
static bool apply(sm_options_t *o, const char *item, size_t len) {
  size_t klen = 0;
  while (klen < len && item[klen] != '=') klen++;
  if (klen == len) {
    sm_warning("SNAPMALLOC_OPTIONS: \"%.*s\" is not key=value; ignored", (int)len, item);
    return false;
  }
  const char *v = item + klen + 1;
  size_t vlen = len - klen - 1;
  const opt_desc_t *d = NULL;
  for (size_t i = 0; i < NDESCS; i++)
    if (str_eq(item, klen, descs[i].name)) d = &descs[i];
  if (!d) {
    sm_warning("SNAPMALLOC_OPTIONS: unknown option \"%.*s\"; ignored", (int)klen, item);
    return false;
  }
  char *field = (char *)o + d->offset;
  bool ok = false;
  unsigned long long n = 0;
  const char *expect = "";
  switch (d->kind) {
  case OPT_BOOL: ok = parse_bool(v, vlen, (bool *)field); expect = "0 or 1"; break;
  case OPT_INT:
  case OPT_SIZE:
    ok = parse_number(v, vlen, d->kind == OPT_SIZE, &n) && (long long)n >= d->min && (long long)n <= d->max;
    expect = d->kind == OPT_SIZE ? "a size in bytes (K/M/G suffixes) within range" : "a whole number within range";
    if (ok) {
      if (d->offset == FIELD(depth)) o->depth = (int)n;
      else if (d->offset == FIELD(interval)) o->interval = (long)n;
      else *(size_t *)field = (size_t)n;
    }
    break;
  case OPT_STRING:
    ok = vlen > 0 && vlen < SM_OUT_MAX;
    expect = "a non-empty path pattern";
    if (ok) {
      for (size_t i = 0; i < vlen; i++) field[i] = v[i];
      field[vlen] = '\0';
    }
    break;
  case OPT_ID:
    ok = vlen > 0 && vlen < SM_RUN_MAX;
    for (size_t i = 0; ok && i < vlen; i++)
      ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= '0' && v[i] <= '9') || v[i] == '_' ||
           v[i] == '-';
    expect = "1 to 63 letters, digits, '_' or '-'";
    if (ok) {
      for (size_t i = 0; i < vlen; i++) field[i] = v[i];
      field[vlen] = '\0';
    }
    break;
  case OPT_SIGNAL: ok = parse_signal(v, vlen, (int *)field); expect = "USR1, USR2 or 0"; break;
  case OPT_POLICY: ok = parse_policy(v, vlen, (sm_policy_t *)field); expect = "best, first or next"; break;
  case OPT_UNWIND: ok = parse_unwind(v, vlen, (sm_unwinder_t *)field); expect = "fast, libunwind or check"; break;
  }
  if (!ok) {
    if (d->kind == OPT_INT || d->kind == OPT_SIZE)
      sm_warning("SNAPMALLOC_OPTIONS: invalid value \"%.*s\" for %s (expected %s %lld..%lld); using the default",
                 (int)vlen, v, d->name, expect, d->min, d->max);
    else
      sm_warning("SNAPMALLOC_OPTIONS: invalid value \"%.*s\" for %s (expected %s); using the default",
                 (int)vlen, v, d->name, expect);
    return false;
  }
  o->given |= 1u << (d - descs);
  return true;
}

int sm_options_parse(sm_options_t *o, const char *spec) {
  set_defaults(o);
  if (!spec) return 0;
  int bad = 0;
  const char *p = spec;
  while (*p) {
    while (*p == ',' || *p == ' ') p++;
    if (!*p) break;
    const char *e = p;
    while (*e && *e != ',') e++;
    size_t len = (size_t)(e - p);
    while (len && p[len - 1] == ' ') len--;
    if (!apply(o, p, len)) bad++;
    p = e;
  }
  /* The large arena grows in whole segments. */
  o->increment = sm_align_up(o->increment, SM_SEGMENT_SIZE);
  /* Sampling is for runs too long or too busy to trace every block; the
   * exit-time leak analysis (all threads stopped, all memory scanned) is
   * then off unless asked for. */
  if (o->sample && !sm_options_given(o, "leaks")) o->leaks = false;
  return bad;
}

bool sm_options_given(const sm_options_t *o, const char *name) {
  for (size_t i = 0; i < NDESCS; i++)
    if (str_eq(name, __builtin_strlen(name), descs[i].name)) return (o->given >> i) & 1;
  return false;
}

extern char **environ;

/* The raw SNAPMALLOC_OPTIONS text (snapshots record it), copied because a
 * program may change its environment later. */
static char spec_copy[1024];
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
  static const char key[] = "SNAPMALLOC_OPTIONS=";
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

void sm_options_print(const sm_options_t *o) {
  static const char *policies[] = {"best", "first", "next"};
  sm_info("option trace = %d", o->trace);
  sm_info("option depth = %d", o->depth);
  sm_info("option out = %s", o->out);
  sm_info("option at_exit = %d", o->at_exit);
  sm_info("option signal = %d", o->signal);
  sm_info("option interval = %ld", o->interval);
  sm_info("option sample = %zu", o->sample);
  sm_info("option leaks = %d", o->leaks);
  sm_info("option policy = %s", policies[o->policy]);
  sm_info("option increment = %zu", o->increment);
  sm_info("option huge = %zu", o->huge);
  sm_info("option retain = %zu", o->retain);
  sm_info("option verbose = %d", o->verbose);
  static const char *unwinders[] = {"fast", "libunwind", "check"};
  sm_info("option unwind = %s", unwinders[o->unwind]);
  sm_info("option free_checks = %d", o->free_checks);
  sm_info("option run = %s", o->run[0] ? o->run : "(none)");
}
