// SPDX-License-Identifier: GPL-2.0
/* vnet-bench's fast path: the XDP program on every port when `run --offload xdp`.
 *
 * It is a cache of the poll-mode core's decisions, never a second implementation: a frame
 * is switched or translated here only when the core installed an entry for exactly its
 * flow (fp_l2, fp_nat) and the frame has the plain shape the core would handle without a
 * second thought; everything else (no entry, broadcast, ARP, TCP SYN/FIN/RST, ICMP,
 * fragments, options, super-frames (multi-buffer, or longer than the egress MTU), TTL 1,
 * an egress port that cannot take redirects) goes to the core through the port's AF_XDP socket, exactly as the default
 * program does, and is counted by reason.
 *
 * Partial TCP/UDP checksums (senders with checksum offload) are completed here exactly as
 * the core completes them at ingress (offload::csum), so both paths send the same bytes.
 *
 * Rewrites (NAT entries): MACs, addresses, ports and TTL as the entry says, the IPv4
 * header and TCP/UDP checksums patched incrementally (RFC 1624 eqn. 3); a UDP checksum of
 * zero stays zero, a computed zero is sent as 0xffff. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "fastpath.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, FP_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} fp_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, FP_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} fp_tx SEC(".maps");

/* ingress ifindex -> dataplane port id */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FP_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} fp_ifindex SEC(".maps");

/* port id -> FP_PORT_* flags */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FP_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} fp_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FP_MAX_PORTS * FS_N);
	__type(key, __u32);
	__type(value, __u64);
} fp_stats SEC(".maps");

/* max_entries are set by the loader before load (--offload-entries). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fp_l2_key);
	__type(value, struct fp_l2_val);
} fp_l2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fp_nat_key);
	__type(value, struct fp_nat_val);
} fp_nat SEC(".maps");

struct eth {
	__u8 dst[6];
	__u8 src[6];
	__u16 proto;
};

struct ipv4 {
	__u8 vihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag;
	__u8 ttl;
	__u8 proto;
	__u16 check;
	__u32 saddr;
	__u32 daddr;
};

struct ipv6 {
	__u32 vtcfl;
	__u16 plen;
	__u8 nexthdr;
	__u8 hlim;
	__u16 saddr[8];
	__u16 daddr[8];
};

static __always_inline void count(__u32 port, __u32 what, __u64 n)
{
	__u32 k = port * FS_N + what;
	__u64 *v = bpf_map_lookup_elem(&fp_stats, &k);
	if (v)
		*v += n;
}

static __always_inline int to_core(__u32 port, __u32 reason)
{
	count(port, reason, 1);
	count(port, FS_CORE, 1);
	return bpf_redirect_map(&fp_xsks, port, XDP_PASS);
}

static __always_inline __u16 fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* RFC 1624 eqn. 3 on raw (wire-order) 16-bit words. */
static __always_inline __u16 upd16(__u16 hc, __u16 old, __u16 new)
{
	return ~fold((__u32)(__u16)~hc + (__u16)~old + new);
}

static __always_inline __u16 upd32(__u16 hc, __u32 old, __u32 new)
{
	__u32 s = (__u32)(__u16)~hc + (__u16)~(old >> 16) + (__u16)~(old & 0xffff) +
		  (new >> 16) + (new & 0xffff);
	return ~fold(s);
}

/* MACs sit at even offsets everywhere (frames, keys, values): 16-bit accesses only. */
static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	const __u16 *x = (const __u16 *)a, *y = (const __u16 *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2];
}

static __always_inline void mac_copy(__u8 *to, const __u8 *from)
{
	__u16 *x = (__u16 *)to;
	const __u16 *y = (const __u16 *)from;
	x[0] = y[0];
	x[1] = y[1];
	x[2] = y[2];
}

/* The wire-order word holding (0, x): the protocol and length words of a pseudo-header. */
static __always_inline __u16 wire16(__u16 x)
{
	return __builtin_bswap16(x);
}

/* Whether the TCP/UDP checksum `field` is partial: it holds the folded pseudo-header sum
 * (the same test as the core's offload::csum). `sum_addrs` is the sum of the addresses'
 * 16-bit words. A UDP checksum of 0 (none) is never partial. */
static __always_inline int partial(__u16 field, __u32 sum_addrs, __u8 proto, __u32 l4_len)
{
	__u32 s = sum_addrs + wire16(proto) + wire16((__u16)l4_len);
	return field != 0 && field == fold(s);
}

/* Whether the frame fits the MTU of egress port `out`'s interface. A TSO/GRO super-frame
 * can come in one buffer (a tap's two-segment TSO frame is 2962 bytes, linear); redirected
 * whole, the kernel would drop it at the egress (EMSGSIZE, seen by no counter), so it goes
 * to the core, which cuts it into segments of the egress MTU. */
