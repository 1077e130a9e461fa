#!/usr/bin/env python3
"""Second-order timing of forgot-password: does the work tessera does in the
background for a known email slow the caller's next request?

Starts a release build on the embedded default (a temporary data directory),
registers N accounts, then sends N forgot-password requests for known emails
and N for unknown ones, shuffled, each followed on the same keep-alive
connection by GET /api/auth/sessions (a request that reads the store). Prints
the medians of that follow-up for known and unknown emails and a Mann-Whitney
z (|z| > 2 tells the two apart).

    scripts/forgot-timing.py [path/to/tessera] [N, default 300]

Requests come from 127.0.10.x / 127.0.11.x source addresses (Linux routes
all of 127/8 to loopback) so the per-client limit (100 a minute) is not hit;
each email gets one forgot request, well inside its 3 an hour.
"""
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/tessera"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 300
PASSWORD = "correct horse battery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    """One keep-alive HTTP/1.1 connection from a chosen source address."""

    def __init__(self, port, source):
        self.sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request(self, method, path, body=None, token=None):
        payload = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: tessera\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        started = time.perf_counter()
        self.sock.sendall(head.encode() + b"\r\n" + payload)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(rest) < length:
            rest += self.sock.recv(65536)
        status = int(head.split(b" ")[1])
        return time.perf_counter() - started, status, rest

    def close(self):
        self.sock.close()


def mann_whitney_z(a, b):
    ranked = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    rank_sum = sum(i + 1 for i, (_, group) in enumerate(ranked) if group == 0)
    n1, n2 = len(a), len(b)
    u = rank_sum - n1 * (n1 + 1) / 2
    return (u - n1 * n2 / 2) / ((n1 * n2 * (n1 + n2 + 1) / 12) ** 0.5)


def main():
    port = free_port()
    data = tempfile.mkdtemp(prefix="tessera-timing-")
    env = dict(os.environ, TESSERA_DATA_DIR=data, TESSERA_BIND=f"127.0.0.1:{port}", TESSERA_LOG="warn")
    server = subprocess.Popen([BIN, "serve"], env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                Conn(port, "127.0.0.1").close()
                break
            except OSError:
                time.sleep(0.1)
        prefix = f"t{random.randrange(10**6)}-"
        conn = None
        for i in range(N):
            if i % 80 == 0:
                conn = Conn(port, f"127.0.10.{1 + i // 80}")
            _, status, _ = conn.request("POST", "/api/auth/register", {
                "email": f"{prefix}{i}@example.com", "password": PASSWORD, "firstName": "T", "lastName": ""})
            assert status == 201, status
        _, status, body = conn.request("POST", "/api/auth/login", {"email": f"{prefix}0@example.com", "password": PASSWORD})
        assert status == 200, status
        token = json.loads(body)["accessToken"]
        time.sleep(2)  # the registrations' mails are written

        order = [("known", i) for i in range(N)] + [("unknown", i) for i in range(N)]
        random.shuffle(order)
        follow_up = {"known": [], "unknown": []}
        for n, (kind, i) in enumerate(order):
            if n % 90 == 0:
                conn = Conn(port, f"127.0.11.{1 + n // 90}")
            email = f"{prefix}{i}@example.com" if kind == "known" else f"{prefix}nobody{i}@example.com"
            _, status, _ = conn.request("POST", "/api/auth/password/forgot", {"email": email})
            assert status == 202, status
            took, status, _ = conn.request("GET", "/api/auth/sessions", token=token)
            assert status == 200, status
            follow_up[kind].append(took)
            time.sleep(0.01)
        for kind, samples in follow_up.items():
            print(f"{kind:8} next request: median {statistics.median(samples) * 1e6:.0f} us over {len(samples)}")
        print(f"Mann-Whitney z, known vs unknown: {mann_whitney_z(follow_up['known'], follow_up['unknown']):.2f}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
