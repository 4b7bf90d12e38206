/* Walks every registered option table (the allocator's and the tracer's):
 * each option's default, its range (the top and bottom accepted, one past
 * each end refused), its printed form, and that applying it writes its own
 * field and nothing else: the struct is filled with a pattern first and
 * every other byte (but the `given` bits) must still hold it afterwards. A
 * value written through the wrong width either spills into a neighbour or
 * loses its top bytes, and fails here. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "allocator/options.h"
#include "tests/testhelper.h"

#define PATTERN 0xA5
#define MAX_ROWS 32 /* `given` has 32 bits */

static const sm_option_t *rows[MAX_ROWS + 1];
static unsigned nrows;

static void collect(const sm_option_t *row, void *arg) {
  (void)arg;
  if (nrows <= MAX_ROWS) rows[nrows] = row;
  nrows++;
}

/* The field read as a little-endian integer of row->width bytes: the test's
 * own reading, independent of the parser's. */
static unsigned long long field_value(const sm_options_t *o, const sm_option_t *row) {
  const unsigned char *f = (const unsigned char *)o + row->offset;
  unsigned long long v = 0;
  for (unsigned i = row->width; i-- > 0;) v = v << 8 | f[i];
  return v;
}

static const char *formatted(const sm_options_t *o, const sm_option_t *row) {
  static char buf[SM_OUT_MAX + 16];
  sm_options_format(o, row, buf, sizeof buf);
  return buf;
}

/* Applies NAME=value to a struct full of PATTERN: true if accepted. Checks
 * that no byte outside the option's field and `given` changed, that a
 * refused value left its field alone too, and the `given` bit. */
static bool try_value(sm_options_t *o, const sm_option_t *row, const char *value) {
  memset(o, PATTERN, sizeof *o);
  o->given = 0;
  char item[SM_OUT_MAX + 64];
  int len = snprintf(item, sizeof item, "%s=%s", row->name, value);
  bool ok = sm_options_apply(o, item, (size_t)len);
  const unsigned char *b = (const unsigned char *)o;
  size_t given = __builtin_offsetof(sm_options_t, given);
  for (size_t i = 0; i < sizeof *o; i++) {
    bool own = i >= row->offset && i < (size_t)row->offset + row->width;
    if (i >= given && i < given + sizeof o->given) continue;
    if (b[i] != PATTERN && (!own || !ok)) {
      CHECK_MSG(0, "%s=%.40s (%s) changed byte %zu; its field is [%u, %u)", row->name, value,
                ok ? "accepted" : "refused", i, row->offset, row->offset + row->width);
      break;
    }
  }
  CHECK_MSG(o->given == (ok ? 1u << row->order : 0u), "%s=%.40s: given %#x", row->name, value, o->given);
  return ok;
}

static void accepted(const sm_option_t *row, const char *value, unsigned long long want, const char *printed) {
  sm_options_t o;
  CHECK_MSG(try_value(&o, row, value), "%s=%.40s refused", row->name, value);
  if (printed) CHECK_MSG(strcmp(formatted(&o, row), printed) == 0, "%s=%.40s printed %.40s", row->name, value,
                         formatted(&o, row));
  else CHECK_MSG(field_value(&o, row) == want, "%s=%s: field holds %llu", row->name, value, field_value(&o, row));
}

static void refused(const sm_option_t *row, const char *value) {
  sm_options_t o;
  CHECK_MSG(!try_value(&o, row, value), "%s=%.40s accepted", row->name, value);
}

static void check_number(const sm_option_t *row) {
  char v[64], p[64];
  CHECK_MSG(row->min <= row->def && row->def <= row->max, "%s: default out of range", row->name);
  long long ends[2] = {row->min, row->max};
  for (int i = 0; i < 2; i++) {
    snprintf(v, sizeof v, "%lld", ends[i]);
    accepted(row, v, (unsigned long long)ends[i], NULL);
    snprintf(p, sizeof p, "%llu", (unsigned long long)ends[i]);
    accepted(row, v, 0, p);
  }
  snprintf(v, sizeof v, "%lld", row->min - 1); /* -1 for a range from 0: not a number at all */
  refused(row, v);
  snprintf(v, sizeof v, "%lld", row->max + 1);
  refused(row, v);
  refused(row, "");
  refused(row, "12x");
  if (row->kind == SM_OPT_SIZE && row->min <= 1024 && row->max >= 1024) accepted(row, "1K", 1024, NULL);
  if (row->kind == SM_OPT_NUMBER) refused(row, "1K");
}

/* Seconds to the millisecond: both ends of the range (kept in ms) and one
 * millisecond past each, fractions, the printed form in seconds. */
static void check_seconds(const sm_option_t *row) {
  char v[64], p[64];
  CHECK_MSG(row->min <= row->def && row->def <= row->max, "%s: default out of range", row->name);
  CHECK_MSG(row->max % 1000 == 0 && row->min % 1000 == 0, "%s: range not in whole seconds", row->name);
  snprintf(v, sizeof v, "%lld", row->min / 1000);
  snprintf(p, sizeof p, "%lld", row->min / 1000);
  accepted(row, v, (unsigned long long)row->min, NULL);
  accepted(row, v, 0, p);
  snprintf(v, sizeof v, "%lld", row->max / 1000);
  accepted(row, v, (unsigned long long)row->max, NULL);
  accepted(row, v, 0, v);
  snprintf(v, sizeof v, "%lld.001", row->max / 1000);
  refused(row, v);
  if (row->min > 0) {
    snprintf(v, sizeof v, "%lld.999", row->min / 1000 - 1);
    refused(row, v);
  }
  if (row->min <= 1250 && row->max >= 1250) {
    accepted(row, "1.25", 1250, NULL);
    accepted(row, "1.250", 0, "1.25");
    accepted(row, "0.5", 0, "0.5");
    accepted(row, "2.000", 0, "2");
    accepted(row, "0.007", 7, "0.007");
  }
  refused(row, "");
  refused(row, ".5");
  refused(row, "1.");
  refused(row, "0.0001");
  refused(row, "1K");
}

