/* The client of a running process's control channel (control=1; protocol
 * in tracer/ctlproto.h, for people docs/service.md): the commands start,
 * stop and snap, and the calls other commands (the live view) use. Every
 * call checks that the socket it reached belongs to the pid asked for. */
#ifndef SM_TOOLS_CONTROL_H
#define SM_TOOLS_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#define CONTROL_TIMEOUT_DEFAULT 10.0 /* seconds */

/* snapmalloc start|stop|snap PID [options]: 0, or 2 after one line on
 * stderr naming the pid and the reason. */
int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_snap(int argc, char **argv);

/* Sends one request (len bytes, no NUL needed) to pid's control channel
 * and waits at most timeout_s seconds for the whole exchange. 0 when the
 * process answered "ok": reply gets what followed "ok " (NUL-terminated,
 * "" if nothing; truncated to replycap). -1 otherwise: err gets one line,
 * "pid N: reason" (no such process, not preloaded, not armed, permission
 * refused, timed out, the process's own refusal...). */
int control_call(pid_t pid, const char *request, size_t len, double timeout_s, char *reply, size_t replycap,
                 char *err, size_t errlen);

/* Has pid write a snapshot and returns when the file is complete: 0, or
 * -1 with err as control_call. path: where (a relative path is taken
 * from the current directory and sent absolute; the process writes it
 * with its own credentials, temporary file then rename); NULL: the next
 * name of the process's `out` pattern. written (may be NULL): the file's
 * absolute path, NUL-terminated, truncated to writtencap. */
int control_snap(pid_t pid, const char *path, double timeout_s, char *written, size_t writtencap, char *err,
                 size_t errlen);

#endif
