#!/usr/bin/env bash
# Checks the README's nginx `auth_request` snippet end to end on loopback:
# nginx in front of a toy upstream, asking tessera's /api/auth/verify about
# every request. Needs nginx (apt-get install nginx-light) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nginx >/dev/null || { echo "nginx is not installed: apt-get install nginx-light" >&2; exit 2; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p tessera-server
BIN="$CARGO_TARGET_DIR/release/tessera"
WORK=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TESSERA_PORT=$(free_port); UPSTREAM_PORT=$(free_port); NGINX_PORT=$(free_port)
cleanup() { kill "${TPID:-}" "${UPID:-}" 2>/dev/null; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

TESSERA_DATA_DIR="$WORK/data" TESSERA_BIND="127.0.0.1:$TESSERA_PORT" TESSERA_LOG=warn "$BIN" serve 2>"$WORK/tessera.log" &
TPID=$!

# The upstream answers with the identity nginx passed on.
cat >"$WORK/upstream.py" <<'PY'
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path, "user": self.headers.get("X-User-Id"), "role": self.headers.get("X-User-Role")}).encode()
        self.send_response(200); self.send_header("content-type", "application/json"); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$WORK/upstream.py" "$UPSTREAM_PORT" &
UPID=$!

mkdir -p "$WORK/nginx/logs"
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fcgi; uwsgi_temp_path $WORK/nginx/uwsgi; scgi_temp_path $WORK/nginx/scgi;
  server {
    listen 127.0.0.1:$NGINX_PORT;

    # --- the README's snippet, with its ports ---
    location = /_tessera_verify {
        internal;
        proxy_pass              http://127.0.0.1:$TESSERA_PORT/api/auth/verify;
        proxy_pass_request_body off;
        proxy_set_header        Content-Length "";
        proxy_set_header        Authorization \$http_authorization;
    }

    location /api/projects/ {
        auth_request     /_tessera_verify;
        auth_request_set \$tessera_user \$upstream_http_x_auth_user_id;
        auth_request_set \$tessera_role \$upstream_http_x_auth_user_role;
        proxy_set_header X-User-Id     \$tessera_user;
        proxy_set_header X-User-Role   \$tessera_role;
        proxy_pass       http://127.0.0.1:$UPSTREAM_PORT;
    }
    # --- end of the snippet ---
  }
}
CONF
nginx -c "$WORK/nginx.conf" -p "$WORK/nginx"
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$TESSERA_PORT/healthz" >/dev/null && break; sleep 0.1; done

json() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
REG=$(curl -sf "http://127.0.0.1:$TESSERA_PORT/api/auth/register" -H 'content-type: application/json' \
  -d '{"email":"nginx@example.com","password":"correct horse battery","firstName":"N","lastName":"X"}')
ACCESS=$(echo "$REG" | json accessToken)
USER_ID=$(echo "$REG" | python3 -c 'import json,sys; print(json.load(sys.stdin)["user"]["id"])')

fail=0
check() { # name, expected, actual
  if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: expected $2, got $3"; fail=1; fi
}
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
URL="http://127.0.0.1:$NGINX_PORT/api/projects/42"
check "no token is refused by nginx" 401 "$(code "$URL")"
check "a bad token is refused by nginx" 401 "$(code -H 'Authorization: Bearer not.a.token' "$URL")"
check "a valid token passes" 200 "$(code -H "Authorization: Bearer $ACCESS" "$URL")"
SEEN=$(curl -s -H "Authorization: Bearer $ACCESS" -H "X-User-Id: someone-else" "$URL")
check "the upstream sees the verified user id, not the client's" "$USER_ID" "$(echo "$SEEN" | json user)"
check "the upstream sees the role" user "$(echo "$SEEN" | json role)"
SPOOF=$(curl -s -o /dev/null -w '%{http_code}' -H "X-User-Id: $USER_ID" "$URL")
check "a spoofed X-User-Id without a token is refused" 401 "$SPOOF"
exit $fail
