/* The control channel's protocol (control=1): the one definition shared
 * by the library (tracer/control.c, the server) and the tool
 * (tools/control.c, the client). docs/service.md describes it for people.
 *
 * The process listens on a unix SOCK_SEQPACKET socket in the abstract
 * namespace named SM_CTL_NAME_FMT (its pid namespace's inode and its pid),
 * so the name vanishes with the process. One request per connection, one
 * message each way, every message at most SM_CTL_MSG_MAX bytes, no NUL
 * required at the end (a message's length is its own):
 *
 *   start[ depth=N][ sample=BYTES]   tracing on    -> "ok depth=N sample=BYTES"
 *   stop                             tracing off   -> "ok traced=BYTES"
 *   snap[ /ABSOLUTE/PATH]            a snapshot    -> "ok /ABSOLUTE/PATH" (when complete)
 *
 * Anything else, and every refusal, gets "error REASON". The server checks
 * the client's credentials first (SO_PEERCRED); the client checks that the
 * socket belongs to the process it asked for (the server's SO_PEERCRED pid).
 * The path of `snap` is everything after the first space and may hold any
 * byte but NUL. */
#ifndef SM_TRACER_CTLPROTO_H
#define SM_TRACER_CTLPROTO_H

/* sun_path after its leading NUL: pid namespace inode, pid. */
#define SM_CTL_NAME_FMT "snapmalloc-control.%llu.%d"
#define SM_CTL_PATH_MAX 4096                     /* PATH_MAX: the longest path a request may name */
#define SM_CTL_MSG_MAX (SM_CTL_PATH_MAX + 64)   /* any request or reply */
#define SM_CTL_REQUEST_WAIT_MS 2000             /* the server waits this long for a connection's request */

#endif
