#!/bin/sh
# run --live in a real terminal, as a person sees it: tmux gives it one
# (120x40), keys go in with send-keys and the screen comes back with
# capture-pane. tests/live/grow.c has three sites that sort differently:
# BIG (4 MiB, 1 block), MANY (1000 blocks of 64 B) and GROW (16 KiB more
# every 100 ms).
#   1. the header (pid, command, clock, snapshot count; traced now and at
#      the peak, RSS, heap mapped and in use, with sane figures), GROW
#      growing between refreshes; s, g and c reorder the sites; a resize
#      redraws to the new size; when the program ends the last view stays
#      until q; q restores the terminal (normal screen, cursor, echo and
#      line editing) and run ends as it does without --live.
#   2. q while the program runs: the view closes, the program goes on,
#      run waits for it (and keeps the live directory from filling).
#   3. ^Z stops the view with the terminal restored, fg brings it back;
#      ^C ends the program and the view (status 130).
#   4. SIGTERM to snapmalloc: the terminal is restored, the live
#      directory removed, the program left running.
#   5. a command that cannot start: no view (run knows before it would
#      draw one), its reason stays on the screen.
#   6. live PID on a process armed with control=1 and started with
#      snapmalloc start: the view of that pid with its sites, g sorts, q
#      leaves the process running; a second view of it stays up when the
#      process ends, says so, and q then ends it with status 0.
# Skipped (77) without tmux.
#   tty.sh SNAPMALLOC SRCDIR GROW
set -u
tool=$1 src=$2 grow=$3
command -v tmux > /dev/null || { echo "tmux is not installed"; exit 77; }
work=$(mktemp -d)
sock=$work/tmux.sock
# at the end: every program told to stop, every session gone, then the files
trap 'touch "$work/stop1" "$work/stop2" "$work/stop3" "$work/stop4" "$work/stop6"; tmux -S "$sock" kill-server 2> /dev/null;
      sleep 0.5; rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cd "$src" || exit 1
site() { echo "tests/live/grow.c:$(grep -n "SITE_$1 " tests/live/grow.c | cut -d: -f1)"; }
BIG=$(site BIG) MANY=$(site MANY) GROW=$(site GROW)

tm() { tmux -S "$sock" "$@"; }
screen() { tm capture-pane -p -t "$1" > "$work/screen"; }
# waits up to $3 seconds for the screen of session $1 to match $2 (grep -E)
wait_for() {
  i=0
  while [ $i -lt $(($3 * 10)) ]; do
    screen "$1"
    grep -Eq -- "$2" "$work/screen" && return 0
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}
# a site's row: SIZE GROWTH COUNT CHANGE SITE -> its size in bytes, the rest as shown
row_of() { grep -E "  $1\$" "$work/screen"; }
bytes() { awk -v n="$1" -v u="$2" 'BEGIN { m = u == "KiB" ? 1024 : u == "MiB" ? 1048576 : u == "GiB" ? 1073741824 : 1; printf "%.0f\n", n * m }'; }
first_site() { sed -n 6p "$work/screen" | awk '{ print $NF }'; }
alt() { tm display -p -t "$1" '#{alternate_on}'; }
cursor() { tm display -p -t "$1" '#{cursor_flag}'; }
# the session script: run's command line, then what the terminal is left as
session() { # name, stop file, run options...
  name=$1 stop=$2
  shift 2
  mkdir -p "$work/tmp.$name"
  {
    echo "export SNAPMALLOC_LIB='$SNAPMALLOC_LIB' TMPDIR='$work/tmp.$name'"
    echo "cd '$src'"
    printf "'%s' run" "$tool"
    for a in "$@"; do printf " '%s'" "$a"; done
    printf " --out '%s' -- '%s' '%s' 24\n" "$work/$name.%p.%n.snap" "$grow" "$stop"
    echo 'echo "run exited $?"'
    echo "stty -a | tr ' ;' '\\n\\n' | grep -E -x -- '-?(icanon|echo)' | tr '\\n' ' '; echo '<- modes'"
    echo "sleep 600"
  } > "$work/$name.sh"
  tm new-session -d -x 120 -y 40 -s "$name" "sh '$work/$name.sh'"
}
modes_ok() { grep -q '^icanon echo <- modes' "$work/screen"; }
VIEW='^ snapmalloc live  pid [0-9]+ '

