# Threads (threading) allocating on lines of their own while the main
# thread writes the snapshot (compare.py compares with tracemalloc). Each
# worker allocates, then waits until the mark has been taken, so that what
# is live at the mark is the same in every run.
import ctypes
import json
import sys
import threading
import tracemalloc

MODE, OUT = sys.argv[1], sys.argv[2]
if MODE == "tracemalloc":
    tracemalloc.start(1)

N = 4
ready = threading.Barrier(N + 1)
done = threading.Barrier(N + 1)
held = [None] * N


def worker(k):
    churn = 0
    for i in range(20000):
        churn += len({"k": [i] * (i % 7)})
    held[k] = [bytearray(1000 + k) for i in range(500)]
    text = ["t%d-%d" % (k, i) for i in range(3000)]
    held[k].append(text)
    ready.wait()
    done.wait()


threads = [threading.Thread(target=worker, args=(k,)) for k in range(N)]
for t in threads:
    t.start()
ready.wait()

# The mark: every worker holds its data and waits.
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
done.wait()
for t in threads:
    t.join()
