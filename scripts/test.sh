#!/usr/bin/env bash
# Runs every test layer of refdesk. First makes sure what the tests need is
# installed and running, so that a fresh machine with only the Rust
# toolchain can run it. `.ci/run` calls this script.
#
# Layers: formatting and lints; domain unit and property tests; store tests
# (the storage contract on SQLite and on PostgreSQL); the multi-node test
# (three `refdesk serve` processes sharing PostgreSQL and NATS);
# integration tests against the real server (real SQLite file, real
# WebSockets, a real SMTP server) including the property test over random
# action sequences, then the same suite on PostgreSQL + NATS; the abuse
# layer (crates/refdesk/tests/abuse: one attack per test against the real
# binary, see docs/security.md); end-to-end tests in headless Chromium with axe-core; schemathesis against
# the OpenAPI document the server generates (scripts/schemathesis.sh); the soak (scripts/soak.sh: two
# minutes of steady load on a release build, then a crash with a large log).
set -euo pipefail
# /dev/null must be the null device. On this machine it was once a regular
# file (something had removed it, and the next `> /dev/null` made a file):
# what one process threw away, the next read back, and cargo's probe of the
# compiler (`rustc -`, its program on stdin) read another build's compiler
# errors and failed ("failed to run `rustc` to learn about target-specific
# information"). Made again if so (as root, as the rest of this script).
if [ ! -c /dev/null ]; then
  echo "== /dev/null is not the null device; making it again" >&2
  rm -f /dev/null && mknod -m 666 /dev/null c 1 3
fi
# Nothing here reads the terminal.
exec </dev/null
cd "$(dirname "$0")/.."

say() { printf '\n== %s (at %d s)\n' "$*" "$SECONDS"; }

# Debian packages; the package lists are fetched once first (on a fresh
# machine they may be empty).
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    apt-get update -q >/dev/null
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

# --- what the tests need ------------------------------------------------------
# PostgreSQL and NATS back the scale-out layers: the PostgreSQL store's
# tests, the multi-node test and the API suite's second run. The tests that
# need them fail (never skip) when they are missing.
ensure_postgres() {
  if command -v pg_isready >/dev/null && pg_isready -h 127.0.0.1 -p 5432 -q; then return; fi
  say "starting PostgreSQL"
  if ! command -v pg_ctlcluster >/dev/null; then
    apt_install postgresql
  fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 50); do pg_isready -h 127.0.0.1 -p 5432 -q && return; sleep 0.2; done
  echo "PostgreSQL did not start" >&2; exit 1
}