# ---- 1. the view, its keys, a resize, the end of the program, q
session one "$work/stop1" --live --interval 0.5
wait_for one "  $GROW\$" 15 || { fail "1: no view with the GROW site"; cat "$work/screen"; }
wait_for one "snapshots ([3-9]|[1-9][0-9])" 10 || fail "1: fewer than 3 snapshots in 10 s"
[ "$(alt one)" = 1 ] || fail "1: the view is not on the alternate screen"
[ "$(cursor one)" = 0 ] || fail "1: the cursor is shown over the view"
# (the command line is cut where the clock begins)
head -n 1 "$work/screen" | grep -Eq "$VIEW $grow .* +elapsed [0-9]+:[0-9][0-9]  snapshots [0-9]+\$" ||
  fail "1: header line: $(head -n 1 "$work/screen")"
pid=$(head -n 1 "$work/screen" | sed 's/.*pid \([0-9]*\) .*/\1/')
# traced now and peak >= BIG + MANY; heap in use >= traced; mapped >= in use; RSS > 1 MiB
U='[0-9.]+ [KMG]?i?B'
if sed -n 2p "$work/screen" | grep -Eq "^ traced $U \(peak $U\)   RSS $U \(peak $U\)\$" &&
  sed -n 3p "$work/screen" | grep -Eq "^ heap $U mapped, $U in use\$"; then
  set -- $(sed -n 2,3p "$work/screen" | tr -d '(),' | awk '{ printf "%s ", NR == 1 ? $2 " " $3 " " $5 " " $6 " " $8 " " $9 : $2 " " $3 " " $5 " " $6 }')
  traced=$(bytes $1 $2) peak=$(bytes $3 $4) rss=$(bytes $5 $6) mapped=$(bytes $7 $8) inuse=$(bytes $9 ${10})
  [ "$traced" -ge $((4194304 + 64000)) ] || fail "1: traced $traced B < BIG + MANY"
  [ "$peak" -ge "$traced" ] || fail "1: peak $peak < traced $traced"
  [ "$inuse" -ge "$traced" ] && [ "$mapped" -ge "$inuse" ] || fail "1: heap mapped $mapped, in use $inuse, traced $traced"
  [ "$rss" -ge 1048576 ] || fail "1: RSS $rss"
else
  fail "1: figures lines: $(sed -n 2,3p "$work/screen")"
fi
sed -n 4p "$work/screen" | grep -q '^$' || fail "1: the status line is not empty: $(sed -n 4p "$work/screen")"
sed -n 5p "$work/screen" | grep -Eq '^ +SIZE +GROWTH +COUNT +CHANGE  SITE \(by line\)$' || fail "1: column headings"
# sorted by size: BIG first, its figures exact; MANY exact; GROW growing
tail -n 1 "$work/screen" | grep -q '^ s size  g growth  c count  q quit    sorted by size, 3 sites' ||
  fail "1: keys line: $(tail -n 1 "$work/screen")"
