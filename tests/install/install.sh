#!/bin/sh
# `meson install` into a scratch directory (--destdir), then use the
# installed tree as a user would: every file in its place, `snapmalloc run`
# finding its library with no help, `pkg-config snapmalloc` giving flags
# that compile and link a program calling the API, and each man page
# rendering without a single warning.
#   install.sh MESON BUILDDIR PREFIX BINDIR LIBDIR INCLUDEDIR MANDIR VERSION CC EXAMPLE USE_API_C
set -u
meson=$1 build=$2 prefix=$3 bindir=$4 libdir=$5 includedir=$6 mandir=$7 version=$8 cc=$9
shift 9
example=$1 use_api=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# A directory option may be absolute (outside the prefix) or relative to it.
under() { case $1 in /*) echo "$dest$1" ;; *) echo "$dest$prefix/$1" ;; esac; }

dest=$work/dest
"$meson" install -C "$build" --no-rebuild --destdir "$dest" > "$work/install.log" 2>&1 ||
  { cat "$work/install.log"; echo "FAIL: meson install"; exit 1; }
bin=$(under "$bindir") lib=$(under "$libdir") inc=$(under "$includedir") man=$(under "$mandir")

for f in "$bin/snapmalloc" "$lib/libsnapmalloc.so" "$inc/snapmalloc.h" "$lib/pkgconfig/snapmalloc.pc" \
         "$man/man1/snapmalloc.1" "$man/man3/snapmalloc.3" "$man/man7/snapmalloc-options.7"; do
  [ -f "$f" ] || fail "not installed: ${f#"$dest"}"
done
[ -x "$bin/snapmalloc" ] || fail "the installed snapmalloc is not executable"

# run from the installed tree: the library is found relative to the tool
# (lib/x86_64-linux-gnu on Debian), not through SNAPMALLOC_LIB or the build.
env -u SNAPMALLOC_LIB -u LD_LIBRARY_PATH "$bin/snapmalloc" run --out "$work/r.%n.snap" -- "$example" 200 \
  > "$work/run.out" 2> "$work/run.err" || { fail "installed snapmalloc run: status $?"; cat "$work/run.err"; }
grep -q '^records=200 ' "$work/run.out" || fail "the example did not run"
grep -q 'phases.c:28: size=12.5 KiB, count=200, average=64 B' "$work/run.err" ||
  { fail "installed snapmalloc run did not trace the example"; cat "$work/run.err"; }
reallib=$(realpath "$lib/libsnapmalloc.so")
grep -a -q -F "$reallib" "$work/r.1.snap" || fail "the traced example did not load the installed $reallib"
"$bin/snapmalloc" --version | grep -q "^snapmalloc $version\$" || fail "installed snapmalloc --version"

# pkg-config: the file says prefix=PREFIX; point it at the scratch tree.
pc() { PKG_CONFIG_PATH="$lib/pkgconfig" PKG_CONFIG_LIBDIR="$lib/pkgconfig" pkg-config --define-variable=prefix="$dest$prefix" "$@"; }
[ "$(pc --modversion snapmalloc)" = "$version" ] || fail "pkg-config --modversion snapmalloc"
flags=$(pc --cflags --libs snapmalloc) || fail "pkg-config --cflags --libs snapmalloc"
case " $flags " in *" -I$inc "*) ;; *) fail "pkg-config --cflags gives '$flags', no -I$inc" ;; esac
case " $flags " in *" -L$lib -lsnapmalloc "*) ;; *) fail "pkg-config --libs gives '$flags', no -L$lib -lsnapmalloc" ;; esac
# shellcheck disable=SC2086
"$cc" -o "$work/use_api" "$use_api" $flags 2> "$work/cc.err" || { fail "compiling against the installed tree"; cat "$work/cc.err"; }
if [ -x "$work/use_api" ]; then
  LD_LIBRARY_PATH="$lib" SNAPMALLOC_OPTIONS=trace=1,at_exit=0 "$work/use_api" > "$work/api.out" 2>&1 ||
    { fail "the program linked with -lsnapmalloc"; cat "$work/api.out"; }
  grep -q "^version=$version traced=" "$work/api.out" || fail "snapmalloc_version() through the installed library"
  LD_LIBRARY_PATH="$lib" ldd "$work/use_api" | grep -q -F "$lib/libsnapmalloc.so" || fail "use_api is not linked with the installed library"
fi

# man pages: render with no warnings at all, under man and groff alike.
for page in "$man/man1/snapmalloc.1" "$man/man3/snapmalloc.3" "$man/man7/snapmalloc-options.7"; do
  [ -f "$page" ] || continue
  name=${page##*/}
  LC_ALL=C.UTF-8 MANPAGER=cat PAGER=cat MANWIDTH=80 man --warnings -l "$page" > "$work/man.out" 2> "$work/man.err" ||
    fail "man -l $name: status $?"
  [ -s "$work/man.err" ] && { fail "man --warnings -l $name:"; cat "$work/man.err"; }
  grep -q '^NAME' "$work/man.out" || fail "man -l $name: no NAME section"
  groff -man -ww -z "$page" 2> "$work/groff.err" || fail "groff $name: status $?"
  [ -s "$work/groff.err" ] && { fail "groff -man -ww $name:"; cat "$work/groff.err"; }
done
# snapmalloc(1) has a synopsis line for every command that --help lists
cmds=$("$bin/snapmalloc" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p')
[ -n "$cmds" ] || fail "no commands in snapmalloc --help"
for c in $cmds; do
  grep -q "^\.B snapmalloc $c\$" "$man/man1/snapmalloc.1" 2>/dev/null || fail "snapmalloc(1) has no synopsis for '$c'"
done

[ $fails = 0 ] && echo "install: the installed tree works" || echo "install: $fails failures"
[ $fails = 0 ]
