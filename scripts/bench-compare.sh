#!/usr/bin/env bash
# Two builds of refdesk under the same loads, one after the other, in one
# run: for a change's figures before and after (docs/performance.md).
# Usage: scripts/bench-compare.sh OLD_BINARY NEW_BINARY [sqlite] [pg]
# (no backend named: both). Each load runs on a fresh data folder (or a new
# PostgreSQL database), the old build first, then the new one. Needs
# PostgreSQL on 127.0.0.1:5432 (user postgres, trust) for the pg runs.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: scripts/bench-compare.sh OLD_BINARY NEW_BINARY [sqlite] [pg]}
new=${2:?usage: scripts/bench-compare.sh OLD_BINARY NEW_BINARY [sqlite] [pg]}
shift 2
want=${*:-sqlite pg}
for b in "$old" "$new"; do [ -x "$b" ] || { echo "not a binary: $b" >&2; exit 1; }; done
export REFDESK_STARTS_PER_MINUTE=100000 REFDESK_CHATS_PER_ADDRESS_PER_DAY=100000000 REFDESK_STARTS_PER_LIBRARY_PER_DAY=100000000 REFDESK_PATRON_FRAMES_PER_SECOND_PER_ADDRESS=1000000 REFDESK_LOGINS_PER_MINUTE=100000 REFDESK_MAX_WAITING_PER_ADDRESS=100000 REFDESK_MAX_CHAT_LINES=1000000 REFDESK_PATRON_CHARS_PER_CHAT=100000000 REFDESK_FRAMES_PER_SECOND=100000 REFDESK_FRAME_BURST=10000 REFDESK_STAFF_LINES_PER_DAY=10000000 REFDESK_STAFF_READS_PER_SECOND=100000 REFDESK_SIGN_INS_PER_ACCOUNT=1000 REFDESK_MAX_WAITING_PER_LIBRARY=100000 REFDESK_MAX_CONNECTIONS=20000 REFDESK_LOG=warn
# A bench stops its servers between runs: nobody to drain them for.
export REFDESK_DRAIN_SECONDS=0
server=postgres://postgres@127.0.0.1:5432
ts=$(date +%s)
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

ready() { # waits for the node's /readyz
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:8090/readyz" >/dev/null && return; sleep 0.1; done
  echo "the node did not start" >&2; exit 1
}

one() { # label, binary, backend, chats, seconds, rate
  local label=$1 bin=$2 backend=$3 chats=$4 secs=$5 rate=$6 n=$((++runs)) args=()
  if [ "$backend" = pg ]; then
    local db="refdesk_compare_${ts}_$n"
    psql "$server/postgres" -qc "CREATE DATABASE $db"
    args=(--database-url "$server/$db")
  fi
  "$bin" serve --demo "${args[@]}" --data-dir "$tmp/$n" --listen 127.0.0.1:8090 >/dev/null & local pid=$!
  ready
  echo "=== $label, $backend: $chats chats, $rate msg/s per side, $secs s"
  "$bin" bench --url http://127.0.0.1:8090 --chats "$chats" --duration "$secs" --rate "$rate" --server-pid $pid |
    grep -E '^(throughput|latency|server|note)'
  kill $pid; wait $pid 2>/dev/null || true
}

runs=0
for backend in $want; do
  loads="100 20 1;1000 20 1;500 10 10;1000 10 15"
  [ "$backend" = pg ] && loads="1000 20 1;500 10 10"
  IFS=';' read -ra list <<<"$loads"
  for load in "${list[@]}"; do
    read -r chats secs rate <<<"$load"
    one before "$old" "$backend" "$chats" "$secs" "$rate"
    one after "$new" "$backend" "$chats" "$secs" "$rate"
  done
done
