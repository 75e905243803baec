#!/usr/bin/env python3
"""A small TFTP server (RFC 1350, read requests only) for the helper end-to-end tests.

    tftp_server.py ADDR DIR LOG

Listens on ADDR:69. Each read request is answered, as RFC 1350 says, from a newly
chosen port: DATA blocks of 512 bytes, each resent up to 5 times until its ACK arrives.
Every request's client address goes to LOG ("RRQ 203.0.113.1:40000 name"), so the test
sees what the server saw. Runs until killed; every wait is bounded.
"""
import os
import socket
import struct
import sys
import threading

BLOCK = 512


def serve(client, name, root, log):
    path = os.path.join(root, os.path.basename(name))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], 0))
    s.settimeout(1.0)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        s.sendto(struct.pack("!HH", 5, 1) + b"not found\0", client)
        return
    block = 1
    offset = 0
    while True:
        chunk = data[offset:offset + BLOCK]
        pkt = struct.pack("!HH", 3, block & 0xFFFF) + chunk
        for _ in range(5):
            s.sendto(pkt, client)
            try:
                ack, frm = s.recvfrom(1024)
            except socket.timeout:
                continue
            if frm == client and len(ack) >= 4 and struct.unpack("!HH", ack[:4]) == (4, block & 0xFFFF):
                break
        else:
            with open(log, "a") as l:
                l.write(f"TIMEOUT {client[0]}:{client[1]} block {block}\n")
            return
        if len(chunk) < BLOCK:
            with open(log, "a") as l:
                l.write(f"DONE {client[0]}:{client[1]} {len(data)}\n")
            return
        block += 1
        offset += BLOCK


def main():
    addr, root, log = sys.argv[1], sys.argv[2], sys.argv[3]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 69))
    while True:
        pkt, client = s.recvfrom(2048)
        if len(pkt) < 4 or struct.unpack("!H", pkt[:2])[0] != 1:
            continue
        name = pkt[2:].split(b"\0")[0].decode(errors="replace")
        with open(log, "a") as l:
            l.write(f"RRQ {client[0]}:{client[1]} {name}\n")
        threading.Thread(target=serve, args=(client, name, root, log), daemon=True).start()


if __name__ == "__main__":
    main()
