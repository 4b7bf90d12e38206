"""Reading and writing snapshot files in Python, for tests that need a file
of another version or one with a chosen defect (docs/snapshot-format.md).
Only what those tests need: version 3 is read; versions 1, 2 and 3 are
written from what was read."""
import struct
import zlib

INFO_FIXED_V1 = 10 * 8 + 2 * 4
LEAK_CLASSES = 4
SEC_INFO, SEC_MODULES, SEC_TRACES, SEC_FLOW, SEC_FRAMES, SEC_LEAKS = 1, 2, 3, 4, 5, 6
FLAG_LEAKS = 2


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7f) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def get_varint(buf, off):
    v, shift = 0, 0
    while True:
        b = buf[off]
        off += 1
        v |= (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            return v, off


class Trace:
    def __init__(self, tid):
        self.id, self.flags, self.frames = tid, 0, []
        self.size = self.count = self.peak_size = self.peak_count = 0
        self.allocations = self.allocated = self.temporary = 0
        self.leak = [0] * (2 * LEAK_CLASSES)


class Snapshot:
    """info: INFO's body (bytes); modules: (count, body); traces: [Trace],
    id 0 holding the leaks of untraced blocks when there are any."""

    def flags(self):
        return struct.unpack_from('<I', self.info, INFO_FIXED_V1 - 4)[0]


def read_v3(path):
    data = open(path, 'rb').read()
    magic, version, hdrsize, payload = data[:8], *struct.unpack_from('<IIQ', data, 8)
    if magic != b'SNAPMALC' or version != 3 or hdrsize != 32:
        raise ValueError('%s is not a version-3 snapshot' % path)
    body, off, snap = data[32:32 + payload], 0, Snapshot()
    frames, snap.traces = [], []
    while off < len(body):
        tag, count, n = struct.unpack_from('<IIQ', body, off)
        sec, off = body[off + 16:off + 16 + n], off + 16 + n
        if tag == SEC_INFO:
            snap.info = sec
        elif tag == SEC_MODULES:
            snap.modules = (count, sec)
        elif tag == SEC_FRAMES:
            frames = [struct.unpack_from('<IQ', sec, 12 * i) for i in range(count)]
        elif tag == SEC_TRACES:
            p, tid = 0, 0
            for _ in range(count):
                v = []
                for _ in range(10):
                    x, p = get_varint(sec, p)
                    v.append(x)
                tid += v[0]
                t = Trace(tid)
                (nframes, t.flags, t.size, t.count, t.peak_size, t.peak_count, t.allocations, t.allocated,
                 t.temporary) = v[1:]
                for _ in range(nframes):
                    k, p = get_varint(sec, p)
                    t.frames.append(frames[k])
                snap.traces.append(t)
        elif tag == SEC_LEAKS:
            p, by_id = 0, {t.id: t for t in snap.traces}
            for _ in range(count):
                tid, p = get_varint(sec, p)
                if tid == 0:
                    by_id[0] = Trace(0)
                    snap.traces.insert(0, by_id[0])
                for k in range(2 * LEAK_CLASSES):
                    by_id[tid].leak[k], p = get_varint(sec, p)
    return snap


def section(tag, count, body):
    return struct.pack('<IIQ', tag, count, len(body)) + body


def seal(version, payload):
    return b'SNAPMALC' + struct.pack('<IIQII', version, 32, len(payload), zlib.crc32(payload) & 0xffffffff,
                                      0) + payload


def v12_trace(t):
    out = struct.pack('<IHHQQ', t.id, len(t.frames), t.flags, t.size, t.count)
    out += struct.pack('<8Q', *t.leak)
    for mod, offset in t.frames:
        out += struct.pack('<IQ', mod, offset)
    return out


def write_v1(snap):
    """As the version-1 writer would have: no peak RSS, no FLOW, only traces
    with live blocks or leaks."""
    info = snap.info[:INFO_FIXED_V1] + snap.info[INFO_FIXED_V1 + 8:]
    kept = [t for t in snap.traces if t.size or t.count or any(t.leak)]
    traces = b''.join(v12_trace(t) for t in kept)
    payload = (section(SEC_INFO, 1, info) + section(SEC_MODULES, *snap.modules) +
               section(SEC_TRACES, len(kept), traces))
    return seal(1, payload)


def v3_frames(snap):
    frames, index = [], {}
    for t in snap.traces:
        for f in t.frames:
            if f not in index:
                index[f] = len(frames)
                frames.append(f)
    return frames, index


def v3_fields(t, prev):
    """A TRACES record's varints before its frames, in file order."""
    return [t.id - prev, len(t.frames), t.flags, t.size, t.count, t.peak_size, t.peak_count, t.allocations,
            t.allocated, t.temporary]


def v3_trace(t, prev, index, edit=None):
    """A TRACES record; edit(fields, frame_indices), if given, may change
    both lists first (a test plants a defect)."""
    fields, idx = v3_fields(t, prev), [index[f] for f in t.frames]
    if edit:
        edit(fields, idx)
    return b''.join(varint(v) for v in fields) + b''.join(varint(i) for i in idx)


def write_v3(snap, traces_body=None, leaks_body=None):
    """The snapshot as this writer lays it out; a test may pass its own
    TRACES or LEAKS body (with the record count) to plant a defect."""
    frames, index = v3_frames(snap)
    traced = [t for t in snap.traces if t.id]
    body, prev = b'', 0
    for t in traced:
        body += v3_trace(t, prev, index)
        prev = t.id
    traces_body = traces_body or (len(traced), body)
    payload = section(SEC_INFO, 1, snap.info) + section(SEC_MODULES, *snap.modules)
    payload += section(SEC_FRAMES, len(frames), b''.join(struct.pack('<IQ', m, o) for m, o in frames))
    payload += section(SEC_TRACES, *traces_body)
    if snap.flags() & FLAG_LEAKS:
        if leaks_body is None:
            leaked = [t for t in snap.traces if any(t.leak)]
            leaks_body = (len(leaked), b''.join(varint(t.id) + b''.join(varint(x) for x in t.leak) for t in leaked))
        payload += section(SEC_LEAKS, *leaks_body)
    return seal(3, payload)
