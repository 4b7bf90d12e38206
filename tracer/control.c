/* The control channel (control=1): a running process takes requests to
 * switch tracing on or off and to write a snapshot (protocol:
 * tracer/ctlproto.h; for people: docs/service.md).
 *
 * The listening socket is a unix SOCK_SEQPACKET socket in the abstract
 * namespace, named after the pid namespace and the pid: nothing is left in
 * the file system, the name disappears with the process, and exec (the
 * socket is close-on-exec) frees it for the new image. Anybody may connect
 * to an abstract name, so every connection is checked before its request
 * is read: the peer (SO_PEERCRED) must be root, or the process's own user
 * while the process holds nothing its user does not (all its uids the
 * same, no capabilities, no group the peer is not in). The process then
 * never writes a file where the requester could not. Anybody may also
 * bind the name first; the process then runs unarmed, with a warning, and
 * the client, which checks the server's pid, never talks to the squatter.
 *
 * Only the helper thread (triggers.c) calls sm_control_serve_one, one
 * connection at a time: a request is waited for SM_CTL_REQUEST_WAIT_MS at
 * most, read as one message of at most SM_CTL_MSG_MAX bytes, parsed
 * strictly, and answered with one message; nothing here allocates.
 *
 * Locks: none of its own. Switching tracing and writing a snapshot take
 * write_lock (snapshot.c) and what it covers. */
#include <errno.h>
#include <linux/capability.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "allocator/internal.h"
#include "tracer/ctlproto.h"
#include "tracer/tracer.h"

#define GROUPS_MAX 1024 /* supplementary groups compared, each side; more: refused */

static int listen_fd = -1;
static ino_t listen_ino; /* the socket's inode: a program that closes every descriptor may reuse the number */
static int conn_fd = -1; /* the connection being served (a fork child closes its copy) */

bool sm_control_armed(void) { return __atomic_load_n(&listen_fd, __ATOMIC_ACQUIRE) >= 0; }

int sm_control_fd(void) { return __atomic_load_n(&listen_fd, __ATOMIC_ACQUIRE); }

static const char *errno_text(int e) {
  const char *s = strerrordesc_np(e);
  return s ? s : "unknown error";
}

SM_RUNTIME int sm_control_open(void) {
  /* A setuid or file-capability program reads no options (sm_secure), so
   * control is 0 there anyway; say so twice. */
  if (!sm_opt.control || sm_secure) return -1;
  struct stat ns;
  unsigned long long ns_ino = stat("/proc/self/ns/pid", &ns) == 0 ? (unsigned long long)ns.st_ino : 0;
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  size_t n = sm_snprintf(a.sun_path + 1, sizeof a.sun_path - 1, SM_CTL_NAME_FMT, ns_ino, (int)getpid());
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    sm_warning("control=1: cannot create the control socket (%s); this process cannot be controlled",
               errno_text(errno));
    return -1;
  }
  if (bind(fd, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) != 0 ||
      listen(fd, 16) != 0) {
    int e = errno;
    close(fd);
    if (e == EADDRINUSE)
      sm_warning("control=1: the control socket's name (@%s) is taken by another process; this process cannot "
                 "be controlled",
                 a.sun_path + 1);
    else
      sm_warning("control=1: cannot listen on the control socket (%s); this process cannot be controlled",
                 errno_text(e));
    return -1;
  }
  struct stat st;
  listen_ino = fstat(fd, &st) == 0 ? st.st_ino : 0;
  __atomic_store_n(&listen_fd, fd, __ATOMIC_RELEASE);
  return fd;
}

void sm_control_close(void) {
  int fd = __atomic_exchange_n(&listen_fd, -1, __ATOMIC_ACQ_REL);
  if (fd >= 0) close(fd);
}

void sm_control_check(void) {
  int fd = sm_control_fd();
  struct stat st;
  if (fd < 0 || (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == listen_ino)) return;
  /* Closed by the program (a daemon closing every descriptor); the number
   * is not ours to close or use any more. */
  __atomic_store_n(&listen_fd, -1, __ATOMIC_RELEASE);
  sm_warning("the control socket was closed by the program; the control channel is off");
}

void sm_control_postfork_child(void) {
  if (conn_fd >= 0) close(conn_fd);
  conn_fd = -1;
  sm_control_close();
}

/* ---------------------------------------------------------------- who asks */

/* Whether the process holds any capability (permitted: what it could
 * raise). Unknown counts as yes. */
