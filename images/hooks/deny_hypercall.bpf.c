// An exit hook for Corral (a seccomp-style filter): the VM it is attached
// to may not make the `metric` hypercall (number 4); it is stopped, by the
// hook's name, the first time it tries. Every other exit is allowed and
// counted by VMX exit reason.
//
//   [[hook]]
//   name = "no-metrics"
//   kind = "exit"
//   attach = "vm:quiet"
//   source = "../hooks/deny_hypercall.bpf.c"
#include <linux/bpf.h>
#include "corral_hooks.h"

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

/// The hypercall it denies: `metric`.
#define DENIED_HYPERCALL 4

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

/// Exits allowed, by VMX basic exit reason.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u64);
} exits SEC(".maps");

SEC("tracepoint/corral/exit")
int deny_hypercall(struct corral_exit_ctx *ctx)
{
    __u32 reason = ctx->reason;
    if (reason == CORRAL_EXIT_REASON_VMCALL && ctx->hypercall == DENIED_HYPERCALL)
        return CORRAL_EXIT_DENY;
    __u64 *seen = bpf_map_lookup_elem(&exits, &reason);
    if (seen)
        __sync_fetch_and_add(seen, 1);
    return CORRAL_EXIT_ALLOW;
}

char LICENSE[] SEC("license") = "GPL";
