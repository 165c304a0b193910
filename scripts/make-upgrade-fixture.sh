#!/usr/bin/env bash
# Makes the upgrade fixtures (issue 16): a database written by a released
# refdesk, with a known history in it, that the upgrade tests open with
# this refdesk (crates/store/tests/upgrade.rs). Run it with the binary of
# the release to keep, once per release:
#
#   scripts/make-upgrade-fixture.sh OLD_BIN NAME
#
# It runs OLD_BIN on the demo data, on SQLite and on a fresh PostgreSQL
# database (127.0.0.1:5432), drives the same history through the REST API
# (see `history` below: the test's expectations follow it), stops the
# server cleanly and writes crates/store/tests/fixtures/NAME.sqlite3 and
# NAME.pg.sql (a plain pg_dump).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "$1")
name=$2
out=crates/store/tests/fixtures
mkdir -p "$out"
port=18977
url="http://127.0.0.1:$port"
server=postgres://postgres@127.0.0.1:5432
tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# curl as someone: $1 is a cookie jar (staff) or "patron:TOKEN".
call() {
  local who=$1 method=$2 path=$3 body=${4:-}
  local auth=()
  case "$who" in
    patron:*) auth=(-H "Authorization: Bearer ${who#patron:}") ;;
    -) ;;
    *) auth=(-b "$tmp/$who.jar" -c "$tmp/$who.jar") ;;
  esac
  local data=()
  [ -n "$body" ] && data=(-H 'Content-Type: application/json' --data "$body")
  curl -sf -X "$method" "${auth[@]}" "${data[@]}" "$url$path"
}
login() { call "$1" POST /api/login "{\"username\":\"$1\",\"password\":\"refdesk-demo\"}" >/dev/null; }
start() { call - POST "/api/libraries/$1/chats" "$2"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

# The history the test expects (crates/store/tests/upgrade.rs):
# 1. served: Pat at riverside-main, ann accepts, 3 messages and a note,
#    code "answered", rated 4 "thanks", ended by the patron.
# 2. abandoned: a patron at riverside-main ends before anyone accepts.
# 3. transferred: lakeside-public, ben accepts, transfers to the
#    cooperative's queue, ann accepts, code "practice", ended by ann.
# 4. conferenced: riverside-main, ann accepts, erin monitors and leaves,
#    code "follow_up_by_me", ended by ann.
# 5. an offline form at riverside-law.
history() {
  for u in ann ben erin; do login "$u"; call "$u" POST /api/me/availability '{"availability":"on_duty"}' >/dev/null; done
  local s t
  s=$(start riverside-main '{"name":"Pat Upgrade","email":"pat@example.org","question":"Where are the maps?"}')
  t=$(echo "$s" | field token); s=$(echo "$s" | field session)
  call ann POST "/api/sessions/$s/accept" >/dev/null
  for m in "Hello Pat" "The maps are on floor 2" "Anything else?"; do
    call ann POST "/api/sessions/$s/messages" "{\"body\":\"$m\"}" >/dev/null
  done
  call ann POST "/api/sessions/$s/messages" '{"kind":"note","body":"regular patron"}' >/dev/null
  call ann POST "/api/sessions/$s/code" '{"code":"answered"}' >/dev/null
  call "patron:$t" POST /api/chat/end >/dev/null
  call "patron:$t" POST /api/chat/rating '{"rating":4,"comment":"thanks"}' >/dev/null

  s=$(start riverside-main '{"question":"Anyone there?"}')
  call "patron:$(echo "$s" | field token)" POST /api/chat/end >/dev/null

  s=$(start lakeside-public '{"name":"Lee","question":"Opening hours?"}')
  s=$(echo "$s" | field session)
  call ben POST "/api/sessions/$s/accept" >/dev/null
  call ben POST "/api/sessions/$s/transfer" '{"cooperative":true}' >/dev/null
  call ann POST "/api/sessions/$s/accept" >/dev/null
  call ann POST "/api/sessions/$s/code" '{"code":"practice"}' >/dev/null
  call ann POST "/api/sessions/$s/end" >/dev/null

  s=$(start riverside-main '{"question":"Can I renew?"}')
  s=$(echo "$s" | field session)
  call ann POST "/api/sessions/$s/accept" >/dev/null
  call erin POST "/api/sessions/$s/conference" '{"mode":"monitor"}' >/dev/null
  call erin POST "/api/sessions/$s/leave" >/dev/null
  call ann POST "/api/sessions/$s/code" '{"code":"follow_up_by_me"}' >/dev/null
  call ann POST "/api/sessions/$s/end" >/dev/null

  call - POST /api/libraries/riverside-law/questions '{"email":"form@example.org","question":"Send me the form"}' >/dev/null
}

# Runs the old server on the given backend, makes the history, stops it.
run() {
  "$bin" --data-dir "$tmp/data" "$@" serve --demo --listen "127.0.0.1:$port" >"$tmp/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.1; done
  history
  kill -TERM "$pid"; wait "$pid" || true; pid=""
}

run
cp "$tmp/data/refdesk.sqlite3" "$out/$name.sqlite3"
rm -rf "$tmp/data" "$tmp"/*.jar

db="refdesk_fixture_$$"
psql "$server/postgres" -qc "CREATE DATABASE $db"
run --database-url "$server/$db"
pg_dump --no-owner --no-privileges "$server/$db" | grep -v '^\\\(un\)\?restrict ' >"$out/$name.pg.sql"
psql "$server/postgres" -qc "DROP DATABASE $db"
echo "wrote $out/$name.sqlite3 and $out/$name.pg.sql"
