# Shared by the svg tests: traced runs of the example programs, and
# Chromium in a throwaway profile. Sourced with tool, build and work set.

# Writes into $work: phases.0.snap (phase 1) and phases.1.snap (final);
# waves.N.snap (every second, and the final one, named by $waves_last) and
# peak.snap (waves' pool at its fullest); sites.0.snap (C++ templates);
# peaks.0.snap (examples/peaks: its peak is not its end).
make_snapshots() {
  "$tool" run --no-report --out "$work/phases.%n.snap" -- "$build/examples/phases" >/dev/null 2>>"$work/run.err" ||
    { echo "FAIL: phases did not run"; return 1; }
  "$tool" run --no-report --interval 1 --out "$work/waves.%n.snap" -- \
    "$build/examples/waves" 3 "$work/peak.snap" >/dev/null 2>>"$work/run.err" || { echo "FAIL: waves did not run"; return 1; }
  waves_last=$(ls "$work"/waves.*.snap | sort -t. -k2 -n | tail -n 1)
  [ -f "$work/peak.snap" ] || { echo "FAIL: waves wrote no peak snapshot"; return 1; }
  # the plugin from a fixed-length path, as golden.sh does
  cp "$build/examples/libplugin.so" "$work/libplugin.so"
  "$tool" run --no-report --out "$work/sites.%n.snap" -- "$build/examples/sites" "$work/libplugin.so" >/dev/null 2>>"$work/run.err" ||
    { echo "FAIL: sites did not run"; return 1; }
  "$tool" run --no-report --out "$work/peaks.%n.snap" -- "$build/examples/peaks" >/dev/null 2>>"$work/run.err" ||
    { echo "FAIL: peaks did not run"; return 1; }
}

find_chromium() {
  for c in chromium chromium-browser google-chrome; do
    command -v "$c" >/dev/null 2>&1 && { command -v "$c"; return 0; }
  done
  return 1
}

# chrome ARGS...: headless, no sandbox (tests may run as root), a fresh
# profile and HOME under $work, and a time limit.
chrome() {
  mkdir -p "$work/home"
  HOME="$work/home" timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-extensions --hide-scrollbars --user-data-dir="$work/home/profile" "$@" 2>"$work/chrome.err"
}

# The pixel size an SVG asks for: "WIDTH,HEIGHT".
svg_size() {
  python3 -c 'import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); print(r.get("width") + "," + r.get("height"))' "$1"
}
