#!/usr/bin/env python3
"""Writes hostile snapshot files: well-formed (right checksum, every count
and length consistent) but built to make the tool misbehave.
   hostile.py KIND OUT [ARG]
KIND:
  modules N        N modules with 170-byte paths, one trace per module
  frames [BYTES]   about BYTES (5 MB) of traces of 128 frames, distinct
                   offsets, in 1,000 modules (flame and --by trace stress)
  longpath LEN     one module whose path is LEN bytes, a trace using it
  longpaths        about 5 MB: 1,000 modules with 4,095-byte paths of bytes
                   that are not UTF-8, traces of 128 frames in them
  escape           paths, program and frames with terminal escapes, bytes
                   that are not UTF-8 and XML metacharacters
  bigsizes         sizes and counts of 2^62 and more, so their sums pass 2^63
  module PATH      one module at PATH (a FIFO, a device...), a trace in it
  libc             a few traces in the C library and the loader, as a real
                   program's final snapshot has them (a seed for fuzzing)
  spellings N      N modules that are one file (the C library) spelt N ways
  count TAG N      a MODULES (TAG 2) or TRACES (TAG 3) section that claims N
                   records and holds none
"""
import struct
import sys
import zlib

TRACE_FIXED = 4 + 2 + 2 + 8 + 8 + 4 * 16


def section(tag, count, body):
    return struct.pack('<IIQ', tag, count, len(body)) + body


def string(b):
    return struct.pack('<I', len(b)) + b


def info(program=b'/usr/bin/hostile', flags=0, cmdline=b'hostile\0-x', options=b'trace=1'):
    body = struct.pack('<10Q', 4242, 1_700_000_000_000_000_000, 1 << 20, 2 << 20, 8 << 20, 16 << 20,
                       4 << 20, 1 << 20, 0, 0)
    body += struct.pack('<II', 16, flags)
    body += string(program) + string(cmdline) + string(options)
    return section(1, 1, body)


def module(path, build_id=b'', bias=0x400000, start=0x400000, end=0x500000):
    return struct.pack('<QQQII', bias, start, end, len(path), len(build_id)) + path + build_id


def trace(tid, frames, size=64, count=1, leak=None):
    leak = leak or [(0, 0)] * 4
    body = struct.pack('<IHHQQ', tid, len(frames), 0, size, count)
    for s, c in leak:
        body += struct.pack('<QQ', s, c)
    for mod, off in frames:
        body += struct.pack('<IQ', mod, off)
    return body


def snapshot(modules, traces, **kw):
    payload = info(**kw) + section(2, len(modules), b''.join(modules)) + section(3, len(traces), b''.join(traces))
    header = b'SNAPMALC' + struct.pack('<IIQII', 1, 32, len(payload), zlib.crc32(payload) & 0xffffffff, 0)
    return header + payload