[ "$(first_site)" = "$BIG" ] || fail "1: by size, the first site is $(first_site), not BIG"
row_of "$BIG" | grep -Eq '^ +4096 KiB +\+0 B +1 +\+0  ' || fail "1: BIG's row: $(row_of "$BIG")"
row_of "$MANY" | grep -Eq '^ +62.5 KiB +\+0 B +1000 +\+0  ' || fail "1: MANY's row: $(row_of "$MANY")"
set -- $(row_of "$GROW")
g1=$(bytes $1 $2)
sleep 1.5
screen one
set -- $(row_of "$GROW")
g2=$(bytes $1 $2)
[ "$g2" -gt "$g1" ] || fail "1: GROW did not grow in 1.5 s ($g1 -> $g2 B)"
case $3 in +*) ;; *) fail "1: GROW's growth is not positive: $*";; esac
[ "$5" -gt 0 ] || fail "1: GROW's count change is not positive: $*"
tm send-keys -t one g
wait_for one 'sorted by growth' 5 || fail "1: g did not sort by growth"
[ "$(first_site)" = "$GROW" ] || fail "1: by growth, the first site is $(first_site), not GROW"
tm send-keys -t one c
wait_for one 'sorted by count' 5 || fail "1: c did not sort by count"
[ "$(first_site)" = "$MANY" ] || fail "1: by count, the first site is $(first_site), not MANY"
sed -n 7p "$work/screen" | grep -q "  $GROW\$" || fail "1: by count, GROW is not second"
tm send-keys -t one s
wait_for one 'sorted by size' 5 || fail "1: s did not sort by size"
[ "$(first_site)" = "$BIG" ] || fail "1: by size again, the first site is $(first_site), not BIG"
# a smaller window: every line fits, the keys on its last line
tm resize-window -t one -x 70 -y 15
sleep 1
screen one
[ "$(wc -l < "$work/screen")" = 15 ] || fail "1: $(wc -l < "$work/screen") lines in a 15-line window"
[ "$(awk 'length($0) > 70' "$work/screen" | wc -l)" = 0 ] || fail "1: lines wider than 70 columns"
tail -n 1 "$work/screen" | grep -q '^ s size  g growth' || fail "1: keys not on the last line after a resize"
head -n 1 "$work/screen" | grep -Eq "$VIEW.*elapsed" || fail "1: header after a resize: $(head -n 1 "$work/screen")"
tm resize-window -t one -x 120 -y 40
# the program ends: the last view stays, with the news
touch "$work/stop1"
wait_for one "$grow \\(pid $pid\\) exited with status 0; q leaves the view" 10 || fail "1: no word of the end"
grep -q 'snapshots [0-9]* (final)' "$work/screen" || fail "1: the last snapshot is not marked final"
sleep 1
[ "$(alt one)" = 1 ] || fail "1: the view went away without q"
tm send-keys -t one q
wait_for one '<- modes' 10 || fail "1: run did not end after q"
grep -q '^run exited 0$' "$work/screen" || fail "1: run's status"
grep -q '^snapmalloc: top 10 allocation sites at exit' "$work/screen" || fail "1: no report after the view"
grep -q "^$BIG: size=4096 KiB, count=1" "$work/screen" || fail "1: report's BIG line"
modes_ok || fail "1: terminal modes after q: $(grep modes "$work/screen")"
[ "$(alt one)" = 0 ] || fail "1: still on the alternate screen after q"
[ "$(cursor one)" = 1 ] || fail "1: the cursor is hidden after q"
[ "$(ls "$work" | grep -c '^one\..*\.snap$')" = 1 ] || fail "1: kept snapshots: $(ls "$work")"
[ -z "$(ls -A "$work/tmp.one")" ] || fail "1: the live directory was left"

# ---- 2. q while the program runs: it goes on, run waits for it
session two "$work/stop2" --live --interval 0.5
wait_for two "  $GROW\$" 15 || fail "2: no view"
pid=$(head -n 1 "$work/screen" | sed 's/.*pid \([0-9]*\) .*/\1/')
tm send-keys -t two q
wait_for two "the live view is closed; waiting for $grow \\(pid $pid\\) to end" 5 || fail "2: no word after q"
[ "$(alt two)" = 0 ] || fail "2: still on the alternate screen after q"
sleep 2.5
kill -0 "$pid" 2> /dev/null || fail "2: the program did not go on after q"
grep -q '^run exited' "$work/screen" && fail "2: run ended before the program"
# while it waits, run still deletes all but the newest snapshot (5 more were written)
n=$(find "$work/tmp.two" -name '*.snap' | wc -l)
[ "$n" -le 2 ] || fail "2: $n snapshots pile up in the live directory while run waits"
touch "$work/stop2"
wait_for two '<- modes' 10 || fail "2: run did not end with the program"
grep -q '^run exited 0$' "$work/screen" || fail "2: run's status"
modes_ok || fail "2: terminal modes"