ensure_nats() {
  # The binary too: the multi-node test runs a NATS server of its own, to restart it.
  if ! command -v nats-server >/dev/null && [ ! -x /usr/sbin/nats-server ]; then
    say "installing NATS"
    apt_install nats-server
  fi
  if (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then return; fi
  say "starting NATS"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && return; sleep 0.2; done
  echo "NATS did not start" >&2; exit 1
}

# TLS as in production: a PostgreSQL of its own that accepts TLS connections
# only (like a managed database) and a NATS server that requires TLS and a
# password, both with certificates from a test CA made here. They live in
# $tls_dir and later runs reuse them. The tests that use them
# (crates/store/tests/contract/, crates/app/tests/nats_tls.rs) fail, never
# skip, when they are missing.
tls_dir=/tmp/refdesk-test-tls
export REFDESK_TEST_POSTGRES_TLS="postgres://postgres@localhost:5433/postgres?sslmode=verify-full&sslrootcert=$tls_dir/ca.pem"
export REFDESK_TEST_NATS_TLS_URL="tls://refdesk:refdesk-test-password@localhost:4223"
export REFDESK_TEST_NATS_CA="$tls_dir/ca.pem"

# A CA, and a certificate it signs for localhost and 127.0.0.1.
ensure_test_ca() {
  if [ -s "$tls_dir/ca.pem" ] && [ -s "$tls_dir/server.pem" ] && [ -s "$tls_dir/server.key" ]; then return; fi
  command -v openssl >/dev/null || apt_install openssl
  say "making a test CA and a certificate for localhost"
  mkdir -p "$tls_dir"
  (
    umask 077
    cd "$tls_dir"
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 3650 \
      -subj "/CN=refdesk test CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj "/CN=localhost" \
      -keyout server.key -out server.csr 2>/dev/null
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
      -extfile server.ext -out server.pem 2>/dev/null
    chmod 644 ca.pem server.pem
  )
}

# PostgreSQL on localhost:5433 with a data folder of its own and ssl = on;
# its pg_hba.conf takes hostssl only and rejects hostnossl.
ensure_postgres_tls() {
  ensure_test_ca
  if ! pg_isready -h localhost -p 5433 -q; then
    say "starting the TLS-only PostgreSQL on localhost:5433"
    local bin data="$tls_dir/pg"
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    if [ ! -s "$data/PG_VERSION" ]; then
      rm -rf "$data"
      install -d -o postgres -g postgres -m 700 "$data"
      # initdb refuses to run as root.
      runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
      cat >>"$data/postgresql.conf" <<EOF
port = 5433
listen_addresses = 'localhost'
unix_socket_directories = ''
shared_buffers = 32MB
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
EOF
      cat >"$data/pg_hba.conf" <<EOF
# TLS only, as a managed PostgreSQL: a plain connection is refused.
hostssl   all all 127.0.0.1/32 trust
hostssl   all all ::1/128      trust
hostnossl all all 0.0.0.0/0    reject
hostnossl all all ::/0         reject
EOF
    fi
    # The certificate from the CA in $tls_dir (it may be newer than the data folder).
    install -o postgres -g postgres -m 600 "$tls_dir/server.key" "$data/server.key"
    install -o postgres -g postgres -m 644 "$tls_dir/server.pem" "$data/server.crt"
    touch "$tls_dir/postgres.log" && chown postgres:postgres "$tls_dir/postgres.log"
    runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$tls_dir/postgres.log" -w -t 30 start >/dev/null ||
      { echo "the TLS PostgreSQL did not start; see $tls_dir/postgres.log" >&2; exit 1; }
  fi
  # The databases of earlier runs.
  psql "$REFDESK_TEST_POSTGRES_TLS" -Atqc "SELECT datname FROM pg_database WHERE datname ~ '^refdesk_contract_'" |
    while read -r db; do psql "$REFDESK_TEST_POSTGRES_TLS" -qc "DROP DATABASE IF EXISTS \"$db\"" || true; done
}

# NATS on 127.0.0.1:4223, requiring TLS and a user and password.
ensure_nats_tls() {
  ensure_test_ca
  if (exec 3<>/dev/tcp/127.0.0.1/4223) 2>/dev/null; then return; fi
  say "starting NATS with TLS and a password on localhost:4223"
  cat >"$tls_dir/nats.conf" <<EOF
listen: "127.0.0.1:4223"
tls {
  cert_file: "$tls_dir/server.pem"
  key_file: "$tls_dir/server.key"
  timeout: 5
}
authorization {
  user: refdesk
  password: "refdesk-test-password"
}
EOF
  # A pid file of its own: the NATS on 4222 is the same binary.
  start-stop-daemon --start --background --make-pidfile --pidfile "$tls_dir/nats.pid" \
    --exec /usr/sbin/nats-server -- -c "$tls_dir/nats.conf" -l "$tls_dir/nats.log"
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/4223) 2>/dev/null && return; sleep 0.2; done
  echo "the TLS NATS did not start; see $tls_dir/nats.log" >&2; exit 1
}

# A real SMTP server for the e-mail tests: Python's aiosmtpd.
ensure_aiosmtpd() {
  if python3 -c 'import aiosmtpd' 2>/dev/null; then return; fi
  say "installing aiosmtpd (the SMTP server the e-mail tests run)"
  if ! command -v python3 >/dev/null; then apt_install python3 python3-pip; fi
  python3 -m pip install --quiet aiosmtpd || python3 -m pip install --quiet --break-system-packages aiosmtpd
  python3 -c 'import aiosmtpd'
}

# A real browser for the end-to-end tests: Debian's Chromium, driven by
# playwright-core (npm is used for the browser tests only).
ensure_browser() {
  if [ ! -x /usr/bin/chromium ]; then
    say "installing Chromium (browser tests)"
    apt_install chromium
  fi
  if ! command -v npm >/dev/null; then
    say "installing Node.js and npm (browser tests)"
    apt_install nodejs npm
  fi
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
}

# The cross-site browser test (tests/browser/crosssite.test.mjs) runs an nginx
# of its own in front of refdesk, with certificates it makes with openssl
# from a test CA that Chromium trusts through an NSS database (certutil). Only
# the programs are needed: the test never uses the packaged nginx service, and
# this script does not start it.
ensure_nginx() {
  local missing=()
  [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v certutil >/dev/null || missing+=(libnss3-tools)
  command -v openssl >/dev/null || missing+=(openssl)
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]} (the cross-site browser test)"
    apt_install "${missing[@]}"
  fi
}

# Each test run makes its own databases (refdesk_<suite>_<pid>_<time>);
# those of earlier runs are dropped here.
drop_old_test_databases() {
  psql -h 127.0.0.1 -U postgres -d postgres -Atqc \
    "SELECT datname FROM pg_database WHERE datname ~ '^refdesk_(contract|twostores|multinode|api|abuse|answers|append|check|longreads)_'" |
    while read -r db; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\"" || true; done
}

# schemathesis runs from a venv of its own (scripts/schemathesis.sh installs
# it there, pinned); Debian's Python needs python3-venv for that.
ensure_venv() {
  if python3 -c 'import venv, ensurepip' 2>/dev/null; then return; fi
  say "installing python3-venv (schemathesis runs in a venv)"
  apt_install python3-venv
}