static __always_inline int fits_egress(struct xdp_md *ctx, __u32 out)
{
	__u32 *ifindex = bpf_map_lookup_elem(&fp_tx, &out);
	if (!ifindex)
		return 0;
	__u32 mtu_len = 0;
	return bpf_check_mtu(ctx, *ifindex, &mtu_len, 0, 0) == BPF_MTU_CHK_RET_SUCCESS;
}

static __always_inline int redirect(__u32 in, __u32 out, __u64 len)
{
	__u32 *flags = bpf_map_lookup_elem(&fp_ports, &out);
	if (!flags || !(*flags & FP_PORT_REDIRECT))
		return -1;
	count(in, FS_FAST_RX, 1);
	count(in, FS_FAST_RX_BYTES, len);
	count(out, FS_FAST_TX, 1);
	count(out, FS_FAST_TX_BYTES, len);
	return bpf_redirect_map(&fp_tx, out, 0);
}

/* IPv4 TCP/UDP checksum word offset in the transport header, 0 for others. */
static __always_inline __u32 l4_csum_at(__u8 proto)
{
	return proto == IPPROTO_TCP ? 16 : proto == IPPROTO_UDP ? 6 : 0;
}

/* Longest transport segment the program sums (a single-buffer frame is shorter). */
#define FP_MAX_L4 4096

/* Complete a partial TCP/UDP checksum in place, as the core's offload::csum does: the
 * field holds the folded pseudo-header sum P, so the finished checksum is the complement
 * of the folded sum of the whole segment (field included); a UDP zero is sent as 0xffff.
 * The segment is at `l4_off` from the frame's start, `len` bytes, its checksum field at
 * `l4_off + at`. A global function: the verifier checks it once, on its own, instead of
 * once per call site and path. 0: done, -1: the segment is not all in the frame or too
 * long (the core's then). */
__attribute__((noinline)) int vnet_complete_csum(struct xdp_md *ctx, __u32 l4_off, __u32 len,
						  __u32 at, __u32 udp)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (l4_off > 127 || len > FP_MAX_L4 || at > 16)
		return -1;
	/* The mask repeats the bound for the verifier, which tracks it on another register
	 * copy than the one clang adds; the asm keeps clang from dropping it. */
	__u64 o = l4_off;
	asm volatile("%0 &= 127" : "+r"(o));
	void *l4 = data + o;
	/* 64-byte chunks through bpf_csum_diff (the kernel's csum_partial), then words. */
	__u64 s = 0;
	__u32 off = 0;
	__u32 i;
	for (i = 0; i < FP_MAX_L4 / 64; i++) {
		if (off + 64 > len)
			break;
		void *c = l4 + (off & (FP_MAX_L4 - 1));
		if (c + 64 > end)
			return -1;
		__s64 r = bpf_csum_diff(0, 0, c, 64, (__u32)s);
		if (r < 0)
			return -1;
		s = (__u32)r;
		off += 64;
	}
	for (i = 0; i < 16; i++) {
		if (off + 4 > len)
			break;
		__u32 *w = l4 + (off & (FP_MAX_L4 - 1));
		if ((void *)(w + 1) > end)
			return -1;
		s += *w;
		off += 4;
	}
	__u8 *t = l4 + (off & (FP_MAX_L4 - 1));
	if (len & 2) {
		if ((void *)(t + 2) > end)
			return -1;
		s += *(__u16 *)t;
		t += 2;
	}
	if (len & 1) {
		if ((void *)(t + 1) > end)
			return -1;
		s += *t; /* the odd last byte, padded with zero (memory order) */
	}
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	__u16 done = ~fold((__u32)s);
	if (udp && done == 0)
		done = 0xffff;
	__u64 a = at;
	asm volatile("%0 &= 31" : "+r"(a));
	__u8 *field = (__u8 *)l4 + a;
	if ((void *)(field + 2) > end)
		return -1;
	*(__u16 *)field = done;
	return 0;
}

/* A switched frame with an entry: complete what the core would complete at ingress
 * (offload::complete_partial), so both paths send the same bytes. 1: completed, 0: forward
 * it as it is, -1: the core's (a shape the program does not reproduce). */