static void check_text(const sm_option_t *row) {
  char v[SM_OUT_MAX + 2];
  CHECK_MSG(row->width <= SM_OUT_MAX, "%s: a field larger than the test's buffer", row->name);
  accepted(row, "a", 0, "a");
  memset(v, 'x', row->width - 1u); /* the longest that fits, with its NUL */
  v[row->width - 1] = '\0';
  accepted(row, v, 0, v);
  v[row->width - 1] = 'x';
  v[row->width] = '\0';
  refused(row, v);
  refused(row, "");
  if (row->kind == SM_OPT_ID) refused(row, "a/b");
}

static void check_row(const sm_option_t *row) {
  char digit[8];
  unsigned n = 0;
  switch (row->kind) {
  case SM_OPT_BOOL:
    accepted(row, "1", 1, "1");
    accepted(row, "0", 0, "0");
    accepted(row, "yes", 1, NULL);
    accepted(row, "off", 0, NULL);
    refused(row, "2");
    refused(row, "");
    break;
  case SM_OPT_NUMBER:
  case SM_OPT_SIZE: check_number(row); break;
  case SM_OPT_SECONDS: check_seconds(row); break;
  case SM_OPT_PATH:
  case SM_OPT_ID: check_text(row); break;
  case SM_OPT_SIGNAL:
    accepted(row, "0", 0, "0");
    accepted(row, "64", 64, "64");
    accepted(row, "USR1", SIGUSR1, NULL);
    refused(row, "65");
    refused(row, "KILL");
    break;
  case SM_OPT_NAME:
    for (; row->names[n]; n++) accepted(row, row->names[n], n, row->names[n]);
    CHECK_MSG(n >= 2 && n <= 10, "%s: %u names", row->name, n);
    refused(row, "nonesuch");
    snprintf(digit, sizeof digit, "%u", n - 1);
    if (row->flags & SM_OPT_INDEX) accepted(row, digit, n - 1, row->names[n - 1]);
    else refused(row, digit);
    snprintf(digit, sizeof digit, "%u", n);
    refused(row, digit);
    break;
  default: CHECK_MSG(0, "%s: kind %u unknown to the test", row->name, row->kind);
  }
}

/* The table as a whole: names and orders unique, fields apart. */
static void check_tables(void) {
  CHECK(nrows == sm_options_count() && nrows >= 16 && nrows <= MAX_ROWS);
  for (unsigned i = 0; i < nrows && i < MAX_ROWS; i++) {
    const sm_option_t *a = rows[i];
    CHECK_MSG(a->order < nrows, "%s: order %u", a->name, a->order);
    CHECK_MSG((size_t)a->offset + a->width <= __builtin_offsetof(sm_options_t, given), "%s: field past the end",
              a->name);
    CHECK(sm_options_find(a->name, strlen(a->name)) == a);
    for (unsigned j = i + 1; j < nrows && j < MAX_ROWS; j++) {
      const sm_option_t *b = rows[j];
      CHECK_MSG(strcasecmp(a->name, b->name) != 0, "%s twice", a->name);
      CHECK_MSG(a->order != b->order, "%s and %s share order %u", a->name, b->name, a->order);
      CHECK_MSG(a->offset + a->width <= b->offset || b->offset + b->width <= a->offset, "%s and %s overlap",
                a->name, b->name);
    }
  }
}

/* Defaults, and sm_options_print: one line per option, in `order`. */
static void check_defaults_and_print(void) {
  sm_options_t o;
  CHECK(sm_options_parse(&o, NULL) == 0 && o.given == 0);
  char want[8192] = "", line[SM_OUT_MAX + 64];
  for (unsigned k = 0; k < nrows && k < MAX_ROWS; k++) {
    for (unsigned i = 0; i < nrows && i < MAX_ROWS; i++) {
      const sm_option_t *row = rows[i];
      if (row->order != k) continue;
      if (row->kind == SM_OPT_PATH || row->kind == SM_OPT_ID)
        CHECK_MSG(strcmp(formatted(&o, row), row->def_text[0] ? row->def_text : "(none)") == 0, "%s default",
                  row->name);
      else
        CHECK_MSG(field_value(&o, row) == (unsigned long long)row->def, "%s default", row->name);
      snprintf(line, sizeof line, "snapmalloc: option %s = %s\n", row->name, formatted(&o, row));
      strncat(want, line, sizeof want - strlen(want) - 1);
    }
  }
  FILE *tmp = tmpfile();
  int saved = dup(2);
  fflush(stderr);
  dup2(fileno(tmp), 2);
  sm_options_print(&o);
  dup2(saved, 2);
  close(saved);
  char got[8192];
  rewind(tmp);
  size_t n = fread(got, 1, sizeof got - 1, tmp);
  got[n] = '\0';
  fclose(tmp);
  CHECK_MSG(strcmp(got, want) == 0, "printed:\n%s\nexpected:\n%s", got, want);
  /* a few defaults the docs promise, as the printer shows them */
  CHECK(strstr(got, "option depth = 16\n") && strstr(got, "option policy = best\n") &&
        strstr(got, "option unwind = fast\n") && strstr(got, "option run = (none)\n"));
}

int main(void) {
  sm_options_each(collect, NULL);
  check_tables();
  check_defaults_and_print();
  for (unsigned i = 0; i < nrows && i < MAX_ROWS; i++) check_row(rows[i]);
  return test_summary();
}
