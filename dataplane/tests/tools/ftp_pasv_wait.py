#!/usr/bin/env python3
"""A passive-mode FTP client that waits between the 227 reply and its data connection.

    ftp_pasv_wait.py SERVER FILE PAUSE

Logs in anonymously to SERVER:21, sends PASV, connects to the address and port of the
227 reply (not the control connection's: the reply must name a reachable address)
PAUSE seconds later, retrieves FILE and prints its SHA-256. Exit 0 on success, 1 with
a message otherwise. Every wait is bounded.
"""
import hashlib
import re
import socket
import sys
import time


def main():
    server, name, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
    c = socket.create_connection((server, 21), timeout=10)
    f = c.makefile("rb")

    def reply():
        line = f.readline().decode(errors="replace")
        while len(line) >= 4 and line[3] == "-":
            code = line[:3]
            while True:
                more = f.readline().decode(errors="replace")
                if not more or more.startswith(code + " "):
                    break
            line = more
        return line.strip()

    def cmd(text, want):
        c.sendall(text.encode() + b"\r\n")
        r = reply()
        if not r.startswith(want):
            raise SystemExit(f"{text!r}: {r}")
        return r

    reply()
    cmd("USER anonymous", "331")
    cmd("PASS test@", "230")
    cmd("TYPE I", "200")
    r = cmd("PASV", "227")
    m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", r)
    if not m:
        raise SystemExit(f"PASV: {r}")
    n = [int(x) for x in m.groups()]
    addr, port = ".".join(map(str, n[:4])), n[4] * 256 + n[5]
    print(f"227 {addr}:{port}", flush=True)
    time.sleep(pause)
    d = socket.create_connection((addr, port), timeout=10)
    c.sendall(f"RETR {name}\r\n".encode())
    r = reply()
    if not r.startswith(("150", "125")):
        raise SystemExit(f"RETR: {r}")
    h = hashlib.sha256()
    while True:
        chunk = d.recv(65536)
        if not chunk:
            break
        h.update(chunk)
    d.close()
    if not reply().startswith("226"):
        raise SystemExit("no 226")
    cmd("QUIT", "221")
    print(h.hexdigest(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
