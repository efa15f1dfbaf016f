// An XDP packet hook for Corral that answers UDP echo requests itself:
// every IPv4 UDP datagram to port 7 goes back to its sender (XDP_TX) with
// the Ethernet addresses, the IP addresses and the ports swapped (the UDP
// and IP checksums stay valid: both cover the swapped pairs symmetrically);
// everything else passes. It counts the datagrams it reflected.
//
//   [[hook]]
//   name = "reflect"
//   kind = "packet"
//   attach = "link:client.0->server.0"
//   source = "../hooks/reflect_udp.bpf.c"
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

/// The UDP port this hook answers for.
#define ECHO_PORT 7

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

/// Datagrams reflected (index 0).
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} reflected SEC(".maps");

SEC("xdp")
int reflect_udp(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != __builtin_bswap16(ETH_P_IP) || ip->ihl != 5 ||
        ip->protocol != IPPROTO_UDP || udp->dest != __builtin_bswap16(ECHO_PORT))
        return XDP_PASS;
    unsigned char mac[ETH_ALEN];
    __builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, mac, ETH_ALEN);
    __be32 addr = ip->saddr;
    ip->saddr = ip->daddr;
    ip->daddr = addr;
    __be16 port = udp->source;
    udp->source = udp->dest;
    udp->dest = port;
    __u32 key = 0;
    __u64 *n = bpf_map_lookup_elem(&reflected, &key);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
