#!/usr/bin/env python3
"""Write pcap captures of the standard masq benchmark traffic (standard library only).

    gen-pcap.py range OUT.pcap [--subscribers M] [--flows F]   M x F flows, 64 B UDP
    gen-pcap.py storm OUT.pcap [--packets N]                   every packet a new flow
    gen-pcap.py imix  OUT.pcap [--subscribers M] [--flows F]   7:4:1 of 64/594/1518 B

Frames are addressed as scripts/pktgen/run-vhost.sh wires the ports: from pktgen's port 0
(02:00:00:00:21:02) to masqd's inside port "lan" (02:00:00:00:21:01), UDP from
subscribers 100.64.1.0 upwards (source ports 10000 upwards) to 203.0.113.254:9, with
valid IPv4 and UDP checksums. Sizes are on-the-wire sizes with the 4 byte FCS, as pktgen
counts them; the capture holds each frame without it.

Replay with pktgen (run-vhost.sh --pcap OUT.pcap, or pktgen -s 0:OUT.pcap), or feed masqd
directly: device = "net_pcap0,rx_pcap=OUT.pcap,infinite_rx=1".
Flows are interleaved pseudorandomly (fixed seed, so the file is the same every time).
"""

import argparse
import ipaddress
import random
import struct
import sys

DST_MAC = bytes.fromhex("020000002101")
SRC_MAC = bytes.fromhex("020000002102")
SERVER = ipaddress.IPv4Address("203.0.113.254")
FIRST_SUBSCRIBER = ipaddress.IPv4Address("100.64.1.0")
LAST_SUBSCRIBER = ipaddress.IPv4Address("100.127.255.255")
FIRST_SPORT = 10000
DPORT = 9
IMIX = [64] * 7 + [594] * 4 + [1518]  # simple IMIX, 7:4:1
MAX_PACKETS = 2_000_000


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(src: ipaddress.IPv4Address, sport: int, wire_size: int) -> bytes:
    """One Ethernet/IPv4/UDP frame of wire_size bytes including the FCS (not written)."""
    frame_len = wire_size - 4
    payload_len = frame_len - 14 - 20 - 8
    if payload_len < 0:
        raise ValueError(f"frame size {wire_size} is below 64")
    payload = bytes(payload_len)
    udp_len = 8 + payload_len
    ip_len = 20 + udp_len
    src_b, dst_b = src.packed, SERVER.packed
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0, 64, 17, 0, src_b, dst_b)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    pseudo = src_b + dst_b + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", sport, DPORT, udp_len, 0) + payload
    csum = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    return DST_MAC + SRC_MAC + b"\x08\x00" + ip + udp


def write_pcap(path: str, frames) -> int:
    n = 0
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            f.write(struct.pack("<IIII", i // 1_000_000, i % 1_000_000, len(frame), len(frame)))
            f.write(frame)
            n += 1
    return n


def subscriber(i: int) -> ipaddress.IPv4Address:
    return FIRST_SUBSCRIBER + i


def flows(subscribers: int, per_subscriber: int, rng: random.Random):
    pairs = [(s, f) for s in range(subscribers) for f in range(per_subscriber)]
    rng.shuffle(pairs)
    return pairs


def main(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=["range", "storm", "imix"])
    p.add_argument("out")
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--flows", type=int, default=16, help="source ports per subscriber")
    p.add_argument("--packets", type=int, default=200_000, help="storm: packets (= new flows)")
    a = p.parse_args(argv)
    span = int(LAST_SUBSCRIBER) - int(FIRST_SUBSCRIBER) + 1
    if not 1 <= a.subscribers <= span:
        p.error(f"--subscribers must be in 1..{span}")
    if not 1 <= a.flows <= 65535 - FIRST_SPORT:
        p.error(f"--flows must be in 1..{65535 - FIRST_SPORT}")
    if not 1 <= a.packets <= MAX_PACKETS:
        p.error(f"--packets must be in 1..{MAX_PACKETS}")
    rng = random.Random(4814)  # RFC 4814: pseudorandom, but reproducible
    if a.kind == "range":
        if a.subscribers * a.flows > MAX_PACKETS:
            p.error(f"subscribers x flows must be at most {MAX_PACKETS}")
        frames = (udp_frame(subscriber(s), FIRST_SPORT + f, 64) for s, f in flows(a.subscribers, a.flows, rng))
    elif a.kind == "imix":
        if a.subscribers * a.flows * len(IMIX) > MAX_PACKETS:
            p.error(f"subscribers x flows x 12 must be at most {MAX_PACKETS}")
        sizes = []
        for _ in range(a.subscribers * a.flows):
            sizes.extend(IMIX)
        rng.shuffle(sizes)
        pairs = flows(a.subscribers, a.flows, rng) * len(IMIX)
        frames = (udp_frame(subscriber(s), FIRST_SPORT + f, size) for (s, f), size in zip(pairs, sizes))
    else:  # storm: subscriber and port both step by one, as storm.pkt does
        frames = (udp_frame(subscriber(i % span), 1024 + i % 64512, 64) for i in range(a.packets))
    n = write_pcap(a.out, frames)
    print(f"{a.out}: {n} frames ({a.kind})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
