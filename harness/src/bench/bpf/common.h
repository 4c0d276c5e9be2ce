/* Shared by the generator and sink XDP programs and mirrored in bench/gen.rs, bench/sink.rs.
 *
 * Payload of every benchmark frame, right after the UDP header (offset 42), 16 bytes so a
 * 64-byte frame (60 bytes on a veth, which carries no FCS) holds it:
 *   u16 magic (VB_MAGIC), u16 tag (trial number), u32 seq, u64 send time (bpf_ktime_get_ns)
 * all in host byte order (both ends run on this machine).
 */
#ifndef VB_COMMON_H
#define VB_COMMON_H

#define VB_MAGIC 0xb5e7
#define VB_PAYLOAD_OFF 42
#define VB_PAYLOAD_LEN 16

/* Latency buckets: values < 64 ns exactly; above, 32 sub-buckets per power of two
 * (about 3% resolution): idx = 64 + (msb - 6) * 32 + next five bits. */
#define VB_BUCKETS 2048
#define VB_SUB_BITS 5

/* Generator config (array "gen_cfg", u64 values). */
#define GC_IFINDEX 0
#define GC_INTERVAL_FP 1 /* ns << 8 between frames; 0 = unpaced */
#define GC_START_NS 2
#define GC_STOP_NS 3
#define GC_FLOWS 4
#define GC_TAG 5
#define GC_IMIX 6 /* 1: 7:4:1 of 64/570/1518-byte frames */
#define GC_SEED 7
#define GC_DPORT 8 /* nonzero: fixed UDP destination port (a forwarded port) */
#define GC_NEW_FLOWS 9 /* 1: frame n of a trial is flow n (--new-flows), never repeated */
#define GC_N 10

/* --new-flows: frame n gets source port 1024 + n % VB_PORTS and destination port
 * 1024 + (n / VB_PORTS) % VB_PORTS: 64512^2 distinct port pairs before one repeats. */
#define VB_PORTS 64512

/* The frame's headers (Ethernet, IPv4, UDP: 42 bytes), rewritten into every frame:
 * live frames recycle pages, and a DUT that forwards in place (the kernel) hands them
 * back with its rewritten MACs, addresses and TTL. */
#define VB_HDR_LEN 48
#define VB_HDR_USED 42

/* Generator state (array "gen_state", u64 values; one writer, the generator's CPU). */
#define GS_NEXT_FP 0
#define GS_SEQ 1
#define GS_SENT 2
#define GS_BYTES 3
#define GS_SKIPPED 4 /* slots given up when more than 64 behind (generator stalled) */
#define GS_N 5

/* Sink config (array "sink_cfg"). */
#define SC_TAG 0
#define SC_FLOWS 1 /* 1: count distinct UDP port pairs per trial (--check-flows) */
#define SC_N 2

/* Port pairs the sink remembers for SC_FLOWS (hash "sink_flows", not preallocated). */
#define VB_FLOW_SLOTS (1 << 21)

/* Sink counters (per-CPU array "sink_stats"). */
#define SS_COUNT 0
#define SS_MAX_SEQ 1
#define SS_OOO 2
#define SS_BYTES 3
#define SS_STALE 4 /* benchmark frames of another trial */
#define SS_LAT_SUM 5
#define SS_LAT_MAX 6
#define SS_NEW_FLOWS 7 /* SC_FLOWS: frames whose port pair was first seen in this trial */
#define SS_SAME_FLOWS 8 /* SC_FLOWS: frames of a port pair already seen in this trial */
#define SS_FLOWS_UNTRACKED 9 /* SC_FLOWS: frames whose pair found no room in sink_flows */
#define SS_N 10

#endif
