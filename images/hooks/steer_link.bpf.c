// An XDP packet hook for Corral on a link direction: redirects every IPv4
// UDP datagram to one destination port to another VM's net port (which may
// be on no link at all), and counts them; everything else passes to the
// link's receiver.
//
//   [[hook]]
//   name = "steer-9999"
//   kind = "packet"
//   attach = "link:gen.0->sink.0"
//   source = "../hooks/steer_link.bpf.c"
//
// Ports are numbered as the run's port table (`xdp_md.ingress_ifindex`
// numbers the sender's the same way): each VM's ports in turn, VMs in
// manifest order.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

/// The UDP destination port steered away.
#define STEERED_PORT 9999
/// The port it goes to: the third VM's first port.
#define TO_PORT 2

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)23;

/// Datagrams steered (index 0).
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} steered SEC(".maps");

SEC("xdp")
int steer_link(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != __builtin_bswap16(ETH_P_IP) || ip->ihl != 5 ||
        ip->protocol != IPPROTO_UDP || udp->dest != __builtin_bswap16(STEERED_PORT))
        return XDP_PASS;
    __u32 key = 0;
    __u64 *n = bpf_map_lookup_elem(&steered, &key);
    if (n)
        __sync_fetch_and_add(n, 1);
    return bpf_redirect(TO_PORT, 0);
}

char LICENSE[] SEC("license") = "GPL";
