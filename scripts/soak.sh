#!/usr/bin/env bash
# The soak test: what grows with time under steady load stays bounded.
#
# One release node on the embedded default (SQLite, in-process bus) takes a
# steady load from `refdesk bench`: CHATS chats × RATE msg/s per side
# (default 500 × 1 = 1,000 msg/s), each chat ended after 30 s and replaced,
# for SECONDS (default 120). The bench samples the server every 10 s. Then:
#
# - the write-ahead log never passed WAL_MAX_MIB (default 64) at any
#   one-second reading;
# - server RSS grew by less than RSS_GROWTH_MIB (default 64) from the first
#   row after 30 s to the last, and open files by less than 20;
# - nearly all the offered load was delivered, with no errors;
# - after SIGTERM no `-wal` file is left (or it is empty);
# - after a crash (SIGKILL) with a 200 MiB log written by another process,
#   the node starts, keeps what the log held, and shrinks the log.
#
# Usage: scripts/soak.sh [SECONDS] [CHATS] [RATE]; needs a release build
# (`cargo build --release -p refdesk`), which scripts/test.sh makes.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-120}"
chats="${2:-500}"
rate="${3:-1}"
wal_max_mib="${WAL_MAX_MIB:-64}"
rss_growth_mib="${RSS_GROWTH_MIB:-64}"
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/refdesk"
port="${SOAK_PORT:-18931}"
dir="$(mktemp -d /tmp/refdesk-soak.XXXXXX)"
url="http://127.0.0.1:$port"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "soak: FAILED: $*" >&2; echo "server log:" >&2; tail -20 "$dir/server.log" >&2 || true; exit 1; }

[ -x "$bin" ] || fail "no release build at $bin (cargo build --release -p refdesk)"
# 2,000 sockets and more: lift the soft open-file limit as far as allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

start_server() {
  # The bench starts its chats from one address: lift the per-address limits.
  REFDESK_STARTS_PER_MINUTE=100000 REFDESK_CHATS_PER_ADDRESS_PER_DAY=100000000 REFDESK_STARTS_PER_LIBRARY_PER_DAY=100000000 REFDESK_PATRON_FRAMES_PER_SECOND_PER_ADDRESS=1000000 REFDESK_LOGINS_PER_MINUTE=100000 REFDESK_MAX_WAITING_PER_ADDRESS=100000 REFDESK_MAX_CHAT_LINES=1000000 REFDESK_PATRON_CHARS_PER_CHAT=100000000 REFDESK_FRAMES_PER_SECOND=100000 REFDESK_FRAME_BURST=10000 REFDESK_STAFF_LINES_PER_DAY=10000000 REFDESK_STAFF_READS_PER_SECOND=100000 REFDESK_SIGN_INS_PER_ACCOUNT=1000 REFDESK_MAX_WAITING_PER_LIBRARY=100000 REFDESK_MAX_CONNECTIONS=20000 REFDESK_LOG=warn \
    "$bin" serve --demo --data-dir "$dir" --listen "127.0.0.1:$port" >>"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 150); do
    if curl -fsS "$url/readyz" >/dev/null 2>&1; then return; fi
    kill -0 "$pid" 2>/dev/null || fail "the server exited at start"
    sleep 0.2
  done
  fail "the server was not ready within 30 s"
}

stop_server() {
  kill -TERM "$pid"
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && fail "the server did not stop within 30 s of SIGTERM"
  wait "$pid" || fail "the server exited with an error after SIGTERM"
  pid=""
}

echo "soak: $chats chats × $rate msg/s per side for $seconds s (SQLite, data in $dir)"
start_server
"$bin" bench --url "$url" --chats "$chats" --rate "$rate" --duration "$seconds" \
  --chat-seconds 30 --sample-seconds 10 --samples-csv "$dir/samples.csv" \
  --data-dir "$dir" --server-pid "$pid" | tee "$dir/bench.txt"

python3 - "$dir/samples.csv" "$dir/bench.txt" "$wal_max_mib" "$rss_growth_mib" "$chats" "$rate" <<'EOF'
import csv, re, sys
samples, bench, wal_max, rss_growth, chats, rate = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
rows = list(csv.DictReader(open(samples)))
assert len(rows) >= 3, f"too few samples: {len(rows)}"
problems = []
for r in rows:
    wal = int(r["wal_bytes_max"]) / 2**20
    if wal > wal_max:
        problems.append(f"at {r['seconds']} s the WAL reached {wal:.1f} MiB (bound {wal_max} MiB)")
