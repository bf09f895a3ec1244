/*  dipx_client.c - libdipx's client: one agency's session with a broker.

    Design. One DEALER socket (CURVE client) to the broker, and one PAIR that
    reads the DEALER's monitor events. Both are polled in one flat loop turn
    (s_pump) that every blocking call runs until its condition holds or its
    deadline passes. The library has no thread of its own: frames are read and
    answered only inside calls, and dipx_client_fd tells an application's own
    loop when to make one.

    Sessions. ZeroMQ reconnects by itself; a session is one ZeroMQ
    connection. On every HANDSHAKE_SUCCEEDED the client writes HELLO and
    nothing else until the broker's WELCOME; then every SEND still
    unanswered, in post order, with the bytes it first wrote (the same message
    id and envelope, so the broker's idempotent store answers a resend as it
    answered the first), then held ACK/OUTCOME frames. Waiting for WELCOME
    costs one round trip per connection and buys this: WELCOME carries the
    broker's max_frame (configurable down to 1 KiB), and a SEND above it would
    make the broker drop the connection before the client could learn why,
    after which the client would resend it forever. Pending SENDs above
    max_frame are failed locally with DIPX_E_FRAME_SIZE instead. The socket
    has ZMQ_IMMEDIATE:
    libzmq then creates the pipe only when a connection's handshake completes
    and discards it when the connection dies, so no frame is carried into the
    next connection ahead of its HELLO. libzmq attaches that pipe before it
    emits HANDSHAKE_SUCCEEDED (session_base_t::engine_ready precedes the event
    in stream_engine_base_t::mechanism_ready), so the HELLO written on the
    event reaches the new connection. Frames are written only while ready
    (WELCOME arrived on the current connection); what cannot be written waits
    in the pending table (SEND) or the control queue (ACK, OUTCOME).

    Invariants. Every queue has a fixed maximum (dipx_limits.h). A pending
    slot lives from post until its answer is collected (by dipx_client_send or
    dipx_client_result); the answered FIFO holds each answered slot at most
    once, so it never overflows. Deliveries are kept as received and checked
    only when dipx_client_recv takes them, so the loop does no public-key
    work; deliveries still queued when a connection drops are discarded,
    because the broker redelivers whatever was not acknowledged. Secrets: the
    identity's keys (sodium_malloc'd by the keys library) and the shared-key
    cache (one sodium_malloc'd block), both wiped on destroy. Nothing is logged
    except through the callback, and never a key or a payload byte.

    Outbox (dipx_outbox.c). With one, the outbox on disk, not the pending
    table, is the list of sends whose answers are not yet collected: a post
    commits the envelope there before it returns, and the pending table
    holds the oldest of them, up to
    DIPX_MAX_PENDING, fed from disk in post order whenever a slot is collected
    (box_next is the first entry not yet fed; every later entry is on disk
    only, so the table is full, or that entry waits for an earlier copy of its
    id, or a read failed and is retried). An entry is deleted when its answer
    is collected (s_collect), in a commit made before the call returns it, not
    when the answer arrives: an answer the application has been given is
    never resent by a later client (unless that delete failed; it is
    logged), and one it has not been given (the client
    was destroyed, or the machine stopped, first) is resent by the next
    client, which returns the broker's answer to that resend. The broker
    answers a resend of the same bytes as it answered the first, so the
    message is stored once; a transient refusal the application never saw
    may become an acceptance, which it then sees. Entries are checked as they
    are fed: one that does not decode, or carries another id or sender, is
    answered DIPX_E_CORRUPT rather than sent under an id no answer would
    match.
*/
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include "dipx.h"
#include "dipx_client_internal.h"
#include "dipx_log_cb.h"
#include "dipx_envelope.h"
#include "dipx_frame.h"
#include "dipx_identity.h"
#include "dipx_outbox.h"
#include "dipx_registry.h"

_Static_assert (DIPX_MESSAGE_ID_BYTES == DIPX_ID_BYTES, "public and wire id sizes differ");
_Static_assert (DIPX_SUBJECT_BYTES == DIPX_SUBJ_BYTES, "public and wire subject sizes differ");
_Static_assert (DIPX_MAX_PENDING <= UINT16_MAX, "slot indices are 16 bits");
_Static_assert (DIPX_MAX_OUTBOX == 1000000, "dipx_client.h promises a 1,000,000-send outbox");
_Static_assert (sizeof ((dipx_result_t *) 0)->reason == DIPX_MAX_REASON + 1, "reason size");
_Static_assert (sizeof ((dipx_receipt_t *) 0)->reason == DIPX_MAX_REASON + 1, "reason size");
_Static_assert (sizeof ((dipx_receipt_t *) 0)->by == DIPX_MAX_AGENCY_ID + 1, "by size");

/*  Default lifetime of a message: 30 days.  */
#define S_DEFAULT_TTL_MS (30ull * 24 * 3600 * 1000)

/*  Frames read from the broker in one loop turn, so that a flood cannot keep
    one call from returning; the next turn's poll sees the rest at once.  */
#define S_READS_PER_TURN 4096

/*  Monitor events that may queue while the application makes no call (two
    per refused handshake, one every 2 s at most): libzmq's I/O thread would
    stall behind a full monitor pipe. About a day's worth.  */
#define S_MONITOR_HWM 100000

/*  How long destroy lets frames already written (the last ACKs of a run)
    reach a connected broker: ZMQ_LINGER at close. Short, because a broker
    that has just died would make destroy wait this long.  */
#define S_CLOSE_LINGER_MS 2000

/*  Longest CURVE handshake before the client gives up and reconnects.
    libzmq's default is 30 s; a broker that answers ZAP 300 stalls the
    handshake rather than closing it, and an agency should learn sooner.  */
#define S_HANDSHAKE_MS 10000
/* Copies of one send written again on one connection because later answers
   came first (s_lost_before). A broker answers in order, so one is the rule;
   a few allow for an answer lost again, and the bound keeps a broker that
   answers out of order from making the client upload its sends again and
   again (newest-first answers to N sends would cost N(N-1)/2 copies).  */
#define S_LOST_MAX 3
/* libzmq's first wait before connecting again after a disconnect (it adds a
   random part), and how long a read of the monitor stays good for writing
   (s_flush): well inside it.  */
#define S_RECONNECT_IVL_MS 100
#define S_MONITOR_FRESH_MS 20
_Static_assert (S_MONITOR_FRESH_MS < S_RECONNECT_IVL_MS / 2, "see s_flush");

/*  The monitor's endpoint; the context is private to one client.  */
#define S_MONITOR_ENDPOINT "inproc://dipx-client-monitor"

/*  A SEND written on the connection, in write order (s_lost_before).  */
typedef struct {
    uint16_t slot; /* its slot */
    uint64_t wseq; /* and write number */
} s_written_t;

typedef enum {
    S_FREE,     /* unused */
    S_PENDING,  /* posted, no answer yet */
    S_ANSWERED, /* answered, waiting to be collected */
} s_slot_state_t;

/*  One posted send.  */
typedef struct {
    int state;                 /* s_slot_state_t */
    bool sent;                 /* written to the current connection */
    bool written;              /* written at least once, to any connection: an
                                  answer before that answers nothing of ours */
    uint64_t wseq;             /* if so, the write number of its latest copy */
    uint8_t lost;              /* copies written again on this connection (s_lost_before) */
    bool waited;               /* dipx_client_send is waiting for this one */
    uint64_t order;            /* post order, for resending in order */
    uint8_t id[DIPX_ID_BYTES]; /* message id */
    uint64_t box;              /* its outbox key, 0 if none (or deleted) */
    uint8_t *frame;            /* the SEND frame, malloc'd; freed on answer */
    size_t frame_len;          /* its length */
    uint64_t seq;              /* answer: broker sequence number */
    int code;                  /* answer: 0 or negative DIPX_E_* */
    char *reason;              /* answer: refusal reason, malloc'd, or NULL */
} s_slot_t;

/*  A bounded FIFO of pointers.  */
typedef struct {
    void **items; /* cap entries */
    size_t cap;   /* capacity */
    size_t head;  /* index of the oldest */
    size_t count; /* entries held */
} s_ring_t;

/*  A frame waiting to be written (ACK, OUTCOME).  */
typedef struct {
    size_t len;     /* frame length */
    uint8_t data[]; /* frame bytes */
} s_buf_t;

/*  A delivery waiting for dipx_client_recv.  */
typedef struct {
    uint64_t seq;  /* broker sequence number */
    uint64_t count; /* delivery count */
    size_t len;    /* envelope length */
    uint8_t env[]; /* envelope bytes */
} s_delivery_t;

struct dipx_client_t {
    void *ctx;                 /* private ZeroMQ context */
    void *sock;                /* DEALER to the broker */
    void *mon;                 /* PAIR reading sock's monitor events */
    int epfd;                  /* epoll over both sockets' ZMQ_FD, or -1 until asked */
    int tfd;                   /* timerfd in epfd: a HELLO retry is due, or -1 */
    dipx_identity_t *identity; /* this agency's keys */
    dipx_registry_t *peers;    /* cards of the agencies it exchanges with */
    uint32_t window;           /* deliveries asked for in HELLO */
    dipx_log_fn *log;          /* log callback, or NULL */
    void *log_arg;             /* its argument */

    bool connected;                      /* handshake done, no disconnect since */
    bool ready;                          /* WELCOME received on this connection */
    bool hello_due;                      /* HELLO not yet written on this connection */
    bool want_out;                       /* a write would block: poll for POLLOUT */
    int auth_err;                        /* last handshake refused: DIPX_E_AUTH(_TEMP), else 0 */
    int session_err;                     /* ERROR answering HELLO on this connection, else 0 */
    uint64_t hello_retry;                /* monotonic ms to send HELLO again, 0 = none */
    uint32_t hello_backoff;              /* ms before the next retry of a refused HELLO */
    char *endpoint;                      /* the broker's, to connect again */
    uint64_t reconnect_at;               /* monotonic ms to connect again after the key
                                            was refused (libzmq does not), 0 = none */
    uint32_t reconnect_backoff;          /* ms before that, doubling */
    bool in_monitor;                     /* s_read_monitor is running */
    uint64_t monitor_read;               /* monotonic ms it last ran */
    char broker[DIPX_MAX_AGENCY_ID + 1]; /* broker's id, from WELCOME */
    uint64_t max_frame;                  /* broker's largest frame, from WELCOME */
    char local_why[DIPX_MAX_REASON + 1]; /* why the last post was refused here */
    uint64_t granted;                    /* window granted by WELCOME */
    uint8_t *hello;                      /* the encoded HELLO frame */
    size_t hello_len;                    /* its length */

