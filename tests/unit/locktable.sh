#!/bin/sh
# Every lock of the library is in the one lock table (tracer/locks.c), which
# fork and the exit-time leak scan take in order: a lock left out is held
# forever in a fork child whose parent forked while another thread had it
# (the module table's and the snapshot writer's locks once were).
#   locktable.sh SRCDIR
set -u
src=$1
fails=0
table=$src/tracer/locks.c
found=$(mktemp)
trap 'rm -f "$found"' EXIT
# every sm_lock_t the in-process code defines (statics, and fields of structs)
grep -n 'sm_lock_t [a-z_]*\( = SM_LOCK_INIT\)\?;' "$src"/allocator/*.c "$src"/allocator/*.h "$src"/tracer/*.c "$src"/preload/*.c |
  grep -v 'sm_lock_t \*' | grep -v '^[^:]*base.h:' > "$found"
n=$(wc -l < "$found")
[ "$n" -ge 8 ] || { echo "FAIL: found only $n lock definitions"; fails=$((fails + 1)); }
while IFS= read -r line; do
  file=${line%%:*}
  case $line in
  *"lock order: tracer/locks.c"*) ;;
  *) echo "FAIL: $line: a lock without 'lock order: tracer/locks.c' beside it"; fails=$((fails + 1)) ;;
  esac
  name=$(echo "$line" | sed 's/.*sm_lock_t \([a-z_]*\).*/\1/')
  base=$(basename "$file")
  if [ "$name" = lock ]; then # a struct field: meta.c's arena lock, or the arenas'
    case $base in
    types.h) grep -q 'sm_arenas\[i\]\.lock' "$table" || { echo "FAIL: the arena locks are not in the table"; fails=$((fails + 1)); } ;;
    meta.c) grep -q 'sm_meta_lock_ref' "$table" || { echo "FAIL: the metadata lock is not in the table"; fails=$((fails + 1)); } ;;
    *) echo "FAIL: $line: a lock field the test does not know"; fails=$((fails + 1)) ;;
    esac
    continue
  fi
  # a static lock is reached through NAME_ref, which the table lists
  ref=$(grep -ho "sm_[a-z_]*_ref = &$name;" "$file" | sed 's/ = .*//')
  if [ -z "$ref" ]; then
    echo "FAIL: $base: $name has no *_ref for the lock table"; fails=$((fails + 1))
  elif ! grep -q "locks\[n++\] = $ref;" "$table"; then
    echo "FAIL: $base: $name ($ref) is not in the lock table"; fails=$((fails + 1))
  fi
done < "$found"
echo "$n locks checked"
[ $fails = 0 ]
