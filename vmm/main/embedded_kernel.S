/* The built-in guest kernel, linked into the hvmm binary as read-only data. */
    .section .rodata.hvmm_guest, "a"
    .balign 64
    .globl hvmm_embedded_kernel_start, hvmm_embedded_kernel_end
hvmm_embedded_kernel_start:
    .incbin HVMM_GUEST_ELF
hvmm_embedded_kernel_end:
    .section .note.GNU-stack, "", @progbits
