// A restart hook for Corral: a VM that triple-faults is restarted twice,
// then left down; a VM that stops for any other reason is left down at
// once. Counts the stops it saw by reason class.
//
//   [[hook]]
//   name = "twice"
//   kind = "restart"
//   attach = "vm:crash"
//   source = "../hooks/restart_twice.bpf.c"
#include <linux/bpf.h>
#include "corral_hooks.h"

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

/// Triple faults restarted at most this often.
#define MAX_RESTARTS 2

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

/// Stops seen, by reason class.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u64);
} stops SEC(".maps");

SEC("tracepoint/corral/restart")
int restart_twice(struct corral_restart_ctx *ctx)
{
    __u32 reason = ctx->reason;
    __u64 *seen = bpf_map_lookup_elem(&stops, &reason);
    if (seen)
        __sync_fetch_and_add(seen, 1);
    if (reason == CORRAL_REASON_TRIPLE_FAULT && ctx->restarts < MAX_RESTARTS)
        return CORRAL_RESTART;
    return CORRAL_STAY_DOWN;
}

char LICENSE[] SEC("license") = "GPL";
