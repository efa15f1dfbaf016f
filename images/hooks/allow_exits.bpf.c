// A ten-instruction exit hook for Corral's benchmarks: allows every exit
// but one hypercall nobody makes (number 0xc0ffee with arguments 1, 2),
// so it reads the context the way a real filter does and answers allow.
//
//   [[hook]]
//   name = "allow-exits"
//   kind = "exit"
//   attach = "vm:bench-hooked"
//   source = "../hooks/allow_exits.bpf.c"
#include <linux/bpf.h>
#include "corral_hooks.h"

#define SEC(name) __attribute__((section(name), used))

SEC("tracepoint/corral/exit")
int allow_exits(struct corral_exit_ctx *ctx)
{
    if (ctx->reason == CORRAL_EXIT_REASON_VMCALL && ctx->hypercall == 0xc0ffee &&
        ctx->arg0 == 1 && ctx->arg1 == 2)
        return CORRAL_EXIT_DENY;
    return CORRAL_EXIT_ALLOW;
}

char LICENSE[] SEC("license") = "GPL";
