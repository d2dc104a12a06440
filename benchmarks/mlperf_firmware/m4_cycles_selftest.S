@ A known instruction sequence for the cycle-event plugin (m4_cycles_plugin.c), run by
@ tests/test_mlperf_cycles.py: bare metal on qemu-system-arm -M mps2-an386, ends through
@ semihosting. The plugin reports the events between the two reads of TIMER0 VALUE
@ (0x40000004); the expected counts are in the test, one comment per line here.
    .syntax unified
    .cpu cortex-m4
    .fpu fpv4-sp-d16
    .thumb

    .section .vectors, "a"
    .word 0x20010000            @ initial stack pointer
    .word _start                @ reset vector (thumb bit set by .thumb_func)

    .text
    .thumb_func
    .global _start
_start:
    ldr r0, =0xE000ED88         @ CPACR: enable the FPU (CP10, CP11)
    ldr r1, [r0]
    orr r1, r1, #(0xF << 20)
    str r1, [r0]
    dsb
    isb
    ldr r2, =0x40000000         @ TIMER0 base (a literal load from flash)
    mvn r0, #0
    str r0, [r2, #8]            @ RELOAD
    str r0, [r2, #4]            @ VALUE
    movs r0, #1
    str r0, [r2]                @ CTRL: enable
    mov r1, #0x20000000         @ SRAM
    ldr r0, [r2, #4]            @ marker: the interval starts after this load
    adds r3, r3, #1             @ dp
    adds r3, r3, #1             @ dp
    adds r3, r3, #1             @ dp
    adds r3, r3, #1             @ dp
    ldr r4, [r1]                @ ld
    ldr r5, [r1, #4]            @ ls_pipe
    ldr r6, [r1, #8]            @ ls_pipe
    str r5, [r1, #12]           @ ls_pipe (a store after a load)
    add r7, r1, #16             @ dp
    ldr r0, [r7]                @ ld + addr_dep (its address is the add's result)
    ldr r6, [r6]                @ ls_pipe (r6 came from the load two instructions back); reads address 0: a flash load
    str r5, [r1, r3]            @ ls_pipe: a store after a load (register offset)
    adds r3, r3, #0             @ dp
    str r5, [r1, r3]            @ st_reg + addr_dep (register offset, after a dp writing r3)
    strd r4, r5, [r1, #16]      @ lsd
    ldr r0, =0x12345678         @ ld (a literal: a data load from flash)
    movs r3, #5                 @ dp
1:  subs r3, #1                 @ dp (x5)
    bne 1b                      @ br (x5): taken 4, not taken 1
    push {r4, r5, r6}           @ lsm, 3 registers
    pop {r4, r5, r6}            @ lsm, 3 registers
    cmp r3, #0                  @ dp
    it eq                       @ it
    addeq r3, r3, #1            @ dp (conditional, in the IT block)
    smlad r0, r4, r5, r0        @ dp
    mla r0, r4, r5, r0          @ mla
    movs r5, #3                 @ dp
    udiv r0, r4, r5             @ div
    vmov s0, r4                 @ vfp1
    vadd.f32 s1, s0, s0         @ vfp1
    vmla.f32 s1, s0, s0         @ vfp3
    vdiv.f32 s2, s1, s0         @ vfp14
    vstr s2, [r1, #32]          @ vldst
    bl 2f                       @ br, taken
    ldr r0, [r2, #4]            @ marker: the interval ends with this load
    @ SYS_EXIT through semihosting (ADP_Stopped_ApplicationExit)
    movs r0, #0x18
    ldr r1, =0x20026
    bkpt 0xab
3:  b 3b

    .thumb_func
2:  adds r3, r3, #1             @ dp
    bx lr                       @ br, taken
    .ltorg
