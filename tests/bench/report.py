#!/usr/bin/python3
"""bench/run's comparison against the best of the others, its geometric
means against glibc, and the workload set of each tool set (--mode).

usage: report.py BENCH_RUN BENCH_BUILD_DIR LIBSNAPMALLOC

Runs two tiny workloads once under glibc and snapmalloc and checks the
report against the runner's own CSV figures."""

import csv
import os
import subprocess
import sys
import tempfile
import time

run, build, lib = sys.argv[1:4]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def bench_run(*args):
    p = subprocess.run([sys.executable, run, "--build", build, "--lib", lib, *args],
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def listed(mode):
    """{workload: marked as run by default} from --list."""
    code, out, err = bench_run("--list", "--mode", mode)
    check(code == 0, f"--list --mode {mode} exited {code}: {err}")
    marks = {}
    for line in out.splitlines()[1:]:
        if line.startswith("tools"):
            break
        marks[line[2:].split()[0]] = line.startswith("* ")
    return marks


def close(got, a, b, printed=1e-4):
    """got == a / b, given that a and b were printed with 4 decimals and got
    was rounded to `printed`."""
    err = (a / b) * (0.5e-4 / a + 0.5e-4 / b)
    return abs(got - a / b) <= err + printed / 2 + 1e-9


# Which workloads each tool set runs by default.
alloc, tracing = listed("alloc"), listed("tracing")
for name in ("larson-sized", "lifetimes-1t", "lifetimes-2t", "bigint", "sets",
             "cache-thrash-1t", "cache-thrash-mt", "cache-scratch-1t",
             "cache-scratch-mt", "mstress", "larson", "churn"):
    check(alloc.get(name) is True, f"{name} is not in the default alloc set")
check(alloc.get("deepchurn") is False, "deepchurn is in the default alloc set")
check(tracing.get("deepchurn") is True, "deepchurn is not in the tracing set")
check(tracing.get("deepchurn-depth") is True, "deepchurn-depth is not in the tracing set")
check(alloc.get("deepchurn-depth") is False, "deepchurn-depth is in the default alloc set")
check(tracing.get("lifetimes-1t") is False, "lifetimes-1t is in the tracing set")
check(tracing.get("churn") is True, "churn is not in the tracing set")

with tempfile.TemporaryDirectory() as out:
    code, md, err = bench_run("--runs", "1", "--quiet", "--out", out,
                              "--allocators", "glibc,snapmalloc",
                              "--workloads", "bigint,sets",
                              "--args", "bigint=20000", "--args", "sets=8000")
    check(code == 0, f"bench/run exited {code}: {err}")
    with open(os.path.join(out, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    check(len(rows) == 4, f"{len(rows)} CSV rows, expected 4")
    med = {(r["workload"], r["allocator"]): float(r["median_wall_s"]) for r in rows}
    for r in rows:
        other = "glibc" if r["allocator"] == "snapmalloc" else "snapmalloc"
        a, b = med[(r["workload"], r["allocator"])], med[(r["workload"], other)]
        if not r.get("best_other_time_ratio"):
            check(False, f"{r['workload']}/{r['allocator']}: no best_other_time_ratio")
            continue
        got = float(r["best_other_time_ratio"])
        check(close(got, a, b), f"{r['workload']}/{r['allocator']}: "
              f"best_other_time_ratio {got}, expected {a / b:.4f}")

    check("## Wall time against the best of the others" in md,
          "no best-of-the-others table")
    lines = md.splitlines()
    for wl in ("bigint", "sets"):
        row = next((ln for ln in lines if ln.startswith(f"| {wl} | ")
                    and ln.split("|")[2].strip() in ("glibc", "snapmalloc")), None)
        check(row is not None, f"no best-of-the-others row for {wl}")
        if row is None:
            continue
        cells = [c.strip() for c in row.split("|")[1:-1]]
        fastest = min(("glibc", "snapmalloc"), key=lambda a: med[(wl, a)])
        check(cells[1] == fastest, f"{wl}: fastest is {cells[1]}, expected {fastest}")
        for a, cell in zip(("glibc", "snapmalloc"), cells[2:]):
            other = "snapmalloc" if a == "glibc" else "glibc"
            want = med[(wl, a)] / med[(wl, other)]
            check(close(float(cell), med[(wl, a)], med[(wl, other)], 0.01),
                  f"{wl}/{a}: best-of-the-others cell {cell}, expected {want:.2f}")
    check(any(ln.startswith("| **worst** |") for ln in lines), "no worst row")

    geo_head = next((ln for ln in lines if ln.startswith("| allocator |")), "")
    check("time ratio to glibc" in geo_head and "peak RSS ratio to glibc" in geo_head,
          f"geometric means have no glibc columns: {geo_head}")
    glibc_row = next((ln for ln in lines if ln.startswith("| glibc | ") and
                      ln.count("|") == geo_head.count("|")), "")
    cells = [c.strip() for c in glibc_row.split("|")[1:-1]]
    check(cells[3:5] == ["1.000", "1.000"], f"glibc against itself: {glibc_row}")

    # Every other round in reverse, each pair of rounds one tool further on
    # (the progress lines say who ran when): no tool always follows the
    # same one, whose run may leave it something to pay.
    code, md, err = bench_run("--runs", "4", "--out", out, "--allocators", "glibc,jemalloc,snapmalloc",
                              "--workloads", "bigint", "--args", "bigint=3000")
    check(code == 0, f"bench/run (4 rounds) exited {code}: {err}")
    order = [ln.split()[3] for ln in err.splitlines() if ln.startswith("[bigint] run ")]
    want = ["glibc", "jemalloc", "snapmalloc", "snapmalloc", "jemalloc", "glibc",
            "jemalloc", "snapmalloc", "glibc", "glibc", "snapmalloc", "jemalloc"]
    check(order == want, f"the rounds ran {order}, expected {want}")

    # --settle: a pause before every run, said in the report; out of range
    # is a usage error.
    t0 = time.monotonic()
    code, md, err = bench_run("--runs", "2", "--quiet", "--out", out, "--allocators", "glibc,snapmalloc",
                              "--workloads", "bigint", "--args", "bigint=3000", "--settle", "0.5")
    took = time.monotonic() - t0
    check(code == 0, f"bench/run --settle exited {code}: {err}")
    check(took >= 2.0, f"bench/run --settle 0.5 with 4 runs took {took:.2f} s, less than the 2 s of pauses")
    check("--settle" in md and "0.5 s after the one before it ended" in md,
          "the report does not say that runs were settled")
    code, md, err = bench_run("--settle", "-1", "--list")
    check(code == 2 and "--settle" in err, f"--settle -1: exit {code}, {err.strip()}")

    # One tool alone: nothing to compare with, no glibc columns.
    code, md, err = bench_run("--runs", "1", "--quiet", "--out", out,
                              "--allocators", "snapmalloc", "--workloads", "bigint",
                              "--args", "bigint=3000")
    check(code == 0, f"bench/run (snapmalloc only) exited {code}: {err}")
    check("best of the others" not in md and "ratio to glibc" not in md,
          "a run of one tool compares it with others")

    # --base-lib: the same library as a base; the paired table is the
    # median of the per-round ratios of the CSV's raw times.
    code, md, err = bench_run("--runs", "3", "--quiet", "--out", out, "--mode", "tracing",
                              "--base-lib", lib, "--workloads", "churn", "--args", "churn=20000",
                              "--allocators", "snapmalloc,snap-traced,snap-base,base-traced")
    check(code == 0, f"bench/run --base-lib exited {code}: {err}")
    with open(os.path.join(out, "results.csv")) as f:
        raw = {r["allocator"]: [float(x) for x in r["raw_wall_s"].split(";")] for r in csv.DictReader(f)}
    lines = md.splitlines()
    check("## Against the base build, round by round" in md, "--base-lib: no paired table")
    row = next((ln for ln in lines if ln.startswith("| churn | ") and " (" in ln and ln.count("|") == 4), None)
    check(row is not None, "--base-lib: no paired row for churn")
    if row is not None and set(raw) >= {"snapmalloc", "snap-traced", "snap-base", "base-traced"}:
        cells = [c.strip() for c in row.split("|")[2:-1]]
        # The CSV rounds each time to 0.1 ms and the table each ratio to
        # 0.001: the median of the per-round ratios must lie within what
        # those roundings allow (runs of a few ms make the first one large).
        h = 0.00005
        for cell, (a, b) in zip(cells, (("snapmalloc", "snap-base"), ("snap-traced", "base-traced"))):
            pairs = list(zip(raw[a], raw[b]))
            lo = sorted((x - h) / (y + h) for x, y in pairs)[1]
            hi = sorted((x + h) / max(y - h, h) for x, y in pairs)[1]
            got = float(cell.split()[0])
            check(lo - 0.0005 <= got <= hi + 0.0005, f"paired {a}/{b}: {got}, expected {lo:.4f}..{hi:.4f}")
    check(any(ln.startswith("| **geomean** |") for ln in lines), "--base-lib: no geomean row")

for f in failures:
    print("FAIL:", f)
print(f"{len(failures)} failure(s)" if failures else "report checks passed")
sys.exit(1 if failures else 0)