# ---- 3. ^Z and fg in an interactive shell, then ^C
tm new-session -d -x 120 -y 40 -s three "env -i PATH='$PATH' HOME='$work' TERM=screen PS1='prompt\$ ' bash --norc --noprofile -i"
wait_for three 'prompt\$' 5 || fail "3: no shell"
mkdir -p "$work/tmp.three"
tm send-keys -t three "cd '$src'; SNAPMALLOC_LIB='$SNAPMALLOC_LIB' TMPDIR='$work/tmp.three' '$tool' run --live --interval 0.5 --out '$work/three.%p.%n.snap' -- '$grow' '$work/stop3' 24" Enter
wait_for three "  $GROW\$" 15 || fail "3: no view"
pid=$(head -n 1 "$work/screen" | sed 's/.*pid \([0-9]*\) .*/\1/')
tm send-keys -t three C-z
wait_for three 'Stopped' 5 || fail "3: ^Z did not stop the view"
[ "$(alt three)" = 0 ] || fail "3: still on the alternate screen when stopped"
[ "$(cursor three)" = 1 ] || fail "3: cursor hidden when stopped"
tm send-keys -t three fg Enter
sleep 1
wait_for three "  $GROW\$" 5 || fail "3: fg did not bring the view back"
[ "$(alt three)" = 1 ] || fail "3: fg: not on the alternate screen"
tm send-keys -t three C-c
wait_for three 'prompt\$ *$' 10 || fail "3: no prompt after ^C"
tm send-keys -t three 'echo "status $?"' Enter
wait_for three '^status 130$' 5 || fail "3: run's status after ^C is not 130"
grep -q "was killed by signal 2" "$work/screen" || fail "3: no word of the program's death by SIGINT"
[ "$(alt three)" = 0 ] || fail "3: still on the alternate screen after ^C"
[ "$(cursor three)" = 1 ] || fail "3: cursor hidden after ^C"
kill -0 "$pid" 2> /dev/null && fail "3: the program survived ^C"
tm send-keys -t three "stty -a | tr ' ;' '\\n\\n' | grep -E -x -- '-?(icanon|echo)' | tr '\\n' ' '; echo '<- modes'" Enter
wait_for three '^icanon echo <- modes' 5 || fail "3: terminal modes after ^C"

# ---- 4. SIGTERM to snapmalloc: terminal restored, program left running
session four "$work/stop4" --live --interval 0.5
wait_for four "  $GROW\$" 15 || fail "4: no view"
pid=$(head -n 1 "$work/screen" | sed 's/.*pid \([0-9]*\) .*/\1/')
tool_pid=$(ps -o pid= --ppid "$(tm display -p -t four '#{pane_pid}')" | tr -d ' ')
kill -TERM "$tool_pid"
wait_for four '<- modes' 10 || fail "4: run did not end on SIGTERM"
grep -q '^run exited 143$' "$work/screen" || fail "4: run's status after SIGTERM"
grep -q "ended by signal 15 (Terminated); pid $pid goes on" "$work/screen" || fail "4: no word of the program left running"
modes_ok || fail "4: terminal modes after SIGTERM"
[ "$(alt four)" = 0 ] || fail "4: still on the alternate screen after SIGTERM"
kill -0 "$pid" 2> /dev/null || fail "4: the program was stopped by snapmalloc's SIGTERM"
[ -d "$work/tmp.four" ] && [ -z "$(ls -A "$work/tmp.four")" ] || fail "4: the live directory was left"
touch "$work/stop4"

