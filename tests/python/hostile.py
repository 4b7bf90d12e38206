# A real snapshot of a Python program, with one defect planted in its
# Python parts at a time (PYFRAMES and the FRAMES records that name it):
# `snapmalloc top` must refuse each with status 2 and one line naming it
# (docs/snapshot-format.md), and read the untouched file.
#   hostile.py SNAPMALLOC WORKDIR   (SNAPMALLOC_LIB in the environment)
import os
import struct
import subprocess
import sys
import zlib

PY = os.environ.get("SM_TEST_PYTHON", "/usr/bin/python3")  # the traced interpreter
if not os.access(PY, os.X_OK):
    print(PY + " is not installed: skipped")
    sys.exit(77)
EXE, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)
SEC_MODULES, SEC_FRAMES, SEC_PYFRAMES = 2, 5, 7
PY_MODULE, NO_MODULE = 0xfffffffe, 0xffffffff
fails = 0


def fail(msg):
    global fails
    fails += 1
    print("FAIL: " + msg)


prog = os.path.join(WORK, "small.py")
with open(prog, "w") as f:
    f.write("import ctypes, sys\nx = [str(i) for i in range(1000)]\n"
            "ctypes.CDLL(None).snapmalloc_snapshot(sys.argv[1].encode())\n")
base = os.path.join(WORK, "small.snap")
env = dict(os.environ, LD_PRELOAD=os.environ["SNAPMALLOC_LIB"], SNAPMALLOC_OPTIONS="trace=1,at_exit=0")
subprocess.run([PY, prog, base], env=env, check=True)
data = open(base, "rb").read()
payload = data[32:32 + struct.unpack_from("<Q", data, 16)[0]]
secs, off = [], 0
while off < len(payload):
    tag, count, n = struct.unpack_from("<IIQ", payload, off)
    secs.append([tag, count, payload[off + 16:off + 16 + n]])
    off += 16 + n
tags = [s[0] for s in secs]
if SEC_PYFRAMES not in tags:
    print("FAIL: the snapshot has no PYFRAMES section")
    sys.exit(1)


def sec(tag):
    return next(s for s in secs if s[0] == tag)


def write(name, sections):
    body = b"".join(struct.pack("<IIQ", t, c, len(b)) + b for t, c, b in sections)
    path = os.path.join(WORK, name + ".snap")
    with open(path, "wb") as f:
        f.write(b"SNAPMALC" + struct.pack("<IIQII", 3, 32, len(body), zlib.crc32(body) & 0xffffffff, 0) + body)
    return path


def refused(name, sections, what):
    r = subprocess.run([EXE, "top", write(name, sections)], capture_output=True, text=True, timeout=60)
    lines = r.stderr.strip().split("\n")
    if r.returncode != 2 or len(lines) != 1 or what not in lines[0] or r.stdout:
        fail("%s: want status 2 and one line with %r; got %d, %r" % (name, what, r.returncode, r.stderr[:300]))


def with_section(tag, count=None, body=None):
    return [[t, (count if count is not None else c) if t == tag else c, (body if body is not None else b)
             if t == tag else b] for t, c, b in secs]


# The frames of PYFRAMES, parsed to be rewritten.
_, npy, pybody = sec(SEC_PYFRAMES)
module, version = struct.unpack_from("<II", pybody, 0)
records, p = [], 8
for _ in range(npy):
    line, fl, nl = struct.unpack_from("<III", pybody, p)
    records.append([line, pybody[p + 12:p + 12 + fl], pybody[p + 12 + fl:p + 12 + fl + nl]])
    p += 12 + fl + nl
nmodules = sec(SEC_MODULES)[1]


def pyframes(recs, mod=module, ver=version):
    return struct.pack("<II", mod, ver) + b"".join(struct.pack("<III", l, len(f), len(n)) + f + n for l, f, n in recs)


if pyframes(records) != pybody:
    fail("PYFRAMES does not read back as written")
r = subprocess.run([EXE, "top", write("same", secs)], capture_output=True, text=True)
if r.returncode != 0:
    fail("the rewritten file is refused: %s" % r.stderr)

refused("count0", with_section(SEC_PYFRAMES, count=0), "corrupt PYFRAMES section (0 frames")
refused("toomany", with_section(SEC_PYFRAMES, count=1 << 23), "corrupt PYFRAMES section")
refused("bigcount", with_section(SEC_PYFRAMES, count=npy + 1), "corrupt PYFRAMES section (frame %d runs past" % npy)
refused("module", with_section(SEC_PYFRAMES, body=pyframes(records, mod=nmodules)),
        "the interpreter is module %d of %d" % (nmodules, nmodules))
bad = [list(r) for r in records]
bad[0][1] = b""
refused("nofile", with_section(SEC_PYFRAMES, body=pyframes(bad)), "frame 0: a file name of 0 bytes")
bad = [list(r) for r in records]
bad[0][1] = b"x" * 4096
refused("longfile", with_section(SEC_PYFRAMES, body=pyframes(bad)), "frame 0: a file name of 4096 bytes")
bad = [list(r) for r in records]
bad[-1][2] = b"f\0g"
refused("nulname", with_section(SEC_PYFRAMES, body=pyframes(bad)), "frame %d: a function name of 3 bytes" % (npy - 1))
bad = [list(r) for r in records]
bad[-1][2] = b"n" * 1024
refused("longname", with_section(SEC_PYFRAMES, body=pyframes(bad)), "a function name of 1024 bytes")
bad = [list(r) for r in records]
bad[0][0] = 1 << 31
refused("line", with_section(SEC_PYFRAMES, body=pyframes(bad)), "frame 0 at line 2147483648")
refused("short", with_section(SEC_PYFRAMES, body=pybody[:-1]), "frame %d: a function name of" % (npy - 1))
refused("extra", with_section(SEC_PYFRAMES, body=pybody + b"\0"), "section 7 has 1 unexplained bytes")
# FRAMES naming a Python frame that PYFRAMES does not have, or with no PYFRAMES at all.
_, nfr, frbody = sec(SEC_FRAMES)
frames = [list(struct.unpack_from("<IQ", frbody, 12 * i)) for i in range(nfr)]
k = next(i for i, f in enumerate(frames) if f[0] == PY_MODULE)
bad = [list(f) for f in frames]
bad[k][1] = npy
refused("pyindex", with_section(SEC_FRAMES, body=b"".join(struct.pack("<IQ", *f) for f in bad)),
        "frame %d names Python frame %d of %d" % (k, npy, npy))
refused("nopyframes", [s for s in secs if s[0] != SEC_PYFRAMES], "names Python frame")
# After FRAMES (which then names frames that do not exist yet), or twice.
order = [s for s in secs if s[0] != SEC_PYFRAMES]
at = [s[0] for s in order].index(SEC_FRAMES) + 1
refused("late", order[:at] + [sec(SEC_PYFRAMES)] + order[at:], "names Python frame 0 of 0")
at = tags.index(SEC_PYFRAMES)
refused("twice", secs[:at + 1] + [sec(SEC_PYFRAMES)] + secs[at + 1:], "section PYFRAMES out of place")
print("%d Python frames in the snapshot; every defect refused" % npy)
sys.exit(1 if fails else 0)