static bool holds_capabilities(void) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  if (syscall(SYS_capget, &h, d) != 0) return true;
  return (d[0].permitted | d[1].permitted | d[0].effective | d[1].effective) != 0;
}

static bool in_list(gid_t g, const gid_t *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (list[i] == g) return true;
  return false;
}

/* NULL if the peer of connection c may control this process, else why not
 * (into buf, or a constant). */
static const char *peer_refused(int c, char *buf, size_t cap) {
  struct ucred cr;
  socklen_t len = sizeof cr;
  if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) return "the requester's credentials are unknown";
  if (cr.uid == 0) return NULL; /* root may write anywhere */
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0) return "the process's credentials are unknown";
  if (cr.uid != eu) return "the process belongs to another user";
  /* The process writes files with its own credentials: the peer must hold
   * everything it does. */
  if (ru != eu || su != eu) return "the process runs with more than one user id (setuid)";
  if (holds_capabilities()) return "the process holds capabilities";
  gid_t peer[GROUPS_MAX + 1], mine[GROUPS_MAX + 3];
  socklen_t plen = (socklen_t)(GROUPS_MAX * sizeof(gid_t));
  size_t np = 0;
  if (getsockopt(c, SOL_SOCKET, SO_PEERGROUPS, peer, &plen) == 0) np = plen / sizeof(gid_t);
  else if (errno == ERANGE) return "the requester is in too many groups to compare";
  peer[np++] = cr.gid;
  int nm = getgroups(GROUPS_MAX, mine);
  if (nm < 0) return "the process is in too many groups to compare";
  mine[nm++] = rg;
  mine[nm++] = eg;
  mine[nm++] = sg;
  for (int i = 0; i < nm; i++)
    if (!in_list(mine[i], peer, np)) {
      sm_snprintf(buf, cap, "the process is in group %u and the requester is not", (unsigned)mine[i]);
      return buf;
    }
  return NULL;
}

/* ---------------------------------------------------------------- requests */

/* A whole number of decimal digits in s[0..n), at most max; false if
 * anything else. */
