/* Allocation-free formatting and stderr output (see msg.h). Usable from any
 * context, including before libc is initialised and inside signal handlers. */
#include "allocator/msg.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct outbuf {
  char *buf;
  size_t cap; /* includes room for the terminating NUL */
  size_t len;
} outbuf_t;

static void out_char(outbuf_t *o, char c) {
  if (o->len + 1 < o->cap) o->buf[o->len] = c;
  o->len++;
}

static void out_str(outbuf_t *o, const char *s) {
  if (!s) s = "(null)";
  while (*s) out_char(o, *s++);
}

/* v in base, zero-padded to at least `zeros` digits (at most 23). */
static void out_unsigned_padded(outbuf_t *o, unsigned long long v, unsigned base, int zeros) {
  char tmp[24];
  int n = 0;
  do {
    unsigned d = (unsigned)(v % base);
    tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= base;
  } while (v);
  while (n < zeros && n < (int)sizeof tmp) tmp[n++] = '0';
  while (n) out_char(o, tmp[--n]);
}

static void out_unsigned(outbuf_t *o, unsigned long long v, unsigned base) { out_unsigned_padded(o, v, base, 0); }

static void out_signed(outbuf_t *o, long long v) {
  if (v < 0) {
    out_char(o, '-');
    out_unsigned(o, (unsigned long long)(-(v + 1)) + 1, 10);
  } else {
    out_unsigned(o, (unsigned long long)v, 10);
  }
}

size_t sm_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap) {
  outbuf_t o = {buf, cap, 0};
  for (const char *f = fmt; *f; f++) {
    if (*f != '%') {
      out_char(&o, *f);
      continue;
    }
    f++;
    int prec = -1; /* only "%.*s" is supported */
    if (f[0] == '.' && f[1] == '*') {
      prec = va_arg(ap, int);
      f += 2;
    }
    int zeros = 0; /* "%016llx": zero-padded width, for numbers */
    if (*f == '0')
      while (*++f >= '0' && *f <= '9') zeros = zeros * 10 + (*f - '0');
    int lng = 0; /* 0 int, 1 long/size_t, 2 long long */
    if (*f == 'z' || *f == 'l') {
      lng = 1;
      f++;
      if (*f == 'l') {
        lng = 2;
        f++;
      }
    }
    switch (*f) {
    case 's': {
      const char *str = va_arg(ap, const char *);
      if (prec >= 0 && str)
        for (int i = 0; i < prec && str[i]; i++) out_char(&o, str[i]);
      else
        out_str(&o, str);
      break;
    }
    case 'c': out_char(&o, (char)va_arg(ap, int)); break;
    case 'd':
      out_signed(&o, lng == 2 ? va_arg(ap, long long) : lng ? va_arg(ap, long) : va_arg(ap, int));
      break;
    case 'u':
    case 'x': {
      unsigned long long v = lng == 2 ? va_arg(ap, unsigned long long)
                             : lng   ? va_arg(ap, unsigned long)
                                     : va_arg(ap, unsigned);
      out_unsigned_padded(&o, v, *f == 'x' ? 16 : 10, zeros);
      break;
    }
    case 'p':
      out_str(&o, "0x");
      out_unsigned(&o, (uintptr_t)va_arg(ap, void *), 16);
      break;
    case '%': out_char(&o, '%'); break;
    case '\0': f--; break;
    default: out_char(&o, '%'); out_char(&o, *f); break;
    }
  }
  if (cap) buf[o.len < cap ? o.len : cap - 1] = '\0';
  return o.len < cap ? o.len : (cap ? cap - 1 : 0);
}

size_t sm_snprintf(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t n = sm_vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
  return n;
}

void sm_write_all(int fd, const char *buf, size_t len) {
  int saved = errno;
  while (len) {
    ssize_t w = write(fd, buf, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    buf += w;
    len -= (size_t)w;
  }
  errno = saved;
}

static void emit(const char *prefix, const char *fmt, va_list ap) {
  char buf[512];
  size_t n = sm_snprintf(buf, sizeof buf, "snapmalloc: %s", prefix);
  n += sm_vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
  buf[n++] = '\n';
  sm_write_all(2, buf, n);
}

void sm_info(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  emit("", fmt, ap);
  va_end(ap);
}

static int warnings_left = 16;

void sm_warning(const char *fmt, ...) {
  if (__atomic_sub_fetch(&warnings_left, 1, __ATOMIC_RELAXED) < 0) return;
  va_list ap;
  va_start(ap, fmt);
  emit("warning: ", fmt, ap);
  va_end(ap);
}

void sm_warning_always(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  emit("warning: ", fmt, ap);
  va_end(ap);
}

/* abort() flushes nothing and allocates nothing; make sure SIGABRT is not
 * blocked or ignored so the process really stops here. */
static SM_NORETURN void stop(void) {
  signal(SIGABRT, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGABRT);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  abort();
}

void sm_fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  emit("error: ", fmt, ap);
  va_end(ap);
  stop();
}

/* sm_assert's failure (base.h): the library's own bug or a heap corrupted
 * behind its back, found by a checked build. */
void sm_assert_fail(const char *expr, const char *file, int line) {
  char buf[512];
  size_t n = sm_snprintf(buf, sizeof buf - 1, "snapmalloc: assertion failed: %s at %s:%d", expr, file, line);
  buf[n++] = '\n';
  sm_write_all(2, buf, n);
  stop();
}
