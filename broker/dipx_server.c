/*  dipx_server.c - the broker's service loop.

    Two threads. The loop thread owns the ROUTER and ZAP sockets; the
    worker thread runs each turn's LMDB write transaction. A turn is:

        1. wait for input, the worker's job, or the next timer;
        2. take up to `batch` frames from the ROUTER without blocking, decode
           them and run the cheap checks (sender, recipient, policy, clock);
        3. verify every signature in the batch on the verifier pool, which
           is the largest cost per message;
        4. when the worker's previous job is done: send that job's replies,
           answer pending ZAP requests, and hand the worker the new batch;
        5. the worker, in ONE write transaction: stores accepted messages,
           applies acknowledgements and outcomes, plans deliveries within
           each session's credit, expires and redelivers on timers, writes an
           audit record for every decision, and commits with fsync;
        6. only then (step 4 of a later turn) are its replies sent
           (ACCEPTED, DELIVER, RECEIPT, ...).

    So steps 2-3 for batch N+1 overlap the fsync'd commit of batch N. While
    a job runs the loop thread touches only the router, the connection
    monitor and its descriptor tables, its next batch, the verify pool, and
    reads the registry and policy (swapped only between jobs); the sessions,
    the store, the replies and the pending audit records belong to the job
    until it is collected (dipx_worker.h orders the two).

    Nothing is announced before it is durable: if the commit fails, the
    replies are discarded, the sessions are restored from the turn's undo log,
    and the batch is run again with new messages refused (storage_full) so
    that acknowledgements and deliveries go on while storage is full.

    Sessions: an agency has at most one delivery session, started by HELLO
    (the newest wins) and ended when its connection closes (s_session_free:
    max_sessions bounds the agencies connected, not those ever seen). Its
    in-flight set holds the messages delivered and not yet acknowledged, at
    most `window`; an ACK frees credit. A message not
    acknowledged within ack_timeout_ms is delivered again (count + 1), and
    after max_deliveries it moves to the dead-letter store. A new session
    starts with an empty in-flight set, so everything unacknowledged is
    delivered again.

    Reload (SIGHUP) runs on a third, short-lived thread: reading a registry
    verifies every card's self-signature, about 3 s at 50,000 agencies, and
    the loop thread must not stop answering frames and ZAP requests for
    that. The loop starts the thread with a copy of the running config
    (s_reload_start) and goes on serving with the running registry and
    policy. The thread reads the config file, the registry and the policy
    into its s_load_t, which nothing else touches until the thread is joined,
    and then writes an eventfd that the loop polls. The loop then joins it
    (s_reload_finish) and, between jobs as before (the worker's job reads the
    config's reloadable keys; the registry and policy are read only on the
    loop thread, by s_prepare and the ZAP handler), swaps the results in and
    frees the old ones. At most one reload thread exists; a SIGHUP during a
    load asks for one more load after it, so the files as they were at the
    last SIGHUP always win. On shutdown the thread is joined and what it
    loaded is freed (s_reload_abandon).
*/
#include "dipx_server.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zmq.h>

#include "dipx_audit.h"
#include "dipx_auth.h"
#include "dipx_frame.h"
#include "dipx_identity.h"
#include "dipx_log.h"
#include "dipx_policy.h"
#include "dipx_pool.h"
#include "dipx_registry.h"
#include "dipx_store.h"
#include "dipx_worker.h"

#define S_RID_MAX 256          /* ZeroMQ routing ids are at most 255 bytes */
#define S_ZMQ_ZERO_COPY_RECV 10 /* libzmq context option (zmq.h has it under DRAFT) */
#define S_BUCKETS 65536        /* session hash buckets (power of two) */
#define S_SELFCHECK_MS 5000    /* start-up self-check deadline */
#define S_HOUSEKEEP_MS 250     /* expiry and redelivery timer period */
#define S_BARRED_MS 1000       /* how often sessions are checked against the registry */
#define S_PENDING_AUDIT_MAX 4096
#define S_RECHECK_FIRST_MS 250  /* an unbound session's WELCOME is repeated after this, */
#define S_RECHECK_MAX_MS 30000  /* then at doubling intervals up to this (s_sessions_recheck) */
/* Frames queued to one connection and not yet read by the agency, at most:
   about 200 bytes each for a reply, so a connection that never reads costs
   about 2 MiB. libdipx drains its socket on every call, but an application
   that makes no call for a while lets receipts pile up (three per message
   it sent): with TCP's buffers and libdipx's own queue it reaches this
   about 16,000 messages behind. Past it a reply is dropped (libdipx writes
   a SEND again when a later one's answer shows its own was lost) and a
   DELIVER waits (s_send_out).  */
#define S_SNDHWM 10000
/* Frames received on one connection and not yet read by the loop, at most:
   past that libzmq stops reading the connection (the agency's frames wait
   in TCP, nothing is lost). libzmq counts frames, not bytes, so the count
   comes from max_frame: S_INBOUND_BYTES of frames of that size, between
   S_RCVHWM_MIN and S_RCVHWM. An agency that writes faster than the broker
   works (or while a commit waits for the disk) parks at most that much in
   the broker's memory per connection: with the default max_frame (1 MiB),
   16 frames; with 1,024 it was over a GiB. The loop reads frames into its
   next batch all through a commit (s_turn), so the batch, not this queue,
   is where frames gather meanwhile.  */
#define S_INBOUND_BYTES (16u << 20)
#define S_RCVHWM_MIN 16
#define S_RCVHWM 1024
/* A batch stops growing once it holds this many bytes of frames (so it may
   pass it by one frame), or cfg.batch frames: two batches are held at once,
   the one committing and the next.  */
#define S_BATCH_BYTES (16u << 20)
#define S_PAUSE_MS 1000        /* a session whose send queue was full rests this long,
                                  doubling while it stays full, up to ack_timeout_ms */
#define S_OUT_SMALL 400        /* frames up to this size are kept inline (every
                                  reply but DELIVER and HISTORY) */

typedef struct {
    uint64_t seq;      /* message delivered and not yet acknowledged */
    uint64_t deadline; /* monotonic ms after which it is delivered again */
    uint32_t size;     /* its envelope's bytes */
    uint32_t sent;     /* DELIVERs of it in this session (s->unacked counts each) */
    uint32_t count;    /* its delivery count, as of the last DELIVER */
    uint32_t missed;   /* redeliveries since then held back for room (s_room) */
} s_flight_t;

typedef struct s_session {
    char agency[DIPX_MAX_AGENCY_ID + 1]; /* whose session */
    uint8_t rid[S_RID_MAX];              /* current connection's routing id */
    size_t rid_len;                      /* 0 = not connected */
    bool paused;                         /* a DELIVER found its queue full: nothing more
                                            is sent to it until pause_ms later */
    uint64_t paused_at;                  /* monotonic ms it was paused */
    uint64_t pause_ms;                   /* its current rest; 0 = its DELIVERs go out */
    bool probing;                        /* resumed after a pause: one DELIVER (the probe)
                                            goes, the rest once it has gone out */
    bool probe_out;                      /* ... and that one is planned */
    bool barred;                         /* its agency may not receive now (suspended,
                                            card expired: s_sessions_barred) */
    int fd;                              /* its connection's descriptor, -1 unknown */
    uint32_t gen;                        /* and generation (s_monitor_events) */
    uint32_t window;                     /* credit granted; 0 = send only */
    uint64_t cursor;                     /* highest seq delivered this session */
    uint32_t nflight;                    /* entries used in flight[] */
    s_flight_t *flight;                  /* window entries */
    uint64_t unacked;                    /* envelope bytes of every DELIVER sent in this
                                            session and not acknowledged, copies included */
    bool held;                           /* a delivery waits for ACKs to bring unacked
                                            under unacked_max_mb (s_room) */
    bool want;                           /* may have deliveries to make */
    bool in_want;                        /* on the want list */
    uint32_t recheck_ms;                 /* unbound: interval of its repeated WELCOMEs,
                                            which learn whether its connection is open;
                                            0 = not on the recheck list */
    uint64_t recheck_at;                 /* monotonic ms of the next one */
    uint64_t undo_turn;                  /* turn in which undo was saved */
    struct s_session *next;              /* hash chain */
} s_session_t;

/*  Undo log entry: a session as it was before this turn touched it.  */
typedef struct {
    s_session_t *live;    /* the session */
    s_session_t saved;    /* its fields before the turn */
    s_flight_t *flight;   /* copy of its in-flight set */
    bool created;         /* made by this turn's HELLO: undone by freeing it */
} s_undo_t;

typedef enum { V_NONE, V_ENVELOPE, V_ACK, V_OUTCOME } s_vkind_t;

/*  One frame taken from the ROUTER in this turn.  */
typedef struct {
    zmq_msg_t rid;                       /* routing id part */
    zmq_msg_t body;                      /* frame part */
    bool open;                           /* rid/body initialised */
    char agency[DIPX_MAX_AGENCY_ID + 1]; /* authenticated agency (User-Id) */
    int rc;                              /* frame-level error, 0 if usable */
    char why[DIPX_MAX_REASON + 1];       /* reason for rc */
    dipx_frame_t f;                      /* decoded frame */
    dipx_envelope_t env;                 /* SEND: decoded envelope */
    bool env_ok;                         /* env.h is usable for audit */
    int send_rc;                         /* SEND: pre-check result */
    s_vkind_t vkind;                     /* what to verify */
    uint8_t pk[DIPX_KEY_BYTES];          /* signing key to verify with */
    int vrc;                             /* verification result */
    uint8_t digest[2 * DIPX_HASH_BYTES]; /* SEND: hh || ph */
    int fd;                              /* its connection's descriptor, -1 unknown */
    uint32_t gen;                        /* and generation, when read */
} s_item_t;

/*  A frame to send after the commit. Small frames are encoded inline, so
    that answering costs no allocation (and still works when memory is out).  */
typedef struct {
    uint8_t rid[S_RID_MAX];              /* destination */
    size_t rid_len;
    uint8_t small[S_OUT_SMALL];          /* encoded frame, if it fits */
    uint8_t *heap;                       /* else the encoded frame (owned) */
    size_t len;
    bool deliver;                        /* a DELIVER: failure is audited */
    bool of_deliver;                     /* the RECEIPT delivered of the DELIVER before it:
                                            not sent if that one is not (s_send_out) */
    uint64_t seq;                        /* DELIVER or of_deliver: message seq */
    uint32_t count;                      /* DELIVER: its count */
    uint8_t id[DIPX_ID_BYTES];           /* DELIVER: message id */
    char agency[DIPX_MAX_AGENCY_ID + 1]; /* DELIVER: recipient */
} s_out_t;

typedef enum { S_LOAD_OK, S_LOAD_BAD_CONFIG, S_LOAD_BAD_TRUST } s_load_rc_t;

/*  One reload. Filled in by the loop thread before the reload thread starts;
    the thread's alone while it runs; the loop thread's again once joined.  */
typedef struct {
    pthread_t thread;          /* the reload thread */
    const char *cfg_path;      /* config file to read, or NULL (the run's argument) */
    dipx_config_t cfg;         /* the running config, then with the file's reloadable keys */
    s_load_rc_t rc;            /* what was loaded */
    dipx_registry_t *registry; /* S_LOAD_OK: the new registry (owned until swapped in) */
    dipx_policy_t *policy;     /* S_LOAD_OK: the new policy (likewise) */
    uint64_t ms;               /* how long the load took */
    int efd;                   /* eventfd the thread writes when done (fixed; both read it) */
} s_load_t;

struct dipx_server_t {
    dipx_config_t cfg;                 /* current configuration */
    void *ctx;                         /* ZeroMQ context */
    void *router;                      /* the agencies' socket */
    dipx_auth_t *auth;                 /* ZAP handler */
    dipx_identity_t *identity;         /* broker's keys */
    char endpoint[DIPX_CONFIG_PATH_MAX]; /* bound endpoint */
    char pubkey[DIPX_Z85_KEY_LEN + 1]; /* broker CURVE public key, Z85 */
    dipx_registry_t *registry;         /* trusted agencies */
    dipx_policy_t *policy;             /* allowed flows */
    dipx_store_t *store;               /* durable state */
    dipx_pool_t *pool;                 /* signature verifiers */
    uint8_t hash_key[crypto_shorthash_KEYBYTES]; /* session table key */
    s_session_t **buckets;             /* session hash table */
    size_t nsessions;                  /* sessions allocated */
    /* Connections (loop thread only; s_monitor_events): by descriptor.  */
    void *monitor;                     /* the router's ACCEPTED and DISCONNECTED events */
    size_t nfds;                       /* descriptors tracked (the open-files limit) */
    uint32_t *fd_gen;                  /* connections accepted on each */
    uint32_t *fd_closed;               /* the last of them that closed */
    s_session_t **by_fd;               /* the session bound to each */
    int *closed;                       /* descriptors whose session may have ended */
    size_t nclosed, closed_cap;
    bool closed_lost;                  /* the list could not grow: sweep them all */
    s_session_t **want;                /* sessions that may have deliveries */
    size_t nwant, want_cap;
    s_session_t **recheck;             /* unbound sessions to send a WELCOME again */
    size_t nrecheck, recheck_cap;
    s_item_t *items;                   /* the job's frames (worker side) */
    size_t nitems;
    s_item_t *ready;                   /* the next batch, read and verified */
    size_t nready;
    size_t ready_bytes;                /* its frames' bytes (S_BATCH_BYTES) */
    dipx_worker_t *worker;             /* runs each turn's transaction */
    bool job_housekeep;                /* the job's parameters */
    uint64_t job_now, job_mono;
    s_out_t *out;                      /* this turn's replies */
    size_t nout, out_cap;
    s_undo_t *undo;                    /* this turn's session undo log */
    size_t nundo, undo_cap;
    uint64_t turn;                     /* loop turn counter */
    dipx_audit_t *pending;             /* audit records waiting for a txn */
    size_t npending;
    uint64_t suppressed;               /* auth refusals not audited (rate limit) */
    uint64_t bucket_ms;                /* rate limiter: current second */
    uint64_t bucket_used;              /* refusals audited this second */
    uint64_t next_housekeep;           /* monotonic ms */
    uint64_t next_barred;              /* monotonic ms of the next s_sessions_barred */
    int degraded;                      /* this run of the turn: 0 normal, 1 refuses new
                                          messages (audited), 2 refuses them unaudited;
                                          after the turn, the run that committed (3: none) */
    int fail_rc;                       /* why the turn's first run failed */
    bool storage_full;                 /* the last turn hit storage_full */
    uint64_t redrive_epoch;            /* store's redrive epoch last seen */
    s_load_t load;                     /* the reload under way, if reloading */
    bool reloading;                    /* a reload thread exists (running or not joined) */
    bool reload_again;                 /* SIGHUP during the load: load once more after it */
    /* self-check */
    char probe_fp[17];                 /* fingerprint of the probe's key */
    bool probe_refused;                /* ZAP refused the probe */
};

