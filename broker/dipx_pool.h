/*  dipx_pool.h - a fork-join pool for signature verification: the main loop
    hands it a batch of independent jobs and waits; the pool's threads and the
    caller take jobs from a shared counter until none remain. Ed25519 verify
    is the broker's largest per-message cost (~47 us), so this is what lets
    a second core add throughput while one thread owns LMDB.  */
#ifndef DIPX_POOL_H_INCLUDED
#define DIPX_POOL_H_INCLUDED

#include <stddef.h>

typedef struct dipx_pool_t dipx_pool_t;
typedef void (dipx_job_fn) (void *job);

/*  Starts threads extra worker threads (0 = the caller does all the work).
    NULL on failure.  */
dipx_pool_t *dipx_pool_new (int threads);
void dipx_pool_destroy (dipx_pool_t **self_p);

/*  Runs fn on each of n jobs (job i at jobs + i * stride) and returns when all
    are done.  */
void dipx_pool_run (dipx_pool_t *self, dipx_job_fn *fn, void *jobs, size_t n, size_t stride);

#endif
