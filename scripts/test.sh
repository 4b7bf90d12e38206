#!/bin/sh
# Installs what is needed (as root, on Debian 12), builds, and runs every
# test suite: unit, preload, stress, real programs, CLI. The last line is
# "N passed, N failed, N skipped".
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
sh scripts/build.sh
status=0
meson test -C build --print-errorlogs --num-processes 2 "$@" || status=$?
python3 - build/meson-logs/testlog.json <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result", "")
    if r in ("OK", "EXPECTEDFAIL"):
        passed += 1
    elif r == "SKIP":
        skipped += 1
    else:
        failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
