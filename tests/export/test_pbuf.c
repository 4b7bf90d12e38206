/* The protobuf writer of `snapmalloc export` (tools/pbuf.c) against bytes
 * worked out by hand from the wire format: varints at every length
 * boundary, negative int64s, tags, strings, nested messages and packed
 * repeated fields, and a whole pprof ValueType. */
#include <stdio.h>
#include <string.h>

#include "tools/pbuf.h"

static int fails;

static void expect(const char *what, const pb_t *b, const uint8_t *want, size_t n) {
  if (b->len == n && memcmp(b->p, want, n) == 0) return;
  fails++;
  printf("FAIL: %s: got", what);
  for (size_t i = 0; i < b->len; i++) printf(" %02x", b->p[i]);
  printf(", want");
  for (size_t i = 0; i < n; i++) printf(" %02x", want[i]);
  printf("\n");
}

#define EXPECT(what, b, ...)                                   \
  do {                                                         \
    static const uint8_t want_[] = {__VA_ARGS__};              \
    expect(what, b, want_, sizeof want_);                      \
  } while (0)

int main(void) {
  pb_t b = {0};

  /* varints: 7 bits a byte, low group first, high bit = more follows */
  pb_varint(&b, 0);
  EXPECT("varint 0", &b, 0x00);
  pb_reset(&b), pb_varint(&b, 1);
  EXPECT("varint 1", &b, 0x01);
  pb_reset(&b), pb_varint(&b, 127);
  EXPECT("varint 127", &b, 0x7f);
  pb_reset(&b), pb_varint(&b, 128);
  EXPECT("varint 128", &b, 0x80, 0x01);
  pb_reset(&b), pb_varint(&b, 300);          /* 300 = 0b10_0101100 */
  EXPECT("varint 300", &b, 0xac, 0x02);
  pb_reset(&b), pb_varint(&b, 16383);
  EXPECT("varint 16383", &b, 0xff, 0x7f);
  pb_reset(&b), pb_varint(&b, 16384);
  EXPECT("varint 16384", &b, 0x80, 0x80, 0x01);
  pb_reset(&b), pb_varint(&b, 0xffffffffu);
  EXPECT("varint 2^32-1", &b, 0xff, 0xff, 0xff, 0xff, 0x0f);
  pb_reset(&b), pb_varint(&b, UINT64_MAX);   /* also int64 -1: ten bytes */
  EXPECT("varint 2^64-1", &b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);
  pb_reset(&b), pb_varint(&b, (uint64_t)(int64_t)-2);
  EXPECT("int64 -2", &b, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);
  pb_reset(&b), pb_varint(&b, 1ull << 63);
  EXPECT("varint 2^63", &b, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01);

  /* tags: field << 3 | wire type, itself a varint */
  pb_reset(&b), pb_tag(&b, 1, PB_VARINT);
  EXPECT("tag 1 varint", &b, 0x08);
  pb_reset(&b), pb_tag(&b, 6, PB_LEN);
  EXPECT("tag 6 len", &b, 0x32);
  pb_reset(&b), pb_tag(&b, 16, PB_LEN);      /* (16 << 3) | 2 = 130 */
  EXPECT("tag 16 len", &b, 0x82, 0x01);

  /* varint fields, and proto3's "a zero is not written" */
  pb_reset(&b), pb_uint(&b, 2, 300);
  EXPECT("field 2 = 300", &b, 0x10, 0xac, 0x02);
  pb_reset(&b), pb_uint(&b, 9, 0);
  if (b.len != 0) fails++, printf("FAIL: a zero varint field was written\n");

  /* length-delimited: strings (empty ones too) and nested messages */
  pb_reset(&b), pb_str(&b, 6, "");
  EXPECT("empty string", &b, 0x32, 0x00);
  pb_reset(&b), pb_str(&b, 6, "bytes");
  EXPECT("string", &b, 0x32, 0x05, 'b', 'y', 't', 'e', 's');
  pb_t sub = {0};
  pb_uint(&sub, 1, 3);                       /* ValueType{type: 3, unit: 4} */
  pb_uint(&sub, 2, 4);
  pb_reset(&b), pb_msg(&b, 1, &sub);         /* Profile.sample_type */
  EXPECT("nested ValueType", &b, 0x0a, 0x04, 0x08, 0x03, 0x10, 0x04);

  /* packed repeated: one length, then the varints; nothing when empty */
  uint64_t v[] = {1, 150, 0, 1ull << 35};
  pb_reset(&b), pb_packed(&b, 2, v, 4);      /* 1 + 2 + 1 + 6 = 10 bytes */
  EXPECT("packed", &b, 0x12, 0x0a, 0x01, 0x96, 0x01, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01);
  pb_reset(&b), pb_packed(&b, 2, v, 0);
  if (b.len != 0) fails++, printf("FAIL: an empty packed field was written\n");

  /* a string longer than 127 bytes: two-byte length */
  char big[200];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  pb_reset(&b), pb_str(&b, 6, big);
  if (b.len != 3 + 199 || b.p[0] != 0x32 || b.p[1] != 0xc7 || b.p[2] != 0x01 || b.p[3] != 'x')
    fails++, printf("FAIL: 199-byte string header\n");

  /* appending encoded fields, and growth past the first buffer */
  pb_t all = {0};
  for (int i = 0; i < 1000; i++) pb_append(&all, &b);
  if (all.len != 1000 * b.len || memcmp(all.p + 999 * b.len, b.p, b.len) != 0) fails++, printf("FAIL: pb_append\n");

  pb_free(&all);
  pb_free(&sub);
  pb_free(&b);
  if (fails) printf("pbuf: %d checks failed\n", fails);
  else printf("pbuf: all encodings match\n");
  return fails ? 1 : 0;
}
