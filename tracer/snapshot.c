/* The snapshot writer (format in snapfmt.h). It runs outside every
 * allocator lock: copies the trace table, reads the module map, builds the
 * whole file in a buffer from the metadata arena, then writes it to a
 * temporary name (mode 0600, O_EXCL | O_NOFOLLOW) and renames it into place,
 * so a reader never sees a torn file. No stdio, no malloc. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "allocator/internal.h"
#include "tracer/tracer.h"

static sm_lock_t write_lock = SM_LOCK_INIT; /* one snapshot at a time */
static uint64_t sequence;                   /* %n */

typedef struct wbuf {
  uint8_t *p;
  size_t len, cap;
} wbuf_t;

static void put(wbuf_t *b, const void *src, size_t n) {
  if (b->len + n <= b->cap) memcpy(b->p + b->len, src, n);
  b->len += n;
}
static void put_u16(wbuf_t *b, uint16_t v) { put(b, &v, 2); } /* x86-64 is little-endian */
static void put_u32(wbuf_t *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(wbuf_t *b, uint64_t v) { put(b, &v, 8); }
static void put_str(wbuf_t *b, const char *s, size_t n) {
  put_u32(b, (uint32_t)n);
  put(b, s, n);
}

/* Reads a small /proc file into buf; returns its length (0 on failure). */
static size_t read_file(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  size_t len = 0;
  while (len < cap) {
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
  }
  close(fd);
  return len;
}

static uint64_t rss_bytes(void) {
  char buf[128];
  size_t n = read_file("/proc/self/statm", buf, sizeof buf - 1);
  buf[n] = '\0';
  const char *p = buf;
  while (*p && *p != ' ') p++; /* skip size; the second field is resident pages */
  uint64_t pages = 0;
  for (p++; *p >= '0' && *p <= '9'; p++) pages = pages * 10 + (uint64_t)(*p - '0');
  return pages * sm_os_page_size;
}

static const char *base_name(const char *path) {
  const char *b = path;
  for (const char *p = path; *p; p++)
    if (*p == '/') b = p + 1;
  return b;
}

/* Expands the `out` pattern: %p pid, %n sequence, %e program name, %% '%'. */
static void expand_name(char *dst, size_t cap, const char *pattern, uint64_t seq) {
  char exe[256];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = '\0';
  size_t len = 0;
  for (const char *p = pattern; *p && len + 1 < cap; p++) {
    if (*p != '%' || !p[1]) {
      dst[len++] = *p;
      continue;
    }
    p++;
    char tmp[32];
    const char *ins = tmp;
    switch (*p) {
    case 'p': sm_snprintf(tmp, sizeof tmp, "%d", (int)getpid()); break;
    case 'n': sm_snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)seq); break;
    case 'e': ins = base_name(exe); break;
    case '%': ins = "%"; break;
    default: sm_snprintf(tmp, sizeof tmp, "%%%c", *p); break;
    }
    while (*ins && len + 1 < cap) dst[len++] = *ins++;
  }
  dst[len] = '\0';
}

