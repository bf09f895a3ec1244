/*  test_store.c - unit tests of broker/dipx_store (LMDB) and of the stored
    record decoders (dipx_store_decode_msg, _decode_id, dipx_audit_decode).

    Each test opens a store in a fresh directory from mkdtemp, removed after.
    Envelopes are real: sealed with dipx_envelope_seal under random keys made
    once for the whole run, decoded and verified as the broker would before it
    stores them, so the store sees exactly what dipx_server gives it.

    Storage faults are real too: a store opened with a 1 MiB map that may not
    grow is filled with 100 KB envelopes until LMDB says MDB_MAP_FULL.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "testutil.h"
#include "dipx_audit.h"
#include "dipx_envelope.h"
#include "dipx_error.h"
#include "dipx_pool.h"
#include "dipx_store.h"

#define MIB (1024u * 1024u)
#define T0 1700000000000ull /* a fixed "now", ms since the epoch */
#define HOUR (3600ull * 1000)
#define SENDER "police.met.brixton"
#define RCPT "cjit.lambeth"

/*  Keys and envelopes ------------------------------------------------------*/

static uint8_t s_sign_pk[crypto_sign_PUBLICKEYBYTES];
static uint8_t s_sign_sk[crypto_sign_SECRETKEYBYTES];
static uint8_t s_shared[crypto_box_BEFORENMBYTES];

/*  An envelope as the broker holds it when it stores one.  */
typedef struct {
    uint8_t *raw;                        /* the envelope bytes (malloc'd) */
    size_t len;                          /* their length */
    dipx_envelope_t env;                 /* decoded; slices point into raw */
    uint8_t digest[2 * DIPX_HASH_BYTES]; /* hh || ph, from verify */
} s_msg_t;

/*  subj NULL: a random subject reference.  */
static void
s_make_full (s_msg_t *m, const char *to, size_t body_len, uint64_t created, uint64_t expires,
             const uint8_t *subj)
{
    dipx_header_t h;
    memset (&h, 0, sizeof h);
    h.v = 1;
    randombytes_buf (h.id, sizeof h.id);
    strcpy (h.type, "drug_test_result");
    strcpy (h.from, SENDER);
    snprintf (h.to, sizeof h.to, "%s", to);
    if (subj)
        memcpy (h.subj, subj, sizeof h.subj);
    else
        randombytes_buf (h.subj, sizeof h.subj);
    h.basis = DIPX_BASIS_STATUTE;
    strcpy (h.ref, "PACE s.63B");
    h.purpose = DIPX_PURPOSE_LAW_ENFORCEMENT;
    h.cats = 1u << DIPX_CAT_TEST_RESULTS;
    h.created = created;
    h.expires = expires;
    uint8_t *body = malloc (body_len ? body_len : 1);
    assert_non_null (body);
    randombytes_buf (body, body_len);
    memset (m, 0, sizeof *m);
    assert_int_equal (dipx_envelope_seal (&h, body, body_len, s_shared, s_sign_sk, &m->raw, &m->len),
                      0);
    free (body);
    assert_int_equal (dipx_envelope_decode (m->raw, m->len, &m->env), 0);
    assert_int_equal (dipx_envelope_verify (&m->env, s_sign_pk, m->digest), 0);
}

static void
s_make_at (s_msg_t *m, const char *to, size_t body_len, uint64_t created, uint64_t expires)
{
    s_make_full (m, to, body_len, created, expires, NULL);
}

static void
s_make (s_msg_t *m, const char *to, size_t body_len)
{
    s_make_at (m, to, body_len, T0, T0 + HOUR);
}

static void
s_free (s_msg_t *m)
{
    free (m->raw);
    memset (m, 0, sizeof *m);
}

/*  Enqueues m at now and returns its sequence number.  */
static uint64_t
s_enqueue (dipx_txn_t *txn, const s_msg_t *m, uint64_t now)
{
    uint64_t seq = 0;
    int rc = dipx_store_enqueue (txn, &m->env, m->raw, m->len, m->digest, now, &seq);
    if (rc)
        print_error ("enqueue: %s\n", dipx_strerror (rc));
    assert_int_equal (rc, 0);
    assert_true (seq > 0);
    return seq;
}

/*  Fixture: a temporary directory and a store in it --------------------------*/

typedef struct {
    char dir[256];       /* the test's temporary directory */
    char sub[300];       /* a second store's directory inside it */
    dipx_store_t *store; /* open on dir */
} s_fx_t;

static int
s_group_setup (void **state)
{
    (void) state;
    if (sodium_init () < 0)
        return -1;
    uint8_t pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
    uint8_t rpk[crypto_box_PUBLICKEYBYTES], rsk[crypto_box_SECRETKEYBYTES];
    crypto_box_keypair (pk, sk);
    crypto_box_keypair (rpk, rsk);
    crypto_sign_keypair (s_sign_pk, s_sign_sk);
    return crypto_box_beforenm (s_shared, rpk, sk);
}