warm = [r for r in rows if int(r["seconds"]) >= 30]
assert len(warm) >= 2, "the run is too short to measure growth after 30 s"
first, last = warm[0], warm[-1]
grew = (int(last["rss_kib"]) - int(first["rss_kib"])) / 1024
if grew >= rss_growth:
    problems.append(f"server RSS grew by {grew:.1f} MiB after 30 s (bound {rss_growth} MiB)")
files = int(last["open_files"]) - int(first["open_files"])
if files >= 20:
    problems.append(f"open files grew by {files} after 30 s")
text = open(bench).read()
m = re.search(r"sent: (\d+)\s+delivered: (\d+)\s+errors: (\d+)", text)
assert m, "no totals in the bench output"
sent, delivered, errors = map(int, m.groups())
if errors:
    problems.append(f"{errors} errors")
if delivered < 0.98 * sent:
    problems.append(f"only {delivered} of {sent} messages delivered")
offered = chats * 2 * rate
through = float(re.search(r"throughput: (\d+)", text).group(1))
if through < 0.9 * offered:
    problems.append(f"throughput {through:.0f} msg/s, under 90% of the {offered:.0f} offered")
peak = max(int(r["wal_bytes_max"]) for r in rows) / 2**20
print(f"soak: WAL at most {peak:.1f} MiB; RSS {int(first['rss_kib'])/1024:.1f} → {int(last['rss_kib'])/1024:.1f} MiB after 30 s; "
      f"open files {first['open_files']} → {last['open_files']}; {delivered}/{sent} delivered")
if problems:
    print("soak: FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
EOF

stop_server
wal="$dir/refdesk.sqlite3-wal"
if [ -s "$wal" ]; then fail "a clean shutdown left a $(stat -c %s "$wal")-byte WAL"; fi
echo "soak: after SIGTERM no WAL is left"

# A crash with a large log: another process writes 200 MiB through the
# log with checkpoints off and dies without closing (SIGKILL); the node
# must start on it, keep what it held, and bring the log back down.
python3 - "$dir/refdesk.sqlite3" <<'EOF' || true
import os, signal, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA journal_mode=WAL")
c.execute("PRAGMA wal_autocheckpoint=0")
c.execute("CREATE TABLE IF NOT EXISTS soak_crash_probe (id INTEGER PRIMARY KEY, pad BLOB)")
pad = os.urandom(4000)
for i in range(50):
    c.execute("BEGIN")
    c.executemany("INSERT INTO soak_crash_probe (pad) VALUES (?)", [(pad,)] * 1000)
    c.execute("COMMIT")
os.kill(os.getpid(), signal.SIGKILL)
EOF
size=$(stat -c %s "$wal")
[ "$size" -gt $((150 * 1048576)) ] || fail "the crash left only a ${size}-byte WAL; expected a large one"
echo "soak: a crash left a $((size / 1048576)) MiB WAL; starting on it"
start_server
# The checkpointer copies the log back and restarts it within a few rounds;
# the next write then cuts the file back to journal_size_limit (32 MiB).
curl -fsS -X POST "$url/api/login" -H 'content-type: application/json' \
  -d '{"username":"ann","password":"refdesk-demo"}' >/dev/null || fail "sign-in after the crash failed"
sleep 3
curl -fsS -X POST "$url/api/login" -H 'content-type: application/json' \
  -d '{"username":"ann","password":"refdesk-demo"}' >/dev/null || fail "sign-in after the crash failed"
size=$(stat -c %s "$wal" 2>/dev/null || echo 0)
[ "$size" -le $((32 * 1048576)) ] || fail "after the restart the WAL is still $((size / 1048576)) MiB"
stop_server
rows=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM soak_crash_probe').fetchone()[0])" "$dir/refdesk.sqlite3")
[ "$rows" = 50000 ] || fail "after the crash and restart $rows of 50000 rows the log held are there"
[ -s "$wal" ] && fail "the clean shutdown after the crash left a WAL"
echo "soak: passed"
