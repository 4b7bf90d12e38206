#!/bin/sh
# GNU sort under the preload on a generated 50 MB file (deterministic):
# default settings, --parallel=2 -S 50M (threads plus temporary files),
# numeric and keyed sorts, uniq; the digests must match a run without the
# preload. Usage: sort.sh PATH-TO-libsnapmalloc.so
. "$(dirname "$0")/common.sh"
need sort awk cksum uniq

export LC_ALL=C
# About 50 MB: 1.2 million lines of words and numbers from an LCG.
awk 'BEGIN {
  x = 20240601
  for (i = 0; i < 1200000; i++) {
    x = (x * 69069 + 1) % 4294967296; a = x
    x = (x * 69069 + 1) % 4294967296; b = x
    printf "%08x %d w%05d %s %s\n", a, b % 1000003, b % 99991, substr("qwertyuiopasdfghjklzxcvbnm", 1 + a % 20, 1 + b % 7), substr("0123456789abcdefghijklmnopqrstuvwxyz", 1 + b % 11, 14)
  }
}' >"$tmp/input.txt"

workload() {
  sort "$tmp/input.txt" | cksum
  sort --parallel=2 -S 50M -T "$work" "$tmp/input.txt" | cksum
  sort --parallel=2 -S 5M -T "$work" -k2,2n -k1,1 "$tmp/input.txt" | cksum
  sort -u -k3,3 "$tmp/input.txt" | cksum
  awk '{ print $3 }' "$tmp/input.txt" | sort | uniq -c | sort -k1,1nr -k2,2 | head -n 5
}

compare_runs sort