static int
s_setup (void **state)
{
    s_fx_t *fx = calloc (1, sizeof *fx);
    if (!fx)
        return -1;
    if (dipx_test_mkdtemp (fx->dir, sizeof fx->dir, "dipx-store") != 0) {
        free (fx);
        return -1;
    }
    snprintf (fx->sub, sizeof fx->sub, "%s/sub", fx->dir);
    if (dipx_store_open (fx->dir, 16 * MIB, 64 * MIB, 0, &fx->store) != 0) {
        rmdir (fx->dir);
        free (fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fx_t *fx = *state;
    dipx_store_destroy (&fx->store);
    dipx_test_rmtree (fx->dir);
    free (fx);
    return 0;
}

static dipx_txn_t *
s_begin (dipx_store_t *store)
{
    dipx_txn_t *txn = NULL;
    assert_int_equal (dipx_store_begin (store, &txn), 0);
    assert_non_null (txn);
    return txn;
}

static dipx_txn_t *
s_begin_read (dipx_store_t *store)
{
    dipx_txn_t *txn = NULL;
    assert_int_equal (dipx_store_begin_read (store, &txn), 0);
    assert_non_null (txn);
    return txn;
}

static void
s_commit (dipx_txn_t **txn)
{
    int rc = dipx_store_commit (txn);
    if (rc)
        print_error ("commit: %s\n", dipx_strerror (rc));
    assert_int_equal (rc, 0);
    assert_null (*txn);
}

static void
s_assert_stat (dipx_txn_t *txn, const char *agency, uint64_t count, uint64_t bytes)
{
    uint64_t c = 99, b = 99;
    int rc = dipx_store_queue_stat (txn, agency, &c, &b);
    assert_true (rc == 0 || (rc == DIPX_E_NOT_FOUND && count == 0));
    assert_int_equal (c, count);
    assert_int_equal (b, bytes);
}

/*  The message record of a queued message, checked against what was sent.  */
static void
s_assert_msg (const dipx_msgrec_t *r, uint64_t seq, const s_msg_t *m, uint64_t accepted_at)
{
    assert_int_equal (r->seq, seq);
    assert_memory_equal (r->id, m->env.h.id, DIPX_ID_BYTES);
    assert_string_equal (r->from, m->env.h.from);
    assert_string_equal (r->to, m->env.h.to);
    assert_int_equal (r->accepted_at, accepted_at);
    assert_int_equal (r->expires, m->env.h.expires);
    assert_int_equal (r->env_len, m->len);
    assert_memory_equal (r->env, m->raw, m->len);
}

/*  Tests: messages ---------------------------------------------------------*/

static void
test_enqueue_read (void **state)
{
    s_fx_t *fx = *state;
    s_msg_t m1, m2, m3, m4;
    s_make (&m1, RCPT, 100);
    s_make (&m2, RCPT, 2000);
    s_make (&m3, "court.southwark", 0);
    s_make (&m4, RCPT "-north", 10); /* RCPT is a prefix of this id */

    dipx_txn_t *txn = s_begin (fx->store);
    assert_int_equal (dipx_store_audit_last (txn), 0);
    uint64_t seq = 0;
    /* Refused before anything is written.  */
    assert_int_equal (dipx_store_enqueue (txn, &m1.env, m1.raw, 0, m1.digest, T0, &seq),
                      DIPX_E_INVAL);
    assert_int_equal (dipx_store_enqueue (txn, &m1.env, m1.raw, DIPX_MAX_ENV + 1, m1.digest, T0,
                                          &seq),
                      DIPX_E_INVAL);
    assert_int_equal (s_enqueue (txn, &m1, T0 + 1), 1);
    assert_int_equal (s_enqueue (txn, &m2, T0 + 2), 2);
    assert_int_equal (s_enqueue (txn, &m3, T0 + 3), 3);
    assert_int_equal (s_enqueue (txn, &m4, T0 + 4), 4);
    /* The write transaction sees its own writes.  */
    dipx_msgrec_t r;
    assert_int_equal (dipx_store_queue_next (txn, RCPT, 0, &r), 0);
    s_assert_msg (&r, 1, &m1, T0 + 1);
    s_commit (&txn);

    txn = s_begin_read (fx->store);
    /* The queue, in order, with the exact envelope bytes.  */
    memset (&r, 0xa5, sizeof r);
    assert_int_equal (dipx_store_queue_next (txn, RCPT, 0, &r), 0);
    s_assert_msg (&r, 1, &m1, T0 + 1);
    assert_int_equal (r.state, DIPX_MSG_QUEUED);
    assert_int_equal (r.count, 0);
    assert_int_equal (r.delivered_at, 0);
    assert_int_equal (dipx_store_queue_next (txn, RCPT, 1, &r), 0);
    s_assert_msg (&r, 2, &m2, T0 + 2);
    assert_int_equal (dipx_store_queue_next (txn, RCPT, 2, &r), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_queue_next (txn, RCPT, UINT64_MAX - 1, &r), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_queue_next (txn, RCPT, UINT64_MAX, &r), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_queue_next (txn, "court.southwark", 0, &r), 0);
    s_assert_msg (&r, 3, &m3, T0 + 3);
    assert_int_equal (dipx_store_queue_next (txn, RCPT "-north", 0, &r), 0);
    s_assert_msg (&r, 4, &m4, T0 + 4);
    assert_int_equal (dipx_store_queue_next (txn, "cjit", 0, &r), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_queue_next (txn, "prison.x", 0, &r), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_queue_next (txn, "zzz", 0, &r), DIPX_E_NOT_FOUND);
    /* By sequence number.  */
    assert_int_equal (dipx_store_msg_get (txn, 2, &r), 0);
    s_assert_msg (&r, 2, &m2, T0 + 2);
    assert_int_equal (dipx_store_msg_get (txn, 0, &r), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_msg_get (txn, 5, &r), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_msg_get (txn, UINT64_MAX, &r), DIPX_E_NOT_FOUND);
    /* The id records, with the digest.  */
    dipx_idrec_t ir;
    assert_int_equal (dipx_store_id_get (txn, m2.env.h.id, &ir), 0);
    assert_int_equal (ir.seq, 2);
    assert_int_equal (ir.state, DIPX_MSG_QUEUED);
    assert_int_equal (ir.at, T0 + 2);
    assert_memory_equal (ir.digest, m2.digest, sizeof ir.digest);
    assert_string_equal (ir.from, SENDER);
    assert_string_equal (ir.to, RCPT);
    uint8_t other[DIPX_ID_BYTES];
    randombytes_buf (other, sizeof other);
    assert_int_equal (dipx_store_id_get (txn, other, &ir), DIPX_E_NOT_FOUND);
    /* The queue counters.  */
    s_assert_stat (txn, RCPT, 2, m1.len + m2.len);
    s_assert_stat (txn, "court.southwark", 1, m3.len);
    s_assert_stat (txn, RCPT "-north", 1, m4.len);
    s_assert_stat (txn, "cjit", 0, 0);
    assert_int_equal (dipx_store_audit_last (txn), 0);
    dipx_store_abort (&txn);
    assert_null (txn);
    s_free (&m1);
    s_free (&m2);
    s_free (&m3);
    s_free (&m4);
}

static void
test_delivered_acked (void **state)
{
    s_fx_t *fx = *state;
    s_msg_t m1, m2;
    s_make (&m1, RCPT, 300);
    s_make (&m2, RCPT, 400);
    dipx_txn_t *txn = s_begin (fx->store);
    uint64_t s1 = s_enqueue (txn, &m1, T0), s2 = s_enqueue (txn, &m2, T0);
    s_commit (&txn);

    txn = s_begin (fx->store);
    uint32_t count = 0;
    assert_int_equal (dipx_store_msg_delivered (txn, s1, T0 + 10, &count), 0);
    assert_int_equal (count, 1);
    assert_int_equal (dipx_store_msg_delivered (txn, s1, T0 + 20, &count), 0);
    assert_int_equal (count, 2);
    assert_int_equal (dipx_store_msg_delivered (txn, 99, T0, &count), DIPX_E_NOT_FOUND);
    s_commit (&txn);

    txn = s_begin_read (fx->store);
    dipx_msgrec_t r;
    assert_int_equal (dipx_store_msg_get (txn, s1, &r), 0);
    assert_int_equal (r.count, 2);
    assert_int_equal (r.delivered_at, T0 + 20);
    assert_int_equal (r.state, DIPX_MSG_QUEUED);
    s_assert_msg (&r, s1, &m1, T0); /* the envelope is untouched */
    assert_int_equal (dipx_store_msg_get (txn, s2, &r), 0);
    assert_int_equal (r.count, 0);
    dipx_store_abort (&txn);

    txn = s_begin (fx->store);
    assert_int_equal (dipx_store_msg_acked (txn, s1), 0);
    s_commit (&txn);

    txn = s_begin_read (fx->store);
    /* Out of the queue, the counters and the expiry index...  */
    assert_int_equal (dipx_store_queue_next (txn, RCPT, 0, &r), 0);
    assert_int_equal (r.seq, s2);
    s_assert_stat (txn, RCPT, 1, m2.len);
    assert_int_equal (dipx_store_expired_next (txn, UINT64_MAX, &r), 0);
    assert_int_equal (r.seq, s2);
    /* ...the envelope gone (r still holds the last message read: msg_get
       must not take it for a half-found record)...  */
    assert_int_equal (dipx_store_msg_get (txn, s1, &r), DIPX_E_NOT_FOUND);
    /* ...and the id remembered as acknowledged, digest and all.  */
    dipx_idrec_t ir;
    assert_int_equal (dipx_store_id_get (txn, m1.env.h.id, &ir), 0);
    assert_int_equal (ir.state, DIPX_MSG_ACKED);
    assert_int_equal (ir.seq, s1);
    assert_memory_equal (ir.digest, m1.digest, sizeof ir.digest);
    dipx_store_abort (&txn);

    /* Nothing more can happen to it.  */
    txn = s_begin (fx->store);
    assert_int_equal (dipx_store_msg_acked (txn, s1), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_msg_delivered (txn, s1, T0, &count), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_msg_dead (txn, s1, T0, DIPX_E_EXPIRED, "x"), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_msg_redrive (txn, s1), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_msg_acked (txn, s2), 0);
    s_assert_stat (txn, RCPT, 0, 0);
    assert_int_equal (dipx_store_queue_next (txn, RCPT, 0, &r), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_expired_next (txn, UINT64_MAX, &r), DIPX_E_NOT_FOUND);
    s_commit (&txn);
    s_free (&m1);
    s_free (&m2);
}

/*  A delivery whose DELIVER never left the broker is taken back, and only
    while it is the message's latest and the message is queued.  */
static void
test_undelivered (void **state)
{
    s_fx_t *fx = *state;
    s_msg_t m1;
    s_make (&m1, RCPT, 300);
    dipx_txn_t *txn = s_begin (fx->store);
    uint64_t s1 = s_enqueue (txn, &m1, T0);
    uint32_t count = 0;
    dipx_msgrec_t r;
    assert_int_equal (dipx_store_msg_delivered (txn, s1, T0 + 10, &count), 0);
    assert_int_equal (dipx_store_msg_delivered (txn, s1, T0 + 20, &count), 0);
    /* The first is not the latest: nothing.  */
    assert_int_equal (dipx_store_msg_undelivered (txn, s1, 1), 0);
    assert_int_equal (dipx_store_msg_get (txn, s1, &r), 0);
    assert_int_equal (r.count, 2);
    /* The latest, then the one before it.  */
    assert_int_equal (dipx_store_msg_undelivered (txn, s1, 2), 0);
    assert_int_equal (dipx_store_msg_get (txn, s1, &r), 0);
    assert_int_equal (r.count, 1);
    assert_int_equal (r.delivered_at, T0 + 20);
    assert_int_equal (dipx_store_msg_undelivered (txn, s1, 1), 0);
    assert_int_equal (dipx_store_msg_undelivered (txn, s1, 0), 0);
    assert_int_equal (dipx_store_msg_undelivered (txn, 99, 1), 0);
    s_commit (&txn);

    txn = s_begin_read (fx->store);
    assert_int_equal (dipx_store_msg_get (txn, s1, &r), 0);
    assert_int_equal (r.count, 0);
    assert_int_equal (r.delivered_at, 0); /* never delivered after all */
    assert_int_equal (r.state, DIPX_MSG_QUEUED);
    s_assert_msg (&r, s1, &m1, T0);
    s_assert_stat (txn, RCPT, 1, m1.len);
    dipx_store_abort (&txn);

    /* Dead-lettered since: nothing.  */
    txn = s_begin (fx->store);
    assert_int_equal (dipx_store_msg_delivered (txn, s1, T0 + 30, &count), 0);
    assert_int_equal (dipx_store_msg_dead (txn, s1, T0 + 40, DIPX_E_EXPIRED, "x"), 0);
    assert_int_equal (dipx_store_msg_undelivered (txn, s1, 1), 0);
    assert_int_equal (dipx_store_msg_get (txn, s1, &r), 0);
    assert_int_equal (r.state, DIPX_MSG_DEAD);
    assert_int_equal (r.count, 1);
    s_commit (&txn);
    s_free (&m1);
}

static void
test_dead_redrive (void **state)
{
    s_fx_t *fx = *state;
    s_msg_t m1, m2;
    s_make (&m1, RCPT, 300);
    s_make (&m2, RCPT, 400);
    dipx_txn_t *txn = s_begin (fx->store);
    uint64_t s1 = s_enqueue (txn, &m1, T0), s2 = s_enqueue (txn, &m2, T0);
    uint32_t count;
    assert_int_equal (dipx_store_msg_delivered (txn, s1, T0 + 1, &count), 0);
    assert_int_equal (dipx_store_msg_delivered (txn, s1, T0 + 2, &count), 0);
    assert_int_equal (dipx_store_msg_dead (txn, s1, T0 + 5, DIPX_E_UNDELIVERED,
                                           "not acknowledged after 2 deliveries"),
                      0);
    s_commit (&txn);

    txn = s_begin_read (fx->store);
    dipx_msgrec_t r;
    assert_int_equal (dipx_store_msg_get (txn, s1, &r), 0);
    assert_int_equal (r.state, DIPX_MSG_DEAD);
    assert_int_equal (r.count, 2);
    s_assert_msg (&r, s1, &m1, T0); /* the envelope is kept */
    dipx_idrec_t ir;
    assert_int_equal (dipx_store_id_get (txn, m1.env.h.id, &ir), 0);
    assert_int_equal (ir.state, DIPX_MSG_DEAD);
    assert_int_equal (dipx_store_queue_next (txn, RCPT, 0, &r), 0);
    assert_int_equal (r.seq, s2);
    s_assert_stat (txn, RCPT, 1, m2.len);
    assert_int_equal (dipx_store_expired_next (txn, UINT64_MAX, &r), 0);
    assert_int_equal (r.seq, s2);
    uint64_t at = 0, code = 0;
    char reason[DIPX_MAX_REASON + 1];
    memset (&r, 0, sizeof r);
    assert_int_equal (dipx_store_dead_next (txn, 0, &r, &at, &code, reason), 0);
    s_assert_msg (&r, s1, &m1, T0);
    assert_int_equal (at, T0 + 5);
    assert_int_equal (code, (uint64_t) -DIPX_E_UNDELIVERED); /* stored as the wire code */
    assert_string_equal (reason, "not acknowledged after 2 deliveries");
    assert_int_equal (dipx_store_dead_next (txn, s1, &r, &at, &code, reason), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_dead_next (txn, UINT64_MAX, &r, &at, &code, reason),
                      DIPX_E_NOT_FOUND);
    dipx_store_abort (&txn);

    txn = s_begin (fx->store);
    /* Only a queued message can be delivered, acknowledged or dead-lettered;
       only a dead one redriven.  */
    assert_int_equal (dipx_store_msg_dead (txn, s1, T0, DIPX_E_EXPIRED, "again"), DIPX_E_STATE);
    assert_int_equal (dipx_store_msg_acked (txn, s1), DIPX_E_STATE);
    assert_int_equal (dipx_store_msg_delivered (txn, s1, T0, &count), DIPX_E_STATE);
    assert_int_equal (dipx_store_msg_redrive (txn, s2), DIPX_E_STATE);
    assert_int_equal (dipx_store_msg_redrive (txn, 77), DIPX_E_NOT_FOUND);
    /* A reason longer than a record holds is cut, not overrun.  */
    char longr[400];
    memset (longr, 'r', sizeof longr - 1);
    longr[sizeof longr - 1] = 0;
    assert_int_equal (dipx_store_msg_dead (txn, s2, T0 + 6, DIPX_E_EXPIRED, longr), 0);
    s_assert_stat (txn, RCPT, 0, 0);
    assert_int_equal (dipx_store_dead_next (txn, s1, &r, &at, &code, reason), 0);
    assert_int_equal (r.seq, s2);
    assert_int_equal (strlen (reason), 255);
    assert_int_equal (code, (uint64_t) -DIPX_E_EXPIRED);
    /* Redrive: back in the queue with its count reset, and the redrive
       epoch (how a running broker learns of it) moves on.  */
    assert_int_equal (dipx_store_redrive_epoch (txn), 0);
    assert_int_equal (dipx_store_msg_redrive (txn, s1), 0);
    assert_int_equal (dipx_store_msg_redrive (txn, s1), DIPX_E_STATE);
    uint64_t epoch = dipx_store_redrive_epoch (txn);
    assert_true (epoch > 0);
    s_commit (&txn);

    txn = s_begin_read (fx->store);
    assert_int_equal (dipx_store_redrive_epoch (txn), epoch);
    assert_int_equal (dipx_store_msg_get (txn, s1, &r), 0);
    assert_int_equal (r.state, DIPX_MSG_QUEUED);
    assert_int_equal (r.count, 0);
    assert_int_equal (r.delivered_at, 0);
    s_assert_msg (&r, s1, &m1, T0);
    assert_int_equal (dipx_store_queue_next (txn, RCPT, 0, &r), 0);
    assert_int_equal (r.seq, s1);
    assert_int_equal (dipx_store_queue_next (txn, RCPT, s1, &r), DIPX_E_NOT_FOUND);
    s_assert_stat (txn, RCPT, 1, m1.len);
    assert_int_equal (dipx_store_id_get (txn, m1.env.h.id, &ir), 0);
    assert_int_equal (ir.state, DIPX_MSG_QUEUED);
    assert_int_equal (dipx_store_dead_next (txn, 0, &r, &at, &code, reason), 0);
    assert_int_equal (r.seq, s2); /* only the other one is left */
    assert_int_equal (dipx_store_expired_next (txn, UINT64_MAX, &r), 0);
    assert_int_equal (r.seq, s1);
    dipx_store_abort (&txn);

    /* And it can be delivered and acknowledged as usual.  */
    txn = s_begin (fx->store);
    assert_int_equal (dipx_store_msg_delivered (txn, s1, T0 + 9, &count), 0);
    assert_int_equal (count, 1);
    assert_int_equal (dipx_store_msg_acked (txn, s1), 0);
    s_commit (&txn);
    s_free (&m1);
    s_free (&m2);
}

static void
test_expiry (void **state)
{
    s_fx_t *fx = *state;
    s_msg_t m1, m2, m3;
    s_make_at (&m1, RCPT, 10, T0, T0 + 1000);
    s_make_at (&m2, "court.southwark", 10, T0, T0 + 500);
    s_make_at (&m3, RCPT, 10, T0, T0 + 2000);
    dipx_txn_t *txn = s_begin (fx->store);
    uint64_t s1 = s_enqueue (txn, &m1, T0), s2 = s_enqueue (txn, &m2, T0),
             s3 = s_enqueue (txn, &m3, T0);
    dipx_msgrec_t r;
    assert_int_equal (dipx_store_expired_next (txn, 0, &r), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_expired_next (txn, T0, &r), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_expired_next (txn, T0 + 499, &r), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_expired_next (txn, T0 + 500, &r), 0); /* now == expires */
    assert_int_equal (r.seq, s2);
    assert_int_equal (dipx_store_expired_next (txn, T0 + 1500, &r), 0); /* earliest first */
    assert_int_equal (r.seq, s2);
    s_assert_msg (&r, s2, &m2, T0);
    assert_int_equal (dipx_store_msg_dead (txn, s2, T0 + 500, DIPX_E_EXPIRED, "expired"), 0);
    assert_int_equal (dipx_store_expired_next (txn, T0 + 999, &r), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_expired_next (txn, T0 + 1500, &r), 0);
    assert_int_equal (r.seq, s1);
    assert_int_equal (dipx_store_msg_acked (txn, s1), 0);
    assert_int_equal (dipx_store_expired_next (txn, T0 + 1999, &r), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_expired_next (txn, UINT64_MAX, &r), 0);
    assert_int_equal (r.seq, s3);
    s_commit (&txn);
    s_free (&m1);
    s_free (&m2);
    s_free (&m3);
}

/*  Tests: audit ------------------------------------------------------------*/

typedef struct {
    dipx_audit_t recs[8]; /* records seen */
    size_t n;             /* how many */
    int stop_at;          /* return 1 at this record (1-based), 0 never */
} s_seen_t;

static int
s_collect (const dipx_audit_t *rec, void *arg)
{
    s_seen_t *seen = arg;
    assert_true (seen->n < 8);
    memcpy (&seen->recs[seen->n++], rec, sizeof *rec); /* padding too: compared bytewise */
    return seen->stop_at && (int) seen->n == seen->stop_at ? 1 : 0;
}

static void
test_audit (void **state)
{
    s_fx_t *fx = *state;
    s_msg_t m1, m2;
    s_make (&m1, RCPT, 10);
    s_make (&m2, RCPT, 10);
    dipx_audit_t recs[6];
    dipx_audit_init (&recs[0], DIPX_AUDIT_STARTED, T0);
    dipx_audit_set_reason (&recs[0], "registry 10 agencies, policy 16 rules");
    dipx_audit_init (&recs[1], DIPX_AUDIT_ACCEPTED, T0 + 1);
    dipx_audit_set_header (&recs[1], &m1.env.h);
    recs[1].msg_seq = 1;
    recs[1].present |= DIPX_AU_MSG_SEQ;
    dipx_audit_init (&recs[2], DIPX_AUDIT_ACCEPTED, T0 + 2);
    dipx_audit_set_header (&recs[2], &m2.env.h);
    dipx_audit_init (&recs[3], DIPX_AUDIT_DELIVERED, T0 + 3);
    memcpy (recs[3].id, m1.env.h.id, DIPX_ID_BYTES);
    recs[3].count = 1;
    recs[3].present |= DIPX_AU_ID | DIPX_AU_COUNT;
    dipx_audit_init (&recs[4], DIPX_AUDIT_ACKED, T0 + 4);
    memcpy (recs[4].id, m1.env.h.id, DIPX_ID_BYTES);
    strcpy (recs[4].by, RCPT);
    randombytes_buf (recs[4].sig, sizeof recs[4].sig);
    recs[4].sig_at = T0 + 3;
    recs[4].present |= DIPX_AU_ID | DIPX_AU_BY | DIPX_AU_SIG | DIPX_AU_SIG_AT;
    dipx_audit_init (&recs[5], DIPX_AUDIT_AUTH_REFUSED, T0 + 5);
    strcpy (recs[5].key, "0123456789abcdef");
    strcpy (recs[5].peer, "192.0.2.7");
    recs[5].code = 109;
    recs[5].present |= DIPX_AU_KEY | DIPX_AU_PEER | DIPX_AU_CODE;

    dipx_txn_t *txn = s_begin (fx->store);
    for (int i = 0; i < 6; i++) {
        assert_int_equal (dipx_store_audit (txn, &recs[i]), 0);
        assert_int_equal (recs[i].seq, (uint64_t) i + 1); /* consecutive, from 1 */
        assert_int_equal (dipx_store_audit_last (txn), (uint64_t) i + 1);
    }
    /* A record the schema refuses is not written and takes no number.  */
    dipx_audit_t bad;
    dipx_audit_init (&bad, DIPX_AUDIT_COUNT, T0);
    assert_int_not_equal (dipx_store_audit (txn, &bad), 0);
    assert_int_equal (dipx_store_audit_last (txn), 6);
    s_commit (&txn);

    txn = s_begin_read (fx->store);
    assert_int_equal (dipx_store_audit_last (txn), 6);
    for (int i = 0; i < 6; i++) {
        dipx_audit_t back;
        assert_int_equal (dipx_store_audit_get (txn, (uint64_t) i + 1, &back), 0);
        assert_memory_equal (&back, &recs[i], sizeof back);
    }
    dipx_audit_t back;
    assert_int_equal (dipx_store_audit_get (txn, 0, &back), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_audit_get (txn, 7, &back), DIPX_E_NOT_FOUND);

    /* By message id: that message's records only, oldest first.  */
    s_seen_t seen = {.n = 0};
    assert_int_equal (dipx_store_audit_for_id (txn, m1.env.h.id, 100, s_collect, &seen), 0);
    assert_int_equal (seen.n, 3);
    assert_int_equal (seen.recs[0].seq, 2);
    assert_int_equal (seen.recs[1].seq, 4);
    assert_int_equal (seen.recs[2].seq, 5);
    assert_memory_equal (&seen.recs[2], &recs[4], sizeof recs[4]);
    memset (&seen, 0, sizeof seen);
    assert_int_equal (dipx_store_audit_for_id (txn, m2.env.h.id, 100, s_collect, &seen), 0);
    assert_int_equal (seen.n, 1);
    assert_int_equal (seen.recs[0].seq, 3);
    /* At most max; a non-zero return from fn stops the walk and is returned.  */
    memset (&seen, 0, sizeof seen);
    assert_int_equal (dipx_store_audit_for_id (txn, m1.env.h.id, 2, s_collect, &seen), 0);
    assert_int_equal (seen.n, 2);
    memset (&seen, 0, sizeof seen);
    seen.stop_at = 1;
    assert_int_equal (dipx_store_audit_for_id (txn, m1.env.h.id, 100, s_collect, &seen), 1);
    assert_int_equal (seen.n, 1);
    memset (&seen, 0, sizeof seen);
    uint8_t other[DIPX_ID_BYTES];
    randombytes_buf (other, sizeof other);
    assert_int_equal (dipx_store_audit_for_id (txn, other, 100, s_collect, &seen), 0);
    assert_int_equal (seen.n, 0);
    uint8_t ff[DIPX_ID_BYTES];
    memset (ff, 0xff, sizeof ff);
    assert_int_equal (dipx_store_audit_for_id (txn, ff, 100, s_collect, &seen), 0);
    assert_int_equal (seen.n, 0);
    dipx_store_abort (&txn);

    /* The numbering goes on in the next transaction.  */
    txn = s_begin (fx->store);
    dipx_audit_t more;
    dipx_audit_init (&more, DIPX_AUDIT_EXPIRED, T0 + 9);
    memcpy (more.id, m1.env.h.id, DIPX_ID_BYTES);
    more.present |= DIPX_AU_ID;
    assert_int_equal (dipx_store_audit (txn, &more), 0);
    assert_int_equal (more.seq, 7);
    s_commit (&txn);
    txn = s_begin_read (fx->store);
    memset (&seen, 0, sizeof seen);
    assert_int_equal (dipx_store_audit_for_id (txn, m1.env.h.id, 100, s_collect, &seen), 0);
    assert_int_equal (seen.n, 4);
    assert_int_equal (seen.recs[3].seq, 7);
    dipx_store_abort (&txn);
    s_free (&m1);
    s_free (&m2);
}

/*  A stored message's history is indexed by its seq (aud_seq), records about
    an id alone (a refusal) by the id (aud_id); dipx_store_audit_for_id
    merges the two in audit order. An ack keeps the state (ACKED) without
    rewriting the ids record.  */
static void
test_audit_by_seq (void **state)
{
    s_fx_t *fx = *state;
    s_msg_t m;
    s_make (&m, RCPT, 10);
    dipx_txn_t *txn = s_begin (fx->store);
    dipx_audit_t refused;
    dipx_audit_init (&refused, DIPX_AUDIT_REFUSED, T0);
    dipx_audit_set_header (&refused, &m.env.h); /* id, no seq: before it was stored */
    assert_int_equal (dipx_store_audit (txn, &refused), 0);
    uint64_t seq = s_enqueue (txn, &m, T0 + 1);
    dipx_audit_t acc;
    dipx_audit_init (&acc, DIPX_AUDIT_ACCEPTED, T0 + 1);
    dipx_audit_set_header (&acc, &m.env.h);
    acc.msg_seq = seq;
    acc.present |= DIPX_AU_MSG_SEQ;
    assert_int_equal (dipx_store_audit (txn, &acc), 0);
    s_commit (&txn);

    txn = s_begin (fx->store);
    uint32_t count;
    assert_int_equal (dipx_store_msg_delivered (txn, seq, T0 + 2, &count), 0);
    dipx_audit_t del;
    dipx_audit_init (&del, DIPX_AUDIT_DELIVERED, T0 + 2);
    dipx_audit_set_header (&del, &m.env.h);
    del.msg_seq = seq;
    del.count = 1;
    del.present |= DIPX_AU_MSG_SEQ | DIPX_AU_COUNT;
    assert_int_equal (dipx_store_audit (txn, &del), 0);
    dipx_audit_t other; /* an id-only record after the seq-indexed ones */
    dipx_audit_init (&other, DIPX_AUDIT_REFUSED, T0 + 3);
    memcpy (other.id, m.env.h.id, DIPX_ID_BYTES);
    other.present |= DIPX_AU_ID;
    assert_int_equal (dipx_store_audit (txn, &other), 0);
    assert_int_equal (dipx_store_msg_acked (txn, seq), 0);
    dipx_audit_t ack;
    dipx_audit_init (&ack, DIPX_AUDIT_ACKED, T0 + 4);
    memcpy (ack.id, m.env.h.id, DIPX_ID_BYTES);
    ack.msg_seq = seq;
    ack.count = 1;
    ack.present |= DIPX_AU_ID | DIPX_AU_MSG_SEQ | DIPX_AU_COUNT;
    assert_int_equal (dipx_store_audit (txn, &ack), 0);
    s_commit (&txn);

    txn = s_begin_read (fx->store);
    s_seen_t seen = {.n = 0};
    assert_int_equal (dipx_store_audit_for_id (txn, m.env.h.id, 100, s_collect, &seen), 0);
    assert_int_equal (seen.n, 5);
    uint64_t want[5] = {refused.seq, acc.seq, del.seq, other.seq, ack.seq};
    for (int i = 0; i < 5; i++)
        assert_int_equal (seen.recs[i].seq, want[i]);
    memset (&seen, 0, sizeof seen);
    assert_int_equal (dipx_store_audit_for_id (txn, m.env.h.id, 3, s_collect, &seen), 0);
    assert_int_equal (seen.n, 3);
    dipx_idrec_t ir;
    assert_int_equal (dipx_store_id_get (txn, m.env.h.id, &ir), 0);
    assert_int_equal (ir.state, DIPX_MSG_ACKED);
    assert_int_equal (ir.seq, seq);
    dipx_msgrec_t r;
    assert_int_equal (dipx_store_msg_get (txn, seq, &r), DIPX_E_NOT_FOUND);
    dipx_store_abort (&txn);
    s_free (&m);
}

/*  Subject queries against what the test itself knows each record is about:
    stored messages (ACCEPTED, then DELIVERED, ACKED and id-only records
    about them, spread over many transactions), refusals about a subject,
    and records about no subject, for a few subjects interleaved. Every page
    size must give the same records, in audit order, exactly once.  */
#define S_SUBJECTS 4
#define S_SUBJ_MSGS 120

typedef struct {
    uint64_t seqs[4 * S_SUBJ_MSGS + 64]; /* seqs seen, in order */
    size_t n;                            /* how many */
    uint8_t subj[DIPX_SUBJ_BYTES];       /* the subject queried */
} s_subj_seen_t;

static int
s_subj_collect (const dipx_audit_t *rec, void *arg)
{
    s_subj_seen_t *seen = arg;
    assert_true (seen->n < sizeof seen->seqs / sizeof seen->seqs[0]);
    seen->seqs[seen->n++] = rec->seq;
    return 0;
}

/*  Writes rec: event at `at` with a header's routing facts, and the
    message's seq unless 0.  */
static void
s_put (dipx_txn_t *txn, dipx_audit_t *rec, int event, uint64_t at, const dipx_header_t *h,
       uint64_t msg_seq)
{
    dipx_audit_init (rec, event, at);
    dipx_audit_set_header (rec, h);
    if (msg_seq) {
        rec->msg_seq = msg_seq;
        rec->present |= DIPX_AU_MSG_SEQ;
    }
    assert_int_equal (dipx_store_audit (txn, rec), 0);
}

/*  Writes rec: event at `at` with only a message's id and seq (as an ACK's
    record has: no subject).  */
static void
s_put_id (dipx_txn_t *txn, dipx_audit_t *rec, int event, uint64_t at, const uint8_t *id,
          uint64_t msg_seq)
{
    dipx_audit_init (rec, event, at);
    memcpy (rec->id, id, DIPX_ID_BYTES);
    rec->msg_seq = msg_seq;
    rec->present |= DIPX_AU_ID | DIPX_AU_MSG_SEQ;
    assert_int_equal (dipx_store_audit (txn, rec), 0);
}

/*  Every record about subj, asked for page records at a time, each page
    after the last seq of the one before, until a page is not full.  */
static void
s_subject_pages (dipx_txn_t *txn, const uint8_t *subj, size_t page, s_subj_seen_t *out)
{
    uint64_t after = 0;
    size_t before;
    do {
        before = out->n;
        assert_int_equal (
            dipx_store_audit_for_subject (txn, subj, after, page, s_subj_collect, out), 0);
        assert_true (out->n - before <= page);
        if (out->n)
            after = out->seqs[out->n - 1];
    } while (out->n - before == page);
}

/*  Writes rec and notes, in about[], which subject (index, or -1) it is about.  */
static void
s_audit_about (dipx_txn_t *txn, dipx_audit_t *rec, int subject, int *about, size_t cap)
{
    assert_int_equal (dipx_store_audit (txn, rec), 0);
    assert_true (rec->seq < cap);
    about[rec->seq] = subject;
}

static void
test_audit_by_subject (void **state)
{
    s_fx_t *fx = *state;
    uint8_t subj[S_SUBJECTS][DIPX_SUBJ_BYTES];
    randombytes_buf (subj, sizeof subj);
    static s_msg_t msgs[S_SUBJ_MSGS];
    uint64_t seqs[S_SUBJ_MSGS];
    int owner[S_SUBJ_MSGS];
    bool queued[S_SUBJ_MSGS];
    enum { CAP = 8 * S_SUBJ_MSGS };
    static int about[CAP];
    memset (about, 0xff, sizeof about);

    for (int round = 0; round < 12; round++) {
        dipx_txn_t *txn = s_begin (fx->store);
        for (int j = 0; j < S_SUBJ_MSGS / 12; j++) {
            int i = round * (S_SUBJ_MSGS / 12) + j, who = (int) randombytes_uniform (S_SUBJECTS);
            s_make_full (&msgs[i], RCPT, 10, T0, T0 + HOUR, subj[who]);
            owner[i] = who;
            dipx_audit_t rec;
            if (randombytes_uniform (5) == 0) { /* a refusal: never stored */
                dipx_audit_init (&rec, DIPX_AUDIT_REFUSED, T0 + 1);
                dipx_audit_set_header (&rec, &msgs[i].env.h);
                s_audit_about (txn, &rec, who, about, CAP);
                queued[i] = false;
                seqs[i] = 0;
                continue;
            }
            seqs[i] = s_enqueue (txn, &msgs[i], T0 + 1);
            queued[i] = true;
            dipx_audit_init (&rec, DIPX_AUDIT_ACCEPTED, T0 + 1);
            dipx_audit_set_header (&rec, &msgs[i].env.h);
            rec.msg_seq = seqs[i];
            rec.present |= DIPX_AU_MSG_SEQ;
            s_audit_about (txn, &rec, who, about, CAP);
        }
        /* Later events for messages of this and earlier rounds.  */
        for (int e = 0; e < 12; e++) {
            int i = (int) randombytes_uniform ((uint32_t) (round + 1) * (S_SUBJ_MSGS / 12));
            if (!queued[i])
                continue;
            dipx_audit_t rec;
            if (randombytes_uniform (3) == 0) {
                assert_int_equal (dipx_store_msg_acked (txn, seqs[i]), 0);
                queued[i] = false;
                dipx_audit_init (&rec, DIPX_AUDIT_ACKED, T0 + 3);
                memcpy (rec.id, msgs[i].env.h.id, DIPX_ID_BYTES);
                rec.msg_seq = seqs[i];
                rec.present |= DIPX_AU_ID | DIPX_AU_MSG_SEQ;
            } else {
                uint32_t count;
                assert_int_equal (dipx_store_msg_delivered (txn, seqs[i], T0 + 2, &count), 0);
                dipx_audit_init (&rec, DIPX_AUDIT_DELIVERED, T0 + 2);
                dipx_audit_set_header (&rec, &msgs[i].env.h);
                rec.msg_seq = seqs[i];
                rec.count = count;
                rec.present |= DIPX_AU_MSG_SEQ | DIPX_AU_COUNT;
            }
            s_audit_about (txn, &rec, owner[i], about, CAP);
        }
        dipx_audit_t sess; /* about no subject */
        dipx_audit_init (&sess, DIPX_AUDIT_SESSION, T0 + 4);
        strcpy (sess.by, RCPT);
        sess.present |= DIPX_AU_BY;
        s_audit_about (txn, &sess, -1, about, CAP);
        s_commit (&txn);
    }

    /* The prefetch (a hint, on a pool's threads, each in its own read
       transaction) reads without error and changes no answer.  */
    dipx_pool_t *pool = dipx_pool_new (2);
    assert_non_null (pool);
    for (int who = 0; who < S_SUBJECTS; who++)
        assert_int_equal (dipx_store_prefetch_subject (fx->store, subj[who], pool), 0);
    /* Not while the caller, which takes part, holds a read transaction.  */
    dipx_txn_t *held = s_begin_read (fx->store);
    assert_int_not_equal (dipx_store_prefetch_subject (fx->store, subj[0], pool), 0);
    dipx_store_abort (&held);
    dipx_pool_destroy (&pool);

    dipx_txn_t *txn = s_begin_read (fx->store);
    uint64_t last = dipx_store_audit_last (txn);
    for (int who = 0; who < S_SUBJECTS; who++) {
        s_subj_seen_t want = {.n = 0};
        for (uint64_t q = 1; q <= last; q++)
            if (about[q] == who)
                want.seqs[want.n++] = q;
        assert_true (want.n > 0);
        for (size_t page = 1; page <= 9; page += 2) {
            s_subj_seen_t got = {.n = 0};
            s_subject_pages (txn, subj[who], page, &got);
            assert_int_equal (got.n, want.n);
            assert_memory_equal (got.seqs, want.seqs, want.n * sizeof want.seqs[0]);
        }
    }
    /* A subject with no records, the bounds on max, and fn's stop.  */
    s_subj_seen_t got = {.n = 0};
    uint8_t none[DIPX_SUBJ_BYTES];
    randombytes_buf (none, sizeof none);
    assert_int_equal (dipx_store_audit_for_subject (txn, none, 0, 100, s_subj_collect, &got), 0);
    assert_int_equal (got.n, 0);
    memset (none, 0xff, sizeof none);
    assert_int_equal (dipx_store_audit_for_subject (txn, none, 0, 100, s_subj_collect, &got), 0);
    assert_int_equal (got.n, 0);
    assert_int_equal (dipx_store_audit_for_subject (txn, subj[0], 0, 0, s_subj_collect, &got), 0);
    assert_int_equal (got.n, 0);
    assert_int_equal (dipx_store_audit_for_subject (txn, subj[0], 0, DIPX_AUDIT_PAGE_MAX + 1,
                                                    s_subj_collect, &got),
                      DIPX_E_INVAL);
    s_seen_t seen = {.stop_at = 2};
    assert_int_equal (dipx_store_audit_for_subject (txn, subj[0], 0, 100, s_collect, &seen), 1);
    assert_int_equal (seen.n, 2);
    dipx_store_abort (&txn);
    for (int i = 0; i < S_SUBJ_MSGS; i++)
        s_free (&msgs[i]);
}

/*  A message accepted before aud_seq existed has its whole history under
    its id (aud_id), and the records that carry its subject in aud_sub: a
    subject query finds the rest (an ACKED record carries no subject)
    through the id, but not a refusal of another subject's envelope under
    the same id. Such records are written here without an ids record, as an
    old broker's look to this one.  */
static void
test_audit_by_subject_old (void **state)
{
    s_fx_t *fx = *state;
    uint8_t subj[DIPX_SUBJ_BYTES], other[DIPX_SUBJ_BYTES];
    randombytes_buf (subj, sizeof subj);
    randombytes_buf (other, sizeof other);
    s_msg_t m, clash;
    s_make_full (&m, RCPT, 10, T0, T0 + HOUR, subj);
    s_make_full (&clash, RCPT, 10, T0, T0 + HOUR, other);
    memcpy (clash.env.h.id, m.env.h.id, DIPX_ID_BYTES); /* the decoded header only */
    dipx_txn_t *txn = s_begin (fx->store);
    dipx_audit_t acc, del, refused, ack;
    s_put (txn, &acc, DIPX_AUDIT_ACCEPTED, T0, &m.env.h, 777);
    s_put (txn, &del, DIPX_AUDIT_DELIVERED, T0 + 1, &m.env.h, 777);
    s_put (txn, &refused, DIPX_AUDIT_REFUSED, T0 + 2, &clash.env.h, 0);
    s_put_id (txn, &ack, DIPX_AUDIT_ACKED, T0 + 3, m.env.h.id, 777);
    s_commit (&txn);

    txn = s_begin_read (fx->store);
    for (size_t page = 1; page <= 4; page++) {
        s_subj_seen_t got = {.n = 0};
        s_subject_pages (txn, subj, page, &got);
        assert_int_equal (got.n, 3);
        assert_int_equal (got.seqs[0], acc.seq);
        assert_int_equal (got.seqs[1], del.seq);
        assert_int_equal (got.seqs[2], ack.seq);
    }
    s_subj_seen_t got = {.n = 0};
    assert_int_equal (dipx_store_audit_for_subject (txn, other, 0, 10, s_subj_collect, &got), 0);
    assert_int_equal (got.n, 1);
    assert_int_equal (got.seqs[0], refused.seq);
    /* Nothing comes after the last possible seq.  */
    got.n = 0;
    assert_int_equal (
        dipx_store_audit_for_subject (txn, subj, UINT64_MAX, 10, s_subj_collect, &got), 0);
    assert_int_equal (got.n, 0);
    dipx_store_abort (&txn);

    /* A message whose history spans the upgrade: accepted (and once
       undeliverable) by the old broker, delivered and acknowledged by this
       one, whose records go to aud_seq. The store is new, so the message
       will get seq 1.  */
    uint8_t third[DIPX_SUBJ_BYTES];
    randombytes_buf (third, sizeof third);
    s_msg_t mixed;
    s_make_full (&mixed, RCPT, 10, T0, T0 + HOUR, third);
    txn = s_begin (fx->store);
    dipx_audit_t macc, miss, mdel, mack;
    s_put (txn, &macc, DIPX_AUDIT_ACCEPTED, T0 + 4, &mixed.env.h, 1);
    s_put_id (txn, &miss, DIPX_AUDIT_UNDELIVERABLE, T0 + 5, mixed.env.h.id, 1);
    assert_int_equal (s_enqueue (txn, &mixed, T0 + 6), 1);
    s_put (txn, &mdel, DIPX_AUDIT_DELIVERED, T0 + 6, &mixed.env.h, 1);
    s_put_id (txn, &mack, DIPX_AUDIT_ACKED, T0 + 7, mixed.env.h.id, 1);
    s_commit (&txn);
    txn = s_begin_read (fx->store);
    for (size_t page = 1; page <= 5; page++) {
        s_subj_seen_t all = {.n = 0};
        s_subject_pages (txn, third, page, &all);
        assert_int_equal (all.n, 4);
        uint64_t want[4] = {macc.seq, miss.seq, mdel.seq, mack.seq};
        assert_memory_equal (all.seqs, want, sizeof want);
    }
    dipx_store_abort (&txn);
    s_free (&m);
    s_free (&clash);
    s_free (&mixed);
}

/*  Tests: transactions and durability -------------------------------------*/

static void
test_reopen (void **state)
{
    s_fx_t *fx = *state;
    s_msg_t m1, m2, m3;
    s_make (&m1, RCPT, 1000);
    s_make (&m2, "court.southwark", 1000);
    s_make (&m3, RCPT, 1000);
    dipx_txn_t *txn = s_begin (fx->store);
    uint64_t s1 = s_enqueue (txn, &m1, T0), s2 = s_enqueue (txn, &m2, T0);
    uint32_t count;
    assert_int_equal (dipx_store_msg_delivered (txn, s1, T0 + 1, &count), 0);
    dipx_audit_t rec;
    dipx_audit_init (&rec, DIPX_AUDIT_ACCEPTED, T0);
    dipx_audit_set_header (&rec, &m1.env.h);
    assert_int_equal (dipx_store_audit (txn, &rec), 0);
    s_commit (&txn);
    dipx_store_destroy (&fx->store);
    assert_null (fx->store);
    dipx_store_destroy (&fx->store); /* accepts NULL */
    dipx_store_destroy (NULL);

    /* Read-only: everything is there, and nothing can be written.  */
    assert_int_equal (
        dipx_store_open (fx->dir, 16 * MIB, 64 * MIB, DIPX_STORE_READONLY, &fx->store), 0);
    txn = NULL;
    assert_int_equal (dipx_store_begin (fx->store, &txn), DIPX_E_STATE);
    assert_null (txn);
    txn = s_begin_read (fx->store);
    dipx_msgrec_t r;
    assert_int_equal (dipx_store_queue_next (txn, RCPT, 0, &r), 0);
    s_assert_msg (&r, s1, &m1, T0);
    assert_int_equal (r.count, 1);
    assert_int_equal (dipx_store_audit_last (txn), 1);
    dipx_store_abort (&txn);
    dipx_store_destroy (&fx->store);

    /* Read-write again, with a smaller map than the data would like: the
       numbering goes on where it stopped.  */
    assert_int_equal (dipx_store_open (fx->dir, 1 * MIB, 64 * MIB, 0, &fx->store), 0);
    txn = s_begin (fx->store);
    assert_int_equal (dipx_store_msg_get (txn, s2, &r), 0);
    s_assert_msg (&r, s2, &m2, T0);
    s_assert_stat (txn, RCPT, 1, m1.len);
    s_assert_stat (txn, "court.southwark", 1, m2.len);
    dipx_idrec_t ir;
    assert_int_equal (dipx_store_id_get (txn, m1.env.h.id, &ir), 0);
    assert_memory_equal (ir.digest, m1.digest, sizeof ir.digest);
    assert_int_equal (s_enqueue (txn, &m3, T0), 3);
    dipx_audit_init (&rec, DIPX_AUDIT_ACCEPTED, T0);
    assert_int_equal (dipx_store_audit (txn, &rec), 0);
    assert_int_equal (rec.seq, 2);
    s_commit (&txn);
    s_free (&m1);
    s_free (&m2);
    s_free (&m3);
}

static void
test_open_errors (void **state)
{
    s_fx_t *fx = *state;
    dipx_store_t *st = (dipx_store_t *) 1;
    /* Read-only never creates.  */
    assert_int_equal (dipx_store_open (fx->sub, MIB, MIB, DIPX_STORE_READONLY, &st), DIPX_E_IO);
    assert_null (st);
    /* A directory that cannot be made.  */
    char path[400];
    snprintf (path, sizeof path, "%s/no/such/dir", fx->dir);
    st = (dipx_store_t *) 1;
    assert_int_not_equal (dipx_store_open (path, MIB, MIB, 0, &st), 0);
    assert_null (st);
    /* One write transaction at a time.  */
    dipx_txn_t *t1 = s_begin (fx->store), *t2 = (dipx_txn_t *) 1;
    assert_int_equal (dipx_store_begin (fx->store, &t2), DIPX_E_STATE);
    assert_null (t2);
    dipx_store_abort (&t1);
    t1 = s_begin (fx->store); /* the abort released it */
    s_commit (&t1);
    dipx_store_abort (NULL);
    dipx_store_abort (&t1);
}

static void
test_abort (void **state)
{
    s_fx_t *fx = *state;
    s_msg_t m1, m2, m3;
    s_make (&m1, RCPT, 100);
    s_make (&m2, RCPT, 100);
    s_make (&m3, RCPT, 100);
    dipx_txn_t *txn = s_begin (fx->store);
    uint64_t s1 = s_enqueue (txn, &m1, T0);
    dipx_audit_t rec;
    dipx_audit_init (&rec, DIPX_AUDIT_ACCEPTED, T0);
    dipx_audit_set_header (&rec, &m1.env.h);
    assert_int_equal (dipx_store_audit (txn, &rec), 0);
    s_commit (&txn);

    txn = s_begin (fx->store);
    assert_int_equal (s_enqueue (txn, &m2, T0), 2);
    uint32_t count;
    assert_int_equal (dipx_store_msg_delivered (txn, s1, T0 + 1, &count), 0);
    dipx_audit_init (&rec, DIPX_AUDIT_ACCEPTED, T0);
    dipx_audit_set_header (&rec, &m2.env.h);
    assert_int_equal (dipx_store_audit (txn, &rec), 0);
    assert_int_equal (rec.seq, 2);
    assert_int_equal (dipx_store_msg_acked (txn, s1), 0);
    dipx_store_abort (&txn);
    assert_null (txn);

    txn = s_begin_read (fx->store);
    dipx_idrec_t ir;
    assert_int_equal (dipx_store_id_get (txn, m2.env.h.id, &ir), DIPX_E_NOT_FOUND);
    dipx_msgrec_t r;
    assert_int_equal (dipx_store_msg_get (txn, s1, &r), 0);
    assert_int_equal (r.count, 0);
    assert_int_equal (r.state, DIPX_MSG_QUEUED);
    assert_int_equal (dipx_store_msg_get (txn, 2, &r), DIPX_E_NOT_FOUND);
    s_assert_stat (txn, RCPT, 1, m1.len);
    assert_int_equal (dipx_store_audit_last (txn), 1);
    dipx_audit_t back;
    assert_int_equal (dipx_store_audit_get (txn, 2, &back), DIPX_E_NOT_FOUND);
    s_seen_t seen = {.n = 0};
    assert_int_equal (dipx_store_audit_for_id (txn, m2.env.h.id, 100, s_collect, &seen), 0);
    assert_int_equal (seen.n, 0);
    dipx_store_abort (&txn);

    /* The numbers the aborted transaction took are given again.  */
    txn = s_begin (fx->store);
    assert_int_equal (s_enqueue (txn, &m3, T0), 2);
    dipx_audit_init (&rec, DIPX_AUDIT_ACCEPTED, T0);
    dipx_audit_set_header (&rec, &m3.env.h);
    assert_int_equal (dipx_store_audit (txn, &rec), 0);
    assert_int_equal (rec.seq, 2);
    s_commit (&txn);
    s_free (&m1);
    s_free (&m2);
    s_free (&m3);
}

/*  Tests: a full map ------------------------------------------------------*/

#define BIG (100u * 1024u) /* body bytes of the envelopes that fill the map */

/*  A store whose 1 MiB map may not grow is filled, three 100 KB envelopes
    (with their audit records) per transaction, until an operation or the
    commit says DIPX_E_STORAGE_FULL. Nothing of that transaction may remain;
    what was committed before must be intact; and once messages are
    acknowledged (deleted) there is room again.  */
static void
test_map_full (void **state)
{
    s_fx_t *fx = *state;
    dipx_store_t *st = NULL;
    assert_int_equal (dipx_store_open (fx->sub, MIB, MIB, 0, &st), 0);
    enum { MAXMSG = 60 };
    s_msg_t msgs[MAXMSG];
    uint64_t seqs[MAXMSG];
    size_t committed = 0, made = 0;
    uint64_t bytes = 0;
    int rc = 0;
    bool in_op = false;
    while (rc == 0) {
        assert_true (made + 3 <= MAXMSG); /* 1 MiB cannot hold 20 of them */
        dipx_txn_t *txn = s_begin (st);
        size_t first = made;
        for (int j = 0; j < 3 && rc == 0; j++) {
            s_msg_t *m = &msgs[made++];
            s_make (m, RCPT, BIG);
            uint64_t seq;
            rc = dipx_store_enqueue (txn, &m->env, m->raw, m->len, m->digest, T0, &seq);
            if (rc == 0) {
                assert_int_equal (seq, committed + (made - first));
                seqs[made - 1] = seq;
                dipx_audit_t rec;
                dipx_audit_init (&rec, DIPX_AUDIT_ACCEPTED, T0);
                dipx_audit_set_header (&rec, &m->env.h);
                rec.msg_seq = seq;
                rec.present |= DIPX_AU_MSG_SEQ;
                rc = dipx_store_audit (txn, &rec);
            }
        }
        if (rc) {
            in_op = true;
            dipx_store_abort (&txn);
        } else
            rc = dipx_store_commit (&txn);
        assert_null (txn);
        if (rc == 0) {
            committed = made;
            for (size_t i = first; i < made; i++)
                bytes += msgs[i].len;
        }
    }
    if (rc != DIPX_E_STORAGE_FULL)
        print_error ("filling the map ended with %s\n", dipx_strerror (rc));
    assert_int_equal (rc, DIPX_E_STORAGE_FULL);
    assert_true (committed >= 3);
    print_message ("map full after %zu messages (%s)\n", committed,
                   in_op ? "in an operation" : "at commit");

    /* Nothing of the failed transaction is visible; all before it is.  */
    dipx_txn_t *txn = s_begin_read (st);
    for (size_t i = committed; i < made; i++) {
        dipx_idrec_t ir;
        assert_int_equal (dipx_store_id_get (txn, msgs[i].env.h.id, &ir), DIPX_E_NOT_FOUND);
    }
    s_assert_stat (txn, RCPT, committed, bytes);
    assert_int_equal (dipx_store_audit_last (txn), committed);
    dipx_msgrec_t r;
    uint64_t after = 0;
    for (size_t i = 0; i < committed; i++) {
        assert_int_equal (dipx_store_queue_next (txn, RCPT, after, &r), 0);
        s_assert_msg (&r, seqs[i], &msgs[i], T0);
        after = r.seq;
    }
    assert_int_equal (dipx_store_queue_next (txn, RCPT, after, &r), DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_store_msg_get (txn, committed + 1, &r), DIPX_E_NOT_FOUND);
    dipx_store_abort (&txn);

    /* Acknowledge (delete) half of them, with an audit record each.  */
    txn = s_begin (st);
    for (size_t i = 0; i < committed / 2; i++) {
        assert_int_equal (dipx_store_msg_acked (txn, seqs[i]), 0);
        dipx_audit_t rec;
        dipx_audit_init (&rec, DIPX_AUDIT_ACKED, T0);
        memcpy (rec.id, msgs[i].env.h.id, DIPX_ID_BYTES);
        rec.present |= DIPX_AU_ID;
        assert_int_equal (dipx_store_audit (txn, &rec), 0);
        bytes -= msgs[i].len;
    }
    s_commit (&txn);
    /* LMDB reuses pages freed by a transaction once no snapshot older than
       it is open: an empty write transaction moves past it.  */
    txn = s_begin (st);
    s_commit (&txn);

    /* Now there is room: the refused message goes in, with the next number.  */
    txn = s_begin (st);
    s_msg_t *m = &msgs[committed];
    assert_int_equal (s_enqueue (txn, m, T0), committed + 1);
    s_commit (&txn);
    txn = s_begin_read (st);
    s_assert_stat (txn, RCPT, committed - committed / 2 + 1, bytes + m->len);
    assert_int_equal (dipx_store_queue_next (txn, RCPT, seqs[committed - 1], &r), 0);
    s_assert_msg (&r, committed + 1, m, T0);
    dipx_store_abort (&txn);
    for (size_t i = 0; i < made; i++)
        s_free (&msgs[i]);
    dipx_store_destroy (&st);
}

/*  A store opened with a 1 MiB map that may grow to 64 MiB takes 4 MiB, one
    100 KB envelope per transaction: the map grows before it is full.  */
static void
test_map_grows (void **state)
{
    s_fx_t *fx = *state;
    dipx_store_t *st = NULL;
    assert_int_equal (dipx_store_open (fx->sub, MIB, 64 * MIB, 0, &st), 0);
    enum { N = 40 };
    uint64_t bytes = 0;
    for (int i = 0; i < N; i++) {
        s_msg_t m;
        s_make (&m, RCPT, BIG);
        dipx_txn_t *txn = s_begin (st);
        assert_int_equal (s_enqueue (txn, &m, T0), (uint64_t) i + 1);
        s_commit (&txn);
        bytes += m.len;
        s_free (&m);
    }
    dipx_txn_t *txn = s_begin_read (st);
    s_assert_stat (txn, RCPT, N, bytes);
    dipx_store_abort (&txn);
    dipx_store_destroy (&st);

    /* Reopened with the small map again: it adopts what the data needs.  */
    assert_int_equal (dipx_store_open (fx->sub, MIB, 64 * MIB, 0, &st), 0);
    txn = s_begin (st);
    s_assert_stat (txn, RCPT, N, bytes);
    s_msg_t m;
    s_make (&m, RCPT, BIG);
    assert_int_equal (s_enqueue (txn, &m, T0), N + 1);
    s_commit (&txn);
    s_free (&m);
    dipx_store_destroy (&st);
}

/*  One transaction larger than the free part of the map fails with
    STORAGE_FULL; the map then grows (up to its ceiling) at the next begin,
    so the same work succeeds when it is tried again.  */
static void
test_map_grows_after_full (void **state)
{
    s_fx_t *fx = *state;
    dipx_store_t *st = NULL;
    assert_int_equal (dipx_store_open (fx->sub, MIB, 64 * MIB, 0, &st), 0);
    enum { N = 20 }; /* 2 MiB in one transaction */
    s_msg_t msgs[N];
    for (int i = 0; i < N; i++)
        s_make (&msgs[i], RCPT, BIG);
    int attempts = 0, rc;
    do {
        attempts++;
        dipx_txn_t *txn = s_begin (st);
        rc = 0;
        for (int i = 0; i < N && rc == 0; i++) {
            uint64_t seq;
            rc = dipx_store_enqueue (txn, &msgs[i].env, msgs[i].raw, msgs[i].len,
                                     msgs[i].digest, T0, &seq);
        }
        if (rc)
            dipx_store_abort (&txn);
        else
            rc = dipx_store_commit (&txn);
        assert_true (rc == 0 || rc == DIPX_E_STORAGE_FULL);
    } while (rc && attempts < 6);
    print_message ("2 MiB transaction committed at attempt %d\n", attempts);
    assert_int_equal (rc, 0);
    assert_true (attempts > 1);
    dipx_txn_t *txn = s_begin_read (st);
    uint64_t c, b;
    assert_int_equal (dipx_store_queue_stat (txn, RCPT, &c, &b), 0);
    assert_int_equal (c, N);
    dipx_store_abort (&txn);
    for (int i = 0; i < N; i++)
        s_free (&msgs[i]);
    dipx_store_destroy (&st);
}

/*  Tests: record decoders -------------------------------------------------*/

static void
s_put64 (uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t) v;
}

/*  A valid message record (layout in dipx_store.c) around env.  */
static size_t
s_msg_record (uint8_t *buf, const char *from, const char *to, const uint8_t *env, size_t env_len)
{
    size_t fl = strlen (from), tl = strlen (to);
    memset (buf, 0, 40);
    buf[0] = 1;
    buf[1] = (uint8_t) fl;
    buf[2] = (uint8_t) tl;
    s_put64 (buf + 4, T0);
    s_put64 (buf + 12, T0 + HOUR);
    buf[20] = (uint8_t) (env_len >> 24);
    buf[21] = (uint8_t) (env_len >> 16);
    buf[22] = (uint8_t) (env_len >> 8);
    buf[23] = (uint8_t) env_len;
    memset (buf + 24, 0x11, 16);
    memcpy (buf + 40, from, fl);
    memcpy (buf + 40 + fl, to, tl);
    memcpy (buf + 40 + fl + tl, env, env_len);
    return 40 + fl + tl + env_len;
}

static size_t
s_id_record (uint8_t *buf, int state, const char *from, const char *to)
{
    size_t fl = strlen (from), tl = strlen (to);
    memset (buf, 0, 84);
    buf[0] = 1;
    buf[1] = (uint8_t) state;
    buf[2] = (uint8_t) fl;
    buf[3] = (uint8_t) tl;
    s_put64 (buf + 4, 42);
    s_put64 (buf + 12, T0);
    memset (buf + 20, 0x22, 64);
    memcpy (buf + 84, from, fl);
    memcpy (buf + 84 + fl, to, tl);
    return 84 + fl + tl;
}

/*  Decodes an exact-size heap copy, so ASan sees any overread.  */
static int
s_decode_msg (const uint8_t *buf, size_t len, dipx_msgrec_t *out)
{
    uint8_t *copy = malloc (len ? len : 1);
    assert_non_null (copy);
    memcpy (copy, buf, len);
    int rc = dipx_store_decode_msg (copy, len, out);
    if (rc == 0) {
        assert_true (out->env == copy + len - out->env_len);
        out->env = buf + len - out->env_len;
    }
    free (copy);
    return rc;
}

static int
s_decode_id (const uint8_t *buf, size_t len, dipx_idrec_t *out)
{
    uint8_t *copy = malloc (len ? len : 1);
    assert_non_null (copy);
    memcpy (copy, buf, len);
    int rc = dipx_store_decode_id (copy, len, out);
    free (copy);
    return rc;
}

static int
s_decode_audit (const uint8_t *buf, size_t len, dipx_audit_t *out)
{
    uint8_t *copy = malloc (len ? len : 1);
    assert_non_null (copy);
    memcpy (copy, buf, len);
    int rc = dipx_audit_decode (copy, len, out);
    free (copy);
    return rc;
}

static void
test_decode_msg (void **state)
{
    (void) state;
    static uint8_t buf[40 + 2 * 64 + 256 + 8];
    uint8_t env[256];
    memset (env, 0xee, sizeof env);
    dipx_msgrec_t r;
    size_t len = s_msg_record (buf, SENDER, RCPT, env, sizeof env);
    assert_int_equal (s_decode_msg (buf, len, &r), 0);
    assert_string_equal (r.from, SENDER);
    assert_string_equal (r.to, RCPT);
    assert_int_equal (r.accepted_at, T0);
    assert_int_equal (r.expires, T0 + HOUR);
    assert_int_equal (r.env_len, sizeof env);
    /* Every truncation, and one byte too many.  */
    for (size_t n = 0; n < len; n++)
        assert_int_equal (s_decode_msg (buf, n, &r), DIPX_E_CORRUPT);
    buf[len] = 0;
    assert_int_equal (s_decode_msg (buf, len + 1, &r), DIPX_E_CORRUPT);
    /* Versions other than 1.  */
    for (int v = 0; v < 256; v++) {
        buf[0] = (uint8_t) v;
        assert_int_equal (s_decode_msg (buf, len, &r), v == 1 ? 0 : DIPX_E_CORRUPT);
    }
    buf[0] = 1;
    /* Lengths that do not add up: every value of each length byte.  */
    for (int i = 1; i <= 2; i++)
        for (int v = 0; v < 256; v++) {
            uint8_t save = buf[i];
            buf[i] = (uint8_t) v;
            assert_int_equal (s_decode_msg (buf, len, &r), v == save ? 0 : DIPX_E_CORRUPT);
            buf[i] = save;
        }
    for (int i = 20; i < 24; i++) {
        uint8_t save = buf[i];
        buf[i] = 0xff;
        assert_int_equal (s_decode_msg (buf, len, &r), DIPX_E_CORRUPT);
        buf[i] = save;
    }
    /* An empty envelope; agency ids that are empty, too long or not ids.  */
    len = s_msg_record (buf, SENDER, RCPT, env, 0);
    assert_int_equal (s_decode_msg (buf, len, &r), DIPX_E_CORRUPT);
    len = s_msg_record (buf, "", RCPT, env, 8);
    assert_int_equal (s_decode_msg (buf, len, &r), DIPX_E_CORRUPT);
    len = s_msg_record (buf, SENDER, "", env, 8);
    assert_int_equal (s_decode_msg (buf, len, &r), DIPX_E_CORRUPT);
    char longid[80];
    memset (longid, 'a', 65);
    longid[65] = 0;
    len = s_msg_record (buf, longid, RCPT, env, 8);
    assert_int_equal (s_decode_msg (buf, len, &r), DIPX_E_CORRUPT);
    longid[64] = 0;
    len = s_msg_record (buf, longid, longid, env, 8);
    assert_int_equal (s_decode_msg (buf, len, &r), 0);
    len = s_msg_record (buf, "Police.X", RCPT, env, 8);
    assert_int_equal (s_decode_msg (buf, len, &r), DIPX_E_CORRUPT);
    len = s_msg_record (buf, SENDER, "cjit lambeth", env, 8);
    assert_int_equal (s_decode_msg (buf, len, &r), DIPX_E_CORRUPT);
    len = s_msg_record (buf, SENDER, ".cjit", env, 8);
    assert_int_equal (s_decode_msg (buf, len, &r), DIPX_E_CORRUPT);
    /* A NUL inside an agency id.  */
    len = s_msg_record (buf, "police.x", RCPT, env, 8);
    buf[42] = 0;
    assert_int_equal (s_decode_msg (buf, len, &r), DIPX_E_CORRUPT);
    /* Random bytes never crash it.  */
    for (int i = 0; i < 2000; i++) {
        size_t n = randombytes_uniform (sizeof buf);
        randombytes_buf (buf, n);
        if (n > 0 && (i & 1))
            buf[0] = 1;
        int rc = s_decode_msg (buf, n, &r);
        assert_true (rc == 0 || rc == DIPX_E_CORRUPT);
    }
}

static void
test_decode_id (void **state)
{
    (void) state;
    static uint8_t buf[84 + 2 * 64 + 8];
    dipx_idrec_t ir;
    size_t len = s_id_record (buf, DIPX_MSG_ACKED, SENDER, RCPT);
    assert_int_equal (s_decode_id (buf, len, &ir), 0);
    assert_int_equal (ir.state, DIPX_MSG_ACKED);
    assert_int_equal (ir.seq, 42);
    assert_int_equal (ir.at, T0);
    assert_string_equal (ir.from, SENDER);
    assert_string_equal (ir.to, RCPT);
    for (size_t n = 0; n < len; n++)
        assert_int_equal (s_decode_id (buf, n, &ir), DIPX_E_CORRUPT);
    buf[len] = 'x';
    assert_int_equal (s_decode_id (buf, len + 1, &ir), DIPX_E_CORRUPT);
    for (int v = 0; v < 256; v++) {
        buf[0] = (uint8_t) v;
        assert_int_equal (s_decode_id (buf, len, &ir), v == 1 ? 0 : DIPX_E_CORRUPT);
    }
    buf[0] = 1;
    for (int v = 0; v < 256; v++) {
        buf[1] = (uint8_t) v;
        bool ok = v >= DIPX_MSG_QUEUED && v <= DIPX_MSG_DEAD;
        assert_int_equal (s_decode_id (buf, len, &ir), ok ? 0 : DIPX_E_CORRUPT);
    }
    buf[1] = DIPX_MSG_QUEUED;
    for (int i = 2; i <= 3; i++)
        for (int v = 0; v < 256; v++) {
            uint8_t save = buf[i];
            buf[i] = (uint8_t) v;
            assert_int_equal (s_decode_id (buf, len, &ir), v == save ? 0 : DIPX_E_CORRUPT);
            buf[i] = save;
        }
    len = s_id_record (buf, DIPX_MSG_QUEUED, "", RCPT);
    assert_int_equal (s_decode_id (buf, len, &ir), DIPX_E_CORRUPT);
    len = s_id_record (buf, DIPX_MSG_QUEUED, SENDER, "UPPER");
    assert_int_equal (s_decode_id (buf, len, &ir), DIPX_E_CORRUPT);
    for (int i = 0; i < 2000; i++) {
        size_t n = randombytes_uniform (sizeof buf);
        randombytes_buf (buf, n);
        if (n > 1 && (i & 1)) {
            buf[0] = 1;
            buf[1] = DIPX_MSG_QUEUED;
        }
        int rc = s_decode_id (buf, n, &ir);
        assert_true (rc == 0 || rc == DIPX_E_CORRUPT);
    }
}

static void
test_decode_audit (void **state)
{
    (void) state;
    s_msg_t m;
    s_make (&m, RCPT, 10);
    dipx_audit_t rec;
    dipx_audit_init (&rec, DIPX_AUDIT_REFUSED, T0);
    dipx_audit_set_header (&rec, &m.env.h);
    rec.seq = 12;
    rec.code = 22;
    rec.present |= DIPX_AU_CODE;
    dipx_audit_set_reason (&rec, "flow not allowed\n\x01\xff by policy");
    assert_string_equal (rec.reason, "flow not allowed??? by policy");
    uint8_t *buf;
    size_t len;
    assert_int_equal (dipx_audit_encode (&rec, &buf, &len), 0);
    dipx_audit_t back;
    assert_int_equal (s_decode_audit (buf, len, &back), 0);
    assert_memory_equal (&back, &rec, sizeof rec);
    /* Every truncation fails; none crashes.  */
    for (size_t n = 0; n < len; n++)
        assert_int_not_equal (s_decode_audit (buf, n, &back), 0);
    /* Trailing bytes.  */
    uint8_t *longer = malloc (len + 1);
    assert_non_null (longer);
    memcpy (longer, buf, len);
    longer[len] = 0xc0;
    assert_int_equal (s_decode_audit (longer, len + 1, &back), DIPX_E_TRAILING);
    free (longer);
    /* Every single-bit flip: decodes or fails, and if it decodes it
       re-encodes to something that decodes to the same.  */
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t) (1u << bit);
            if (s_decode_audit (buf, len, &back) == 0) {
                uint8_t *re;
                size_t relen;
                dipx_audit_t again;
                assert_int_equal (dipx_audit_encode (&back, &re, &relen), 0);
                assert_int_equal (s_decode_audit (re, relen, &again), 0);
                assert_memory_equal (&again, &back, sizeof back);
                free (re);
            }
            buf[i] ^= (uint8_t) (1u << bit);
        }
    free (buf);

    /* Records that break the schema, written by hand (msgpack).  */