    s_slot_t *slots;      /* pending table, DIPX_MAX_PENDING entries */
    size_t used;          /* slots not free */
    size_t unsent;        /* pending slots not written on this connection */
    uint64_t wseq;        /* SENDs written (write numbers) */
    s_written_t *written; /* FIFO of SENDs written on this connection and not yet
                             passed by an answer, DIPX_MAX_PENDING entries */
    size_t wr_head;       /* its oldest entry */
    size_t wr_count;      /* its entries */
    uint64_t next_order;  /* order of the next post */
    uint16_t *answered;   /* FIFO of answered slots, DIPX_MAX_PENDING entries */
    size_t ans_head;      /* its oldest entry */
    size_t ans_count;     /* its entries */
    s_ring_t control;     /* s_buf_t *: ACK and OUTCOME frames not yet written */
    dipx_idlist_t acks;   /* acknowledged ids not yet signed: one ACK covers them all */
    s_ring_t deliveries;  /* s_delivery_t *: waiting for recv */
    s_ring_t receipts;    /* dipx_receipt_t *: waiting for receipt */

    struct {
        bool active;                        /* a dipx_client_track call is waiting */
        bool due;                           /* TRACK not yet written on this connection */
        uint8_t id[DIPX_ID_BYTES];          /* message tracked */
        dipx_receipt_t *events;             /* caller's array */
        size_t max;                         /* its size */
        uint64_t total;                     /* frames in the answer, 0 before the first */
        size_t got;                         /* distinct frames received */
        uint8_t seen[DIPX_MAX_HISTORY / 8]; /* which indices arrived */
        int err;                            /* ERROR answering TRACK, else 0 */
    } track;

    dipx__outbox_t *box;  /* durable outbox, or NULL */
    uint64_t box_next;    /* outbox key of the first entry not yet in the pending table */
    bool feed_due;        /* feeding the pending table failed: retry in the loop */

    uint8_t *shared;                                  /* shared-key cache, sodium_malloc'd */
    const dipx_entry_t *shared_for[DIPX_MAX_PEER_CACHE]; /* peer of each cached key */
    size_t shared_next;                               /* next cache entry to replace */

    dipx__client_stats_t stats; /* counters */
};

/* ---------------------------------------------------------------------------
   Small helpers */

/*  Logs through the application's callback, if any.  */
#define s_log(self, level, ...) dipx__log_cb ((self)->log, (self)->log_arg, level, __VA_ARGS__)

static int
s_ring_init (s_ring_t *r, size_t cap)
{
    r->items = (void **) calloc (cap, sizeof *r->items);
    r->cap = cap;
    r->head = r->count = 0;
    return r->items ? 0 : DIPX_E_NOMEM;
}

static bool
s_ring_push (s_ring_t *r, void *item)
{
    if (r->count == r->cap)
        return false;
    r->items[(r->head + r->count++) % r->cap] = item;
    return true;
}

static void *
s_ring_peek (const s_ring_t *r)
{
    return r->count ? r->items[r->head] : NULL;
}

static void *
s_ring_pop (s_ring_t *r)
{
    if (!r->count)
        return NULL;
    void *item = r->items[r->head];
    r->head = (r->head + 1) % r->cap;
    r->count--;
    return item;
}

/*  Frees every item (with free); the ring stays usable.  */
static size_t
s_ring_clear (s_ring_t *r)
{
    size_t n = r->count;
    void *item;
    while ((item = s_ring_pop (r)))
        free (item);
    return n;
}

static void
s_ring_destroy (s_ring_t *r)
{
    s_ring_clear (r);
    free (r->items);
    r->items = NULL;
}

static void
s_hex (const uint8_t id[DIPX_ID_BYTES], char out[33])
{
    dipx_id_to_hex (id, out);
}

/*  Copies a NUL-terminated text field of lo..hi characters that passes chk
    (if given) into dst (hi + 1 bytes). false if it does not.  */
static bool
s_text (const char *src, size_t lo, size_t hi, dipx_text_check_fn *chk, char *dst)
{
    if (!src)
        return false;
    size_t len = strnlen (src, hi + 1);
    if (len < lo || len > hi || (chk && !chk (src, len)))
        return false;
    memcpy (dst, src, len);
    dst[len] = '\0';
    return true;
}

/*  As the frame schema's reason check: printable ASCII, spaces allowed.  */
static bool
s_reason_ok (const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] > 0x7e)
            return false;
    return true;
}

/*  Milliseconds left until deadline (UINT64_MAX = none), as a poll timeout.  */
static int
s_remaining (uint64_t deadline)
{
    if (deadline == UINT64_MAX)
        return -1;
    uint64_t now = dipx_mono_ms ();
    if (now >= deadline)
        return 0;
    return deadline - now > INT_MAX ? INT_MAX : (int) (deadline - now);
}

static uint64_t
s_deadline (int timeout_ms)
{
    return timeout_ms < 0 ? UINT64_MAX : dipx_mono_ms () + (uint64_t) timeout_ms;
}

/* ---------------------------------------------------------------------------
   Peers and shared keys */

/*  Finds an active peer whose card is valid at time at (ms since the
    epoch). 0, or unknown_code when absent, inactive_code when suspended or
    revoked or its card is not valid then (*why says which).  */
static int
s_peer (const dipx_client_t *self, const char *id, uint64_t at, int unknown_code,
        int inactive_code, const dipx_entry_t **out, const char **why)
{
    const dipx_entry_t *e = dipx_registry_by_id (self->peers, id);
    *why = "not in this agency's peers";
    if (!e)
        return unknown_code;
    if ((*why = dipx_entry_unusable (e, (int64_t) (at / 1000))))
        return inactive_code;
    *out = e;
    return 0;
}

/*  The crypto_box shared key of this agency and peer, from the cache or
    computed into it. Registry entries do not move while the registry is
    unchanged, and the client never changes its peers, so the entry pointer
    identifies the peer.  */
static int
s_shared (dipx_client_t *self, const dipx_entry_t *peer, const uint8_t **key)
{
    for (size_t i = 0; i < DIPX_MAX_PEER_CACHE; i++)
        if (self->shared_for[i] == peer) {
            *key = self->shared + i * DIPX_KEY_BYTES;
            return 0;
        }
    size_t i = self->shared_next;
    self->shared_next = (i + 1) % DIPX_MAX_PEER_CACHE;
    uint8_t *k = self->shared + i * DIPX_KEY_BYTES;
    self->shared_for[i] = NULL;
    if (crypto_box_beforenm (k, peer->card.enc_pk, dipx_identity_enc_sk (self->identity)) != 0) {
        sodium_memzero (k, DIPX_KEY_BYTES);
        return DIPX_E_CRYPTO; /* a low-order public key in the peer's card */
    }
    self->shared_for[i] = peer;
    *key = k;
    return 0;
}

/* ---------------------------------------------------------------------------
   Writing frames */

/*  Writes one frame without blocking. 0; DIPX_E_BUSY if it would block (the
    caller keeps it and the loop polls for POLLOUT); DIPX_E_ZMQ.  */
static int
s_write (dipx_client_t *self, const uint8_t *buf, size_t len)
{
    if (zmq_send (self->sock, buf, len, ZMQ_DONTWAIT) >= 0)
        return 0;
    int err = zmq_errno ();
    if (err == EAGAIN || err == EINTR) {
        self->want_out = true;
        return DIPX_E_BUSY;
    }
    s_log (self, DIPX_LOG_ERROR, "cannot write to the broker connection: %s", zmq_strerror (err));
    return DIPX_E_ZMQ;
}

static int
s_cmp_order (const void *a, const void *b, void *slots)
{
    const s_slot_t *s = (const s_slot_t *) slots;
    uint64_t x = s[*(const uint16_t *) a].order, y = s[*(const uint16_t *) b].order;
    return x < y ? -1 : x > y;
}

static void s_answer (dipx_client_t *self, size_t i, int code, uint64_t seq, const char *reason);
static void s_fail_oversized (dipx_client_t *self);
static void s_read_monitor (dipx_client_t *self);

/*  Writes what this connection still owes the broker, in order: HELLO; then,
    once WELCOME has come, unanswered SENDs in post order, ACK/OUTCOME frames,
    a TRACK. Stops at the first write that would block; the loop retries when
    the socket is writable.  */
static void
s_write_owed (dipx_client_t *self)
{
    self->want_out = false;
    if (!self->connected)
        return;
    if (self->hello_due) {
        if (s_write (self, self->hello, self->hello_len))
            return;
        self->hello_due = false;
    }
    if (!self->ready)
        return;
    if (self->unsent) {
        uint16_t order[DIPX_MAX_PENDING];
        size_t n = 0;
        for (size_t i = 0; i < DIPX_MAX_PENDING; i++)
            if (self->slots[i].state == S_PENDING && !self->slots[i].sent)
                order[n++] = (uint16_t) i;
        if (n > 1)
            qsort_r (order, n, sizeof order[0], s_cmp_order, self->slots);
        for (size_t k = 0; k < n; k++) {
            s_slot_t *s = &self->slots[order[k]];
            if (s_write (self, s->frame, s->frame_len))
                return;
            s->sent = s->written = true;
            s->wseq = ++self->wseq;
            /* Never full: a pending slot has one entry at most (s_lost_before
               takes the older ones out before a copy is written again).  */
            if (self->wr_count < DIPX_MAX_PENDING)
                self->written[(self->wr_head + self->wr_count++) % DIPX_MAX_PENDING] =
                    (s_written_t){order[k], s->wseq};
            self->unsent--;
        }
    }
    s_buf_t *b;
    while ((b = (s_buf_t *) s_ring_peek (&self->control))) {
        if (s_write (self, b->data, b->len))
            return;
        free (s_ring_pop (&self->control));
    }
    if (self->track.active && self->track.due) {
        dipx_frame_t f = {.cmd = DIPX_CMD_TRACK};
        memcpy (f.u.track.id, self->track.id, DIPX_ID_BYTES);
        uint8_t *buf;
        size_t len;
        if (dipx_frame_encode (&f, &buf, &len) != 0)
            return; /* out of memory: retried on the next turn */
        int rc = s_write (self, buf, len);
        free (buf);
        if (rc == 0)
            self->track.due = false;
    }
}

