#!/bin/sh
# Configures (once) and builds snapmalloc in ./build with optimisation on.
set -eu
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=release -Db_ndebug=false >/dev/null
fi
meson compile -C build >/dev/null
