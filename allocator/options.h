/* SNAPMALLOC_OPTIONS: comma-separated key=value pairs, read once at start from
 * environ (getenv may not be usable yet). A bad pair prints one warning line
 * and leaves that option at its default; nothing here ever aborts.
 *
 * Every option is one row of an option table (sm_option_t): its name, its
 * kind of value, the field it lands in (offset and width), its default,
 * its range and its place in the printed list. The parser, the defaults,
 * the range checks and the printer all read the rows, so a new option is
 * one field and one row. The allocator's rows are in options.c; a part of
 * the library with keys of its own (the tracer: tracer/options.c) puts its
 * table in the section that sm_options_parse walks (SM_OPTION_TABLE), so
 * the allocator never names them. Tables are constant data, reachable
 * before anything is initialised and without allocating. */
#ifndef SM_ALLOCATOR_OPTIONS_H
#define SM_ALLOCATOR_OPTIONS_H

#include "allocator/base.h"
#include "tracer/options.h" /* SM_TRACER_OPTION_FIELDS: the tracer's keys' fields */

typedef enum sm_policy { SM_POLICY_BEST = 0, SM_POLICY_FIRST = 1, SM_POLICY_NEXT = 2 } sm_policy_t;
/* thp=: which segments ask for transparent huge pages (segment.c). */
typedef enum sm_thp { SM_THP_NEVER = 0, SM_THP_AUTO = 1, SM_THP_ALWAYS = 2, SM_THP_DENSE = 3 } sm_thp_t;

#define SM_RUN_MAX 64 /* run=ID: 1..63 of [A-Za-z0-9_-] */

/* The process's options: one field per row of some table. The tracer's
 * fields are declared by the tracer, which also parses, defaults and
 * prints them; they are stored here so that one parse at library init,
 * before the allocator or the tracer runs, fills every option. */
typedef struct sm_options {
  SM_TRACER_OPTION_FIELDS
  sm_policy_t policy;   /* large-block placement policy */
  size_t increment;     /* bytes a large arena grows by (multiple of 4 MiB) */
  size_t huge;          /* requests above this get their own mapping */
  size_t retain;        /* free bytes a heap, or the arenas together (large.c), keep before purging */
  sm_thp_t thp;         /* huge pages for pool segments and arena chunks */
  size_t thp_min;       /* thp=auto: mapped bytes from which new segments ask for them */
  bool verbose;         /* print options at start and statistics at exit */
  bool free_checks;     /* free validates small blocks (double free, interior pointer) */
  char run[SM_RUN_MAX]; /* the id `snapmalloc run` gives one run's processes (recorded, not used) */
  uint32_t given;       /* which options were given explicitly (bit = the row's `order`) */
} sm_options_t;

extern sm_options_t sm_opt;
extern const char *sm_options_spec; /* SNAPMALLOC_OPTIONS as given, or NULL */

/* ---- option tables */
typedef enum sm_option_kind {
  SM_OPT_BOOL,   /* 1/0, true/false, yes/no, on/off; a bool field */
  SM_OPT_NUMBER, /* a whole number in min..max; an integer field of any width */
  SM_OPT_SIZE,   /* the same with K/M/G/T (KiB ... TiB) suffixes */
  SM_OPT_PATH,   /* a non-empty string shorter than the char array it lands in */
  SM_OPT_ID,     /* the same, of [A-Za-z0-9_-] only; printed "(none)" when empty */
  SM_OPT_SIGNAL, /* USR1, USR2, SIGUSR1..., a number, 0/none; an int field */
  SM_OPT_NAME,   /* one of names[] (the field holds its index, an enum) */
  SM_OPT_SECONDS, /* seconds with up to three decimals ("2", "0.5", "1.25"); the
                   * field holds milliseconds, and min/max are milliseconds */
} sm_option_kind_t;

#define SM_OPT_INDEX 1u /* flags of SM_OPT_NAME: the index itself ("0", "1") is accepted too */

typedef struct sm_option {
  const char *name;
  uint8_t kind;          /* sm_option_kind_t */
  uint8_t order;         /* place in the printed list, and bit in sm_options_t.given */
  uint8_t flags;
  uint16_t width;        /* sizeof the field: values are written through exactly this width */
  uint16_t offset;       /* of the field in sm_options_t */
  long long min, max;    /* SM_OPT_NUMBER/SIZE/SECONDS: the inclusive range (SECONDS: in ms) */
  long long def;         /* the default of every kind but PATH and ID */
  const char *def_text;  /* SM_OPT_PATH/ID: the default string */
  const char *const *names; /* SM_OPT_NAME: NULL-terminated; value i is names[i] */
} sm_option_t;

typedef struct sm_option_table {
  const sm_option_t *rows;
  unsigned n;
  /* After every item was applied: what the table's options imply for each
   * other (may read `given`); NULL for none. */
  void (*finish)(sm_options_t *o);
} sm_option_table_t;

/* A row's field: offset and width from the struct itself, so that neither
 * can disagree with the declaration. */
#define SM_OPTION_FIELD(f) \
  .offset = __builtin_offsetof(sm_options_t, f), .width = sizeof(((sm_options_t *)0)->f)

/* Registers a table with the parser: a pointer to it in the linker section
 * sm_option_tables, which sm_options_parse walks (any order: rows print by
 * `order`). */
#define SM_OPTION_TABLE(table)                                                                              \
  __attribute__((used, section("sm_option_tables"))) static const sm_option_table_t *const table##_entry = \
      &(table)

/* Calls fn on every row of every registered table (tests walk them). */
void sm_options_each(void (*fn)(const sm_option_t *row, void *arg), void *arg);
/* The row of option `name` (case-insensitive), or NULL. */
const sm_option_t *sm_options_find(const char *name, size_t len);
/* The number of options in all tables (the rows' `order` runs 0..n-1). */
unsigned sm_options_count(void);
/* Writes row's current value in o as the printer shows it ("16", "best",
 * "(none)") into buf; returns its length (truncated to cap - 1). */
size_t sm_options_format(const sm_options_t *o, const sm_option_t *row, char *buf, size_t cap);

/* Applies one "key=value" item (len bytes of item) to o as it stands: no
 * reset to the defaults, no table's finish. Writes only the option's own
 * field and its bit of `given`; false (after one warning) if it is bad. */
bool sm_options_apply(sm_options_t *o, const char *item, size_t len);
/* Reset to defaults, then apply `spec` (may be NULL). Returns the number of
 * rejected items (each already reported with one warning line). */
int sm_options_parse(sm_options_t *o, const char *spec);
/* Find SNAPMALLOC_OPTIONS in environ and parse it into sm_opt; under
 * AT_SECURE (setuid, setgid, file capabilities) only set the defaults. */
void sm_options_init(void);
extern bool sm_secure; /* AT_SECURE: the environment was ignored */
/* True if option `name` was set explicitly. */
bool sm_options_given(const sm_options_t *o, const char *name);
/* Print "snapmalloc: option <name> = <value>" lines, in `order`. */
void sm_options_print(const sm_options_t *o);

#endif
