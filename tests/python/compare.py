# snapmalloc top --by line against tracemalloc's statistics("lineno") on the
# same program at the same point: every line that either reports with 4
# KiB or more must be in both, within 3% in size and in count, and the
# lines named must be there. Usage:
#   compare.py SNAPMALLOC WORKDIR WORKLOAD [NAME=LINE-START ...]
# (SNAPMALLOC_LIB in the environment); LINE-START picks the first line of
# WORKLOAD that starts with it. workload.py has list, str, dict, bytes and
# function-level lines; threads_workload.py threads' own lines. The two runs are separate processes of the same
# deterministic program: tracemalloc's own tables would otherwise be
# traced too, and charged to the lines that made them grow.
import json
import os
import subprocess
import sys

PY = os.environ.get("SM_TEST_PYTHON", "/usr/bin/python3")  # the traced interpreter
if not os.access(PY, os.X_OK):
    print(PY + " is not installed: skipped")
    sys.exit(77)
exe, work, workload = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
os.makedirs(work, exist_ok=True)
env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
env.pop("PYTHONMALLOC", None)
env.pop("SNAPMALLOC_OPTIONS", None)

# tracemalloc sees the objects whichever allocator serves them; malloc here
# as in the traced run, so that the runs differ in nothing else.
tm_json = os.path.join(work, "tracemalloc.json")
subprocess.run([PY, workload, "tracemalloc", tm_json], env=dict(env, PYTHONMALLOC="malloc"), check=True)
snap = os.path.join(work, "workload.snap")
if os.path.exists(snap):
    os.unlink(snap)
# `snapmalloc run`, as a user would: PYTHONMALLOC is the library's to set.
subprocess.run([exe, "run", "--out", os.path.join(work, "exit.%p.snap"), "--", PY, workload, "snapmalloc", snap],
               env=env, check=True, stderr=subprocess.DEVNULL)
out = subprocess.run([exe, "top", snap, "--by", "line", "--limit", "0", "--format", "json"], env=env, check=True,
                     capture_output=True, text=True).stdout

with open(tm_json) as f:
    tm = {int(k): v for k, v in json.load(f).items()}
sm = {}
for st in json.loads(out)["stats"]:
    site = st["site"]
    if site["file"] and os.path.realpath(site["file"]) == os.path.realpath(workload):
        sm[site["line"]] = [st["size"], st["count"]]

src = open(workload).read().split("\n")
def line_of(text):
    return 1 + next(i for i, l in enumerate(src) if l.startswith(text))
wanted = {}
for arg in sys.argv[4:]:
    name, start = arg.split("=", 1)
    wanted[name] = line_of(start)

failed = False
print("%-6s %-30s %12s %8s %12s %8s %7s" % ("line", "", "tracemalloc", "count", "snapmalloc", "count", "diff"))
for line in sorted(set(tm) | set(sm)):
    a = tm.get(line, [0, 0])
    b = sm.get(line, [0, 0])
    big = max(a[0], b[0]) >= 4096
    diff = (b[0] - a[0]) / a[0] * 100 if a[0] else float("inf")
    bad = big and (abs(b[0] - a[0]) > 0.03 * max(a[0], 1) or abs(b[1] - a[1]) > 0.03 * max(a[1], 1))
    print("%-6d %-30s %12d %8d %12d %8d %6.2f%%%s" % (line, src[line - 1].strip()[:30], a[0], a[1], b[0], b[1], diff,
                                                    "  <- differs" if bad else ""))
    failed |= bad
for what, line in wanted.items():
    if tm.get(line, [0])[0] < 4096 or sm.get(line, [0])[0] < 4096:
        print("the %s line (%d) is missing" % (what, line))
        failed = True
sys.exit(1 if failed else 0)
