#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (fuzz/fuzz_targets/) from the committed pcaps.

Reads every pcaps/*.pcap (classic pcap: a 24-byte global header, then per frame a 16-byte
record header and the frame) and writes, for each target, files named seed-* into
fuzz/corpus/<target>/ in that target's input format:

- wire_ethernet_arp: each frame;
- wire_ipv4_icmpv4: each IPv4 packet (the frame after its Ethernet header);
- wire_tcp, wire_udp: source and destination address (8 bytes), then the segment;
- wire_ipv6: each IPv6 packet, plus one made here (the pcaps hold none);
- wire_dhcp: each DHCP payload (UDP port 67 or 68);
- mode_*: a configuration byte, then the frames as records (ctrl, 2-byte length, frame;
  see fuzz/src/lib.rs), one seed per pcap and one with every pcap in turn, for a few
  configurations; all frames come in on port 0 (a VM); then every pcap in turn with each
  frame answered by its peer, and with each frame refused by an ICMP error; for the NAT
  targets also many flows into small tables and flows to the host through 10.0.2.2.

dhcp_server takes structured input (the `arbitrary` crate): it starts from nothing.
Deterministic: running it again rewrites the same files. Usage: ci/fuzz-seed.py [REPO]
"""
import os
import struct
import sys

TARGETS_MODE = {
    # target: configuration bytes to seed with (see each target's docs)
    "mode_internal": [0x00, 0x04],
    "mode_host_only": [0x01, 0x05],
    "mode_bridged": [0x01, 0x00],
    "mode_nat": [0x10, 0x1d, 0x00],
    "mode_nat_network": [0x11, 0x1d, 0x00],
}


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise SystemExit(f"{path}: not a pcap file")
    frames = []
    at = 24
    while at + 16 <= len(data):
        _sec, _frac, incl, _orig = struct.unpack(endian + "IIII", data[at : at + 16])
        at += 16
        frames.append(data[at : at + incl])
        at += incl
    return frames


def l3(frame):
    """(ethertype, payload) after the Ethernet header and at most one VLAN tag."""
    if len(frame) < 14:
        return None, b""
    et = struct.unpack(">H", frame[12:14])[0]
    if et in (0x8100, 0x88A8) and len(frame) >= 18:
        return struct.unpack(">H", frame[16:18])[0], frame[18:]
    return et, frame[14:]


def ipv4_parts(packet):
    """(proto, src+dst, l4) of an IPv4 packet whose lengths make sense, else None."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 15) * 4
    total = struct.unpack(">H", packet[2:4])[0]
    if ihl < 20 or total < ihl or total > len(packet):
        return None
    return packet[9], packet[12:20], packet[ihl:total]


def synthetic_ipv6():
    # ICMPv6 echo request fe80::1 -> ff02::1, 8 bytes of payload.
    payload = bytes([128, 0, 0, 0, 0x12, 0x34, 0, 1])
    header = struct.pack(">IHBB", 0x60000000, len(payload), 58, 255)
    src = bytes.fromhex("fe800000000000000000000000000001")
    dst = bytes.fromhex("ff020000000000000000000000000001")
    return header + src + dst + payload


def record(frame, ctrl=0):
    return bytes([ctrl]) + struct.pack(">H", len(frame)) + frame


def main():
    root = os.path.normpath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    pcap_dir = os.path.join(root, "pcaps")
    corpus = os.path.join(root, "fuzz", "corpus")
    seeds = {}

    def add(target, name, data):
        seeds.setdefault(target, {})[name] = data

    captures = []
    for name in sorted(os.listdir(pcap_dir)):
        if name.endswith(".pcap"):
            stem = name[: -len(".pcap")]
            captures.append((stem, read_pcap(os.path.join(pcap_dir, name))))

    for stem, frames in captures:
        for i, frame in enumerate(frames):
            tag = f"{stem}-{i}"
            add("wire_ethernet_arp", tag, frame)
            et, payload = l3(frame)
            if et == 0x86DD:
                add("wire_ipv6", tag, payload)
            if et != 0x0800:
                continue
            add("wire_ipv4_icmpv4", tag, payload)
            parts = ipv4_parts(payload)
            if parts is None:
                continue
            proto, addrs, l4 = parts
            if proto == 6:
                add("wire_tcp", tag, addrs + l4)
            elif proto == 17:
                add("wire_udp", tag, addrs + l4)
                if len(l4) >= 8:
                    ports = struct.unpack(">HH", l4[:4])
                    if 67 in ports or 68 in ports:
                        add("wire_dhcp", tag, l4[8:])
    add("wire_ipv6", "synthetic-echo", synthetic_ipv6())

    everything = [f for _, frames in captures for f in frames]
    for target, configs in TARGETS_MODE.items():
        for cfg in configs:
            for stem, frames in captures + [("all", everything)]:
                if not frames:
                    continue
                body = b"".join(record(f) for f in frames[:-1])
                # The last frame ends the batch and runs the timers.
                body += record(frames[-1], ctrl=0x08 | 0x80)
                add(target, f"{stem}-cfg{cfg:02x}", bytes([cfg]) + body)
            # Every frame answered by whoever it reached, or (UDP, ICMP) refused with an
            # ICMP error: the peer's side (ports 7 and 6, see fuzz/src/lib.rs).
            answered = b"".join(record(f, ctrl=0x08) + record(b"", ctrl=0x0F) for f in everything)
            add(target, f"all-answered-cfg{cfg:02x}", bytes([cfg]) + answered)
            refused = b"".join(record(f, ctrl=0x08) + record(b"", ctrl=0x0E) for f in everything)
            add(target, f"all-refused-cfg{cfg:02x}", bytes([cfg]) + refused)

    # NAT: many flows from one guest into small tables (configuration bit 5: 16 sessions),
    # and flows to the host through 10.0.2.2 (bits 2 and 4: a host port, resolved). Each
    # record has the fix-up bit (checksums are recomputed after the edits).
    udp = next((f for stem, frames in captures if stem == "udp" for f in frames), None)
    tcp = next((f for stem, frames in captures if stem == "tcp-handshake" for f in frames), None)
    for target, vms in (("mode_nat", 0x00), ("mode_nat_network", 0x01)):
        for proto, frame in (("udp", udp), ("tcp", tcp)):
            if frame is None or len(frame) < 38:
                continue
            flows = b""
            for i in range(24):
                # Two guests (ports 0 and 1; 10.0.2.15 and .16): each under its share,
                # together over the table.
                f = bytearray(frame)
                f[29] = 15 + i % 2
                f[34:36] = struct.pack(">H", 41000 + i)
                flows += record(bytes(f), ctrl=0x10 | (i % 2) | (0x08 if i % 8 == 7 else 0))
            add(target, f"many-{proto}-flows", bytes([0x31]) + flows)
            to_host = bytearray(frame)
            to_host[30:34] = bytes([10, 0, 2, 2])
            body = record(bytes(to_host), ctrl=0x18) + record(b"", ctrl=0x0F)
            add(target, f"{proto}-to-host", bytes([0x14 | vms]) + body * 3)

    total = 0
    for target, files in sorted(seeds.items()):
        d = os.path.join(corpus, target)
        os.makedirs(d, exist_ok=True)
        for name, data in sorted(files.items()):
            with open(os.path.join(d, f"seed-{name}"), "wb") as f:
                f.write(data)
            total += len(data)
    print(f"fuzz-seed: {sum(len(f) for f in seeds.values())} seeds, {total} bytes, in {corpus}")


if __name__ == "__main__":
    main()
