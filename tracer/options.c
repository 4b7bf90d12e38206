/* The tracer's keys of SNAPMALLOC_OPTIONS (docs/options.md): one row each,
 * registered with the allocator's option parser, which reads them at
 * library init, before the tracer or the allocator runs, without
 * allocating. Their fields are SM_TRACER_OPTION_FIELDS (tracer/options.h).
 *
 * Locks: none; the table is constant. */
#include <signal.h>

#include "allocator/options.h"

static const char *const unwinders[] = {"fast", "libunwind", "check", NULL};
/* Read at every start-up, as the default is stored (SM_RUNTIME_DATA). */
SM_RUNTIME_DATA static const char out_default[] = "snapmalloc.%e.%p.%n.snap";

/* `order` is each key's place in the printed list (verbose=1) and its bit
 * in sm_options_t.given; the allocator's keys fill the places between. */
static const sm_option_t tracer_rows[] = {
    {.name = "trace", .kind = SM_OPT_BOOL, .order = 0, SM_OPTION_FIELD(trace), .def = 0},
    {.name = "depth", .kind = SM_OPT_NUMBER, .order = 1, SM_OPTION_FIELD(depth), .min = 1, .max = 128, .def = 16},
    {.name = "out", .kind = SM_OPT_PATH, .order = 2, SM_OPTION_FIELD(out), .def_text = out_default},
    {.name = "at_exit", .kind = SM_OPT_BOOL, .order = 3, SM_OPTION_FIELD(at_exit), .def = 1},
    {.name = "signal", .kind = SM_OPT_SIGNAL, .order = 4, SM_OPTION_FIELD(signal), .def = SIGUSR2},
    /* seconds, fractions to the millisecond (interval=0.5); 0 = off */
    {.name = "interval", .kind = SM_OPT_SECONDS, .order = 5, SM_OPTION_FIELD(interval_ms), .min = 0,
     .max = 86400 * 1000LL, .def = 0},
    {.name = "sample", .kind = SM_OPT_SIZE, .order = 6, SM_OPTION_FIELD(sample), .min = 0, .max = 1LL << 40, .def = 0},
    {.name = "leaks", .kind = SM_OPT_BOOL, .order = 7, SM_OPTION_FIELD(leaks), .def = 1},
    {.name = "unwind", .kind = SM_OPT_NAME, .order = 13, SM_OPTION_FIELD(unwind), .def = SM_UNWIND_FAST,
     .names = unwinders},
    {.name = "control", .kind = SM_OPT_BOOL, .order = 16, SM_OPTION_FIELD(control), .def = 0},
    {.name = "python", .kind = SM_OPT_BOOL, .order = 17, SM_OPTION_FIELD(python), .def = 1},
};

/* Sampling is for runs too long or too busy to trace every block; the
 * exit-time leak analysis (all threads stopped, all memory scanned) is
 * then off unless asked for. */
SM_RUNTIME static void tracer_finish(sm_options_t *o) {
  if (o->sample && !sm_options_given(o, "leaks")) o->leaks = false;
}

static const sm_option_table_t tracer_options = {tracer_rows, sizeof tracer_rows / sizeof tracer_rows[0],
                                                 tracer_finish};
SM_OPTION_TABLE(tracer_options);
