#!/bin/sh
# Installs the Debian 12 packages that snapmalloc builds, tests and benchmarks
# with. Run as root; does nothing that is already done.
set -eu
# zlib1g-dev: `export --format pprof` gzips its profiles; golang-go: the
# export tests read them back with `go tool pprof`; man-db and groff-base:
# the install test renders the man pages; chromium and fonts-dejavu-core:
# the svg tests render the flame graphs and timelines (tests/svg); libcap2-bin:
# tests/tracer/secure.sh gives a binary a file capability (setcap) when not root;
# libtsan2, libasan8, libubsan1: gcc's sanitizer runtimes for the checked
# stages of scripts/test.sh (docs/checks.md); jq, libxml2-utils, bc, perl:
# real programs the leak gate is compared with valgrind on (tests/leaks);
# clang and libclang-rt-14-dev: the fuzz-cli test builds the CLI fuzzer with
# libFuzzer (tests/fuzz/fuzz_cli.sh; it is skipped without them); tmux: the
# live view's test drives it in a real terminal (tests/live/tty.sh, skipped
# without it). The live view itself needs no terminal library (tools/live.c).
# python3.11-dev: CPython 3.11's internal headers, from which the library's
# reader of Python frames takes its offsets (tracer/py311.c, docs/python.md),
# and libpython3.11 for tests/python's embedding tests; without it the
# library is built without Python frames.
pkgs="meson ninja-build gcc g++ pkg-config libtsan2 libasan8 libubsan1 libunwind-dev uthash-dev libdw-dev libelf-dev zlib1g-dev
      valgrind heaptrack libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4
      python3 sqlite3 git xz-utils tar coreutils procps libc6-dbg dwz binutils
      golang-go man-db groff-base chromium fonts-dejavu-core libcap2-bin jq libxml2-utils bc perl
      clang libclang-rt-14-dev tmux python3.11-dev"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing (run as root to install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi
