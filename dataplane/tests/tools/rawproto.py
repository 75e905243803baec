#!/usr/bin/env python3
"""Packets of an IP protocol without ports (GRE 47, ESP 50, ...) over raw sockets, for
masq's end-to-end tests of address-only NAT. Bounded in time.

  rawproto.py echo PROTO BIND_IP SECONDS
      For SECONDS, answer every packet of protocol PROTO to BIND_IP with
      "seen <source address> <payload>" and print that line.
  rawproto.py ask PROTO SRC_IP DST_IP PAYLOAD [TIMEOUT]
      Send PAYLOAD from SRC_IP to DST_IP as protocol PROTO; print the first answer
      from DST_IP to SRC_IP; exit 1 when none comes within TIMEOUT seconds (2).
"""
import socket
import sys
import time


def raw(proto, bind_ip):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, int(proto))
    s.bind((bind_ip, 0))
    return s


def split(packet):
    ihl = (packet[0] & 0x0F) * 4
    return socket.inet_ntoa(packet[12:16]), packet[ihl:]


def echo(proto, bind_ip, seconds):
    s = raw(proto, bind_ip)
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            packet = s.recv(65535)
        except socket.timeout:
            break
        src, payload = split(packet)
        if payload.startswith(b"seen "):
            continue
        line = b"seen " + src.encode() + b" " + payload
        s.sendto(line, (src, 0))
        print(line.decode(errors="replace"), flush=True)


def ask(proto, src_ip, dst_ip, payload, timeout="2"):
    s = raw(proto, src_ip)
    s.sendto(payload.encode(), (dst_ip, 0))
    end = time.monotonic() + float(timeout)
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            packet = s.recv(65535)
        except socket.timeout:
            break
        src, answer = split(packet)
        if src == dst_ip and answer.startswith(b"seen "):
            print(answer.decode(errors="replace"), flush=True)
            return 0
    return 1


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "echo":
        echo(*args)
    elif cmd == "ask":
        sys.exit(ask(*args))
    else:
        sys.exit(f"unknown command {cmd!r}")
