#!/usr/bin/env bash
# refdesk measured against a bare WebSocket relay (`refdesk bench-relay`), in
# one run, the server pinned to one core and the load generator to the other
# (issue 17; every figure of docs/performance.md's "Against a bare relay"
# comes from here). For each of RUNS runs, one after the other:
#
#   sweep   the relay, then refdesk (SQLite, a fresh data folder), each
#           fresh, each driven by the same `refdesk bench --rates …` sweep:
#           CHATS chats (two sockets each), a phase of DURATION seconds at
#           each rate until a phase's p99 reaches 1 s or leaves a message
#           undelivered (the summary finds the highest rates with p99 under
#           50 ms and under 5 ms); a disk probe fsyncs 4 KiB on the data
#           folder's file system every 10 ms meanwhile (each phase reports
#           its longest fsync), and every delivered message's send time and
#           latency go to latencies-{relay,refdesk}-N.csv;
#   idle    8,000 idle sockets on the relay, then 8,000 waiting patrons on
#           refdesk (each fresh): RSS per connection over all 8,000 and over
#           the second 4,000 alone, and the server CPU to open them;
#   pg      PostgreSQL saturation: the OLD build (OLD=path, required) and
#           this one on one node, then this one on two nodes on PostgreSQL +
#           NATS (patrons on one, librarians on the other; then each chat's
#           two sides on one node, `bench --by-chat`), each on a new
#           database, at 500 chats × 20 msg/s/side; not pinned (PostgreSQL
#           itself needs a core).
#
# Then it prints the medians over the runs and the ratios (summary.py).
# Usage: scripts/bench-pinned.sh [sweep] [idle] [pg]   (default: sweep idle)
# Environment: RUNS (3), CHATS (1000), RATES (per side), DURATION (10),
#   SERVER_CPU (0), LOAD_CPU (1), BIN, OLD, OUT (the raw outputs' folder),
#   LOAD_BIN (the load generator's binary; BIN's by default: an older
#   server measured by this load generator).
# Needs taskset, curl, and for pg PostgreSQL on 127.0.0.1:5432 (user
# postgres, trust) and NATS on 127.0.0.1:4222 (scripts/test.sh starts both).
set -euo pipefail
cd "$(dirname "$0")/.."
want=${*:-sweep idle}
runs=${RUNS:-3}
chats=${CHATS:-1000}
rates=${RATES:-1,1.5,2,3,4,5,6,7.5,10,12.5,15,20}
duration=${DURATION:-10}
server_cpu=${SERVER_CPU:-0}
load_cpu=${LOAD_CPU:-1}
bin=${BIN:-$PWD/target/release/refdesk}
load_bin=${LOAD_BIN:-$bin}  # the load generator: by default the server's own binary
out=${OUT:-$(mktemp -d /tmp/bench-pinned.XXXX)}
mkdir -p "$out"
[ -n "${BIN:-}" ] || cargo build --release -p refdesk
export REFDESK_STARTS_PER_MINUTE=100000 REFDESK_CHATS_PER_ADDRESS_PER_DAY=100000000 REFDESK_STARTS_PER_LIBRARY_PER_DAY=100000000 REFDESK_PATRON_FRAMES_PER_SECOND_PER_ADDRESS=1000000 REFDESK_LOGINS_PER_MINUTE=100000 REFDESK_MAX_WAITING_PER_ADDRESS=100000 REFDESK_MAX_CHAT_LINES=1000000 REFDESK_PATRON_CHARS_PER_CHAT=100000000 \
  REFDESK_MAX_WAITING_PER_LIBRARY=100000 REFDESK_MAX_CONNECTIONS=30000 REFDESK_LOG=warn REFDESK_DRAIN_SECONDS=0 \
  REFDESK_SOCKETS_PER_SIGN_IN=32 REFDESK_FRAMES_PER_SECOND=100000 REFDESK_FRAME_BURST=3000 REFDESK_STAFF_LINES_PER_DAY=10000000 REFDESK_STAFF_READS_PER_SECOND=100000 REFDESK_SIGN_INS_PER_ACCOUNT=1000
ulimit -n "$(ulimit -Hn)"  # 8,000 idle sockets need more than the usual 1,024
pg=postgres://postgres@127.0.0.1:5432
ts=$(date +%s)
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
echo "raw outputs in $out"

ready() { # port: waits for it to accept connections
  for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return; sleep 0.1; done
  echo "nothing listens on port $1" >&2; exit 1
}

stop() { kill "$@"; wait "$@" 2>/dev/null || true; }

load() { # the load generator, on its core
  taskset -c "$load_cpu" "$load_bin" bench "$@"
}

relay() { # starts the relay on the server's core; sets $pid
  taskset -c "$server_cpu" "$bin" bench-relay --listen 127.0.0.1:8093 >/dev/null & pid=$!
  ready 8093
}

refdesk() { # label: starts refdesk on SQLite on the server's core; sets $pid
  taskset -c "$server_cpu" "$bin" serve --demo --data-dir "$tmp/$1" --listen 127.0.0.1:8092 >/dev/null & pid=$!
  ready 8092
}

sweep() { # run number
  relay
  load --relay --url http://127.0.0.1:8093 --chats "$chats" --duration "$duration" --rates "$rates" --stop-above-ms 1000 \
    --latencies-csv "$out/latencies-relay-$1.csv" --disk-probe "$tmp" --server-pid $pid >"$out/sweep-relay-$1.txt"
  stop $pid
  refdesk "sweep-$1"
  load --url http://127.0.0.1:8092 --chats "$chats" --duration "$duration" --rates "$rates" --stop-above-ms 1000 \
    --chats-per-sign-in 8 --latencies-csv "$out/latencies-refdesk-$1.csv" --disk-probe "$tmp" \
    --server-pid $pid >"$out/sweep-refdesk-$1.txt"
  stop $pid
}

idle() { # run number
  relay
  load --relay --url http://127.0.0.1:8093 --idle 8000 --server-pid $pid >"$out/idle-relay-$1.txt"
  stop $pid
  refdesk "idle-$1"
  load --url http://127.0.0.1:8092 --idle 8000 --server-pid $pid >"$out/idle-refdesk-$1.txt"
  stop $pid
}

new_database() { # name, binary: prints the URL of a new database holding the demo data, at that binary's schema
  psql "$pg/postgres" -qc "CREATE DATABASE $1"
  "$2" --database-url "$pg/$1" demo >/dev/null
  echo "$pg/$1"
}

two_nodes() { # database name: starts two nodes of this build on a new database; sets $p1 and $p2
  local db key
  db=$(new_database "$1" "$bin")
  key=$(head -c 32 /dev/urandom | base64)
  REFDESK_DATABASE_URL=$db REFDESK_NATS_URL=nats://127.0.0.1:4222 REFDESK_NATS_KEY=$key REFDESK_NATS_SUBJECT="pinned.$1" "$bin" serve \
    --data-dir "$tmp/n1-$1" --listen 127.0.0.1:8094 >/dev/null & p1=$!
  REFDESK_DATABASE_URL=$db REFDESK_NATS_URL=nats://127.0.0.1:4222 REFDESK_NATS_KEY=$key REFDESK_NATS_SUBJECT="pinned.$1" "$bin" serve \
    --data-dir "$tmp/n2-$1" --listen 127.0.0.1:8095 >/dev/null & p2=$!
  ready 8094
  ready 8095
}

pg_runs() { # run number
  local db old=${OLD:?pg needs OLD=the older build to compare with}
  db=$(new_database "refdesk_pinned_old_${ts}_$1" "$old")
  "$old" serve --database-url "$db" --data-dir "$tmp/pgo-$1" --listen 127.0.0.1:8094 >/dev/null & pid=$!
  ready 8094
  "$bin" bench --url http://127.0.0.1:8094 --chats 500 --duration "$duration" --rate 20 --server-pid $pid \
    >"$out/pg-old-$1.txt"
  stop $pid
  db=$(new_database "refdesk_pinned_new_${ts}_$1" "$bin")
  "$bin" serve --database-url "$db" --data-dir "$tmp/pgn-$1" --listen 127.0.0.1:8094 >/dev/null & pid=$!
  ready 8094
  "$bin" bench --url http://127.0.0.1:8094 --chats 500 --duration "$duration" --rate 20 --server-pid $pid \
    >"$out/pg-new-$1.txt"
  stop $pid
  two_nodes "refdesk_pinned_two_${ts}_$1"
  "$bin" bench --url http://127.0.0.1:8094 --staff-url http://127.0.0.1:8095 --chats 500 --duration "$duration" \
    --rate 20 --server-pid $p1 --server-pid $p2 >"$out/pg-two-$1.txt"
  stop $p1 $p2
  two_nodes "refdesk_pinned_pair_${ts}_$1" # each chat's two sides on one node
  "$bin" bench --url http://127.0.0.1:8094 --staff-url http://127.0.0.1:8095 --by-chat --chats 500 --duration "$duration" \
    --rate 20 --server-pid $p1 --server-pid $p2 >"$out/pg-pair-$1.txt"
  stop $p1 $p2
  for v in old new two pair; do psql "$pg/postgres" -qc "DROP DATABASE refdesk_pinned_${v}_${ts}_$1" || true; done
}

for run in $(seq "$runs"); do
  for part in $want; do
    echo "run $run: $part"
    case $part in
      sweep) sweep "$run" ;;
      idle) idle "$run" ;;
      pg) pg_runs "$run" ;;
      *) echo "unknown part: $part" >&2; exit 2 ;;
    esac
  done
done
python3 scripts/bench-pinned-summary.py "$out"
