#!/usr/bin/env bash
# The question list's views over a year of a large cooperative
# (docs/performance.md, "The question list over a year"): the year
# generated as scripts/bench-reports.sh does (SQLite), then each view and a
# few filters timed for a librarian with thousands of assigned questions
# (`busy`: the busiest generated librarian's), one with none (`fresh`) and
# a cooperative admin (`boss`) — with this build, then with OLD (an
# earlier build, if given) on the same data. The newer build migrates the
# data first, so OLD runs first.
# Usage: scripts/bench-question-list.sh [QUESTIONS] (default 1,000,000).
# BIN: the build (default: the release build, built first). Needs python3
# with requests, and sqlite3.
set -euo pipefail
cd "$(dirname "$0")/.."
questions=${1:-1000000}
if [ -z "${BIN:-}" ]; then
  cargo build --release -p refdesk --quiet
  BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/refdesk"
fi
export REFDESK_LOG=warn,sqlx=error REFDESK_PASSWORD=question-list-bench-1 REFDESK_STAFF_READS_PER_SECOND=100000 REFDESK_SIGN_INS_PER_ACCOUNT=1000
tmp=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
first=${OLD:-$BIN}
echo "=== generate $questions questions"
"$first" --data-dir "$tmp" bench-reports generate --questions "$questions" 2> >(tr '\r' '\n' | grep -v ' of 365 days' >&2)
"$first" --data-dir "$tmp" user add --library bench-i1l1 --role cooperative_admin boss
"$first" --data-dir "$tmp" user add --library bench-i1l1 busy
"$first" --data-dir "$tmp" user add --library bench-i1l1 fresh
sqlite3 "$tmp/refdesk.sqlite3" "UPDATE questions SET assignee_id = (SELECT id FROM staff WHERE username = 'busy')
  WHERE assignee_id = (SELECT assignee_id FROM questions WHERE assignee_id IS NOT NULL
                       GROUP BY assignee_id ORDER BY COUNT(*) DESC LIMIT 1)"
for build in ${OLD:-} "$BIN"; do
  echo "--- $build"
  "$build" --data-dir "$tmp" serve --listen 127.0.0.1:8098 >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 300); do curl -s -o /dev/null http://127.0.0.1:8098/healthz && break; sleep 0.1; done
  python3 scripts/question-list-views.py http://127.0.0.1:8098 busy fresh boss
  kill -9 $pid
  wait $pid 2>/dev/null || true
done
