// SPDX-License-Identifier: GPL-2.0
/* The `xdp-redirect` peer: attached (native XDP) to both forwarding interfaces of the DUT
 * namespace. Every frame is redirected to the other port through a DEVMAP_HASH keyed by
 * the ingress ifindex (value: the other port's ifindex), untouched: an L2 wire, the limit
 * of the topology (no lookup, no rewrite, no copy), not a switch and not a NAT.
 *
 * The kernel delivers a redirect into a veth only when the veth's peer has NAPI (a native
 * XDP program or GRO on); since Linux 6.3 the devmap checks the target's xdp_features
 * (NETDEV_XDP_ACT_NDO_XMIT) and the frame is dropped otherwise. bench/peers.rs checks that
 * before it starts.
 *
 * Counters (per-CPU array "redirect_stats"): RS_SEEN frames the program ran for, RS_MISS
 * frames whose ingress port had no entry (dropped). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define RS_SEEN 0
#define RS_MISS 1
#define RS_N 2

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} redirect_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RS_N);
	__type(key, __u32);
	__type(value, __u64);
} redirect_stats SEC(".maps");

static __always_inline void count(__u32 k)
{
	__u64 *p = bpf_map_lookup_elem(&redirect_stats, &k);
	if (p)
		*p += 1;
}

SEC("xdp")
int vb_redirect(struct xdp_md *ctx)
{
	count(RS_SEEN);
	/* The low bits of the flags are the action when the key is missing. */
	long act = bpf_redirect_map(&redirect_ports, ctx->ingress_ifindex, XDP_DROP);
	if (act != XDP_REDIRECT)
		count(RS_MISS);
	return (int)act;
}

char LICENSE[] SEC("license") = "GPL";
