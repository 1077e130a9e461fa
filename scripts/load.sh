#!/usr/bin/env bash
# Bounded HTTP load on loopback against a release build of tessera on the
# embedded default: GET /api/auth/verify and POST /api/auth/refresh with wrk,
# plus the server's RSS at idle, during and after. Prints a Markdown summary.
#
#   scripts/load.sh [seconds per run, default 10]
#   MODE=scaled scripts/load.sh 10    # users in PostgreSQL, sessions in Redis
#   TENANTS=0 scripts/load.sh         # skip the run over many tenants' tokens (default 1000 tenants)
#   TESSERA_BIN=/path/to/tessera scripts/load.sh   # measure that binary instead of building one
#
# MODE=scaled uses the local PostgreSQL (a fresh database, dropped at the
# end) and Redis (a fresh key prefix, deleted at the end); override with
# TESSERA_TEST_POSTGRES_URL / TESSERA_TEST_REDIS_URL.
# Needs wrk (apt-get install wrk). Stops everything it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
MODE="${MODE:-embedded}"
THREADS="${WRK_THREADS:-1}"
CONNS="${WRK_CONNECTIONS:-64}"
TENANTS="${TENANTS:-1000}"
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 2; }

if [ -n "${TESSERA_BIN:-}" ]; then
  BIN="$TESSERA_BIN"   # a build to compare, e.g. one from an older commit
else
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
  cargo build --release -q -p tessera-server
  BIN="$CARGO_TARGET_DIR/release/tessera"
fi

