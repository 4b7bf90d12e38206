#!/bin/sh
# Smoke test of the benchmark workloads: each one, with small arguments,
# must exit 0 and print exactly one summary line, and its checksum (which
# depends only on the requests made, never on addresses or timing) must be
# the same under glibc's malloc and under libsnapmalloc.so.  A workload that
# breaks, or an allocator that corrupts a workload's blocks, fails here.
#
# usage: smoke.sh LIBSNAPMALLOC BENCH_BUILD_DIR
set -u
lib=$1
dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# run LABEL OUT PROGRAM ARGS...: run with the environment already set up by
# the caller; OUT gets stdout.  Prints nothing on success.
run() {
    run_label=$1 run_out=$2
    shift 2
    "$@" >"$run_out" 2>"$tmp/err"
    run_status=$?
    if [ $run_status -ne 0 ]; then
        fail "$run_label: exit status $run_status: $(tail -n 3 "$tmp/err")"
        return 1
    fi
    if [ "$(wc -l <"$run_out")" -ne 1 ]; then
        fail "$run_label: expected one summary line, got: $(cat "$run_out")"
        return 1
    fi
    return 0
}

checksum() {
    sed -n 's/.*checksum=\([0-9a-f]\{16\}\).*/\1/p' "$1"
}

# case NAME ARGS...: glibc and snapmalloc must agree.
case_() {
    name=$1
    shift
    label="$name $*"
    run "$label (glibc)" "$tmp/g" "$dir/$name" "$@" || return
    run "$label (snapmalloc)" "$tmp/s" env LD_PRELOAD="$lib" "$dir/$name" "$@" || return
    g=$(checksum "$tmp/g") s=$(checksum "$tmp/s")
    if [ -z "$g" ]; then
        fail "$label: no checksum=<16 hex digits> in: $(cat "$tmp/g")"
    elif [ "$g" != "$s" ]; then
        fail "$label: checksum $s under snapmalloc, $g under glibc"
    else
        echo "ok: $label: checksum $g"
    fi
}

case_ larson-sized 2 200 2000 4
case_ lifetimes 1 20000 64 512 2048
case_ lifetimes 2 20000 64 512 2048
case_ bigint 2000
case_ sets 1000
case_ cache-thrash 1 20 1000
case_ cache-thrash 2 20 1000
case_ cache-scratch 1 20 1000
case_ cache-scratch 2 20 1000
case_ mstress 6 3 2000
case_ deepchurn 20000

# larson-sized frees through the loaded allocator's own sized free: glibc
# 2.36 has none (plain free), snapmalloc exports C23's free_sized.
run "larson-sized (glibc)" "$tmp/g" "$dir/larson-sized" 1 10 10 1 &&
    { grep -q ' sized_free=free ' "$tmp/g" || fail "larson-sized under glibc: $(cat "$tmp/g")"; }
run "larson-sized (snapmalloc)" "$tmp/s" env LD_PRELOAD="$lib" "$dir/larson-sized" 1 10 10 1 &&
    { grep -q ' sized_free=free_sized ' "$tmp/s" ||
        fail "larson-sized under snapmalloc did not use free_sized: $(cat "$tmp/s")"; }

# Tracing must not change what the traced workload computes.
run "deepchurn (traced)" "$tmp/t" env LD_PRELOAD="$lib" \
    SNAPMALLOC_OPTIONS=trace=1,depth=16,at_exit=0 "$dir/deepchurn" 20000 &&
    run "deepchurn (glibc)" "$tmp/g" "$dir/deepchurn" 20000 &&
    { [ "$(checksum "$tmp/t")" = "$(checksum "$tmp/g")" ] ||
        fail "deepchurn traced: $(cat "$tmp/t"), glibc: $(cat "$tmp/g")"; }

# A bad argument is one usage line and exit status 2.
for name in larson-sized lifetimes bigint sets cache-thrash cache-scratch mstress deepchurn; do
    "$dir/$name" 1 banana >"$tmp/o" 2>"$tmp/e"
    st=$?
    if [ $st -ne 2 ] || ! grep -q "^usage: $name " "$tmp/e"; then
        fail "$name 1 banana: exit $st, stderr: $(cat "$tmp/e")"
    fi
done

[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all workloads agree"
