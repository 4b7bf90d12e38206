#!/bin/sh
# `meson setup` for a host that is not x86-64 Linux stops at once with one
# clear line (meson.build), instead of failing in the middle of a build.
#   platform.sh MESON SRCDIR
set -u
meson=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
for host in "aarch64 linux armv8" "x86_64 freebsd x86_64"; do
  set -- $host
  cat > "$work/cross.ini" <<INI
[binaries]
c = 'gcc'
cpp = 'g++'
[host_machine]
system = '$2'
cpu_family = '$1'
cpu = '$3'
endian = 'little'
INI
  "$meson" setup --cross-file "$work/cross.ini" "$work/b.$1.$2" "$src" > "$work/out" 2>&1
  rc=$?
  if [ $rc = 0 ]; then
    echo "FAIL: $1 $2: meson setup succeeded"; fails=$((fails + 1))
  elif ! grep -q "snapmalloc builds for x86-64 Linux only for now; this host is $1 $2" "$work/out"; then
    echo "FAIL: $1 $2: no clear line:"; tail -n 3 "$work/out"; fails=$((fails + 1))
  else
    echo "ok   $1 $2: refused with one line"
  fi
done
[ $fails = 0 ]
