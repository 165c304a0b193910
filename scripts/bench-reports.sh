#!/usr/bin/env bash
# The reports' benchmark (issue 15, docs/performance.md): a year of a large
# cooperative's history generated into a fresh SQLite file and a fresh
# PostgreSQL database, then every report timed over it on each, as the
# cooperative admin and as a librarian.
# Usage: scripts/bench-reports.sh [QUESTIONS] [RUNS] [sqlite] [pg]
# (default 1,000,000 questions, 5 runs of each report, both backends; each
# timed in UTC, then in REPORTS_TZ, default Europe/Paris).
# Builds the release binary first (or set REFDESK_BIN). Needs PostgreSQL on
# 127.0.0.1:5432 (user postgres, trust) for the pg run; its database is
# dropped at the end. Not part of scripts/test.sh: it takes about ten
# minutes (the generator itself is tested there, on 2,000 questions).
set -euo pipefail
cd "$(dirname "$0")/.."
questions=${1:-1000000}
runs=${2:-5}
shift $(($# > 2 ? 2 : $#))
want=${*:-sqlite pg}
if [ -z "${REFDESK_BIN:-}" ]; then
  cargo build --release -p refdesk --quiet
  REFDESK_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/refdesk"
fi
bin=$REFDESK_BIN
export REFDESK_LOG=warn,sqlx=error
server=postgres://postgres@127.0.0.1:5432
db="refdesk_reports_$(date +%s)_$$"
tmp=$(mktemp -d)
cleanup() {
  rm -rf "$tmp"
  if [[ " $want " == *" pg "* ]]; then psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db" || true; fi
}
trap cleanup EXIT

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "refdesk $("$bin" --version | cut -d' ' -f2), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for backend in $want; do
  case $backend in
    sqlite) where=(--data-dir "$tmp/sqlite") ;;
    pg)
      psql "$server/postgres" -qc "CREATE DATABASE $db"
      where=(--database-url "$server/$db")
      ;;
    *) echo "unknown backend $backend (sqlite or pg)" >&2; exit 1 ;;
  esac
  echo
  echo "=== $backend: generate $questions questions"
  "$bin" "${where[@]}" bench-reports generate --questions "$questions" 2> >(tr '\r' '\n' | grep -v ' of 365 days' >&2)
  [ "$backend" = sqlite ] && ls -l "$tmp/sqlite"
  echo
  echo "=== $backend: every report over the year, $runs runs each"
  "$bin" "${where[@]}" bench-reports time --runs "$runs"
  # The same in a time zone whose offset changes with summer time (the
  # reports page sends the browser's): the store groups by quarter hour.
  echo
  echo "=== $backend: the same in the time zone ${REPORTS_TZ:-Europe/Paris}"
  "$bin" "${where[@]}" bench-reports time --runs "$runs" --tz "${REPORTS_TZ:-Europe/Paris}"
done