/* --- sessions ------------------------------------------------------------- */

/*  True if frames may be sent to s.  */
static bool
s_reachable (const s_session_t *s)
{
    return s->rid_len && !s->paused && !s->barred;
}

static size_t
s_bucket (const dipx_server_t *self, const char *agency)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash (h, (const uint8_t *) agency, strlen (agency), self->hash_key);
    return ((size_t) h[0] | (size_t) h[1] << 8) & (S_BUCKETS - 1);
}

static s_session_t *
s_session_find (const dipx_server_t *self, const char *agency)
{
    for (s_session_t *s = self->buckets[s_bucket (self, agency)]; s; s = s->next)
        if (strcmp (s->agency, agency) == 0)
            return s;
    return NULL;
}

/*  Saves a session's state in the undo log the first time a turn touches it.
    Returns 0 or DIPX_E_NOMEM.  */
static int
s_touch (dipx_server_t *self, s_session_t *s)
{
    if (s->undo_turn == self->turn)
        return 0;
    if (self->nundo == self->undo_cap) {
        size_t cap = self->undo_cap ? self->undo_cap * 2 : 64;
        s_undo_t *grown = realloc (self->undo, cap * sizeof *grown);
        if (!grown)
            return DIPX_E_NOMEM;
        self->undo = grown;
        self->undo_cap = cap;
    }
    s_undo_t *u = &self->undo[self->nundo];
    u->live = s;
    u->saved = *s;
    u->flight = NULL;
    u->created = false;
    if (s->window) {
        u->flight = malloc (s->window * sizeof *u->flight);
        if (!u->flight)
            return DIPX_E_NOMEM;
        memcpy (u->flight, s->flight, s->nflight * sizeof *u->flight);
    }
    self->nundo++;
    s->undo_turn = self->turn;
    return 0;
}

static void
s_undo_drop (dipx_server_t *self)
{
    for (size_t i = 0; i < self->nundo; i++)
        free (self->undo[i].flight);
    self->nundo = 0;
}

/*  Takes s off the recheck list.  */
static void
s_recheck_drop (dipx_server_t *self, s_session_t *s)
{
    if (!s->recheck_ms)
        return;
    s->recheck_ms = 0;
    for (size_t i = 0; i < self->nrecheck; i++)
        if (self->recheck[i] == s) {
            self->recheck[i] = self->recheck[--self->nrecheck];
            return;
        }
}

/*  Puts an unbound session on the recheck list (s_sessions_recheck).  */
static void
s_recheck_add (dipx_server_t *self, s_session_t *s, uint64_t mono)
{
    if (!s->recheck_ms) {
        if (self->nrecheck == self->recheck_cap) {
            size_t cap = self->recheck_cap ? 2 * self->recheck_cap : 16;
            s_session_t **grown = realloc (self->recheck, cap * sizeof *grown);
            if (!grown)
                return; /* it stays unbound, as before rechecks */
            self->recheck = grown;
            self->recheck_cap = cap;
        }
        self->recheck[self->nrecheck++] = s;
    }
    s->recheck_ms = S_RECHECK_FIRST_MS;
    s->recheck_at = mono + S_RECHECK_FIRST_MS;
}

/*  Forgets a session whose connection is gone. It holds nothing the store
    does not: its in-flight messages are still queued, and a new session
    (its next HELLO) delivers them again. So the table holds the agencies
    connected now, not every agency seen since start. On the loop thread
    between jobs (no undo log then), or by the job undoing the turn that
    made it (no connection bound to it yet).  */
static void
s_session_free (dipx_server_t *self, s_session_t *s)
{
    s_session_t **p = &self->buckets[s_bucket (self, s->agency)];
    while (*p != s)
        p = &(*p)->next;
    *p = s->next;
    for (size_t i = 0; i < self->nwant; i++)
        if (self->want[i] == s) {
            memmove (self->want + i, self->want + i + 1,
                     (self->nwant - i - 1) * sizeof *self->want);
            self->nwant--;
            break;
        }
    if (s->fd >= 0 && self->by_fd[s->fd] == s)
        self->by_fd[s->fd] = NULL;
    s_recheck_drop (self, s);
    dipx_log_debug ("session of %s ended", s->agency);
    free (s->flight);
    free (s);
    self->nsessions--;
}

/*  Restores every session touched this turn, and the want list to its first
    keep_want entries. The flight array is resized to the saved window if
    HELLO changed it.  */
static void
s_undo_apply (dipx_server_t *self, size_t keep_want)
{
    for (size_t i = self->nundo; i-- > 0;) {
        s_undo_t *u = &self->undo[i];
        s_session_t *s = u->live;
        if (u->created)
            continue; /* freed below, once off the want list */
        s_flight_t *flight = s->flight;
        if (u->saved.window != s->window) {
            free (flight);
            flight = u->flight; /* exactly saved.window entries */
            u->flight = NULL;
        } else if (u->flight)
            memcpy (flight, u->flight, u->saved.nflight * sizeof *flight);
        s_session_t *next = s->next;
        *s = u->saved;
        s->flight = flight;
        s->next = next;
        s->in_want = false;
        s->undo_turn = 0;
    }
    /* The want list goes back to what it was before the attempt: sessions
       added by it are dropped, those already on it stay.  */
    for (size_t i = 0; i < self->nwant; i++)
        self->want[i]->in_want = i < keep_want;
    if (self->nwant > keep_want)
        self->nwant = keep_want;
    /* A session this turn made goes with it: kept, it would hold a
       max_sessions slot that no connection owns.  */
    for (size_t i = 0; i < self->nundo; i++)
        if (self->undo[i].created)
            s_session_free (self, self->undo[i].live);
    s_undo_drop (self);
}


/*  Connections, as the loop thread knows them from the router's monitor:
    a connection is (descriptor, generation), the generation counting the
    connections accepted on that descriptor. libzmq reports a connection's
    DISCONNECTED before it closes the descriptor, so before the next
    ACCEPTED on it: the events of a descriptor come in order. A frame is
    tagged with its descriptor (ZMQ_SRCFD) and the generation known when it
    is read, the monitor read first; the tag is usually right, and
    s_sessions_bind says when it may not be.  */
static void
s_monitor_events (dipx_server_t *self)
{
    for (;;) {
        zmq_msg_t ev;
        zmq_msg_init (&ev);
        if (zmq_msg_recv (&ev, self->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&ev);
            return;
        }
        uint16_t event = 0;
        uint32_t fd = UINT32_MAX;
        if (zmq_msg_size (&ev) == 6) { /* u16 event, u32 value, host order */
            memcpy (&event, zmq_msg_data (&ev), 2);
            memcpy (&fd, (const uint8_t *) zmq_msg_data (&ev) + 2, 4);
        }
        bool more = zmq_msg_more (&ev);
        zmq_msg_close (&ev);
        while (more) { /* the endpoint address */
            zmq_msg_init (&ev);
            more = zmq_msg_recv (&ev, self->monitor, ZMQ_DONTWAIT) >= 0 && zmq_msg_more (&ev);
            zmq_msg_close (&ev);
        }
        if (fd >= self->nfds)
            continue;
        if (event == ZMQ_EVENT_ACCEPTED)
            self->fd_gen[fd]++;
        else if (event == ZMQ_EVENT_DISCONNECTED) {
            self->fd_closed[fd] = self->fd_gen[fd];
            if (!self->by_fd[fd])
                continue;
            /* Its session, if any, ends between jobs (s_sessions_sweep).  */
            if (self->nclosed == self->closed_cap) {
                size_t cap = self->closed_cap ? 2 * self->closed_cap : 256;
                int *grown = realloc (self->closed, cap * sizeof *grown);
                if (!grown) {
                    self->closed_lost = true; /* the sweep looks at every descriptor */
                    continue;
                }
                self->closed = grown;
                self->closed_cap = cap;
            }
            self->closed[self->nclosed++] = (int) fd;
        }
    }
}

/*  True when connection (fd, gen) has closed.  */
static bool
s_conn_closed (const dipx_server_t *self, int fd, uint32_t gen)
{
    return self->fd_closed[fd] >= gen;
}

/*  Ends the sessions whose connections have closed. Between jobs only.  */
static void
s_sessions_sweep (dipx_server_t *self)
{
    size_t n = self->closed_lost ? self->nfds : self->nclosed;
    for (size_t i = 0; i < n; i++) {
        int fd = self->closed_lost ? (int) i : self->closed[i];
        s_session_t *s = self->by_fd[fd];
        if (s && s_conn_closed (self, fd, s->gen))
            s_session_free (self, s);
    }
    self->nclosed = 0;
    self->closed_lost = false;
}

/*  After a job: each HELLO it committed (the agency's session now holds that
    frame's routing id) binds the session to the frame's connection, or ends
    it if that connection has closed meanwhile. Loop thread, between jobs.  */
static void
s_sessions_bind (dipx_server_t *self)
{
    const uint64_t mono = dipx_mono_ms ();
    /* The connection events that came during the commit first: an
       ACCEPTED that was late when a HELLO was tagged (two I/O threads) then
       shows the tag as too old, rather than as a closed connection's.  */
    s_monitor_events (self);
    for (size_t i = 0; i < self->nitems; i++) {
        s_item_t *it = &self->items[i];
        if (!it->open || it->rc || it->f.cmd != DIPX_CMD_HELLO)
            continue;
        s_session_t *s = s_session_find (self, it->agency);
        if (!s || s->rid_len != zmq_msg_size (&it->rid)
            || memcmp (s->rid, zmq_msg_data (&it->rid), s->rid_len) != 0)
            continue;
        if (s->fd >= 0 && self->by_fd[s->fd] == s)
            self->by_fd[s->fd] = NULL;
        s->fd = -1;
        s_recheck_drop (self, s);
        /* A frame's tag can be wrong: libzmq hands on a closed peer's last
           frames after reporting its close (and perhaps another connection
           on the descriptor: the tag is then too new), and with two I/O
           threads a connection's ACCEPTED may follow its first frames (too
           old). A closed tag that is still the descriptor's newest
           connection is this frame's or an older one, closed either way: the
           session ends. Otherwise a session is bound only when the tag is
           unambiguous, or stays unbound, and ends when a frame to it finds
           its connection gone (EHOSTUNREACH): the WELCOME answering this very
           HELLO, a receipt, a delivery, the WELCOMEs s_sessions_recheck
           repeats to it, or at its agency's next HELLO.  */
        if (it->fd < 0) {
            s_recheck_add (self, s, mono);
            continue;
        }
        if (s_conn_closed (self, it->fd, it->gen)) {
            if (self->fd_gen[it->fd] == it->gen) {
                s_session_free (self, s);
                continue;
            }
            dipx_log_debug ("session of %s unbound: its HELLO's connection (fd %d #%u) "
                            "closed, a newer one is open", s->agency, it->fd, it->gen);
            s_recheck_add (self, s, mono);
            continue;
        }
        s_session_t *prev = self->by_fd[it->fd];
        if (prev && prev != s) {
            dipx_log_debug ("sessions of %s and %s unbound: both tagged fd %d", s->agency,
                            prev->agency, it->fd);
            prev->fd = -1;
            self->by_fd[it->fd] = NULL;
            s_recheck_add (self, s, mono);
            s_recheck_add (self, prev, mono);
            continue;
        }
        s->fd = it->fd;
        s->gen = it->gen;
        self->by_fd[it->fd] = s;
    }
}

/*  The WELCOME that grants window.  */
static void
s_welcome (const dipx_server_t *self, uint32_t window, dipx_frame_t *f)
{
    memset (f, 0, sizeof *f);
    f->cmd = DIPX_CMD_WELCOME;
    snprintf (f->u.welcome.broker, sizeof f->u.welcome.broker, "%s",
              dipx_identity_id (self->identity));
    f->u.welcome.max_frame = self->cfg.max_frame;
    f->u.welcome.window = window;
}

/*  Sends each unbound session its WELCOME again when due: after 250 ms,
    then at doubling intervals up to every 30 s while it stays unbound. A
    connection that closed just after its HELLO may still have had its pipe
    in the router when the first WELCOME went; only a later frame learns
    (EHOSTUNREACH) that it is gone, and an idle session gets none. Without
    this such a session would hold its max_sessions slot until its agency
    came back. Loop thread, between jobs.  */