#define B(s) s, sizeof (s) - 1
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
        int rc;
    } bad[] = {
        {"not a map", B ("\x93\x01\x02\x03"), DIPX_E_TYPE},
        {"empty map", B ("\x80"), DIPX_E_MISSING_FIELD},
        {"seq 0", B ("\x83\xa3seq\x00\xa2" "at\x01\xa2" "ev\xa5" "acked"), DIPX_E_VALUE},
        {"unknown event", B ("\x83\xa3seq\x01\xa2" "at\x01\xa2" "ev\xa4" "lost"), DIPX_E_VALUE},
        {"unknown field", B ("\x84\xa3seq\x01\xa2" "at\x01\xa2" "ev\xa5" "acked\xa1x\x01"), DIPX_E_UNKNOWN_FIELD},
        {"dup field", B ("\x84\xa3seq\x01\xa2" "at\x01\xa2" "ev\xa5" "acked\xa2" "at\x01"), DIPX_E_DUP_FIELD},
        {"short id", B ("\x84\xa3seq\x01\xa2" "at\x01\xa2" "ev\xa5" "acked\xa2id\xc4\x01\x00"), DIPX_E_FIELD_LENGTH},
        {"bad agency", B ("\x84\xa3seq\x01\xa2" "at\x01\xa2" "ev\xa5" "acked\xa2" "by\xa1" "A"), DIPX_E_VALUE},
        {"control byte", B ("\x84\xa3seq\x01\xa2" "at\x01\xa2" "ev\xa5" "acked\xa6reason\xa1\n"),
         DIPX_E_VALUE},
        {"code 0", B ("\x84\xa3seq\x01\xa2" "at\x01\xa2" "ev\xa5" "acked\xa4" "code\x00"), DIPX_E_VALUE},
        {"code > u32", B ("\x84\xa3seq\x01\xa2" "at\x01\xa2" "ev\xa5" "acked\xa4" "code\xcf\x00\x00"
         "\x00\x01\x00\x00\x00\x00"), DIPX_E_VALUE},
        {"4G map", B ("\xdf\xff\xff\xff\xff"), DIPX_E_COUNT},
        {"deep", B ("\x91\x91\x91\x91\x91\x80"), DIPX_E_DEPTH},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = s_decode_audit ((const uint8_t *) bad[i].bytes, bad[i].len, &back);
        if (rc == 0)
            print_error ("%s: decoded\n", bad[i].what);
        assert_int_not_equal (rc, 0);
        (void) bad[i].rc; /* which code is the codec's business; not crashing is ours */
    }
    /* Valid by hand: the minimum record.  */
    static const char min[] = "\x83\xa3seq\x01\xa2" "at\x00\xa2" "ev\xa5" "acked";
    assert_int_equal (s_decode_audit ((const uint8_t *) min, sizeof min - 1, &back), 0);
    assert_int_equal (back.event, DIPX_AUDIT_ACKED);
    assert_int_equal (back.present, 0);
    /* A code above INT_MAX prints (it once negated INT_MIN).  */
    dipx_audit_init (&rec, DIPX_AUDIT_PROTOCOL, T0);
    rec.seq = 1;
    rec.code = 0x80000000u;
    rec.present |= DIPX_AU_CODE;
    assert_int_equal (dipx_audit_encode (&rec, &buf, &len), 0);
    assert_int_equal (s_decode_audit (buf, len, &back), 0);
    free (buf);
    FILE *null = fopen ("/dev/null", "w");
    assert_non_null (null);
    assert_int_equal (dipx_audit_print_json (&back, null), 0);
    back.code = UINT32_MAX;
    assert_int_equal (dipx_audit_print_json (&back, null), 0);
    fclose (null);
    /* Oversized input is refused before it is read.  */
    size_t big = DIPX_MAX_AUDIT_REC + 1;
    uint8_t *huge = calloc (1, big);
    assert_non_null (huge);
    assert_int_equal (s_decode_audit (huge, big, &back), DIPX_E_FIELD_LENGTH);
    free (huge);
    s_free (&m);
}

