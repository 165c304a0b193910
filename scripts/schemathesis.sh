#!/usr/bin/env bash
# The API against its own description: schemathesis generates requests from
# the OpenAPI document the server serves (/api/openapi.json, derived from
# the handlers' types) and checks every answer: no server error, a status
# the document names for that operation, the content type it names, and a
# body that conforms to its schema.
#
# The real `refdesk serve` runs on a fresh data folder with the demo data;
# the run signs in as a librarian (ann) and as a cooperative admin (erin),
# each with their own cookie, takes the patron's side with a chat's
# token, and last runs the two operations that end a sign-in (signing out,
# and changing a staff member: disabling or a new password end their
# sign-ins) on their own.
#
# Usage: scripts/schemathesis.sh [BIN]; BIN defaults to target/debug/refdesk.
# SCHEMATHESIS_EXAMPLES (default 25) bounds the examples per operation and
# phase; SCHEMATHESIS_SEED (default 1) picks the data. With
# SCHEMATHESIS_BACKEND=postgres the server runs on a fresh PostgreSQL
# database (on 127.0.0.1:5432, or REFDESK_TEST_POSTGRES), dropped at the end:
# some inputs only fail there (a NUL in a name looked up). Needs Python 3
# with venv: schemathesis (pinned) is installed into its own venv under /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-${CARGO_TARGET_DIR:-$PWD/target}/debug/refdesk}"
version=4.32.5
venv=/tmp/refdesk-schemathesis
examples="${SCHEMATHESIS_EXAMPLES:-25}"
seed="${SCHEMATHESIS_SEED:-1}"
port="${SCHEMATHESIS_PORT:-18941}"
url="http://127.0.0.1:$port"
dir="$(mktemp -d /tmp/refdesk-schemathesis.XXXXXX)"
pid=""
server="${REFDESK_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
database=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -n "$database" ]; then psql "$server" -qc "DROP DATABASE IF EXISTS \"$database\"" || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "schemathesis: FAILED: $*" >&2; echo "server log:" >&2; tail -40 "$dir/server.log" >&2 || true; exit 1; }

[ -x "$bin" ] || fail "no build at $bin (cargo build -p refdesk)"
# Two runs at once (scripts/test.sh runs SQLite's beside PostgreSQL's) share
# the venv: one installs it while the other waits.
exec 9>"$venv.lock"
flock 9
if [ "$("$venv/bin/st" --version 2>/dev/null)" != "st, version $version" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi
flock -u 9

backend=()
if [ "${SCHEMATHESIS_BACKEND:-sqlite}" = postgres ]; then
  # Named like the API suite's databases, which scripts/test.sh drops when a run left them.
  database="refdesk_api_schemathesis_$$"
  psql "$server" -qc "CREATE DATABASE \"$database\"" || fail "cannot create a database on $server"
  backend=(--database-url "${server%/*}/$database")
fi

# Generous per-address limits: every request comes from 127.0.0.1, and a
# 429 would hide what the operation does (the limits have their own tests).
REFDESK_STARTS_PER_MINUTE=100000 REFDESK_CHATS_PER_ADDRESS_PER_DAY=100000000 REFDESK_STARTS_PER_LIBRARY_PER_DAY=100000000 REFDESK_PATRON_FRAMES_PER_SECOND_PER_ADDRESS=1000000 REFDESK_LOGINS_PER_MINUTE=100000 REFDESK_MAX_WAITING_PER_ADDRESS=100000 REFDESK_MAX_CHAT_LINES=1000000 REFDESK_PATRON_CHARS_PER_CHAT=100000000 REFDESK_PATRON_POSTS_PER_MINUTE=100000 REFDESK_PATRON_READS_PER_MINUTE=100000 REFDESK_BAD_CREDENTIALS_PER_MINUTE=100000 REFDESK_FRAMES_PER_SECOND=100000 REFDESK_FRAME_BURST=100000 REFDESK_STAFF_LINES_PER_DAY=10000000 REFDESK_STAFF_READS_PER_SECOND=100000 REFDESK_SIGN_INS_PER_ACCOUNT=1000 \
  REFDESK_MAX_WAITING_PER_LIBRARY=100000 REFDESK_LOG=warn \
  "$bin" "${backend[@]}" --data-dir "$dir" serve --demo --listen "127.0.0.1:$port" >>"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 150); do
  if curl -fsS "$url/readyz" >/dev/null 2>&1; then break; fi
  kill -0 "$pid" 2>/dev/null || fail "the server exited at start"
  sleep 0.2
done
curl -fsS "$url/readyz" >/dev/null || fail "the server was not ready within 30 s"

# The sign-in cookie of a demo account.
sign_in() {
  curl -fsS -D - -o /dev/null -H 'content-type: application/json' \
    -d "{\"username\": \"$1\", \"password\": \"refdesk-demo\"}" "$url/api/login" |
    tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(refdesk_session=[^;]*\).*/\1/p'
}

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
run() {
  local who="$1"; shift
  echo "schemathesis: as $who (seed $seed, $examples examples per operation, ${SCHEMATHESIS_BACKEND:-sqlite})"
  # From the data folder: schemathesis keeps its example database in the
  # current folder, which must not be the work tree.
  (cd "$dir" && "$venv/bin/st" run "$url/api/openapi.json" --checks "$checks" --max-examples "$examples" \
    --seed "$seed" --workers 1 --request-timeout 30 --no-color --warnings off "$@") ||
    fail "schemathesis found responses that contradict the document, as $who (seed $seed)"
}

# The patron's side, with a chat's token: a chat started as the widget does.
token="$(curl -fsS -H 'content-type: application/json' \
  -d '{"name": "Pat", "question": "Do you have maps of the river?"}' "$url/api/libraries/riverside-main/chats" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"
[ -n "$token" ] || fail "cannot start a chat"
run "a patron" -H "Authorization: Bearer $token" --include-path-regex '^/api/chat'

# Signing out and changing staff members end sign-ins: they run last, alone.
ends_sign_ins=(--exclude-path /api/logout --exclude-path '/api/staff/{id}')
for who in ann erin; do
  cookie="$(sign_in "$who")"
  [ -n "$cookie" ] || fail "cannot sign in as $who"
  run "$who" -H "Cookie: $cookie" "${ends_sign_ins[@]}"
done
for who in ann erin; do
  cookie="$(sign_in "$who")"
  [ -n "$cookie" ] || fail "cannot sign in as $who"
  run "$who (what ends sign-ins)" -H "Cookie: $cookie" --include-path /api/logout --include-path '/api/staff/{id}'
done
kill -0 "$pid" 2>/dev/null || fail "the server died during the run"
echo "schemathesis: no server error, and every answer as the document says"
