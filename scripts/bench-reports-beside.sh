#!/usr/bin/env bash
# Reports beside the desk (docs/performance.md): a year of a large
# cooperative generated as scripts/bench-reports.sh does, then a librarian's
# question list timed while two cooperative admins load the reports page
# (its thirteen reports at once) over and over for 30 s — with this build,
# then with OLD (an earlier build, if given) on the same data.
# Usage: scripts/bench-reports-beside.sh [QUESTIONS] [sqlite] [pg]
# (default 1,000,000 questions, both backends). BIN: the build (default:
# the release build, built first); OLD: a build to compare with. Needs
# python3 with requests, and PostgreSQL on 127.0.0.1:5432 for pg.
set -euo pipefail
cd "$(dirname "$0")/.."
questions=${1:-1000000}
shift $(($# > 0 ? 1 : 0))
want=${*:-sqlite pg}
if [ -z "${BIN:-}" ]; then
  cargo build --release -p refdesk --quiet
  BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/refdesk"
fi
export REFDESK_LOG=warn,sqlx=error REFDESK_PASSWORD=reports-beside-desk-1 REFDESK_STAFF_READS_PER_SECOND=100000 REFDESK_SIGN_INS_PER_ACCOUNT=1000
server=postgres://postgres@127.0.0.1:5432
db="refdesk_beside_$(date +%s)_$$"
tmp=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  rm -rf "$tmp"
  if [[ " $want " == *" pg "* ]]; then psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db" || true; fi
}
trap cleanup EXIT

for backend in $want; do
  case $backend in
    sqlite) where=(--data-dir "$tmp/sqlite") ;;
    pg)
      psql "$server/postgres" -qc "CREATE DATABASE $db"
      where=(--database-url "$server/$db" --data-dir "$tmp/pg")
      ;;
    *) echo "unknown backend $backend (sqlite or pg)" >&2; exit 1 ;;
  esac
  echo "=== $backend: generate $questions questions"
  "$BIN" "${where[@]}" bench-reports generate --questions "$questions" 2> >(tr '\r' '\n' | grep -v ' of 365 days' >&2)
  "$BIN" "${where[@]}" user add --library bench-i1l1 --role cooperative_admin boss
  "$BIN" "${where[@]}" user add --library bench-i1l1 lib
  for build in "$BIN" ${OLD:-}; do
    echo "--- $backend, $build"
    "$build" "${where[@]}" serve --listen 127.0.0.1:8097 >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 200); do curl -s -o /dev/null http://127.0.0.1:8097/ && break; sleep 0.1; done
    python3 scripts/reports-beside-desk.py http://127.0.0.1:8097 30 2
    kill $pid
    wait $pid 2>/dev/null || true
  done
done
