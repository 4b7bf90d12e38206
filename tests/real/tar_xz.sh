#!/bin/sh
# tar piped into multithreaded xz under the preload: a generated tree
# (~6 MB) archived deterministically (sorted names, fixed owner and times),
# compressed with xz -T2 -6 in 1 MiB blocks (so both threads work; the output
# of xz for the same input and settings is deterministic), decompressed
# (also threaded) and extracted, and compared with the original. The
# digests of the archive and the compressed stream must match a run
# without the preload. Usage: tar_xz.sh PATH-TO-libsnapmalloc.so
. "$(dirname "$0")/common.sh"
need tar xz awk cksum diff

export LC_ALL=C
src=$tmp/src
mkdir -p "$src"
awk -v dir="$src" 'BEGIN {
  x = 4242
  for (f = 0; f < 120; f++) {
    d = dir "/dir" (f % 6)
    system("mkdir -p " d)
    file = d "/f" f ".dat"
    lines = 500 + (f * 977) % 1000
    for (l = 0; l < lines; l++) {
      x = (x * 69069 + 1) % 4294967296
      printf "%06d %08x %s %d\n", l, x, substr("the quick brown fox jumps over the lazy dog", 1 + x % 20, 10 + x % 23), x % 1000 > file
    }
    close(file)
  }
}'

workload() {
  tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner \
    -C "$src" -cf - . | tee archive.tar | xz -T2 -6 --block-size=1MiB >archive.tar.xz
  cksum <archive.tar
  cksum <archive.tar.xz
  xz -l archive.tar.xz | awk 'NR == 2 { print $1, $2 }'
  mkdir out
  xz -T2 -d -c archive.tar.xz | tar -C out -xf -
  diff -r "$src" out && echo "extracted tree identical"
  xz -T2 -t archive.tar.xz && echo "integrity ok"
}

compare_runs tar_xz
