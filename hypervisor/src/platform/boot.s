/* Corral hypervisor entry (AT&T syntax): the Multiboot2 header, the 32-bit
 * entry GRUB jumps to, the hypervisor's own boot page tables (identity map
 * of the first 4 GiB with 2 MiB pages, the first 2 MiB in 4 KiB pages with
 * a guard page below the boot stack) and the switch to long mode. It then
 * calls corral_main(magic, mbi) on the boot stack, which gives every page
 * its rights (W^X, platform/paging.rs) before anything else runs. */

.set MB2_MAGIC,        0xe85250d6
.set MB2_ARCH_I386,    0
.set CR4_PAE,          1 << 5
.set MSR_EFER,         0xc0000080
.set EFER_LME,         1 << 8
.set CR0_PE_PG,        0x80000001
.set PTE_PRESENT_RW,   0x3
.set PDE_LARGE_RW,     0x83
.set GDT_CODE64,       0x08
.set GDT_DATA,         0x10
.set PD_ENTRIES,       2048
/* The boot core's stack, which it keeps as the control core: 512 KiB.
 * Building the run's plan (with its NICs' and hooks' state, verified on
 * the way) takes about 240 KiB of it at its deepest. */
.set BOOT_STACK_SIZE,  0x80000
.set PT_ENTRIES,       512
.set PAGE_SHIFT,       12

.section .multiboot2, "a"
.balign 8
mb2_header:
    .long MB2_MAGIC
    .long MB2_ARCH_I386
    .long mb2_header_end - mb2_header
    .long -(MB2_MAGIC + MB2_ARCH_I386 + (mb2_header_end - mb2_header))
    /* end tag */
    .word 0
    .word 0
    .long 8
mb2_header_end:

.section .text.boot, "ax"
.code32
.global _start
_start:
    cli
    cld
    mov $boot_stack_top, %esp
    mov %eax, %edi              /* Multiboot2 magic */
    mov %ebx, %esi              /* boot information address */

    mov $boot_pdpt, %eax
    or $PTE_PRESENT_RW, %eax
    mov %eax, boot_pml4

    mov $boot_pd, %eax
    or $PTE_PRESENT_RW, %eax
    xor %ecx, %ecx
1:  mov %eax, boot_pdpt(,%ecx,8)
    add $4096, %eax
    inc %ecx
    cmp $4, %ecx
    jne 1b

    xor %ecx, %ecx
2:  mov %ecx, %eax
    shl $21, %eax
    or $PDE_LARGE_RW, %eax
    mov %eax, boot_pd(,%ecx,8)
    inc %ecx
    cmp $PD_ENTRIES, %ecx
    jne 2b

    /* The first 2 MiB in 4 KiB pages, so the page below the boot stack
     * can be left out: a stack overflow then faults on that guard page
     * instead of running into these tables. */
    xor %ecx, %ecx
3:  mov %ecx, %eax
    shl $PAGE_SHIFT, %eax
    or $PTE_PRESENT_RW, %eax
    mov %eax, boot_pt0(,%ecx,8)
    inc %ecx
    cmp $PT_ENTRIES, %ecx
    jne 3b
    mov $boot_stack_guard, %eax
    shr $PAGE_SHIFT, %eax
    movl $0, boot_pt0(,%eax,8)
    mov $boot_pt0, %eax
    or $PTE_PRESENT_RW, %eax
    mov %eax, boot_pd

    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $CR4_PAE, %eax
    mov %eax, %cr4
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov %cr0, %eax
    or $CR0_PE_PG, %eax
    mov %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $GDT_CODE64, $long_mode

.code64
long_mode:
    mov $GDT_DATA, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov %edi, %edi
    mov %esi, %esi
    call corral_main
3:  cli
    hlt
    jmp 3b

.section .rodata.boot, "a"
.balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff    /* data, DPL 0 */
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

.section .bss.boot, "aw", @nobits
.balign 4096
/* Rewritten with each page's rights by platform/paging.rs. */
.global boot_pd
.global boot_pt0
.global boot_stack_guard
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096 * 4
boot_pt0:
    .skip 4096
/* Left out of the page tables (see above). */
boot_stack_guard:
    .skip 4096
.global boot_stack_bottom
boot_stack_bottom:
    .skip BOOT_STACK_SIZE
boot_stack_top:
