/* See svg.h. The pictures are plain SVG 1.1 with inline style and script:
 * no external fonts, images or scripts, so one file opens anywhere. */
#include "tools/svg.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/cli.h"
#include "tools/util.h"

FILE *svg_open(const char *cmd, const char *path) {
  if (!path || !strcmp(path, "-")) {
    /* A screenful of markup helps nobody; say what to do instead. */
    if (isatty(STDOUT_FILENO)) cli_usage_error(cmd, "writes an SVG picture: give -o FILE or redirect stdout");
    return stdout;
  }
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "snapmalloc: %s: cannot create: %s\n", path, strerror(errno));
    exit(2);
  }
  return f;
}

void svg_close(FILE *out, const char *path) {
  bool to_file = out != stdout;
  int bad = fflush(out) != 0 || ferror(out);
  int err = errno;
  if (to_file && fclose(out) != 0 && !bad) bad = 1, err = errno;
  if (!bad) return;
  fprintf(stderr, "snapmalloc: %s: write error: %s\n", to_file ? path : "standard output", strerror(err));
  if (to_file) unlink(path);
  exit(2);
}

/* Characters written as they are: allowed in XML, and not a control or
 * formatting character (sm_unsafe_char) other than the line breaks that
 * separate the lines of a tooltip. */
static bool svg_char(uint32_t c) {
  if (c == '\n') return true;
  if (sm_unsafe_char(c)) return false;
  return (c >= 0x20 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff);
}

size_t svg_strlen(const char *s) {
  size_t n = 0;
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    uint32_t cp;
    int len = sm_utf8_char(p, &cp);
    p += len ? len : 1;
    n++;
  }
  return n;
}

void svg_text(FILE *out, const char *s, int max) {
  if (!s) return;
  size_t keep = (size_t)-1;
  if (max >= 0 && svg_strlen(s) > (size_t)max) keep = max >= 3 ? (size_t)max - 2 : 0;
  const unsigned char *p = (const unsigned char *)s;
  for (size_t n = 0; *p && n < keep; n++) {
    uint32_t cp;
    int len = sm_utf8_char(p, &cp);
    if (!len || !svg_char(cp)) {
      fputc('?', out);
      p += len ? len : 1;
      continue;
    }
    switch (cp) {
    case '&': fputs("&amp;", out); break;
    case '<': fputs("&lt;", out); break;
    case '>': fputs("&gt;", out); break;
    case '"': fputs("&quot;", out); break;
    case '\'': fputs("&apos;", out); break;
    default: fwrite(p, 1, (size_t)len, out);
    }
    p += len;
  }
  if (keep != (size_t)-1 && keep > 0) fputs("..", out);
}

int svg_fit(double width, double px) {
  double n = (width - 6) / (px * SVG_CHAR_EM);
  return n < 0 ? 0 : (int)n;
}

void svg_hsl(char buf[8], double h, double s, double l) {
  /* the usual HSL to RGB conversion: chroma, then the sector of the hue */
  h = fmod(h, 360);
  if (h < 0) h += 360;
  double c = (1 - fabs(2 * l - 1)) * s;
  double x = c * (1 - fabs(fmod(h / 60, 2) - 1));
  double m = l - c / 2, r = 0, g = 0, b = 0;
  switch ((int)(h / 60)) {
  case 0: r = c, g = x; break;
  case 1: r = x, g = c; break;
  case 2: g = c, b = x; break;
  case 3: g = x, b = c; break;
  case 4: r = x, b = c; break;
  default: r = c, b = x; break;
  }
  snprintf(buf, 8, "#%02x%02x%02x", (int)lround((r + m) * 255), (int)lround((g + m) * 255),
           (int)lround((b + m) * 255));
}

unsigned svg_hash(const char *s) {
  uint32_t h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) h = (h ^ *p) * 16777619u;
  return h;
}

double svg_tick_step(double max, int n) {
  if (!(max > 0)) return 1;
  double raw = max / n, mag = pow(10, floor(log10(raw)));
  static const double steps[] = {1, 2, 2.5, 5, 10};
  for (int i = 0; i < 5; i++)
    if (steps[i] * mag >= raw) return steps[i] * mag;
  return 10 * mag;
}

void svg_begin(FILE *out, int width, int height, const char *attrs, const char *style) {
  fprintf(out,
          "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
          "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
          "viewBox=\"0 0 %d %d\"%s%s>\n"
          "<style type=\"text/css\"><![CDATA[\n%s]]></style>\n",
          width, height, width, height, attrs ? " " : "", attrs ? attrs : "", style);
}

void svg_end(FILE *out) { fputs("</svg>\n", out); }
