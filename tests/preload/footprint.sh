#!/bin/sh
# What loading the library costs a process that never traces: it links
# neither libm (the sampler's math is tracer/fmath.c's) nor libunwind (the
# tracer opens it when tracing starts: tracer/unwlib.c), so neither is
# mapped into a preloaded program that does not use them itself, and of
# the library's own code it maps one 64 KiB window. With trace=1,
# libunwind is there, loaded by the library's constructor.
# Usage: footprint.sh PATH-TO-libsnapmalloc.so
set -eu
lib=$1
if ! command -v readelf > /dev/null 2>&1; then
  echo "footprint.sh: readelf not found: skipped"
  exit 77
fi
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
echo "NEEDED: $needed"
case " $needed " in *" libm.so"*) fail "the library needs libm ($needed)" ;; esac
case " $needed " in *" libunwind"*) fail "the library needs libunwind ($needed)" ;; esac
# cat(1) links neither libm nor libunwind.
maps=$(SNAPMALLOC_OPTIONS= LD_PRELOAD=$lib cat /proc/self/maps)
printf '%s\n' "$maps" | grep -q "$(basename "$lib")" ||
  fail "the library is not in the maps of a process it was preloaded into"
for l in libm libunwind liblzma; do
  if printf '%s\n' "$maps" | grep -q "/$l\.so"; then
    fail "$l is mapped into a preloaded, untraced cat:"
    printf '%s\n' "$maps" | grep "/$l\.so"
  fi
done
# The code every process runs is kept in one 64 KiB window of the library
# (SM_RUNTIME, allocator/base.h; the kernel maps file pages 64 KiB at a time
# around a fault): an untraced cat maps no more of the library's code than
# that. Spread over the library, it mapped 128-136 KiB. The window holds
# only where the loader honours the segments' 64 KiB alignment (glibc 2.35
# and later) and pages are 4 KiB; elsewhere this part is skipped.
align=$(readelf -lW "$lib" | awk '$1 == "LOAD" { print $NF; exit }')
[ "$align" = 0x10000 ] || fail "the library's segments are aligned to $align, not 64 KiB (meson.build: max-page-size)"
smaps=$(SNAPMALLOC_OPTIONS= LD_PRELOAD=$lib cat /proc/self/smaps)
base=$(printf '%s\n' "$smaps" | awk -v lib="$(basename "$lib")" '/^[0-9a-f]+-[0-9a-f]+ / && index($0, lib) { split($1, a, "-"); print a[1]; exit }')
if [ "$(getconf PAGESIZE)" != 4096 ] || [ -z "$base" ] || [ $((0x$base % 65536)) -ne 0 ]; then
  echo "code residency not checked: pages of $(getconf PAGESIZE) bytes, library mapped at 0x$base"
else
  rss=$(printf '%s\n' "$smaps" | awk -v lib="$(basename "$lib")" \
    '/^[0-9a-f]+-[0-9a-f]+ / { x = ($2 ~ /x/ && index($0, lib)) } x && /^Rss:/ { s += $2 } END { print s + 0 }')
  echo "code of the library resident in an untraced cat: $rss KiB"
  [ "$rss" -gt 0 ] || fail "no resident code of the library found in /proc/self/smaps"
  [ "$rss" -le 64 ] || fail "an untraced cat has $rss KiB of the library's code resident (at most 64 expected)"
fi
# Nothing an untraced process runs reads the library's .rodata: the data it
# does read is in the RELRO page the loader makes resident anyway
# (SM_RUNTIME_DATA, allocator/base.h), so the read-only segment of .rodata
# and the unwind tables (28 KiB, resident whole at the first read) stays out
# of memory. A constant the compiler puts in .rodata on such a path (a
# string, a jump table, a vector constant) shows here.
# section SECT's FIELD-th field after its name (1: type, 2: address, 3:
# offset, 4: size), from readelf -SW (whose "[ 9]" splits into two fields)
section() { readelf -SW "$lib" | awk -v s="$1" -v f="$2" '{ for (i = 1; i < NF; i++) if ($i == s) { print $(i + f); exit } }'; }
rodata=$(section .rodata 3)
[ -n "$rodata" ] || fail "the library has no .rodata section"
rodata_seg=$([ -n "$rodata" ] && readelf -lW "$lib" | while read -r type off _ _ filesz _; do
  [ "$type" = LOAD ] || continue
  if [ $((off)) -le $((0x$rodata)) ] && [ $((0x$rodata)) -lt $((off + filesz)) ]; then printf '%08x\n' $((off)); break; fi
done)
if [ -z "$rodata_seg" ]; then
  [ -z "$rodata" ] || fail "no LOAD segment holds .rodata (offset 0x$rodata)"
else
  ro=$(printf '%s\n' "$smaps" | awk -v lib="$(basename "$lib")" -v off="$rodata_seg" \
    '/^[0-9a-f]+-[0-9a-f]+ / { x = ($2 == "r--p" && $3 "" == off "" && index($0, lib)) } x && /^Rss:/ { s += $2 } END { print s + 0 }')
  echo "read-only data of the library resident in an untraced cat: $ro KiB"
  [ "$ro" -eq 0 ] || fail "an untraced cat has $ro KiB of the library's .rodata segment resident (none expected)"
