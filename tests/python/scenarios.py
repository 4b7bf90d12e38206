# Python programs traced, one scenario a test (docs/python.md):
#   scenarios.py SCENARIO SNAPMALLOC WORKDIR   (SNAPMALLOC_LIB in the environment)
# extension  sqlite3 from Python: its memory at sqlite's C line, the Python
#            line that called it in the traceback
# fork       multiprocessing (fork): the child's own snapshot has its
#            Python frames, and the inherited ones
# finalize   daemon threads allocating (in sqlite3, without the GIL) while
#            the interpreter finalizes, __del__ and atexit allocating: never
#            a crash, every run's exit snapshot readable
# environ    PYTHONMALLOC=malloc in a traced interpreter only, never over
#            the user's value, never in another program's environment
# bench      bench/python's workloads give the same results traced
# recompile  code compiled and run again and again, its code objects dying
#            and the next made where they were: every line right
# control    an interpreter armed (control=1), then `snapmalloc start` and
#            `snap PID`: its Python frames, at depth 64 unless one is given
# signal     a snapshot on SIGUSR2 of a Python program that waits
# embed      CPython embedded (libpython3.11.so), finalized and started
#            again: its frames while it runs, none of them after
# probe      libraries that look like interpreters the probe refuses
#            (too old, 3.11.0, another size, a debug build, no type
#            objects, a version this build does not read) or accepts, and
#            that one unloaded: not read any more
# native     a program that is not Python: no Python frames, no PYFRAMES
#            section, and the library refers to no Python symbol
# unwinders  the same figures per Python line whether stacks are walked by
#            our walker with its memo or by libunwind, and unwind=check
#            finds no difference between the two walks
# views      --by file/function/trace, --cumulative, diff, leaks, export
#            (folded and pprof), flame, with Python frames
import json
import os
import re
import shutil
import struct
import subprocess
import sys

PY = os.environ.get("SM_TEST_PYTHON", "/usr/bin/python3")  # the traced interpreter
if not os.access(PY, os.X_OK):
    print(PY + " is not installed: skipped")
    sys.exit(77)
PYVER = tuple(int(x) for x in subprocess.run([PY, "-c", "import sys; print(*sys.version_info[:2])"],
                                              capture_output=True, text=True).stdout.split())


def comp(fn, kind):
    """The function a comprehension in fn runs in: a function of its own
    before 3.12, inlined into fn since (PEP 709)."""
    return "%s.<locals>.<%s>" % (fn, kind) if PYVER < (3, 12) else fn


scenario, EXE, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
LIB = os.environ["SNAPMALLOC_LIB"]
HERE = os.path.dirname(os.path.abspath(__file__))
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
BASE_ENV = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
for k in ("PYTHONMALLOC", "SNAPMALLOC_OPTIONS", "LD_PRELOAD"):
    BASE_ENV.pop(k, None)
failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg)


