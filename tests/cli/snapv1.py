#!/usr/bin/env python3
"""Writes a version-2 snapshot as the version-1 writer would have: without
INFO's peak RSS and without the FLOW section, and without the traces that
version 2 keeps only for their peak or flow figures (nothing live). The
checksum is computed again.
   snapv1.py IN OUT
"""
import struct
import sys
import zlib

INFO_FIXED_V1 = 10 * 8 + 2 * 4
TRACE_FIXED = 4 + 2 + 2 + 8 + 8 + 4 * 16
FRAME = 12


def live_traces(body, count):
    """The TRACES records that hold live blocks or leak figures, and their number."""
    out, kept, off = b'', 0, 0
    for _ in range(count):
        nframes = struct.unpack_from('<H', body, off + 4)[0]
        end = off + TRACE_FIXED + nframes * FRAME
        size, blocks = struct.unpack_from('<QQ', body, off + 8)
        leaks = struct.unpack_from('<8Q', body, off + 24)
        if size or blocks or any(leaks):
            out += body[off:end]
            kept += 1
        off = end
    return out, kept


def main():
    data = open(sys.argv[1], 'rb').read()
    magic, version, hdrsize, payload = data[:8], *struct.unpack_from('<IIQ', data, 8)
    if magic != b'SNAPMALC' or version != 2 or hdrsize != 32:
        sys.exit('snapv1.py: %s is not a version-2 snapshot' % sys.argv[1])
    body, off, out = data[32:32 + payload], 0, b''
    while off < len(body):
        tag, count, n = struct.unpack_from('<IIQ', body, off)
        sec = body[off + 16:off + 16 + n]
        off += 16 + n
        if tag == 4:  # FLOW
            continue
        if tag == 1:  # INFO: drop peak_rss
            sec = sec[:INFO_FIXED_V1] + sec[INFO_FIXED_V1 + 8:]
        if tag == 3:
            sec, count = live_traces(sec, count)
        out += struct.pack('<IIQ', tag, count, len(sec)) + sec
    header = b'SNAPMALC' + struct.pack('<IIQII', 1, 32, len(out), zlib.crc32(out) & 0xffffffff, 0)
    open(sys.argv[2], 'wb').write(header + out)


if __name__ == '__main__':
    main()
