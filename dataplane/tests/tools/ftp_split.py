#!/usr/bin/env python3
"""An active-mode FTP client that cuts its PORT command in two segments.

    ftp_split.py LOCAL_ADDR SERVER FILE [PAUSE]

Logs in anonymously to SERVER:21 from LOCAL_ADDR, sends `PORT` in two writes with
TCP_NODELAY and a pause between them (so they leave as two segments), waits PAUSE
seconds after the server accepted it (default 0: time for a test to list the
expectation), then `RETR FILE` on the connection the server opens, then more commands
on the same control connection (`PWD`, a second PORT + RETR, `QUIT`) to show the stream
is still in order after the rewrite. Prints the SHA-256 of each download and exits 0,
or prints what went wrong and exits 1. Every wait is bounded.
"""
import hashlib
import socket
import sys
import time


def main():
    local, server, name = sys.argv[1], sys.argv[2], sys.argv[3]
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    c = socket.create_connection((server, 21), timeout=10, source_address=(local, 0))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = c.makefile("rb")

    def reply():
        line = f.readline().decode(errors="replace")
        # Multi-line replies: "123-..." up to "123 ...".
        while len(line) >= 4 and line[3] == "-":
            code = line[:3]
            while True:
                more = f.readline().decode(errors="replace")
                if not more or more.startswith(code + " "):
                    break
            line = more
        if not line:
            raise SystemExit("connection closed")
        return line.strip()

    def cmd(text, want):
        c.sendall(text.encode() + b"\r\n")
        r = reply()
        if not r.startswith(want):
            print(f"{text!r}: {r}")
            raise SystemExit(1)
        return r

    reply()
    cmd("USER anonymous", "331")
    cmd("PASS test@", "230")
    cmd("TYPE I", "200")
    digests = []
    for split in (True, False):
        lsock = socket.socket()
        lsock.bind((local, 0))
        lsock.listen(1)
        lsock.settimeout(10)
        port = lsock.getsockname()[1]
        arg = ",".join(local.split(".") + [str(port >> 8), str(port & 0xFF)])
        line = f"PORT {arg}\r\n".encode()
        if split:
            # Cut inside the address: "PORT 100,64," then the rest.
            c.sendall(line[:12])
            time.sleep(0.3)
            c.sendall(line[12:])
        else:
            c.sendall(line)
        r = reply()
        if not r.startswith("200"):
            print(f"PORT (split={split}): {r}")
            return 1
        time.sleep(pause if split else 0)
        c.sendall(f"RETR {name}\r\n".encode())
        r = reply()
        if not r.startswith(("150", "125")):
            print(f"RETR: {r}")
            return 1
        d, peer = lsock.accept()
        d.settimeout(10)
        h = hashlib.sha256()
        while True:
            chunk = d.recv(65536)
            if not chunk:
                break
            h.update(chunk)
        d.close()
        lsock.close()
        r = reply()
        if not r.startswith("226"):
            print(f"after RETR: {r}")
            return 1
        digests.append(h.hexdigest())
        cmd("PWD", "257")
    cmd("QUIT", "221")
    print(" ".join(digests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
