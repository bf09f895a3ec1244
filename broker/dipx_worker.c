/*  dipx_worker.c - see dipx_worker.h. The mutex orders the job's writes
    before the collector's reads; the eventfd only wakes a poller.  */
#include "dipx_worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct dipx_worker_t {
    pthread_t thread;
    bool started;          /* thread created */
    pthread_mutex_t mutex; /* guards the fields below */
    pthread_cond_t wake;   /* a job was handed over, or stop */
    pthread_cond_t done;   /* the job finished */
    dipx_worker_fn *fn;    /* the job handed over, NULL when taken */
    void *arg;
    bool running;          /* handed over and not finished */
    bool busy;             /* handed over and not collected (loop thread only) */
    bool stop;             /* shutting down */
    int efd;               /* eventfd: counts finished jobs */
};

static void *
s_main (void *arg)
{
    dipx_worker_t *self = arg;
    pthread_mutex_lock (&self->mutex);
    for (;;) {
        while (!self->stop && !self->fn)
            pthread_cond_wait (&self->wake, &self->mutex);
        if (!self->fn)
            break;
        dipx_worker_fn *fn = self->fn;
        void *job = self->arg;
        self->fn = NULL;
        pthread_mutex_unlock (&self->mutex);
        fn (job);
        pthread_mutex_lock (&self->mutex);
        self->running = false;
        pthread_cond_signal (&self->done);
        uint64_t one = 1;
        while (write (self->efd, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
    pthread_mutex_unlock (&self->mutex);
    return NULL;
}

dipx_worker_t *
dipx_worker_new (void)
{
    dipx_worker_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    pthread_mutex_init (&self->mutex, NULL);
    pthread_cond_init (&self->wake, NULL);
    pthread_cond_init (&self->done, NULL);
    self->efd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->efd < 0 || pthread_create (&self->thread, NULL, s_main, self) != 0) {
        dipx_worker_destroy (&self);
        return NULL;
    }
    self->started = true;
    return self;
}

void
dipx_worker_destroy (dipx_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dipx_worker_t *self = *self_p;
    if (self->started) {
        pthread_mutex_lock (&self->mutex);
        self->stop = true; /* a job handed over still runs first */
        pthread_cond_signal (&self->wake);
        pthread_mutex_unlock (&self->mutex);
        pthread_join (self->thread, NULL);
    }
    if (self->efd >= 0)
        close (self->efd);
    pthread_cond_destroy (&self->done);
    pthread_cond_destroy (&self->wake);
    pthread_mutex_destroy (&self->mutex);
    free (self);
    *self_p = NULL;
}

void
dipx_worker_start (dipx_worker_t *self, dipx_worker_fn *fn, void *arg)
{
    pthread_mutex_lock (&self->mutex);
    self->fn = fn;
    self->arg = arg;
    self->running = true;
    self->busy = true;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->mutex);
}

bool
dipx_worker_busy (const dipx_worker_t *self)
{
    return self->busy;
}

int
dipx_worker_fd (const dipx_worker_t *self)
{
    return self->efd;
}

bool
dipx_worker_collect (dipx_worker_t *self, bool wait)
{
    if (!self->busy)
        return true;
    pthread_mutex_lock (&self->mutex);
    while (wait && self->running)
        pthread_cond_wait (&self->done, &self->mutex);
    bool finished = !self->running;
    pthread_mutex_unlock (&self->mutex);
    if (finished) {
        uint64_t count;
        while (read (self->efd, &count, sizeof count) < 0 && errno == EINTR)
            ;
        self->busy = false;
    }
    return finished;
}