fi
# The library's bss: the small variables every process writes lie together,
# the large arrays (SM_BIG_BSS, allocator/base.h) after them, so an
# untraced cat has three pages of it resident, and the segment map's one
# entry in use a fourth at most. Scattered between the large arrays, the
# small variables took five to six pages. The bss is the anonymous mapping
# that follows the library's writable segment; the kernel merges into it a
# mapping made right after it, now and then, whose pages are not the
# library's: a run where the mapping is longer than the bss is not counted.
bss_len=$(readelf -lW "$lib" | awk '$1 == "LOAD" && $7 ~ /W/ {
  v = $3; f = $5; m = $6; print v " " f " " m; exit }' | {
  read -r v f m
  echo $(( ((v + m + 4095) / 4096 - (v + f + 4095) / 4096) * 4096 ))
})
bss=
for try in 1 2 3 4 5; do
  bss=$(SNAPMALLOC_OPTIONS= LD_PRELOAD=$lib cat /proc/self/smaps | awk -v lib="$(basename "$lib")" -v want="$bss_len" '
    /^[0-9a-f]+-[0-9a-f]+ / {
      split($1, a, "-")
      in_bss = (lib_end != "" && a[1] == lib_end && NF == 5)
      if (index($0, lib)) lib_end = a[2]; else if (!in_bss) lib_end = ""
    }
    in_bss && /^Size:/ { if ($2 * 1024 != want) exit }
    in_bss && /^Rss:/ { print $2; exit }')
  [ -z "$bss" ] || break
done
if [ -z "$bss" ]; then
  echo "bss residency not checked: no unmerged anonymous mapping of $bss_len bytes follows the library's in 5 runs"
else
  echo "bss of the library resident in an untraced cat: $bss KiB"
  [ "$bss" -le 16 ] || fail "an untraced cat has $bss KiB of the library's bss resident (at most 16 expected)"
fi
# The first segment (dynamic symbols, versions, relocations), which the
# loader reads at every start: with the relative relocations packed
# (meson.build, -z pack-relative-relocs) it is 8 KiB, three pages; without,
# 13.7 KiB, four.
dyn=$(readelf -lW "$lib" | awk '$1 == "LOAD" { print $5; exit }')
if [ -z "$dyn" ]; then
  fail "no LOAD segment in the library"
elif [ $((dyn)) -gt 12288 ]; then
  fail "the library's first segment is $((dyn)) bytes, over 12 KiB (are relative relocations packed? readelf -d: $(readelf -d "$lib" | grep -c '(RELR)') RELR entries)"
else
  echo "dynamic segment of the library: $((dyn)) bytes"
fi
# That data is read-only all the same: .data.rel.ro lies inside GNU_RELRO,
# which the loader write-protects once it has relocated the library
# (meson.build links with -z relro).
relro=$(readelf -lW "$lib" | awk '$1 == "GNU_RELRO" { print $3, $6; exit }')
drr_addr=$(section .data.rel.ro 2)
drr_size=$(section .data.rel.ro 4)
if [ -z "$relro" ] || [ -z "$drr_addr" ]; then
  fail "no GNU_RELRO segment ($relro) or no .data.rel.ro section ($drr_addr) in the library"
else
  set -- $relro
  if [ $((0x$drr_addr)) -lt $(($1)) ] || [ $((0x$drr_addr + 0x$drr_size)) -gt $(($1 + $2)) ]; then
    fail ".data.rel.ro (0x$drr_addr, 0x$drr_size bytes) is not inside GNU_RELRO ($1, $2 bytes)"
  fi
fi
# The loader calls DT_FINI at exit: a function in that window
# (preload/init.c, sm_dso_fini), not the C runtime's _fini at the far end of
# the code, which made every process map 32 KiB more of it as it exited.
fini=$(readelf -dW "$lib" | awk '$2 == "(FINI)" { print $3; exit }')
code=$(readelf -lW "$lib" | awk '$1 == "LOAD" && / R E / { print $3; exit }')
if [ -z "$fini" ] || [ -z "$code" ]; then
  fail "no DT_FINI ($fini) or no code segment ($code) in the library"
elif [ $((fini - code)) -ge 65536 ]; then
  fail "DT_FINI ($fini) is not in the first 64 KiB of the code (from $code): meson.build's -fini"
fi
maps=$(SNAPMALLOC_OPTIONS=trace=1,at_exit=0 LD_PRELOAD=$lib cat /proc/self/maps)
printf '%s\n' "$maps" | grep -q '/libunwind\.so' || fail "libunwind is not mapped into a cat traced with trace=1"
[ "$failures" -eq 0 ] && echo "ok: no libm; libunwind only when tracing; one window of code, no .rodata, bss and relocations packed, RELRO" || exit 1
