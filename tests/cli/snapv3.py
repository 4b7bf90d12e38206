#!/usr/bin/env python3
"""Version 3 of the snapshot format, read back and refused (issue 14's
compact records): a file rewritten by tests/cli/snapfile.py's writer is
byte for byte the one the tracer wrote, and one defect planted in each of
its new parts is refused by `snapmalloc top` with one line naming it and
status 2 (docs/snapshot-format.md, "Guarantees").
   SNAPMALLOC_LIB=libsnapmalloc.so snapv3.py SNAPMALLOC BUILDDIR
(it snapshots examples/phases, which leaks, with leaks=1)
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import snapfile as sf  # noqa: E402

fails = 0


def fail(msg):
    global fails
    fails += 1
    print('FAIL: ' + msg)


def refused(tool, work, name, data, what):
    path = os.path.join(work, name + '.snap')
    open(path, 'wb').write(data)
    r = subprocess.run([tool, 'top', path], capture_output=True, text=True, timeout=60)
    lines = r.stderr.strip().split('\n')
    if r.returncode != 2 or len(lines) != 1 or what not in lines[0] or r.stdout:
        fail('%s: want status 2 and one line with "%s"; got %d, %r' % (name, what, r.returncode, r.stderr))


def traces_body(snap, edit):
    """TRACES as the writer lays it out, with edit(fields, frames, n) applied
    to the n-th record's varint fields and frame indices first."""
    _, index = sf.v3_frames(snap)
    body, prev, n = b'', 0, 0
    for t in snap.traces:
        if not t.id:
            continue
        body += sf.v3_trace(t, prev, index, lambda f, i: edit(f, i, n))
        prev, n = t.id, n + 1
    return n, body


def main():
    tool, build = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp()
    path = os.path.join(work, 'phases.0.snap')
    env = dict(os.environ, LD_PRELOAD=os.environ['SNAPMALLOC_LIB'],
               SNAPMALLOC_OPTIONS='trace=1,leaks=1,out=' + path)
    subprocess.run([os.path.join(build, 'examples', 'phases'), '200'], env=env, check=True, capture_output=True,
                   timeout=120)
    snap = sf.read_v3(path)
    original = open(path, 'rb').read()
    if sf.write_v3(snap) != original:
        fail('the test writer does not lay the file out as the tracer does')
    if not snap.flags() & sf.FLAG_LEAKS or not any(any(t.leak) for t in snap.traces):
        sys.exit('snapv3.py: %s has no leaks to test' % path)
    ok = subprocess.run([tool, 'top', path, '--limit', '0'], capture_output=True, text=True)
    if ok.returncode != 0:
        fail('the original is refused: ' + ok.stderr)

    def at_first(k, v):
        return lambda f, i, n: f.__setitem__(k, v) if n == 0 else None
    nf = len(sf.v3_frames(snap)[0])
    cases = [
        ('frame-index', lambda f, i, n: i.__setitem__(0, nf) if n == 0 and i else None,
         'names frame %d of %d' % (nf, nf)),
        ('id-zero', at_first(0, 0), 'ids must rise'),
        ('frames-129', at_first(1, 129), 'has 129 frames'),
        ('bytes-no-blocks', lambda f, i, n: (f.__setitem__(3, 64), f.__setitem__(4, 0)) if n == 0 else None,
         'has bytes in 0 blocks'),
        ('sum-2^63', lambda f, i, n: (f.__setitem__(7, 1 << 62)) if n < 2 else None, 'add up to 2^63'),
    ]
    for name, edit, what in cases:
        refused(tool, work, name, sf.write_v3(snap, traces_body=traces_body(snap, edit)), what)

    # a varint of eleven bytes
    n, body = traces_body(snap, lambda f, i, n: None)
    refused(tool, work, 'varint-65', sf.write_v3(snap, traces_body=(n, b'\xff' * 10 + b'\x01' + body[1:])),
            'past 64 bits')
    # more records than the bytes can hold
    refused(tool, work, 'count', sf.write_v3(snap, traces_body=(len(body), body)), 'cannot fit in')
    # LEAKS: a record for a trace TRACES does not have; ids that fall; a record of nothing
    top = max(t.id for t in snap.traces) + 1
    zero = b''.join(sf.varint(0) for _ in range(8))
    one = sf.varint(1) + sf.varint(1) + b''.join(sf.varint(0) for _ in range(6))
    refused(tool, work, 'leak-unknown', sf.write_v3(snap, leaks_body=(1, sf.varint(top) + one)),
            'record for trace %d, which TRACES does not have' % top)
    refused(tool, work, 'leak-order', sf.write_v3(snap, leaks_body=(2, sf.varint(2) + one + sf.varint(1) + one)),
            'ids must rise')
    refused(tool, work, 'leak-nothing', sf.write_v3(snap, leaks_body=(1, sf.varint(1) + zero)), 'leaked nothing')
    # FRAMES naming a module that MODULES does not have
    data = bytearray(original)
    off = 32
    while True:
        tag, count, n = struct.unpack_from('<IIQ', data, off)
        if tag == sf.SEC_FRAMES:
            break
        off += 16 + n
    struct.pack_into('<I', data, off + 16, snap.modules[0])
    nmod = snap.modules[0]
    refused(tool, work, 'frame-module', sf.seal(3, bytes(data[32:])), 'names module %d of %d' % (nmod, nmod))
    # sections missing or out of place
    payload = original[32:]
    secs, off = [], 0
    while off < len(payload):
        tag, count, n = struct.unpack_from('<IIQ', payload, off)
        secs.append((tag, payload[off:off + 16 + n]))
        off += 16 + n
    without = lambda tag: b''.join(s for t, s in secs if t != tag)  # noqa: E731
    refused(tool, work, 'no-frames', sf.seal(3, without(sf.SEC_FRAMES)), 'TRACES before FRAMES')
    refused(tool, work, 'no-leaks', sf.seal(3, without(sf.SEC_LEAKS)), 'no LEAKS section')
    swapped = b''.join(s for t, s in secs if t in (sf.SEC_INFO, sf.SEC_MODULES, sf.SEC_TRACES))
    refused(tool, work, 'traces-first', sf.seal(3, swapped), 'TRACES before FRAMES')
    info = bytearray(snap.info)
    struct.pack_into('<I', info, sf.INFO_FIXED_V1 - 4, snap.flags() & ~sf.FLAG_LEAKS)
    noflag = sf.section(sf.SEC_INFO, 1, bytes(info)) + b''.join(s for t, s in secs if t != sf.SEC_INFO)
    refused(tool, work, 'leaks-unflagged', sf.seal(3, noflag), 'INFO says no leak classes')
    shutil.rmtree(work)
    print('%d failed' % fails)
    sys.exit(1 if fails else 0)


if __name__ == '__main__':
    main()
