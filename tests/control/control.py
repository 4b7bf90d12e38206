#!/usr/bin/env python3
"""The control channel on real processes (docs/service.md): tests/control/target.c
runs under the preload, blocked in read() between commands, while the
`snapmalloc start|stop|snap` commands (and, for what the tool would never
send, a raw client) talk to it.

usage: control.py TEST SNAPMALLOC LIBSNAPMALLOC TARGET
Exit 0 pass, 1 fail, 77 skip (a test that needs root)."""
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TEST, TOOL, LIB, TARGET = sys.argv[1:5]
DIR = tempfile.mkdtemp(prefix="sm-control-")
os.chmod(DIR, 0o777)  # targets and clients of another uid write here too
NOBODY = 65534


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def setpriv(uid, groups):
    """The command prefix that runs as uid with exactly these supplementary groups."""
    if uid is None:
        return []
    g = ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    return ["setpriv", "--reuid", str(uid), "--regid", str(uid)] + g + ["--"]


def base_env():
    env = dict(os.environ)
    env.pop("SNAPMALLOC_OPTIONS", None)
    env.pop("LD_PRELOAD", None)
    return env


class Target:
    """target.c under the preload (or not), spoken to line by line."""

    def __init__(self, opts="control=1,at_exit=0", preload=True, uid=None, groups=None):
        env = base_env()
        if preload:
            env["LD_PRELOAD"] = LIB
        if opts is not None:
            env["SNAPMALLOC_OPTIONS"] = opts + ",out=" + DIR + "/snapmalloc.%p.%n.snap"
        cmd = [TARGET]
        if uid is not None:
            # setpriv must not run armed itself: it changes ids after dropping
            # capabilities in its one thread, which glibc refuses (abort) in a
            # process with a helper thread
            cmd = setpriv(uid, groups) + ["env"] + ["%s=%s" % (k, env.pop(k)) for k in
                                                   ("LD_PRELOAD", "SNAPMALLOC_OPTIONS") if k in env] + cmd
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, cwd=DIR, bufsize=0)
        self.buf = b""
        first = self.line()
        check(first.startswith("ready "), "the target did not start: %r" % first)
        self.pid = int(first.split()[1])

    def line(self, timeout=20):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.p.stdout], [], [], max(left, 0))
            if not r:
                raise Fail("the target (pid %d) did not answer within %d s" % (self.p.pid, timeout))
            chunk = os.read(self.p.stdout.fileno(), 4096)
            if not chunk:
                raise Fail("the target's output ended: %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def cmd(self, text):
        self.p.stdin.write(text.encode() + b"\n")
        answer = self.line()
        check(answer == "ok" or answer.startswith("ok "), "command %r answered %r" % (text, answer))
        return answer

    def send(self, text):
        self.p.stdin.write(text.encode() + b"\n")

    def end(self, timeout=30):
        """Closes stdin (the target exits) and returns its status."""
        try:
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        rc = self.p.wait(timeout)
        self.stderr = self.p.stderr.read().decode(errors="replace")
        return rc

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def tool(*args, uid=None, groups=None, timeout=60):
    r = subprocess.run(setpriv(uid, groups) + [TOOL] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, env=base_env(), cwd=DIR)
    return r.returncode, r.stdout, r.stderr


def ok(*args, **kw):
    rc, out, err = tool(*args, **kw)
    check(rc == 0, "snapmalloc %s: exit %d, %s" % (" ".join(map(str, args)), rc, (out + err).strip()))
    return out


def refused(args, needle, **kw):
    """The command must exit 2 with one line on stderr naming the pid and holding needle."""
    rc, out, err = tool(*args, **kw)
    what = "snapmalloc %s" % " ".join(map(str, args))
    check(rc == 2, "%s: exit %d, expected 2 (%s)" % (what, rc, (out + err).strip()))
    lines = err.strip().split("\n")
    check(len(lines) == 1 and needle in lines[0], "%s: expected one line with %r, got %r" % (what, needle, err))
    return lines[0]


def snap(pid, name, **kw):
    path = os.path.join(DIR, name)
    out = ok("snap", pid, "-o", name, **kw)
    check(out == path + "\n", "snap printed %r, expected %r" % (out, path))
    return path


def read_snap(path):
    """{function: (size, count)} of the snapshot's sites, and its header."""
    out = ok("top", path, "--by", "function", "--format", "json", "--limit", "0")
    j = json.loads(out)
    sites = {}
    for s in j["stats"]:
        sites[s["site"]["function"]] = (s["size"], s["count"])
    return sites, j["header"]


def check_none_traced(pid, name):
    """A snapshot taken once the target freed every block charges nothing."""
    sites, h = read_snap(snap(pid, name))
    check(h["traced"]["current"] == 0 and all(v == (0, 0) for v in sites.values()),
          "after every block was freed, still traced: %d B, %r" % (h["traced"]["current"], sites))


def control_name(pid):
    return b"\0" + ("snapmalloc-control.%d.%d" % (os.stat("/proc/%d/ns/pid" % pid).st_ino, pid)).encode()


def raw(pid, payload, timeout=10, name=None):
    """One request without the tool: the answer (b"" if the connection ended without one)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    s.connect(name or control_name(pid))
    try:
        s.send(payload)
    except OSError:
        pass  # refused before the request was read: the answer is queued all the same
    try:
        return s.recv(65536)
    finally:
        s.close()


def slow_client(pid):
    """Connects and says nothing: the process's helper waits for it (2 s)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(20)
    s.connect(control_name(pid))
    time.sleep(0.3)  # the helper has accepted it and waits for its request
    return s


def need_root():
    if os.geteuid() != 0:
        print("skipped: needs root (runs clients and targets as uid %d)" % NOBODY)
        sys.exit(77)
    r = subprocess.run(setpriv(NOBODY, None) + [TOOL, "--version"], capture_output=True)
    if r.returncode != 0:
        print("skipped: uid %d cannot run %s (%s)" % (NOBODY, TOOL, r.stderr.decode(errors="replace").strip()))
        sys.exit(77)


# ---------------------------------------------------------------- tests


def unwind_mapped(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "/libunwind.so" in f.read()


def t_start_late():
    """Blocks from before `start` stay untraced (their frees change nothing);
    blocks from after are traced exactly, and the loader's blocks for
    libunwind, which start loads, are not among them; every snap reaches
    the target while it blocks in read()."""
    t = Target("control=1,at_exit=0")
    try:
        t.cmd("alloc before 10 1000")
        sites, h = read_snap(snap(t.pid, "off.snap"))
        check(h["tracing"] is False and h["traced"]["current"] == 0 and sites == {},
              "armed but never started: expected an empty snapshot with tracing off, got %r %r" % (h, sites))
        # libunwind is loaded by the first start, not before (tracer/unwlib.c)
        check(not unwind_mapped(t.pid), "libunwind is mapped into a process that never traced")
        out = ok("start", t.pid)
        check(out == "pid %d: tracing on (depth 16, every allocation)\n" % t.pid, "start printed %r" % out)
        check(unwind_mapped(t.pid), "libunwind is not mapped after start")
        t.cmd("alloc after 5 3000")
        sites, h = read_snap(snap(t.pid, "on.snap"))
        check(sites == {"alloc_after": (15000, 5)}, "after start: expected only alloc_after 15000 B in 5 blocks, "
              "got %r" % sites)
        check(h["tracing"] is True and h["traced"]["current"] == 15000, "header after start: %r" % h)
        t.cmd("free before")
        t.cmd("realloc before 64")  # nothing left: a no-op
        sites, h = read_snap(snap(t.pid, "freed.snap"))
        check(sites == {"alloc_after": (15000, 5)} and h["traced"]["current"] == 15000,
              "freeing untraced blocks changed the traced figures: %r %r" % (sites, h))
        check(t.end() == 0, "the target failed: %s" % t.stderr)
    finally:
        t.kill()


def t_stop_start():
    """stop keeps the traces of live blocks until they are freed (or moved
    by realloc), a snapshot after stop says tracing is off, start again
    traces anew; refusals of start and stop in the wrong state."""
    t = Target("control=1,at_exit=0")
    try:
        ok("start", t.pid, "--depth", "8")
        t.cmd("alloc after 5 3000")
        out = ok("stop", t.pid)
        check(out == "pid %d: tracing off (14.6 KiB of blocks traced before stay traced until freed)\n" % t.pid,
              "stop printed %r" % out)
        refused(["stop", t.pid], "pid %d: tracing is not on" % t.pid)
        t.cmd("alloc again 7 500")
        sites, h = read_snap(snap(t.pid, "stopped.snap"))
        check(h["tracing"] is False, "a snapshot after stop must say tracing is off: %r" % h)
        check(sites == {"alloc_after": (15000, 5)}, "after stop: expected alloc_after only, got %r" % sites)
        rc, top, _ = tool("top", os.path.join(DIR, "stopped.snap"))
        check(rc == 0 and " with tracing off: " in top.split("\n")[0], "top's header does not say so: %r" % top)
        # realloc moves the traced blocks to a large class: their tags go with the old blocks
        t.cmd("realloc after 100000")
        sites, h = read_snap(snap(t.pid, "moved.snap"))
        check(sites == {} and h["traced"]["current"] == 0,
              "blocks reallocated after stop must leave their traces: %r %r" % (sites, h))
        t.cmd("free after")
        out = ok("start", t.pid)
        check(out == "pid %d: tracing on (depth 8, every allocation)\n" % t.pid, "start again printed %r" % out)
        refused(["start", t.pid], "pid %d: tracing is already on" % t.pid)
        refused(["start", t.pid, "--sample", "4K"], "tracing is already on")
        t.cmd("alloc again 3 700")
        sites, h = read_snap(snap(t.pid, "again.snap"))
        check(sites == {"alloc_again": (2100, 3)} and h["tracing"] is True,
              "after start again: expected alloc_again 2100 B in 3 blocks (the 7 from the stop untraced): %r" % sites)
        ok("stop", t.pid)
        refused(["start", t.pid, "--sample", "4K"], "the sampling rate is fixed once tracing has started")
        out = ok("start", t.pid, "--sample", "0", "--depth", "3")
        check(out == "pid %d: tracing on (depth 3, every allocation)\n" % t.pid, "start --depth 3 printed %r" % out)
        check(t.end() == 0, "the target failed: %s" % t.stderr)
    finally:
        t.kill()


def t_sampled():
    """The first start may choose sampling; later starts keep it."""
    t = Target("control=1,at_exit=0")
    try:
        out = ok("start", t.pid, "--sample", "4K")
        check(out == "pid %d: tracing on (depth 16, one allocation per 4096 B sampled)\n" % t.pid,
              "start --sample printed %r" % out)
        t.cmd("alloc after 2000 100")
        sites, h = read_snap(snap(t.pid, "sampled.snap"))
        check(h["sampled"] is True and "alloc_after" in sites, "expected a sampled estimate of alloc_after: %r" % sites)
        size = sites["alloc_after"][0]
        check(100000 < size < 400000, "the estimate of 200000 B is off: %d" % size)
        ok("stop", t.pid)
        refused(["start", t.pid, "--sample", "8K"], "the sampling rate is fixed")
        ok("start", t.pid, "--sample", "4K")
        ok("stop", t.pid)
        ok("start", t.pid)
        t.cmd("free after")
        sites, h = read_snap(snap(t.pid, "sampled2.snap"))
        check(sites == {} and h["traced"]["current"] == 0, "freed sampled blocks left traces: %r" % sites)
        check(t.end() == 0, "the target failed: %s" % t.stderr)
    finally:
        t.kill()


def t_sampled_moved():
    """Sampling at 64 KiB, started in a running process, moves the blocks it
    picks out of the pools (allocator/tag.c) and leaves free untraced: the
    estimate holds, a free while tracing is stopped still uncharges a moved
    block, and threads that free each other's blocks and reallocate leave
    nothing traced once they have freed everything."""
    t = Target("control=1,at_exit=0")
    try:
        ok("start", t.pid, "--sample", "64K")
        t.cmd("alloc after 4096 16000")
        sites, h = read_snap(snap(t.pid, "moved.snap"))
        size = sites.get("alloc_after", (0, 0))[0]
        # About 890 samples: the estimate's deviation is about 3%.
        check(h["sampled"] is True and 0.75 * 65536000 < size < 1.25 * 65536000,
              "the estimate of 65536000 B is off: %r" % sites)
        ok("stop", t.pid)
        t.cmd("free after")
        ok("start", t.pid)
        sites, h = read_snap(snap(t.pid, "moved-freed.snap"))
        check(h["traced"]["current"] == 0, "blocks freed while stopped stayed traced: %d B, %r"
              % (h["traced"]["current"], sites))
        # The threads are created while tracing is stopped: pthread_create
        # mallocs each thread's TLS block (304 B here) in main, and glibc
        # keeps it, with the thread's stack, in its cache after the join.
        # Sampled (about one run in fifteen), that live block was the
        # "still traced" one: {'main': (65473, 215)}.
        ok("stop", t.pid)
        t.cmd("threads 4")
        ok("start", t.pid)
        for i in range(10):
            time.sleep(0.02)
            ok("stop", t.pid)
            time.sleep(0.01)
            ok("start", t.pid)
        t.cmd("join")
        check_none_traced(t.pid, "moved-joined.snap")
        check(t.end() == 0, "the target failed: %s" % t.stderr)
    finally:
        t.kill()


def t_threads():
    """start and stop, over and over, while four threads allocate, free each
    other's blocks and reallocate: once they have freed everything, nothing
    is left traced, to the byte."""
    t = Target("control=1,at_exit=0")
    try:
        t.cmd("threads 4")
        for i in range(25):
            ok("start", t.pid)
            time.sleep(0.02)
            if i % 5 == 0:
                snap(t.pid, "busy%d.snap" % i)
            ok("stop", t.pid)
            time.sleep(0.01)
        ok("start", t.pid)
        t.cmd("join")
        check_none_traced(t.pid, "joined.snap")
        check(t.end() == 0, "the target failed: %s" % t.stderr)
    finally:
        t.kill()


def t_concurrent():
    """Requests from several clients at once, while the program's threads allocate."""
    t = Target("control=1,trace=1,at_exit=0")
    try:
        t.cmd("threads 2")
        procs = []
        for i in range(4):
            procs.append(subprocess.Popen([TOOL, "snap", str(t.pid), "-o", "c%d.snap" % i], cwd=DIR,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=base_env()))
        procs.append(subprocess.Popen([TOOL, "snap", str(t.pid)], cwd=DIR, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=base_env()))
        paths = set()
        for p in procs:
            out, err = p.communicate(timeout=60)
            check(p.returncode == 0, "a concurrent snap failed: %s" % err)
            paths.add(out.strip())
        check(len(paths) == 5, "five requests, %d distinct files: %r" % (len(paths), paths))
        for path in paths:
            read_snap(path)
        t.cmd("join")
        check(t.end() == 0, "the target failed: %s" % t.stderr)
    finally:
        t.kill()


def t_exit_request():
    """A snap request waiting in the queue when the program exits is still
    served: the helper is kept busy by a client that says nothing (2 s),
    the program exits meanwhile, and the queued snap gets its file."""
    t = Target("control=1,trace=1,at_exit=0")
    try:
        t.cmd("alloc after 5 3000")
        quiet = slow_client(t.pid)
        p = subprocess.Popen([TOOL, "snap", str(t.pid), "-o", "late.snap"], cwd=DIR, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=base_env())
        time.sleep(0.5)  # connected: queued behind the quiet client
        check(t.end() == 0, "the target failed: %s" % t.stderr)
        out, err = p.communicate(timeout=30)
        check(p.returncode == 0, "the snap queued at exit was lost: exit %d, %s" % (p.returncode, err.strip()))
        sites, _ = read_snap(out.strip())
        check(sites.get("alloc_after") == (15000, 5), "the late snapshot holds %r" % sites)
        answer = quiet.recv(4096)
        check(answer == b"error no request within 2 s", "the quiet client got %r" % answer)
        quiet.close()
        # After exit, nobody answers any more: a clear refusal, no hang.
        rc, _, err = tool("snap", t.pid)
        check(rc == 2 and "no such process" in err, "snap after exit: %d %r" % (rc, err))
    finally:
        t.kill()


def signal_exit(opts, busy):
    t = Target(opts)
    try:
        t.cmd("alloc after 5 3000")
        quiet = slow_client(t.pid) if busy else None
        t.cmd("sleepexit")  # answers, then sleeps
        time.sleep(0.2)
        os.kill(t.pid, signal.SIGUSR2)  # cuts the sleep short: the program exits at once
        check(t.end() == 0, "the target failed: %s" % t.stderr)
        snaps = [f for f in os.listdir(DIR) if f.startswith("snapmalloc.%d." % t.pid)]
        check(len(snaps) == 1, "SIGUSR2 right before exit: expected one snapshot, found %r" % snaps)
        sites, h = read_snap(os.path.join(DIR, snaps[0]))
        check(sites.get("alloc_after") == (15000, 5) and not h["final"], "the signal's snapshot holds %r" % sites)
        if quiet:
            quiet.close()
    finally:
        t.kill()


def t_exit_signal():
    """kill -USR2 on a program in sleep(): the sleep ends, the program exits,
    and the snapshot asked for is written all the same (at_exit=0)."""
    signal_exit("trace=1,at_exit=0", False)


def t_exit_signal_busy():
    """The same with the helper busy (a quiet control client) when the signal
    comes: the exit waits for it to write the snapshot."""
    signal_exit("trace=1,control=1,at_exit=0", True)


def t_refuse():
    """No such process, not preloaded, not armed, a stopped process (timed
    out), a name squatted by another process; usage errors."""
    p = subprocess.Popen(["sleep", "30"], env=base_env())
    try:
        refused(["snap", p.pid], "pid %d: not preloaded (libsnapmalloc.so is not loaded in it)" % p.pid)
        refused(["start", p.pid], "not preloaded")
    finally:
        p.kill()
        p.wait()
    refused(["snap", p.pid], "pid %d: no such process" % p.pid)
    refused(["stop", p.pid], "no such process")
    t = Target("trace=1,at_exit=0")
    try:
        line = refused(["snap", t.pid], "pid %d: not armed (" % t.pid)
        check("control=1" in line, "the refusal should say how to arm: %r" % line)
        # Another process binds the unarmed target's name: the tool sees it is not the target.
        squat = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        squat.bind(control_name(t.pid))
        squat.listen(4)

        def answer():
            c, _ = squat.accept()
            try:
                c.recv(8192)
                c.send(b"ok " + DIR.encode() + b"/fake.snap")
            except OSError:
                pass  # the tool hung up on us, as it should
            c.close()

        th = threading.Thread(target=answer, daemon=True)
        th.start()
        refused(["snap", t.pid], "pid %d: its control socket's name is held by another process (pid %d)" %
                (t.pid, os.getpid()))
        squat.close()
        check(t.end() == 0, "the target failed")
    finally:
        t.kill()
    t = Target("control=1,at_exit=0")
    try:
        os.kill(t.pid, signal.SIGSTOP)
        began = time.monotonic()
        refused(["snap", t.pid, "--timeout", "1"], "pid %d: timed out after 1 s waiting for the answer" % t.pid)
        check(time.monotonic() - began < 5, "--timeout 1 took %.1f s" % (time.monotonic() - began))
        os.kill(t.pid, signal.SIGCONT)
        snap(t.pid, "after-stop.snap")
        check(t.end() == 0, "the target failed")
    finally:
        t.kill()
    for args, needle in [(["snap"], "needs a process id"), (["snap", "12x"], "takes a process id, not '12x'"),
                         (["snap", "1", "2"], "takes one process id"), (["start", "1", "--depth", "0"], "--depth"),
                         (["start", "1", "--sample", "lots"], "--sample"), (["stop", "1", "--timeout", "-1"], "--timeout"),
                         (["snap", "1", "--depth", "3"], "'--depth' is unknown"), (["snap", "0"], "process id")]:
        refused(args, needle)


def t_malformed():
    """What the tool never sends gets an error answer, and the process goes on."""
    t = Target("control=1,at_exit=0")
    try:
        cases = [
            (b"", b"error unknown request (start, stop or snap)"),
            (b"bogus", b"error unknown request (start, stop or snap)"),
            (b"snapshot", b"error unknown request (start, stop or snap)"),
            (b"start depth=0", b"error depth must be a whole number from 1 to 128"),
            (b"start depth=129", b"error depth must be a whole number from 1 to 128"),
            (b"start depth=99999999999999999999999", b"error depth must be a whole number from 1 to 128"),
            (b"start depth=", b"error depth must be a whole number from 1 to 128"),
            (b"start depth=-3", b"error depth must be a whole number from 1 to 128"),
            (b"start sample=1K", b"error sample must be a whole number of bytes from 0 to 2^40"),
            (b"start sample=2199023255553", b"error sample must be a whole number of bytes from 0 to 2^40"),
            (b"start depth=3 depth=4", b"error malformed request (start takes ' depth=N' and ' sample=BYTES', each once)"),
            (b"start  depth=3", b"error malformed request (start takes ' depth=N' and ' sample=BYTES')"),
            (b"start depth", b"error malformed request (start takes ' depth=N' and ' sample=BYTES')"),
            (b"start color=red", b"error malformed request (start takes ' depth=N' and ' sample=BYTES', each once)"),
            (b"start depth=3\n", b"error depth must be a whole number from 1 to 128"),
            (b"stop now", b"error malformed request (stop takes nothing)"),
            (b"snap relative.snap", b"error malformed request (snap takes an absolute path)"),
            (b"snap ", b"error malformed request (snap takes an absolute path)"),
            (b"snap /tmp/x\0y", b"error malformed request (a NUL byte)"),
            (b"snap /" + b"a" * 4200, b"error request too long"),
            (b"snap /" + b"a" * 4100, b"error the path is too long"),
            (b"snap /" + b"a" * 300 + b"/x.snap", b"error cannot write the snapshot: File name too long"),
            (b"snap " + DIR.encode() + b"/no/such/dir/x.snap", b"error cannot write the snapshot: No such file or directory"),
            (b"snap " + DIR.encode(), b"error cannot write the snapshot: File exists"),
            (b"stop", b"error tracing is not on"),
        ]
        for req, want in cases:
            got = raw(t.pid, req)
            check(got == want, "request %r: expected %r, got %r" % (req[:60], want, got))
        got = raw(t.pid, b"start depth=5 sample=0")
        check(got == b"ok depth=5 sample=0", "a valid raw start: %r" % got)
        path = DIR + "/raw \n name.snap"
        got = raw(t.pid, b"snap " + path.encode())
        check(got == b"ok " + path.encode(), "a path with a space and a newline: %r" % got)
        read_snap(path)
        check(t.end() == 0, "the target failed after the malformed requests: %s" % t.stderr)
    finally:
        t.kill()


def t_fork_exec():
    """A forked child is armed under its own pid, independently of its
    parent; exec re-arms the new image under the same pid."""
    t = Target("control=1,at_exit=0")
    child = None
    try:
        t.cmd("alloc before 3 100")
        child = int(t.cmd("fork").split()[1])
        check(child != t.pid, "fork: the child answered with the parent's pid")
        ok("start", child)
        path = snap(child, "child.snap")
        _, h = read_snap(path)
        check(h["pid"] == child and h["tracing"] is True, "the child's snapshot: %r" % h)
        _, h = read_snap(snap(t.pid, "parent.snap"))
        check(h["pid"] == t.pid and h["tracing"] is False, "the parent's tracing must stay off: %r" % h)
        ok("start", t.pid)
        t.cmd("alloc after 2 5000")
        t.send("exec")
        again = t.line()
        check(again == "ready %d" % t.pid, "exec: expected 'ready %d', got %r" % (t.pid, again))
        _, h = read_snap(snap(t.pid, "exec.snap"))
        check(h["pid"] == t.pid and h["tracing"] is False and h["traced"]["current"] == 0,
              "after exec the new image is armed, tracing off: %r" % h)
        os.kill(child, signal.SIGKILL)  # it holds the target's stdout and stderr
        check(t.end() == 0, "the target failed")
    finally:
        t.kill()
        if child:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass


def t_idle():
    """Without control=1 nothing appears (no thread, no socket, no handler);
    armed, a socket and one thread, and no signal handler until tracing starts."""

    def state(pid):
        threads = len(os.listdir("/proc/%d/task" % pid))
        name = control_name(pid)[1:].decode()
        with open("/proc/net/unix") as f:
            listening = any(line.split()[-1] == "@" + name for line in f if len(line.split()) >= 8)
        with open("/proc/%d/status" % pid) as f:
            caught = int([l for l in f if l.startswith("SigCgt:")][0].split()[1], 16)
        return threads, listening, bool(caught & (1 << (signal.SIGUSR2 - 1)))

    t = Target(None)  # preloaded, no options
    try:
        check(state(t.pid) == (1, False, False), "unarmed, untraced: expected 1 thread, no socket, no handler: "
              "%r" % (state(t.pid),))
        t.end()
    finally:
        t.kill()
    t = Target("control=1,at_exit=0")
    try:
        check(state(t.pid) == (2, True, False), "armed: expected 2 threads, the socket, no handler: %r" %
              (state(t.pid),))
        ok("start", t.pid)
        check(state(t.pid) == (2, True, True), "tracing: the SIGUSR2 handler: %r" % (state(t.pid),))
        t.cmd("alloc after 1 10")
        os.kill(t.pid, signal.SIGUSR2)
        for _ in range(50):
            if any(f.startswith("snapmalloc.%d." % t.pid) for f in os.listdir(DIR)):
                break
            time.sleep(0.1)
        else:
            raise Fail("no snapshot within 5 s of SIGUSR2 after start")
        t.end()
    finally:
        t.kill()


def t_closefds():
    """A program that closes every descriptor (as daemons do) and reuses the
    numbers: the library stops using its pipe and socket, writes nothing
    into the program's files on a signal, and does not spin."""
    t = Target("control=1,trace=1,at_exit=0")
    try:
        # pipes of the program's under the old numbers: the helper sees
        # nothing to read, the signal handler must see they are not its own
        t.cmd("closefds pipes")
        os.kill(t.pid, signal.SIGUSR2)
        time.sleep(0.3)
        got = t.cmd("pipebytes")
        check(got == "ok 0", "the snapshot signal wrote into the program's pipes: %r" % got)
        check(t.end() == 0, "the target failed: %s" % t.stderr)
    finally:
        t.kill()
    t = Target("control=1,trace=1,at_exit=0")
    try:
        t.cmd("closefds " + DIR)
        os.kill(t.pid, signal.SIGUSR2)
        time.sleep(0.5)
        sizes = [os.path.getsize(os.path.join(DIR, "fd%d" % i)) for i in range(8)]
        check(sizes == [0] * 8, "the snapshot signal wrote into the program's files: %r" % sizes)
        refused(["snap", t.pid], "pid %d: not armed" % t.pid)

        def cpu():
            with open("/proc/%d/stat" % t.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        before = cpu()
        time.sleep(1)
        check(cpu() - before < 0.2, "the process spins after its descriptors were closed: %.2f s of CPU in 1 s" %
              (cpu() - before))
        check(t.end() == 0, "the target failed: %s" % t.stderr)
        check("the control socket was closed by the program; the control channel is off" in t.stderr,
              "no warning about the closed socket: %r" % t.stderr)
    finally:
        t.kill()


def t_at_exit():
    """Tracing started late: the final snapshot and its leak scan happen as
    with trace=1; stopped before exit: the final snapshot says tracing is off."""
    for stop in (False, True):
        t = Target("control=1")
        try:
            ok("start", t.pid)
            t.cmd("alloc after 4 2000")
            if stop:
                ok("stop", t.pid)
                t.cmd("alloc again 4 2000")
            check(t.end() == 0, "the target failed: %s" % t.stderr)
            snaps = [f for f in os.listdir(DIR) if f.startswith("snapmalloc.%d." % t.pid)]
            check(len(snaps) == 1, "expected the final snapshot, found %r" % snaps)
            sites, h = read_snap(os.path.join(DIR, snaps[0]))
            check(h["final"] and h["tracing"] is (not stop) and sites == {"alloc_after": (8000, 4)},
                  "final snapshot (stopped: %s): %r %r" % (stop, h, sites))
            rc, out, err = tool("leaks", os.path.join(DIR, snaps[0]), "--show", "reachable")
            check(rc == 0 and "alloc_after" in out, "the final snapshot has no leak classes: %r %r" % (out, err))
        finally:
            t.kill()


def t_run():
    """snapmalloc run arms what it starts: tracing is on, and can be stopped."""
    env = base_env()
    env["SNAPMALLOC_LIB"] = LIB
    p = subprocess.Popen([TOOL, "run", "--out", DIR + "/run.%p.snap", "--no-report", "--", TARGET], cwd=DIR,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, bufsize=0)
    try:
        first = p.stdout.readline().decode()
        pid = int(first.split()[1])
        refused(["start", pid], "tracing is already on")
        ok("stop", pid)
        _, h = read_snap(snap(pid, "run-stopped.snap"))
        check(h["tracing"] is False, "after stop under run: %r" % h)
        p.stdin.close()
        check(p.wait(30) == 0, "snapmalloc run failed")
    finally:
        if p.poll() is None:
            p.kill()


def t_other_user():
    """Only the process's user or root: a request from another uid is refused
    by the process itself, and so is one from its own uid when the process is
    in a group the requester is not."""
    need_root()
    t = Target("control=1,at_exit=0")  # root's
    try:
        for cmd in (["snap", t.pid, "-o", "x.snap"], ["start", t.pid], ["stop", t.pid]):
            refused(cmd, "pid %d: permission refused (the process belongs to another user)" % t.pid, uid=NOBODY)
        # the process's own refusal, without the tool's checks in between
        name = control_name(t.pid)  # another uid cannot read the target's /proc/PID/ns
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                got = raw(t.pid, b"snap " + DIR.encode() + b"/raw.snap", name=name)
                code = 0 if got == b"error permission refused (the process belongs to another user)" else 1
                if code:
                    print("the raw request from uid %d got %r" % (NOBODY, got))
            except Exception as e:
                print("the raw request from uid %d failed: %s" % (NOBODY, e))
            finally:
                os._exit(code)
        check(os.waitpid(pid, 0)[1] == 0, "the process answered another uid's raw request with something else")
        check(not os.path.exists(os.path.join(DIR, "x.snap")) and not os.path.exists(os.path.join(DIR, "raw.snap")),
              "a refused request wrote a file")
        ok("start", t.pid)  # root may
        check(t.end() == 0, "the target failed")
    finally:
        t.kill()
    t = Target("control=1,at_exit=0", uid=NOBODY, groups=[100])
    try:
        refused(["snap", t.pid, "-o", "g.snap"],
                "pid %d: permission refused (the process is in group 100 and the requester is not)" % t.pid,
                uid=NOBODY)
        snap(t.pid, "g.snap", uid=NOBODY, groups=[100])
        snap(t.pid, "root.snap")
        check(t.end() == 0, "the target failed")
    finally:
        t.kill()
    # an unarmed process of another user: the requester cannot even see why
    t = Target("trace=1,at_exit=0")
    try:
        refused(["snap", t.pid], "pid %d: permission refused (the process belongs to another user)" % t.pid,
                uid=NOBODY)
        t.end()
    finally:
        t.kill()


TESTS = {name[2:].replace("_", "-"): fn for name, fn in globals().items() if name.startswith("t_")}

if __name__ == "__main__":
    fn = TESTS.get(TEST)
    if not fn:
        print("unknown test %s (known: %s)" % (TEST, ", ".join(sorted(TESTS))))
        sys.exit(2)
    try:
        fn()
    except Fail as e:
        print("FAIL: %s" % e)
        sys.exit(1)
    finally:
        subprocess.run(["rm", "-rf", DIR])
    print("ok")
