/* Minimal start-up for QEMU's mps2-an386 (Cortex-M4): vector table at 0x0, RAM at 0x20000000.
   Copies .data, zeroes .bss, turns the FPU on, opens newlib's semihosting streams, runs main. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
extern int main(void);
extern void initialise_monitor_handles(void);

void Reset_Handler(void);
void Default_Handler(void);

void Default_Handler(void)
{
    for (;;) {
    }
}

/* Initial stack pointer, reset, then NMI, HardFault, ... (14 more entries): all park here. */
__attribute__((section(".isr_vector"), used)) const void *const vectors[16] = {
    &_estack, (const void *)Reset_Handler,
    (const void *)Default_Handler, (const void *)Default_Handler, (const void *)Default_Handler,
    (const void *)Default_Handler, (const void *)Default_Handler, (const void *)Default_Handler,
    (const void *)Default_Handler, (const void *)Default_Handler, (const void *)Default_Handler,
    (const void *)Default_Handler, (const void *)Default_Handler, (const void *)Default_Handler,
    (const void *)Default_Handler, (const void *)Default_Handler,
};

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    /* CPACR: full access to coprocessors 10 and 11 (the FPU) before any float instruction */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm volatile("dsb\n\tisb");
    initialise_monitor_handles();
    exit(main());
}

/* newlib's crt0 is not linked (-nostartfiles): nothing to run before or after main */
void _init(void) {}
void _fini(void) {}
