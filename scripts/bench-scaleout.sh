#!/usr/bin/env bash
# The load generator against one node on SQLite, one node on PostgreSQL, and
# two nodes on PostgreSQL + NATS (patrons on one node, librarians on the
# other), as in docs/performance.md. Needs a release build, PostgreSQL on
# 127.0.0.1:5432 (user postgres, trust) and NATS on 127.0.0.1:4222
# (scripts/test.sh starts both). Usage: scripts/bench-scaleout.sh [sqlite] [pg] [nats]
# (no argument: all three). Each PostgreSQL run gets a new database.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/refdesk
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
export REFDESK_STARTS_PER_MINUTE=100000 REFDESK_CHATS_PER_ADDRESS_PER_DAY=100000000 REFDESK_STARTS_PER_LIBRARY_PER_DAY=100000000 REFDESK_PATRON_FRAMES_PER_SECOND_PER_ADDRESS=1000000 REFDESK_LOGINS_PER_MINUTE=100000 REFDESK_MAX_WAITING_PER_ADDRESS=100000 REFDESK_MAX_CHAT_LINES=1000000 REFDESK_PATRON_CHARS_PER_CHAT=100000000 REFDESK_FRAMES_PER_SECOND=100000 REFDESK_FRAME_BURST=10000 REFDESK_STAFF_LINES_PER_DAY=10000000 REFDESK_STAFF_READS_PER_SECOND=100000 REFDESK_SIGN_INS_PER_ACCOUNT=1000 REFDESK_MAX_WAITING_PER_LIBRARY=100000 REFDESK_MAX_CONNECTIONS=20000 REFDESK_LOG=warn
# A bench stops its servers between runs: nobody to drain them for.
export REFDESK_DRAIN_SECONDS=0
server=postgres://postgres@127.0.0.1:5432
ts=$(date +%s)
want=${*:-sqlite pg nats}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

# CPU seconds used so far by every PostgreSQL process (user + system ticks).
pg_cpu() {
  for p in $(pgrep -u postgres); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done |
    awk '{s += $1} END {printf "%.2f", s / 100}'
}

runs() { # label, then the bench's --url/--staff-url/--server-pid options
  local label=$1; shift
  for load in "1000 20 1" "500 10 10"; do
    read -r chats secs rate <<<"$load"
    echo "=== $label: $chats chats, $rate msg/s per side, $secs s"
    local before; before=$(pg_cpu)
    "$bin" bench --chats "$chats" --duration "$secs" --rate "$rate" "$@"
    awk -v a="$(pg_cpu)" -v b="$before" 'BEGIN {printf "PostgreSQL CPU during the run: %.2f s\n", a - b}'
  done
}

new_database() { # prints the URL of a new database holding the demo data
  local name="refdesk_bench_${1}_$ts"
  psql "$server/postgres" -qc "CREATE DATABASE $name"
  "$bin" --database-url "$server/$name" demo >/dev/null
  echo "$server/$name"
}

ready() { # waits for a node's /readyz
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$1/readyz" >/dev/null && return; sleep 0.1; done
  echo "node on port $1 did not start" >&2; exit 1
}

if [[ " $want " == *" sqlite "* ]]; then
  "$bin" serve --demo --data-dir "$tmp/sqlite" --listen 127.0.0.1:8088 >/dev/null & p1=$!
  ready 8088
  runs "SQLite, one node" --url http://127.0.0.1:8088 --server-pid $p1
  kill $p1; wait $p1 2>/dev/null || true
fi
if [[ " $want " == *" pg "* ]]; then
  db=$(new_database pg)
  "$bin" serve --database-url "$db" --data-dir "$tmp/pg" --listen 127.0.0.1:8089 >/dev/null & p1=$!
  ready 8089
  runs "PostgreSQL, one node" --url http://127.0.0.1:8089 --server-pid $p1
  kill $p1; wait $p1 2>/dev/null || true
fi
if [[ " $want " == *" nats "* ]]; then
  db=$(new_database nats)
  export REFDESK_NATS_SUBJECT="bench.$ts"
  # The key both nodes seal what crosses NATS with (required with NATS).
  REFDESK_NATS_KEY="$(head -c 32 /dev/urandom | base64)"
  export REFDESK_NATS_KEY
  "$bin" serve --database-url "$db" --nats-url nats://127.0.0.1:4222 --data-dir "$tmp/n1" --listen 127.0.0.1:8090 >/dev/null & p1=$!
  "$bin" serve --database-url "$db" --nats-url nats://127.0.0.1:4222 --data-dir "$tmp/n2" --listen 127.0.0.1:8091 >/dev/null & p2=$!
  ready 8090; ready 8091
  runs "PostgreSQL + NATS, two nodes" --url http://127.0.0.1:8090 --staff-url http://127.0.0.1:8091 \
    --server-pid $p1 --server-pid $p2
  kill $p1 $p2; wait $p1 $p2 2>/dev/null || true
fi