/*  s_write_owed, after reading what the connection did while the application
    was away: libzmq connects again by itself, and a SEND written on a new
    connection before its HELLO would break the session's order (and could
    race the copy written again after WELCOME). Read within the last
    S_MONITOR_FRESH_MS, the monitor need not be read again: libzmq connects
    again no sooner than ZMQ_RECONNECT_IVL after a disconnect, so no new
    connection can have been made since that a write could reach (a
    connection libdipx makes itself follows a known disconnect, and nothing
    is written while disconnected). The loop (s_pump) has just read it.  */
static void
s_flush (dipx_client_t *self)
{
    if (!self->in_monitor && self->mon /* none yet while dipx_client_new feeds */
        && dipx_mono_ms () - self->monitor_read >= S_MONITOR_FRESH_MS)
        s_read_monitor (self);
    s_write_owed (self);
}

/*  Queues an encoded control frame (consumed on every path) and flushes.  */
static int
s_control (dipx_client_t *self, const dipx_frame_t *f)
{
    uint8_t *buf;
    size_t len;
    int rc = dipx_frame_encode (f, &buf, &len);
    if (rc)
        return rc;
    s_buf_t *b = (s_buf_t *) malloc (sizeof *b + len);
    if (!b) {
        free (buf);
        return DIPX_E_NOMEM;
    }
    b->len = len;
    memcpy (b->data, buf, len);
    free (buf);
    if (!s_ring_push (&self->control, b)) {
        free (b);
        return DIPX_E_BUSY;
    }
    s_flush (self);
    return 0;
}

/*  Signs and queues one ACK for every id acknowledged since the last one.  */
static int
s_flush_acks (dipx_client_t *self)
{
    if (self->acks.count == 0)
        return 0;
    dipx_frame_t *f = (dipx_frame_t *) calloc (1, sizeof *f);
    if (!f)
        return DIPX_E_NOMEM;
    f->cmd = DIPX_CMD_ACK;
    f->u.ack.ids = self->acks;
    f->u.ack.at = dipx_now_ms ();
    uint8_t stmt[DIPX_ACK_STMT_MAX];
    size_t n = dipx_ack_statement (dipx_identity_id (self->identity), f->u.ack.at, &f->u.ack.ids,
                                   stmt);
    crypto_sign_detached (f->u.ack.sig, NULL, stmt, n, dipx_identity_sign_sk (self->identity));
    int rc = s_control (self, f);
    if (rc == 0)
        self->acks.count = 0; /* else kept, and signed again at the next flush */
    free (f);
    return rc;
}

/*  Sends a signed OUTCOME for message id.  */
static int
s_outcome (dipx_client_t *self, const uint8_t id[DIPX_ID_BYTES], int event, const char *reason)
{
    dipx_frame_t f = {.cmd = DIPX_CMD_OUTCOME};
    dipx_foutcome_t *o = &f.u.outcome;
    memcpy (o->id, id, DIPX_ID_BYTES);
    o->event = event;
    if (reason && *reason) {
        if (!s_text (reason, 1, DIPX_MAX_REASON, s_reason_ok, o->reason))
            return DIPX_E_INVAL;
        f.present |= DIPX_OUTCOME_HAS_REASON;
    }
    o->at = dipx_now_ms ();
    uint8_t stmt[DIPX_OUTCOME_STMT_MAX];
    size_t n = dipx_outcome_statement (dipx_identity_id (self->identity), o, stmt);
    crypto_sign_detached (o->sig, NULL, stmt, n, dipx_identity_sign_sk (self->identity));
    return s_control (self, &f);
}

/* ---------------------------------------------------------------------------
   The pending table and the outbox */

static int
s_find (const dipx_client_t *self, const uint8_t id[DIPX_ID_BYTES])
{
    if (!self->used)
        return -1;
    for (size_t i = 0; i < DIPX_MAX_PENDING; i++)
        if (self->slots[i].state != S_FREE && memcmp (self->slots[i].id, id, DIPX_ID_BYTES) == 0)
            return (int) i;
    return -1;
}

/*  Records the answer to slot i. Unless dipx_client_send is waiting for it,
    it joins the FIFO that dipx_client_result reads. Its outbox entry, if it
    has one, stays until the answer is collected.  */
static void
s_answer (dipx_client_t *self, size_t i, int code, uint64_t seq, const char *reason)
{
    s_slot_t *s = &self->slots[i];
    if (s->state == S_PENDING && !s->sent && self->unsent)
        self->unsent--;
    s->state = S_ANSWERED;
    s->code = code;
    s->seq = seq;
    free (s->frame);
    s->frame = NULL;
    s->frame_len = 0;
    free (s->reason);
    s->reason = reason && *reason ? strdup (reason) : NULL; /* NULL if short of memory */
    if (!s->waited)
        self->answered[(self->ans_head + self->ans_count++) % DIPX_MAX_PENDING] = (uint16_t) i;
}

/*  Takes slot i off the answered FIFO, wherever it is in it.  */
static void
s_unqueue_answer (dipx_client_t *self, size_t i)
{
    size_t n = self->ans_count, kept = 0;
    for (size_t k = 0; k < n; k++) {
        uint16_t slot = self->answered[(self->ans_head + k) % DIPX_MAX_PENDING];
        if (slot != i)
            self->answered[(self->ans_head + kept++) % DIPX_MAX_PENDING] = slot;
    }
    self->ans_count = kept;
}

/*  Hands slot i's answer to the caller and frees the slot. Its outbox entry
    is deleted first (see the design note). If that fails, the entry stays
    and a later client sends it again.  */
static int
s_collect (dipx_client_t *self, size_t i, dipx_result_t *result)
{
    s_slot_t *s = &self->slots[i];
    if (s->box) {
        int rc = dipx__outbox_delete (self->box, &s->box, 1);
        if (rc)
            s_log (self, DIPX_LOG_ERROR,
                   "outbox: an answered send was not deleted (%s); a later client sends it "
                   "again",
                   dipx_strerror (rc));
    }
    int code = s->code;
    if (result) {
        memset (result, 0, sizeof *result);
        memcpy (result->id, s->id, DIPX_ID_BYTES);
        result->seq = s->seq;
        result->code = code;
        if (s->reason)
            snprintf (result->reason, sizeof result->reason, "%s", s->reason);
    }
    free (s->reason);
    memset (s, 0, sizeof *s);
    self->used--;
    return code;
}

/*  Encodes the SEND frame of an envelope. 0 and *frame (malloc'd).  */
static int
s_send_frame (const uint8_t *env, size_t env_len, uint8_t **frame, size_t *frame_len)
{
    dipx_frame_t f = {.cmd = DIPX_CMD_SEND};
    f.u.send.env = (dipx_slice_t){env, env_len};
    return dipx_frame_encode (&f, frame, frame_len);
}

/*  Puts a send into a free slot of the pending table (there must be one).
    Takes frame.  */
static void
s_slot_add (dipx_client_t *self, const uint8_t id[DIPX_ID_BYTES], uint8_t *frame,
            size_t frame_len, uint64_t box)
{
    size_t i = 0;
    while (self->slots[i].state != S_FREE)
        i++;
    s_slot_t *s = &self->slots[i];
    memset (s, 0, sizeof *s);
    s->state = S_PENDING;
    s->order = self->next_order++;
    memcpy (s->id, id, DIPX_ID_BYTES);
    s->box = box;
    s->frame = frame;
    s->frame_len = frame_len;
    self->used++;
    self->unsent++;
}

/*  A new send without an outbox: into the pending table, written if
    connected.  */
static int
s_enqueue (dipx_client_t *self, const uint8_t id[DIPX_ID_BYTES], const uint8_t *env,
           size_t env_len)
{
    if (self->used >= DIPX_MAX_PENDING)
        return DIPX_E_BUSY;
    if (s_find (self, id) >= 0)
        return DIPX_E_EXISTS;
    uint8_t *frame;
    size_t frame_len;
    int rc = s_send_frame (env, env_len, &frame, &frame_len);
    if (rc)
        return rc;
    s_slot_add (self, id, frame, frame_len, 0);
    s_fail_oversized (self);
    s_flush (self);
    return 0;
}

/*  Whether an outbox entry is what post stored: an envelope from this
    agency under the entry's id. 0, DIPX_E_CORRUPT or DIPX_E_NOMEM.  */
static int
s_entry_check (const dipx_client_t *self, const uint8_t id[DIPX_ID_BYTES], const uint8_t *env,
               size_t env_len)
{
    dipx_envelope_t *e = (dipx_envelope_t *) malloc (sizeof *e);
    if (!e)
        return DIPX_E_NOMEM;
    int rc = dipx_envelope_decode (env, env_len, e) != 0
                     || memcmp (e->h.id, id, DIPX_ID_BYTES) != 0
                     || strcmp (e->h.from, dipx_identity_id (self->identity)) != 0
                 ? DIPX_E_CORRUPT
                 : 0;
    free (e);
    return rc;
}

/*  dipx__outbox_scan's callback for s_feed: takes one outbox entry into the
    pending table. Stops when the table is full, and before an entry whose
    id is in the table already (the same id posted twice): feeding resumes
    when a slot is collected, so each copy is sent after the one before it
    was answered, and answers can never be matched to the wrong copy.  */
static bool
s_feed_one (uint64_t key, const uint8_t id[DIPX_ID_BYTES], const uint8_t *env, size_t env_len,
            void *arg)
{
    dipx_client_t *self = (dipx_client_t *) arg;
    if (self->used >= DIPX_MAX_PENDING || s_find (self, id) >= 0)
        return false;
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    int rc = s_entry_check (self, id, env, env_len);
    const char *why = "outbox entry damaged: not an envelope of this agency under its id";
    if (rc == 0) {
        rc = s_send_frame (env, env_len, &frame, &frame_len);
        why = "envelope does not encode";
    }
    if (rc == DIPX_E_NOMEM) {
        self->feed_due = true;
        return false;
    }
    if (rc) {
        /* Answered here, and deleted once collected, rather than sent under
           an id no answer would match, or left to block every later entry.  */
        s_slot_add (self, id, NULL, 0, key);
        s_answer (self, (size_t) s_find (self, id), rc, 0, why);
        return true;
    }
    s_slot_add (self, id, frame, frame_len, key);
    return true;
}

