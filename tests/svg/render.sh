#!/bin/sh
# The pictures in a real browser: Chromium (headless) renders each SVG to a
# PNG that must not be blank (enough ink and colours; red and blue in the
# diff flame graph), and runs the flame graph's script: a hover, a click
# that zooms, the reset control, Escape and a search, checked in the DOM
# that Chromium dumps. Skipped (77) only when no Chromium is installed.
#   render.sh SNAPMALLOC SRCDIR BUILDDIR
set -u
tool=$1 src=$2 build=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$src" || exit 1
. "$here/lib.sh"
chromium=$(find_chromium) || { echo "no chromium: skipped"; exit 77; }
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
make_snapshots || exit 1

"$tool" flame "$work/phases.1.snap" -o "$work/flame.svg" || fail "flame"
"$tool" flame "$work/peak.snap" "$waves_last" -o "$work/diff.svg" || fail "flame OLD NEW"
"$tool" timeline "$work"/waves.*.snap -o "$work/timeline.svg" || fail "timeline"

for name in flame diff timeline; do
  size=$(svg_size "$work/$name.svg")
  if ! chrome --screenshot="$work/$name.png" --window-size="$size" "file://$work/$name.svg" >/dev/null ||
     [ ! -s "$work/$name.png" ]; then
    fail "chromium could not render $name.svg: $(tail -n 3 "$work/chrome.err")"
    continue
  fi
  case $name in
    diff) python3 "$here/svgcheck.py" png "$work/$name.png" --red 3000 --blue 3000 || fails=$((fails + 1)) ;;
    *) python3 "$here/svgcheck.py" png "$work/$name.png" || fails=$((fails + 1)) ;;
  esac
done

# the script: the test driver goes after the picture's own script
{
  sed '$d' "$work/flame.svg"   # all but the closing </svg>
  echo '<script type="text/ecmascript"><![CDATA['
  echo "var SMTEST = {target: 'main', child: 'load_record', other: 'cache_grow', search: 'load_record'};"
  cat "$here/clicktest.js"
  echo ']]></script>'
  echo '</svg>'
} > "$work/click.svg"
tail -n 1 "$work/flame.svg" | grep -q '^</svg>$' || fail "flame.svg does not end with </svg>"
if chrome --dump-dom --virtual-time-budget=2000 "file://$work/click.svg" > "$work/dom.txt"; then
  python3 "$here/svgcheck.py" dom "$work/dom.txt" "$work/flame.svg" || fails=$((fails + 1))
else
  fail "chromium --dump-dom failed: $(tail -n 3 "$work/chrome.err")"
fi

[ $fails = 0 ] && echo "svg-render: all checks pass" || echo "svg-render: $fails checks failed"
[ $fails = 0 ]
