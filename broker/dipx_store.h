/*  dipx_store.h - the broker's durable state in LMDB, and its one commit path.

    Every state change (a message stored, delivered, acknowledged, dead-
    lettered) happens inside a write transaction together with its audit
    record (dipx_store_audit), and the transaction is committed with fsync
    before anyone is told about it. The service takes one transaction per loop
    turn for everything that arrived together (group commit).

    Databases in the environment:
        meta    "seq", "aseq" → be64 last message / audit sequence numbers
        msgs    be64 seq → message record (state, counts, times, ids, envelope)
        queue   recipient id, NUL, be64 seq → be32 envelope bytes
        qstat   recipient id → be64 messages, be64 bytes queued
        mstate  be64 seq → u8 state, be32 count, be64 delivered_at; kept
                (state ACKED) after the envelope is deleted
        ids     message id → id record (seq, digest, sender, recipient; its
                state byte is as accepted: the current state is in mstate)
        expiry  be64 expires-at, be64 seq → (empty)
        dead    be64 seq → be64 at, be64 code, reason
        audit   be64 audit seq → audit record (dipx_audit.h)
        aud_seq be64 message seq, be64 audit seq → (empty)  history by message
        aud_id  message id, be64 audit seq → (empty)     history of an id never
                stored (refusals), and of messages older than aud_seq
        aud_sub subject ref, be64 audit seq → (empty)    disclosures by subject:
                the ACCEPTED record (aud_seq has the rest), and records
                not about a stored message
    Random keys (message ids, subjects) cost a page write each, whatever the
    batch, once their tree is larger than a commit's writes: a message
    writes one ids entry and one aud_sub entry; everything else it writes is
    keyed by seq or time and shares pages with its neighbours.
    Records read back are checked like network input (DIPX_E_CORRUPT).
*/
#ifndef DIPX_STORE_H_INCLUDED
#define DIPX_STORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dipx_audit.h"
#include "dipx_envelope.h"
#include "dipx_pool.h"

typedef struct dipx_store_t dipx_store_t;
typedef struct dipx_txn_t dipx_txn_t;

/*  Message states.  */
enum {
    DIPX_MSG_QUEUED = 1, /* in its recipient's queue */
    DIPX_MSG_ACKED = 2,  /* acknowledged; envelope deleted (ids and mstate remain) */
    DIPX_MSG_DEAD = 3,   /* in the dead-letter store */
};

/*  A stored message. Pointers point into LMDB's map: valid only until the
    transaction ends (copy before commit).  */
typedef struct {
    uint64_t seq;                       /* broker sequence number */
    int state;                          /* DIPX_MSG_* */
    uint32_t count;                     /* deliveries so far */
    uint64_t accepted_at;               /* ms since the epoch */
    uint64_t expires;                   /* ms since the epoch */
    uint64_t delivered_at;              /* last delivery, 0 if never */
    uint8_t id[DIPX_ID_BYTES];          /* message id */
    char from[DIPX_MAX_AGENCY_ID + 1];  /* sender */
    char to[DIPX_MAX_AGENCY_ID + 1];    /* recipient */
    const uint8_t *env;                 /* envelope bytes (in the map) */
    size_t env_len;                     /* envelope length */
} dipx_msgrec_t;

/*  What the broker remembers of a message id (deduplication, tracking).  */
typedef struct {
    uint64_t seq;                        /* broker sequence number */
    int state;                           /* DIPX_MSG_* */
    uint64_t at;                         /* accepted at */
    uint8_t digest[2 * DIPX_HASH_BYTES]; /* hh || ph of the accepted envelope */
    char from[DIPX_MAX_AGENCY_ID + 1];   /* sender */
    char to[DIPX_MAX_AGENCY_ID + 1];     /* recipient */
} dipx_idrec_t;

/*  dipx_store_open flags.  */
enum {
    DIPX_STORE_READONLY = 1, /* read only: shares a running broker's environment safely */
    DIPX_STORE_RANDOM = 2,   /* no readahead: for lookups scattered over a large store */
};

/*  Opens (creating, mode 0700, unless read-only) the environment in dir
    with the given map size and growth ceiling (bytes). Returns 0 and *out,
    or DIPX_E_IO/_STORAGE/_CORRUPT.  */
int dipx_store_open (const char *dir, uint64_t map_size, uint64_t map_max, unsigned flags,
                     dipx_store_t **out);
void dipx_store_destroy (dipx_store_t **self_p);

/*  Begins the write transaction (growing the map first when it is over 3/4
    used and below its ceiling). At most one is open, used by one thread at
    a time; beginning it allocates nothing.  */
int dipx_store_begin (dipx_store_t *self, dipx_txn_t **out);

/*  Begins a read-only transaction.  */
int dipx_store_begin_read (dipx_store_t *self, dipx_txn_t **out);

/*  Commits with fsync. Consumes the transaction on every path. Returns 0,
    DIPX_E_STORAGE_FULL (map or disk full: nothing was committed) or
    DIPX_E_STORAGE (an I/O error: nothing was committed).  */
int dipx_store_commit (dipx_txn_t **txn_p);

/*  True once LMDB has panicked (a write of its meta page failed): every
    later transaction fails, and only reopening the environment, i.e.
    restarting the broker, recovers (LMDB then uses the newest meta page that
    reached the disk). A failed write or fsync of data pages is not fatal:
    the aborted transaction's pages are referenced by no meta page, so the
    next transaction writes and syncs its own pages afresh.  */
bool dipx_store_failed (const dipx_store_t *self);

/*  Aborts, discarding every change. Accepts NULL.  */
void dipx_store_abort (dipx_txn_t **txn_p);

