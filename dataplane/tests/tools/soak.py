#!/usr/bin/env python3
"""Session churn for masq's soak test (dataplane/tests/soak.rs): bounded in time.

  soak.py churn SECONDS DST_IP UDP_PORT TCP_PORT SRC_IP[,SRC_IP...] [FLOWS_PER_SEC]
      Until SECONDS have passed: open FLOWS_PER_SEC (default 200) new UDP flows a second,
      each from a fresh source port of one of the SRC_IPs in turn, one datagram each,
      collecting the echoes; and, in a second thread, about 20 short TCP connections a
      second (connect, read the server's line, close). Every flow is a new NAT session.
      Prints one JSON line: {"udp_sent", "udp_answered", "tcp_ok", "tcp_failed"}.
"""
import json
import selectors
import socket
import sys
import threading
import time


def tcp_loop(deadline, dst, port, sources, out):
    i = 0
    while time.monotonic() < deadline:
        src = sources[i % len(sources)]
        i += 1
        try:
            s = socket.create_connection((dst, port), timeout=1.0, source_address=(src, 0))
            s.settimeout(1.0)
            data = b""
            while True:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            s.close()
            out["tcp_ok" if data else "tcp_failed"] += 1
        except OSError:
            out["tcp_failed"] += 1
        time.sleep(0.05)


def churn(seconds, dst, udp_port, tcp_port, sources, rate="200"):
    sources = sources.split(",")
    deadline = time.monotonic() + float(seconds)
    rate = int(rate)
    out = {"udp_sent": 0, "udp_answered": 0, "tcp_ok": 0, "tcp_failed": 0}
    tcp = threading.Thread(target=tcp_loop, args=(deadline, dst, int(tcp_port), sources, out), daemon=True)
    tcp.start()
    sel = selectors.DefaultSelector()
    open_socks = []  # (opened_at, socket), oldest first
    tick = 0.01
    per_tick = max(1, rate // 100)
    i = 0
    next_tick = time.monotonic()
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_tick:
            next_tick += tick
            for _ in range(per_tick):
                src = sources[i % len(sources)]
                i += 1
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setblocking(False)
                try:
                    s.bind((src, 0))
                    s.sendto(b"soak", (dst, int(udp_port)))
                    out["udp_sent"] += 1
                except OSError:
                    s.close()
                    continue
                sel.register(s, selectors.EVENT_READ)
                open_socks.append((now, s))
        # Answers; a flow is given 1 s, then its socket closes.
        for key, _ in sel.select(timeout=max(0.0, min(tick, next_tick - time.monotonic()))):
            try:
                if key.fileobj.recv(256):
                    out["udp_answered"] += 1
            except OSError:
                pass
        while open_socks and open_socks[0][0] < time.monotonic() - 1.0:
            _, s = open_socks.pop(0)
            sel.unregister(s)
            s.close()
    for _, s in open_socks:
        sel.unregister(s)
        s.close()
    tcp.join(timeout=3)
    print(json.dumps(out), flush=True)
    return 0


COMMANDS = {"churn": churn}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](*sys.argv[2:]))
