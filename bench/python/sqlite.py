# sqlite3 from Python: an in-memory database filled with executemany,
# indexed, queried with aggregates and joins, updated and trimmed, in
# rounds. Most of the memory is sqlite's own (its page cache and
# statements), allocated by its C code under the Python calls.
#   sqlite.py [rounds=8] [rows=20000]
import sqlite3
import sys
import time


def arg(k, default):
    return int(sys.argv[k]) if len(sys.argv) > k and sys.argv[k] != "-" else default


def main():
    t0 = time.perf_counter()
    rounds, rows = arg(1, 8), arg(2, 20000)
    db = sqlite3.connect(":memory:")
    db.execute("create table item(id integer primary key, grp integer, name text, qty integer)")
    db.execute("create table grp(id integer primary key, label text)")
    db.executemany("insert into grp values (?, ?)", ((g, "group-%d" % g) for g in range(100)))
    acc, x = 0, 3
    for r in range(rounds):
        batch = []
        for i in range(rows):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            batch.append((x % 100, "item-%d-%d" % (r, x % 100000), x % 1000))
        db.executemany("insert into item(grp, name, qty) values (?, ?, ?)", batch)
        if r == 0:
            db.execute("create index item_grp on item(grp)")
        for label, total, n in db.execute(
                "select g.label, sum(i.qty), count(*) from item i join grp g on g.id = i.grp "
                "group by g.id order by g.id"):
            acc = (acc * 31 + total + n + len(label)) & 0xFFFFFFFFFFFFFFFF
        db.execute("update item set qty = qty + 1 where grp % 7 = ?", (r % 7,))
        db.execute("delete from item where id % 3 = ?", (r % 3,))
    (left,) = db.execute("select count(*) from item").fetchone()
    print("sqlite rounds=%d rows=%d left=%d time_s=%.3f checksum=%016x" % (rounds, rows, left, time.perf_counter() - t0, acc))


main()
