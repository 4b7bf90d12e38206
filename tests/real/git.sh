#!/bin/sh
# git under the preload: a repository with a few hundred generated files and
# several commits (fixed identities and dates, so object ids are
# reproducible), a branch and a merge, a tag, gc (pack-objects, threaded),
# fsck; commit ids, trees, diffs and blame must match a run without the
# preload. Usage: git.sh PATH-TO-libsnapmalloc.so
. "$(dirname "$0")/common.sh"
need git awk

export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME="Snap Tester" GIT_AUTHOR_EMAIL=snap@example.invalid
export GIT_COMMITTER_NAME="Snap Tester" GIT_COMMITTER_EMAIL=snap@example.invalid
export LC_ALL=C TZ=UTC

# gen DIR ROUND: writes 300 files whose contents depend on ROUND.
gen() {
  awk -v dir="$1" -v round="$2" 'BEGIN {
    x = 7 + round
    for (f = 0; f < 300; f++) {
      if (round > 0 && f % (round + 2) != 0) continue
      sub_dir = dir "/d" (f % 10)
      file = sub_dir "/file" f ".txt"
      lines = 20 + (f * 13) % 200
      for (l = 0; l < lines; l++) {
        x = (x * 69069 + 1) % 4294967296
        printf "%s line %d of file %d round %d value %d\n", (l % 17 ? "text" : "TODO"), l, f, round, x % 100000 > file
      }
      close(file)
    }
  }'
}

commit_at() {
  GIT_AUTHOR_DATE="$1 +0000" GIT_COMMITTER_DATE="$1 +0000" git commit -q -m "$2"
}

workload() {
  export HOME=$work
  repo=$work/repo
  git init -q -b main "$repo"
  cd "$repo"
  git config user.name "Snap Tester"
  git config user.email snap@example.invalid
  git config gc.auto 0
  for d in 0 1 2 3 4 5 6 7 8 9; do mkdir -p "d$d"; done
  gen . 0
  git add -A
  commit_at 1700000000 "initial import"
  for round in 1 2 3 4; do
    gen . "$round"
    git add -A
    commit_at $((1700000000 + round * 3600)) "round $round"
  done
  git checkout -q -b side HEAD~2
  gen . 7
  git rm -q -f d9/file9.txt
  git add -A
  commit_at 1700100000 "side branch"
  git checkout -q main
  GIT_AUTHOR_DATE="1700200000 +0000" GIT_COMMITTER_DATE="1700200000 +0000" \
    git merge -q -s ort -X theirs --no-edit -m "merge side" side
  GIT_COMMITTER_DATE="1700300000 +0000" git tag -a -m "release" v1
  git gc -q --prune=now
  git fsck --full --no-progress
  echo "== log"
  git log --all --format='%H %T %P %s'
  echo "== objects"
  git rev-list --objects --all | sort
  echo "== cat-file"
  git cat-file -p HEAD
  git cat-file -p "HEAD^{tree}"
  git cat-file -p v1
  echo "== diff"
  git diff --stat HEAD~3 HEAD
  git log -p --format=%H HEAD~2..HEAD | cksum
  echo "== blame"
  git blame --porcelain d0/file0.txt | cksum
  echo "== grep"
  git grep -c TODO HEAD -- d1 | head -n 20
  git count-objects -v | grep -E '^(count|in-pack|packs)'
}

compare_runs git
