#!/usr/bin/env bash
# Bounded HTTP load on loopback: GET /api/auth/verify with an access token of
# each signing algorithm (one tenant per algorithm, made through signup), and
# GET of a tenant's JWKS, on a release build of tessera on the embedded
# default. Prints a Markdown table.
#
#   scripts/load-algorithms.sh [seconds per run, default 10]
#
# Needs wrk (apt-get install wrk). Stops everything it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
THREADS="${WRK_THREADS:-1}"
CONNS="${WRK_CONNECTIONS:-64}"
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 2; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p tessera-server
BIN="$CARGO_TARGET_DIR/release/tessera"

WORK=$(mktemp -d)
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
TESSERA_PUBLIC_URL="http://tessera.test" TESSERA_DATA_DIR="$WORK/data" TESSERA_BIND="127.0.0.1:$PORT" \
  TESSERA_LOG=warn "$BIN" serve 2>"$WORK/server.log" &
PID=$!
for _ in $(seq 1 100); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.1; done

echo "| request | algorithm | requests/s | p99 latency |"
echo "| --- | --- | --- | --- |"
for ALG in HS256 EdDSA ES256 RS256; do
  BODY=$(curl -sf "$URL/api/auth/signup" -H 'content-type: application/json' \
    -d "{\"email\":\"load-$ALG@example.com\",\"password\":\"correct horse battery\",\"firstName\":\"Load\",\"lastName\":\"Test\",\"tenantName\":\"Load $ALG\",\"signingAlg\":\"$ALG\"}")
  TOKEN=$(printf '%s' "$BODY" | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
  SLUG=$(printf '%s' "$BODY" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tenant"]["slug"])')
  curl -sf "$URL/api/auth/verify" -H "authorization: Bearer $TOKEN" >/dev/null
  OUT=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "authorization: Bearer $TOKEN" "$URL/api/auth/verify")
  RPS=$(printf '%s\n' "$OUT" | awk '/Requests\/sec/ {print $2}')
  P99=$(printf '%s\n' "$OUT" | awk '$1 == "99%" {print $2}')
  NON2XX=$(printf '%s\n' "$OUT" | awk '/Non-2xx/ {print $NF}')
  [ -z "$NON2XX" ] || { echo "verify $ALG: $NON2XX non-2xx answers" >&2; exit 1; }
  echo "| GET /api/auth/verify | $ALG | $RPS | $P99 |"
  if [ "$ALG" = EdDSA ]; then
    OUT=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$URL/api/tenants/$SLUG/.well-known/jwks.json")
    echo "| GET .../.well-known/jwks.json | EdDSA | $(printf '%s\n' "$OUT" | awk '/Requests\/sec/ {print $2}') | $(printf '%s\n' "$OUT" | awk '$1 == "99%" {print $2}') |"
  fi
done
