/* What every CPython reader (py311.c, py312.c, py313.c) shares and that
 * needs no interpreter header: strings to UTF-8 from their code points, and
 * line numbers from a code object's location table, whose format is the
 * same in 3.11, 3.12 and 3.13. Pure functions over memory the caller proved
 * live: no lock, no allocation. */
#include "tracer/python.h"

static uint32_t put_utf8(char *out, uint32_t n, uint32_t cap, uint32_t cp) {
  uint8_t b[4];
  uint32_t k;
  if (cp > 0x10FFFF) cp = 0xFFFD;
  if (cp < 0x80) {
    b[0] = (uint8_t)cp;
    k = 1;
  } else if (cp >= 0xDC80 && cp <= 0xDCFF) {
    /* How Python keeps a file name's undecodable byte (surrogateescape):
     * give the byte back. */
    b[0] = (uint8_t)(cp - 0xDC00);
    k = 1;
  } else if (cp < 0x800) {
    b[0] = (uint8_t)(0xC0 | (cp >> 6));
    b[1] = (uint8_t)(0x80 | (cp & 0x3F));
    k = 2;
  } else if (cp < 0x10000) {
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD; /* other lone surrogates */
    b[0] = (uint8_t)(0xE0 | (cp >> 12));
    b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (uint8_t)(0x80 | (cp & 0x3F));
    k = 3;
  } else {
    b[0] = (uint8_t)(0xF0 | (cp >> 18));
    b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (uint8_t)(0x80 | (cp & 0x3F));
    k = 4;
  }
  if (n + k > cap) return UINT32_MAX; /* full: stop at a character boundary */
  for (uint32_t i = 0; i < k; i++) out[n + i] = (char)b[i];
  return n + k;
}

uint32_t sm_py_utf8(unsigned kind, const void *data, size_t len, char *out, uint32_t cap) {
  uint32_t n = 0;
  for (size_t i = 0; i < len; i++) {
    uint32_t cp;
    if (kind == 1) cp = ((const uint8_t *)data)[i];
    else if (kind == 2) cp = ((const uint16_t *)data)[i];
    else if (kind == 4) cp = ((const uint32_t *)data)[i];
    else break;
    uint32_t next = put_utf8(out, n, cap, cp);
    if (next == UINT32_MAX) break;
    n = next;
  }
  return n;
}

/* A location table (Objects/locations.md in CPython's source) is a run of
 * entries, each starting with a byte that has its top bit set: bits 3-6
 * are the entry's form, bits 0-2 its length in code units minus one. Only
 * some forms move the line: 13 (no columns) and 14 (long) by a signed
 * varint that follows, 11 and 12 by one and two; 15 means "no location"
 * for its instructions without moving the line. Varints are 6 bits a
 * byte, low bits first, bit 6 set on every byte but the last. */
static int varint(const uint8_t **p, const uint8_t *end, uint32_t *out) {
  uint32_t v = 0;
  for (unsigned shift = 0; *p < end && shift < 32; shift += 6) {
    uint8_t b = *(*p)++;
    v |= (uint32_t)(b & 63) << shift;
    if (!(b & 64)) {
      *out = v;
      return 1;
    }
  }
  return 0;
}

int sm_py_line(const uint8_t *table, size_t len, int firstline, int lasti) {
  if (lasti < 0) return firstline; /* not started: the interpreter says the def line */
  const uint8_t *p = table, *end = table + len;
  int line = firstline;
  long at = 0;
  while (p < end) {
    uint8_t head = *p++;
    if (!(head & 128)) return -1; /* not an entry's first byte */
    unsigned form = (head >> 3) & 15;
    long units = (head & 7) + 1;
    uint32_t v;
    const uint8_t *q = p;
    if (form == 13 || form == 14) {
      if (!varint(&q, end, &v)) return -1;
      line += (v & 1) ? -(int)(v >> 1) : (int)(v >> 1);
    } else if (form == 11 || form == 12) {
      line += (int)form - 10;
    }
    if (lasti < at + units) return form == 15 ? -1 : line;
    at += units;
    while (p < end && !(*p & 128)) p++; /* the rest of the entry: columns */
  }
  return -1; /* past the table */
}