/*  Looks up a message id. 0, DIPX_E_NOT_FOUND or DIPX_E_CORRUPT.  */
int dipx_store_id_get (dipx_txn_t *txn, const uint8_t id[DIPX_ID_BYTES], dipx_idrec_t *out);

/*  Messages and bytes queued for an agency.  */
int dipx_store_queue_stat (dipx_txn_t *txn, const char *agency, uint64_t *count,
                           uint64_t *bytes);

/*  Stores an accepted envelope for its recipient: message record, queue
    entry, id record, expiry index, queue counters. Sets *seq.  */
int dipx_store_enqueue (dipx_txn_t *txn, const dipx_envelope_t *env, const uint8_t *raw,
                        size_t raw_len, const uint8_t digest[2 * DIPX_HASH_BYTES], uint64_t now,
                        uint64_t *seq);

/*  The first message queued for agency with a sequence number above after.
    0, DIPX_E_NOT_FOUND, DIPX_E_CORRUPT.  */
int dipx_store_queue_next (dipx_txn_t *txn, const char *agency, uint64_t after,
                           dipx_msgrec_t *out);

/*  Reads a message record by sequence number.  */
int dipx_store_msg_get (dipx_txn_t *txn, uint64_t seq, dipx_msgrec_t *out);

/*  Records one more delivery of a queued message at now; sets *count.  */
int dipx_store_msg_delivered (dipx_txn_t *txn, uint64_t seq, uint64_t now, uint32_t *count);

/*  Takes back delivery number count of a queued message, whose DELIVER never
    left the broker (the connection's send queue was full, or it was gone),
    so that count keeps counting the DELIVERs sent. Nothing is done, and 0
    returned, if the message has moved on since: acknowledged, dead-lettered
    or delivered again.  */
int dipx_store_msg_undelivered (dipx_txn_t *txn, uint64_t seq, uint32_t count);

/*  Acknowledged: removes it from its queue and deletes the envelope; the id
    record remains (state ACKED) for deduplication and tracking.  */
int dipx_store_msg_acked (dipx_txn_t *txn, uint64_t seq);

/*  Moves a queued message to the dead-letter store with its reason; the
    envelope is kept.  */
int dipx_store_msg_dead (dipx_txn_t *txn, uint64_t seq, uint64_t now, int code,
                         const char *reason);

/*  Puts a dead letter back in its queue with its delivery count reset, and
    advances the store's redrive epoch, by which a running broker learns
    (from another process, such as `dipxd dead --redrive`) that queues have
    gained messages below its sessions' cursors.  */
int dipx_store_msg_redrive (dipx_txn_t *txn, uint64_t seq);

/*  The redrive epoch (0 before the first redrive).  */
uint64_t dipx_store_redrive_epoch (dipx_txn_t *txn);

/*  The first dead letter with sequence number above after, its time, its
    wire code (positive) and its reason.  */
int dipx_store_dead_next (dipx_txn_t *txn, uint64_t after, dipx_msgrec_t *msg, uint64_t *at,
                          uint64_t *code, char reason[DIPX_MAX_REASON + 1]);

/*  The queued message with the earliest expiry at or before now.  */
int dipx_store_expired_next (dipx_txn_t *txn, uint64_t now, dipx_msgrec_t *out);

/*  Appends an audit record, assigning rec->seq, and indexes it by message id
    and subject when it has them.  */
int dipx_store_audit (dipx_txn_t *txn, dipx_audit_t *rec);

/*  Reads audit record seq.  */
int dipx_store_audit_get (dipx_txn_t *txn, uint64_t seq, dipx_audit_t *rec);

/*  Calls fn for each audit record about message id, oldest first, stopping
    after max records or when fn returns non-zero (which is returned).  */
typedef int (dipx_audit_fn) (const dipx_audit_t *rec, void *arg);
int dipx_store_audit_for_id (dipx_txn_t *txn, const uint8_t id[DIPX_ID_BYTES], size_t max,
                             dipx_audit_fn *fn, void *arg);

/*  Calls fn for each audit record about subject subj with seq above after,
    oldest first, at most max (1..DIPX_AUDIT_PAGE_MAX) of them: every record of
    every stored message about the subject (found through its ACCEPTED
    record) and every record about it that concerns no stored message
    (refusals). Fewer than max calls means the end; otherwise call again with
    after = the last seq seen. Memory is one page of seqs whatever the
    subject's history. Stops when fn returns non-zero, and returns that.  */
#define DIPX_AUDIT_PAGE_MAX 65536
int dipx_store_audit_for_subject (dipx_txn_t *txn, const uint8_t subj[DIPX_SUBJ_BYTES],
                                  uint64_t after, size_t max, dipx_audit_fn *fn, void *arg);

/*  Reads, on the pool's threads, the pages dipx_store_audit_for_subject will
    need for subj (for its first 65,536 messages), so that a query of a log
    that is not in the page cache waits for the disk's parallel reads rather
    than for one random read after another. Only a hint: the query is
    correct without it. The calling thread takes part, so it must not hold
    a read transaction (LMDB allows one per thread): a job whose transaction
    cannot begin makes the result an error.  */
#define DIPX_AUDIT_PREFETCH_THREADS 4 /* random reads in flight that this disk gained from */
int dipx_store_prefetch_subject (dipx_store_t *store, const uint8_t subj[DIPX_SUBJ_BYTES],
                                 dipx_pool_t *pool);

/*  Last audit sequence number (0 if none).  */
uint64_t dipx_store_audit_last (dipx_txn_t *txn);

/*  Decoders of stored records, exposed for the fuzz targets.  */
int dipx_store_decode_msg (const uint8_t *buf, size_t len, dipx_msgrec_t *out);
int dipx_store_decode_id (const uint8_t *buf, size_t len, dipx_idrec_t *out);

#endif
