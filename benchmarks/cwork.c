/* The native CPU-bound benchmark for benchmarks/ab_evidence.py: `cwork N` does N units of integer work.
   The modulo chain has a loop-carried dependency, so the compiler can neither vectorise nor fold it. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 0;
    unsigned long acc = 0;
    for (long i = 0; i < n; i++)
        acc = (acc * 31 + (unsigned long)i) % 1000003;
    printf("result %lu\n", acc);
    return 0;
}