static __always_inline int l2_normalise(struct xdp_md *ctx, void *l3, void *end, __u16 proto)
{
	__u32 l4_off = (__u32)(l3 - (void *)(long)ctx->data) + 0;
	if (proto == wire16(ETH_P_IP)) {
		struct ipv4 *ip = l3;
		if ((void *)(ip + 1) > end)
			return 0;
		if (ip->vihl >> 4 != 4)
			return 0;
		if (ip->vihl != 0x45)
			return -1; /* options: the core's */
		if (ip->frag & wire16(0x3fff))
			return 0;
		__u32 at = l4_csum_at(ip->proto);
		__u32 tot = wire16(ip->tot_len);
		if (!at || tot < 20 + (ip->proto == IPPROTO_TCP ? 20 : 8))
			return 0;
		void *l4 = ip + 1;
		if (l3 + tot > end)
			return 0;
		__u16 *f = l4 + at;
		if ((void *)(f + 1) > end)
			return 0;
		__u32 addrs = (ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) +
			      (ip->daddr >> 16);
		if (!partial(*f, addrs, ip->proto, tot - 20))
			return 0;
		return vnet_complete_csum(ctx, l4_off + 20, tot - 20, at, ip->proto == IPPROTO_UDP) < 0 ? -1 : 1;
	}
	if (proto == wire16(ETH_P_IPV6)) {
		struct ipv6 *ip = l3;
		if ((void *)(ip + 1) > end)
			return 0;
		if ((*(__u8 *)ip) >> 4 != 6)
			return 0;
		__u32 at = l4_csum_at(ip->nexthdr);
		__u32 plen = wire16(ip->plen);
		if (!at || plen < (ip->nexthdr == IPPROTO_TCP ? 20 : 8))
			return 0;
		void *l4 = ip + 1;
		if (l4 + plen > end)
			return 0;
		__u16 *f = l4 + at;
		if ((void *)(f + 1) > end)
			return 0;
		__u32 addrs = 0;
#pragma unroll
		for (int i = 0; i < 8; i++)
			addrs += ip->saddr[i] + ip->daddr[i];
		if (!partial(*f, addrs, ip->nexthdr, plen))
			return 0;
		return vnet_complete_csum(ctx, l4_off + 40, plen, at, ip->nexthdr == IPPROTO_UDP) < 0 ? -1 : 1;
	}
	return 0;
}

