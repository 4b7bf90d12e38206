/* Helpers shared by the pictures the tool draws itself (flame graphs and
 * timelines): the output file, XML-safe text, colours and axis ticks. */
#ifndef SM_TOOLS_SVG_H
#define SM_TOOLS_SVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Width of one character of the monospace font the pictures use, in
 * pixels per pixel of font size (DejaVu Sans Mono and Liberation Mono are
 * 0.6 em wide; a little slack keeps truncated labels inside their box). */
#define SVG_CHAR_EM 0.62

/* Opens path for writing, or stdout when path is NULL or "-". Refuses to
 * write to a terminal (exit 2 with one line, as a usage error of cmd). */
FILE *svg_open(const char *cmd, const char *path);
/* Flushes and closes out; on a write error prints one line, removes a
 * partly written file and exits 2. */
void svg_close(FILE *out, const char *path);

/* Writes s as XML character data (also safe inside attribute values):
 * & < > " ' escaped; bytes that are not valid UTF-8, characters not allowed
 * in XML, and control and formatting characters other than newline
 * (sm_unsafe_char) replaced by '?', so the file is always valid UTF-8 and
 * valid XML. Strings from a snapshot arrive in their display form already
 * (see sm_escape), where nothing needs replacing. With max >= 0, at most max characters: a longer string
 * is cut to max - 2 characters followed by "..", and to nothing when max < 3. */
void svg_text(FILE *out, const char *s, int max);
/* Characters (UTF-8 code points) in s. */
size_t svg_strlen(const char *s);
/* How many characters of font size px fit in width pixels (minus padding). */
int svg_fit(double width, double px);

/* "#rrggbb" for a hue (degrees), saturation and lightness (0..1). */
void svg_hsl(char buf[8], double h, double s, double l);
/* A stable 32-bit hash of s (FNV-1a), for colours that stay the same
 * between pictures. */
unsigned svg_hash(const char *s);

/* A "nice" tick step (1, 2, 2.5 or 5 times a power of ten) that cuts
 * [0, max] into about n intervals. */
double svg_tick_step(double max, int n);

/* The XML prologue and the opening <svg> element (with attrs, if not NULL,
 * as extra attributes) and its style sheet. */
void svg_begin(FILE *out, int width, int height, const char *attrs, const char *style);
void svg_end(FILE *out);

#endif
