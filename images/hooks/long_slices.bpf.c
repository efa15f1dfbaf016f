// A slice hook for Corral: the VM it is attached to gets 40 M-instruction
// slices while it runs hot (it waited for work less than it ran), and the
// manifest's slice otherwise. Counts its answers.
//
//   [[hook]]
//   name = "long-slices"
//   kind = "slice"
//   attach = "vm:fast"
//   source = "../hooks/long_slices.bpf.c"
#include <linux/bpf.h>
#include "corral_hooks.h"

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

/// The slice it gives a busy VM, in instructions.
#define LONG_SLICE 40000000ULL

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

/// Answers given: 0 the long slice, 1 the default.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} answers SEC(".maps");

SEC("tracepoint/corral/slice")
int long_slices(struct corral_slice_ctx *ctx)
{
    __u32 key = ctx->waited < ctx->used ? 0 : 1;
    __u64 *n = bpf_map_lookup_elem(&answers, &key);
    if (n)
        __sync_fetch_and_add(n, 1);
    return key == 0 ? LONG_SLICE : CORRAL_SLICE_DEFAULT;
}

char LICENSE[] SEC("license") = "GPL";