SEC("xdp.frags")
int vnet_fastpath(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 *portp = bpf_map_lookup_elem(&fp_ifindex, &ifindex);
	if (!portp)
		return XDP_PASS;
	__u32 port = *portp;
	if (port >= FP_MAX_PORTS)
		return XDP_PASS;
	__u64 len = (__u64)(end - data);
	if (bpf_xdp_get_buff_len(ctx) != len)
		return to_core(port, FS_MISS_MULTI_BUF);
	struct eth *eth = data;
	if ((void *)(eth + 1) > end)
		return to_core(port, FS_MISS_SHAPE);
	if (eth->dst[0] & 1)
		return to_core(port, FS_MISS_GROUP);
	__u16 et = eth->proto;
	if (et != wire16(ETH_P_IP) && et != wire16(ETH_P_IPV6))
		return to_core(port, FS_MISS_NOT_IP);
	void *l3 = eth + 1;
	__u64 now = bpf_ktime_get_ns();

	/* Switched: (ingress, source, destination) as the core's FDB decided. */
	struct fp_l2_key k2 = { .ingress = port };
	mac_copy(k2.src, eth->src);
	mac_copy(k2.dst, eth->dst);
	struct fp_l2_val *v2 = bpf_map_lookup_elem(&fp_l2, &k2);
	if (v2) {
		/* Frames for the core leave here untouched: it completes and counts them. */
		__u32 *ok = bpf_map_lookup_elem(&fp_ports, &v2->egress);
		if (!ok || !(*ok & FP_PORT_REDIRECT))
			return to_core(port, FS_MISS_EGRESS);
		if (!fits_egress(ctx, v2->egress))
			return to_core(port, FS_MISS_MULTI_BUF);
		int done = l2_normalise(ctx, l3, end, et);
		if (done < 0)
			return to_core(port, FS_MISS_SHAPE);
		if (done > 0)
			count(port, FS_CSUM_DONE, 1);
		int act = redirect(port, v2->egress, len);
		if (act < 0)
			return to_core(port, FS_MISS_EGRESS);
		__sync_fetch_and_add(&v2->packets, 1);
		__sync_fetch_and_add(&v2->bytes, len);
		v2->last_seen = now;
		return act;
	}
	if (et != wire16(ETH_P_IP))
		return to_core(port, FS_MISS_NO_ENTRY);

	/* Translated: an established TCP/UDP flow of the core's NAPT. */
	struct ipv4 *ip = l3;
	if ((void *)(ip + 1) > end)
		return to_core(port, FS_MISS_SHAPE);
	if (ip->proto != IPPROTO_TCP && ip->proto != IPPROTO_UDP)
		return to_core(port, FS_MISS_PROTO);
	if (ip->vihl != 0x45)
		return to_core(port, FS_MISS_SHAPE);
	if (ip->frag & wire16(0x3fff))
		return to_core(port, FS_MISS_FRAGMENT);
	__u32 tot = wire16(ip->tot_len);
	if ((void *)ip + tot > end)
		return to_core(port, FS_MISS_SHAPE);
	__u16 *w = (__u16 *)ip;
	__u32 hs = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		hs += w[i];
	if (fold(hs) != 0xffff)
		return to_core(port, FS_MISS_BAD_CSUM);
	__u16 *ports = (__u16 *)(ip + 1);
	__u16 *csum;
	if (ip->proto == IPPROTO_TCP) {
		__u8 *th = (__u8 *)(ip + 1);
		if ((void *)(th + 20) > end)
			return to_core(port, FS_MISS_SHAPE);
		__u32 doff = (th[12] >> 4) * 4;
		if (doff < 20 || tot < 20 + doff)
			return to_core(port, FS_MISS_SHAPE);
		if (th[13] & 0x07) /* FIN, SYN, RST */
			return to_core(port, FS_MISS_CONTROL);
		csum = (__u16 *)(th + 16);
	} else {
		__u8 *uh = (__u8 *)(ip + 1);
		if ((void *)(uh + 8) > end)
			return to_core(port, FS_MISS_SHAPE);
		if (wire16(*(__u16 *)(uh + 4)) != tot - 20)
			return to_core(port, FS_MISS_SHAPE);
		csum = (__u16 *)(uh + 6);
	}
	struct fp_nat_key kn = {
		.ingress = port,
		.saddr = ip->saddr,
		.daddr = ip->daddr,
		.sport = ports[0],
		.dport = ports[1],
		.proto = ip->proto,
	};
	struct fp_nat_val *vn = bpf_map_lookup_elem(&fp_nat, &kn);
	if (!vn)
		return to_core(port, FS_MISS_NO_ENTRY);
	if (!mac_eq(eth->dst, vn->match_dst) || !mac_eq(eth->src, vn->match_src))
		return to_core(port, FS_MISS_MAC);
	if (vn->ttl_dec && ip->ttl <= 1)
		return to_core(port, FS_MISS_TTL);
	__u32 addrs = (ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) +
		      (ip->daddr >> 16);
	__u32 *flags = bpf_map_lookup_elem(&fp_ports, &vn->egress);
	if (!flags || !(*flags & FP_PORT_REDIRECT))
		return to_core(port, FS_MISS_EGRESS);
	if (!fits_egress(ctx, vn->egress))
		return to_core(port, FS_MISS_MULTI_BUF);
	if (partial(*csum, addrs, ip->proto, tot - 20)) {
		if (vnet_complete_csum(ctx, 34, tot - 20, ip->proto == IPPROTO_TCP ? 16 : 6,
				       ip->proto == IPPROTO_UDP) < 0)
			return to_core(port, FS_MISS_PARTIAL_CSUM);
		count(port, FS_CSUM_DONE, 1);
		/* Packet pointers do not survive the call: look again. */
		data = (void *)(long)ctx->data;
		end = (void *)(long)ctx->data_end;
		eth = data;
		ip = (struct ipv4 *)(eth + 1);
		__u8 *l4 = (__u8 *)(ip + 1);
		ports = (__u16 *)l4;
		csum = (__u16 *)(l4 + (kn.proto == IPPROTO_TCP ? 16 : 6));
		if ((void *)(ports + 2) > end || (void *)(csum + 1) > end)
			return to_core(port, FS_MISS_SHAPE);
	}

	/* Rewrite: transport checksum first (it covers the old addresses and ports). */
	__u16 c = *csum;
	int udp = ip->proto == IPPROTO_UDP;
	if (!(udp && c == 0)) {
		c = upd32(c, ip->saddr, vn->new_saddr);
		c = upd32(c, ip->daddr, vn->new_daddr);
		c = upd16(c, ports[0], vn->new_sport);
		c = upd16(c, ports[1], vn->new_dport);
		if (udp && c == 0)
			c = 0xffff;
		*csum = c;
	}
	__u16 h = ip->check;
	h = upd32(h, ip->saddr, vn->new_saddr);
	h = upd32(h, ip->daddr, vn->new_daddr);
	if (vn->ttl_dec) {
		__u16 old = *(__u16 *)&ip->ttl;
		ip->ttl -= 1;
		h = upd16(h, old, *(__u16 *)&ip->ttl);
	}
	ip->check = h;
	ip->saddr = vn->new_saddr;
	ip->daddr = vn->new_daddr;
	ports[0] = vn->new_sport;
	ports[1] = vn->new_dport;
	mac_copy(eth->dst, vn->new_dst);
	mac_copy(eth->src, vn->new_src);
	__sync_fetch_and_add(&vn->packets, 1);
	__sync_fetch_and_add(&vn->bytes, len);
	vn->last_seen = now;
	int act = redirect(port, vn->egress, len);
	return act < 0 ? XDP_DROP : act;
}

char LICENSE[] SEC("license") = "GPL";
