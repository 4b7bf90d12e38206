#!/bin/sh
# Debian's python3 under the preload, with PYTHONMALLOC=malloc so that every
# object goes through malloc/realloc/free: a dict/list/json workload, a
# threaded one, and multiprocessing with the fork start method. Each prints
# digests of deterministic results; the outputs must match a run without the
# preload. Usage: python.sh PATH-TO-libsnapmalloc.so
. "$(dirname "$0")/common.sh"

py=/usr/bin/python3
if [ ! -x "$py" ]; then
  echo "$py is not installed: skipped"
  exit 77
fi
export PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1

cat >"$tmp/objects.py" <<'PY'
import hashlib, json, sys

def digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()

# Many small objects: dicts of lists of strings, built, mutated, serialised.
d = {}
x = 12345
for i in range(200000):
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    key = "k%d" % (x % 50000)
    d.setdefault(key, []).append(str(x) * (1 + x % 5))
    if i % 7 == 0:
        d.pop("k%d" % ((x >> 8) % 50000), None)
print("dict", len(d), digest(d))
text = json.dumps(d, sort_keys=True)
back = json.loads(text)
print("json roundtrip", back == d, len(text))
lists = sorted(((k, sum(len(s) for s in v)) for k, v in d.items()), key=lambda t: (-t[1], t[0]))
print("sorted", digest(lists[:1000]))
s = set()
for k, v in d.items():
    for w in v:
        s.add(w[:6])
print("set", len(s), digest(sorted(s)))
# Big strings and bytes: realloc growth and large blocks.
buf = []
for i in range(2000):
    buf.append(("%08d" % i) * 500)
big = "".join(buf)
print("big", len(big), hashlib.sha256(big.encode()).hexdigest())
ba = bytearray()
for i in range(100000):
    ba += i.to_bytes(4, "little")
print("bytearray", len(ba), hashlib.sha256(ba).hexdigest())
del d, back, lists, s, buf, big, ba
# Is the preload in this very process (to stderr: not compared)?
print("maps has snapmalloc:", "snapmalloc" in open("/proc/self/maps").read(), file=sys.stderr)
PY

cat >"$tmp/threads.py" <<'PY'
import hashlib, threading

results = [None] * 4

def work(n):
    h = hashlib.sha256()
    acc = {}
    for i in range(60000):
        k = (i * (n + 3)) % 9973
        acc.setdefault(k, []).append("%d-%d" % (n, i))
        if len(acc[k]) > 8:
            del acc[k][:4]
        if i % 1000 == 0:
            h.update(repr(sorted(acc.items())[:50]).encode())
    h.update(repr(sorted((k, len(v)) for k, v in acc.items())).encode())
    results[n] = h.hexdigest()

threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for n, r in enumerate(results):
    print("thread", n, r)
PY

cat >"$tmp/mp.py" <<'PY'
import hashlib, multiprocessing

def job(n):
    parts = []
    for i in range(3000):
        parts.append(("%d:%d" % (n, i)) * (1 + i % 7))
    d = {p[:12]: len(p) for p in parts}
    return n, len(d), hashlib.sha256("".join(parts).encode()).hexdigest()

if __name__ == "__main__":
    # Allocate a lot in the parent first, so the children inherit a busy heap.
    keep = [str(i) * 10 for i in range(200000)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        out = pool.map(job, range(64), chunksize=4)
    for r in out:
        print("job", *r)
    with ctx.Pool(4) as pool:
        print("sum", sum(pool.map(len, (str(i) * 100 for i in range(20000)))))
    print("kept", len(keep), sum(map(len, keep)))
PY

workload() {
  "$py" "$tmp/objects.py"
  "$py" "$tmp/threads.py"
  "$py" "$tmp/mp.py"
}

compare_runs python
# The interpreter itself really ran with the library mapped.
if ! grep -q 'maps has snapmalloc: True' "$tmp/preload.err"; then
  echo "python: the preloaded interpreter did not have libsnapmalloc mapped"
  exit 1
fi
