#!/bin/sh
# AT_SECURE: a setuid (or file-capability) program linked with -lsnapmalloc
# ignores SNAPMALLOC_OPTIONS: no tracing, no snapshot file, not one line on
# stderr, allocations served. The same binary run plainly first shows that
# the options would have been honoured. The kernel sets AT_SECURE when the
# real and effective uids differ: as root, the test runs a copy owned by
# nobody with the setuid bit; otherwise it gives the copy a file capability
# with `sudo -n setcap` (package libcap2-bin). Neither possible: skipped (77).
# control=1 (with signal=0, so that nothing else starts it) arms the
# control channel and its helper thread in the plain run, and nothing in
# the secure one: a second thread only in the first.
# Usage: secure.sh PROGRAM
set -u
prog=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/sm-secure.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
chmod 1777 "$dir" # the unprivileged run could write its snapshot here
export SNAPMALLOC_OPTIONS="trace=1,at_exit=1,verbose=1,signal=0,control=1,out=$dir/exit.%p.snap"

fail() { echo "secure: $*" >&2; exit 1; }

# Control: not secure, so the options apply.
out=$("$prog" "$dir/api.snap" 2>"$dir/control.err") || fail "control run failed: $(cat "$dir/control.err")"
case $out in
  "secure=0 api=0 errno=0 threads=2") ;;
  *) fail "control run: unexpected report '$out'" ;;
esac
ls "$dir"/exit.*.snap >/dev/null 2>&1 || fail "control run wrote no exit snapshot"
grep -q 'snapmalloc: option trace = 1' "$dir/control.err" || fail "control run: no verbose option lines"
rm -f "$dir"/*.snap

cp "$prog" "$dir/prog" || exit 1
if [ "$(id -u)" -eq 0 ]; then
  chown 65534 "$dir/prog" && chmod 4755 "$dir/prog" || fail "cannot make the copy setuid nobody"
  how="setuid nobody, run by root"
elif command -v setcap >/dev/null 2>&1 && sudo -n setcap cap_net_bind_service+p "$dir/prog" 2>/dev/null; then
  how="file capability cap_net_bind_service+p"
else
  echo "secure: not root and no 'sudo -n setcap': cannot make a secure-execution binary; skipped" >&2
  exit 77
fi

out=$("$dir/prog" "$dir/api.snap" 2>"$dir/secure.err")
rc=$?
echo "secure ($how): exit $rc, report '$out'" >&2
case $out in
  secure=0*) echo "secure: the kernel did not set AT_SECURE ($how; nosuid mount?); skipped" >&2; exit 77 ;;
esac
[ $rc -eq 0 ] || fail "secure run exited $rc: $(cat "$dir/secure.err")"
case $out in
  "secure=1 api=-1 errno=95 threads=1") ;; # ENOTSUP: tracing is off; not armed
  *) fail "secure run: unexpected report '$out' (want tracing off and nothing armed: api=-1 errno=95 threads=1)" ;;
esac
[ -s "$dir/secure.err" ] && fail "secure run printed on stderr: $(cat "$dir/secure.err")"
files=$(ls "$dir" | grep -v -e '^prog$' -e '\.err$')
[ -z "$files" ] || fail "secure run wrote files: $files"
exit 0
