/* The ABI between the fast-path XDP program (fastpath.bpf.c) and the dataplane
 * (core/src/port/xdp/fastpath/maps.rs mirrors every struct and constant here; a unit
 * test there checks the sizes). All multi-byte addresses and ports are stored as they
 * are on the wire (network byte order); counters and times in host order. */
#ifndef VNET_FASTPATH_H
#define VNET_FASTPATH_H

#define FP_MAX_PORTS 64

/* fp_ports[port id].flags */
#define FP_PORT_REDIRECT 1 /* frames may be redirected to this port (its peer can take them) */

/* Per-port counters: per-CPU array fp_stats, index port * FS_N + counter. */
#define FS_FAST_RX 0        /* frames taken by the fast path on this (ingress) port */
#define FS_FAST_RX_BYTES 1
#define FS_FAST_TX 2        /* frames the fast path sent out of this (egress) port */
#define FS_FAST_TX_BYTES 3
#define FS_CORE 4           /* frames handed to the core (AF_XDP socket) */
#define FS_MISS_NO_ENTRY 5  /* no entry for the flow */
#define FS_MISS_GROUP 6     /* broadcast or multicast destination */
#define FS_MISS_NOT_IP 7    /* ARP and other non-IP EtherTypes, VLAN tags */
#define FS_MISS_SHAPE 8     /* IP options, IPv6 extension headers, odd lengths */
#define FS_MISS_FRAGMENT 9  /* IPv4 fragments (NAT) */
#define FS_MISS_CONTROL 10  /* TCP SYN, FIN or RST (the core tracks the connection) */
#define FS_MISS_PARTIAL_CSUM 11 /* a partial checksum not completed (segment over 4 KiB) */
#define FS_MISS_MULTI_BUF 12    /* a super-frame: in several buffers, or one longer than the egress MTU */
#define FS_MISS_TTL 13      /* TTL would expire (the core answers with ICMP) */
#define FS_MISS_EGRESS 14   /* the egress port cannot take redirected frames */
#define FS_MISS_MAC 15      /* an entry for the flow, but other Ethernet addresses */
#define FS_MISS_PROTO 16    /* IPv4 but neither TCP nor UDP (NAT) */
#define FS_MISS_BAD_CSUM 17 /* an IPv4 header checksum that does not verify (NAT) */
#define FS_CSUM_DONE 18     /* partial TCP/UDP checksums the program completed */
#define FS_N 19

/* fp_l2: a switched unicast flow, (ingress port, source MAC, destination MAC) -> egress. */
struct fp_l2_key {
	__u32 ingress;
	__u8 src[6];
	__u8 dst[6];
};

struct fp_l2_val {
	__u32 egress;
	__u32 pad;
	__u64 packets;
	__u64 bytes;
	__u64 last_seen; /* bpf_ktime_get_ns (CLOCK_MONOTONIC) of the last frame */
};

/* fp_nat: a translated TCP/UDP flow as it arrives on its ingress port. */
struct fp_nat_key {
	__u32 ingress;
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct fp_nat_val {
	__u32 egress;
	__u8 match_dst[6]; /* the frame's destination MAC must be this (the dataplane's) */
	__u8 match_src[6]; /* and its source MAC this */
	__u8 new_dst[6];
	__u8 new_src[6];
	__u32 new_saddr;
	__u32 new_daddr;
	__u16 new_sport;
	__u16 new_dport;
	__u8 ttl_dec; /* 0 or 1 */
	__u8 pad[3];
	__u64 packets;
	__u64 bytes;
	__u64 last_seen;
};

#endif
