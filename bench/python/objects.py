# Python object churn: small dicts, lists, tuples, strings and instances made
# and dropped in a loop, one in 32 kept in a long-lived pool that replaces a
# random older entry (so new short-lived objects mix with old ones, as in
# bench/churn.c). Deterministic: the checksum depends only on the work done.
#   objects.py [iterations=400000]
import sys
import time


class Node:
    __slots__ = ("key", "value", "children")

    def __init__(self, key, value):
        self.key = key
        self.value = value
        self.children = []


def main():
    t0 = time.perf_counter()
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "-" else 400000
    pool = [None] * 5000
    x = 12345
    acc = 0
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        d = {"id": i, "name": "n%d" % (x % 1000), "tags": [x & 7, x & 15]}
        t = (i, d["name"], x % 97)
        node = Node(t[1], d)
        node.children.append(t)
        s = d["name"] * (1 + x % 4)
        acc = (acc * 31 + len(s) + t[2] + len(node.children)) & 0xFFFFFFFFFFFFFFFF
        if x % 32 == 0:
            k = (x >> 5) % len(pool)
            old = pool[k]
            if old is not None:
                acc ^= old.value["id"]
            pool[k] = node
    live = sum(1 for p in pool if p is not None)
    print("objects iterations=%d live=%d time_s=%.3f checksum=%016x" % (n, live, time.perf_counter() - t0, acc))


main()