# The soak and schemathesis scripts talk to the server with curl.
ensure_curl() {
  if command -v curl >/dev/null; then return; fi
  apt_install curl
}

# The privacy tests read the whole database with each backend's own dump
# tool, to show that no patron's name or address is left anywhere.
ensure_dump_tools() {
  command -v sqlite3 >/dev/null || apt_install sqlite3
  command -v pg_dump >/dev/null || apt_install postgresql-client
}

ensure_curl
ensure_dump_tools
ensure_postgres
drop_old_test_databases
ensure_postgres_tls
ensure_nats
ensure_nats_tls
ensure_aiosmtpd
ensure_venv
ensure_browser
ensure_nginx

# --- the layers -----------------------------------------------------------------
say "format"
cargo fmt --all -- --check

say "lints"
cargo clippy --workspace --all-targets --quiet -- -D warnings

st_sqlite=""
st_postgres=""
release_build=""
stop_background() {
  # The schemathesis runs, if this script ends during them: each stops its
  # server and drops its database as it ends.
  for pid in $st_sqlite $st_postgres $release_build; do kill "$pid" 2>/dev/null || true; done
  for pid in $st_sqlite $st_postgres $release_build; do wait "$pid" 2>/dev/null || true; done
}
trap stop_background EXIT

say "domain: unit and property tests (every rule of DESIGN.md); the C library's trim (crates/memory)"
cargo test -p refdesk-domain -p refdesk-memory --quiet

say "store (the contract on SQLite and PostgreSQL), app, configuration, and three nodes on PostgreSQL + NATS"
cargo test -p refdesk-store -p refdesk-app --quiet
cargo test -p refdesk --bins --test first_run --test backup --test config --test multinode --test logs --test code_shape --test bench --quiet
cargo test -p refdesk-server --lib --quiet

# Four tests at a time, not one per core: each spends most of its time
# waiting (on fsync, on its server's timers, on PostgreSQL), and two at a
# time left a core idle (102 s against 58 s on SQLite, 142 s against 97 s on
# PostgreSQL, on the 2-core machine).
api_threads=(-- "--test-threads=${RUST_TEST_THREADS:-4}")

say "integration: the real server over HTTP, WebSockets and SMTP"
cargo test -p refdesk-server --test api --quiet "${api_threads[@]}"

say "integration again, on PostgreSQL + NATS (a fresh database per server)"
REFDESK_TEST_BACKEND=postgres cargo test -p refdesk-server --test api --quiet "${api_threads[@]}"

say "abuse: one attack per test against the real refdesk binary, legitimate users served during each (docs/security.md)"
cargo test -p refdesk --test abuse --quiet

say "browser: end-to-end in headless Chromium, with axe-core on every page"
cargo build -p refdesk --quiet
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/refdesk"
# The soak's release build, beside the browser tests and schemathesis (no
# other cargo runs from here on), at the lowest priority: they wait on the
# browser and the server far more than they compute. It was kept apart for
# a while, suspected for cargo's probe failures that a broken /dev/null
# turned out to cause (above). What it printed is shown once it is done
# (nothing, when it went well).
release_log="$(mktemp /tmp/refdesk-release-build.XXXXXX)"
nice -n 19 cargo build --release -p refdesk --quiet >"$release_log" 2>&1 &
release_build=$!
(cd tests/browser && REFDESK_BIN="$bin" npm test --silent)

say "schemathesis: the API against the OpenAPI document it generates, as a librarian, a cooperative admin and a patron, on SQLite then PostgreSQL (no server error; statuses, content types and bodies as documented)"
# The two at once, each on a port and a data folder of its own: each is one
# Python process, on a core of its own; each one's output is shown whole
# once it is done.
st_logs="$(mktemp -d /tmp/refdesk-schemathesis-logs.XXXXXX)"
SCHEMATHESIS_PORT=18941 scripts/schemathesis.sh "$bin" >"$st_logs/sqlite" 2>&1 &
st_sqlite=$!
SCHEMATHESIS_PORT=18942 SCHEMATHESIS_BACKEND=postgres scripts/schemathesis.sh "$bin" >"$st_logs/postgres" 2>&1 &
st_postgres=$!
st_failed=""
wait "$st_sqlite" || st_failed=1
wait "$st_postgres" || st_failed=1
st_sqlite=""
st_postgres=""
cat "$st_logs/sqlite" "$st_logs/postgres"
rm -rf "$st_logs"
[ -z "$st_failed" ] || { echo "schemathesis failed (above)" >&2; exit 1; }

say "soak: 1,000 msg/s on SQLite for two minutes; the WAL, memory and open files stay bounded (release build)"
release_failed=""
wait "$release_build" || release_failed=1
release_build=""
cat "$release_log"
rm -f "$release_log"
[ -z "$release_failed" ] || { echo "the release build failed (above)" >&2; exit 1; }
scripts/soak.sh 120 500 1

say "all layers passed"
