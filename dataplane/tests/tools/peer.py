#!/usr/bin/env python3
"""Test peers for masq's end-to-end tests: small, deterministic, bounded in time.

  peer.py udp-echo BIND_IP PORT
      Answer every datagram with "<peer ip>:<peer port>" (what this side saw).
  peer.py udp-ask SRC_IP SRC_PORT DST_IP DST_PORT [TIMEOUT]
      Send one datagram from SRC to DST and print the answer; exit 1 on timeout,
      exit 3 when an ICMP port unreachable came back (ECONNREFUSED).
  peer.py udp-listen BIND_IP PORT TIMEOUT
      Wait for one datagram, print "<peer ip>:<peer port> <payload>", answer "ok".
  peer.py tcp-echo-peer BIND_IP PORT
      Accept connections; answer each with "<peer ip>:<peer port>" and close.
  peer.py tcp-ask DST_IP DST_PORT [TIMEOUT]
      Connect, print what the server says.
  peer.py arp-flood IFACE COUNT FIRST_SENDER_IP TARGET_IP
      Send COUNT broadcast ARP requests for TARGET_IP out of IFACE (raw socket), each
      from a different spoofed sender: FIRST_SENDER_IP, the next address, ... with a
      MAC made from the counter. Paced in bursts of 256; prints how many were sent.
  peer.py tcp-ask-from SRC_IP SRC_PORT DST_IP DST_PORT [TIMEOUT]
      The same from a given source address and port.
  peer.py udp-flood DST_IP DST_PORT SECONDS [PPS]
      Send small datagrams to DST for SECONDS, at about PPS per second (default: as
      fast as possible); print how many. SIGTERM stops it early (still printing).
"""
import ipaddress
import signal
import socket
import struct
import sys
import time


def udp_echo(bind_ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((bind_ip, int(port)))
    while True:
        data, (ip, p) = s.recvfrom(2048)
        s.sendto(f"{ip}:{p}".encode(), (ip, p))


def udp_ask(src_ip, src_port, dst_ip, dst_port, timeout="3"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src_ip, int(src_port)))
    s.connect((dst_ip, int(dst_port)))
    s.settimeout(float(timeout))
    try:
        s.send(b"hello")
        print(s.recv(2048).decode())
    except ConnectionRefusedError:
        print("refused")
        return 3
    except socket.timeout:
        print("timeout")
        return 1
    return 0


def udp_listen(bind_ip, port, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((bind_ip, int(port)))
    s.settimeout(float(timeout))
    try:
        data, (ip, p) = s.recvfrom(2048)
    except socket.timeout:
        print("timeout")
        return 1
    print(f"{ip}:{p} {data.decode(errors='replace')}", flush=True)
    s.sendto(b"ok", (ip, p))
    return 0


def tcp_echo_peer(bind_ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((bind_ip, int(port)))
    s.listen(16)
    while True:
        c, (ip, p) = s.accept()
        c.sendall(f"{ip}:{p}".encode())
        c.close()


def tcp_ask(dst_ip, dst_port, timeout="3"):
    s = socket.create_connection((dst_ip, int(dst_port)), timeout=float(timeout))
    data = b""
    while True:
        chunk = s.recv(2048)
        if not chunk:
            break
        data += chunk
    print(data.decode())
    return 0


def arp_flood(iface, count, first_sender, target):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    src_mac = s.getsockname()[4]
    first = int(ipaddress.IPv4Address(first_sender))
    tpa = ipaddress.IPv4Address(target).packed
    sent = 0
    for i in range(int(count)):
        mac = bytes([0x02, 0xEE]) + struct.pack("!I", i)
        spa = struct.pack("!I", first + i)
        arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + spa + b"\0" * 6 + tpa
        frame = b"\xff" * 6 + src_mac + b"\x08\x06" + arp
        s.send(frame.ljust(60, b"\0"))
        sent += 1
        if sent % 256 == 0:
            time.sleep(0.002)
    print(sent)
    return 0


def tcp_ask_from(src_ip, src_port, dst_ip, dst_port, timeout="3"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src_ip, int(src_port)))
    s.settimeout(float(timeout))
    s.connect((dst_ip, int(dst_port)))
    data = b""
    while True:
        chunk = s.recv(2048)
        if not chunk:
            break
        data += chunk
    print(data.decode())
    return 0


def udp_flood(dst_ip, dst_port, seconds, pps="0"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    start = time.monotonic()
    end = start + float(seconds)
    rate = float(pps)
    sent = 0
    stopped = []
    # SIGTERM ends the flood early, still printing the count.
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
    while not stopped:
        now = time.monotonic()
        if now >= end:
            break
        if rate > 0 and sent >= rate * (now - start):
            time.sleep(0.001)
            continue
        for _ in range(16):
            try:
                s.sendto(b"flood", (dst_ip, int(dst_port)))
                sent += 1
            except (BlockingIOError, ConnectionRefusedError):
                pass
    print(sent)
    return 0


COMMANDS = {
    "udp-echo": udp_echo,
    "udp-ask": udp_ask,
    "udp-listen": udp_listen,
    "tcp-echo-peer": tcp_echo_peer,
    "tcp-ask": tcp_ask,
    "arp-flood": arp_flood,
    "tcp-ask-from": tcp_ask_from,
    "udp-flood": udp_flood,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.stderr.write(__doc__)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](*sys.argv[2:]) or 0)
