// A ten-instruction packet hook for Corral's benchmarks: passes every
// frame but IPv6 ones (which the benchmark's pipeline never carries), so
// it reads the frame the way a real filter does and answers pass.
//
//   [[hook]]
//   name = "pass-ipv4"
//   kind = "packet"
//   attach = "link:gen.0->fw.0"
//   source = "../hooks/pass_ipv4.bpf.c"
#include <linux/bpf.h>
#include <linux/if_ether.h>

#define SEC(name) __attribute__((section(name), used))

SEC("xdp")
int pass_ipv4(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    // The first byte of the EtherType: 0x86 is IPv6's (0x86dd).
    if (((__u8 *)&eth->h_proto)[0] == (ETH_P_IPV6 >> 8))
        return XDP_DROP;
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
