/*  dipx_pool.c - see dipx_pool.h. A generation counter wakes the workers for
    each batch; jobs are claimed with an atomic counter, so no job runs twice
    and the caller never waits for a worker that has nothing to do.  */
#include "dipx_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct dipx_pool_t {
    pthread_t *threads;     /* workers */
    int nthreads;           /* how many started */
    pthread_mutex_t mutex;  /* guards the fields below */
    pthread_cond_t wake;    /* a new batch or shutdown */
    pthread_cond_t done;    /* a worker finished its part */
    unsigned long gen;      /* batch generation */
    int busy;               /* workers still in the current batch */
    bool stop;              /* shutting down */
    dipx_job_fn *fn;        /* current batch */
    char *jobs;
    size_t n, stride;
    atomic_size_t next;     /* next job to claim */
};

static void
s_work (dipx_pool_t *self)
{
    size_t i;
    while ((i = atomic_fetch_add (&self->next, 1)) < self->n)
        self->fn (self->jobs + i * self->stride);
}

static void *
s_worker (void *arg)
{
    dipx_pool_t *self = arg;
    unsigned long seen = 0;
    pthread_mutex_lock (&self->mutex);
    for (;;) {
        while (!self->stop && self->gen == seen)
            pthread_cond_wait (&self->wake, &self->mutex);
        if (self->stop)
            break;
        seen = self->gen;
        pthread_mutex_unlock (&self->mutex);
        s_work (self);
        pthread_mutex_lock (&self->mutex);
        if (--self->busy == 0)
            pthread_cond_signal (&self->done);
    }
    pthread_mutex_unlock (&self->mutex);
    return NULL;
}

dipx_pool_t *
dipx_pool_new (int threads)
{
    dipx_pool_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    pthread_mutex_init (&self->mutex, NULL);
    pthread_cond_init (&self->wake, NULL);
    pthread_cond_init (&self->done, NULL);
    if (threads > 0 && !(self->threads = calloc ((size_t) threads, sizeof (pthread_t)))) {
        dipx_pool_destroy (&self);
        return NULL;
    }
    for (int i = 0; i < threads; i++) {
        if (pthread_create (&self->threads[i], NULL, s_worker, self) != 0) {
            dipx_pool_destroy (&self);
            return NULL;
        }
        self->nthreads++;
    }
    return self;
}

void
dipx_pool_destroy (dipx_pool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dipx_pool_t *self = *self_p;
    pthread_mutex_lock (&self->mutex);
    self->stop = true;
    pthread_cond_broadcast (&self->wake);
    pthread_mutex_unlock (&self->mutex);
    for (int i = 0; i < self->nthreads; i++)
        pthread_join (self->threads[i], NULL);
    free (self->threads);
    pthread_mutex_destroy (&self->mutex);
    pthread_cond_destroy (&self->wake);
    pthread_cond_destroy (&self->done);
    free (self);
    *self_p = NULL;
}

void
dipx_pool_run (dipx_pool_t *self, dipx_job_fn *fn, void *jobs, size_t n, size_t stride)
{
    if (n == 0)
        return;
    if (self->nthreads == 0 || n == 1) {
        for (size_t i = 0; i < n; i++)
            fn ((char *) jobs + i * stride);
        return;
    }
    pthread_mutex_lock (&self->mutex);
    self->fn = fn;
    self->jobs = jobs;
    self->n = n;
    self->stride = stride;
    atomic_store (&self->next, 0);
    self->busy = self->nthreads;
    self->gen++;
    pthread_cond_broadcast (&self->wake);
    pthread_mutex_unlock (&self->mutex);
    s_work (self);
    pthread_mutex_lock (&self->mutex);
    while (self->busy > 0)
        pthread_cond_wait (&self->done, &self->mutex);
    pthread_mutex_unlock (&self->mutex);
}