static bool parse_number(const char *s, size_t n, unsigned long long max, unsigned long long *out) {
  if (n == 0 || n > 20) return false;
  unsigned long long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (max - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

static size_t reply_error(char *out, size_t cap, const char *why) { return sm_snprintf(out, cap, "error %s", why); }

/* start[ depth=N][ sample=BYTES]: each key at most once, nothing else. */
static size_t do_start(const char *args, size_t n, char *out, size_t cap) {
  unsigned long long depth = 0, sample = 0;
  bool have_depth = false, have_sample = false;
  size_t i = 0;
  while (i < n) {
    if (args[i] != ' ') return reply_error(out, cap, "malformed request (start takes ' depth=N' and ' sample=BYTES')");
    size_t k = ++i;
    while (i < n && args[i] != ' ') i++;
    const char *item = args + k, *eq = memchr(item, '=', i - k);
    if (!eq) return reply_error(out, cap, "malformed request (start takes ' depth=N' and ' sample=BYTES')");
    size_t klen = (size_t)(eq - item), vlen = i - k - klen - 1;
    if (klen == 5 && !memcmp(item, "depth", 5) && !have_depth) {
      if (!parse_number(eq + 1, vlen, SM_SNAP_MAX_FRAMES, &depth) || depth < 1)
        return reply_error(out, cap, "depth must be a whole number from 1 to 128");
      have_depth = true;
    } else if (klen == 6 && !memcmp(item, "sample", 6) && !have_sample) {
      if (!parse_number(eq + 1, vlen, 1ULL << 40, &sample))
        return reply_error(out, cap, "sample must be a whole number of bytes from 0 to 2^40");
      have_sample = true;
    } else {
      return reply_error(out, cap, "malformed request (start takes ' depth=N' and ' sample=BYTES', each once)");
    }
  }
  const char *why = "";
  if (sm_tracer_switch_on(have_depth ? (int)depth : 0, have_sample, (size_t)sample, &why) != 0)
    return reply_error(out, cap, why);
  sm_triggers_tracing_on();
  return sm_snprintf(out, cap, "ok depth=%d sample=%zu", __atomic_load_n(&sm_opt.depth, __ATOMIC_RELAXED),
                     sm_opt.sample);
}

static size_t do_stop(size_t n, char *out, size_t cap) {
  if (n) return reply_error(out, cap, "malformed request (stop takes nothing)");
  const char *why = "";
  if (sm_tracer_switch_off(&why) != 0) return reply_error(out, cap, why);
  return sm_snprintf(out, cap, "ok traced=%zu", sm_tracer_current(NULL));
}

/* snap[ /PATH]: the file is complete when the answer goes out. */
static size_t do_snap(const char *args, size_t n, char *out, size_t cap) {
  static SM_BIG_BSS char path[SM_CTL_PATH_MAX], name[SM_CTL_PATH_MAX], cwd[SM_CTL_PATH_MAX]; /* the helper's alone */
  if (n) {
    if (args[0] != ' ' || n < 2 || args[1] != '/')
      return reply_error(out, cap, "malformed request (snap takes an absolute path)");
    if (n - 1 >= sizeof path) return reply_error(out, cap, "the path is too long");
    memcpy(path, args + 1, n - 1);
    path[n - 1] = '\0';
  }
  if (sm_snapshot_write_as(n ? path : NULL, 0, name, sizeof name) != 0) {
    char why[160];
    sm_snprintf(why, sizeof why, "cannot write the snapshot: %s", errno_text(errno));
    return reply_error(out, cap, why);
  }
  /* A relative `out` pattern names a file in the process's directory. */
  const char *dir = name[0] != '/' && getcwd(cwd, sizeof cwd) ? cwd : NULL;
  if ((dir ? strlen(dir) + 1 : 0) + strlen(name) + 4 > cap)
    return reply_error(out, cap, "the snapshot was written, but its path is too long to report");
  return dir ? sm_snprintf(out, cap, "ok %s/%s", dir, name) : sm_snprintf(out, cap, "ok %s", name);
}

/* Answers request req[0..n) into out; returns the answer's length. */
static size_t handle(const char *req, size_t n, char *out, size_t cap) {
  if (memchr(req, '\0', n)) return reply_error(out, cap, "malformed request (a NUL byte)");
  size_t v = 0;
  while (v < n && req[v] != ' ') v++;
  if (v == 5 && !memcmp(req, "start", 5)) return do_start(req + v, n - v, out, cap);
  if (v == 4 && !memcmp(req, "stop", 4)) return do_stop(n - v, out, cap);
  if (v == 4 && !memcmp(req, "snap", 4)) return do_snap(req + v, n - v, out, cap);
  return reply_error(out, cap, "unknown request (start, stop or snap)");
}

/* Waits for connection c's request; its length, or -1 with the answer
 * already in out (*outlen). */
static ssize_t read_request(int c, char *req, size_t cap, char *out, size_t ocap, size_t *outlen) {
  uint64_t deadline = sm_os_now_ms() + SM_CTL_REQUEST_WAIT_MS;
  for (;;) {
    uint64_t now = sm_os_now_ms();
    struct pollfd p = {c, POLLIN, 0};
    int r = now < deadline ? poll(&p, 1, (int)(deadline - now)) : 0;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      *outlen = reply_error(out, ocap, "no request within 2 s");
      return -1;
    }
    /* MSG_TRUNC: the message's whole length, even past cap. */
    ssize_t got = recv(c, req, cap, MSG_TRUNC | MSG_DONTWAIT);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got < 0) {
      *outlen = 0; /* the requester is gone */
      return -1;
    }
    if ((size_t)got > cap) {
      *outlen = reply_error(out, ocap, "request too long");
      return -1;
    }
    return got;
  }
}

bool sm_control_serve_one(void) {
  sm_control_check();
  int lfd = sm_control_fd();
  if (lfd < 0) return false;
  int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (c < 0) return false; /* nobody waiting (or the requester gave up) */
  conn_fd = c;
  static SM_BIG_BSS char req[SM_CTL_MSG_MAX], out[SM_CTL_MSG_MAX]; /* the helper's alone */
  char why[96];
  size_t len;
  const char *refused = peer_refused(c, why, sizeof why);
  if (refused) {
    char tmp[160];
    sm_snprintf(tmp, sizeof tmp, "permission refused (%s)", refused);
    len = reply_error(out, sizeof out, tmp);
  } else {
    ssize_t n = read_request(c, req, sizeof req, out, sizeof out, &len);
    if (n >= 0) len = handle(req, (size_t)n, out, sizeof out);
  }
  if (len) {
    ssize_t w = send(c, out, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w; /* a requester that left gets nothing */
  }
  /* A request left unread (a refused peer's) would make the close report
   * a reset to the requester before our answer; read it first. */
  ssize_t drop = recv(c, req, 1, MSG_TRUNC | MSG_DONTWAIT);
  (void)drop;
  conn_fd = -1;
  close(c);
  return true;
}
