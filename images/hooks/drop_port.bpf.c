// An XDP packet hook for Corral: drops UDP frames to one destination port
// and counts them; counts every UDP destination port it sees.
//
//   [[hook]]
//   name = "drop-9999"
//   kind = "packet"
//   attach = "link:gen.0->sink.0"
//   source = "../hooks/drop_port.bpf.c"
//
// Built by the corral tool with `clang -O2 -g -target bpf -c`. The maps are
// BTF-defined (`SEC(".maps")`, which needs `-g`); map 0 in the report is
// `drops` and map 1 is `ports` (maps are numbered in name order).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

/// The UDP destination port this hook drops.
#define DENIED_PORT 9999

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key,
                                   const void *value, __u64 flags) = (void *)2;

/// Frames dropped (index 0).
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} drops SEC(".maps");

/// Frames seen per UDP destination port.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u16);
    __type(value, __u64);
} ports SEC(".maps");

SEC("xdp")
int drop_port(struct xdp_md *ctx)
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
    __u16 port = __builtin_bswap16(udp->dest);
    __u64 *seen = bpf_map_lookup_elem(&ports, &port);
    if (seen) {
        __sync_fetch_and_add(seen, 1);
    } else {
        __u64 one = 1;
        bpf_map_update_elem(&ports, &port, &one, BPF_ANY);
    }
    if (port != DENIED_PORT)
        return XDP_PASS;
    __u32 key = 0;
    __u64 *n = bpf_map_lookup_elem(&drops, &key);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
