/*  fi_alloc.c - allocation-failure injection for the test broker dipxd_fi
    (curl's torture mode and SQLite's fault simulation, done with the
    linker). dipxd_fi is dipxd linked with

        -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,
        --wrap=strndup,--wrap=sodium_malloc,--wrap=dipx_server_run

    so every allocation made by OUR statically linked objects (broker/,
    proto/, keys/, and msgpack-c's inline sbuffer) comes here first, and this
    file decides from DIPX_FI_ALLOC whether it fails (NULL, errno ENOMEM).

    What it does not reach, on purpose: allocations inside shared libraries
    (libzmq, liblmdb, libsodium's own, inih, jansson, glibc's fopen). --wrap
    only rewrites references in the objects being linked. libzmq aborts on
    allocation failure by design (alloc_assert), so failing its allocations
    could only test that abort; LMDB reports ENOMEM as an error code, which
    reaches the same paths as the failures injected here.

    DIPX_FI_ALLOC, comma-separated words:

        count             fail nothing; report how many allocations start-up
                          made (at the start of the service loop) and how
                          many the run made (at exit)
        start | run       count calls from process start (default), or from
                          the start of the service loop, i.e. after READY
        nth=N             fail the N-th call (1-based) ...
        burst=B           ... and the B-1 calls after it (default 1) ...
        every=K           ... and again every K calls after the N-th
        until=PATH        ... but none once the file PATH exists (the last
                          word: PATH runs to the end of the spec), so a
                          test ends the failures at a moment it chooses
        paths             fail the first call made on each distinct call path
                          (the allocation site and every caller above it, up
                          to 16 frames), once; one run sweeps every site the
                          workload reaches, from each of its callers
        max=M             paths: stop after M failures

    Every failure is logged to stderr ("fi-alloc: fail ...", with the call
    path's offsets in the executable: `addr2line -f -e dipxd_fi OFFSETS`), so a
    test can count them and a crash after one can be traced to it.
*/
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dipx_server.h"

void *__real_malloc (size_t size);
void *__real_calloc (size_t n, size_t size);
void *__real_realloc (void *p, size_t size);
char *__real_strdup (const char *s);
char *__real_strndup (const char *s, size_t n);
void *__real_sodium_malloc (size_t size);
int __real_dipx_server_run (dipx_server_t *self, volatile sig_atomic_t *stop,
                            volatile sig_atomic_t *reload, const char *cfg_path);

void *__wrap_malloc (size_t size);
void *__wrap_calloc (size_t n, size_t size);
void *__wrap_realloc (void *p, size_t size);
char *__wrap_strdup (const char *s);
char *__wrap_strndup (const char *s, size_t n);
void *__wrap_sodium_malloc (size_t size);
int __wrap_dipx_server_run (dipx_server_t *self, volatile sig_atomic_t *stop,
                            volatile sig_atomic_t *reload, const char *cfg_path);

#define S_DEPTH 16   /* frames that name a call path: all of them up to main, in practice */
#define S_PATHS 8192 /* distinct paths remembered */

static struct {
    bool enabled;   /* DIPX_FI_ALLOC set */
    bool count;     /* count only */
    bool run;       /* count from the service loop */
    bool paths;     /* fail each new call path once */
    uint64_t nth;   /* first failing call, 0 = none */
    uint64_t burst; /* consecutive failures */
    uint64_t every; /* period, 0 = once */
    uint64_t max;   /* paths: most failures */
    char until[512]; /* stop failing once this file exists; "" = never */
} s_cfg;

static atomic_bool s_armed;            /* counting has started */
static atomic_uint_fast64_t s_calls;   /* every call */
static atomic_uint_fast64_t s_base;    /* s_calls when counting started */
static atomic_uint_fast64_t s_before;  /* calls before the service loop */
static atomic_uint_fast64_t s_failed;  /* failures injected */
static atomic_flag s_lock = ATOMIC_FLAG_INIT;
static uint64_t s_seen[S_PATHS];       /* path hashes (open addressing, 0 = empty) */
static size_t s_nseen;

__attribute__ ((format (printf, 1, 2))) static void
s_say (const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (line, sizeof line - 1, fmt, ap);
    va_end (ap);
    if (n < 0)
        return;
    if ((size_t) n > sizeof line - 2)
        n = (int) sizeof line - 2;
    line[n++] = '\n';
    ssize_t rc = write (STDERR_FILENO, line, (size_t) n);
    (void) rc;
}

static uint64_t
s_word (const char *spec, const char *key)
{
    const char *p = strstr (spec, key);
    return p ? strtoull (p + strlen (key), NULL, 10) : 0;
}

__attribute__ ((constructor)) static void
s_init (void)
{
    const char *spec = getenv ("DIPX_FI_ALLOC");
    if (!spec || !*spec)
        return;
    s_cfg.enabled = true;
    s_cfg.count = strstr (spec, "count") != NULL;
    s_cfg.run = strstr (spec, "run") != NULL;
    s_cfg.paths = strstr (spec, "paths") != NULL;
    s_cfg.nth = s_word (spec, "nth=");
    s_cfg.burst = s_word (spec, "burst=");
    s_cfg.every = s_word (spec, "every=");
    s_cfg.max = s_word (spec, "max=");
    const char *until = strstr (spec, "until=");
    if (until)
        snprintf (s_cfg.until, sizeof s_cfg.until, "%s", until + strlen ("until="));
    if (s_cfg.burst == 0)
        s_cfg.burst = 1;
    if (s_cfg.max == 0)
        s_cfg.max = UINT64_MAX;
    if (s_cfg.paths) {
        /* The first backtrace() loads the unwinder (libgcc_s, with libc's own
           malloc): do it now, not inside an allocation.  */
        void *frames[4];
        backtrace (frames, 4);
    }
    atomic_store (&s_armed, !s_cfg.run);
    s_say ("fi-alloc: armed with '%s'%s", spec, s_cfg.run ? " from the service loop" : "");
}