/* Lays out the payload into b (measuring only when b->cap is 0). */
static void build_payload(wbuf_t *b, const sm_trace_copy_t *tr, size_t ntr, uint32_t flags, uint64_t seq,
                          const char *cmdline, size_t cmdlen) {
  /* INFO */
  size_t peak;
  size_t cur = sm_tracer_current(&peak);
  sm_stats_t st;
  sm_stats_get(&st);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  char exe[256];
  ssize_t en = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (en < 0) en = 0;
  const char *spec = sm_options_spec ? sm_options_spec : "";
  size_t info_len = SM_SNAP_INFO_FIXED + 12 + (size_t)en + cmdlen + strlen(spec);
  put_u32(b, SM_SNAP_SEC_INFO);
  put_u32(b, 1);
  put_u64(b, info_len);
  put_u64(b, (uint64_t)getpid());
  put_u64(b, (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec);
  put_u64(b, cur);
  put_u64(b, peak);
  put_u64(b, rss_bytes());
  put_u64(b, st.mapped);
  put_u64(b, st.pool_inuse + st.large_inuse + st.huge_inuse);
  put_u64(b, st.meta);
  put_u64(b, seq);
  put_u64(b, sm_opt.sample);
  put_u32(b, (uint32_t)sm_opt.depth);
  put_u32(b, flags | (sm_opt.sample ? SM_SNAP_SAMPLED : 0));
  put_str(b, exe, (size_t)en);
  put_str(b, cmdline, cmdlen);
  put_str(b, spec, strlen(spec));

  /* MODULES */
  uint32_t nmod = sm_modules_count();
  size_t mod_len = 0;
  for (uint32_t i = 0; i < nmod; i++) {
    const sm_module_t *m = sm_modules_get(i);
    mod_len += SM_SNAP_MODULE_FIXED + strlen(m->path) + m->build_id_len;
  }
  put_u32(b, SM_SNAP_SEC_MODULES);
  put_u32(b, nmod);
  put_u64(b, mod_len);
  for (uint32_t i = 0; i < nmod; i++) {
    const sm_module_t *m = sm_modules_get(i);
    put_u64(b, m->bias);
    put_u64(b, m->start);
    put_u64(b, m->end);
    put_u32(b, (uint32_t)strlen(m->path));
    put_u32(b, m->build_id_len);
    put(b, m->path, strlen(m->path));
    put(b, m->build_id, m->build_id_len);
  }

  /* TRACES; with leak analysis, blocks that have no trace are a record of
   * their own: id 0, no frames. */
  const uint64_t *untraced = sm_leaks_untraced();
  bool extra = false;
  if (flags & SM_SNAP_LEAKS)
    for (int k = 0; k < 2 * SM_LEAK_CLASSES; k++) extra |= untraced[k] != 0;
  size_t tr_len = extra ? SM_SNAP_TRACE_FIXED : 0;
  for (size_t i = 0; i < ntr; i++) tr_len += SM_SNAP_TRACE_FIXED + (size_t)tr[i].nframes * SM_SNAP_FRAME_SIZE;
  put_u32(b, SM_SNAP_SEC_TRACES);
  put_u32(b, (uint32_t)ntr + extra);
  put_u64(b, tr_len);
  if (extra) {
    put_u32(b, 0);
    put_u16(b, 0);
    put_u16(b, 0);
    put_u64(b, 0); /* live bytes and blocks of untraced blocks are not known */
    put_u64(b, 0);
    for (int k = 0; k < 2 * SM_LEAK_CLASSES; k++) put_u64(b, untraced[k]);
  }
  for (size_t i = 0; i < ntr; i++) {
    const sm_trace_copy_t *t = &tr[i];
    put_u32(b, t->id);
    put_u16(b, t->nframes);
    put_u16(b, t->flags);
    put_u64(b, t->size);
    put_u64(b, t->count);
    for (int c = 0; c < SM_LEAK_CLASSES; c++) {
      put_u64(b, t->leak[c][0]);
      put_u64(b, t->leak[c][1]);
    }
    for (unsigned f = 0; f < t->nframes; f++) {
      uint32_t mi = t->modules[f] == 0xffff ? SM_SNAP_NO_MODULE : t->modules[f];
      const sm_module_t *m = mi == SM_SNAP_NO_MODULE ? NULL : sm_modules_get(mi);
      put_u32(b, m ? mi : SM_SNAP_NO_MODULE);
      put_u64(b, m ? t->frames[f] - m->bias : t->frames[f]);
    }
  }
}

static int write_all_fd(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int sm_snapshot_write(const char *path, uint32_t flags) {
  if (!sm_trace_on) {
    errno = ENOTSUP;
    return -1;
  }
  sm_tracer_enter();
  sm_lock(&write_lock);
  int saved_errno = 0, rc = -1;
  uint64_t seq = sequence++;
  char name[SM_OUT_MAX + 64], tmp[SM_OUT_MAX + 96];
  if (path) {
    size_t i = 0;
    for (; path[i] && i + 1 < sizeof name; i++) name[i] = path[i];
    name[i] = '\0';
  } else {
    expand_name(name, sizeof name, sm_opt.out, seq);
  }
  char cmdline[4096];
  size_t cmdlen = read_file("/proc/self/cmdline", cmdline, sizeof cmdline);
  if (cmdlen && cmdline[cmdlen - 1] == '\0') cmdlen--; /* separators only */

  size_t ntr = 0, cap = 0;
  sm_trace_copy_t *tr = sm_tracer_copy(&ntr, &cap);
  sm_modules_refresh();
  wbuf_t measure = {NULL, 0, 0};
  build_payload(&measure, tr, ntr, flags, seq, cmdline, cmdlen);
  size_t total = SM_SNAP_HEADER_SIZE + measure.len + 4096; /* slack: stats may grow meanwhile */
  uint8_t *buf = sm_meta_alloc(total);
  if (!buf) {
    saved_errno = ENOMEM;
    goto out;
  }
  wbuf_t b = {buf + SM_SNAP_HEADER_SIZE, 0, total - SM_SNAP_HEADER_SIZE};
  build_payload(&b, tr, ntr, flags, seq, cmdline, cmdlen);
  if (b.len > b.cap) { /* more modules appeared between the passes */
    saved_errno = EAGAIN;
    goto out_buf;
  }
  memcpy(buf, SM_SNAP_MAGIC, 8);
  uint32_t v32 = SM_SNAP_VERSION;
  memcpy(buf + 8, &v32, 4);
  v32 = SM_SNAP_HEADER_SIZE;
  memcpy(buf + 12, &v32, 4);
  uint64_t plen = b.len;
  memcpy(buf + 16, &plen, 8);
  v32 = sm_crc32(0, buf + SM_SNAP_HEADER_SIZE, b.len);
  memcpy(buf + 24, &v32, 4);
  memset(buf + 28, 0, 4);

  sm_snprintf(tmp, sizeof tmp, "%s.tmp.%d.%llu", name, (int)getpid(), (unsigned long long)seq);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    saved_errno = errno;
    goto out_buf;
  }
  if (write_all_fd(fd, buf, SM_SNAP_HEADER_SIZE + b.len) != 0) {
    saved_errno = errno ? errno : EIO;
    close(fd);
    unlink(tmp);
    goto out_buf;
  }
  close(fd);
  if (rename(tmp, name) != 0) {
    saved_errno = errno;
    unlink(tmp);
    goto out_buf;
  }
  rc = 0;
out_buf:
  sm_meta_free(buf, total);
out:
  if (tr) sm_meta_free(tr, cap * sizeof *tr);
  sm_unlock(&write_lock);
  sm_tracer_leave();
  if (rc != 0) {
    const char *why = strerrordesc_np(saved_errno);
    sm_warning("cannot write snapshot %s: %s", name, why ? why : "unknown error");
    errno = saved_errno;
  }
  return rc;
}

sm_lock_t *const sm_write_lock_ref = &write_lock; /* for the lock table, tracer/locks.c */
