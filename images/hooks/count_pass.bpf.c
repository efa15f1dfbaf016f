// A packet hook that passes every frame and counts it: index 0 of its
// array map `frames` holds the frames it saw. `corral hook attach` puts it
// on a running host's link (the service test swaps two of these on a live
// link and checks that the counts add up: every frame judged once).
//
//   corral hook attach count-a --attach link:gen.0->sink.0 \
//       --source images/hooks/count_pass.bpf.c
//   corral hook maps count-a
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

/// Frames seen (index 0).
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} frames SEC(".maps");

SEC("xdp")
int count_pass(struct xdp_md *ctx)
{
    __u32 key = 0;
    __u64 *n = bpf_map_lookup_elem(&frames, &key);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
