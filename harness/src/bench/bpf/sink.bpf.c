// SPDX-License-Identifier: GPL-2.0
/* The sink: attached (XDP) to the receiving interface. Benchmark frames of the current
 * trial are counted, their one-way latency (now - send time) goes to log-linear buckets,
 * their sequence numbers to a max/out-of-order tracker, and (SC_FLOWS) their UDP port pair
 * to a per-trial set of distinct flows; then they are dropped. Other
 * frames (ARP, ...) pass to the stack. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SC_N);
	__type(key, __u32);
	__type(value, __u64);
} sink_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SS_N);
	__type(key, __u32);
	__type(value, __u64);
} sink_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VB_BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} sink_lat SEC(".maps");

/* SC_FLOWS: port pair (source << 16 | destination) -> tag of the trial that last saw it,
 * so that a new trial needs no clearing: a pair seen only in earlier trials is new. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VB_FLOW_SLOTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u32);
} sink_flows SEC(".maps");

static __always_inline __u32 msb64(__u64 v)
{
	__u32 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

static __always_inline __u32 bucket(__u64 v)
{
	if (v < 64)
		return (__u32)v;
	__u32 e = msb64(v);
	__u32 sub = (__u32)(v >> (e - VB_SUB_BITS)) & ((1 << VB_SUB_BITS) - 1);
	__u32 idx = 64 + (e - 6) * (1 << VB_SUB_BITS) + sub;
	return idx < VB_BUCKETS ? idx : VB_BUCKETS - 1;
}

static __always_inline void add(__u32 k, __u64 v)
{
	__u64 *p = bpf_map_lookup_elem(&sink_stats, &k);
	if (p)
		*p += v;
}

SEC("xdp")
int vb_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u8 *pl = (void *)(udp + 1);
	if ((void *)(pl + VB_PAYLOAD_LEN) > end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	__u16 magic, tag;
	__u32 seq;
	__u64 ts;
	__builtin_memcpy(&magic, pl, 2);
	if (magic != VB_MAGIC)
		return XDP_PASS;
	__builtin_memcpy(&tag, pl + 2, 2);
	__builtin_memcpy(&seq, pl + 4, 4);
	__builtin_memcpy(&ts, pl + 8, 8);

	__u32 k = SC_TAG;
	__u64 *want = bpf_map_lookup_elem(&sink_cfg, &k);
	if (!want || (__u16)*want != tag) {
		add(SS_STALE, 1);
		return XDP_DROP;
	}
	k = SC_FLOWS;
	__u64 *flows = bpf_map_lookup_elem(&sink_cfg, &k);
	if (flows && *flows) {
		__u32 fk = ((__u32)bpf_ntohs(udp->source) << 16) | bpf_ntohs(udp->dest);
		__u32 t = tag;
		__u32 *v = bpf_map_lookup_elem(&sink_flows, &fk);
		if (v) {
			if (*v == t) {
				add(SS_SAME_FLOWS, 1);
			} else {
				*v = t;
				add(SS_NEW_FLOWS, 1);
			}
		} else if (bpf_map_update_elem(&sink_flows, &fk, &t, BPF_NOEXIST) == 0) {
			add(SS_NEW_FLOWS, 1);
		} else {
			add(SS_FLOWS_UNTRACKED, 1);
		}
	}
	__u64 now = bpf_ktime_get_ns();
	__u64 lat = now > ts ? now - ts : 0;
	__u32 b = bucket(lat);
	__u64 *c = bpf_map_lookup_elem(&sink_lat, &b);
	if (c)
		*c += 1;
	add(SS_COUNT, 1);
	add(SS_BYTES, (__u64)(end - data));
	add(SS_LAT_SUM, lat);
	k = SS_LAT_MAX;
	__u64 *mx = bpf_map_lookup_elem(&sink_stats, &k);
	if (mx && lat > *mx)
		*mx = lat;
	k = SS_MAX_SEQ;
	__u64 *ms = bpf_map_lookup_elem(&sink_stats, &k);
	if (ms) {
		/* Stored as seq + 1 so that 0 means "none yet". */
		if ((__u64)seq + 1 > *ms)
			*ms = (__u64)seq + 1;
		else
			add(SS_OOO, 1);
	}
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
