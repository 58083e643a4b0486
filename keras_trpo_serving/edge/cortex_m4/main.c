/* The C policy on the Cortex-M4, under semihosting. Built by serving/edge/cortex_m4.py with
   observations.h (N_OBS observations from rollouts).

   Default: for each observation print "A i" and the action, then "P" and the parameters, as
   32-bit hex (floats by their bit pattern, so nothing is lost in printing), then a few seeded
   samples ("S"), the stack high-water mark of act and sample, and "DONE".
   -DCOUNT: only act on each observation between two calls of mark(), for counting executed
   instructions in QEMU's execution log, with an empty pair of marks first for the overhead.
   A masked policy (policy.h defines POLICY_MASK_SIZE): each call also takes masks[i] from masks.h. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "observations.h"
#include "policy.h"

#ifdef POLICY_MASK_SIZE
#include "masks.h"
#define MASK(i) masks[i],
#else
#define MASK(i)
#endif

#define STACK_PAINT 16384 /* bytes below the stack pointer painted for the stack test */

__attribute__((noinline)) void mark(void)
{
    __asm volatile("" ::: "memory");
}

#ifdef COUNT
int main(void)
{
    policy_action_t action[POLICY_ACTION_SIZE];
    int i;
    mark();
    mark();
    for (i = 0; i < N_OBS; ++i) {
        mark();
        policy_act(observations[i], MASK(i) action);
        mark();
    }
    printf("COUNTED %d\n", (int)action[0]);
    return 0;
}
#else
static void print_bits(const char *tag, const void *values, int n, int size)
{
    int k;
    printf("%s", tag);
    for (k = 0; k < n; ++k) {
        uint32_t u = 0;
        if (size == 4) {
            memcpy(&u, (const char *)values + 4 * k, 4);
        } else {
            u = (uint32_t)(int32_t)((const int8_t *)values)[k];
        }
        printf(" %08lx", (unsigned long)u);
    }
}

/* Deepest stack use of one act (which 0) or sample (1) call: paint the STACK_PAINT bytes below
   the stack pointer, call, and find the lowest word that changed. Includes libm's frames. */
__attribute__((noinline)) static unsigned long high_water(int which)
{
    policy_action_t action[POLICY_ACTION_SIZE];
    policy_rng_t rng;
    uint32_t *sp, *p, *base;
    __asm volatile("mov %0, sp" : "=r"(sp));
    base = sp - STACK_PAINT / 4;
    for (p = base; p < sp - 16; ++p) *p = 0xA5A5A5A5u;
    policy_seed(&rng, 7u);
    if (which == 0) {
        policy_act(observations[0], MASK(0) action);
    } else {
        policy_sample(observations[0], MASK(0) &rng, action);
    }
    for (p = base; p < sp - 16 && *p == 0xA5A5A5A5u; ++p) {
    }
    return (unsigned long)((char *)sp - (char *)p);
}

int main(void)
{
    policy_action_t action[POLICY_ACTION_SIZE];
    float params[POLICY_PARAMS_SIZE];
    policy_rng_t rng;
    int i, k;
    for (i = 0; i < N_OBS; ++i) {
        policy_act(observations[i], MASK(i) action);
        policy_params(observations[i], MASK(i) params);
        printf("A %d", i);
        print_bits("", action, POLICY_ACTION_SIZE, (int)sizeof(policy_action_t));
        print_bits(" P", params, POLICY_PARAMS_SIZE, 4);
        printf("\n");
    }
    policy_seed(&rng, 42u);
    for (k = 0; k < 20; ++k) {
        policy_sample(observations[k % N_OBS], MASK(k % N_OBS) &rng, action);
        printf("S %d", k);
        print_bits("", action, POLICY_ACTION_SIZE, (int)sizeof(policy_action_t));
        printf("\n");
    }
    printf("STACK act %lu sample %lu\n", high_water(0), high_water(1));
    printf("DONE\n");
    return 0;
}
#endif