/*  Moves outbox entries, in post order, into the pending table while it has
    room, and writes them if the session is ready. The outbox holds every
    send whose answer is not yet collected; the table holds the first of them, up to
    DIPX_MAX_PENDING.  */
static void
s_feed (dipx_client_t *self)
{
    self->feed_due = false;
    if (!self->box || self->used >= DIPX_MAX_PENDING
        || self->box_next >= dipx__outbox_end (self->box))
        return;
    size_t before = self->used, skipped = 0;
    int rc = dipx__outbox_scan (self->box, &self->box_next, s_feed_one, self, &skipped);
    if (rc) {
        /* Out of memory passes: retried in the loop. A read error is not
           retried each turn (it would flood the log) but at the next post or
           collected answer.  */
        self->feed_due = rc == DIPX_E_NOMEM;
        s_log (self, DIPX_LOG_ERROR, "outbox: cannot read queued sends: %s", dipx_strerror (rc));
    }
    if (self->used > before) {
        s_fail_oversized (self);
        s_flush (self);
    }
}

/*  A new send with an outbox: committed to disk first, then fed into the
    pending table if it is next in post order and there is room; otherwise
    it waits on disk for s_feed.  */
static int
s_submit (dipx_client_t *self, const uint8_t id[DIPX_ID_BYTES], const uint8_t *env,
          size_t env_len)
{
    if (!self->box)
        return s_enqueue (self, id, env, env_len);
    if (s_find (self, id) >= 0)
        return DIPX_E_EXISTS;
    uint8_t *frame;
    size_t frame_len;
    int rc = s_send_frame (env, env_len, &frame, &frame_len); /* before it is kept */
    if (rc)
        return rc;
    uint64_t key;
    rc = dipx__outbox_put (self->box, id, env, env_len, &key);
    if (rc) {
        free (frame);
        return rc;
    }
    if (self->used < DIPX_MAX_PENDING && self->box_next == key) {
        self->box_next = key + 1;
        s_slot_add (self, id, frame, frame_len, key);
        s_fail_oversized (self);
        s_flush (self);
    }
    else {
        free (frame);
        s_feed (self); /* earlier entries first, if there is room */
    }
    return 0;
}

/* ---------------------------------------------------------------------------
   Handling what the broker sends */

static void
s_on_handshake (dipx_client_t *self)
{
    self->connected = true;
    self->ready = false;
    self->auth_err = 0;
    self->session_err = 0;
    self->hello_due = true;
    self->hello_retry = 0;
    self->hello_backoff = 0;
    self->reconnect_at = 0;
    self->reconnect_backoff = 0;
    self->stats.sessions++;
    self->unsent = 0;
    self->wr_head = self->wr_count = 0; /* every pending send is written anew */
    for (size_t i = 0; i < DIPX_MAX_PENDING; i++)
        if (self->slots[i].state == S_PENDING) {
            self->slots[i].sent = false;
            self->slots[i].lost = 0;
            self->unsent++;
        }
    if (self->track.active) {
        self->track.due = true;
        self->track.total = 0;
        self->track.got = 0;
        memset (self->track.seen, 0, sizeof self->track.seen);
    }
    s_log (self, DIPX_LOG_INFO, "connected to the broker; %zu unanswered send(s) to resend",
           self->unsent);
    s_flush (self);
}

static void
s_on_disconnect (dipx_client_t *self)
{
    if (!self->connected)
        return; /* the end of a handshake that failed, already reported */
    self->connected = false;
    self->ready = false;
    size_t dropped = s_ring_clear (&self->deliveries);
    self->stats.deliveries_dropped += dropped;
    s_log (self, DIPX_LOG_WARN,
           "connection to the broker lost; reconnecting (%zu unread deliveries dropped, the "
           "broker redelivers them)",
           dropped);
}

/*  Fails the pending sends the broker would never take: their frame is above
    its max_frame, and writing one would only get the connection dropped.  */
static void
s_fail_oversized (dipx_client_t *self)
{
    if (!self->ready)
        return;
    for (size_t i = 0; i < DIPX_MAX_PENDING; i++) {
        s_slot_t *s = &self->slots[i];
        if (s->state == S_PENDING && s->frame_len > self->max_frame)
            s_answer (self, i, DIPX_E_FRAME_SIZE, 0, "frame larger than the broker's max_frame");
    }
}

static void
s_on_welcome (dipx_client_t *self, const dipx_fwelcome_t *w)
{
    if (self->ready) {
        /* The broker repeats WELCOME to learn whether the connection is
           still open (PROTOCOL.md 5.1): the same session, nothing changes.  */
        s_log (self, DIPX_LOG_DEBUG, "session confirmed by broker %s", w->broker);
        return;
    }
    self->hello_retry = 0;
    self->hello_backoff = 0;
    self->auth_err = 0;
    memcpy (self->broker, w->broker, sizeof self->broker);
    self->max_frame = w->max_frame;
    self->granted = w->window;
    self->ready = true;
    s_log (self, DIPX_LOG_INFO, "session started with broker %s (window %llu, max frame %llu)",
           w->broker, (unsigned long long) w->window, (unsigned long long) w->max_frame);
    s_fail_oversized (self);
    s_flush (self);
}

/*  An answer to the SEND written as write number wseq has come. The broker
    handles a connection's frames in order and answers each SEND in that
    order, so a send written before it and still unanswered has been handled
    and its answer lost: the broker drops replies to a connection whose send
    queue is full (an application that made no call for a while). It is
    written again; the broker answers a resend of a stored message with its
    original ACCEPTED, and decides afresh on one it refused. No earlier copy
    of it can still be answered, so the new copy's answer is the send's.
    (A lost answer with no later send answered waits for the next one, or
    for a reconnection.)  */
static void
s_lost_before (dipx_client_t *self, uint64_t wseq)
{
    size_t lost = 0;
    while (self->wr_count) {
        s_written_t w = self->written[self->wr_head];
        if (w.wseq > wseq)
            break;
        self->wr_head = (self->wr_head + 1) % DIPX_MAX_PENDING;
        self->wr_count--;
        s_slot_t *s = &self->slots[w.slot];
        if (w.wseq < wseq && s->state == S_PENDING && s->sent && s->wseq == w.wseq
            && s->lost < S_LOST_MAX) {
            s->sent = false;
            s->lost++;
            self->unsent++;
            lost++;
        }
    }
    if (lost) {
        self->stats.resent += lost;
        s_log (self, DIPX_LOG_WARN,
               "the broker's answers to %zu send(s) were lost (its queue to this connection "
               "was full): writing them again",
               lost);
    }
}

static void
s_on_answer (dipx_client_t *self, const uint8_t id[DIPX_ID_BYTES], int code, uint64_t seq,
             const char *reason)
{
    char hex[33];
    int i = s_find (self, id);
    if (i < 0 || self->slots[i].state != S_PENDING || !self->slots[i].written) {
        self->stats.unmatched++;
        s_hex (id, hex);
        s_log (self, DIPX_LOG_DEBUG, "answer for %s matches no pending send (ignored)", hex);
        return;
    }
    if (self->slots[i].sent)
        s_lost_before (self, self->slots[i].wseq);
    s_answer (self, (size_t) i, code, seq, reason);
}

static void
s_on_deliver (dipx_client_t *self, const dipx_fdeliver_t *d)
{
    if (self->window == 0) {
        self->stats.deliveries_dropped++;
        s_log (self, DIPX_LOG_WARN, "DELIVER on a send-only session (seq %llu) ignored",
               (unsigned long long) d->seq);
        return;
    }
    /* At most `window` held: the broker never has more in flight to this
       session, so more means a broker that does not keep to the window (a
       redelivery of one still held here is a copy of it).  */
    s_delivery_t *q = self->deliveries.count < self->window
                          ? (s_delivery_t *) malloc (sizeof *q + d->env.len)
                          : NULL;
    if (!q || !s_ring_push (&self->deliveries, q)) {
        bool full = self->deliveries.count >= self->window;
        free (q);
        self->stats.deliveries_dropped++;
        s_log (self, DIPX_LOG_WARN, "delivery seq %llu dropped (%s); the broker delivers it again",
               (unsigned long long) d->seq,
               full ? "more deliveries held than the window" : "out of memory");
        return;
    }
    q->seq = d->seq;
    q->count = d->count;
    q->len = d->env.len;
    memcpy (q->env, d->env.ptr, d->env.len);
}

static void
s_receipt_from (const dipx_freceipt_t *f, uint32_t present, dipx_receipt_t *r)
{
    memset (r, 0, sizeof *r);
    memcpy (r->id, f->id, DIPX_ID_BYTES);
    r->event = f->event;
    r->at = f->at;
    memcpy (r->by, f->by, sizeof r->by);
    r->code = present & DIPX_RECEIPT_HAS_CODE ? -(int) f->code : 0;
    if (present & DIPX_RECEIPT_HAS_REASON)
        memcpy (r->reason, f->reason, sizeof r->reason);
    r->count = present & DIPX_RECEIPT_HAS_COUNT ? f->count : 0;
}

static void
s_on_receipt (dipx_client_t *self, const dipx_frame_t *f)
{
    dipx_receipt_t *r = (dipx_receipt_t *) malloc (sizeof *r);
    if (r)
        s_receipt_from (&f->u.receipt, f->present, r);
    if (!r || !s_ring_push (&self->receipts, r)) {
        free (r);
        if (self->stats.receipts_dropped++ == 0)
            s_log (self, DIPX_LOG_WARN,
                   "receipt queue full: receipts are being dropped (call dipx_client_receipt)");
    }
}

static void
s_on_history (dipx_client_t *self, const dipx_frame_t *f)
{
    const dipx_freceipt_t *h = &f->u.history;
    if (!self->track.active || memcmp (h->id, self->track.id, DIPX_ID_BYTES) != 0
        || h->index >= h->total) {
        self->stats.unmatched++;
        return; /* the late answer to a track that gave up */
    }
    if (h->total != self->track.total) {
        self->track.total = h->total; /* a new answer: start again */
        self->track.got = 0;
        memset (self->track.seen, 0, sizeof self->track.seen);
    }
    uint8_t bit = (uint8_t) (1u << (h->index % 8));
    if (self->track.seen[h->index / 8] & bit)
        return;
    self->track.seen[h->index / 8] |= bit;
    self->track.got++;
    if (h->index < self->track.max)
        s_receipt_from (h, f->present, &self->track.events[h->index]);
}

