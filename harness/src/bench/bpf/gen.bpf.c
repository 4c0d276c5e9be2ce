// SPDX-License-Identifier: GPL-2.0
/* The generator: run with BPF_PROG_RUN in XDP live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES).
 * Every run gets the template frame; the program paces (drops the run when the next slot
 * has not come), stamps flow ports (RFC 4814 pseudorandom; or, with GC_NEW_FLOWS, a port
 * pair of its own for every frame of the trial), tag, sequence number and send
 * time, sets the frame size (IMIX), and redirects the frame out of GC_IFINDEX. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GC_N);
	__type(key, __u32);
	__type(value, __u64);
} gen_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GS_N);
	__type(key, __u32);
	__type(value, __u64);
} gen_state SEC(".maps");

struct hdr {
	__u8 b[VB_HDR_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hdr);
} gen_hdr SEC(".maps");

static __always_inline __u64 *slot(void *map, __u32 k)
{
	return bpf_map_lookup_elem(map, &k);
}

static __always_inline __u32 mix32(__u32 x)
{
	x ^= x >> 16;
	x *= 0x7feb352d;
	x ^= x >> 15;
	x *= 0x846ca68b;
	x ^= x >> 16;
	return x;
}

static __always_inline __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

SEC("xdp")
int vb_gen(struct xdp_md *ctx)
{
	__u64 *ifindex = slot(&gen_cfg, GC_IFINDEX), *interval = slot(&gen_cfg, GC_INTERVAL_FP),
	      *start = slot(&gen_cfg, GC_START_NS), *stop = slot(&gen_cfg, GC_STOP_NS),
	      *flows = slot(&gen_cfg, GC_FLOWS), *tag = slot(&gen_cfg, GC_TAG),
	      *imix = slot(&gen_cfg, GC_IMIX), *seed = slot(&gen_cfg, GC_SEED),
	      *dport = slot(&gen_cfg, GC_DPORT), *newflows = slot(&gen_cfg, GC_NEW_FLOWS);
	__u64 *next = slot(&gen_state, GS_NEXT_FP), *seqp = slot(&gen_state, GS_SEQ),
	      *sent = slot(&gen_state, GS_SENT), *bytes = slot(&gen_state, GS_BYTES),
	      *skipped = slot(&gen_state, GS_SKIPPED);
	if (!ifindex || !interval || !start || !stop || !flows || !tag || !imix || !seed || !dport || !newflows ||
	    !next || !seqp || !sent || !bytes || !skipped)
		return XDP_ABORTED;

	__u64 now = bpf_ktime_get_ns();
	if (now < *start || now >= *stop)
		return XDP_DROP;
	/* Open loop: the generator never waits for the DUT, so the DUT cannot make it omit
	 * samples (coordinated omission). The generator's own stalls are not folded into the
	 * latency (a frame is stamped when it leaves): slots more than 64 behind are given up
	 * and counted (GS_SKIPPED, reported per trial); the offered rate is what was sent. */
	if (*interval) {
		__u64 nowfp = now << 8, n = *next;
		if (n == 0)
			n = *start << 8;
		if (nowfp < n)
			return XDP_DROP;
		/* Behind by more than 64 slots (the generator was preempted): do not burst
		 * to catch up; the offered rate is measured from what was sent. */
		if (nowfp - n > 64 * *interval) {
			*skipped += (nowfp - n) / *interval;
			n = nowfp;
		}
		*next = n + *interval;
	}

	__u64 seq = *seqp;
	*seqp = seq + 1;

	if (*imix) {
		/* 7:4:1 of 64, 570, 1518 bytes on the wire (60, 566, 1514 on a veth). */
		__u32 k = seq % 12;
		int want = k < 7 ? 60 : (k < 11 ? 566 : 1514);
		int have = (int)(ctx->data_end - ctx->data);
		if (want != have && bpf_xdp_adjust_tail(ctx, want - have))
			return XDP_DROP;
	}

	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u8 *pl = (void *)(udp + 1);
	if ((void *)(pl + VB_PAYLOAD_LEN) > end)
		return XDP_ABORTED;

	__u32 zero = 0;
	struct hdr *tpl = bpf_map_lookup_elem(&gen_hdr, &zero);
	if (!tpl)
		return XDP_ABORTED;
	__builtin_memcpy(data, tpl->b, VB_HDR_USED);

	__u32 len = (__u32)(end - data);
	if (*imix) {
		ip->tot_len = bpf_htons(len - 14);
		udp->len = bpf_htons(len - 34);
		ip->check = 0;
		__u16 *w = (void *)ip;
		__u32 s = 0;
#pragma unroll
		for (int i = 0; i < 10; i++)
			s += w[i];
		ip->check = csum_fold(s);
	}

	if (*newflows) {
		/* Every frame of the trial a flow never seen before in it: the source port
		 * moves first (a new inside endpoint, so a new NAT mapping, for the first
		 * VB_PORTS frames), then the destination port. */
		__u32 n = (__u32)seq;
		udp->source = bpf_htons(1024 + n % VB_PORTS);
		udp->dest = bpf_htons(1024 + (n / VB_PORTS) % VB_PORTS);
	} else {
		__u32 flow = (__u32)(seq % (*flows ? *flows : 1));
		__u32 h = mix32(flow ^ (__u32)*seed);
		__u32 h2 = mix32(h ^ 0x9e3779b9);
		udp->source = bpf_htons(1024 + h % 64512);
		udp->dest = *dport ? bpf_htons((__u16)*dport) : bpf_htons(1024 + h2 % 64512);
	}
	udp->check = 0;

	__u16 magic = VB_MAGIC, t = (__u16)*tag;
	__u32 s32 = (__u32)seq;
	__builtin_memcpy(pl, &magic, 2);
	__builtin_memcpy(pl + 2, &t, 2);
	__builtin_memcpy(pl + 4, &s32, 4);
	now = bpf_ktime_get_ns();
	__builtin_memcpy(pl + 8, &now, 8);

	*sent += 1;
	*bytes += len;
	return bpf_redirect((__u32)*ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