static void
test_audit_json (void **state)
{
    (void) state;
    s_msg_t m;
    s_make (&m, RCPT, 10);
    dipx_audit_t rec;
    dipx_audit_init (&rec, DIPX_AUDIT_REFUSED, 1234);
    dipx_audit_set_header (&rec, &m.env.h);
    rec.seq = 7;
    rec.code = 22;
    rec.present |= DIPX_AU_CODE;
    dipx_audit_set_reason (&rec, "no \"rule\" allows it");
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream (&text, &n);
    assert_non_null (f);
    assert_int_equal (dipx_audit_print_json (&rec, f), 0);
    fclose (f);
    assert_non_null (strstr (text, "{\"seq\":7,\"at\":1234,\"ev\":\"refused\",\"id\":\""));
    assert_non_null (strstr (text, "\"from\":\"" SENDER "\",\"to\":\"" RCPT "\""));
    assert_non_null (strstr (text, "\"basis\":\"statute\""));
    assert_non_null (strstr (text, "\"purpose\":\"law_enforcement\""));
    assert_non_null (strstr (text, "\"cats\":[\"test_results\"]"));
    assert_non_null (strstr (text, "\"code\":22,\"code_name\":\"policy\""));
    assert_non_null (strstr (text, "\"reason\":\"no \\\"rule\\\" allows it\""));
    assert_int_equal (text[n - 1], '\n');
    assert_null (memchr (text, '\n', n - 1)); /* one line */
    free (text);
    /* A code read back from disk may be any 32-bit value: the text form
       names only what fits (negating INT_MIN would be undefined).  */
    rec.code = 0x80000000u;
    text = NULL;
    f = open_memstream (&text, &n);
    assert_non_null (f);
    assert_int_equal (dipx_audit_print_text (&rec, f), 0);
    fclose (f);
    assert_non_null (strstr (text, "refused"));
    free (text);
    s_free (&m);
}

int
main (void)
{
#define T(f) cmocka_unit_test_setup_teardown (f, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T (test_enqueue_read),
        T (test_delivered_acked),
        T (test_undelivered),
        T (test_dead_redrive),
        T (test_expiry),
        T (test_audit),
        T (test_audit_by_seq),
        T (test_audit_by_subject),
        T (test_audit_by_subject_old),
        T (test_reopen),
        T (test_open_errors),
        T (test_abort),
        T (test_map_full),
        T (test_map_grows),
        T (test_map_grows_after_full),
        cmocka_unit_test (test_decode_msg),
        cmocka_unit_test (test_decode_id),
        cmocka_unit_test (test_decode_audit),
        cmocka_unit_test (test_audit_json),
    };
    return cmocka_run_group_tests (tests, s_group_setup, NULL);
}
