/* A small protocol-buffers writer: just the wire format that `export`
 * needs for pprof's profile.proto (varints, length-delimited fields,
 * packed repeated varints). Messages are built inside out: encode the
 * inner message into its own buffer, then add it to the outer one with
 * pb_msg, which knows its length by then. */
#ifndef SM_TOOLS_PBUF_H
#define SM_TOOLS_PBUF_H

#include <stddef.h>
#include <stdint.h>

enum { PB_VARINT = 0, PB_LEN = 2 }; /* the two wire types we write */

typedef struct pb {
  uint8_t *p;
  size_t len, cap;
} pb_t;

void pb_reset(pb_t *b);  /* empties b, keeps its memory */
void pb_free(pb_t *b);

/* Base-128 varint, low 7 bits first. A negative int64 is written as its
 * two's complement uint64 (ten bytes), which is what int64 fields use. */
void pb_varint(pb_t *b, uint64_t v);
void pb_tag(pb_t *b, unsigned field, unsigned wire);

/* A varint field; left out when v is 0 (proto3's default value). */
void pb_uint(pb_t *b, unsigned field, uint64_t v);
/* A length-delimited field, always written (repeated strings need their
 * empty entries: string_table[0] is ""). */
void pb_bytes(pb_t *b, unsigned field, const void *data, size_t n);
void pb_str(pb_t *b, unsigned field, const char *s);
void pb_msg(pb_t *b, unsigned field, const pb_t *sub);
/* Appends fields already encoded in src (repeated fields built apart). */
void pb_append(pb_t *b, const pb_t *src);
/* A packed repeated varint field; left out when n is 0. */
void pb_packed(pb_t *b, unsigned field, const uint64_t *v, size_t n);

#endif
