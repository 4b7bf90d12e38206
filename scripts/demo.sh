#!/bin/sh
# The README's first quick-start command: installs what is needed, builds,
# then traces the bundled example program and shows its top allocation sites
# and what its second phase added.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
sh scripts/build.sh
out=$(mktemp -d)
echo "== snapmalloc run -- build/examples/phases"
build/snapmalloc run --out "$out/phases.%n.snap" -- build/examples/phases
echo
echo "== snapmalloc top $out/phases.1.snap --limit 5"
build/snapmalloc top "$out/phases.1.snap" --limit 5
echo
echo "== snapmalloc diff $out/phases.0.snap $out/phases.1.snap --limit 5"
build/snapmalloc diff "$out/phases.0.snap" "$out/phases.1.snap" --limit 5
echo
echo "(snapshots kept in $out)"