/*  The next timer of the client's own: HELLO asked again, or connecting
    again; 0 = none.  */
static uint64_t
s_next_timer (const dipx_client_t *self)
{
    uint64_t t = self->hello_retry;
    if (self->reconnect_at && (!t || self->reconnect_at < t))
        t = self->reconnect_at;
    return t;
}

/*  Arms the timer of dipx_client_fd's users for s_next_timer.  */
static void
s_arm_retry (dipx_client_t *self)
{
    uint64_t t = s_next_timer (self);
    if (self->tfd < 0 || !t)
        return;
    int left = s_remaining (t);
    struct itimerspec its = {{0, 0}, {left / 1000, (long) (left % 1000) * 1000000L + 1}};
    timerfd_settime (self->tfd, 0, &its, NULL);
}

/*  libzmq ends a connection whose handshake failed on the key or the
    protocol, and never connects again by itself: connect again later,
    backing off from 1 s to a minute.  */
static void
s_connect_later (dipx_client_t *self)
{
    self->reconnect_backoff = !self->reconnect_backoff ? 1000
                              : self->reconnect_backoff >= 30000 ? 60000
                                                                 : 2 * self->reconnect_backoff;
    self->reconnect_at = dipx_mono_ms () + self->reconnect_backoff;
    s_arm_retry (self);
}

static void
s_on_error (dipx_client_t *self, const dipx_ferror_t *e)
{
    int code = -(int) e->code;
    switch (e->cmd) {
    case DIPX_CMD_HELLO:
        if (self->ready) {
            /* Not an answer: this connection's HELLO was welcomed.  */
            self->stats.unmatched++;
            s_log (self, DIPX_LOG_WARN, "ERROR for HELLO on a welcomed session ignored: %s",
                   e->reason);
            return;
        }
        /* A suspended agency may be admitted by CURVE and refused here: the
           client cannot see a ZAP 300 (see s_read_monitor).  */
        if (code == DIPX_E_SENDER_INACTIVE)
            self->auth_err = DIPX_E_AUTH_TEMP; /* and asked again, below */
        if (code == DIPX_E_SENDER_INACTIVE || code == DIPX_E_STORAGE
            || code == DIPX_E_STORAGE_FULL || code == DIPX_E_BUSY) {
            /* The broker could not start the session now: ask again, backing
               off from 100 ms to 5 s, rather than wait for a reconnect. A
               suspension may last (an operator lifts it): up to a minute,
               each refusal being audited at the broker.  */
            uint32_t most = code == DIPX_E_SENDER_INACTIVE ? 60000 : 5000;
            self->hello_backoff = self->hello_backoff ? self->hello_backoff * 2 : 100;
            if (self->hello_backoff > most)
                self->hello_backoff = most;
            self->hello_retry = dipx_mono_ms () + self->hello_backoff;
            s_arm_retry (self);
        } else
            self->session_err = code;
        s_log (self, DIPX_LOG_ERROR, "broker refused HELLO: %s: %s", dipx_error_name (code),
               e->reason);
        return;
    case DIPX_CMD_TRACK:
        if (self->track.active) {
            self->track.err = code;
            return;
        }
        break;
    case DIPX_CMD_SEND:
        /* An ERROR carries no message id, so it cannot settle a send; the send
           stays pending and is resent on the next connection.  */
        self->stats.unmatched++;
        break;
    default: break;
    }
    s_log (self, DIPX_LOG_WARN, "broker ERROR for %s: %s: %s", dipx_cmd_name ((int) e->cmd),
           dipx_error_name (code), e->reason);
}

static void
s_on_frame (dipx_client_t *self, const uint8_t *buf, size_t len)
{
    dipx_frame_t *f = (dipx_frame_t *) malloc (sizeof *f); /* ~5 KiB: the ACK id list */
    if (!f) {
        s_log (self, DIPX_LOG_ERROR, "out of memory reading a frame (dropped)");
        return;
    }
    int rc = dipx_frame_decode (buf, len, f);
    if (rc) {
        self->stats.bad_frames++;
        s_log (self, DIPX_LOG_WARN, "bad %s frame from the broker (%zu bytes): %s",
               dipx_cmd_name (f->cmd), len, dipx_error_name (rc));
        free (f);
        return;
    }
    switch (f->cmd) {
    case DIPX_CMD_WELCOME: s_on_welcome (self, &f->u.welcome); break;
    case DIPX_CMD_ACCEPTED:
        s_on_answer (self, f->u.accepted.id, 0, f->u.accepted.seq, NULL);
        break;
    case DIPX_CMD_REFUSED:
        s_on_answer (self, f->u.refused.id, -(int) f->u.refused.code, 0, f->u.refused.reason);
        break;
    case DIPX_CMD_DELIVER: s_on_deliver (self, &f->u.deliver); break;
    case DIPX_CMD_RECEIPT: s_on_receipt (self, f); break;
    case DIPX_CMD_ERROR: s_on_error (self, &f->u.error); break;
    case DIPX_CMD_HISTORY: s_on_history (self, f); break;
    default:
        self->stats.bad_frames++;
        s_log (self, DIPX_LOG_WARN, "unexpected %s from the broker (ignored)",
               dipx_cmd_name (f->cmd));
    }
    free (f);
}

/*  Reads every frame waiting on the DEALER (up to S_READS_PER_TURN).  */
static int
s_read_socket (dipx_client_t *self)
{
    for (int n = 0; n < S_READS_PER_TURN; n++) {
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, self->sock, ZMQ_DONTWAIT) < 0) {
            int err = zmq_errno ();
            zmq_msg_close (&msg);
            if (err == EAGAIN || err == EINTR)
                return 0;
            s_log (self, DIPX_LOG_ERROR, "cannot read the broker connection: %s",
                   zmq_strerror (err));
            return DIPX_E_ZMQ;
        }
        if (zmq_msg_more (&msg)) {
            /* A frame is one part: skip every part of this message.  */
            self->stats.bad_frames++;
            s_log (self, DIPX_LOG_WARN, "multipart message from the broker (dropped)");
            int more = 1;
            while (more) {
                zmq_msg_close (&msg);
                zmq_msg_init (&msg);
                if (zmq_msg_recv (&msg, self->sock, ZMQ_DONTWAIT) < 0)
                    break;
                more = zmq_msg_more (&msg);
            }
            zmq_msg_close (&msg);
            continue;
        }
        s_on_frame (self, (const uint8_t *) zmq_msg_data (&msg), zmq_msg_size (&msg));
        zmq_msg_close (&msg);
    }
    return 0;
}

/*  Reads every monitor event waiting: [6 bytes: event u16, value u32 in host
    order][endpoint].  */
static void
s_read_monitor (dipx_client_t *self)
{
    self->in_monitor = true; /* its handlers flush: not read again from there */
    for (;;) {
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, self->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&msg);
            self->in_monitor = false;
            self->monitor_read = dipx_mono_ms ();
            return;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        bool ok = zmq_msg_size (&msg) == 6;
        if (ok) {
            const uint8_t *p = (const uint8_t *) zmq_msg_data (&msg);
            memcpy (&event, p, 2);
            memcpy (&value, p + 2, 4);
        }
        while (zmq_msg_more (&msg)) { /* the endpoint part */
            zmq_msg_close (&msg);
            zmq_msg_init (&msg);
            if (zmq_msg_recv (&msg, self->mon, ZMQ_DONTWAIT) < 0)
                break;
        }
        zmq_msg_close (&msg);
        if (!ok)
            continue;
        switch (event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: s_on_handshake (self); break;
        case ZMQ_EVENT_DISCONNECTED: s_on_disconnect (self); break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            /* The value is the broker's ZAP status: 400 = refused (unknown or
               revoked key), 500 = try later. A ZAP 300 never arrives: libzmq's
               CURVE server drops the connection without an ERROR command
               (CurveZMQ RFC), which looks like any failed handshake.  */
            self->auth_err = value == 300 || value == 500 ? DIPX_E_AUTH_TEMP : DIPX_E_AUTH;
            /* An operator may register or reactivate the agency meanwhile
               (each refusal is audited at the broker).  */
            s_connect_later (self);
            s_log (self, DIPX_LOG_ERROR,
                   "broker refused this agency's key (ZAP status %u): %s; connecting again "
                   "in %u ms",
                   (unsigned) value, dipx_strerror (self->auth_err),
                   (unsigned) self->reconnect_backoff);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            s_connect_later (self); /* the broker may be put right meanwhile */
            s_log (self, DIPX_LOG_WARN,
                   "handshake with the broker failed: protocol error 0x%x (check the broker key)",
                   (unsigned) value);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            s_log (self, DIPX_LOG_WARN,
                   "handshake with the broker failed: %s (check the endpoint and broker key)",
                   zmq_strerror ((int) value));
            break;
        default: break;
        }
    }
}

static int
s_pump (dipx_client_t *self, int timeout_ms)
{
    uint64_t timer = s_next_timer (self);
    if (timer) {
        int left = s_remaining (timer);
        if (timeout_ms < 0 || left < timeout_ms)
            timeout_ms = left;
    }
    zmq_pollitem_t items[2] = {
        {self->mon, 0, ZMQ_POLLIN, 0},
        {self->sock, 0, (short) (ZMQ_POLLIN | (self->want_out ? ZMQ_POLLOUT : 0)), 0},
    };
    if (zmq_poll (items, 2, timeout_ms) < 0 && zmq_errno () != EINTR) {
        s_log (self, DIPX_LOG_ERROR, "zmq_poll: %s", zmq_strerror (zmq_errno ()));
        return DIPX_E_ZMQ;
    }
    /* Always read both, whatever poll said: it costs two failed non-blocking
       reads, and leaves ZMQ_FD re-armed for dipx_client_fd's users.  */
    s_read_monitor (self);
    int rc = s_read_socket (self);
    s_read_monitor (self); /* what happened meanwhile, e.g. a disconnect */
    if (self->feed_due)
        s_feed (self);
    if (self->tfd >= 0) {
        uint64_t expirations;
        (void) !read (self->tfd, &expirations, sizeof expirations); /* EAGAIN: not yet */
    }
    if (self->hello_retry && dipx_mono_ms () >= self->hello_retry) {
        self->hello_retry = 0; /* also when disconnected: a new handshake says HELLO */
        if (self->connected && !self->ready)
            self->hello_due = true;
    }
    if (self->reconnect_at && dipx_mono_ms () >= self->reconnect_at) {
        self->reconnect_at = 0;
        (void) zmq_disconnect (self->sock, self->endpoint); /* gone already, usually */
        if (zmq_connect (self->sock, self->endpoint)) {
            s_log (self, DIPX_LOG_ERROR, "cannot connect to %s again: %s", self->endpoint,
                   zmq_strerror (zmq_errno ()));
            s_connect_later (self);
        }
    }
    s_arm_retry (self); /* one timerfd for both timers: the one left, if any */
    s_write_owed (self);
    return rc;
}

