/* The live view: a traced process's memory, refreshed from fresh
 * snapshots: a full-screen terminal view with keys, or plain text blocks
 * when standard output is not a terminal. Where the snapshots come from is
 * the caller's business: a source hands the view the path of a fresh
 * snapshot each time it is asked (`run --live`: the newest file the
 * command wrote; `live PID`: a snapshot asked of the process). */
#ifndef SM_TOOLS_LIVE_H
#define SM_TOOLS_LIVE_H

#include <stdbool.h>
#include <stddef.h>

#include "tools/report.h"

/* What a source's next() says. */
typedef enum sm_live_status {
  SM_LIVE_NEW,   /* path holds a fresh, complete snapshot */
  SM_LIVE_NONE,  /* nothing new yet: the view asks again a little later */
  SM_LIVE_END,   /* the process is gone (msg says how, e.g. "exited with status 0"); no more snapshots */
  SM_LIVE_ERROR, /* the source failed (msg says why, one line): the view ends with exit status 2 */
} sm_live_status_t;

typedef struct sm_live_source {
  /* Produces the next snapshot: on SM_LIVE_NEW its path in path[pathcap];
   * on END and ERROR one line (no newline) in msg[msgcap]. Called once per
   * refresh interval, and again after a tenth of it when it said NONE; it
   * may block (asking a process for a snapshot takes a moment), the view
   * reads no keys meanwhile. */
  sm_live_status_t (*next)(void *arg, char *path, size_t pathcap, char *msg, size_t msgcap);
  /* Optional (NULL): the view has read path and will not open it again;
   * the source may delete it. */
  void (*done)(void *arg, const char *path);
  void *arg;
} sm_live_source_t;

typedef struct sm_live_opts {
  long interval_ms;        /* between refreshes (> 0) */
  int top;                 /* sites shown; <= 0: as many as the screen holds, 10 in plain text */
  sm_report_opts_t report; /* grouping (--by), selection and naming of sites */
  const char *name;        /* who is talking, for messages: "snapmalloc run" */
} sm_live_opts_t;

/* Shows the view until it is left: in a terminal, q (after the source's
 * END the last view stays until q); in plain text, the source's END (the
 * last block is printed, then the message). A snapshot that cannot be
 * read, or the source's ERROR, ends it with one line on stderr and 2. A
 * SIGINT, SIGQUIT, SIGTERM or SIGHUP ends it too: *sig gets the signal
 * (else 0) and the caller decides what it means. The terminal is restored
 * on every way out (also exit() from elsewhere: an atexit handler). While
 * the full-screen view is up, the tool's own stderr is held back and
 * written out when it ends. Returns 0 or 2. */
int sm_live_run(const sm_live_opts_t *o, const sm_live_source_t *src, int *sig);

/* A fresh private directory for a view's snapshots (mode 0700, in $TMPDIR
 * when that is an absolute path that fits in an option value, else /tmp):
 * true, or false after one line on stderr naming the command (`who`).
 * sm_remove_dir (tools/util.h) removes it. */
bool sm_live_mkdir(const char *who, char *dir, size_t cap);

/* Whether sm_live_run would draw the full-screen view (standard output is
 * a terminal, and TERM is not "dumb"); else it writes plain text. */
bool sm_live_is_terminal(void);

#endif
