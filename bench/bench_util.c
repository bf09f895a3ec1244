/*  bench_util.c - see bench_util.h.  */
#include "bench_util.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

const char *bench_prog = "bench";
bool bench_quiet;

void
bench_say (const char *fmt, ...)
{
    if (bench_quiet)
        return;
    va_list ap;
    va_start (ap, fmt);
    fprintf (stderr, "%s: ", bench_prog);
    vfprintf (stderr, fmt, ap);
    fputc ('\n', stderr);
    va_end (ap);
}

uint64_t
bench_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

int
bench_cmp_u64 (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

double
bench_pct_ms (const uint64_t *v, size_t n, double q)
{
    if (n == 0)
        return NAN;
    size_t rank = (size_t) ceil (q * (double) n);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double) v[rank - 1] / 1e6;
}

int
bench_parse_uint (const char *prog, const char *name, const char *v, uint64_t lo, uint64_t hi,
                  uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull (v, &end, 10);
    if (errno || *end || v[0] == '-' || v[0] == '\0' || x < lo || x > hi) {
        fprintf (stderr, "%s: --%s: expected a number in %" PRIu64 "..%" PRIu64 "\n", prog, name,
                 lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}
