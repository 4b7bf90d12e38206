# A Python program whose allocation lines are compared, line by line, with
# tracemalloc (compare.py). Usage: workload.py tracemalloc|snapmalloc OUT
# tracemalloc: traces with tracemalloc from the start and writes its
#   statistics("lineno") for this file as JSON to OUT at the mark;
# snapmalloc: (under the preload) writes a snapshot to OUT at the mark.
# Everything allocated before the mark stays alive until it.
import ctypes
import json
import sys
import tracemalloc

MODE, OUT = sys.argv[1], sys.argv[2]
if MODE == "tracemalloc":
    tracemalloc.start(1)


def make_records(n):
    return [{"id": i, "name": "r%d" % i} for i in range(n)]


def make_blob(n):
    return bytes(n)


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y


def alpha():
    return [0] * 500


def beta():
    return {i: -i for i in range(40)}


keep = []
numbers = list(range(100000))
words = [str(i) * 4 for i in range(20000)]
table = {i: "v" for i in range(20000)}
blobs = [bytes(256) for i in range(2000)]
records = make_records(5000)
big = make_blob(3 << 20)
points = [Point(i, -i) for i in range(3000)]
for f in (alpha, beta) * 200:
    keep.append(f())
grow = bytearray()
for i in range(5000):
    grow += b"xyz"
text = "-".join(words)

# The mark.
if MODE == "tracemalloc":
    snap = tracemalloc.take_snapshot()
    stats = {}
    for st in snap.statistics("lineno"):
        frame = st.traceback[0]
        if frame.filename == __file__:
            stats[frame.lineno] = [st.size, st.count]
    with open(OUT, "w") as f:
        json.dump(stats, f)
else:
    if ctypes.CDLL(None).snapmalloc_snapshot(OUT.encode()) != 0:
        sys.exit("snapmalloc_snapshot failed")