WORK=$(mktemp -d)
LOG="$WORK/server.log"
PG_ADMIN="${TESSERA_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS="${TESSERA_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
DBNAME="tessera_load_$$"
PREFIX="tessera-load-$$"
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null
  if [ "$MODE" = scaled ]; then
    sleep 0.5
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" >/dev/null 2>&1 || true
    redis-cli -u "$REDIS" --scan --pattern "$PREFIX*" | xargs -r redis-cli -u "$REDIS" DEL >/dev/null 2>&1 || true
  fi
  [ -n "${NODE_PID:-}" ] && kill "$NODE_PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
JWT_SECRET_VALUE=$("$BIN" keygen | sed -n 's/^JWT_SECRET=//p')
REFRESH_SECRET_VALUE=$("$BIN" keygen | sed -n 's/^REFRESH_TOKEN_SECRET=//p')
if [ "$MODE" = scaled ]; then
  psql -q "$PG_ADMIN" -c "CREATE DATABASE $DBNAME" >/dev/null
  export TESSERA_DATABASE_URL="${PG_ADMIN%/*}/$DBNAME" TESSERA_REDIS_URL="$REDIS" TESSERA_REDIS_KEY_PREFIX="$PREFIX"
  TESSERA_MASTER_KEY=$("$BIN" keygen | sed -n 's/^TESSERA_MASTER_KEY=//p')
  export TESSERA_MASTER_KEY
fi
# Rate limits off (unless asked for): from one address, the per-client and
# per-account limits would answer most of the login run with 429, and it
# measures hashing, not the limiter.
JWT_SECRET="$JWT_SECRET_VALUE" REFRESH_TOKEN_SECRET="$REFRESH_SECRET_VALUE" TESSERA_PUBLIC_URL="http://tessera.test" \
  TESSERA_RATE_LIMITS="${TESSERA_RATE_LIMITS:-off}" \
  TESSERA_DATA_DIR="$WORK/data" TESSERA_BIND="127.0.0.1:$PORT" TESSERA_LOG=warn "$BIN" serve 2>"$LOG" &
PID=$!
for _ in $(seq 1 100); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.1; done

rss() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$PID/status"; }
hwm() { awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$PID/status"; }
sleep 1
IDLE_RSS=$(rss)

json() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
ACCESS=$(curl -sf "$URL/api/auth/register" -H 'content-type: application/json' \
  -d '{"email":"load@example.com","password":"correct horse battery","firstName":"Load","lastName":"Test"}' | json accessToken)

# One session per connection, each refreshed in a chain.
: >"$WORK/tokens"
for _ in $(seq 1 "$CONNS"); do
  curl -sf "$URL/api/auth/login" -H 'content-type: application/json' \
    -d '{"email":"load@example.com","password":"correct horse battery"}' | json refreshToken >>"$WORK/tokens"
done
AFTER_LOGIN_RSS=$(rss)

summarize() { # name, wrk output file
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {print $2}' "$2")
  p50=$(awk '$1=="50%" {print $2}' "$2")
  p99=$(awk '$1=="99%" {print $2}' "$2")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$2")
  printf '| %s | %s | %s | %s | %s | %s MB |\n' "$1" "$rps" "$p50" "$p99" "${non2xx:-0}" "$(rss)"
}

wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "Authorization: Bearer $ACCESS" \
  "$URL/api/auth/verify" >"$WORK/verify.txt"
VERIFY=$(summarize "GET /api/auth/verify" "$WORK/verify.txt")

wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s scripts/refresh.lua \
  "$URL" -- "$WORK/tokens" "$THREADS" >"$WORK/refresh.txt"
REFRESH=$(summarize "POST /api/auth/refresh" "$WORK/refresh.txt")
REFRESH_FAILURES=$(awk '/refresh failures/ {print $3}' "$WORK/refresh.txt")

# Tokens spread over many tenants: one owner per tenant (signup), then
# verify round-robin over their tokens; the same script over copies of one
# default-tenant token is the comparison with the same client-side cost.
SPREAD=""
if [ "$TENANTS" -gt 0 ]; then
  mkdir -p "$WORK/signups"
  seq 1 "$TENANTS" | xargs -P 8 -I{} curl -sf -o "$WORK/signups/{}.json" "$URL/api/auth/signup" \
    -H 'content-type: application/json' \
    -d '{"email":"owner{}@example.com","password":"correct horse battery","firstName":"Owner","lastName":"","tenantName":"Load Tenant {}"}'
  python3 -c 'import json,sys,glob; [print(json.load(open(f))["accessToken"]) for f in glob.glob(sys.argv[1] + "/*.json")]' \
    "$WORK/signups" >"$WORK/tenant-tokens"
  for _ in $(seq 1 "$(wc -l <"$WORK/tenant-tokens")"); do echo "$ACCESS"; done >"$WORK/default-tokens"
  AFTER_TENANTS_RSS=$(rss)
  wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s scripts/verify-spread.lua \
    "$URL" -- "$WORK/default-tokens" >"$WORK/spread-default.txt"
  SPREAD_DEFAULT=$(summarize "GET /api/auth/verify, one default-tenant token (via verify-spread.lua)" "$WORK/spread-default.txt")
  wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s scripts/verify-spread.lua \
    "$URL" -- "$WORK/tenant-tokens" >"$WORK/spread.txt"
  SPREAD=$(summarize "GET /api/auth/verify, tokens of $(wc -l <"$WORK/tenant-tokens") tenants round robin" "$WORK/spread.txt")
fi

# Logins are Argon2id-bound (19 MiB, t=2 per attempt) by design.
wrk -t"$THREADS" -c16 -d"${DURATION}s" --latency -s scripts/login.lua "$URL/api/auth/login" >"$WORK/login.txt"
LOGIN=$(summarize "POST /api/auth/login (16 connections)" "$WORK/login.txt")

# Baseline in the same run: the design notes' Express + jsonwebtoken check of
# the same token (skipped when node/npm are missing or the install fails).
BASELINE=""
if command -v node >/dev/null && command -v npm >/dev/null; then
  NODE_DIR="${TESSERA_BASELINE_DIR:-$HOME/.cache/tessera-baseline}"
  mkdir -p "$NODE_DIR"
  cp scripts/baseline/package.json scripts/baseline/verify-express.js "$NODE_DIR/"
  if (cd "$NODE_DIR" && npm install --silent --no-audit --no-fund >/dev/null 2>&1); then
    NODE_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    JWT_SECRET="$JWT_SECRET_VALUE" ISSUER="http://tessera.test" PORT="$NODE_PORT" node "$NODE_DIR/verify-express.js" &
    NODE_PID=$!
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$NODE_PORT/api/auth/verify" && break; sleep 0.1; done
    if [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ACCESS" "http://127.0.0.1:$NODE_PORT/api/auth/verify")" = 200 ]; then
      wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "Authorization: Bearer $ACCESS" \
        "http://127.0.0.1:$NODE_PORT/api/auth/verify" >"$WORK/node.txt"
      BASELINE=$(summarize "baseline: Express + jsonwebtoken, GET /api/auth/verify" "$WORK/node.txt" | sed "s/| [0-9.]* MB |$/| $(awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$NODE_PID/status") MB (node) |/")
    fi
    kill "$NODE_PID" 2>/dev/null; NODE_PID=""
  fi
fi

sleep 2
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs)"
echo "command: MODE=$MODE scripts/load.sh $DURATION (wrk -t$THREADS -c$CONNS -d${DURATION}s, same machine as the server)"
echo
echo "| route | requests/s | p50 | p99 | non-2xx | server RSS after run |"
echo "| --- | --- | --- | --- | --- | --- |"
echo "$VERIFY"
echo "$REFRESH"
echo "$LOGIN"
[ -n "$SPREAD" ] && echo "$SPREAD_DEFAULT" && echo "$SPREAD"
[ -n "$BASELINE" ] && echo "$BASELINE"
echo
echo "refresh chains broken (non-200 refreshes): ${REFRESH_FAILURES:-unknown}"
echo "server RSS: idle after start ${IDLE_RSS} MB; after $CONNS logins ${AFTER_LOGIN_RSS} MB;${AFTER_TENANTS_RSS:+ after $TENANTS signups ${AFTER_TENANTS_RSS} MB;} after load $(rss) MB; peak $(hwm) MB"
