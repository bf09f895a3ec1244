/*  dipx_worker.h - one background thread that runs one job at a time, with
    a file descriptor that becomes readable when the job is done, so the
    service loop can wait on it in the same zmq_poll as its sockets.

    The broker uses it to run each turn's LMDB transaction and its fsync'd
    commit while the loop thread reads, decodes and verifies the next batch:
    the commit's wait for the disk then overlaps with the next batch's
    signature checks instead of stalling them.  */
#ifndef DIPX_WORKER_H_INCLUDED
#define DIPX_WORKER_H_INCLUDED

#include <stdbool.h>

typedef struct dipx_worker_t dipx_worker_t;
typedef void (dipx_worker_fn) (void *arg);

/*  Starts the thread. NULL on failure.  */
dipx_worker_t *dipx_worker_new (void);

/*  Waits for a running job, then stops the thread. Accepts NULL.  */
void dipx_worker_destroy (dipx_worker_t **self_p);

/*  Hands fn(arg) to the thread. Only when no job is outstanding (started
    and not yet collected by dipx_worker_collect).  */
void dipx_worker_start (dipx_worker_t *self, dipx_worker_fn *fn, void *arg);

/*  True while a job is outstanding.  */
bool dipx_worker_busy (const dipx_worker_t *self);

/*  Readable while the outstanding job is done and not collected.  */
int dipx_worker_fd (const dipx_worker_t *self);

/*  Collects the outstanding job: with wait, blocks until it is done;
    without, returns false at once if it is still running. After true, the
    job's effects are visible to the caller and the worker is idle.  */
bool dipx_worker_collect (dipx_worker_t *self, bool wait);

#endif