static void
s_sessions_recheck (dipx_server_t *self, uint64_t mono)
{
    for (size_t i = self->nrecheck; i-- > 0;) {
        if (i >= self->nrecheck)
            continue; /* the list shrank under a free */
        s_session_t *s = self->recheck[i];
        if (mono < s->recheck_at)
            continue;
        s->recheck_ms = s->recheck_ms >= S_RECHECK_MAX_MS / 2 ? S_RECHECK_MAX_MS
                                                               : 2 * s->recheck_ms;
        s->recheck_at = mono + s->recheck_ms;
        dipx_frame_t f;
        s_welcome (self, s->window, &f);
        uint8_t *out;
        size_t len;
        if (dipx_frame_encode (&f, &out, &len) != 0)
            continue;
        if (zmq_send (self->router, s->rid, s->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            if (zmq_errno () == EHOSTUNREACH)
                s_session_free (self, s);
        } else
            zmq_send (self->router, out, len, ZMQ_DONTWAIT);
        free (out);
    }
}

static void
s_want (dipx_server_t *self, s_session_t *s)
{
    s->want = true;
    if (s->in_want || !s_reachable (s) || s->window == 0 || s->held || s->probe_out)
        return;
    if (self->nwant == self->want_cap) {
        size_t cap = self->want_cap ? self->want_cap * 2 : 64;
        s_session_t **grown = realloc (self->want, cap * sizeof *grown);
        if (!grown)
            return; /* stays wanted; found by the housekeeping sweep */
        self->want = grown;
        self->want_cap = cap;
    }
    self->want[self->nwant++] = s;
    s->in_want = true;
}

/*  Bars the sessions of agencies that may no longer receive (suspended or
    revoked by a reload, or whose card is past its validity: ZAP checks only
    new connections), and lifts the bar when they may again (reactivated by
    a reload). A barred session gets nothing (s_reachable); what it had in
    flight stays queued. Loop thread, between jobs.  */
static void
s_sessions_barred (dipx_server_t *self, uint64_t now)
{
    for (size_t b = 0; b < S_BUCKETS; b++)
        for (s_session_t *s = self->buckets[b]; s; s = s->next) {
            const dipx_entry_t *e = dipx_registry_by_id (self->registry, s->agency);
            const char *why =
                e ? dipx_entry_unusable (e, (int64_t) (now / 1000)) : "not registered";
            if (why && !s->barred)
                dipx_log_info ("session of %s barred: %s", s->agency, why);
            else if (!why && s->barred)
                dipx_log_info ("session of %s may receive again", s->agency);
            s->barred = why != NULL;
            if (!why && s->want)
                s_want (self, s);
        }
}

static s_flight_t *
s_flight_find (s_session_t *s, uint64_t seq)
{
    for (uint32_t i = 0; i < s->nflight; i++)
        if (s->flight[i].seq == seq)
            return &s->flight[i];
    return NULL;
}

/*  Takes seq out of s's in-flight set, with every copy of it sent: a
    delivery held for them may go now.  */
static void
s_flight_remove (s_session_t *s, uint64_t seq)
{
    s_flight_t *f = s_flight_find (s, seq);
    if (f) {
        s->unacked -= (uint64_t) f->size * f->sent;
        s->held = false;
        *f = s->flight[--s->nflight];
    }
}

/*  True if a DELIVER of message f (or of a new one of size bytes, f NULL)
    may be sent to s now. A connection that stops reading leaves what is sent
    to it in the broker's memory, and every redelivery is one more copy:
    unacked_max_mb bounds that per session, to the limit plus one message.
    The first DELIVER of a message goes when nothing is in flight, however
    large, so that none is stuck; so do copies of a message alone in flight,
    up to the limit.  */
static bool
s_room (const dipx_server_t *self, const s_session_t *s, const s_flight_t *f, uint32_t size)
{
    uint64_t limit = self->cfg.unacked_max_mb << 20;
    uint64_t mine = f ? (uint64_t) f->size * f->sent : 0;
    return s->unacked == 0 || s->unacked + size <= limit
           || (s->unacked == mine && mine <= limit);
}

/* --- outgoing frames and audit ------------------------------------------- */

/*  Makes room for n more replies.  */
static int
s_out_reserve (dipx_server_t *self, size_t n)
{
    if (self->out_cap - self->nout >= n)
        return 0;
    size_t cap = self->out_cap ? self->out_cap : 256;
    while (cap - self->nout < n)
        cap *= 2;
    s_out_t *grown = realloc (self->out, cap * sizeof *grown);
    if (!grown)
        return DIPX_E_NOMEM;
    self->out = grown;
    self->out_cap = cap;
    return 0;
}

static const uint8_t *
s_out_data (const s_out_t *o)
{
    return o->heap ? o->heap : o->small;
}

static int
s_out_push (dipx_server_t *self, const uint8_t *rid, size_t rid_len, const dipx_frame_t *f,
            bool deliver, const char *agency, uint64_t seq)
{
    if (rid_len == 0 || rid_len > S_RID_MAX)
        return 0;
    int rc = s_out_reserve (self, 1);
    if (rc)
        return rc;
    s_out_t *o = &self->out[self->nout];
    o->heap = NULL;
    rc = DIPX_E_FRAME_SIZE; /* a DELIVER carries an envelope: never small */
    if (f->cmd != DIPX_CMD_DELIVER)
        rc = dipx_frame_encode_into (f, o->small, sizeof o->small, &o->len);
    if (rc == DIPX_E_FRAME_SIZE)
        rc = dipx_frame_encode (f, &o->heap, &o->len);
    if (rc)
        return rc;
    memcpy (o->rid, rid, rid_len);
    o->rid_len = rid_len;
    o->deliver = deliver;
    o->of_deliver = false;
    o->seq = seq;
    o->count = 0;
    memset (o->id, 0, sizeof o->id);
    snprintf (o->agency, sizeof o->agency, "%s", agency ? agency : "");
    self->nout++;
    return 0;
}

static void
s_out_drop (dipx_server_t *self)
{
    for (size_t i = 0; i < self->nout; i++)
        free (self->out[i].heap);
    self->nout = 0;
}

static int
s_reply (dipx_server_t *self, s_item_t *it, const dipx_frame_t *f)
{
    return s_out_push (self, zmq_msg_data (&it->rid), zmq_msg_size (&it->rid), f, false,
                       it->agency, 0);
}

static void
s_set_reason (char *dst, const char *src)
{
    snprintf (dst, DIPX_MAX_REASON + 1, "%s", src);
}

static int
s_reply_error (dipx_server_t *self, s_item_t *it, int code, int cmd, const char *reason)
{
    dipx_frame_t f = {.cmd = DIPX_CMD_ERROR};
    f.u.error.code = (uint64_t) -code;
    f.u.error.cmd = (uint64_t) (cmd > 0 && cmd < 256 ? cmd : 0);
    s_set_reason (f.u.error.reason, reason);
    return s_reply (self, it, &f);
}

/*  Sends a receipt to a message's sender if it has a connected session.  */
static int
s_receipt (dipx_server_t *self, const char *sender, const uint8_t id[DIPX_ID_BYTES], int event,
           const char *by, uint64_t at, int code, const char *reason, uint64_t count)
{
    s_session_t *s = s_session_find (self, sender);
    if (!s || !s_reachable (s))
        return 0;
    dipx_frame_t f = {.cmd = DIPX_CMD_RECEIPT};
    memcpy (f.u.receipt.id, id, DIPX_ID_BYTES);
    f.u.receipt.event = event;
    f.u.receipt.at = at;
    snprintf (f.u.receipt.by, sizeof f.u.receipt.by, "%s", by);
    if (code) {
        f.u.receipt.code = (uint64_t) -code;
        f.present |= DIPX_RECEIPT_HAS_CODE;
    }
    if (reason) {
        s_set_reason (f.u.receipt.reason, reason);
        f.present |= DIPX_RECEIPT_HAS_REASON;
    }
    if (count) {
        f.u.receipt.count = count;
        f.present |= DIPX_RECEIPT_HAS_COUNT;
    }
    return s_out_push (self, s->rid, s->rid_len, &f, false, s->agency, 0);
}

/*  Audit records written outside a transaction (ZAP decisions, failed
    sends) wait here for the next one.  */
static void
s_pending_audit (dipx_server_t *self, const dipx_audit_t *rec)
{
    if (self->npending == S_PENDING_AUDIT_MAX) {
        self->suppressed++;
        dipx_log_warn ("audit: pending queue full, a %s record was dropped",
                       dipx_audit_event_name (rec->event));
        return;
    }
    self->pending[self->npending++] = *rec;
}

/* --- the message state changes (inside the transaction) ------------------ */

/*  The reason an expired message is dead-lettered with: whether it was
    ever delivered (in this session or an earlier one).  */
static const char *
s_expired_why (const dipx_msgrec_t *m)
{
    return m->count ? "expired before it was acknowledged" : "expired before delivery";
}

/*  Moves a queued message to the dead letters with its audit records and
    tells the sender.  */
static int
s_dead_letter (dipx_server_t *self, dipx_txn_t *txn, const dipx_msgrec_t *m, uint64_t now,
               int audit_event, int receipt_event, int code, const char *reason, const char *by)
{
    dipx_audit_t rec;
    char from[DIPX_MAX_AGENCY_ID + 1], to[DIPX_MAX_AGENCY_ID + 1];
    uint8_t id[DIPX_ID_BYTES];
    uint64_t seq = m->seq, count = m->count;
    memcpy (from, m->from, sizeof from);
    memcpy (to, m->to, sizeof to);
    memcpy (id, m->id, sizeof id);
    int rc = dipx_store_msg_dead (txn, seq, now, code, reason);
    if (rc)
        return rc;
    if (audit_event != DIPX_AUDIT_DEAD_LETTERED) {
        dipx_audit_init (&rec, audit_event, now);
        memcpy (rec.id, id, sizeof id);
        memcpy (rec.from, from, sizeof from);
        memcpy (rec.to, to, sizeof to);
        snprintf (rec.by, sizeof rec.by, "%s", by);
        rec.msg_seq = seq;
        rec.count = count;
        rec.present |= DIPX_AU_ID | DIPX_AU_FROM | DIPX_AU_TO | DIPX_AU_BY | DIPX_AU_MSG_SEQ
                       | DIPX_AU_COUNT;
        dipx_audit_set_reason (&rec, reason);
        if ((rc = dipx_store_audit (txn, &rec)))
            return rc;
    }
    dipx_audit_init (&rec, DIPX_AUDIT_DEAD_LETTERED, now);
    memcpy (rec.id, id, sizeof id);
    memcpy (rec.from, from, sizeof from);
    memcpy (rec.to, to, sizeof to);
    snprintf (rec.by, sizeof rec.by, "%s", dipx_identity_id (self->identity));
    rec.msg_seq = seq;
    rec.count = count;
    rec.code = (uint64_t) -code;
    rec.present |= DIPX_AU_ID | DIPX_AU_FROM | DIPX_AU_TO | DIPX_AU_BY | DIPX_AU_MSG_SEQ
                   | DIPX_AU_COUNT | DIPX_AU_CODE;
    dipx_audit_set_reason (&rec, reason);
    if ((rc = dipx_store_audit (txn, &rec)))
        return rc;
    /* A session holding back a delivery (perhaps this message, which was
       next in its queue) tries again.  */
    s_session_t *s = s_session_find (self, to);
    if (s && (s->held || s_flight_find (s, seq))) {
        if ((rc = s_touch (self, s)))
            return rc;
        s_flight_remove (s, seq);
        s->held = false;
        s_want (self, s);
    }
    return s_receipt (self, from, id, receipt_event, by, now, code, reason, count);
}

/*  Plans one delivery of a queued message to session s.  */
static int
s_deliver (dipx_server_t *self, dipx_txn_t *txn, s_session_t *s, const dipx_msgrec_t *m,
           uint64_t now, uint64_t mono)
{
    int rc;
    if (m->count >= self->cfg.max_deliveries) {
        char reason[96];
        snprintf (reason, sizeof reason, "not acknowledged after %u deliveries", m->count);
        return s_dead_letter (self, txn, m, now, DIPX_AUDIT_DEAD_LETTERED, DIPX_EVENT_DEAD_LETTERED,
                              DIPX_E_UNDELIVERED, reason,
                              dipx_identity_id (self->identity));
    }
    dipx_envelope_t env;
    if (dipx_envelope_decode (m->env, m->env_len, &env) != 0) {
        dipx_log_error ("store: message %llu does not decode; dead-lettered",
                        (unsigned long long) m->seq);
        return s_dead_letter (self, txn, m, now, DIPX_AUDIT_DEAD_LETTERED, DIPX_EVENT_DEAD_LETTERED,
                              DIPX_E_STORAGE,
                              "stored envelope is corrupt", dipx_identity_id (self->identity));
    }
    /* Encode the DELIVER first: m->env points into LMDB's map, and is not to
       be read after the writes below (a spill of dirty pages frees it).  */
    uint32_t count = m->count + 1;
    dipx_frame_t f = {.cmd = DIPX_CMD_DELIVER};
    f.u.deliver.seq = m->seq;
    f.u.deliver.count = count;
    f.u.deliver.env.ptr = m->env;
    f.u.deliver.env.len = m->env_len;
    if ((rc = s_touch (self, s))
        || (rc = s_out_push (self, s->rid, s->rid_len, &f, true, s->agency, m->seq)))
        return rc;
    memcpy (self->out[self->nout - 1].id, m->id, DIPX_ID_BYTES);
    self->out[self->nout - 1].count = count;
    uint32_t stored;
    if ((rc = dipx_store_msg_delivered (txn, m->seq, now, &stored)))
        return rc;
    if (stored != count)
        return DIPX_E_CORRUPT; /* the record changed under us: cannot happen */
    dipx_audit_t rec;
    dipx_audit_init (&rec, DIPX_AUDIT_DELIVERED, now);
    dipx_audit_set_header (&rec, &env.h);
    rec.msg_seq = m->seq;
    rec.count = count;
    rec.present |= DIPX_AU_MSG_SEQ | DIPX_AU_COUNT;
    if ((rc = dipx_store_audit (txn, &rec)))
        return rc;
    s_flight_t *fl = s_flight_find (s, m->seq);
    if (!fl && s->nflight < s->window) {
        fl = &s->flight[s->nflight++];
        *fl = (s_flight_t) {.seq = m->seq, .size = m->env_len};
    }
    if (s->probing)
        s->probe_out = true;
    if (fl) {
        fl->deadline = mono + self->cfg.ack_timeout_ms;
        fl->sent++;
        fl->count = count;
        fl->missed = 0;
        s->unacked += fl->size;
    }
    if (m->seq > s->cursor)
        s->cursor = m->seq;
    size_t nout = self->nout;
    rc = s_receipt (self, m->from, m->id, DIPX_EVENT_DELIVERED, s->agency, now, 0, NULL, count);
    if (rc == 0 && self->nout > nout) {
        self->out[nout].of_deliver = true;
        self->out[nout].seq = m->seq;
    }
    return rc;
}

/*  Fills session s's credit from its queue.  */
static int
s_fill (dipx_server_t *self, dipx_txn_t *txn, s_session_t *s, uint64_t now, uint64_t mono,
        size_t *budget)
{
    while (s_reachable (s) && s->nflight < s->window && *budget > 0 && !s->probe_out) {
        dipx_msgrec_t m;
        int rc = dipx_store_queue_next (txn, s->agency, s->cursor, &m);
        if (rc == DIPX_E_NOT_FOUND) {
            s->want = false;
            return 0;
        }
        if (rc)
            return rc;
        if (s_flight_find (s, m.seq)) {
            if ((rc = s_touch (self, s)))
                return rc;
            s->cursor = m.seq;
            continue;
        }
        if (m.expires <= now) {
            if ((rc = s_dead_letter (self, txn, &m, now, DIPX_AUDIT_EXPIRED, DIPX_EVENT_EXPIRED,
                                     DIPX_E_EXPIRED,
                                     s_expired_why (&m),
                                     dipx_identity_id (self->identity))))
                return rc;
            continue;
        }
        /* (One at max_deliveries is dead-lettered by s_deliver, sending
           nothing.)  */
        if (m.count < self->cfg.max_deliveries && !s_room (self, s, NULL, (uint32_t) m.env_len)) {
            if ((rc = s_touch (self, s)))
                return rc;
            s->held = true; /* until an ACK frees bytes (s_flight_remove) */
            return 0;
        }
        if ((rc = s_deliver (self, txn, s, &m, now, mono)))
            return rc;
        (*budget)--;
    }
    return 0;
}

/* --- frames --------------------------------------------------------------- */

static void
s_refuse (dipx_server_t *self, dipx_txn_t *txn, s_item_t *it, int code, const char *reason,
          uint64_t now, int *rc_out)
{
    dipx_frame_t f = {.cmd = DIPX_CMD_REFUSED};
    if (it->env_ok)
        memcpy (f.u.refused.id, it->env.h.id, DIPX_ID_BYTES);
    f.u.refused.code = (uint64_t) -code;
    s_set_reason (f.u.refused.reason, reason);
    int rc = s_reply (self, it, &f);
    if (rc == 0 && txn) {
        dipx_audit_t rec;
        dipx_audit_init (&rec, DIPX_AUDIT_REFUSED, now);
        if (it->env_ok)
            dipx_audit_set_header (&rec, &it->env.h);
        snprintf (rec.by, sizeof rec.by, "%s", it->agency);
        rec.code = (uint64_t) -code;
        rec.present |= DIPX_AU_BY | DIPX_AU_CODE;
        dipx_audit_set_reason (&rec, reason);
        rc = dipx_store_audit (txn, &rec);
    }
    *rc_out = rc;
}

/*  Checks a SEND before its signature is verified: everything that needs no
    crypto and no transaction. Sets it->send_rc and it->why.  */
static void
s_precheck_send (dipx_server_t *self, s_item_t *it, uint64_t now)
{
    dipx_slice_t raw = it->f.u.send.env;
    int rc = dipx_envelope_decode (raw.ptr, raw.len, &it->env);
    const dipx_header_t *h = &it->env.h;
    if (rc) {
        it->send_rc = rc;
        snprintf (it->why, sizeof it->why, "envelope: %s", dipx_strerror (rc));
        return;
    }
    it->env_ok = true;
    const dipx_entry_t *from = dipx_registry_by_id (self->registry, it->agency);
    const dipx_entry_t *to = dipx_registry_by_id (self->registry, h->to);
    const char *why;
    if (strcmp (h->from, it->agency) != 0) {
        it->send_rc = DIPX_E_SENDER_MISMATCH;
        snprintf (it->why, sizeof it->why, "envelope from '%s' on a connection of '%s'", h->from,
                  it->agency);
    } else if (!from || (why = dipx_entry_unusable (from, (int64_t) (now / 1000)))) {
        it->send_rc = DIPX_E_SENDER_INACTIVE;
        snprintf (it->why, sizeof it->why, "sender '%s': %s", it->agency,
                  from ? why : "not registered");
    } else if (!to) {
        it->send_rc = DIPX_E_UNKNOWN_RECIPIENT;
        snprintf (it->why, sizeof it->why, "recipient '%s' is not registered", h->to);
    } else if ((why = dipx_entry_unusable (to, (int64_t) (now / 1000)))) {
        it->send_rc = DIPX_E_RECIPIENT_INACTIVE;
        snprintf (it->why, sizeof it->why, "recipient '%s': %s", h->to, why);
    } else if ((rc = dipx_policy_check (self->policy, from->card.type, h->type, to->card.type,
                                        h->basis))) {
        it->send_rc = rc;
        snprintf (it->why, sizeof it->why, "%s %s -> %s on basis %s: %s",
                  h->type, dipx_agency_type_name (from->card.type),
                  dipx_agency_type_name (to->card.type), dipx_basis_name (h->basis),
                  rc == DIPX_E_BASIS ? "basis not allowed for this flow" : "flow not allowed");
    } else if (h->created > now + DIPX_MAX_CLOCK_SKEW_MS) {
        it->send_rc = DIPX_E_CLOCK;
        snprintf (it->why, sizeof it->why, "created %llu ms ahead of the broker's clock",
                  (unsigned long long) (h->created - now));
    } else if (h->expires <= now) {
        it->send_rc = DIPX_E_EXPIRED;
        snprintf (it->why, sizeof it->why, "expired before it reached the broker");
    } else {
        it->vkind = V_ENVELOPE;
        memcpy (it->pk, from->card.sign_pk, DIPX_KEY_BYTES);
    }
}

static void
s_verify_job (void *arg)
{
    s_item_t *it = arg;
    uint8_t stmt[DIPX_ACK_STMT_MAX > DIPX_OUTCOME_STMT_MAX ? DIPX_ACK_STMT_MAX
                                                           : DIPX_OUTCOME_STMT_MAX];
    size_t len;
    switch (it->vkind) {
    case V_ENVELOPE:
        it->vrc = dipx_envelope_verify (&it->env, it->pk, it->digest);
        break;
    case V_ACK:
        len = dipx_ack_statement (it->agency, it->f.u.ack.at, &it->f.u.ack.ids, stmt);
        it->vrc = crypto_sign_verify_detached (it->f.u.ack.sig, stmt, len, it->pk) == 0
                      ? 0
                      : DIPX_E_BAD_SIGNATURE;
        break;
    case V_OUTCOME:
        len = dipx_outcome_statement (it->agency, &it->f.u.outcome, stmt);
        it->vrc = crypto_sign_verify_detached (it->f.u.outcome.sig, stmt, len, it->pk) == 0
                      ? 0
                      : DIPX_E_BAD_SIGNATURE;
        break;
    case V_NONE:
        break;
    }
}

typedef enum { ID_NEW, ID_RESENT, ID_TAKEN } s_id_use_t;

/*  Looks up the SEND's id: ID_NEW, ID_TAKEN (it holds another message), or
    ID_RESENT: its sender's resend of the stored envelope (the same header
    and ciphertext, i.e. digest, from the same agency), answered here with
    the original ACCEPTED. Its signature is not checked: nothing is stored,
    and the answer tells the sender only what it was told. digest NULL: the
    envelope was not verified, and its digest is computed only if the id is
    its sender's (hashing up to 1 MiB).  */
static int
s_id_use (dipx_server_t *self, dipx_txn_t *txn, s_item_t *it, const uint8_t *digest,
          s_id_use_t *use)
{
    *use = ID_NEW;
    dipx_idrec_t ir;
    int rc = dipx_store_id_get (txn, it->env.h.id, &ir);
    if (rc == DIPX_E_NOT_FOUND)
        return 0;
    if (rc)
        return rc;
    *use = ID_TAKEN;
    if (strcmp (ir.from, it->agency) != 0)
        return 0;
    uint8_t computed[2 * DIPX_HASH_BYTES];
    if (!digest) {
        dipx_envelope_digest (&it->env, computed);
        digest = computed;
    }
    if (sodium_memcmp (ir.digest, digest, sizeof ir.digest) != 0)
        return 0;
    dipx_frame_t f = {.cmd = DIPX_CMD_ACCEPTED};
    memcpy (f.u.accepted.id, it->env.h.id, DIPX_ID_BYTES);
    f.u.accepted.seq = ir.seq;
    *use = ID_RESENT;
    return s_reply (self, it, &f);
}

static int
s_handle_send (dipx_server_t *self, dipx_txn_t *txn, s_item_t *it, uint64_t now)
{
    int rc = 0;
    if (it->send_rc || it->vrc) {
        /* A resend of a stored message gets its first answer, though a
           check may refuse it now: its expiry passed, or a reload changed
           the registry or the policy. A REFUSED would tell its sender that
           it was not stored.  */
        if (it->env_ok && it->send_rc != DIPX_E_SENDER_MISMATCH) {
            s_id_use_t use;
            if ((rc = s_id_use (self, txn, it, NULL, &use)) || use == ID_RESENT)
                return rc;
        }
        if (it->send_rc)
            s_refuse (self, txn, it, it->send_rc, it->why, now, &rc);
        else
            s_refuse (self, txn, it, DIPX_E_BAD_SIGNATURE,
                      "envelope signature does not verify with the sender's key", now, &rc);
        return rc;
    }
    const dipx_header_t *h = &it->env.h;
    s_id_use_t use;
    if ((rc = s_id_use (self, txn, it, it->digest, &use)) || use == ID_RESENT)
        return rc;
    if (use == ID_TAKEN) {
        s_refuse (self, txn, it, DIPX_E_ID_CONFLICT,
                  "message id already used for a different message", now, &rc);
        return rc;
    }
    if (self->degraded) {
        /* The first run failed (storage full, or a write or allocation
           failed): refuse, with the refusal audited if even that
           small record fits (level 1). Its commit also matters: LMDB reuses
           pages freed by acknowledgements only after a later transaction has
           committed, so a broker writing nothing would never get them back.
           At level 2 nothing is written at all.  */
        bool full = self->fail_rc == DIPX_E_STORAGE_FULL;
        s_refuse (self, self->degraded == 1 ? txn : NULL, it,
                  full ? DIPX_E_STORAGE_FULL : DIPX_E_STORAGE,
                  full ? "broker storage is full; retry later"
                       : "broker could not store the message; retry later",
                  now, &rc);
        dipx_log_warn ("refused %s -> %s: %s", h->from, h->to,
                       full ? "storage full" : dipx_strerror (self->fail_rc));
        return rc;
    }
    uint64_t qcount, qbytes;
    rc = dipx_store_queue_stat (txn, h->to, &qcount, &qbytes);
    if (rc && rc != DIPX_E_NOT_FOUND)
        return rc;
    size_t len = it->f.u.send.env.len;
    if (qcount >= self->cfg.queue_max_messages
        || qbytes + len > self->cfg.queue_max_mb * 1024 * 1024) {
        char why[128];
        snprintf (why, sizeof why, "queue for '%s' holds %llu messages, %llu bytes", h->to,
                  (unsigned long long) qcount, (unsigned long long) qbytes);
        s_refuse (self, txn, it, DIPX_E_QUEUE_FULL, why, now, &rc);
        return rc;
    }
    uint64_t seq;
    if ((rc = dipx_store_enqueue (txn, &it->env, it->f.u.send.env.ptr, len, it->digest, now, &seq)))
        return rc;
    dipx_audit_t rec;
    dipx_audit_init (&rec, DIPX_AUDIT_ACCEPTED, now);
    dipx_audit_set_header (&rec, h);
    rec.msg_seq = seq;
    rec.present |= DIPX_AU_MSG_SEQ;
    if (h->basis == DIPX_BASIS_PUBLIC_INTEREST) {
        /* DPA s.62: the justification of an override is logged with it.  */
        char why[DIPX_MAX_REASON + 1];
        snprintf (why, sizeof why, "public interest: by %s, approved by %s", h->pi_by,
                  h->pi_approver);
        dipx_audit_set_reason (&rec, why);
    }
    if ((rc = dipx_store_audit (txn, &rec)))
        return rc;
    dipx_frame_t f = {.cmd = DIPX_CMD_ACCEPTED};
    memcpy (f.u.accepted.id, h->id, DIPX_ID_BYTES);
    f.u.accepted.seq = seq;
    if ((rc = s_reply (self, it, &f)))
        return rc;
    s_session_t *s = s_session_find (self, h->to);
    if (s)
        s_want (self, s);
    return 0;
}

/*  Answers a HELLO with the WELCOME granting window, audited (with reason,
    if not NULL).  */
static int
s_welcome_audited (dipx_server_t *self, dipx_txn_t *txn, s_item_t *it, uint32_t window,
                   const char *reason, uint64_t now)
{
    dipx_frame_t f;
    s_welcome (self, window, &f);
    int rc = s_reply (self, it, &f);
    if (rc)
        return rc;
    dipx_audit_t rec;
    dipx_audit_init (&rec, DIPX_AUDIT_SESSION, now);
    snprintf (rec.by, sizeof rec.by, "%s", it->agency);
    rec.count = window;
    rec.present |= DIPX_AU_BY | DIPX_AU_COUNT;
    if (reason)
        dipx_audit_set_reason (&rec, reason);
    return dipx_store_audit (txn, &rec);
}

static int
s_handle_hello (dipx_server_t *self, dipx_txn_t *txn, s_item_t *it, uint64_t now)
{
    int rc;
    uint32_t window = (uint32_t) it->f.u.hello.window;
    if (window > self->cfg.window)
        window = (uint32_t) self->cfg.window;
    s_session_t *s = s_session_find (self, it->agency);
    size_t rl = zmq_msg_size (&it->rid);
    if (s && s->window > 0 && s->rid_len && window == 0
        && (s->rid_len != rl || memcmp (s->rid, zmq_msg_data (&it->rid), rl) != 0)) {
        /* A send-only connection of an agency that is receiving elsewhere
           (`dipx send` beside the agency's receiving service): answered,
           and the session stays with the receiver, which would otherwise
           stop getting deliveries without being told.  */
        return s_welcome_audited (self, txn, it, 0, "send only, beside the receiving session",
                                  now);
    }
    if (!s) {
        if (self->nsessions >= self->cfg.max_sessions) {
            dipx_log_warn ("session refused to %s: max_sessions (%llu) agencies are connected",
                           it->agency, (unsigned long long) self->cfg.max_sessions);
            return s_reply_error (self, it, DIPX_E_BUSY, DIPX_CMD_HELLO, "too many sessions");
        }
        s = calloc (1, sizeof *s);
        if (!s)
            return DIPX_E_NOMEM;
        snprintf (s->agency, sizeof s->agency, "%s", it->agency);
        s->fd = -1;
        size_t b = s_bucket (self, s->agency);
        s->next = self->buckets[b];
        self->buckets[b] = s;
        self->nsessions++;
        /* Undone by freeing it (s_undo_apply).  */
        if ((rc = s_touch (self, s)))
            return rc;
        self->undo[self->nundo - 1].created = true;
    } else if ((rc = s_touch (self, s)))
        return rc;
    if (window != s->window) {
        s_flight_t *flight = window ? malloc (window * sizeof *flight) : NULL;
        if (window && !flight)
            return DIPX_E_NOMEM;
        /* The undo log holds its own copy, so the old array can go.  */
        free (s->flight);
        s->flight = flight;
    }
    memcpy (s->rid, zmq_msg_data (&it->rid), rl);
    s->rid_len = rl;
    s->paused = false;
    s->pause_ms = 0;
    s->probing = false;
    s->probe_out = false;
    s->window = window;
    s->nflight = 0;
    s->unacked = 0;
    s->held = false;
    s->cursor = 0;
    s->in_want = false;
    for (size_t i = 0; i < self->nwant; i++)
        if (self->want[i] == s)
            s->in_want = true;
    if (window)
        s_want (self, s);
    return s_welcome_audited (self, txn, it, window, NULL, now);
}

/*  Writes the audit record of a recipient's signed act (ack or outcome).  */
static int
s_audit_signed (dipx_txn_t *txn, int event, const dipx_idrec_t *ir, const uint8_t *id,
                const char *by, const uint8_t sig[DIPX_SIG_BYTES], uint64_t sig_at,
                uint64_t count, const char *reason, uint64_t now)
{
    dipx_audit_t rec;
    dipx_audit_init (&rec, event, now);
    memcpy (rec.id, id, DIPX_ID_BYTES);
    memcpy (rec.from, ir->from, sizeof rec.from);
    memcpy (rec.to, ir->to, sizeof rec.to);
    snprintf (rec.by, sizeof rec.by, "%s", by);
    memcpy (rec.sig, sig, DIPX_SIG_BYTES);
    rec.sig_at = sig_at;
    rec.msg_seq = ir->seq;
    rec.count = count;
    rec.present |= DIPX_AU_ID | DIPX_AU_FROM | DIPX_AU_TO | DIPX_AU_BY | DIPX_AU_SIG
                   | DIPX_AU_SIG_AT | DIPX_AU_MSG_SEQ | DIPX_AU_COUNT;
    if (reason)
        dipx_audit_set_reason (&rec, reason);
    return dipx_store_audit (txn, &rec);
}

static int
s_handle_ack (dipx_server_t *self, dipx_txn_t *txn, s_item_t *it, uint64_t now)
{
    const dipx_fack_t *a = &it->f.u.ack;
    if (it->vrc)
        return s_reply_error (self, it, DIPX_E_BAD_SIGNATURE, DIPX_CMD_ACK,
                              "acknowledgement signature does not verify");
    s_session_t *s = s_session_find (self, it->agency);
    uint32_t unknown = 0;
    int rc;
    for (uint32_t i = 0; i < a->ids.count; i++) {
        const uint8_t *id = a->ids.ids[i];
        dipx_idrec_t ir;
        dipx_msgrec_t m;
        rc = dipx_store_id_get (txn, id, &ir);
        if (rc == DIPX_E_NOT_FOUND || (rc == 0 && (strcmp (ir.to, it->agency) != 0
                                                   || ir.state != DIPX_MSG_QUEUED))) {
            unknown++;
            continue;
        }
        if (rc || (rc = dipx_store_msg_get (txn, ir.seq, &m)))
            return rc;
        if (m.count == 0) { /* never delivered: cannot be acknowledged */
            unknown++;
            continue;
        }
        uint64_t count = m.count;
        if ((rc = dipx_store_msg_acked (txn, ir.seq))
            || (rc = s_audit_signed (txn, DIPX_AUDIT_ACKED, &ir, id, it->agency, a->sig, a->at,
                                     count, NULL, now)))
            return rc;
        if (s && s_flight_find (s, ir.seq)) {
            if ((rc = s_touch (self, s)))
                return rc;
            s_flight_remove (s, ir.seq);
            s_want (self, s);
        }
        if ((rc = s_receipt (self, ir.from, id, DIPX_EVENT_ACKED, it->agency, now, 0, NULL, count)))
            return rc;
    }
    if (unknown) {
        char why[96];
        snprintf (why, sizeof why, "%u of %u ids are not queued for this agency", unknown,
                  a->ids.count);
        return s_reply_error (self, it, DIPX_E_NOT_RECIPIENT, DIPX_CMD_ACK, why);
    }
    return 0;
}

static int
s_handle_outcome (dipx_server_t *self, dipx_txn_t *txn, s_item_t *it, uint64_t now)
{
    const dipx_foutcome_t *o = &it->f.u.outcome;
    if (it->vrc)
        return s_reply_error (self, it, DIPX_E_BAD_SIGNATURE, DIPX_CMD_OUTCOME,
                              "outcome signature does not verify");
    dipx_idrec_t ir;
    int rc = dipx_store_id_get (txn, o->id, &ir);
    if (rc == DIPX_E_NOT_FOUND || (rc == 0 && strcmp (ir.to, it->agency) != 0))
        return s_reply_error (self, it, DIPX_E_NOT_RECIPIENT, DIPX_CMD_OUTCOME,
                              "message is not addressed to this agency");
    if (rc)
        return rc;
    const char *reason = (it->f.present & DIPX_OUTCOME_HAS_REASON) ? o->reason : NULL;
    bool rejected = o->event == DIPX_EVENT_REJECTED;
    if (ir.state == DIPX_MSG_QUEUED && rejected) {
        /* Rejected before acknowledgement: the recipient cannot accept this
           message (it failed its checks or its business rules), so it will
           not be delivered again: it goes to the dead letters, kept.  */
        dipx_msgrec_t m;
        if ((rc = dipx_store_msg_get (txn, ir.seq, &m)))
            return rc;
        if ((rc = s_audit_signed (txn, DIPX_AUDIT_REJECTED, &ir, o->id, it->agency, o->sig, o->at,
                                  m.count, reason, now)))
            return rc;
        /* One receipt: REJECTED, with code recipient_rejected and the reason
           (PROTOCOL.md 5.5); the audit log has both the signed rejection and
           the dead-lettering.  */
        char why[DIPX_MAX_REASON + 1];
        snprintf (why, sizeof why, "rejected by recipient: %s", reason ? reason : "");
        return s_dead_letter (self, txn, &m, now, DIPX_AUDIT_DEAD_LETTERED, DIPX_EVENT_REJECTED,
                              DIPX_E_RECIPIENT_REJECTED, why,
                              it->agency);
    }
    if (ir.state != DIPX_MSG_ACKED)
        return s_reply_error (self, it, DIPX_E_STATE, DIPX_CMD_OUTCOME,
                              ir.state == DIPX_MSG_QUEUED
                                  ? "acknowledge the message before reporting it actioned"
                                  : "message is in the dead letters");
    if ((rc = s_audit_signed (txn, rejected ? DIPX_AUDIT_REJECTED : DIPX_AUDIT_ACTIONED, &ir,
                              o->id, it->agency, o->sig, o->at, 0, reason, now)))
        return rc;
    return s_receipt (self, ir.from, o->id, rejected ? DIPX_EVENT_REJECTED : DIPX_EVENT_ACTIONED,
                      it->agency, now, 0, reason, 0);
}

typedef struct {
    dipx_server_t *self;                      /* for the broker's id */
    dipx_freceipt_t events[DIPX_MAX_HISTORY]; /* history, oldest first */
    size_t n;                                 /* events collected */
} s_track_t;

static int
s_track_collect (const dipx_audit_t *rec, void *arg)
{
    s_track_t *t = arg;
    static const int map[DIPX_AUDIT_COUNT] = {
        [DIPX_AUDIT_ACCEPTED] = DIPX_EVENT_ACCEPTED + 1,
        [DIPX_AUDIT_DELIVERED] = DIPX_EVENT_DELIVERED + 1,
        [DIPX_AUDIT_ACKED] = DIPX_EVENT_ACKED + 1,
        [DIPX_AUDIT_ACTIONED] = DIPX_EVENT_ACTIONED + 1,
        [DIPX_AUDIT_REJECTED] = DIPX_EVENT_REJECTED + 1,
        [DIPX_AUDIT_EXPIRED] = DIPX_EVENT_EXPIRED + 1,
        [DIPX_AUDIT_DEAD_LETTERED] = DIPX_EVENT_DEAD_LETTERED + 1,
        [DIPX_AUDIT_REDRIVEN] = DIPX_EVENT_REDRIVEN + 1,
        [DIPX_AUDIT_UNDELIVERABLE] = DIPX_EVENT_UNDELIVERABLE + 1,
    };
    if (!map[rec->event] || t->n == DIPX_MAX_HISTORY)
        return 0;
    dipx_freceipt_t *e = &t->events[t->n++];
    memset (e, 0, sizeof *e);
    memcpy (e->id, rec->id, DIPX_ID_BYTES);
    e->event = map[rec->event] - 1;
    e->at = rec->at;
    /* Who caused it: the recipient for a delivery, else whoever the record
       names, else the broker itself.  */
    const char *by = (rec->present & DIPX_AU_BY)         ? rec->by
                     : rec->event == DIPX_AUDIT_DELIVERED ? rec->to
                                                          : dipx_identity_id (t->self->identity);
    snprintf (e->by, sizeof e->by, "%s", by);
    e->code = (rec->present & DIPX_AU_CODE) ? rec->code : 0;
    if (rec->present & DIPX_AU_REASON)
        snprintf (e->reason, sizeof e->reason, "%s", rec->reason);
    e->count = (rec->present & DIPX_AU_COUNT) ? rec->count : 0;
    return 0;
}

static int
s_handle_track (dipx_server_t *self, dipx_txn_t *txn, s_item_t *it)
{
    dipx_idrec_t ir;
    int rc = dipx_store_id_get (txn, it->f.u.track.id, &ir);
    if (rc == DIPX_E_NOT_FOUND
        || (rc == 0 && strcmp (ir.from, it->agency) != 0 && strcmp (ir.to, it->agency) != 0))
        return s_reply_error (self, it, DIPX_E_NOT_RECIPIENT, DIPX_CMD_TRACK,
                              "no such message sent to or by this agency");
    if (rc)
        return rc;
    s_track_t *t = calloc (1, sizeof *t);
    if (!t)
        return DIPX_E_NOMEM;
    t->self = self;
    rc = dipx_store_audit_for_id (txn, it->f.u.track.id, 4 * DIPX_MAX_HISTORY, s_track_collect, t);
    for (size_t i = 0; rc == 0 && i < t->n; i++) {
        dipx_frame_t f = {.cmd = DIPX_CMD_HISTORY};
        f.u.history = t->events[i];
        f.u.history.index = i;
        f.u.history.total = t->n;
        if (f.u.history.code)
            f.present |= DIPX_RECEIPT_HAS_CODE;
        if (f.u.history.reason[0])
            f.present |= DIPX_RECEIPT_HAS_REASON;
        if (f.u.history.count)
            f.present |= DIPX_RECEIPT_HAS_COUNT;
        rc = s_reply (self, it, &f);
    }
    if (rc == 0 && t->n == 0)
        rc = s_reply_error (self, it, DIPX_E_NOT_RECIPIENT, DIPX_CMD_TRACK, "no history kept");
    free (t);
    return rc;
}

/*  Rate limit for records of refused input (bad keys, malformed frames), so
    a flood cannot fill the audit log and with it the store; the number not
    audited is carried in the next auth record.  */
static bool
s_audit_allowed (dipx_server_t *self, uint64_t now)
{
    if (now / 1000 != self->bucket_ms) {
        self->bucket_ms = now / 1000;
        self->bucket_used = 0;
    }
    if (self->bucket_used >= self->cfg.auth_audit_per_sec) {
        self->suppressed++;
        return false;
    }
    self->bucket_used++;
    return true;
}

static int
s_handle_item (dipx_server_t *self, dipx_txn_t *txn, s_item_t *it, uint64_t now)
{
    if (it->rc) {
        int rc = s_reply_error (self, it, it->rc, it->f.cmd, it->why);
        if (rc || self->degraded == 2 || !s_audit_allowed (self, now))
            return rc;
        dipx_audit_t rec;
        dipx_audit_init (&rec, DIPX_AUDIT_PROTOCOL, now);
        snprintf (rec.by, sizeof rec.by, "%s", it->agency[0] ? it->agency : "unknown");
        rec.code = (uint64_t) -it->rc;
        rec.present |= DIPX_AU_BY | DIPX_AU_CODE;
        dipx_audit_set_reason (&rec, it->why);
        return dipx_store_audit (txn, &rec);
    }
    switch (it->f.cmd) {
    case DIPX_CMD_HELLO:
        return s_handle_hello (self, txn, it, now);
    case DIPX_CMD_SEND:
        return s_handle_send (self, txn, it, now);
    case DIPX_CMD_ACK:
        return s_handle_ack (self, txn, it, now);
    case DIPX_CMD_OUTCOME:
        return s_handle_outcome (self, txn, it, now);
    case DIPX_CMD_TRACK:
        return s_handle_track (self, txn, it);
    default:
        return s_reply_error (self, it, DIPX_E_STATE, it->f.cmd,
                              "command is sent by the broker, not to it");
    }
}

/*  Decodes a received frame and prepares what can be done without the
    transaction.  */
static void
s_prepare (dipx_server_t *self, s_item_t *it, uint64_t now)
{
    it->vkind = V_NONE;
    it->vrc = 0;
    it->send_rc = 0;
    it->env_ok = false;
    const char *user = zmq_msg_gets (&it->body, "User-Id");
    if (!user || strlen (user) > DIPX_MAX_AGENCY_ID) {
        /* Cannot happen with the ZAP handler admitting: refuse anyway.  */
        it->rc = DIPX_E_STATE;
        snprintf (it->why, sizeof it->why, "connection has no authenticated agency");
        return;
    }
    snprintf (it->agency, sizeof it->agency, "%s", user);
    if (it->rc)
        return;
    it->rc = dipx_frame_decode (zmq_msg_data (&it->body), zmq_msg_size (&it->body), &it->f);
    if (it->rc) {
        snprintf (it->why, sizeof it->why, "%s frame: %s", dipx_cmd_name (it->f.cmd),
                  dipx_strerror (it->rc));
        return;
    }
    const dipx_entry_t *e = dipx_registry_by_id (self->registry, it->agency);
    const char *why = e ? dipx_entry_unusable (e, (int64_t) (now / 1000)) : "not registered";
    if (why) {
        if (it->f.cmd == DIPX_CMD_SEND) {
            s_precheck_send (self, it, now); /* refuses with sender_inactive */
            return;
        }
        it->rc = DIPX_E_SENDER_INACTIVE;
        snprintf (it->why, sizeof it->why, "agency '%s': %s", it->agency, why);
        return;
    }
    switch (it->f.cmd) {
    case DIPX_CMD_SEND:
        s_precheck_send (self, it, now);
        break;
    case DIPX_CMD_ACK:
        it->vkind = V_ACK;
        memcpy (it->pk, e->card.sign_pk, DIPX_KEY_BYTES);
        break;
    case DIPX_CMD_OUTCOME:
        it->vkind = V_OUTCOME;
        memcpy (it->pk, e->card.sign_pk, DIPX_KEY_BYTES);
        break;
    default:
        break;
    }
}

/*  Reads up to max frames into the next batch (items: its free end)
    without blocking, and while the batch holds under S_BATCH_BYTES.
    Returns how many.  */
static size_t
s_read_batch (dipx_server_t *self, s_item_t *items, size_t max)
{
    size_t n = 0;
    while (n < max && self->ready_bytes < S_BATCH_BYTES) { /* as s_ready_room */
        s_item_t *it = &items[n];
        zmq_msg_init (&it->rid);
        zmq_msg_init (&it->body);
        it->open = true;
        it->rc = 0;
        it->agency[0] = 0;
        memset (&it->f, 0, sizeof it->f);
        if (zmq_msg_recv (&it->rid, self->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&it->rid);
            zmq_msg_close (&it->body);
            it->open = false;
            break;
        }
        if (!zmq_msg_more (&it->rid) || zmq_msg_recv (&it->body, self->router, 0) < 0) {
            zmq_msg_close (&it->rid);
            zmq_msg_close (&it->body);
            it->open = false;
            continue;
        }
        if (zmq_msg_more (&it->body)) {
            /* A client sends one part per frame: drain and answer.  */
            int more = 1;
            while (more) {
                zmq_msg_t m;
                zmq_msg_init (&m);
                more = zmq_msg_recv (&m, self->router, 0) >= 0 && zmq_msg_more (&m);
                zmq_msg_close (&m);
            }
            it->rc = DIPX_E_FRAME_SIZE;
            snprintf (it->why, sizeof it->why, "a frame is exactly one message part");
        }
        self->ready_bytes += zmq_msg_size (&it->body);
        n++;
    }
    return n;
}

static void
s_items_close (s_item_t *items, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        if (items[i].open) {
            zmq_msg_close (&items[i].rid);
            zmq_msg_close (&items[i].body);
            items[i].open = false;
        }
    *n = 0;
}

/* --- the turn ------------------------------------------------------------- */

static int
s_housekeep (dipx_server_t *self, dipx_txn_t *txn, uint64_t now, uint64_t mono)
{
    int rc;
    /* Expiry: a message past its expires-at goes to the dead letters, never
       silently away, and its sender is told.  */
    for (size_t n = 0; n < self->cfg.batch; n++) {
        dipx_msgrec_t m;
        rc = dipx_store_expired_next (txn, now, &m);
        if (rc == DIPX_E_NOT_FOUND)
            break;
        if (rc)
            return rc;
        if ((rc = s_dead_letter (self, txn, &m, now, DIPX_AUDIT_EXPIRED, DIPX_EVENT_EXPIRED,
                                     DIPX_E_EXPIRED,
                                 s_expired_why (&m),
                                 dipx_identity_id (self->identity))))
            return rc;
    }
    /* An operator redrove dead letters (from another process): they sit below
       the sessions' cursors, so every session scans its queue again.  */
    uint64_t epoch = dipx_store_redrive_epoch (txn);
    if (epoch != self->redrive_epoch) {
        for (size_t b = 0; b < S_BUCKETS; b++)
            for (s_session_t *s = self->buckets[b]; s; s = s->next) {
                if ((rc = s_touch (self, s)))
                    return rc;
                s->cursor = 0;
                s_want (self, s);
            }
        self->redrive_epoch = epoch;
    }
    /* Redelivery: in-flight messages past their acknowledgement deadline.  */
    size_t budget = self->cfg.batch;
    for (size_t b = 0; b < S_BUCKETS && budget; b++)
        for (s_session_t *s = self->buckets[b]; s && budget; s = s->next) {
            if (s->paused && mono >= s->paused_at + s->pause_ms) {
                /* Its send queue was full a while ago: one DELIVER probes it
                   (the one it missed, due now, or else the next), and the
                   rest wait until that one goes out (s_delivered_out); a
                   queue still full pauses it again, for twice as long.  */
                if ((rc = s_touch (self, s)))
                    return rc;
                s->paused = false;
                s->probing = true;
                s->probe_out = false;
                dipx_log_debug ("session of %s resumes after its send queue was full",
                               s->agency);
            }
            if (!s_reachable (s))
                continue;
            for (uint32_t i = 0; i < s->nflight && budget && !s->probe_out; i++) {
                s_flight_t *f = &s->flight[i];
                if (f->deadline > mono)
                    continue;
                /* Past its deadline, a message is sent again if there is
                   room for one more copy. If not, the attempt counts as
                   made (a copy would sit unread beside the others), so that
                   max_deliveries still ends a message its recipient does
                   not take, at the deadline after its last attempt as
                   without the hold; the store is read only then.  */
                uint64_t attempts = (uint64_t) f->count + f->missed;
                if (attempts < self->cfg.max_deliveries && !s_room (self, s, f, f->size)) {
                    if ((rc = s_touch (self, s)))
                        return rc;
                    f->deadline = mono + self->cfg.ack_timeout_ms;
                    f->missed++;
                    continue;
                }
                dipx_msgrec_t m;
                rc = dipx_store_msg_get (txn, f->seq, &m);
                if (rc == 0 && m.state == DIPX_MSG_QUEUED) {
                    uint32_t before = s->nflight;
                    if (!f->missed || attempts < self->cfg.max_deliveries)
                        rc = s_deliver (self, txn, s, &m, now, mono); /* or dead-letters it */
                    else {
                        char reason[128];
                        snprintf (reason, sizeof reason,
                                  "not acknowledged after %u deliveries and %u more held back "
                                  "(unacked_max_mb)",
                                  m.count, f->missed);
                        rc = s_dead_letter (self, txn, &m, now, DIPX_AUDIT_DEAD_LETTERED,
                                            DIPX_EVENT_DEAD_LETTERED, DIPX_E_UNDELIVERED, reason,
                                            dipx_identity_id (self->identity));
                    }
                    if (rc)
                        return rc;
                    budget--;
                    if (s->nflight < before)
                        i--; /* dead-lettered: slot i now holds another entry */
                } else if (rc == 0 || rc == DIPX_E_NOT_FOUND) {
                    if ((rc = s_touch (self, s)))
                        return rc;
                    s_flight_remove (s, f->seq);
                    i--;
                } else
                    return rc;
            }
            if (s->want)
                s_want (self, s);
        }
    return 0;
}

/*  One run of the turn's transaction. Returns 0 or the error that aborted
    it (nothing was committed).  */
static int
s_transact (dipx_server_t *self, bool housekeep, uint64_t now, uint64_t mono)
{
    dipx_txn_t *txn;
    int rc = dipx_store_begin (self->store, &txn);
    if (rc)
        return rc;
    size_t npending = self->degraded == 2 ? 0 : self->npending;
    for (size_t i = 0; rc == 0 && i < npending; i++) {
        dipx_audit_t *rec = &self->pending[i];
        rc = dipx_store_audit (txn, rec);
        /* A DELIVER that never left: its attempt is taken back (s_send_out).  */
        if (rc == 0 && rec->event == DIPX_AUDIT_UNDELIVERABLE && (rec->present & DIPX_AU_COUNT))
            rc = dipx_store_msg_undelivered (txn, rec->msg_seq, (uint32_t) rec->count);
    }
    for (size_t i = 0; rc == 0 && i < self->nitems; i++)
        if (self->items[i].open)
            rc = s_handle_item (self, txn, &self->items[i], now);
    if (rc == 0 && housekeep)
        rc = s_housekeep (self, txn, now, mono);
    size_t budget = 2 * self->cfg.batch;
    for (size_t i = 0; rc == 0 && i < self->nwant; i++) {
        s_session_t *s = self->want[i];
        if (s->want)
            rc = s_fill (self, txn, s, now, mono, &budget);
    }
    if (rc) {
        dipx_store_abort (&txn);
        return rc;
    }
    if ((rc = dipx_store_commit (&txn)))
        return rc;
    if (npending) {
        memmove (self->pending, self->pending + npending,
                 (self->npending - npending) * sizeof *self->pending);
        self->npending -= npending;
    }
    return 0;
}

/*  After a DELIVER to s went out: a session resumed after a full send queue
    (s_housekeep) is taking frames again, so the rest of its deliveries may
    follow, and the messages whose DELIVER never left (sent 0) are due at
    once. Loop thread, between jobs.  */
static void
s_delivered_out (dipx_server_t *self, s_session_t *s)
{
    if (!s->probing || s->paused)
        return;
    s->pause_ms = 0;
    s->probing = false;
    s->probe_out = false;
    for (uint32_t i = 0; i < s->nflight; i++)
        if (s->flight[i].sent == 0)
            s->flight[i].deadline = 0;
    s_want (self, s);
}

static void
s_send_out (dipx_server_t *self, uint64_t now)
{
    bool unsent = false;   /* a DELIVER did not go out ... */
    uint64_t unsent_seq = 0; /* ... the last one, of this message */
    for (size_t i = 0; i < self->nout; i++) {
        s_out_t *o = &self->out[i];
        if (o->of_deliver && unsent && o->seq == unsent_seq)
            continue; /* its sender is not told of a delivery that never left */
        if (zmq_send (self->router, o->rid, o->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0
            && zmq_send (self->router, s_out_data (o), o->len, ZMQ_DONTWAIT) >= 0) {
            s_session_t *s = o->deliver ? s_session_find (self, o->agency) : NULL;
            if (s && s->rid_len == o->rid_len && memcmp (s->rid, o->rid, o->rid_len) == 0)
                s_delivered_out (self, s);
        } else {
            int err = zmq_errno ();
            /* The agency's connection is gone (EHOSTUNREACH, thanks to
               ZMQ_ROUTER_MANDATORY: a session on it ends, which is what ends
               one whose close the monitor could not match) or full (EAGAIN:
               the session rests, see S_PAUSE_MS).  */
            s_session_t *s = o->agency[0] ? s_session_find (self, o->agency) : NULL;
            if (s && s->rid_len == o->rid_len && memcmp (s->rid, o->rid, o->rid_len) == 0) {
                if (err == EHOSTUNREACH)
                    s_session_free (self, s);
                else if (o->deliver) {
                    /* This copy never left: not counted in unacked, nor as
                       an attempt. The first message missed is due again as
                       soon as the session resumes (s_housekeep).  */
                    s_flight_t *f = s_flight_find (s, o->seq);
                    if (f && f->sent) {
                        f->sent--;
                        s->unacked -= f->size;
                    }
                    if (f && f->count && f->count == o->count)
                        f->count--;
                    s->probe_out = false; /* probing stays: the next probe, later */
                    if (!s->paused) {
                        s->paused = true;
                        s->paused_at = dipx_mono_ms ();
                        s->pause_ms = s->pause_ms ? 2 * s->pause_ms : S_PAUSE_MS;
                        if (s->pause_ms > self->cfg.ack_timeout_ms)
                            s->pause_ms = self->cfg.ack_timeout_ms;
                        if (f)
                            f->deadline = 0;
                    }
                }
            }
            if (!o->deliver) {
                dipx_log_debug ("reply not sent: %s", zmq_strerror (err));
                continue;
            }
            /* A delivery stays queued, and the miss is audited. With the
               record, the next transaction takes the attempt back from the
               message's count (s_transact), so that a DELIVER that never
               left counts neither towards max_deliveries nor in the next
               DELIVER's count; a crash before then leaves it counted.  */
            unsent = true;
            unsent_seq = o->seq;
            dipx_audit_t rec;
            dipx_audit_init (&rec, DIPX_AUDIT_UNDELIVERABLE, now);
            snprintf (rec.to, sizeof rec.to, "%s", o->agency);
            memcpy (rec.id, o->id, DIPX_ID_BYTES);
            rec.msg_seq = o->seq;
            rec.count = o->count;
            rec.present |= DIPX_AU_ID | DIPX_AU_TO | DIPX_AU_MSG_SEQ | DIPX_AU_COUNT;
            dipx_audit_set_reason (&rec, zmq_strerror (err));
            s_pending_audit (self, &rec);
        }
    }
    s_out_drop (self);
}


static void
s_auth_events (dipx_server_t *self, uint64_t now)
{
    dipx_auth_event_t ev;
    while (dipx_auth_handle (self->auth, &ev) == 1) {
        if (self->probe_fp[0] && strcmp (ev.key, self->probe_fp) == 0) {
            self->probe_refused = !ev.admitted;
            continue;
        }
        if (ev.admitted)
            continue;
        if (!s_audit_allowed (self, now))
            continue;
        dipx_audit_t rec;
        dipx_audit_init (&rec, DIPX_AUDIT_AUTH_REFUSED, now);
        snprintf (rec.key, sizeof rec.key, "%s", ev.key);
        snprintf (rec.peer, sizeof rec.peer, "%s", ev.peer);
        rec.code = (uint64_t) ev.status;
        rec.present |= DIPX_AU_KEY | DIPX_AU_PEER | DIPX_AU_CODE;
        if (ev.agency[0]) {
            snprintf (rec.by, sizeof rec.by, "%s", ev.agency);
            rec.present |= DIPX_AU_BY;
        }
        char why[128];
        if (self->suppressed)
            snprintf (why, sizeof why, "%s (%llu earlier refusals not audited)", ev.why,
                      (unsigned long long) self->suppressed);
        else
            snprintf (why, sizeof why, "%s", ev.why);
        self->suppressed = 0;
        dipx_audit_set_reason (&rec, why);
        s_pending_audit (self, &rec);
        dipx_log_info ("auth: refused key %s from %s: %s", ev.key, ev.peer, ev.why);
    }
}

/*  The answer to a frame whose turn could not be committed: a SEND whose
    envelope decoded is REFUSED under its id (so the sender's library can
    settle that send), any other frame gets an ERROR.  */
static void
s_failed_frame (const s_item_t *it, dipx_frame_t *f)
{
    memset (f, 0, sizeof *f);
    if (it->f.cmd == DIPX_CMD_SEND && it->env_ok) {
        f->cmd = DIPX_CMD_REFUSED;
        memcpy (f->u.refused.id, it->env.h.id, DIPX_ID_BYTES);
        f->u.refused.code = (uint64_t) -DIPX_E_STORAGE;
        s_set_reason (f->u.refused.reason, "broker could not commit; retry later");
    } else {
        f->cmd = DIPX_CMD_ERROR;
        f->u.error.code = (uint64_t) -DIPX_E_STORAGE;
        f->u.error.cmd = (uint64_t) (it->f.cmd > 0 && it->f.cmd < 256 ? it->f.cmd : 0);
        s_set_reason (f->u.error.reason, "broker could not commit");
    }
}

/*  The turn's transaction, run on the worker thread: the batch, the timers
    and the deliveries in one transaction (run again refusing new messages if
    the commit fails), the batch answered with errors if nothing could be
    committed, and the sessions with more to deliver kept on the want list.
    It owns the store, the sessions, the replies and the pending audit
    records until the loop thread collects it; the loop thread meanwhile
    touches only the router and the next batch.  */
static void
s_commit_job (void *arg)
{
    dipx_server_t *self = arg;
    bool housekeep = self->job_housekeep;
    uint64_t now = self->job_now, mono = self->job_mono;
    int rc = 0;
    size_t keep_want = self->nwant;
    uint64_t epoch = self->redrive_epoch;
    for (self->degraded = 0; self->degraded <= 2; self->degraded++) {
        self->turn++;
        rc = s_transact (self, housekeep, now, mono);
        if (rc == 0)
            break;
        if (self->degraded == 0)
            self->fail_rc = rc;
        s_out_drop (self);
        s_undo_apply (self, keep_want);
        self->redrive_epoch = epoch; /* the cursor resets were undone too */
        if (self->degraded == 0 && rc == DIPX_E_STORAGE_FULL && !self->storage_full)
            dipx_log_error ("storage full: refusing new messages until space returns");
        if (self->degraded == 0)
            self->storage_full = rc == DIPX_E_STORAGE_FULL;
        /* Run again refusing every new message, so acknowledgements and
           deliveries still go on, and no sender is left without an answer.  */
    }
    if (rc) {
        dipx_log_error ("commit failed three times (%s): answering the batch with errors",
                        dipx_strerror (rc));
        /* One answer per frame, in order, and none needs memory: the room
           for a batch of answers was taken at start-up and s_send_out empties
           it, and every answer here is small enough to be encoded inline.
           A resend of a stored message still gets its original ACCEPTED, if
           the store can be read: REFUSED would tell its sender that it was
           not stored. The lookup runs in a write transaction, never
           committed, because beginning one allocates nothing.  */
        dipx_txn_t *rtxn = NULL;
        if (dipx_store_begin (self->store, &rtxn) != 0)
            rtxn = NULL;
        for (size_t i = 0; i < self->nitems; i++) {
            s_item_t *it = &self->items[i];
            dipx_frame_t f;
            if (!it->open)
                continue;
            s_id_use_t use = ID_NEW;
            if (rtxn && it->f.cmd == DIPX_CMD_SEND && it->env_ok
                && it->send_rc != DIPX_E_SENDER_MISMATCH) {
                int qrc = s_id_use (self, rtxn, it, NULL, &use);
                if (use == ID_RESENT) {
                    if (qrc)
                        dipx_log_error ("the ACCEPTED of a resend could not be queued (%s)",
                                        dipx_strerror (qrc));
                    continue;
                }
            }
            s_failed_frame (it, &f);
            int qrc = s_reply (self, it, &f);
            if (qrc)
                dipx_log_error ("the answer of a failed turn could not be queued (%s)",
                                dipx_strerror (qrc));
        }
        if (rtxn)
            dipx_store_abort (&rtxn);
    } else if (self->degraded == 0 && self->storage_full) {
        dipx_log_info ("storage: space available again");
        self->storage_full = false;
    }
    s_undo_drop (self);
    /* Sessions still wanting deliveries stay on the list for the next turn.  */
    size_t keep = 0;
    for (size_t i = 0; i < self->nwant; i++) {
        s_session_t *s = self->want[i];
        if (s->want && s_reachable (s) && s->nflight < s->window && !s->held && !s->probe_out)
            self->want[keep++] = s;
        else
            s->in_want = false;
    }
    self->nwant = keep;
}

/*  Collects the worker's job when it is done (with wait, once it is): its
    transaction is committed, so its replies go out now. True when the worker
    is idle.  */
static bool
s_collect (dipx_server_t *self, bool wait)
{
    if (!dipx_worker_busy (self->worker))
        return true;
    if (!dipx_worker_collect (self->worker, wait))
        return false;
    s_sessions_bind (self);
    s_items_close (self->items, &self->nitems);
    s_send_out (self, dipx_now_ms ());
    return true;
}

/*  Whether the next batch can take more frames. cfg.batch is the size
    ready was allocated with: it is not reloadable.  */
static bool
s_ready_room (const dipx_server_t *self)
{
    return self->nready < self->cfg.batch && self->ready_bytes < S_BATCH_BYTES;
}

/*  Adds to the next batch what the router holds, decoded and verified.
    Read while a commit runs, often a frame at a time: verifying them in
    bulk at the hand-over instead measured the same (127 us per message
    either way in the replay bench).  */
static void
s_read_ready (dipx_server_t *self, uint64_t now)
{
    s_item_t *more = self->ready + self->nready;
    /* The connections first: a frame's connection was accepted before it
       could send, so its generation is known when the frame is read.  */
    s_monitor_events (self);
    size_t n = s_read_batch (self, more, self->cfg.batch - self->nready);
    for (size_t i = 0; i < n; i++) {
        if (!more[i].open)
            continue;
        s_prepare (self, &more[i], now);
        /* Only a HELLO binds a session to its connection (s_sessions_bind).
           The frame part carries the connection's metadata; the routing id
           part libzmq makes does not always.  */
        int fd = more[i].f.cmd == DIPX_CMD_HELLO ? zmq_msg_get (&more[i].body, ZMQ_SRCFD) : -1;
        bool known = fd >= 0 && (size_t) fd < self->nfds && self->fd_gen[fd];
        more[i].fd = known ? fd : -1;
        more[i].gen = known ? self->fd_gen[fd] : 0;
    }
    dipx_pool_run (self->pool, s_verify_job, more, n, sizeof (s_item_t));
    self->nready += n;
}

/*  Whether deliveries and pending audit records start a turn of their own
    at once, or wait for the next frame or the housekeeping timer rather
    than spin through failing turns. Deliveries go on after any committed
    turn (level 2 skips only the pending and refusal audit records), not
    after one that failed three times (degraded 3); pending records only
    after a turn that wrote them (level 0 or 1).  */
static bool
s_carry_on (const dipx_server_t *self)
{
    return (self->nwant && self->degraded <= 2) || (self->npending && self->degraded <= 1);
}

/*  One turn of the loop thread: read and verify the next batch (also while
    the worker commits the previous one), collect the worker's job when it is
    done, and hand it the next.  */
static int
s_turn (dipx_server_t *self, long timeout_ms)
{
    bool busy = dipx_worker_busy (self->worker);
    zmq_pollitem_t items[4];
    int n = 0;
    /* Frames are read into the next batch while it has room, also while
       the worker commits the last one: each connection's queue in libzmq
       is short (S_RCVHWM), so the batch is where frames gather during a
       commit. ZAP is answered between jobs: its audit records go to the
       pending list, which a job reads.  */
    bool room = s_ready_room (self);
    if (room)
        items[n++] = (zmq_pollitem_t) {self->router, 0, ZMQ_POLLIN, 0};
    if (busy)
        items[n++] = (zmq_pollitem_t) {NULL, dipx_worker_fd (self->worker), ZMQ_POLLIN, 0};
    else {
        items[n++] = (zmq_pollitem_t) {dipx_auth_socket (self->auth), 0, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t) {self->monitor, 0, ZMQ_POLLIN, 0};
    }
    /* A finished reload wakes the loop, which swaps it in (dipx_server_run).  */
    if (self->reloading)
        items[n++] = (zmq_pollitem_t) {NULL, self->load.efd, ZMQ_POLLIN, 0};
    if (!busy && (self->nready || s_carry_on (self)))
        timeout_ms = 0;
    if (zmq_poll (items, n, timeout_ms) < 0)
        return zmq_errno () == EINTR ? 0 : DIPX_E_ZMQ;
    uint64_t now = dipx_now_ms (), mono = dipx_mono_ms ();
    if (room)
        s_read_ready (self, now);
    if (!s_collect (self, false))
        return 0; /* still committing; the next batch waits, verified */
    /* What arrived since the batch was read joins it: otherwise a frame
       arriving during a commit would wait for the commit after next.  */
    s_read_ready (self, now);
    s_sessions_sweep (self);
    if (dipx_store_failed (self->store)) {
        /* Fail-stop: a broker that answers every frame with an error looks
           alive to its supervisor; an exit gets it restarted on a reopened
           store, which recovers.  */
        dipx_log_error ("storage failed: stopping; a restart recovers the last committed state");
        return DIPX_E_STORAGE;
    }
    s_auth_events (self, now);
    bool housekeep = mono >= self->next_housekeep;
    if (housekeep) {
        self->next_housekeep = mono + S_HOUSEKEEP_MS;
        s_sessions_recheck (self, mono);
        if (mono >= self->next_barred) {
            self->next_barred = mono + S_BARRED_MS;
            s_sessions_barred (self, now);
        }
    }
    if (self->nready == 0 && !s_carry_on (self) && !housekeep)
        return 0;
    s_item_t *batch = self->ready;
    self->ready = self->items;
    self->items = batch;
    self->nitems = self->nready;
    self->nready = 0;
    self->ready_bytes = 0;
    self->job_housekeep = housekeep;
    self->job_now = now;
    self->job_mono = mono;
    dipx_worker_start (self->worker, s_commit_job, self);
    return 0;
}

/* --- set-up --------------------------------------------------------------- */

/*  Connects a client with a random key and checks that the ZAP handler
    refuses it and that the client sees the refusal. Without this check a
    broker whose ZAP handler failed to bind would admit every key.  */
static int
s_self_check (dipx_server_t *self)
{
    char pub[41], sec[41];
    if (zmq_curve_keypair (pub, sec) != 0)
        return DIPX_E_ZMQ;
    uint8_t pk[32];
    zmq_z85_decode (pk, pub);
    dipx_key_fingerprint (pk, self->probe_fp);
    self->probe_refused = false;
    void *probe = zmq_socket (self->ctx, ZMQ_DEALER);
    void *mon = zmq_socket (self->ctx, ZMQ_PAIR);
    int rc = DIPX_E_AUTH, linger = 0, client_refused = 0;
    char mon_ep[64];
    snprintf (mon_ep, sizeof mon_ep, "inproc://dipx-selfcheck-%p", (void *) self);
    if (!probe || !mon || zmq_setsockopt (probe, ZMQ_LINGER, &linger, sizeof linger)
        || zmq_setsockopt (probe, ZMQ_CURVE_SERVERKEY, self->pubkey, 40)
        || zmq_setsockopt (probe, ZMQ_CURVE_PUBLICKEY, pub, 40)
        || zmq_setsockopt (probe, ZMQ_CURVE_SECRETKEY, sec, 40)
        || zmq_socket_monitor (probe, mon_ep,
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
        || zmq_setsockopt (mon, ZMQ_LINGER, &linger, sizeof linger) || zmq_connect (mon, mon_ep)
        || zmq_connect (probe, self->endpoint)) {
        rc = DIPX_E_ZMQ;
        goto done;
    }
    uint64_t deadline = dipx_mono_ms () + S_SELFCHECK_MS;
    while (dipx_mono_ms () < deadline && !(client_refused && self->probe_refused)) {
        zmq_pollitem_t items[] = {{dipx_auth_socket (self->auth), 0, ZMQ_POLLIN, 0},
                                  {mon, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll (items, 2, 100) < 0 && zmq_errno () != EINTR)
            break;
        s_auth_events (self, dipx_now_ms ());
        if (items[1].revents & ZMQ_POLLIN) {
            zmq_msg_t ev, addr;
            zmq_msg_init (&ev);
            zmq_msg_init (&addr);
            if (zmq_msg_recv (&ev, mon, 0) >= 0 && zmq_msg_size (&ev) >= 6) {
                uint16_t event;
                memcpy (&event, zmq_msg_data (&ev), 2);
                if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
                    client_refused = 1;
                else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
                    dipx_log_error ("self-check: a random key was admitted");
                    zmq_msg_close (&ev);
                    goto done;
                }
                if (zmq_msg_more (&ev))
                    zmq_msg_recv (&addr, mon, 0);
            }
            zmq_msg_close (&ev);
            zmq_msg_close (&addr);
        }
    }
    if (client_refused && self->probe_refused)
        rc = 0;
    else
        dipx_log_error ("self-check: a random key was not refused by the ZAP handler");
done:
    self->probe_fp[0] = 0;
    if (probe) {
        zmq_socket_monitor (probe, NULL, 0);
        zmq_close (probe);
    }
    if (mon)
        zmq_close (mon);
    return rc;
}

/*  Loads the registry and the policy that cfg names. With announce (a
    reload), logs once the registry file is read and its cards are being
    checked, the long part: the file as it was then is what will apply.  */
static int
s_load_trust (const dipx_config_t *cfg, dipx_registry_t **reg, dipx_policy_t **pol, bool announce)
{
    int line = 0;
    char *text = NULL;
    size_t len = 0;
    int rc = dipx_registry_read (cfg->registry, &text, &len);
    if (rc == 0 && announce)
        dipx_log_info ("reload: registry file read (%zu bytes); checking its cards", len);
    if (rc == 0)
        rc = dipx_registry_parse (text, len, reg, &line);
    free (text);
    if (rc) {
        dipx_log_error ("registry %s: %s (line %d)", cfg->registry, dipx_strerror (rc), line);
        return rc;
    }
    rc = dipx_policy_load (cfg->policy, pol, &line);
    if (rc) {
        dipx_log_error ("policy %s: %s (line %d)", cfg->policy, dipx_strerror (rc), line);
        dipx_registry_destroy (reg);
        return rc;
    }
    return 0;
}

/*  The reload thread: reads the config file (if any), the registry and the
    policy into l, logging what fails as the start-up would, then wakes the
    loop through l->efd. Touches nothing of the server's.  */
static void *
s_reload_main (void *arg)
{
    s_load_t *l = arg;
    uint64_t start = dipx_mono_ms ();
    l->rc = S_LOAD_OK;
    if (l->cfg_path) {
        dipx_config_t file;
        char err[256];
        dipx_config_defaults (&file);
        if (dipx_config_load (&file, l->cfg_path, err, sizeof err) != 0) {
            dipx_log_error ("reload: %s; keeping the running configuration", err);
            l->rc = S_LOAD_BAD_CONFIG;
        } else
            dipx_config_reload_into (&l->cfg, &file);
    }
    if (l->rc == S_LOAD_OK && s_load_trust (&l->cfg, &l->registry, &l->policy, true) != 0) {
        dipx_log_error ("reload: keeping the running registry and policy");
        l->rc = S_LOAD_BAD_TRUST;
    }
    l->ms = dipx_mono_ms () - start;
    uint64_t one = 1;
    while (write (l->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
    return NULL;
}

/*  Starts a reload thread (none may be running). The loop goes on serving
    with the running configuration until s_reload_finish swaps the result in.  */
static void
s_reload_start (dipx_server_t *self, const char *cfg_path)
{
    s_load_t *l = &self->load;
    l->cfg_path = cfg_path;
    l->cfg = self->cfg;
    l->registry = NULL;
    l->policy = NULL;
    dipx_log_info ("reload: reading %s, the registry and the policy; serving meanwhile",
                   cfg_path ? cfg_path : "(no config file)");
    int rc = pthread_create (&l->thread, NULL, s_reload_main, l);
    if (rc != 0) {
        dipx_log_error ("reload: cannot start a thread (%s); keeping the running configuration",
                        strerror (rc));
        return;
    }
    self->reloading = true;
}

/*  If the reload thread is done: joins it and swaps in what it loaded,
    between jobs. Returns true then, false while it is still loading. A
    config file that did not load changes nothing; a registry or policy that
    did not load leaves both running ones in place, though the file's other
    reloadable keys apply (as they always have).  */
static bool
s_reload_finish (dipx_server_t *self)
{
    s_load_t *l = &self->load;
    uint64_t done;
    if (read (l->efd, &done, sizeof done) != (ssize_t) sizeof done)
        return false; /* EAGAIN: still loading */
    pthread_join (l->thread, NULL);
    self->reloading = false;
    if (l->rc == S_LOAD_BAD_CONFIG)
        return true;
    /* The worker's job reads the config (the registry and policy only the
       loop thread reads): under a steady load a job is always running, so
       wait for this one.  */
    s_collect (self, true);
    dipx_config_reload_into (&self->cfg, &l->cfg);
    /* unacked_max_mb may have grown: held deliveries try again.  */
    for (size_t b = 0; b < S_BUCKETS; b++)
        for (s_session_t *s = self->buckets[b]; s; s = s->next)
            if (s->held) {
                s->held = false;
                s_want (self, s);
            }
    if (l->rc != S_LOAD_OK)
        return true;
    dipx_registry_destroy (&self->registry);
    dipx_policy_destroy (&self->policy);
    self->registry = l->registry;
    self->policy = l->policy;
    l->registry = NULL;
    l->policy = NULL;
    dipx_auth_set_registry (self->auth, self->registry);
    s_sessions_barred (self, dipx_now_ms ());
    dipx_log_set_level (self->cfg.log_level);
    dipx_log_info ("reloaded: registry %zu agencies, policy %zu rules (read in %llu ms)",
                   dipx_registry_size (self->registry), dipx_policy_size (self->policy),
                   (unsigned long long) l->ms);
    return true;
}

/*  Shutdown during a reload: waits for the thread (it cannot be interrupted
    mid-file; at most one load's time) and frees what it loaded.  */
static void
s_reload_abandon (dipx_server_t *self)
{
    if (!self->reloading)
        return;
    dipx_log_info ("reload: stopping; waiting for the reload thread, its result is dropped");
    pthread_join (self->load.thread, NULL);
    self->reloading = false;
    self->reload_again = false;
    dipx_registry_destroy (&self->load.registry);
    dipx_policy_destroy (&self->load.policy);
}

/*  The router's connection events on an inproc PAIR, and the tables by
    descriptor, sized to the descriptors this process may open (calloc:
    pages are touched only as descriptors are used).  */
static int
s_monitor_open (dipx_server_t *self)
{
    struct rlimit rl;
    self->nfds = 65536;
    if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        self->nfds = rl.rlim_cur < (1u << 22) ? (size_t) rl.rlim_cur : (1u << 22);
    self->fd_gen = calloc (self->nfds, sizeof *self->fd_gen);
    self->fd_closed = calloc (self->nfds, sizeof *self->fd_closed);
    self->by_fd = calloc (self->nfds, sizeof *self->by_fd);
    if (!self->fd_gen || !self->fd_closed || !self->by_fd)
        return DIPX_E_NOMEM;
    /* libzmq's I/O threads send these events blocking: the pipe holds far
       more than arrive between two turns of the loop, which reads them
       every turn.  */
    int hwm = 100000;
    if (zmq_socket_monitor (self->router, "inproc://dipx-monitor",
                            ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0
        || !(self->monitor = zmq_socket (self->ctx, ZMQ_PAIR))
        || zmq_setsockopt (self->monitor, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0
        || zmq_connect (self->monitor, "inproc://dipx-monitor") != 0) {
        dipx_log_error ("connection monitor: %s", zmq_strerror (zmq_errno ()));
        return DIPX_E_ZMQ;
    }
    return 0;
}

int
dipx_server_new (const dipx_config_t *cfg, dipx_server_t **out)
{
    *out = NULL;
    if (sodium_init () < 0)
        return DIPX_E_CRYPTO;
    dipx_server_t *self = calloc (1, sizeof *self);
    if (!self)
        return DIPX_E_NOMEM;
    self->cfg = *cfg;
    self->load.efd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->load.efd < 0) {
        free (self);
        return DIPX_E_IO;
    }
    randombytes_buf (self->hash_key, sizeof self->hash_key);
    int rc = dipx_identity_load (cfg->identity, &self->identity);
    if (rc) {
        dipx_log_error ("identity %s: %s", cfg->identity, dipx_strerror (rc));
        goto fail;
    }
    dipx_key_to_z85 (dipx_identity_enc_pk (self->identity), self->pubkey);
    if ((rc = s_load_trust (cfg, &self->registry, &self->policy, false)))
        goto fail;
    rc = dipx_store_open (cfg->data_dir, cfg->map_size_mb << 20, cfg->map_max_mb << 20, 0,
                          &self->store);
    if (rc) {
        dipx_log_error ("store %s: %s", cfg->data_dir, dipx_strerror (rc));
        goto fail;
    }
    rc = DIPX_E_NOMEM;
    self->buckets = calloc (S_BUCKETS, sizeof *self->buckets);
    self->items = calloc (cfg->batch, sizeof *self->items);
    self->ready = calloc (cfg->batch, sizeof *self->ready);
    self->pending = calloc (S_PENDING_AUDIT_MAX, sizeof *self->pending);
    self->pool = dipx_pool_new ((int) cfg->verify_threads);
    self->worker = dipx_worker_new ();
    /* The reply array never shrinks, and every turn starts with it empty:
       room for a batch taken now lets a failed turn answer each of its
       frames without allocating (s_commit_job).  */
    if (!self->buckets || !self->items || !self->ready || !self->pending || !self->pool
        || !self->worker || s_out_reserve (self, cfg->batch) != 0)
        goto fail;

    rc = DIPX_E_ZMQ;
    self->ctx = zmq_ctx_new ();
    if (!self->ctx)
        goto fail;
    /* Memory per connection. libzmq's decoder receives into an 8 KiB buffer
       followed by 249 reference counters (18 KiB in all) so that a frame can
       stay in the buffer after it is decoded; a counter is written for every
       frame over 33 bytes, which makes one more page resident for every
       connection. CURVE decrypts each frame into a new message and closes
       the ciphertext at once, so sharing the buffer saves nothing here: with
       it off the ciphertext is copied out (one memcpy a frame), the counters
       are never touched, and each idle agency costs 4 KiB less (bench: 10,000
       idle agencies with libdipx's 10 s heartbeat, 398 -> 358 MiB RSS; CPU
       per message unchanged within 1%). A context option since libzmq 4.3.0,
       named only under DRAFT, hence the number; failure changes nothing.  */
    if (zmq_ctx_set (self->ctx, S_ZMQ_ZERO_COPY_RECV, 0) != 0)
        dipx_log_debug ("zmq: ZMQ_ZERO_COPY_RECV: %s", zmq_strerror (zmq_errno ()));
    /* libzmq cancels a timer by scanning its I/O thread's timer list, and
       every connection's heartbeat re-arms one: the cost of holding idle
       connections grows with the square of the connections per I/O thread.
       With 10,000 agencies on one thread, a busy machine starved the new
       connections' handshakes (a round trip timed out); on two it did not.  */
    if (zmq_ctx_set (self->ctx, ZMQ_IO_THREADS, (int) cfg->io_threads) != 0)
        goto fail;
    if (!(self->auth = dipx_auth_new (self->ctx)))
        goto fail;
    dipx_auth_set_registry (self->auth, self->registry);
    self->router = zmq_socket (self->ctx, ZMQ_ROUTER);
    if (!self->router || (rc = s_monitor_open (self)))
        goto fail;
    /* Heartbeats every 30 s: see the client's note on libzmq's timer cost,
       which grows with the square of the connections. The queues of one
       connection: see S_SNDHWM and S_RCVHWM.  */
    uint64_t frames = S_INBOUND_BYTES / cfg->max_frame;
    int one = 1, zero = 0, sndhwm = S_SNDHWM, hs = (int) cfg->handshake_timeout_ms, hb = 30000,
        hbt = 90000, backlog = 1024;
    int rcvhwm = frames < S_RCVHWM_MIN ? S_RCVHWM_MIN : frames > S_RCVHWM ? S_RCVHWM : (int) frames;
    int64_t maxmsg = (int64_t) cfg->max_frame;
    if (!self->router || zmq_setsockopt (self->router, ZMQ_CURVE_SERVER, &one, sizeof one)
        || zmq_setsockopt (self->router, ZMQ_CURVE_SECRETKEY,
                           dipx_identity_enc_sk (self->identity), 32)
        || zmq_setsockopt (self->router, ZMQ_ZAP_DOMAIN, "dipx", 4)
        || zmq_setsockopt (self->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one)
        || zmq_setsockopt (self->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg)
        || zmq_setsockopt (self->router, ZMQ_LINGER, &zero, sizeof zero)
        || zmq_setsockopt (self->router, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm)
        || zmq_setsockopt (self->router, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm)
        || zmq_setsockopt (self->router, ZMQ_HANDSHAKE_IVL, &hs, sizeof hs)
        || zmq_setsockopt (self->router, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb)
        || zmq_setsockopt (self->router, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof hbt)
        /* Thousands of agencies reconnect at once after a restart.  */
        || zmq_setsockopt (self->router, ZMQ_BACKLOG, &backlog, sizeof backlog)
        || zmq_bind (self->router, cfg->endpoint)) {
        dipx_log_error ("listen %s: %s", cfg->endpoint, zmq_strerror (zmq_errno ()));
        goto fail;
    }
    size_t eplen = sizeof self->endpoint;
    zmq_getsockopt (self->router, ZMQ_LAST_ENDPOINT, self->endpoint, &eplen);
    if ((rc = s_self_check (self))) {
        dipx_log_error ("start-up self-check failed: refusing to run without authentication");
        goto fail;
    }
    dipx_audit_t rec;
    dipx_audit_init (&rec, DIPX_AUDIT_STARTED, dipx_now_ms ());
    char why[128];
    snprintf (why, sizeof why, "registry %zu agencies, policy %zu rules",
              dipx_registry_size (self->registry), dipx_policy_size (self->policy));
    dipx_audit_set_reason (&rec, why);
    s_pending_audit (self, &rec);
    dipx_log_info ("listening on %s as %s (key %s)", self->endpoint,
                   dipx_identity_id (self->identity), self->pubkey);
    *out = self;
    return 0;
fail:
    dipx_server_destroy (&self);
    return rc;
}

void
dipx_server_destroy (dipx_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dipx_server_t *self = *self_p;
    s_reload_abandon (self);
    if (self->load.efd >= 0)
        close (self->load.efd);
    dipx_worker_destroy (&self->worker); /* waits for a job still running */
    if (self->items)
        s_items_close (self->items, &self->nitems);
    if (self->ready)
        s_items_close (self->ready, &self->nready);
    s_out_drop (self);
    s_undo_drop (self);
    /* Stop the events before closing their reader: an I/O thread sends them
       blocking.  */
    if (self->router && self->monitor)
        zmq_socket_monitor (self->router, NULL, 0);
    if (self->monitor)
        zmq_close (self->monitor);
    if (self->router)
        zmq_close (self->router);
    free (self->by_fd);
    free (self->fd_gen);
    free (self->fd_closed);
    free (self->closed);
    dipx_auth_destroy (&self->auth);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    if (self->buckets)
        for (size_t b = 0; b < S_BUCKETS; b++)
            for (s_session_t *s = self->buckets[b], *next; s; s = next) {
                next = s->next;
                free (s->flight);
                free (s);
            }
    free (self->buckets);
    free (self->want);
    free (self->recheck);
    free (self->items);
    free (self->ready);
    free (self->out);
    free (self->undo);
    free (self->pending);
    dipx_pool_destroy (&self->pool);
    dipx_store_destroy (&self->store);
    dipx_policy_destroy (&self->policy);
    dipx_registry_destroy (&self->registry);
    dipx_identity_destroy (&self->identity);
    free (self);
    *self_p = NULL;
}

const char *
dipx_server_endpoint (const dipx_server_t *self)
{
    return self->endpoint;
}

const char *
dipx_server_public_key (const dipx_server_t *self)
{
    return self->pubkey;
}

int
dipx_server_run (dipx_server_t *self, volatile sig_atomic_t *stop,
                 volatile sig_atomic_t *reload, const char *cfg_path)
{
    while (!*stop) {
        /* A reload is read on its own thread; one asked for while it runs
           follows it, so that the files as of the last SIGHUP win.  */
        if (*reload) {
            *reload = 0;
            if (!self->reloading)
                s_reload_start (self, cfg_path);
            else if (!self->reload_again) {
                self->reload_again = true;
                dipx_log_info ("reload: SIGHUP during a reload; reloading again after it");
            }
        }
        if (self->reloading && s_reload_finish (self) && self->reload_again) {
            self->reload_again = false;
            s_reload_start (self, cfg_path);
        }
        int rc = s_turn (self, S_HOUSEKEEP_MS);
        if (rc) {
            dipx_log_error ("service loop: %s", dipx_strerror (rc));
            s_reload_abandon (self);
            return rc;
        }
    }
    /* The job running is committed, so its replies go out; the batch read
       and not yet run is dropped unanswered (its senders resend).  */
    s_collect (self, true);
    /* Write what is pending (auth refusals, undeliverable) before leaving,
       on this thread: the worker is idle.  */
    if (self->npending) {
        /* Only the pending records: planning deliveries now would commit
           deliveries that are never sent.  */
        for (size_t i = 0; i < self->nwant; i++)
            self->want[i]->in_want = false;
        self->nwant = 0;
        self->turn++;
        self->degraded = 0; /* the last turn's level would skip them */
        s_transact (self, false, dipx_now_ms (), dipx_mono_ms ());
        s_out_drop (self);
        s_undo_drop (self);
    }
    s_reload_abandon (self); /* after the replies: it may wait for a whole load */
    dipx_log_info ("stopped");
    return 0;
}
