/* Application-processor start-up trampoline (AT&T syntax), assembled by
 * trampoline.rs and copied by it to a page below 1 MiB. A start-up IPI
 * starts the core here in real mode (CS = page >> 4, IP = 0). The code is
 * position independent: it finds its page from CS and reads everything
 * else from the data area trampoline.rs writes in the same page (the
 * named operands are offsets into that page). Real mode -> protected mode
 * -> long mode on the boot page tables, then, if this core's local APIC ID
 * is the one being started, call entry(index, ist_top, ap_main) on the
 * core's own stack. Any other core halts. */

.set AP_CR0_PE,        1 << 0
.set AP_CR0_NW,        1 << 29
.set AP_CR0_CD,        1 << 30
.set AP_CR0_PG,        1 << 31
.set AP_CR4_PAE,       1 << 5
.set AP_MSR_EFER,      0xc0000080
.set AP_EFER_LME,      1 << 8
.set AP_EFER_NXE,      1 << 11
.set AP_CR0_WP,        1 << 16
.set AP_SEGMENT_SHIFT, 4
.set AP_APIC_ID_SHIFT, 24

.section .rodata.corral_ap_trampoline, "a"
.global corral_ap_trampoline_start
.global corral_ap_trampoline_end

.code16
corral_ap_trampoline_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds                      /* data area offsets are DS-relative */
    movzwl %ax, %ebx
    shll $AP_SEGMENT_SHIFT, %ebx      /* EBX = linear address of the page */
    lgdtl {gdt_pointer}
    leal (ap_protected - corral_ap_trampoline_start)(%ebx), %eax
    movl %eax, {far_offset}
    movw ${code32}, {far_selector}
    movl %cr0, %eax
    andl $~(AP_CR0_CD | AP_CR0_NW), %eax  /* caches on (INIT leaves them off) */
    orl $AP_CR0_PE, %eax
    movl %eax, %cr0
    ljmpl *{far_offset}

.code32
ap_protected:
    movw ${data}, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $AP_CR4_PAE, %eax
    movl %eax, %cr4
    movl {cr3}(%ebx), %eax
    movl %eax, %cr3
    movl $AP_MSR_EFER, %ecx
    rdmsr
    orl $(AP_EFER_LME | AP_EFER_NXE), %eax  /* NXE: the tables have NX bits */
    wrmsr
    movl %cr0, %eax
    orl $(AP_CR0_PG | AP_CR0_WP), %eax      /* WP: read-only binds ring 0 too */
    movl %eax, %cr0                   /* long mode, compatibility submode */
    leal (ap_long - corral_ap_trampoline_start)(%ebx), %eax
    movl %eax, {far_offset}(%ebx)
    movw ${code64}, {far_selector}(%ebx)
    ljmp *{far_offset}(%ebx)

.code64
ap_long:
    movw ${data}, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movl %ebx, %ebx                   /* the upper half is undefined after the switch */
    movq {lapic_id_register}(%rbx), %rax
    movl (%rax), %eax
    shrl $AP_APIC_ID_SHIFT, %eax
    cmpl {apic_id}(%rbx), %eax
    jne 2f
    movq {stack_top}(%rbx), %rsp
    movl {index}(%rbx), %edi
    movq {ist_top}(%rbx), %rsi
    movq {ap_main}(%rbx), %rdx
    movq {entry}(%rbx), %rax
    xorl %ebp, %ebp
    callq *%rax
2:  cli
    hlt
    jmp 2b
corral_ap_trampoline_end:
