#!/usr/bin/env bash
# Bounded HTTP load on loopback: GET /api/auth/verify with the revocation
# check off, on with nothing revoked, and on with REVOKED sessions revoked
# (loaded from the store at start), each on a release build of tessera on
# the embedded default, run in turns within one run (ROUNDS times each) so
# they see the same machine. Prints a Markdown table and the load average.
#
#   scripts/load-revocation.sh [seconds per run, default 10]
#   REVOKED=10000 ROUNDS=3 scripts/load-revocation.sh 8
#
# Needs wrk (apt-get install wrk) and python3. Stops everything it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
THREADS="${WRK_THREADS:-1}"
CONNS="${WRK_CONNECTIONS:-64}"
REVOKED="${REVOKED:-1000000}"
ROUNDS="${ROUNDS:-2}"
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 2; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p tessera-server
BIN="$CARGO_TARGET_DIR/release/tessera"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

# name, TESSERA_REVOCATION_CHECK, sessions to revoke beforehand
start() {
  local name=$1 check=$2 revoked=$3 port
  port=$(free_port)
  mkdir -p "$WORK/$name"
  TESSERA_DATA_DIR="$WORK/$name" TESSERA_LOG=warn "$BIN" migrate >/dev/null
  if [ "$revoked" -gt 0 ]; then
    # Revoked sessions as the server records them, still live for an hour.
    python3 - "$WORK/$name/tessera.db" "$revoked" <<'PY'
import sqlite3, sys, time, uuid
db = sqlite3.connect(sys.argv[1])
until = int(time.time()) + 3600
now_ms = int(time.time() * 1000)
db.executemany("INSERT INTO revoked_sessions (session_id, expires_at, revoked_at) VALUES (?, ?, ?)",
               ((str(uuid.uuid4()), until, now_ms) for _ in range(int(sys.argv[2]))))
db.commit()
PY
  fi
  TESSERA_PUBLIC_URL="http://tessera.test" TESSERA_DATA_DIR="$WORK/$name" TESSERA_BIND="127.0.0.1:$port" \
    TESSERA_REVOCATION_CHECK="$check" TESSERA_LOG=warn "$BIN" serve 2>"$WORK/$name.log" &
  PIDS+=($!)
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  local token
  token=$(curl -sf "http://127.0.0.1:$port/api/auth/register" -H 'content-type: application/json' \
    -d '{"email":"load@example.com","password":"correct horse battery","firstName":"Load","lastName":"Test"}' | json accessToken)
  curl -sf "http://127.0.0.1:$port/api/auth/verify" -H "authorization: Bearer $token" >/dev/null
  echo "$port $token $!" >"$WORK/$name.target"
}

start off off 0
start on-empty on 0
start on-revoked on "$REVOKED"

rss() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

echo "date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs)"
echo "command: REVOKED=$REVOKED ROUNDS=$ROUNDS scripts/load-revocation.sh $DURATION (wrk -t$THREADS -c$CONNS -d${DURATION}s, same machine as the servers)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| round | TESSERA_REVOCATION_CHECK | revoked sessions in memory | requests/s | p50 | p99 | server RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for round in $(seq 1 "$ROUNDS"); do
  for name in off on-empty on-revoked; do
    read -r port token pid <"$WORK/$name.target"
    OUT=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "authorization: Bearer $token" \
      "http://127.0.0.1:$port/api/auth/verify")
    NON2XX=$(printf '%s\n' "$OUT" | awk '/Non-2xx/ {print $NF}')
    [ -z "$NON2XX" ] || { echo "$name: $NON2XX non-2xx answers" >&2; exit 1; }
    case $name in off) check=off; n=0 ;; on-empty) check=on; n=0 ;; *) check=on; n=$REVOKED ;; esac
    echo "| $round | $check | $n | $(printf '%s\n' "$OUT" | awk '/Requests\/sec/ {print $2}') | $(printf '%s\n' "$OUT" | awk '$1 == "50%" {print $2}') | $(printf '%s\n' "$OUT" | awk '$1 == "99%" {print $2}') | $(rss "$pid") MB |"
  done
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
