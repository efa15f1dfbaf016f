// A packet hook the verifier refuses: it loops over the frame's bytes, and
// a Corral hook has no back edges (every run must end). The corral tool
// refuses the manifest before boot, naming the hook, the instruction and
// the rule. Used by integration/tests/hooks.rs.
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

SEC("xdp")
int sum_bytes(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    unsigned char *end = (void *)(long)ctx->data_end;
    unsigned int sum = 0;
    for (unsigned char *p = data; p < end; p++)
        sum += *p;
    return sum == 0x12345 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