def main():
    kind, out = sys.argv[1], sys.argv[2]
    arg = sys.argv[3] if len(sys.argv) > 3 else None
    if kind == 'modules':
        n = int(arg)
        mods = [module(b'/nonexistent/hostile/' + b'd' * 130 + b'/lib%05d.so' % i, b'\x11' * 20) for i in range(n)]
        trs = [trace(i + 1, [(i, 0x1000 + i), ((i + 1) % n, 0x2000)], leak=[(64, 1)] * 4) for i in range(n)]
        data = snapshot(mods, trs, flags=2 | 4)
    elif kind == 'frames':
        nmod = 1000
        mods = [module(b'/nonexistent/m%04d.so' % i) for i in range(nmod)]
        trs = []
        size, t = 0, 0
        while size < int(arg or 5_000_000) - 2000:
            frames = [((t * 128 + k) % nmod, 0x1000 + t * 128 + k) for k in range(128)]
            tr = trace(t + 1, frames, size=1000 + t, count=1, leak=[(1000 + t, 1)] + [(0, 0)] * 3)
            trs.append(tr)
            size += len(tr)
            t += 1
        data = snapshot(mods, trs, flags=2 | 4)
    elif kind == 'longpath':
        n = int(arg)
        mods = [module(b'/' + b'x' * (n - 1))]
        data = snapshot(mods, [trace(1, [(0, 0x1234)] * 4)])
    elif kind == 'longpaths':
        mods = [module(b'/' + b'%04d' % i + b'\xff' * 4090) for i in range(1000)]
        trs = [trace(t + 1, [((t * 128 + k) % 1000, 0x40 + t * 128 + k) for k in range(128)]) for t in range(600)]
        data = snapshot(mods, trs, flags=2 | 4)
    elif kind == 'escape':
        evil = [b'/tmp/\x1b]0;pwned\x07\x1b[31mred\x1b[0m.so', b'/tmp/bad\xff\xfeutf8\xc3.so',
                b'/tmp/<tag attr="x">&amp;\'q\'.so', b'/tmp/new\nline\rcr\ttab\x7fdel\xc2\x9bcsi.so']
        mods = [module(p) for p in evil]
        trs = [trace(i + 1, [(i, 0x10 + i), (SM_NO_MODULE, 0x99)], size=100 * (i + 1), count=i + 1,
                     leak=[(100 * (i + 1), i + 1), (0, 0), (0, 0), (0, 0)]) for i in range(len(mods))]
        data = snapshot(mods, trs, program=b'/bin/\x1b[2Jprog\xff', flags=2 | 4,
                        cmdline=b'prog\0\x1b[1marg\xff', options=b'trace=1,\x1b[5m')
    elif kind == 'bigsizes':
        mods = [module(b'/nonexistent/big.so')]
        big = (1 << 62) + 12345  # each fits in 63 bits; two of them do not
        trs = [trace(i + 1, [(0, 0x100 + (i % 2))], size=big + i, count=big + i,
                     leak=[(big + i, big + i)] * 4) for i in range(8)]
        data = snapshot(mods, trs, flags=2 | 4)
    elif kind == 'libc':
        mods = [module(LIBC, bias=0x7f0000000000, start=0x7f0000028000, end=0x7f00001bd000),
                module(b'/lib64/ld-linux-x86-64.so.2', bias=0x7f1000000000, start=0x7f1000000000, end=0x7f1000030000),
                module(b'/nonexistent/libgone.so', b'\xab' * 20)]
        trs = [trace(1, [(0, 0x9a3e0), (0, 0x29d90), (2, 0x1130)], size=4096, count=4,
                     leak=[(1024, 1), (512, 1), (0, 0), (2560, 2)]),
               trace(2, [(1, 0x1b2c0), (0, 0x7e2a0), (SM_NO_MODULE, 0x401000)], size=48, count=3,
                     leak=[(0, 0), (0, 0), (16, 1), (32, 2)]),
               trace(3, [(2, 0x2000)] * 5, size=100, count=1),
               trace(0, [], size=0, count=0, leak=[(64, 1), (0, 0), (0, 0), (0, 0)])]
        data = snapshot(mods, trs, flags=2 | 4)
    elif kind == 'spellings':
        n = int(arg)
        def spelt(i):  # /lib/x86_64-linux-gnu/libc.so.6 with "./" and "/" put in three places
            a, b, c = i % 32, (i // 32) % 32, i // 1024
            return b'/' * (c + 1) + b'lib/' + b'./' * a + b'x86_64-linux-gnu/' + b'/' * b + b'libc.so.6'
        mods = [module(spelt(i)) for i in range(n)]
        trs = [trace(i + 1, [(i, 0x28000 + 0x40 * i)], leak=[(64, 1)] * 4) for i in range(n)]
        data = snapshot(mods, trs, flags=2 | 4)
    elif kind == 'count':
        tag, n = int(arg), int(sys.argv[4])
        mods = section(2, n if tag == 2 else 0, b'')
        trs = section(3, n, b'') if tag == 3 else section(3, 0, b'')
        payload = info() + mods + trs
        data = b'SNAPMALC' + struct.pack('<IIQII', 1, 32, len(payload), zlib.crc32(payload) & 0xffffffff, 0) + payload
    elif kind == 'module':
        mods = [module(arg.encode())]
        data = snapshot(mods, [trace(1, [(0, 0x1234)])])
    else:
        sys.exit('unknown kind ' + kind)
    with open(out, 'wb') as f:
        f.write(data)


SM_NO_MODULE = 0xffffffff
LIBC = b'/lib/x86_64-linux-gnu/libc.so.6'
if __name__ == '__main__':
    main()
