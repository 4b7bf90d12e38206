/* Protocol-buffers wire format, writer side only (see pbuf.h). */
#include "tools/pbuf.h"

#include <stdlib.h>
#include <string.h>

#include "tools/util.h"

static void reserve(pb_t *b, size_t more) {
  if (b->len + more <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + more) cap *= 2;
  b->p = xrealloc(b->p, cap);
  b->cap = cap;
}

void pb_reset(pb_t *b) { b->len = 0; }

void pb_free(pb_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

void pb_varint(pb_t *b, uint64_t v) {
  reserve(b, 10); /* 64 bits in 7-bit groups */
  while (v >= 0x80) {
    b->p[b->len++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  b->p[b->len++] = (uint8_t)v;
}

void pb_tag(pb_t *b, unsigned field, unsigned wire) { pb_varint(b, (uint64_t)field << 3 | wire); }

void pb_uint(pb_t *b, unsigned field, uint64_t v) {
  if (!v) return;
  pb_tag(b, field, PB_VARINT);
  pb_varint(b, v);
}

void pb_bytes(pb_t *b, unsigned field, const void *data, size_t n) {
  pb_tag(b, field, PB_LEN);
  pb_varint(b, n);
  reserve(b, n);
  if (n) memcpy(b->p + b->len, data, n);
  b->len += n;
}

void pb_str(pb_t *b, unsigned field, const char *s) { pb_bytes(b, field, s, s ? strlen(s) : 0); }

void pb_msg(pb_t *b, unsigned field, const pb_t *sub) { pb_bytes(b, field, sub->p, sub->len); }

void pb_append(pb_t *b, const pb_t *src) {
  reserve(b, src->len);
  if (src->len) memcpy(b->p + b->len, src->p, src->len);
  b->len += src->len;
}

void pb_packed(pb_t *b, unsigned field, const uint64_t *v, size_t n) {
  if (!n) return;
  size_t len = 0; /* the length prefix comes first: count the bytes */
  for (size_t i = 0; i < n; i++) {
    uint64_t x = v[i];
    do {
      len++;
      x >>= 7;
    } while (x);
  }
  pb_tag(b, field, PB_LEN);
  pb_varint(b, len);
  for (size_t i = 0; i < n; i++) pb_varint(b, v[i]);
}
