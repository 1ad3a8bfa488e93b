#!/usr/bin/env python3
"""Hostile HTTP client for `vigil serve` (issue #32); Python 3 standard library only.

Run by scripts/ci/hostile.sh against a live server started with
`--auth-token-file`, `--header-timeout-secs 2`, `--body-timeout-secs 2`,
`--max-body-bytes 8388608` and `--max-inflight-bytes 16777216` under
`ulimit -n 1024`. Each case prints one line: the case, what was sent, what came
back, how long it took, PASS or FAIL. Exits 1 when any case fails.
"""

import argparse
import base64
import json
import resource
import socket
import struct
import sys
import threading
import time
import zlib

RESULTS = []


def report(case, sent, got, seconds, ok):
    RESULTS.append(ok)
    print(f"{'PASS' if ok else 'FAIL'}  {case:<22} sent: {sent:<58} got: {got:<40} {seconds*1000:8.1f} ms",
          flush=True)


def connect(addr, timeout=10.0):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.settimeout(timeout)
    return s


def read_all(s):
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def status_of(raw):
    try:
        return int(raw.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def request(addr, method, path, body=b"", headers=None, timeout=10.0):
    """One request on a fresh connection; returns (status, raw response, seconds)."""
    t = time.monotonic()
    try:
        s = connect(addr, timeout)
    except OSError as e:
        return None, str(e).encode(), time.monotonic() - t
    head = f"{method} {path} HTTP/1.1\r\nHost: vigil\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    try:
        s.sendall(head.encode() + b"\r\n")
        s.sendall(body)
    except OSError:
        pass
    raw = read_all(s)
    s.close()
    return status_of(raw), raw, time.monotonic() - t


def moderate_body(items):
    return json.dumps({"items": items}).encode()


def jpeg_bomb(w, h):
    """A baseline JPEG declaring w x h pixels in 172 bytes: tables, frame and scan
    headers and almost no data."""
    j = b"\xff\xd8\xff\xdb\x00\x43\x00" + b"\x01" * 64
    j += b"\xff\xc0\x00\x0b\x08" + struct.pack(">HH", h, w) + b"\x01\x01\x11\x00"
    for cls in (0x00, 0x10):
        j += b"\xff\xc4\x00\x14" + bytes([cls, 1]) + b"\x00" * 15 + b"\x00"
    j += b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x00" * 32 + b"\xff\xd9"
    return j


def png_bomb(w, h):
    """A real PNG of w x h 16-bit RGBA zeros: a few hundred KB that inflate to w*h*8 bytes."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 6, 0, 0, 0)
    z = zlib.compressobj(9)
    row = b"\x00" * (1 + w * 8)
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def case_slow_headers(a):
    s = connect(a.addr)
    s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: vigil\r\n")
    t = time.monotonic()
    raw = read_all(s)
    took = time.monotonic() - t
    s.close()
    ok = 1.5 <= took <= 6.0
    report("slow headers", "half the headers, then nothing", f"closed ({len(raw)} bytes)", took, ok)


def case_slow_body(a):
    s = connect(a.addr)
    s.sendall(b"POST /v1/moderate HTTP/1.1\r\nHost: vigil\r\nAuthorization: Bearer " + a.token.encode()
              + b"\r\nContent-Length: 1000\r\n\r\n{\"items\"")
    t = time.monotonic()
    raw = read_all(s)
    took = time.monotonic() - t
    s.close()
    st = status_of(raw)
    report("slow body", "headers + 9 of 1000 body bytes", f"{st}", took, st == 408 and took <= 6.0)


def case_flood(a):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    held, stop = [], threading.Event()

    def flood():
        for i in range(2000):
            if stop.is_set():
                break
            try:
                s = connect(a.addr, 2.0)
                if i % 2 == 0:
                    s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: vigil\r\n")
                held.append(s)
            except OSError:
                pass

    th = threading.Thread(target=flood, daemon=True)
    t = time.monotonic()
    th.start()
    lat, statuses = [], []
    body = moderate_body([{"id": "a", "text": "hello there"}])
    auth = {"Authorization": f"Bearer {a.token}", "Content-Type": "application/json"}
    while len(lat) < 30:
        st, _, took = request(a.addr, "POST", "/v1/moderate", body, auth)
        lat.append(took)
        statuses.append(st)
        time.sleep(0.05)
    th.join(timeout=60)
    total = time.monotonic() - t
    opened = len(held)
    fds = fd_count(a.pid)
    for s in held:
        s.close()
    stop.set()
    lat.sort()
    good = sum(1 for st in statuses if st == 200)
    ok = good == len(statuses) and lat[-1] < 5.0 and opened >= 1500
    report("2000 half-open conns",
           f"{opened} held (ulimit -n 1024 server) + 30 real requests",
           f"{good}/30 200, p50 {lat[len(lat)//2]*1000:.0f} ms, max {lat[-1]*1000:.0f} ms, fds {fds}",
           total, ok)


def fd_count(pid):
    import os
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def case_bombs(a):
    auth = {"Authorization": f"Bearer {a.token}", "Content-Type": "application/json"}
    jpg = jpeg_bomb(5000, 5000)
    st, raw, took = request(a.addr, "POST", "/v1/moderate",
                            moderate_body([{"id": "j", "image_base64": base64.b64encode(jpg).decode()}]), auth)
    report("JPEG bomb", f"{len(jpg)}-byte JPEG declaring 5000x5000", f"{st}", took, st == 400 and took < 1.0)
    png = png_bomb(4000, 4000)
    st, raw, took = request(a.addr, "POST", "/v1/moderate",
                            moderate_body([{"id": "p", "image_base64": base64.b64encode(png).decode()}]), auth)
    report("PNG bomb", f"{len(png)}-byte PNG, 4000x4000 16-bit RGBA (128 MB)", f"{st}", took,
           st == 400 and took < 1.0)


def case_oversize(a):
    auth = {"Authorization": f"Bearer {a.token}"}
    s = connect(a.addr)
    t = time.monotonic()
    s.sendall(b"POST /v1/moderate HTTP/1.1\r\nHost: vigil\r\nAuthorization: " + auth["Authorization"].encode()
              + b"\r\nContent-Length: 100000000\r\n\r\n{")
    raw = read_all(s)
    took = time.monotonic() - t
    s.close()
    st = status_of(raw)
    report("oversize body", "Content-Length 100000000 (> --max-body-bytes)", f"{st}", took, st == 413 and took < 2.0)


def case_budget(a):
    """Two 8 MB bodies fill the 16 MiB budget; a third is refused before it is read."""
    holders = []
    head = ("POST /v1/moderate HTTP/1.1\r\nHost: vigil\r\nAuthorization: Bearer " + a.token
            + "\r\nContent-Length: 8000000\r\n\r\n").encode()
    for _ in range(2):
        s = connect(a.addr)
        s.sendall(head + b"{\"items\": [")
        holders.append(s)
    time.sleep(0.3)
    s = connect(a.addr)
    t = time.monotonic()
    s.sendall(head)
    raw = read_all(s)
    took = time.monotonic() - t
    s.close()
    for h in holders:
        h.close()
    st = status_of(raw)
    retry = b"retry-after: 1" in raw.lower()
    report("in-flight budget", "3rd 8 MB Content-Length while 2 are held (16 MiB)",
           f"{st}{' Retry-After' if retry else ''}", took, st == 503 and retry and took < 2.0)


def case_malformed(a):
    auth = {"Authorization": f"Bearer {a.token}", "Content-Type": "application/json"}
    st, raw, took = request(a.addr, "POST", "/v1/moderate", b"{\"items\": [", auth)
    report("malformed JSON", "{\"items\": [", f"{st}", took, st == 400)
    body = moderate_body([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    st, raw, took = request(a.addr, "POST", "/v1/moderate", body, auth)
    report("duplicate ids", "two items with id 'a'", f"{st}", took, st == 400 and b"duplicate id 'a'" in raw)


def case_tokens(a):
    body = moderate_body([{"id": "a", "text": "hi"}])
    st, _, took = request(a.addr, "POST", "/v1/moderate", body, {"Authorization": "Bearer wrong"})
    report("wrong token", "Authorization: Bearer wrong", f"{st}", took, st == 401)
    st, _, took = request(a.addr, "POST", "/v1/moderate", body,
                          {"Authorization": "Bearer " + a.token[:-1]})
    report("token prefix", "Authorization: Bearer <token minus 1 char>", f"{st}", took, st == 401)
    st, _, took = request(a.addr, "POST", "/v1/moderate", body, {"Authorization": "bearer " + a.token})
    report("lowercase bearer", "Authorization: bearer <token>", f"{st}", took, st == 200)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--addr", required=True, help="host:port of the server")
    p.add_argument("--token-file", required=True)
    p.add_argument("--pid", type=int, default=0, help="the server's pid (its open descriptors are read)")
    a = p.parse_args()
    a.token = open(a.token_file).read().strip()
    started = time.monotonic()
    for case in (case_tokens, case_malformed, case_bombs, case_oversize, case_budget,
                 case_slow_headers, case_slow_body, case_flood):
        try:
            case(a)
        except Exception as e:  # a case that crashed is a failure, the rest still run
            report(case.__name__[5:], "-", f"exception: {e!r}"[:40], 0.0, False)
    st, _, took = request(a.addr, "GET", "/v2/health/ready")
    report("still ready", "GET /v2/health/ready", f"{st}", took, st == 200)
    failed = RESULTS.count(False)
    print(f"hostile: {len(RESULTS) - failed} passed, {failed} failed in {time.monotonic() - started:.1f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
