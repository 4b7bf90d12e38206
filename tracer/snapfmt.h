/* The snapshot file format, version 3: the one definition shared by the
 * tracer (writer) and the tools (reader). docs/snapshot-format.md describes
 * it for people, with versions 1 and 2, which the reader still reads. All
 * integers are little-endian and unaligned; a varint is unsigned LEB128
 * (7 bits a byte, low bits first, at most 10 bytes).
 *
 *   header (32 bytes)
 *     magic    8  "SNAPMALC"
 *     version  u32  SM_SNAP_VERSION
 *     hdrsize  u32  32
 *     payload  u64  bytes after the header
 *     crc32    u32  CRC-32 (IEEE) of the payload
 *     zero     u32
 *   payload: sections, each
 *     tag u32, count u32 (records), bytes u64 (body length), body
 *   in this order: INFO, MODULES, PYFRAMES when a trace has Python frames,
 *   FRAMES, TRACES, then LEAKS when leak classes were computed. Readers
 *   skip unknown tags.
 *
 *   INFO body: u64 pid, u64 time_ns (CLOCK_REALTIME), u64 traced_current,
 *     u64 traced_peak, u64 rss, u64 heap_mapped, u64 heap_inuse,
 *     u64 meta_mapped, u64 sequence, u64 sample_bytes, u32 depth, u32 flags,
 *     (version 2 on:) u64 peak_rss (VmHWM, bytes),
 *     then three strings (u32 length + bytes): program path, command line
 *     (arguments separated by NUL), SNAPMALLOC_OPTIONS as given.
 *   MODULES record: u64 bias, u64 start, u64 end, u32 path_len,
 *     u32 build_id_len, path, build_id.
 *   PYFRAMES (version 3, only when some frame is a Python frame): u32
 *     module index of the interpreter (its native frames are the
 *     interpreter's own; SM_SNAP_NO_MODULE: unknown), u32 its Py_Version
 *     (PY_VERSION_HEX), then `count` records: u32 line (0: unknown), u32
 *     file_len, u32 name_len, file name, function name (qualified), as
 *     bytes (UTF-8 but for file names' undecodable bytes).
 *   FRAMES record (version 3): u32 module index, u64 offset: every distinct
 *     frame of the traces once; traces name them by their index. module ==
 *     SM_SNAP_NO_MODULE: offset is the raw address. A frame's offset is a
 *     return address minus the module's bias (look up at - 1). module ==
 *     SM_SNAP_PY_MODULE: a Python frame, offset its PYFRAMES record.
 *   TRACES record (version 3), all varints: id minus the previous record's
 *     id (the first: minus 0; so ids rise and none is 0), nframes, flags,
 *     size, count (live bytes and blocks), peak_size, peak_count (live when
 *     traced memory was at its peak, INFO's traced_peak), allocations,
 *     allocated (blocks and bytes allocated since tracing started or the
 *     last peak reset), temporary (blocks freed by their thread before it
 *     allocated again), then nframes frame indices, innermost first.
 *     Written for every trace with live blocks, leaks, or at-peak or flow
 *     figures. Estimates when SM_SNAP_SAMPLED.
 *   LEAKS record (version 3, present exactly when SM_SNAP_LEAKS): varint
 *     id (rising; 0, first, for blocks that have no trace, else a TRACES
 *     id), then 4 x (varint size, varint count), one per leak class, not
 *     all zero. Traces without a record leaked nothing.
 *
 *   Version 2 had no FRAMES or LEAKS: TRACES records were u32 id, u16
 *   nframes, u16 flags, u64 size, u64 count, 4 x (u64, u64) leak classes,
 *   nframes x (u32 module, u64 offset), with an id-0 record for untraced
 *   leaks; a FLOW section (tag 4) followed, one record per TRACES record of
 *   nonzero id: u32 id, u32 zero, u64 peak_size, peak_count, allocations,
 *   allocated, temporary. Version 1 had neither FLOW nor peak_rss. */
#ifndef SM_TRACER_SNAPFMT_H
#define SM_TRACER_SNAPFMT_H

#include <stddef.h>
#include <stdint.h>

#define SM_SNAP_MAGIC "SNAPMALC"
#define SM_SNAP_VERSION 3u     /* the version the writer writes */
#define SM_SNAP_VERSION_MIN 1u /* the oldest the reader reads */
#define SM_SNAP_VERSION_MAX 3u /* the newest the reader reads */
#define SM_SNAP_HEADER_SIZE 32u

enum {
  SM_SNAP_SEC_INFO = 1,
  SM_SNAP_SEC_MODULES = 2,
  SM_SNAP_SEC_TRACES = 3,
  SM_SNAP_SEC_FLOW = 4,   /* version 2 only */
  SM_SNAP_SEC_FRAMES = 5, /* version 3 */
  SM_SNAP_SEC_LEAKS = 6,  /* version 3 */
  SM_SNAP_SEC_PYFRAMES = 7, /* version 3, with Python frames */
};

/* INFO flags */
#define SM_SNAP_SAMPLED 1u   /* sizes and counts are estimates from sampling */
#define SM_SNAP_LEAKS 2u     /* leak classes were computed (final snapshot) */
#define SM_SNAP_FINAL 4u     /* written at exit */
#define SM_SNAP_OFF 8u       /* tracing was off when written: stopped (control channel), or never started */

/* TRACES flags */
#define SM_SNAP_TRUNCATED 1u /* the stack was deeper than `depth` */

#define SM_SNAP_NO_MODULE 0xffffffffu
#define SM_SNAP_PY_MODULE 0xfffffffeu /* a FRAMES record that is a Python frame */
#define SM_SNAP_MAX_FRAMES 128

/* Leak classes, in the order they are stored. */
enum {
  SM_LEAK_DEFINITE = 0,
  SM_LEAK_INDIRECT = 1,
  SM_LEAK_POSSIBLE = 2,
  SM_LEAK_REACHABLE = 3,
  SM_LEAK_CLASSES = 4,
};

#define SM_SNAP_INFO_FIXED_V1 (10 * 8 + 2 * 4)
#define SM_SNAP_INFO_FIXED (SM_SNAP_INFO_FIXED_V1 + 8) /* version 2: + peak_rss */
#define SM_SNAP_TRACE_FIXED (4 + 2 + 2 + 8 + 8 + SM_LEAK_CLASSES * 16) /* version 1, 2 */
#define SM_SNAP_TRACE_MIN_V3 10 /* ten varints of one byte */
#define SM_SNAP_LEAK_MIN_V3 (1 + 2 * SM_LEAK_CLASSES)
#define SM_SNAP_VARINT_MAX 10
#define SM_SNAP_FRAME_SIZE 12 /* a version-1/2 frame, a FRAMES record */
#define SM_SNAP_MODULE_FIXED (3 * 8 + 2 * 4)
#define SM_SNAP_FLOW_SIZE (2 * 4 + 5 * 8)
#define SM_SNAP_PYFRAMES_FIXED 8 /* module, version */
#define SM_SNAP_PYFRAME_FIXED 12 /* line, file_len, name_len */
#define SM_SNAP_PY_FILE_MAX 4095u
#define SM_SNAP_PY_NAME_MAX 1023u

/* CRC-32 (IEEE 802.3, reflected), continuing from `crc` (start with 0). */
uint32_t sm_crc32(uint32_t crc, const void *data, size_t len);

#endif