int
dipx__client_pump (dipx_client_t *self, int timeout_ms)
{
    return s_pump (self, timeout_ms);
}

void
dipx__client_stats (const dipx_client_t *self, dipx__client_stats_t *stats)
{
    *stats = self->stats;
    stats->outbox = dipx__outbox_count (self->box);
    stats->uncollected = self->ans_count;
}

/*  Runs the loop until done (self, arg) holds: 0; or the deadline passes
    (DIPX_E_TIMEOUT) after at least one turn; or the last handshake was
    refused (DIPX_E_AUTH, DIPX_E_AUTH_TEMP).  */
typedef bool (s_done_fn) (dipx_client_t *self, void *arg);

static bool s_has_delivery (dipx_client_t *self, void *arg);

static int
s_wait (dipx_client_t *self, uint64_t deadline, s_done_fn *done, void *arg)
{
    bool turned = false;
    for (;;) {
        /* Acknowledgements wait for coalescing only while the application
           is taking deliveries already here; any other wait sends them
           first. A full control queue (busy) empties only as the loop runs:
           they stay listed and are tried again after each turn.  */
        if (self->acks.count && (done != s_has_delivery || self->deliveries.count == 0)) {
            int arc = s_flush_acks (self);
            if (arc && arc != DIPX_E_BUSY)
                return arc;
        }
        if (done (self, arg))
            return 0;
        /* Only after a turn: the turn may bring the new handshake (or the
           WELCOME of a HELLO asked again) that clears the refusal.  */
        if (turned && self->auth_err)
            return self->auth_err;
        int left = s_remaining (deadline);
        if (turned && left == 0)
            return DIPX_E_TIMEOUT;
        int rc = s_pump (self, turned ? left : 0);
        if (rc)
            return rc;
        turned = true;
    }
}

/* ---------------------------------------------------------------------------
   Create and destroy */

static int
s_zmq_err (void)
{
    int err = zmq_errno ();
    return err == EINVAL || err == EPROTONOSUPPORT ? DIPX_E_INVAL
           : err == ENOMEM                         ? DIPX_E_NOMEM
                                                   : DIPX_E_ZMQ;
}

static int
s_setopt_int (void *sock, int opt, int value)
{
    return zmq_setsockopt (sock, opt, &value, sizeof value);
}

static int
s_open_socket (dipx_client_t *self, const dipx_options_t *o, const uint8_t server_key[32])
{
    self->ctx = zmq_ctx_new ();
    if (!self->ctx)
        return DIPX_E_ZMQ;
    self->sock = zmq_socket (self->ctx, ZMQ_DEALER);
    if (!self->sock)
        return DIPX_E_ZMQ;
    int64_t maxmsg = DIPX_MAX_FRAME;
    if (s_setopt_int (self->sock, ZMQ_LINGER, 0)
        || s_setopt_int (self->sock, ZMQ_IMMEDIATE, 1) /* see the design note */
        || s_setopt_int (self->sock, ZMQ_SNDHWM, 10000)
        || s_setopt_int (self->sock, ZMQ_RCVHWM, 10000)
        || zmq_setsockopt (self->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg)
        || s_setopt_int (self->sock, ZMQ_RECONNECT_IVL, S_RECONNECT_IVL_MS)
        || s_setopt_int (self->sock, ZMQ_RECONNECT_IVL_MAX, 2000)
        || s_setopt_int (self->sock, ZMQ_HANDSHAKE_IVL, S_HANDSHAKE_MS)
        /* Heartbeats find a silently dead path (a broker restart closes the
           TCP connection and is seen at once). Not faster: libzmq cancels
           and re-arms heartbeat timers on every message with a linear scan
           of its I/O thread's timers, so the broker's cost grows with the
           square of the connected agencies (bench: 0.67 cores for 3,000
           agencies at 1 s).  */
        || s_setopt_int (self->sock, ZMQ_HEARTBEAT_IVL, 10000)
        || s_setopt_int (self->sock, ZMQ_HEARTBEAT_TTL, 30000)
        || s_setopt_int (self->sock, ZMQ_HEARTBEAT_TIMEOUT, 30000)
        || zmq_setsockopt (self->sock, ZMQ_CURVE_SERVERKEY, server_key, 32)
        || zmq_setsockopt (self->sock, ZMQ_CURVE_PUBLICKEY, dipx_identity_enc_pk (self->identity),
                           32)
        || zmq_setsockopt (self->sock, ZMQ_CURVE_SECRETKEY, dipx_identity_enc_sk (self->identity),
                           32))
        return s_zmq_err ();
    int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED
                 | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
                 | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;
    if (zmq_socket_monitor (self->sock, S_MONITOR_ENDPOINT, events))
        return s_zmq_err ();
    self->mon = zmq_socket (self->ctx, ZMQ_PAIR);
    if (!self->mon || s_setopt_int (self->mon, ZMQ_LINGER, 0)
        || s_setopt_int (self->mon, ZMQ_RCVHWM, S_MONITOR_HWM)
        || zmq_connect (self->mon, S_MONITOR_ENDPOINT))
        return s_zmq_err ();
    if (!(self->endpoint = strdup (o->endpoint)))
        return DIPX_E_NOMEM;
    if (zmq_connect (self->sock, o->endpoint)) {
        int rc = s_zmq_err ();
        s_log (self, DIPX_LOG_ERROR, "cannot connect to %s: %s", o->endpoint,
               zmq_strerror (zmq_errno ()));
        return rc;
    }
    return 0;
}

int
dipx_client_new (const dipx_options_t *o, dipx_client_t **out)
{
    if (!out)
        return DIPX_E_INVAL;
    *out = NULL;
    if (!o || !o->endpoint || !*o->endpoint || !o->identity || !o->broker_key || !o->peers
        || o->window > DIPX_MAX_WINDOW)
        return DIPX_E_INVAL;
    if (o->outbox && !*o->outbox)
        return DIPX_E_INVAL;
    if (sodium_init () < 0)
        return DIPX_E_CRYPTO;
    uint8_t server_key[DIPX_KEY_BYTES];
    if (strnlen (o->broker_key, DIPX_Z85_KEY_LEN + 1) != DIPX_Z85_KEY_LEN
        || dipx_key_from_z85 (o->broker_key, DIPX_Z85_KEY_LEN, server_key) != 0)
        return DIPX_E_BROKER_KEY;

    dipx_client_t *self = (dipx_client_t *) calloc (1, sizeof *self);
    if (!self)
        return DIPX_E_NOMEM;
    self->epfd = -1;
    self->tfd = -1;
    self->log = o->log;
    self->log_arg = o->log_arg;
    self->window = o->window;

    int rc = dipx_identity_load (o->identity, &self->identity);
    if (rc) {
        s_log (self, DIPX_LOG_ERROR, "identity file %s: %s", o->identity, dipx_strerror (rc));
        goto fail;
    }
    int line = 0;
    rc = dipx_registry_load (o->peers, &self->peers, &line);
    if (rc) {
        s_log (self, DIPX_LOG_ERROR, "peers file %s line %d: %s", o->peers, line,
               dipx_strerror (rc));
        goto fail;
    }
    rc = DIPX_E_NOMEM;
    self->slots = (s_slot_t *) calloc (DIPX_MAX_PENDING, sizeof *self->slots);
    self->answered = (uint16_t *) calloc (DIPX_MAX_PENDING, sizeof *self->answered);
    self->written = (s_written_t *) calloc (DIPX_MAX_PENDING, sizeof *self->written);
    self->shared = (uint8_t *) sodium_malloc (DIPX_MAX_PEER_CACHE * DIPX_KEY_BYTES);
    if (!self->slots || !self->answered || !self->written || !self->shared
        || s_ring_init (&self->control, DIPX_MAX_CONTROL)
        || s_ring_init (&self->deliveries, DIPX_MAX_WINDOW)
        || s_ring_init (&self->receipts, DIPX_MAX_RECEIPTS))
        goto fail;
    dipx_frame_t hello = {.cmd = DIPX_CMD_HELLO};
    hello.u.hello.window = o->window;
    if ((rc = dipx_frame_encode (&hello, &self->hello, &self->hello_len)))
        goto fail;
    if (o->outbox) {
        rc = dipx__outbox_open (o->outbox, dipx_identity_id (self->identity), o->log, o->log_arg,
                                &self->box);
        if (rc)
            goto fail;
        /* What an earlier client left uncollected goes first, in post order,
           after this session's WELCOME (see s_flush).  */
        self->stats.outbox_reloaded = dipx__outbox_count (self->box);
        if (self->stats.outbox_reloaded)
            s_log (self, DIPX_LOG_INFO, "outbox %s: %llu send(s) kept from before, to send",
                   o->outbox, (unsigned long long) self->stats.outbox_reloaded);
        s_feed (self);
    }
    if ((rc = s_open_socket (self, o, server_key)))
        goto fail;
    *out = self;
    return 0;
fail:
    dipx_client_destroy (&self);
    return rc;
}

void
dipx_client_destroy (dipx_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dipx_client_t *self = *self_p;
    s_flush_acks (self);
    /* What is not collected stays for the next client.  */
    dipx__outbox_destroy (&self->box);
    if (self->sock && self->connected) {
        s_flush (self);
        s_setopt_int (self->sock, ZMQ_LINGER, S_CLOSE_LINGER_MS);
    }
    if (self->sock)
        zmq_socket_monitor (self->sock, NULL, 0); /* stop events before closing */
    if (self->mon)
        zmq_close (self->mon);
    if (self->sock)
        zmq_close (self->sock);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    if (self->epfd >= 0)
        close (self->epfd);
    if (self->tfd >= 0)
        close (self->tfd);
    if (self->slots) {
        for (size_t i = 0; i < DIPX_MAX_PENDING; i++) {
            free (self->slots[i].frame);
            free (self->slots[i].reason);
        }
        free (self->slots);
    }
    free (self->answered);
    free (self->written);
    if (self->control.items)
        s_ring_destroy (&self->control);
    if (self->deliveries.items)
        s_ring_destroy (&self->deliveries);
    if (self->receipts.items)
        s_ring_destroy (&self->receipts);
    if (self->shared) {
        sodium_memzero (self->shared, DIPX_MAX_PEER_CACHE * DIPX_KEY_BYTES);
        sodium_free (self->shared);
    }
    free (self->hello);
    free (self->endpoint);
    dipx_registry_destroy (&self->peers);
    dipx_identity_destroy (&self->identity);
    free (self);
    *self_p = NULL;
}

