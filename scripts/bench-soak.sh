#!/usr/bin/env bash
# A soak benchmark, as in docs/performance.md: one release node under steady
# load for a long time, with a row of figures every SAMPLE seconds (server
# RSS, open files, database and WAL size, that window's p50/p99 and CPU per
# message). Needs a release build; for `pg`, PostgreSQL on 127.0.0.1:5432
# (user postgres, trust; scripts/test.sh starts it). Each PostgreSQL run
# gets a new database with the demo data.
#
# Usage: scripts/bench-soak.sh sqlite|pg SECONDS CHATS RATE [SAMPLE] [CHAT_SECONDS]
#   e.g. scripts/bench-soak.sh sqlite 3600 500 1 60 60   (1,000 msg/s for an hour)
#        scripts/bench-soak.sh pg 3600 250 1 60 60       (500 msg/s for an hour)
# CHAT_SECONDS 0 keeps every chat open the whole run (no chats end).
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:?sqlite or pg}
seconds=${2:?seconds}
chats=${3:?chats}
rate=${4:?msg/s per side}
sample=${5:-60}
chat_seconds=${6:-60}
port=${SOAK_PORT:-8092}
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/refdesk
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
export REFDESK_STARTS_PER_MINUTE=100000 REFDESK_CHATS_PER_ADDRESS_PER_DAY=100000000 REFDESK_STARTS_PER_LIBRARY_PER_DAY=100000000 REFDESK_PATRON_FRAMES_PER_SECOND_PER_ADDRESS=1000000 REFDESK_LOGINS_PER_MINUTE=100000 REFDESK_MAX_WAITING_PER_ADDRESS=100000 REFDESK_MAX_CHAT_LINES=1000000 REFDESK_PATRON_CHARS_PER_CHAT=100000000 REFDESK_FRAMES_PER_SECOND=100000 REFDESK_FRAME_BURST=10000 REFDESK_STAFF_LINES_PER_DAY=10000000 REFDESK_STAFF_READS_PER_SECOND=100000 REFDESK_SIGN_INS_PER_ACCOUNT=1000 REFDESK_MAX_WAITING_PER_LIBRARY=100000 REFDESK_MAX_CONNECTIONS=20000 REFDESK_LOG=warn
# A bench stops its servers between runs: nobody to drain them for.
export REFDESK_DRAIN_SECONDS=0
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
server=postgres://postgres@127.0.0.1:5432
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

case $backend in
  sqlite)
    "$bin" serve --demo --data-dir "$tmp" --listen "127.0.0.1:$port" >"$tmp/server.log" 2>&1 &
    size=(--data-dir "$tmp")
    ;;
  pg)
    name="refdesk_soak_$(date +%s)"
    psql "$server/postgres" -qc "CREATE DATABASE $name"
    "$bin" --database-url "$server/$name" demo >/dev/null
    "$bin" serve --database-url "$server/$name" --data-dir "$tmp" --listen "127.0.0.1:$port" >"$tmp/server.log" 2>&1 &
    size=(--database-url "$server/$name")
    ;;
  *) echo "sqlite or pg, not $backend" >&2; exit 2 ;;
esac
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
churn=()
[ "$chat_seconds" != 0 ] && churn=(--chat-seconds "$chat_seconds")
echo "soak on $backend: $chats chats × $rate msg/s per side for $seconds s, a row every $sample s"
"$bin" bench --url "http://127.0.0.1:$port" --chats "$chats" --rate "$rate" --duration "$seconds" \
  --sample-seconds "$sample" "${churn[@]}" "${size[@]}" --server-pid "$pid"
kill -TERM "$pid"; wait "$pid" || true
if [ "$backend" = sqlite ]; then
  ls -l "$tmp" | grep sqlite3 || true
  echo "after SIGTERM: $(ls "$tmp"/refdesk.sqlite3-wal 2>/dev/null || echo 'no -wal file')"
fi
