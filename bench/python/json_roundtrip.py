# A JSON round trip: nested records built, serialised with json.dumps,
# parsed back with json.loads and compared, over and over (the C
# accelerator, _json, does the parsing). Deterministic checksum.
#   json_roundtrip.py [rounds=60] [records=2000]
import hashlib
import json
import sys
import time


def arg(k, default):
    return int(sys.argv[k]) if len(sys.argv) > k and sys.argv[k] != "-" else default


def main():
    t0 = time.perf_counter()
    rounds, nrec = arg(1, 60), arg(2, 2000)
    h = hashlib.sha256()
    x = 7
    total = 0
    for r in range(rounds):
        recs = []
        for i in range(nrec):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            recs.append({"id": i, "round": r, "score": x % 1000 / 10.0, "name": "rec-%d-%d" % (r, x % 5000),
                         "flags": [bool(x & (1 << b)) for b in range(4)], "meta": {"k": x % 13, "s": str(x)}})
        text = json.dumps({"round": r, "records": recs}, sort_keys=True)
        back = json.loads(text)
        if back["records"] != recs:
            sys.exit("json_roundtrip: FAILED: round %d did not survive" % r)
        total += len(text)
        h.update(text[-64:].encode())
    print("json rounds=%d records=%d bytes=%d time_s=%.3f checksum=%s" %
          (rounds, nrec, total, time.perf_counter() - t0, h.hexdigest()[:16]))


main()