const char *
dipx_client_id (const dipx_client_t *self)
{
    return self ? dipx_identity_id (self->identity) : NULL;
}

static bool
s_is_ready (dipx_client_t *self, void *arg)
{
    (void) arg;
    return self->ready || self->session_err;
}

int
dipx_client_wait_ready (dipx_client_t *self, int timeout_ms)
{
    if (!self)
        return DIPX_E_INVAL;
    int rc = s_wait (self, s_deadline (timeout_ms), s_is_ready, NULL);
    return rc ? rc : self->ready ? 0 : self->session_err;
}

int
dipx_client_fd (dipx_client_t *self, int *fd)
{
    if (!self || !fd)
        return DIPX_E_INVAL;
    if (self->epfd < 0) {
        /* Two sockets need watching (the connection and its monitor, whose
           HANDSHAKE_SUCCEEDED must be answered with HELLO), and the API offers
           one descriptor: an epoll set over both ZMQ_FDs is readable when
           either is.  */
        int fds[3];
        size_t sz = sizeof fds[0];
        if (zmq_getsockopt (self->sock, ZMQ_FD, &fds[0], &sz))
            return DIPX_E_ZMQ;
        sz = sizeof fds[1];
        if (zmq_getsockopt (self->mon, ZMQ_FD, &fds[1], &sz))
            return DIPX_E_ZMQ;
        /* A third: a timer for the client's own retries (a HELLO the broker
           could not take, a connection after a refused key: s_next_timer),
           as no socket event would come for them.  */
        int tfd = timerfd_create (CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        fds[2] = tfd;
        int ep = tfd < 0 ? -1 : epoll_create1 (EPOLL_CLOEXEC);
        if (ep < 0) {
            if (tfd >= 0)
                close (tfd);
            return DIPX_E_IO;
        }
        for (int i = 0; i < 3; i++) {
            struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
            if (epoll_ctl (ep, EPOLL_CTL_ADD, fds[i], &ev)) {
                close (ep);
                close (tfd);
                return DIPX_E_IO;
            }
        }
        self->epfd = ep;
        self->tfd = tfd;
        s_arm_retry (self);
    }
    *fd = self->epfd;
    return 0;
}

/* ---------------------------------------------------------------------------
   Sending */

/*  Builds the clear header of a send and finds its recipient.  */
static int
s_header (dipx_client_t *self, const dipx_send_t *m, dipx_header_t *h, const dipx_entry_t **peer)
{
    const char *bad = NULL;
    memset (h, 0, sizeof *h);
    h->v = DIPX_PROTO_VERSION;
    uint64_t ttl = m->ttl_ms ? m->ttl_ms : S_DEFAULT_TTL_MS;
    bool pi = m->basis == DIPX_BASIS_PUBLIC_INTEREST;
    if (!s_text (m->to, 1, DIPX_MAX_AGENCY_ID, dipx_text_is_agency_id, h->to))
        bad = "to";
    else if (strcmp (h->to, dipx_identity_id (self->identity)) == 0)
        bad = "to (this agency itself)";
    else if (!s_text (m->type, 1, DIPX_MAX_TYPE, dipx_text_is_ident, h->type))
        bad = "type";
    else if (!m->subject)
        bad = "subject";
    else if (m->basis < 0 || m->basis >= DIPX_BASIS_COUNT)
        bad = "basis";
    else if (!s_text (m->ref, 1, DIPX_MAX_REF, dipx_text_is_printable, h->ref))
        bad = "ref";
    else if (m->purpose < 0 || m->purpose >= DIPX_PURPOSE_COUNT)
        bad = "purpose";
    else if (m->categories == 0 || (m->categories >> DIPX_CAT_COUNT) != 0)
        bad = "categories";
    else if (ttl > DIPX_MAX_TTL_MS)
        bad = "ttl_ms";
    else if (pi && !s_text (m->pi_by, 1, DIPX_MAX_PI_NAME, dipx_text_is_printable, h->pi_by))
        bad = "pi_by";
    else if (pi
             && !s_text (m->pi_approver, 1, DIPX_MAX_PI_NAME, dipx_text_is_printable,
                         h->pi_approver))
        bad = "pi_approver";
    else if (pi && !s_text (m->pi_why, 1, DIPX_MAX_PI_WHY, dipx_text_is_printable, h->pi_why))
        bad = "pi_why";
    else if (!pi && (m->pi_by || m->pi_approver || m->pi_why))
        bad = "pi_* (only for the public_interest basis)";
    if (bad) {
        snprintf (self->local_why, sizeof self->local_why, "invalid %s", bad);
        s_log (self, DIPX_LOG_DEBUG, "send: %s", self->local_why);
        return DIPX_E_INVAL;
    }
    const char *why;
    int rc = s_peer (self, h->to, dipx_now_ms (), DIPX_E_UNKNOWN_RECIPIENT,
                     DIPX_E_RECIPIENT_INACTIVE, peer, &why);
    if (rc) {
        snprintf (self->local_why, sizeof self->local_why, "recipient %s: %s", h->to, why);
        s_log (self, DIPX_LOG_DEBUG, "send: %s", self->local_why);
        return rc;
    }
    memcpy (h->from, dipx_identity_id (self->identity), strlen (dipx_identity_id (self->identity)));
    memcpy (h->subj, m->subject, DIPX_SUBJ_BYTES);
    h->basis = m->basis;
    h->purpose = m->purpose;
    h->cats = m->categories;
    h->created = dipx_now_ms ();
    if (m->id)
        memcpy (h->id, m->id, DIPX_ID_BYTES);
    else {
        /* 48-bit big-endian milliseconds, then 80 random bits: ids that
           sort by time keep the broker's id index append-mostly, where
           random ones cost it a page write each once the index is large.  */
        for (int i = 0; i < 6; i++)
            h->id[i] = (uint8_t) (h->created >> (40 - 8 * i));
        randombytes_buf (h->id + 6, DIPX_ID_BYTES - 6);
    }
    h->expires = h->created + ttl;
    return 0;
}

/*  Seals and signs; writes the message id into id.  */
static int
s_seal (dipx_client_t *self, const dipx_send_t *msg, const void *body, size_t body_len,
        uint8_t **env, size_t *env_len, uint8_t id[DIPX_ID_BYTES])
{
    if (!self || !msg || !env || !env_len || (!body && body_len) || body_len > DIPX_MAX_BODY)
        return DIPX_E_INVAL;
    *env = NULL;
    *env_len = 0;
    dipx_header_t *h = (dipx_header_t *) malloc (sizeof *h);
    if (!h)
        return DIPX_E_NOMEM;
    const dipx_entry_t *peer = NULL;
    const uint8_t *shared = NULL;
    int rc = s_header (self, msg, h, &peer);
    if (rc == 0)
        rc = s_shared (self, peer, &shared);
    /* An empty body may be NULL; proto's packer would memcpy from it.  */
    const uint8_t *bytes = body_len ? (const uint8_t *) body : (const uint8_t *) "";
    if (rc == 0)
        rc = dipx_envelope_seal (h, bytes, body_len, shared,
                                 dipx_identity_sign_sk (self->identity), env, env_len);
    if (rc && rc != DIPX_E_NOMEM && rc != DIPX_E_CRYPTO && rc != DIPX_E_UNKNOWN_RECIPIENT
        && rc != DIPX_E_RECIPIENT_INACTIVE && rc != DIPX_E_INVAL) {
        s_log (self, DIPX_LOG_DEBUG, "send: header refused by the encoder: %s",
               dipx_error_name (rc));
        rc = DIPX_E_INVAL;
    }
    if (rc == 0)
        memcpy (id, h->id, DIPX_ID_BYTES);
    free (h);
    return rc;
}

int
dipx_client_seal (dipx_client_t *self, const dipx_send_t *msg, const void *body, size_t body_len,
                  uint8_t **env, size_t *env_len)
{
    uint8_t id[DIPX_ID_BYTES];
    return s_seal (self, msg, body, body_len, env, env_len, id);
}

int
dipx_client_post (dipx_client_t *self, const dipx_send_t *msg, const void *body, size_t body_len,
                  uint8_t id[DIPX_MESSAGE_ID_BYTES])
{
    if (!self)
        return DIPX_E_INVAL;
    self->local_why[0] = 0;
    /* Before sealing: no work wasted.  */
    if (self->box ? dipx__outbox_count (self->box) >= DIPX_MAX_OUTBOX
                  : self->used >= DIPX_MAX_PENDING) {
        snprintf (self->local_why, sizeof self->local_why, "too many sends unanswered");
        return DIPX_E_BUSY;
    }
    uint8_t *env, mid[DIPX_ID_BYTES];
    size_t env_len;
    int rc = s_seal (self, msg, body, body_len, &env, &env_len, mid);
    if (rc)
        return rc;
    rc = s_submit (self, mid, env, env_len);
    if (rc == 0 && id)
        memcpy (id, mid, DIPX_ID_BYTES);
    free (env);
    return rc;
}

int
dipx_client_post_sealed (dipx_client_t *self, const uint8_t *env, size_t len)
{
    if (!self || !env || len == 0 || len > DIPX_MAX_ENV)
        return DIPX_E_INVAL;
    dipx_envelope_t *e = (dipx_envelope_t *) malloc (sizeof *e);
    if (!e)
        return DIPX_E_NOMEM;
    int rc = dipx_envelope_decode (env, len, e) ? DIPX_E_INVAL : 0;
    if (rc == 0 && strcmp (e->h.from, dipx_identity_id (self->identity)) != 0)
        rc = DIPX_E_INVAL;
    if (rc == 0)
        rc = s_submit (self, e->h.id, env, len);
    free (e);
    return rc;
}

static bool
s_slot_answered (dipx_client_t *self, void *arg)
{
    return self->slots[*(size_t *) arg].state == S_ANSWERED;
}

int
dipx_client_send (dipx_client_t *self, const dipx_send_t *msg, const void *body, size_t body_len,
                  int timeout_ms, dipx_result_t *result)
{
    uint64_t deadline = s_deadline (timeout_ms);
    uint8_t id[DIPX_ID_BYTES];
    if (result)
        memset (result, 0, sizeof *result);
    int rc = dipx_client_post (self, msg, body, body_len, id);
    if (rc) {
        if (result) {
            /* Refused here, before the broker: why, in the broker's manner.  */
            result->code = rc;
            snprintf (result->reason, sizeof result->reason, "%s",
                      self && self->local_why[0] ? self->local_why : dipx_strerror (rc));
        }
        return rc;
    }
    int found = s_find (self, id);
    if (found < 0) {
        /* Kept in the outbox only, behind DIPX_MAX_PENDING sends whose
           answers have not been collected: it cannot be answered while this
           call waits. Its answer comes through dipx_client_result.  */
        if (result) {
            memcpy (result->id, id, DIPX_ID_BYTES);
            result->code = DIPX_E_TIMEOUT;
        }
        return DIPX_E_TIMEOUT;
    }
    size_t i = (size_t) found;
    if (self->slots[i].state == S_ANSWERED) {
        /* Answered already (failed locally: above the broker's max_frame):
           this call returns the answer, dipx_client_result must not.  */
        s_unqueue_answer (self, i);
    }
    self->slots[i].waited = true;
    rc = s_wait (self, deadline, s_slot_answered, &i);
    self->slots[i].waited = false;
    /* Answered, even if the wait then failed (an ACK flush, say): its answer
       was kept for this call, and dipx_client_result would never see it.  */
    if (rc == 0 || self->slots[i].state == S_ANSWERED) {
        rc = s_collect (self, i, result);
        s_feed (self);
        return rc;
    }
    /* No answer yet: the send stays pending, is written again after a
       reconnection or when a later send's answer shows its own was lost
       (s_lost_before), and its answer goes to dipx_client_result.  */
    if (result) {
        memcpy (result->id, id, DIPX_ID_BYTES);
        result->code = rc;
    }
    return rc;
}

static bool
s_has_answer (dipx_client_t *self, void *arg)
{
    (void) arg;
    return self->ans_count > 0;
}

int
dipx_client_result (dipx_client_t *self, int timeout_ms, dipx_result_t *result)
{
    if (!self)
        return DIPX_E_INVAL;
    int rc = s_wait (self, s_deadline (timeout_ms), s_has_answer, NULL);
    if (rc)
        return rc;
    size_t i = self->answered[self->ans_head];
    self->ans_head = (self->ans_head + 1) % DIPX_MAX_PENDING;
    self->ans_count--;
    s_collect (self, i, result);
    s_feed (self); /* the freed slot takes the next send kept in the outbox */
    return 0;
}

/* ---------------------------------------------------------------------------
   Receiving */

static bool
s_has_delivery (dipx_client_t *self, void *arg)
{
    (void) arg;
    return self->deliveries.count > 0;
}

/*  Rejects a delivery that failed its checks: a signed OUTCOME rejected, which
    the broker takes, before any ACK, as "this recipient cannot accept it".  */
static void
s_reject (dipx_client_t *self, const dipx_envelope_t *e, uint64_t seq, int code, const char *why)
{
    char reason[DIPX_MAX_REASON + 1], hex[33];
    snprintf (reason, sizeof reason, "%s: %s", dipx_error_name (code), why);
    s_hex (e->h.id, hex);
    self->stats.rejected++;
    s_log (self, DIPX_LOG_WARN, "rejected message %s (seq %llu) from %s: %s", hex,
           (unsigned long long) seq, e->h.from, reason);
    int rc = s_outcome (self, e->h.id, DIPX_EVENT_REJECTED, reason);
    if (rc)
        s_log (self, DIPX_LOG_ERROR, "cannot send the rejection of %s: %s", hex,
               dipx_strerror (rc));
}

/*  Checks and opens one delivery. 0 and *msg; a check failure (rejected to
    the broker already); or DIPX_E_NOMEM / a decode error (left unacknowledged:
    the broker redelivers it, and dead-letters it in the end).  */
static int
s_open (dipx_client_t *self, const s_delivery_t *d, dipx_message_t **msg)
{
    dipx_envelope_t *e = (dipx_envelope_t *) malloc (sizeof *e);
    if (!e)
        return DIPX_E_NOMEM;
    char why[DIPX_MAX_REASON + 1];
    const dipx_entry_t *peer = NULL;
    const char *unusable = NULL;
    const uint8_t *shared = NULL;
    uint8_t *body = NULL;
    size_t body_len = 0;
    int rc = dipx_envelope_decode (d->env, d->len, e);
    if (rc) {
        s_log (self, DIPX_LOG_ERROR,
               "delivery seq %llu does not decode (%s); left unacknowledged",
               (unsigned long long) d->seq, dipx_error_name (rc));
        goto done;
    }
    if (strcmp (e->h.to, dipx_identity_id (self->identity)) != 0) {
        rc = DIPX_E_READDRESSED;
        snprintf (why, sizeof why, "addressed to %s, not to this agency", e->h.to);
    }
    else if ((rc = s_peer (self, e->h.from, e->h.created, DIPX_E_UNKNOWN_SENDER,
                           DIPX_E_UNKNOWN_SENDER, &peer, &unusable)))
        /* Its card must have been valid when the message was made: one
           that expired while the message was queued is no reason to refuse
           it.  */
        snprintf (why, sizeof why, "sender %s has no active card in this agency's peers "
                  "(%s at the message's creation)", e->h.from, unusable);
    else if ((rc = dipx_envelope_verify (e, peer->card.sign_pk, NULL)))
        snprintf (why, sizeof why, "signature does not verify with %s's key", e->h.from);
    else if ((rc = s_shared (self, peer, &shared)))
        snprintf (why, sizeof why, "no shared key with %s", e->h.from);
    else if ((rc = dipx_envelope_open (e, shared, &body, &body_len))) {
        if (rc == DIPX_E_NOMEM)
            goto done;
        snprintf (why, sizeof why, "%s", dipx_strerror (rc));
    }
    if (rc) {
        s_reject (self, e, d->seq, rc, why);
        goto done;
    }
    *msg = dipx__message_new (&e->h, d->seq, d->count, &body, body_len);
    rc = *msg ? 0 : DIPX_E_NOMEM;
done:
    free (e);
    return rc;
}

int
dipx_client_recv (dipx_client_t *self, int timeout_ms, dipx_message_t **msg)
{
    if (!self || !msg)
        return DIPX_E_INVAL;
    *msg = NULL;
    uint64_t deadline = s_deadline (timeout_ms);
    for (;;) {
        int rc = s_wait (self, deadline, s_has_delivery, NULL);
        if (rc)
            return rc;
        s_delivery_t *d = (s_delivery_t *) s_ring_pop (&self->deliveries);
        rc = s_open (self, d, msg);
        free (d);
        if (rc == 0 || rc == DIPX_E_NOMEM)
            return rc;
        /* Rejected or undecodable: never returned; keep waiting, but not
           past the deadline for more to arrive (a stream of bad deliveries
           would otherwise hold the call for as long as it lasts).  */
        if (self->deliveries.count == 0 && s_remaining (deadline) == 0)
            return DIPX_E_TIMEOUT;
    }
}

int
dipx_client_ack (dipx_client_t *self, const dipx_message_t *msg)
{
    if (!self || !msg)
        return DIPX_E_INVAL;
    int rc = 0;
    if (self->acks.count == DIPX_MAX_ACK_IDS && (rc = s_flush_acks (self)))
        return rc;
    memcpy (self->acks.ids[self->acks.count++], dipx_message_id (msg), DIPX_ID_BYTES);
    /* Coalesce while more deliveries are already here to be taken: the
       application will be back for them at once, and one signature then
       covers them all (the broker verifies one instead of up to 256). Listed
       now, the acknowledgement goes with a later flush if this one fails:
       an error here would only have the application list it twice.  */
    if (self->deliveries.count == 0 || self->acks.count == DIPX_MAX_ACK_IDS)
        (void) s_flush_acks (self);
    return 0;
}

int
dipx_client_outcome (dipx_client_t *self, const dipx_message_t *msg, bool actioned,
                     const char *reason)
{
    if (!self || !msg || (!actioned && (!reason || !*reason)))
        return DIPX_E_INVAL;
    int rc = s_flush_acks (self); /* an outcome must follow its acknowledgement */
    if (rc)
        return rc;
    return s_outcome (self, dipx_message_id (msg),
                      actioned ? DIPX_EVENT_ACTIONED : DIPX_EVENT_REJECTED, reason);
}

static bool
s_has_receipt (dipx_client_t *self, void *arg)
{
    (void) arg;
    return self->receipts.count > 0;
}

int
dipx_client_receipt (dipx_client_t *self, int timeout_ms, dipx_receipt_t *r)
{
    if (!self || !r)
        return DIPX_E_INVAL;
    int rc = s_wait (self, s_deadline (timeout_ms), s_has_receipt, NULL);
    if (rc)
        return rc;
    dipx_receipt_t *q = (dipx_receipt_t *) s_ring_pop (&self->receipts);
    *r = *q;
    free (q);
    return 0;
}

static bool
s_track_done (dipx_client_t *self, void *arg)
{
    (void) arg;
    return self->track.err || (self->track.total && self->track.got == self->track.total);
}

int
dipx_client_track (dipx_client_t *self, const uint8_t id[DIPX_MESSAGE_ID_BYTES], int timeout_ms,
                   dipx_receipt_t *events, size_t max, size_t *n)
{
    if (!self || !id || !n || (max && !events))
        return DIPX_E_INVAL;
    *n = 0;
    memset (&self->track, 0, sizeof self->track);
    self->track.active = true;
    self->track.due = true;
    memcpy (self->track.id, id, DIPX_ID_BYTES);
    self->track.events = events;
    self->track.max = max;
    s_flush (self);
    int rc = s_wait (self, s_deadline (timeout_ms), s_track_done, NULL);
    if (rc == 0 && self->track.err)
        rc = self->track.err;
    if (rc == 0) {
        *n = self->track.total < max ? (size_t) self->track.total : max;
        if (self->track.total > max)
            rc = DIPX_E_COUNT; /* the first max events are written */
    }
    memset (&self->track, 0, sizeof self->track);
    return rc;
}