# ---- 5. a command that cannot start: its error stays on the screen
tm new-session -d -x 120 -y 40 -s five "export SNAPMALLOC_LIB='$SNAPMALLOC_LIB' TMPDIR='$work'; '$tool' run --live -- '$work/no-such-program'; echo \"run exited \$?\"; sleep 600"
wait_for five '^run exited' 10 || fail "5: run did not end"
grep -q "^snapmalloc run: cannot run $work/no-such-program: No such file or directory\$" "$work/screen" ||
  { fail "5: the reason is not on the screen"; cat "$work/screen"; }
grep -q '^run exited 127$' "$work/screen" || fail "5: run's status"
grep -q 'exited with status 127' "$work/screen" && fail "5: the view started (and ended) for a command that never ran"
[ -z "$(ls -d "$work"/snapmalloc-live.* 2> /dev/null)" ] || fail "5: the live directory was left"

# ---- 6. live PID: a process armed with control=1, traced by snapmalloc start
(cd "$src" && LD_PRELOAD="$SNAPMALLOC_LIB" SNAPMALLOC_OPTIONS="control=1,out=$work/six.%p.%n.snap" exec "$grow" "$work/stop6" 24) > /dev/null 2>&1 &
pid6=$!
# tracing starts once BIG and MANY are allocated (a snapshot of the armed,
# untraced process shows them in the heap), so that only GROW grows
in_use() {
  "$tool" snap "$pid6" -o "$work/armed.snap" > /dev/null 2>&1 &&
    "$tool" top "$work/armed.snap" --format json --limit 0 2> /dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["header"]["heap"]["in_use"])'
}
i=0
until [ "$(in_use || echo 0)" -ge $((4194304 + 64000)) ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
"$tool" start "$pid6" > "$work/start6" 2>&1
grep -q "^pid $pid6: tracing on" "$work/start6" || fail "6: start: $(cat "$work/start6")"
livecmd="cd '$src'; TMPDIR='$work' '$tool' live $pid6 --interval 0.5; echo \"live exited \$?\"; sleep 600"
tm new-session -d -x 120 -y 40 -s six "$livecmd"
wait_for six "  $GROW\$" 15 || { fail "6: no view of pid $pid6 with the GROW site"; cat "$work/screen"; }
head -n 1 "$work/screen" | grep -Eq "^ snapmalloc live  pid $pid6 " || fail "6: header: $(head -n 1 "$work/screen")"
tm send-keys -t six g
wait_for six 'sorted by growth' 5 || fail "6: g did not sort by growth"
[ "$(first_site)" = "$GROW" ] || fail "6: by growth, the first site is $(first_site), not GROW"
tm send-keys -t six q
wait_for six '^live exited 0$' 10 || fail "6: live did not end with status 0 after q"
[ "$(alt six)" = 0 ] || fail "6: still on the alternate screen after q"
kill -0 "$pid6" 2> /dev/null || fail "6: the process did not go on after q"
[ -z "$(ls -d "$work"/snapmalloc-live.* 2> /dev/null)" ] || fail "6: the view's directory was left"
tm new-session -d -x 120 -y 40 -s seven "$livecmd"
wait_for seven "  $GROW\$" 15 || fail "6: no second view"
touch "$work/stop6"
wait_for seven "pid $pid6 has exited" 10 || { fail "6: no word of the process's end"; cat "$work/screen"; }
[ "$(alt seven)" = 1 ] || fail "6: the view went away without q"
tm send-keys -t seven q
wait_for seven '^live exited 0$' 10 || fail "6: live did not end with status 0 after the end and q"
wait "$pid6" 2> /dev/null
# its at-exit snapshot goes where its out= says, not into the source tree
ls "$work"/six."$pid6".*.snap > /dev/null 2>&1 || fail "6: no at-exit snapshot under out="

[ $fails = 0 ] && echo "all terminal live checks passed"
[ $fails = 0 ]
