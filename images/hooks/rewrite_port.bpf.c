// An XDP packet hook for Corral that rewrites packets: UDP frames to one
// destination port are sent on to another (the UDP checksum is cleared,
// which IPv4 allows), and counted. Its writes reach the receiver.
//
//   [[hook]]
//   name = "move-9999"
//   kind = "packet"
//   attach = "link:gen.0->fwd.0"
//   source = "../hooks/rewrite_port.bpf.c"
//
// Built by the corral tool with `clang -O2 -g -target bpf -c`; its one map,
// `moved` (an array of one counter), is map 0 in the report.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

/// The UDP destination port whose frames are moved.
#define FROM_PORT 9999
/// Where they go instead.
#define TO_PORT 9998

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

/// Frames moved (index 0).
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} moved SEC(".maps");

SEC("xdp")
int rewrite_port(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != __builtin_bswap16(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    if (ip->protocol != IPPROTO_UDP)
        return XDP_PASS;
    struct udphdr *udp = (void *)ip + ip->ihl * 4;
    if ((void *)(udp + 1) > data_end)
        return XDP_PASS;
    if (udp->dest != __builtin_bswap16(FROM_PORT))
        return XDP_PASS;
    udp->dest = __builtin_bswap16(TO_PORT);
    udp->check = 0;
    __u32 key = 0;
    __u64 *n = bpf_map_lookup_elem(&moved, &key);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