def script(name, text):
    path = os.path.join(WORK, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def line_of(path, start):
    for i, line in enumerate(open(path).read().split("\n")):
        if line.startswith(start):
            return i + 1
    raise ValueError("%s: no line starts with %r" % (path, start))


def traced(args, options="trace=1,at_exit=0", env=None, check=True, **kw):
    e = dict(BASE_ENV, LD_PRELOAD=LIB, SNAPMALLOC_OPTIONS=options)
    e.update(env or {})
    r = subprocess.run(args, env=e, capture_output=True, text=True, timeout=600, **kw)
    if check and r.returncode != 0:
        fail("%s: status %d\n%s" % (" ".join(args), r.returncode, r.stderr))
    return r


def tool(*args, check=True):
    r = subprocess.run([EXE] + list(args), env=BASE_ENV, capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        fail("snapmalloc %s: status %d\n%s" % (" ".join(args), r.returncode, r.stderr))
    return r.stdout


def top_json(snap, *args):
    out = tool("top", snap, "--limit", "0", "--format", "json", *args)
    return json.loads(out)["stats"] if out else []


def is_frame(f, path, line=None, function=None):
    return (f["file"] is not None and os.path.realpath(f["file"]) == os.path.realpath(path) and
            (line is None or f["line"] == line) and (function is None or f["function"] == function))


def sections(snap):
    data = open(snap, "rb").read()
    payload = data[32:32 + struct.unpack_from("<Q", data, 16)[0]]
    off, tags = 0, []
    while off < len(payload):
        tag, count, n = struct.unpack_from("<IIQ", payload, off)
        tags.append(tag)
        off += 16 + n
    return tags


SEC_PYFRAMES = 7

# ---------------------------------------------------------------- extension
if scenario == "extension":
    ext = script("ext.py", '''import ctypes
import sqlite3
import sys


def fill(db, n):
    db.executemany("insert into t values (?, ?)", ((i, "x" * 300) for i in range(n)))


db = sqlite3.connect(":memory:")
db.execute("create table t(a integer, b text)")
fill(db, 20000)
if ctypes.CDLL(None).snapmalloc_snapshot(sys.argv[1].encode()) != 0:
    sys.exit("snapshot failed")
''')
    snap = os.path.join(WORK, "ext.snap")
    traced([PY, ext, snap])
    line = line_of(ext, "    db.executemany")
    stats = top_json(snap, "--by", "trace")
    in_sqlite = 0
    for st in stats:
        tb = st["traceback"]
        site_mod = os.path.basename(tb[0]["module"] or "") if tb else ""
        if site_mod.startswith("libsqlite3") and any(is_frame(f, ext, line, "fill") for f in tb):
            in_sqlite += st["size"]
    # 20,000 rows of 300 bytes: sqlite's pages, allocated by sqlite itself.
    if in_sqlite < 5 << 20:
        fail("%d bytes at sqlite's C lines with ext.py:%d (fill) in their traceback; want 5 MiB or more" %
             (in_sqlite, line))
    by_line = {(st["site"]["file"], st["site"]["line"]): st["size"] for st in top_json(snap, "--by", "line")}
    charged = sum(v for (f, l), v in by_line.items() if f and os.path.realpath(f) == ext and l == line)
    if charged > 1 << 20:
        fail("ext.py:%d itself is charged %d bytes: sqlite's pages belong to sqlite's line" % (line, charged))
    print("sqlite's memory under ext.py:%d: %d bytes; charged to the line itself: %d" % (line, in_sqlite, charged))

# ---------------------------------------------------------------- fork
elif scenario == "fork":
    prog = script("forked.py", '''import ctypes
import multiprocessing as mp
import os
import sys


def child(path):
    data = ["%d" % i * 10 for i in range(20000)]
    rc = ctypes.CDLL(None).snapmalloc_snapshot(path.encode())
    os._exit(0 if rc == 0 and len(data) == 20000 else 3)


if __name__ == "__main__":
    mp.set_start_method("fork")
    parent = [dict(x=i) for i in range(5000)]
    p = mp.Process(target=child, args=(sys.argv[1],))
    p.start()
    p.join()
    sys.exit(p.exitcode)
''')
    snap = os.path.join(WORK, "child.snap")
    r = subprocess.run([EXE, "run", "--no-report", "--out", os.path.join(WORK, "exit.%p.%n.snap"), "--", PY, prog,
                        snap], env=dict(BASE_ENV, SNAPMALLOC_LIB=LIB), capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        fail("snapmalloc run: status %d\n%s" % (r.returncode, r.stderr))
    stats = top_json(snap, "--by", "trace")
    cline, pline = line_of(prog, "    data = "), line_of(prog, "    parent = ")
    child_n = sum(st["count"] for st in stats if any(is_frame(f, prog, cline, "child") for f in st["traceback"]) and
                  any(f["function"] == "BaseProcess._bootstrap" for f in st["traceback"]))
    parent_n = sum(st["count"] for st in stats if st["traceback"] and is_frame(st["traceback"][0], prog, pline))
    if child_n < 20000:
        fail("the child's snapshot has %d blocks at forked.py:%d under BaseProcess._bootstrap; want 20000" %
             (child_n, cline))
    if parent_n < 5000:
        fail("the child's snapshot has %d of the parent's blocks at forked.py:%d; want 5000" % (parent_n, pline))
    exits = [f for f in os.listdir(WORK) if f.startswith("exit.")]
    for f in exits:
        tool("top", os.path.join(WORK, f))
    if not exits:
        fail("no exit snapshot")
    print("child: %d blocks at its line, %d inherited; %d exit snapshots" % (child_n, parent_n, len(exits)))

# ---------------------------------------------------------------- finalize
elif scenario == "finalize":
    prog = script("final.py", '''import atexit
import sqlite3
import threading
import time


def spin(k):
    db = sqlite3.connect(":memory:")
    db.execute("create table t(a)")
    while True:
        db.execute("insert into t values (?)", ("y" * (100 + k),))
        if k % 2:
            [str(i) for i in range(50)]
        db.execute("delete from t where rowid % 3 = 0")


for k in range(4):
    threading.Thread(target=spin, args=(k,), daemon=True).start()


class Late:
    def __del__(self):
        global late
        late = [dict(n=i) for i in range(2000)]


keep = Late()
atexit.register(lambda: [bytes(64) for i in range(2000)])
time.sleep(0.2)
''')
    for i in range(8):
        out = os.path.join(WORK, "final.%d.snap" % i)
        r = subprocess.run([EXE, "run", "--no-report", "--out", out, "--", PY, prog],
                           env=dict(BASE_ENV, SNAPMALLOC_LIB=LIB), capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or "rror" in r.stderr:
            fail("run %d: status %d\n%s" % (i, r.returncode, r.stderr))
            continue
        tool("top", out)
    # The same by hand, with a snapshot every 50 ms while it finalizes.
    r = traced([PY, prog], options="trace=1,interval=1,leaks=1,out=" + os.path.join(WORK, "hand.%n.snap"))
    print("8 runs under snapmalloc run and one by hand exited cleanly")

# ---------------------------------------------------------------- environ
elif scenario == "environ":
    show = [PY, "-c", "import os; print(os.environ.get('PYTHONMALLOC'))"]
    cases = [
        ("traced", "trace=1,at_exit=0", {}, "malloc"),
        ("traced, the user's value", "trace=1,at_exit=0", {"PYTHONMALLOC": "pymalloc"}, "pymalloc"),
        ("traced, python=0", "trace=1,at_exit=0,python=0", {}, "None"),
        ("preloaded, not traced", "trace=0", {}, "None"),
        ("armed to trace (control=1)", "control=1", {}, "malloc"),
    ]
    for name, opts, env, want in cases:
        got = traced(show, options=opts, env=env).stdout.strip()
        if got != want:
            fail("%s: PYTHONMALLOC=%s in the interpreter, want %s" % (name, got, want))
    # What pymalloc keeps is not seen: with the user's pymalloc, far less
    # is traced than with malloc.
    prog = script("many.py", "import ctypes, sys\nx = [(i, str(i)) for i in range(50000)]\n"
                  "ctypes.CDLL(None).snapmalloc_snapshot(sys.argv[1].encode())\n")
    sizes = {}
    for alloc in ("", "pymalloc"):
        snap = os.path.join(WORK, "many%s.snap" % alloc)
        traced([PY, prog, snap], env={"PYTHONMALLOC": alloc} if alloc else {})
        sizes[alloc] = sum(st["size"] for st in top_json(snap, "--by", "line") if st["site"]["line"] == 2)
    if not sizes[""] > 10 * max(sizes["pymalloc"], 1):
        fail("line 2: %d bytes with PYTHONMALLOC=malloc, %d with pymalloc" % (sizes[""], sizes["pymalloc"]))
    # Another program's environment is its own: env prints the same traced.
    plain = subprocess.run(["env"], env=BASE_ENV, capture_output=True, text=True).stdout
    under = traced(["env"]).stdout
    strip = lambda s: "\n".join(l for l in s.split("\n") if not l.startswith(("LD_PRELOAD=", "SNAPMALLOC_OPTIONS=")))
    if strip(plain) != strip(under):
        fail("env prints another environment when traced")
    print("PYTHONMALLOC: %s; line 2 with malloc %d bytes, with pymalloc %d" %
          (", ".join(c[0] + " " + c[3] for c in cases), sizes[""], sizes["pymalloc"]))

# ---------------------------------------------------------------- embed
elif scenario == "embed":
    prog, prefix = sys.argv[4], os.path.join(WORK, "e")
    traced([prog, prefix])
    src = os.path.join(HERE, "embed.c")
    after_line = line_of(src, "    held = malloc(12345);")
    for rnd in (0, 1):
        stats = top_json("%s.%d.alive.snap" % (prefix, rnd), "--by", "trace")
        made = sum(st["count"] for st in stats if st["traceback"] and st["traceback"][0]["file"] == "<string>" and
                   st["traceback"][0]["line"] == 2 and any(f["function"] == "make" for f in st["traceback"]))
        if made < 10000:
            fail("round %d: %d blocks at <string>:2 in make; want 10000 or more" % (rnd, made))
        stats = top_json("%s.%d.after.snap" % (prefix, rnd), "--by", "trace", "--raw")
        mine = [st for st in stats if st["size"] == 12345]
        if len(mine) != 1 or any(f["module"] is None and f["file"] for f in mine[0]["traceback"]) or \
                not any(f["file"] and f["file"].endswith("embed.c") and f["line"] == after_line
                        for f in mine[0]["traceback"]):
            fail("round %d: after Py_FinalizeEx, the block of embed.c:%d: %s" % (rnd, after_line, mine))
    tags = sections("%s.0.alive.snap" % prefix)
    if SEC_PYFRAMES not in tags:
        fail("no PYFRAMES section")
    print("two interpreters, their frames while they ran, none after")

# ---------------------------------------------------------------- recompile
elif scenario == "recompile":
    # Module code compiled and run again and again, each time with its one
    # allocation (a bytes object whose size says which source made it) on
    # another line: the code objects die between runs, and the next one is
    # made where the last one was. Every block must be on its own line,
    # with pymalloc serving the code objects (the user's PYTHONMALLOC) and
    # with malloc.
    prog = script("recompile.py", '''import collections
import ctypes
import sys

keep = [None] * 3000
z = 0
made = collections.Counter()
for i in range(3000):
    k = (i * 5) % 7
    src = "\\n" * k + "keep[%d] = b'\\\\0' * (%d + z)\\n" % (i, 1000 + 64 * k) + "\\n" * (6 - k)
    exec(compile(src, "<gen>", "exec"))
    made[k] += 1
    del src
if ctypes.CDLL(None).snapmalloc_snapshot(sys.argv[1].encode()) != 0:
    sys.exit("snapshot failed")
print(*[made[k] for k in range(7)])
''')
    for alloc in ("malloc", "pymalloc"):
        snap = os.path.join(WORK, "recompile-%s.snap" % alloc)
        r = traced([PY, prog, snap], env={"PYTHONMALLOC": alloc})
        made = [int(x) for x in r.stdout.split()]
        lines = {st["site"]["line"]: (st["size"], st["count"]) for st in top_json(snap, "--by", "line")
                 if st["site"]["file"] == "<gen>"}
        for k in range(7):
            each = 33 + 1000 + 64 * k  # a bytes object of that length
            size, count = lines.get(k + 1, (0, 0))
            if (size, count) != (made[k] * each, made[k]):
                fail("%s: <gen>:%d has %d bytes in %d blocks; %d blocks of %d bytes were made there" %
                     (alloc, k + 1, size, count, made[k], each))
    print("every block of code compiled 3000 times on its own line, with malloc and with pymalloc")

# ---------------------------------------------------------------- control
elif scenario == "control":
    # An interpreter armed (control=1), not tracing: `snapmalloc start PID`
    # switches tracing on (depth 64 for Python, or the one given), `snap PID`
    # writes a snapshot with the Python frames of what it allocated since.
    prog = script("armed.py", '''import sys


def build():
    return {i: str(i) * 5 for i in range(30000)}


print("ready", flush=True)
sys.stdin.readline()
data = build()
print("built", flush=True)
sys.stdin.readline()
''')
    line = line_of(prog, "    return {i:")
    for depth in (None, 20):
        e = dict(BASE_ENV, LD_PRELOAD=LIB, SNAPMALLOC_OPTIONS="control=1,at_exit=0")
        p = subprocess.Popen([PY, prog], env=e, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "ready":
            fail("the program did not start")
        r = subprocess.run([EXE, "start", str(p.pid)] + (["--depth", str(depth)] if depth else []), env=BASE_ENV,
                           capture_output=True, text=True, timeout=60)
        want = "depth %d" % (depth or 64)
        if r.returncode != 0 or want not in r.stdout:
            fail("start: status %d, %r; want %r" % (r.returncode, r.stdout + r.stderr, want))
        p.stdin.write("\n")
        p.stdin.flush()
        p.stdout.readline()
        snap = os.path.join(WORK, "armed-%s.snap" % depth)
        r = subprocess.run([EXE, "snap", str(p.pid), "-o", snap], env=BASE_ENV, capture_output=True, text=True,
                           timeout=60)
        p.stdin.write("\n")
        p.stdin.close()
        p.wait(60)
        if r.returncode != 0:
            fail("snap: %s" % r.stderr)
            continue
        n = sum(st["count"] for st in top_json(snap, "--by", "trace")
                if st["traceback"] and is_frame(st["traceback"][0], prog, line, comp("build", "dictcomp")))
        if n < 30000:
            fail("depth %s: the snapshot has %d blocks at armed.py:%d; want 30000 or more" % (depth, n, line))
    print("armed, started (depth 64, and 20 when given), snapped: the Python line")

# ---------------------------------------------------------------- signal
elif scenario == "signal":
    prog = script("waits.py", '''import sys


def build():
    return {i: str(i) * 5 for i in range(30000)}


data = build()
print("ready", flush=True)
sys.stdin.read()
''')
    out = os.path.join(WORK, "sig.%n.snap")
    e = dict(BASE_ENV, LD_PRELOAD=LIB, SNAPMALLOC_OPTIONS="trace=1,at_exit=0,out=" + out)
    p = subprocess.Popen([PY, prog], env=e, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if p.stdout.readline().strip() != "ready":
        fail("the program did not start")
    import signal
    import time
    p.send_signal(signal.SIGUSR2)
    snap = out.replace("%n", "0")
    for _ in range(200):
        if os.path.exists(snap):
            break
        time.sleep(0.05)
    time.sleep(0.2)
    p.stdin.close()
    if p.wait(60) != 0:
        fail("status %d" % p.returncode)
    line = line_of(prog, "    return {i:")
    n = sum(st["count"] for st in top_json(snap, "--by", "trace")
            if st["traceback"] and is_frame(st["traceback"][0], prog, line, comp("build", "dictcomp")))
    if n < 30000:
        fail("the SIGUSR2 snapshot has %d blocks at waits.py:%d (build); want 30000 or more" % (n, line))
    print("SIGUSR2: %d blocks at waits.py:%d" % (n, line))

# ---------------------------------------------------------------- bench
elif scenario == "bench":
    # bench/python's workloads, small: one summary line each, with the same
    # checksum plain and traced (bench/run --mode python times them).
    bench = os.path.join(os.path.dirname(os.path.dirname(HERE)), "bench", "python")
    small = {"objects.py": ["20000"], "json_roundtrip.py": ["3", "300"], "pure.py": ["500"],
             "sqlite.py": ["2", "2000"]}
    for name, args in small.items():
        cmd = [PY, os.path.join(bench, name)] + args
        plain = subprocess.run(cmd, env=BASE_ENV, capture_output=True, text=True, timeout=600).stdout
        out = traced(cmd, options="trace=1,out=" + os.path.join(WORK, name + ".%p.snap")).stdout
        sums = [re.findall(r"checksum=([0-9a-f]{16})$", o.strip()) for o in (plain, out)]
        if len(plain.strip().split("\n")) != 1 or "time_s=" not in plain or not sums[0] or sums[0] != sums[1]:
            fail("%s: plain %r, traced %r" % (name, plain, out))
    print("%d workloads: one summary line, the same checksum traced" % len(small))

# ---------------------------------------------------------------- probe
elif scenario == "probe":
    prog, libdir = sys.argv[4], sys.argv[5]
    said = {
        "ok": "python: reading the frames of CPython 3.11.2",
        "old": "older than 3.11 (no Py_Version)",
        "v3110": "3.11.0 is not supported",
        "size": "its _PyRuntime differs in size",
        "debug": "a debug build",
        "types": "its type objects were not found",
        "future": "CPython 3.15.0): not a version this build reads",
    }
    for kind, what in said.items():
        lib = os.path.join(libdir, "libfakepy_%s.so" % kind)
        r = traced([prog, lib], options="trace=1,at_exit=0,verbose=1")
        lines = [l for l in r.stderr.split("\n") if "python:" in l]
        if len(lines) != 1 or what not in lines[0]:
            fail("%s: the probe said %r, want one line with %r" % (kind, lines, what))
        if r.stdout.strip() != "PYTHONMALLOC=(unset)":
            fail("%s: %s (an interpreter loaded after start)" % (kind, r.stdout.strip()))
        r = traced([prog, lib], options="trace=1,at_exit=0,verbose=1,python=0")
        if "python:" in r.stderr:
            fail("%s: python=0, but the probe said %r" % (kind, r.stderr))
    print("%d kinds of interpreter, each told apart in one line" % len(said))

# ---------------------------------------------------------------- native
elif scenario == "native":
    prog = sys.argv[4]
    snap = os.path.join(WORK, "native.snap")
    traced([prog, "2000"], options="trace=1,out=" + snap)
    if SEC_PYFRAMES in sections(snap):
        fail("a native program's snapshot has a PYFRAMES section")
    if not top_json(snap, "--by", "trace"):
        fail("no traces")
    for st in top_json(snap, "--by", "trace", "--raw"):
        if any(f["module"] is None and f["file"] for f in st["traceback"]):
            fail("a frame without a module but with a file: %s" % st["traceback"])
            break
    und = subprocess.run(["nm", "-D", "--undefined-only", LIB], capture_output=True, text=True).stdout.split()
    py = [s for s in und if re.match(r"_?Py", s)]
    if py:
        fail("libsnapmalloc.so refers to Python symbols: %s" % py)
    print("no PYFRAMES section; the library refers to %d undefined symbols, none of Python's" % len(und))

# ---------------------------------------------------------------- unwinders
elif scenario == "unwinders":
    workload = os.path.join(HERE, "workload.py")
    per = {}
    for k, how in enumerate(("fast", "libunwind", "check")):
        snap = os.path.join(WORK, "w%d.snap" % k)  # (names of one length: the mark's line encodes it)
        r = traced([PY, workload, "snapmalloc", snap], options="trace=1,at_exit=0,unwind=" + how)
        if how == "check":
            m = re.search(r"unwind=check compared (\d+), (\d+) differed", r.stderr)
            if not m or int(m.group(1)) == 0 or int(m.group(2)) != 0:
                fail("unwind=check: %s" % r.stderr[-2000:])
        per[how] = {st["site"]["line"]: (st["size"], st["count"]) for st in top_json(snap, "--by", "line")
                    if st["site"]["file"] and os.path.realpath(st["site"]["file"]) == workload}
    if per["fast"] != per["libunwind"] or per["fast"] != per["check"]:
        for line in sorted(set(per["fast"]) | set(per["libunwind"])):
            print(line, per["fast"].get(line), per["libunwind"].get(line), per["check"].get(line))
        fail("the walkers disagree on workload.py's lines")
    print("%d lines of workload.py, the same with every walker" % len(per["fast"]))

# ---------------------------------------------------------------- views
elif scenario == "views":
    prog = script("views.py", '''import ctypes
import sys

api = ctypes.CDLL(None)


def make_records(n):
    return [{"id": i} for i in range(n)]


def alpha():
    return [0] * 500


records = make_records(5000)
api.snapmalloc_snapshot(sys.argv[1].encode())
more = [alpha() for i in range(100)]
api.snapmalloc_snapshot(sys.argv[2].encode())
api.malloc.restype = ctypes.c_void_p
api.malloc(4000)
''')
    a, b = os.path.join(WORK, "a.snap"), os.path.join(WORK, "b.snap")
    final = os.path.join(WORK, "final.snap")
    traced([PY, prog, a, b], options="trace=1,leaks=1,out=" + final)
    rec, alp = line_of(prog, "    return [{"), line_of(prog, "    return [0]")
    mod_rec, leak = line_of(prog, "records = "), line_of(prog, "api.malloc(4000)")
    files = {os.path.realpath(st["site"]["file"]): st["size"] for st in top_json(b, "--by", "file")
             if st["site"]["file"]}
    lines = top_json(b, "--by", "line")
    mine = sum(st["size"] for st in lines if st["site"]["file"] and os.path.realpath(st["site"]["file"]) == prog)
    if files.get(prog) != mine or not mine:
        fail("--by file: views.py %s, its lines %d" % (files.get(prog), mine))
    funcs = {st["site"]["function"] for st in top_json(b, "--by", "function")}
    for fn in (comp("make_records", "listcomp"), "alpha"):
        if fn not in funcs:
            fail("--by function has no %s" % fn)
    cum = {st["site"]["line"]: st["size"] for st in top_json(b, "--by", "line", "--cumulative")
           if st["site"]["file"] and os.path.realpath(st["site"]["file"]) == prog}
    own = {st["site"]["line"]: st["size"] for st in lines
           if st["site"]["file"] and os.path.realpath(st["site"]["file"]) == prog}
    if not own.get(rec) or cum.get(mod_rec, 0) < own[rec] or cum.get(rec) != own[rec]:
        fail("--cumulative: line %d %s, line %d %s (own %s)" % (mod_rec, cum.get(mod_rec), rec, cum.get(rec),
                                                                 own.get(rec)))
    diff = json.loads(tool("diff", a, b, "--limit", "0", "--format", "json"))["stats"]
    grew = [st for st in diff if st["site"]["line"] == alp and st["size_diff"] >= 100 * 4000]
    if not grew:
        fail("diff: no growth of 100 lists of 500 at line %d" % alp)
    text = tool("top", b, "--by", "trace", "--limit", "3")
    if not re.search(r'  File ".*views\.py", line %d, in %s\n' % (rec, re.escape(comp("make_records", "listcomp"))), text):
        fail("--by trace does not show the list comprehension's frame:\n" + text)
    r = subprocess.run([EXE, "leaks", final], env=BASE_ENV, capture_output=True, text=True, timeout=600)
    if r.returncode != 1 or not re.search(r'by <module> \(.*views\.py:%d\)' % leak, r.stdout):
        fail("leaks: status %d, no views.py:%d in\n%s" % (r.returncode, leak, r.stdout[:3000]))
    folded = tool("export", b, "--format", "folded")
    if not re.search(r"<module> \(.*views\.py:\d+\);(make_records \(.*views\.py:\d+\);)?%s \(.*views\.py:%d\)"
                     % (re.escape(comp("make_records", "listcomp")), rec), folded):
        fail("export --format folded: no <module>;...;%s" % comp("make_records", "listcomp"))
    svg = os.path.join(WORK, "b.svg")
    tool("flame", b, "-o", svg)
    if not re.search(r"<title>alpha\n.*views\.py:%d\n" % alp, open(svg).read()):
        fail("flame: no frame of alpha at views.py:%d" % alp)
    if shutil.which("go"):
        pb = os.path.join(WORK, "b.pb.gz")
        tool("export", b, "--format", "pprof", "-o", pb)
        home = os.path.join(WORK, "home")
        os.makedirs(home, exist_ok=True)
        genv = dict(BASE_ENV, HOME=home, GOCACHE=os.path.join(WORK, "gocache"), PPROF_TMPDIR=home)
        r = subprocess.run(["go", "tool", "pprof", "-symbolize=none", "-top", "-nodefraction=0", pb], env=genv,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or not re.search(r"%%\s+%s$" % re.escape(comp("make_records", "listcomp")), r.stdout,
                                              re.M):
            fail("pprof -top: %s\n%s" % (r.stdout[-2000:], r.stderr[-2000:]))
    print("by file, function, trace, cumulative, diff, leaks, folded, flame%s: Python frames shown" %
          (", pprof" if shutil.which("go") else ""))
else:
    sys.exit("unknown scenario " + scenario)

sys.exit(1 if failures else 0)
