/* See util.h. */
#include "tools/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void oom(void) {
  fputs("snapmalloc: out of memory\n", stderr);
  exit(2);
}

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom();
  return p;
}

void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) oom();
  return p;
}

void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) oom();
  return p;
}

char *xstrdup(const char *s) {
  char *d = strdup(s);
  if (!d) oom();
  return d;
}

static void sb_reserve(strbuf_t *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap * 2 : 64;
  while (cap < b->len + extra + 1) cap *= 2;
  b->s = xrealloc(b->s, cap);
  b->cap = cap;
}

void sb_putc(strbuf_t *b, char c) {
  sb_reserve(b, 1);
  b->s[b->len++] = c;
  b->s[b->len] = '\0';
}

void sb_puts(strbuf_t *b, const char *s) {
  size_t n = strlen(s);
  sb_reserve(b, n);
  memcpy(b->s + b->len, s, n + 1);
  b->len += n;
}

void sb_printf(strbuf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  sb_reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

int sm_open_regular(const char *path, char *why, size_t whylen) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    if (why) snprintf(why, whylen, "%s", strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    if (why) snprintf(why, whylen, "%s", strerror(errno));
    close(fd);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    const char *what = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "of an unknown kind";
    if (why) snprintf(why, whylen, "not a regular file (%s)", what);
    close(fd);
    return -1;
  }
  return fd;
}

int sm_utf8_char(const unsigned char *s, uint32_t *cp) {
  if (s[0] < 0x80) {
    *cp = s[0];
    return 1;
  }
  int n = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
  if (!n) return 0;
  uint32_t v = s[0] & (0x7f >> n);
  for (int i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0; /* also stops at the NUL */
    v = v << 6 | (s[i] & 0x3f);
  }
  static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < min[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return n;
}

bool sm_unsafe_char(uint32_t c) {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x61c || (c >= 0x200b && c <= 0x200f) ||
         (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x2069) || c == 0xfeff;
}

/* The display form of the character at p (len bytes, code point cp; len 0:
 * an invalid byte) into buf; returns its length. */
static int escape_one(char buf[16], const unsigned char *p, int len, uint32_t cp) {
  if (!len) return snprintf(buf, 16, "\\x%02x", p[0]);
  if (cp == '\\') return snprintf(buf, 16, "\\\\");
  if (cp < 0x80 && sm_unsafe_char(cp)) return snprintf(buf, 16, "\\x%02x", (unsigned)cp);
  if (sm_unsafe_char(cp)) return snprintf(buf, 16, "\\u%04x", (unsigned)cp);
  memcpy(buf, p, (size_t)len);
  return len;
}

bool sm_plain(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
      p++;
      continue;
    }
    uint32_t cp;
    int len = sm_utf8_char(p, &cp);
    if (!len || cp == '\\' || sm_unsafe_char(cp)) return false;
    p += len;
  }
  return true;
}

void sm_escape(strbuf_t *b, const char *s, size_t max) {
  size_t start = b->len;
  const unsigned char *p = (const unsigned char *)s;
  char one[16];
  while (*p) {
    uint32_t cp = 0;
    int len = sm_utf8_char(p, &cp);
    int n = escape_one(one, p, len, cp);
    bool more = p[len ? len : 1] != '\0';
    if (max && b->len - start + (size_t)n > (more ? max - 3 : max)) {
      sb_puts(b, "..."); /* cut at a character boundary, marked */
      return;
    }
    sb_reserve(b, (size_t)n);
    memcpy(b->s + b->len, one, (size_t)n);
    b->len += (size_t)n;
    b->s[b->len] = '\0';
    p += len ? len : 1;
  }
  if (!b->s) sb_puts(b, "");
}

void sm_put_escaped(FILE *out, const char *s) {
  if (sm_plain(s)) {
    fputs(s, out);
    return;
  }
  strbuf_t b = {0};
  sm_escape(&b, s, 0);
  fputs(b.s, out);
  free(b.s);
}

void json_str(FILE *out, const char *s) {
  if (!s) {
    fputs("null", out);
    return;
  }
  fputc('"', out);
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    uint32_t cp;
    int len = sm_utf8_char(p, &cp);
    if (!len) {
      fputs("\\ufffd", out); /* not UTF-8: the replacement character */
      p++;
      continue;
    }
    switch (cp) {
    case '"': fputs("\\\"", out); break;
    case '\\': fputs("\\\\", out); break;
    case '\n': fputs("\\n", out); break;
    case '\t': fputs("\\t", out); break;
    case '\r': fputs("\\r", out); break;
    default:
      if (sm_unsafe_char(cp)) fprintf(out, "\\u%04x", (unsigned)cp);
      else fwrite(p, 1, (size_t)len, out);
    }
    p += len;
  }
  fputc('"', out);
}

const char *sm_base_name(const char *path) {
  const char *s = path ? strrchr(path, '/') : NULL;
  return s ? s + 1 : path;
}

void sm_remove_dir(const char *who, const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    unlinkat(dirfd(d), e->d_name, 0);
  }
  if (d) closedir(d);
  if (rmdir(dir) != 0 && errno != ENOENT) fprintf(stderr, "snapmalloc %s: cannot remove %s: %s\n", who, dir, strerror(errno));
}
