/* Ring-0 entry of the built-in kernel. Every vCPU starts here in 64-bit mode with RSI = zero page
 * (Linux 64-bit boot protocol; hvmm starts the APs here too). Ring-0 code is emulated on nested
 * hosts (~0.5 us per instruction), so it only sets up what CPL3 cannot and leaves with IRETQ to
 * kernel_main at CPL3 with IOPL 3 and an all-zero I/O bitmap in the TSS (nested hosts' emulators
 * check the bitmap and drop IOPL; bare-metal KVM honours IOPL). */
#include "abi/limits.hpp"
#define MAX_CPUS HVMM_MAX_CPUS
#define STACK_SHIFT 15          /* 32 KiB boot stack per CPU */
#define USER_CS 0x2b
#define USER_SS 0x23

    .section .text.entry, "ax"
    .globl _start
    .code64
_start:
    cli
    mov %rsi, %r12                  /* zero page */
    mov $1, %eax
    cpuid
    shr $24, %ebx                   /* initial APIC ID = CPU index */
    mov %ebx, %r13d
    cmp $MAX_CPUS, %r13d
    jae 9f
    lea 1(%r13), %rax
    shl $STACK_SHIFT, %rax
    lea boot_stacks(%rip), %rsp
    add %rax, %rsp
    mov %r13d, %edi
    call ring0_setup
    /* IRETQ frame: SS, RSP, RFLAGS (IOPL 3, IF 0), CS, RIP. RSP - 8 mimics a call's alignment. */
    lea -8(%rsp), %rax
    pushq $USER_SS
    pushq %rax
    pushq $0x3002
    pushq $USER_CS
    lea kernel_main(%rip), %rax
    pushq %rax
    mov %r13d, %edi
    mov %r12, %rsi
    iretq
9:  hlt
    jmp 9b

/* Exception stubs (CPL0 via the IDT): push a dummy error code where the CPU pushes none, then the
 * vector; report through a hypercall and halt. */
    .macro STUB vec, has_err
    .globl exc_stub_\vec
exc_stub_\vec:
    .if \has_err == 0
    pushq $0
    .endif
    pushq $\vec
    jmp exc_common
    .endm

    .irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
    STUB \v, 0
    .endr
    .irp v, 8,10,11,12,13,14,17,21,29,30
    STUB \v, 1
    .endr

exc_common:
    mov (%rsp), %rdi                /* vector */
    mov 8(%rsp), %rsi               /* error code */
    mov 16(%rsp), %rdx              /* rip */
    mov %cr2, %rcx
    mov 32(%rsp), %r8               /* rflags */
    mov 24(%rsp), %r9               /* cs */
    and $-16, %rsp
    call exception_report
1:  hlt
    jmp 1b

    .section .rodata
    .globl exc_stub_table
    .balign 8
exc_stub_table:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad exc_stub_\v
    .endr

    .section .note.GNU-stack, "", @progbits
