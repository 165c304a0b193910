#!/usr/bin/env bash
# Where the machine's CPU goes when refdesk saturates PostgreSQL: one node,
# then two nodes on PostgreSQL + NATS with each chat's two sides on one node
# (`bench --by-chat`), each on a new database with the demo data, at 500
# chats × 20 msg/s/side as in `scripts/bench-pinned.sh pg`. During each
# run's load, `perf record -a` samples the whole machine for PERF_SECONDS;
# then it prints, per delivered message, the CPU of the nodes, of
# PostgreSQL, of the load generator and of NATS, and the writes per commit
# the nodes report on /metrics (`refdesk_commit_writes`: under this load
# nearly all of them appends; the chats' starts and ends count one each).
#
# Usage: scripts/bench-pg-profile.sh   Environment: RUNS (1), BIN, OUT,
#   PERF_SECONDS (8), DURATION (10). Needs perf, PostgreSQL on
#   127.0.0.1:5432 (user postgres, trust) and NATS on 127.0.0.1:4222.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-1}
bin=${BIN:-$PWD/target/release/refdesk}
out=${OUT:-$(mktemp -d /tmp/bench-pg-profile.XXXX)}
seconds=${PERF_SECONDS:-8}
duration=${DURATION:-10}
mkdir -p "$out"
[ -n "${BIN:-}" ] || cargo build --release -p refdesk
export REFDESK_STARTS_PER_MINUTE=100000 REFDESK_CHATS_PER_ADDRESS_PER_DAY=100000000 REFDESK_STARTS_PER_LIBRARY_PER_DAY=100000000 REFDESK_PATRON_FRAMES_PER_SECOND_PER_ADDRESS=1000000 REFDESK_LOGINS_PER_MINUTE=100000 REFDESK_MAX_WAITING_PER_ADDRESS=100000 REFDESK_MAX_CHAT_LINES=1000000 REFDESK_PATRON_CHARS_PER_CHAT=100000000 \
  REFDESK_MAX_WAITING_PER_LIBRARY=100000 REFDESK_MAX_CONNECTIONS=30000 REFDESK_LOG=error REFDESK_DRAIN_SECONDS=0 \
  REFDESK_SOCKETS_PER_SIGN_IN=32 REFDESK_FRAMES_PER_SECOND=100000 REFDESK_FRAME_BURST=3000 REFDESK_STAFF_LINES_PER_DAY=10000000 REFDESK_STAFF_READS_PER_SECOND=100000 REFDESK_SIGN_INS_PER_ACCOUNT=1000
ulimit -n "$(ulimit -Hn)"
pg=postgres://postgres@127.0.0.1:5432
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
echo "raw outputs in $out"

ready() { for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return; sleep 0.1; done; exit 1; }

node() { # database, port, NATS key: starts a node; sets $started to its pid
  local nats=()
  [ -z "$3" ] || nats=(env REFDESK_NATS_URL=nats://127.0.0.1:4222 REFDESK_NATS_KEY="$3" REFDESK_NATS_SUBJECT="profile.$1")
  "${nats[@]}" "$bin" serve --database-url "$pg/$1" --data-dir "$tmp/$1-$2" --listen "127.0.0.1:$2" >/dev/null 2>&1 &
  started=$!
}

one_run() { # set-up (one|pair), run number
  local db="refdesk_profile_$1_$(date +%s)_$2" key="" p1 p2="" label="$out/$1-$2" args
  psql "$pg/postgres" -qc "CREATE DATABASE $db"
  "$bin" --database-url "$pg/$db" demo >/dev/null
  [ "$1" = one ] || key=$(head -c 32 /dev/urandom | base64)
  node "$db" 8094 "$key"
  p1=$started
  if [ "$1" = pair ]; then node "$db" 8095 "$key"; p2=$started; fi
  ready 8094
  [ "$1" = one ] || ready 8095
  if [ "$1" = one ]; then args=(--server-pid "$p1"); else
    args=(--staff-url http://127.0.0.1:8095 --by-chat --server-pid "$p1" --server-pid "$p2"); fi
  "$bin" bench --url http://127.0.0.1:8094 "${args[@]}" --chats 500 --duration "$duration" --rate 20 >"$label.txt" &
  local load=$!
  for _ in $(seq 1200); do grep -q sending "$label.txt" 2>/dev/null && break; sleep 0.1; done
  grep -q sending "$label.txt" || { echo "the load never started: $label.txt" >&2; exit 1; }
  sleep 1
  perf record -q -F 999 -a -o "$label.perf" -- sleep "$seconds" >/dev/null 2>&1
  wait $load
  for port in 8094 8095; do
    curl -s "http://127.0.0.1:$port/metrics" | grep -E '^refdesk_commit_writes_(sum|count)' || true
  done >"$label.metrics"
  perf script -i "$label.perf" -F comm,pid 2>/dev/null |
    awk -v nodes="$p1 $p2" -v lg=$load '
      BEGIN { split(nodes, n, " "); for (i in n) node[n[i]] = 1 }
      { if ($2 in node) w = "nodes"; else if ($2 == lg) w = "load"; else if ($1 == "postgres") w = "postgres";
        else if ($1 == "nats-server") w = "nats"; else if ($1 == "swapper") w = "idle"; else w = "other"; c[w]++ }
      END { for (w in c) print w, c[w] }' >"$label.cpu"
  kill $p1 $p2 2>/dev/null || true
  wait $p1 $p2 2>/dev/null || true
  psql "$pg/postgres" -qc "DROP DATABASE $db" || true
}

for run in $(seq "$runs"); do
  for setup in one pair; do
    echo "run $run: $setup"
    one_run "$setup" "$run"
  done
done
python3 - "$out" "$seconds" <<'EOF'
import pathlib, re, sys
out, seconds = pathlib.Path(sys.argv[1]), float(sys.argv[2])
print(f"{'set-up':<10} {'msg/s':>7} {'writes/commit':>15}  CPU µs per delivered message: nodes postgres load nats (perf, 999 Hz, whole machine)")
for txt in sorted(out.glob("*.txt")):
    rate = float(re.search(r"throughput: (\d+)", txt.read_text()).group(1))
    sums = [float(v) for k, v in re.findall(r"_(sum) ([\d.]+)", txt.with_suffix(".metrics").read_text())]
    counts = [float(v) for k, v in re.findall(r"_(count) ([\d.]+)", txt.with_suffix(".metrics").read_text())]
    per_commit = sum(sums) / max(sum(counts), 1)
    cpu = dict(line.split() for line in txt.with_suffix(".cpu").read_text().split("\n") if line)
    per = lambda w: int(cpu.get(w, 0)) / 999 / (rate * seconds) * 1e6
    print(f"{txt.stem:<10} {rate:>7,.0f} {per_commit:>15.1f}  {per('nodes'):6.1f} {per('postgres'):8.1f} {per('load'):5.1f} {per('nats'):5.1f}")
EOF
