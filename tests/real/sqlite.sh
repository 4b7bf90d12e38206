#!/bin/sh
# sqlite3 under the preload: 100k rows inserted in one transaction (a
# recursive CTE generates them), an index, aggregates, a join, a GROUP BY
# and an ORDER BY that sorts; outputs compared with a run without the
# preload. Usage: sqlite.sh PATH-TO-libsnapmalloc.so
. "$(dirname "$0")/common.sh"
need sqlite3

cat >"$tmp/script.sql" <<'SQL'
PRAGMA journal_mode=DELETE;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL, blob BLOB);
BEGIN;
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 100000)
INSERT INTO t(id, grp, name, val, blob)
  SELECT n, (n * 7919) % 97, printf('name-%06d-%s', n, substr('abcdefghijklmnopqrstuvwxyz', 1 + n % 26)),
         (n * 31 % 1000) / 7.0, zeroblob(n % 300)
  FROM seq;
COMMIT;
CREATE INDEX t_grp ON t(grp, val);
SELECT count(*), sum(grp), printf('%.4f', sum(val)), sum(length(name)), sum(length(blob)) FROM t;
SELECT grp, count(*), printf('%.4f', avg(val)), min(name), max(name) FROM t GROUP BY grp ORDER BY grp;
SELECT name FROM t ORDER BY val DESC, name LIMIT 20;
CREATE TABLE g(grp INTEGER PRIMARY KEY, label TEXT);
WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < 96)
INSERT INTO g SELECT n, 'group ' || n FROM s;
SELECT g.label, count(*) FROM t JOIN g USING(grp) WHERE t.val > 100 GROUP BY g.label ORDER BY 2 DESC, 1 LIMIT 10;
UPDATE t SET name = upper(name) || name WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), sum(length(name)) FROM t;
SELECT group_concat(id, ',') FROM (SELECT id FROM t WHERE grp = 13 ORDER BY id LIMIT 50);
SELECT count(DISTINCT substr(name, 1, 9)) FROM t;
VACUUM;
PRAGMA integrity_check;
SELECT count(*) FROM t;
SQL

workload() {
  sqlite3 "$work/db.sqlite" <"$tmp/script.sql"
  # A second process reopens the file.
  sqlite3 "$work/db.sqlite" 'SELECT count(*), sum(id) FROM t;'
}

compare_runs sqlite3
