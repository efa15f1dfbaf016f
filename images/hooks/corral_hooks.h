// Corral's restart and exit hook contexts for C programs (the layouts are
// vmm-abi's `hook::context`, whose sizes and offsets are checked there at
// compile time): include this after <linux/bpf.h>.
//
// A restart hook is `SEC("tracepoint/corral/restart") int f(struct
// corral_restart_ctx *ctx)` and returns CORRAL_RESTART or
// CORRAL_STAY_DOWN; an exit hook is `SEC("tracepoint/corral/exit")`, takes
// a `struct corral_exit_ctx *` and returns CORRAL_EXIT_ALLOW,
// CORRAL_EXIT_DENY or, for a hypercall, CORRAL_EXIT_FAIL(code); a slice
// hook is `SEC("tracepoint/corral/slice")`, takes a `struct
// corral_slice_ctx *` and returns a slice length (0: the manifest's). The
// tracepoint section is only how the object says "a program over a
// context struct"; nothing here is a Linux tracepoint.
#ifndef CORRAL_HOOKS_H
#define CORRAL_HOOKS_H

#include <linux/types.h>

struct corral_restart_ctx {
    __u32 vm;           // the VM's manifest index
    __u32 clone;        // which clone of it
    __u32 status;       // CORRAL_STATUS_*
    __u32 pad0;
    __s64 exit_code;    // its exit code, if it exited
    __u32 reason;       // CORRAL_REASON_*
    __u32 restarts;     // restarts so far
    __u64 instructions; // instructions it ran in this life
};

#define CORRAL_STATUS_EXITED 0
#define CORRAL_STATUS_STOPPED 1
#define CORRAL_STATUS_START_FAILED 2

#define CORRAL_REASON_NONE 0
#define CORRAL_REASON_TRIPLE_FAULT 1
#define CORRAL_REASON_EPT_VIOLATION 2
#define CORRAL_REASON_BAD_HYPERCALL 3
#define CORRAL_REASON_DENIED 4
#define CORRAL_REASON_DEVICE 5
#define CORRAL_REASON_BUDGET 6
#define CORRAL_REASON_HALTED 7
#define CORRAL_REASON_HOOK_DENIED 8
#define CORRAL_REASON_OTHER 9

#define CORRAL_STAY_DOWN 0
#define CORRAL_RESTART 1

struct corral_exit_ctx {
    __u32 reason;        // VMX basic exit reason
    __u32 pad0;
    __u64 qualification; // exit qualification
    __u64 rip;           // guest RIP
    __u64 hypercall;     // RAX of a VMCALL, else 0
    __u64 arg0;          // RDI of a VMCALL
    __u64 arg1;          // RSI
    __u64 arg2;          // RDX
    __u64 gpa;           // guest-physical address of an EPT exit, else 0
};

#define CORRAL_EXIT_REASON_VMCALL 18

#define CORRAL_EXIT_ALLOW 0
#define CORRAL_EXIT_DENY 1
#define CORRAL_EXIT_FAIL(code) (2ULL | ((__u64)(__u32)(code) << 32))

struct corral_slice_ctx {
    __u32 vm;        // the VM's manifest index
    __u32 core;      // the core it is put on
    __u64 slices;    // slices so far
    __u64 used;      // instructions it used so far
    __u64 waited;    // instructions it spent waiting for work
    __u32 last_exit; // VMX basic reason of its last exit
    __u32 pad0;
};

// A slice hook's answer: the slice length in instructions, or this for
// the manifest's.
#define CORRAL_SLICE_DEFAULT 0

#endif
