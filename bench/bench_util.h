/*  bench_util.h - small helpers shared by the benchmark programs: a
    monotonic clock, nearest-rank percentiles, strict option numbers.  */
#ifndef DIPX_BENCH_UTIL_H_INCLUDED
#define DIPX_BENCH_UTIL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*  Progress lines: "<bench_prog>: <text>" on stderr, none when bench_quiet.  */
extern const char *bench_prog;
extern bool bench_quiet;
void bench_say (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/*  CLOCK_MONOTONIC in nanoseconds.  */
uint64_t bench_now_ns (void);

/*  qsort comparator for uint64_t.  */
int bench_cmp_u64 (const void *a, const void *b);

/*  Nearest-rank percentile q (0..1) of a sorted array of nanoseconds, in
    milliseconds; NAN when n is 0.  */
double bench_pct_ms (const uint64_t *v, size_t n, double q);

/*  Parses option --name's value v as a decimal in lo..hi; on failure says
    so on stderr (prefixed by prog) and returns -1.  */
int bench_parse_uint (const char *prog, const char *name, const char *v, uint64_t lo, uint64_t hi,
                      uint64_t *out);

#endif
