/* Start-up code for effkeras's bare-metal Cortex-M builds (effkeras.deploy.build).
 *
 * The vector table, the reset handler (copy .data from flash, zero .bss, enable the FPU
 * when the build uses one, run the C++ constructors, call main) and fault handlers that
 * report "EFK ERROR msg=<fault>" on the UART so that a host waiting for a protocol line
 * sees the crash at once. Symbols come from the linker script (efk_cortexm.ld).
 */
#include <stdint.h>

extern uint32_t __efk_data_load;
extern uint32_t __efk_data_start;
extern uint32_t __efk_data_end;
extern uint32_t __efk_bss_start;
extern uint32_t __efk_bss_end;
extern uint32_t __efk_stack_top;

extern void __libc_init_array(void);
extern int main(void);
extern void EfkBoardInit(void);
extern void EfkUartWrite(const char* s);

static void EfkHalt(const char* message) {
  EfkUartWrite("\r\nEFK ERROR msg=");
  EfkUartWrite(message);
  EfkUartWrite("\r\n");
  for (;;) {
  }
}

void Reset_Handler(void) {
#if defined(__ARM_FP)
  /* CPACR: full access to coprocessors 10 and 11 (the FPU) before any float instruction. */
  *(volatile uint32_t*)0xE000ED88u |= (0xFu << 20);
  __asm volatile("dsb\n\tisb" ::: "memory");
#endif
  uint32_t* src = &__efk_data_load;
  for (uint32_t* dst = &__efk_data_start; dst < &__efk_data_end;) *dst++ = *src++;
  for (uint32_t* dst = &__efk_bss_start; dst < &__efk_bss_end;) *dst++ = 0u;
  EfkBoardInit();
  __libc_init_array();
  (void)main();
  EfkHalt("main_returned");
}

void NMI_Handler(void) { EfkHalt("nmi"); }
void HardFault_Handler(void) { EfkHalt("hard_fault"); }
void MemManage_Handler(void) { EfkHalt("mem_manage_fault"); }
void BusFault_Handler(void) { EfkHalt("bus_fault"); }
void UsageFault_Handler(void) { EfkHalt("usage_fault"); }
void Default_Handler(void) { EfkHalt("unexpected_interrupt"); }

/* newlib's nosys stubs call _exit after abort(); report it instead of spinning silently. */
void _exit(int status) {
  (void)status;
  EfkHalt("abort");
  for (;;) {
  }
}

/* Linked with -nostartfiles: newlib's __libc_init_array calls these (crti/crtn absent). */
void _init(void) {}
void _fini(void) {}

typedef void (*EfkVector)(void);

__attribute__((section(".isr_vector"), used)) const EfkVector efk_vectors[16 + 32] = {
    (EfkVector)(uintptr_t)&__efk_stack_top,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    Default_Handler, /* SysTick */
    /* 32 external interrupts: none is enabled by this core. */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
};
