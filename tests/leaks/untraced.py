#!/usr/bin/env python3
"""Writes a final snapshot whose only leaks are in the id-0 record (blocks
with no trace: allocated before tracing started), as the library writes it:
    untraced.py OUT DEF_BYTES DEF_BLOCKS [SAMPLED]
The leak gate must report and count them (tests/leaks/compare.sh)."""
import struct
import sys
import zlib

out, def_bytes, def_blocks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sampled = len(sys.argv) > 4 and sys.argv[4] == "sampled"
FINAL, LEAKS, SAMPLED = 4, 2, 1
flags = FINAL | LEAKS | (SAMPLED if sampled else 0)


def string(s):
    b = s.encode()
    return struct.pack("<I", len(b)) + b


def section(tag, count, body):
    return struct.pack("<IIQ", tag, count, len(body)) + body


info = struct.pack("<10Q2I", 1234, 0, 0, 0, 0, 0, 0, 0, 0, 4096 if sampled else 0, 16, flags)
info += string("/bin/untraced") + string("untraced") + string("trace=1")
leak = struct.pack("<8Q", def_bytes, def_blocks, 0, 0, 0, 0, 0, 0)
trace = struct.pack("<IHHQQ", 0, 0, 0, 0, 0) + leak
payload = section(1, 1, info) + section(2, 0, b"") + section(3, 1, trace)
header = b"SNAPMALC" + struct.pack("<IIQII", 1, 32, len(payload), zlib.crc32(payload) & 0xFFFFFFFF, 0)
open(out, "wb").write(header + payload)