__attribute__ ((destructor)) static void
s_fini (void)
{
    if (s_cfg.enabled)
        s_say ("fi-alloc: exit after %llu allocations (%llu before the service loop), %llu failed",
               (unsigned long long) atomic_load (&s_calls),
               (unsigned long long) atomic_load (&s_before),
               (unsigned long long) atomic_load (&s_failed));
}

/*  true if this call path has not failed before (and is now remembered).  */
static bool
s_new_path (void)
{
    void *frames[S_DEPTH + 2];
    int n = backtrace (frames, S_DEPTH + 2);
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the return addresses */
    for (int i = 2; i < n; i++) { /* 0 = s_new_path, 1 = s_fail */
        uintptr_t a = (uintptr_t) frames[i];
        for (size_t b = 0; b < sizeof a; b++) {
            h ^= (a >> (8 * b)) & 0xff;
            h *= 1099511628211ull;
        }
    }
    h |= 1;
    bool fresh = false;
    while (atomic_flag_test_and_set_explicit (&s_lock, memory_order_acquire))
        ;
    if (s_nseen < S_PATHS / 2 && atomic_load (&s_failed) < s_cfg.max) {
        size_t i = (size_t) (h % S_PATHS);
        while (s_seen[i] && s_seen[i] != h)
            i = (i + 1) % S_PATHS;
        if (!s_seen[i]) {
            s_seen[i] = h;
            s_nseen++;
            fresh = true;
        }
    }
    atomic_flag_clear_explicit (&s_lock, memory_order_release);
    if (fresh) {
        char where[S_DEPTH * 20 + 1];
        size_t len = 0;
        for (int i = 3; i < n && len + 20 < sizeof where; i++) {
            Dl_info info;
            uintptr_t a = (uintptr_t) frames[i] - 1; /* inside the call instruction */
            if (dladdr (frames[i], &info) && info.dli_fbase)
                a -= (uintptr_t) info.dli_fbase;
            len += (size_t) snprintf (where + len, sizeof where - len, " %#lx", (unsigned long) a);
        }
        where[len] = 0;
        s_say ("fi-alloc: fail path%s", where);
    }
    return fresh;
}

/*  Decides whether this allocation fails.  */
static bool
s_fail (const char *what, size_t size)
{
    if (!s_cfg.enabled)
        return false;
    uint64_t c = atomic_fetch_add (&s_calls, 1) + 1;
    if (!atomic_load (&s_armed))
        return false;
    c -= atomic_load (&s_base);
    if (s_cfg.count)
        return false;
    bool fail = false;
    if (s_cfg.paths)
        fail = s_new_path ();
    else if (s_cfg.nth && c >= s_cfg.nth)
        fail = s_cfg.every ? (c - s_cfg.nth) % s_cfg.every < s_cfg.burst
                           : c - s_cfg.nth < s_cfg.burst;
    if (!fail || (s_cfg.until[0] && access (s_cfg.until, F_OK) == 0))
        return false;
    atomic_fetch_add (&s_failed, 1);
    s_say ("fi-alloc: fail %s(%zu), call %llu", what, size, (unsigned long long) c);
    errno = ENOMEM;
    return true;
}

void *
__wrap_malloc (size_t size)
{
    return s_fail ("malloc", size) ? NULL : __real_malloc (size);
}

void *
__wrap_calloc (size_t n, size_t size)
{
    return s_fail ("calloc", n * size) ? NULL : __real_calloc (n, size);
}

void *
__wrap_realloc (void *p, size_t size)
{
    /* realloc (p, 0) frees: never "fails" that.  */
    return size && s_fail ("realloc", size) ? NULL : __real_realloc (p, size);
}

char *
__wrap_strdup (const char *s)
{
    return s_fail ("strdup", strlen (s) + 1) ? NULL : __real_strdup (s);
}

char *
__wrap_strndup (const char *s, size_t n)
{
    return s_fail ("strndup", n) ? NULL : __real_strndup (s, n);
}

void *
__wrap_sodium_malloc (size_t size)
{
    return s_fail ("sodium_malloc", size) ? NULL : __real_sodium_malloc (size);
}

/*  The broker is READY (its line is written) when the service loop starts:
    a "run" spec starts counting here.  */
int
__wrap_dipx_server_run (dipx_server_t *self, volatile sig_atomic_t *stop,
                        volatile sig_atomic_t *reload, const char *cfg_path)
{
    if (s_cfg.enabled) {
        atomic_store (&s_before, atomic_load (&s_calls));
        s_say ("fi-alloc: %llu allocations before the service loop",
               (unsigned long long) atomic_load (&s_before));
        if (s_cfg.run) {
            atomic_store (&s_base, atomic_load (&s_before));
            atomic_store (&s_armed, true);
        }
    }
    return __real_dipx_server_run (self, stop, reload, cfg_path);
}
