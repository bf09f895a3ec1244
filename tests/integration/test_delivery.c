/*  test_delivery.c - delivery guarantees against a real dipxd: redelivery
    with counts, dead letters, expiry, queue caps, deduplication across
    restarts, receipts and tracking, and storage full.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "dipx_envelope.h"
#include "dipx_frame.h"
#include "dipx_registry.h"
#include "harness.h"

#define WAIT_MS 15000

static uint8_t s_subject[DIPX_SUBJECT_BYTES];

static dipx_send_t
s_msg (void)
{
    return harness_dt1 ("cjit.test", s_subject);
}

static harness_t *
s_start (const char *extra)
{
    harness_t *h = calloc (1, sizeof *h);
    assert_non_null (h);
    assert_int_equal (harness_init (h, extra), 0);
    assert_non_null (harness_add (h, "police.test", DIPX_AGENCY_POLICE, DIPX_STATUS_ACTIVE));
    assert_non_null (harness_add (h, "cjit.test", DIPX_AGENCY_CJIT, DIPX_STATUS_ACTIVE));
    assert_non_null (harness_add (h, "cjit.other", DIPX_AGENCY_CJIT, DIPX_STATUS_ACTIVE));
    assert_int_equal (harness_start (h), 0);
    return h;
}

static void
s_end (harness_t *h)
{
    harness_fini (h);
    free (h);
}

static dipx_client_t *
s_client (harness_t *h, const char *id, uint32_t window)
{
    dipx_client_t *c = harness_ready_client (h, id, window, WAIT_MS);
    assert_non_null (c);
    return c;
}

static dipx_message_t *
s_recv (dipx_client_t *c)
{
    dipx_message_t *msg = NULL;
    assert_int_equal (dipx_client_recv (c, WAIT_MS, &msg), 0);
    return msg;
}

/*  Waits for a receipt of the given event about id, skipping others.  */
static void
s_wait_receipt (dipx_client_t *c, const uint8_t *id, int event, dipx_receipt_t *out)
{
    for (;;) {
        dipx_receipt_t r;
        assert_int_equal (dipx_client_receipt (c, WAIT_MS, &r), 0);
        if (memcmp (r.id, id, DIPX_MESSAGE_ID_BYTES) == 0 && r.event == event) {
            if (out)
                *out = r;
            return;
        }
    }
}

/*  Sends n messages of size bytes each (random) to cjit.test, results in r.  */
static void
s_send_big (dipx_client_t *police, int n, size_t size, dipx_result_t *r)
{
    uint8_t *body = malloc (size);
    assert_non_null (body);
    randombytes_buf (body, size);
    dipx_send_t m = s_msg ();
    for (int i = 0; i < n; i++)
        assert_int_equal (dipx_client_send (police, &m, body, size, WAIT_MS, &r[i]), 0);
    free (body);
}

static void
test_redelivery_after_ack_timeout (void **state)
{
    (void) state;
    harness_t *h = s_start ("ack_timeout_ms = 300\nmax_deliveries = 100");
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_client_t *cjit = s_client (h, "cjit.test", 8);
    dipx_send_t m = s_msg ();
    dipx_result_t r;
    assert_int_equal (dipx_client_send (police, &m, "once", 4, WAIT_MS, &r), 0);
    dipx_message_t *first = s_recv (cjit);
    assert_int_equal (dipx_message_delivery_count (first), 1);
    assert_false (dipx_message_is_redelivered (first));
    /* Not acknowledged: it comes again, same id, count 2, flagged.  */
    dipx_message_t *again = s_recv (cjit);
    assert_memory_equal (dipx_message_id (again), r.id, DIPX_MESSAGE_ID_BYTES);
    assert_int_equal (dipx_message_delivery_count (again), 2);
    assert_true (dipx_message_is_redelivered (again));
    assert_int_equal (dipx_client_ack (cjit, again), 0);
    s_wait_receipt (police, r.id, DIPX_EVENT_ACKED, NULL);
    dipx_message_destroy (&first);
    dipx_message_destroy (&again);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_end (h);
}

static void
test_redelivery_after_reconnect (void **state)
{
    (void) state;
    harness_t *h = s_start (NULL);
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_client_t *cjit = s_client (h, "cjit.test", 8);
    dipx_send_t m = s_msg ();
    dipx_result_t r;
    assert_int_equal (dipx_client_send (police, &m, "crash", 5, WAIT_MS, &r), 0);
    dipx_message_t *msg = s_recv (cjit);
    dipx_message_destroy (&msg);
    /* The recipient crashes before acknowledging.  */
    dipx_client_destroy (&cjit);
    cjit = s_client (h, "cjit.test", 8);
    msg = s_recv (cjit);
    assert_memory_equal (dipx_message_id (msg), r.id, DIPX_MESSAGE_ID_BYTES);
    assert_true (dipx_message_delivery_count (msg) >= 2);
    assert_true (dipx_message_is_redelivered (msg));
    assert_int_equal (dipx_client_ack (cjit, msg), 0);
    dipx_message_destroy (&msg);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_end (h);
}

/*  A card that expires while its agency is connected: ZAP checks only new
    connections, so the broker bars the open session; nothing more is
    delivered to it, redeliveries included, and sends to it are refused.  */
static void
test_expired_card_bars_session (void **state)
{
    (void) state;
    harness_t *h = calloc (1, sizeof *h);
    assert_non_null (h);
    assert_int_equal (harness_init (h, "ack_timeout_ms = 500\nmax_deliveries = 100"), 0);
    assert_non_null (harness_add (h, "police.test", DIPX_AGENCY_POLICE, DIPX_STATUS_ACTIVE));
    h_agency_t *a = harness_add (h, "cjit.test", DIPX_AGENCY_CJIT, DIPX_STATUS_ACTIVE);
    assert_non_null (a);
    a->valid_until = (int64_t) time (NULL) + 12; /* time to connect and deliver first */
    assert_int_equal (harness_start (h), 0);
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_client_t *cjit = s_client (h, "cjit.test", 8);
    dipx_send_t m = s_msg ();
    dipx_result_t r;
    assert_int_equal (dipx_client_send (police, &m, "unacked", 7, WAIT_MS, &r), 0);
    dipx_message_t *msg = s_recv (cjit); /* and never acknowledged */
    dipx_message_destroy (&msg);
    assert_int_equal (harness_log_wait (h, 0, "session of cjit.test barred: card expired", WAIT_MS),
                      0);
    char idhex[33];
    dipx_id_to_hex (r.id, idhex);
    int n = harness_audit_count (h, "\"ev\":\"delivered\"", idhex, NULL);
    usleep (1500 * 1000); /* three ack timeouts */
    assert_int_equal (harness_audit_count (h, "\"ev\":\"delivered\"", idhex, NULL), n);
    assert_int_equal (dipx_client_send (police, &m, "after", 5, WAIT_MS, &r),
                      DIPX_E_RECIPIENT_INACTIVE);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_end (h);
}

/*  A send-only connection of an agency (window 0: `dipx send` run beside
    the agency's receiving service) does not take the agency's deliveries
    from the receiver, while it is open or once it has gone.  */
static void
test_send_only_hello_keeps_receiver (void **state)
{
    (void) state;
    harness_t *h = s_start (NULL);
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_client_t *cjit = s_client (h, "cjit.test", 8);
    dipx_client_t *cli = s_client (h, "cjit.test", 0); /* ready: its WELCOME came */
    dipx_send_t m = s_msg ();
    dipx_result_t r[2];
    assert_int_equal (dipx_client_send (police, &m, "one", 3, WAIT_MS, &r[0]), 0);
    dipx_message_t *msg = s_recv (cjit);
    assert_memory_equal (dipx_message_id (msg), r[0].id, DIPX_MESSAGE_ID_BYTES);
    assert_int_equal (dipx_client_ack (cjit, msg), 0);
    dipx_message_destroy (&msg);
    dipx_client_destroy (&cli);
    assert_int_equal (dipx_client_send (police, &m, "two", 3, WAIT_MS, &r[1]), 0);
    msg = s_recv (cjit);
    assert_memory_equal (dipx_message_id (msg), r[1].id, DIPX_MESSAGE_ID_BYTES);
    assert_int_equal (dipx_client_ack (cjit, msg), 0);
    dipx_message_destroy (&msg);
    s_wait_receipt (police, r[1].id, DIPX_EVENT_ACKED, NULL);
    assert_int_equal (harness_audit_count (h, "\"ev\":\"session\"", "cjit.test", "send only", NULL),
                      1);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_end (h);
}

/*  A recipient that takes deliveries and does not acknowledge them (or a
    connection that stops reading, which leaves them in the broker's memory):
    once unacked_max_mb of envelopes are out to it, redeliveries included,
    the broker sends nothing more until ACKs free room. The window alone (64
    here) would let all ten through, and every ack timeout would send them
    all again.  */
static void
test_unacked_bytes_bound_deliveries (void **state)
{
    (void) state;
    enum { N = 10, BODY = 250000, FIT = 4 }; /* 4 envelopes fit in 1 MiB, 5 do not */
    harness_t *h = s_start ("unacked_max_mb = 1\nack_timeout_ms = 500\nmax_deliveries = 100");
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_result_t r[N];
    s_send_big (police, N, BODY, r);
    /* Connected once all ten are queued: its HELLO's transaction delivers
       what fits, at once (one message alone in flight may be sent again
       up to the limit, which a slow machine would show).  */
    dipx_client_t *cjit = s_client (h, "cjit.test", 64);
    dipx_message_t *first[FIT];
    for (int i = 0; i < FIT; i++) {
        first[i] = s_recv (cjit);
        assert_memory_equal (dipx_message_id (first[i]), r[i].id, DIPX_MESSAGE_ID_BYTES);
        assert_int_equal (dipx_message_delivery_count (first[i]), 1);
        assert_int_equal (dipx_message_body_len (first[i]), BODY);
    }
    /* Neither a fifth message nor a copy of the four, for three ack
       timeouts.  */
    dipx_message_t *more = NULL;
    assert_int_equal (dipx_client_recv (cjit, 1500, &more), DIPX_E_TIMEOUT);
    assert_null (more);
    /* ACKs make room: the rest comes, each acknowledged as it arrives. A
       copy of one already acknowledged (its ack timeout passed before the
       ACK was committed, on a loaded machine) is let go.  */
    bool acked[N] = {false};
    int nacked = 0;
    for (int i = 0; i < FIT; i++) {
        assert_int_equal (dipx_client_ack (cjit, first[i]), 0);
        dipx_message_destroy (&first[i]);
        acked[i] = true;
        nacked++;
    }
    while (nacked < N) {
        dipx_message_t *msg = s_recv (cjit);
        int k = 0;
        while (k < N && memcmp (dipx_message_id (msg), r[k].id, DIPX_MESSAGE_ID_BYTES) != 0)
            k++;
        assert_true (k < N);
        if (!acked[k]) {
            assert_int_equal (dipx_client_ack (cjit, msg), 0);
            acked[k] = true;
            nacked++;
        } else
            assert_true (dipx_message_delivery_count (msg) > 1);
        dipx_message_destroy (&msg);
    }
    /* All ten acknowledged: the sender is told of each.  */
    bool told[N] = {false};
    for (int ntold = 0; ntold < N;) {
        dipx_receipt_t rc;
        assert_int_equal (dipx_client_receipt (police, WAIT_MS, &rc), 0);
        for (int k = 0; k < N; k++)
            if (rc.event == DIPX_EVENT_ACKED && !told[k]
                && memcmp (rc.id, r[k].id, DIPX_MESSAGE_ID_BYTES) == 0) {
                told[k] = true;
                ntold++;
            }
    }
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_end (h);
}

/*  The same bound against a connection that stops reading altogether, so
    that what the broker sends stays in the broker's memory: four envelopes
    go out and no more, copies included, and the broker's RSS stays flat.
    Measured without the bound (unacked_max_mb = 1024): 1,273 deliveries and
    +320 MiB of RSS in 10 s, still growing; with it: 4 and +2 MiB.  */
static void
test_stalled_reader_bounded (void **state)
{
    (void) state;
    enum { N = 40, BODY = 250000, FIT = 4, ACK_TIMEOUT_MS = 300 };
    harness_t *h = s_start ("unacked_max_mb = 1\nack_timeout_ms = 300\nmax_deliveries = 100");
    dipx_client_t *police = s_client (h, "police.test", 0);
    long rss0 = harness_broker_kb (h, "VmRSS");
    dipx_result_t r[N];
    s_send_big (police, N, BODY, r);
    /* cjit's connection, once all forty are queued: a receive buffer of one
       frame and a few KiB of socket buffer, and nothing read after the
       WELCOME.  */
    void *ctx = zmq_ctx_new ();
    void *raw = harness_raw_buffered (h, ctx, "cjit.test", 1, 4096);
    assert_non_null (raw);
    dipx_frame_t f;
    assert_int_equal (harness_raw_hello (raw, 256, &f, WAIT_MS), 0);
    assert_int_equal (f.cmd, DIPX_CMD_WELCOME);
    /* The four went out in the WELCOME's transaction.  */
    const char *ev = "\"ev\":\"delivered\"";
    assert_int_equal (harness_audit_count (h, ev, NULL), FIT);
    /* Three ack timeouts later: no copy, nothing more.  */
    usleep (3 * ACK_TIMEOUT_MS * 1000);
    assert_int_equal (harness_audit_count (h, ev, NULL), FIT);
    long grown = harness_broker_kb (h, "VmRSS") - rss0;
    if (grown > 64 * 1024)
        print_error ("broker RSS grew by %ld KiB\n", grown);
    assert_true (grown <= 64 * 1024); /* unbounded: +100 MiB by now */
    zmq_close (raw);
    zmq_ctx_term (ctx);
    dipx_client_destroy (&police);
    s_end (h);
}

/*  Takes what cjit has within timeout_ms, up to the message id, which it
    acknowledges: true once that came. Room again, it comes on its first
    delivery; what comes before it are second copies of the others.  */
static bool
s_take_fifth (dipx_client_t *cjit, const uint8_t *id, int timeout_ms)
{
    dipx_message_t *msg = NULL;
    bool got = false;
    while (!got && dipx_client_recv (cjit, timeout_ms, &msg) == 0) {
        got = memcmp (dipx_message_id (msg), id, DIPX_MESSAGE_ID_BYTES) == 0;
        assert_int_equal (dipx_message_delivery_count (msg), got ? 1 : 2);
        if (got)
            assert_int_equal (dipx_client_ack (cjit, msg), 0);
        dipx_message_destroy (&msg);
    }
    return got;
}

/*  A redelivery held back for room counts as an attempt: a recipient that
    takes messages and never acknowledges them still has them dead-lettered
    after max_deliveries, its sender told, and the next message goes.  */
static void
test_held_redeliveries_dead_letter (void **state)
{
    (void) state;
    enum { N = 5, BODY = 250000, FIT = 4 };
    harness_t *h = s_start ("unacked_max_mb = 1\nack_timeout_ms = 300\nmax_deliveries = 2");
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_result_t r[N];
    s_send_big (police, N, BODY, r);
    dipx_client_t *cjit = s_client (h, "cjit.test", 64);
    for (int i = 0; i < FIT; i++) {
        dipx_message_t *msg = s_recv (cjit); /* and never acknowledged */
        assert_memory_equal (dipx_message_id (msg), r[i].id, DIPX_MESSAGE_ID_BYTES);
        dipx_message_destroy (&msg);
    }
    /* One delivery each and one more held back: dead letters. The first
       frees room, so a copy of another may go before its own turn comes
       (then it is dead-lettered after its two deliveries).  */
    bool dead[FIT] = {false}, fifth = false;
    uint64_t deadline = dipx_mono_ms () + WAIT_MS;
    uint64_t delivered_at[FIT] = {0};
    int held_back = 0;
    for (int ndead = 0; ndead < FIT;) {
        /* The fifth may come meanwhile: acknowledged at once, or it too is
           dead-lettered two ack timeouts later.  */
        if (!fifth)
            fifth = s_take_fifth (cjit, r[FIT].id, 0);
        dipx_receipt_t rc;
        int rrc = dipx_client_receipt (police, 100, &rc);
        if (rrc == DIPX_E_TIMEOUT) {
            assert_true (dipx_mono_ms () < deadline);
            continue;
        }
        assert_int_equal (rrc, 0);
        int k = 0;
        while (k < FIT && memcmp (rc.id, r[k].id, DIPX_MESSAGE_ID_BYTES) != 0)
            k++;
        if (rc.event == DIPX_EVENT_DELIVERED && k < FIT && rc.count == 1)
            delivered_at[k] = rc.at;
        if (rc.event != DIPX_EVENT_DEAD_LETTERED)
            continue;
        assert_true (k < FIT);
        assert_false (dead[k]);
        assert_int_equal (rc.code, DIPX_E_UNDELIVERED);
        assert_non_null (strstr (rc.reason, "not acknowledged after"));
        if (strstr (rc.reason, "held back")) {
            /* At the deadline after its held attempt, as without the hold:
               two ack timeouts after its delivery (broker's clock).  */
            assert_true (delivered_at[k] != 0);
            assert_true (rc.at >= delivered_at[k] + 2 * 300);
            held_back++;
        }
        dead[k] = true;
        ndead++;
    }
    assert_true (held_back >= 1);
    while (!fifth)
        fifth = s_take_fifth (cjit, r[FIT].id, WAIT_MS);
    s_wait_receipt (police, r[FIT].id, DIPX_EVENT_ACKED, NULL);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_end (h);
}

static void
test_dead_letter_and_redrive (void **state)
{
    (void) state;
    /* The poison is left unacknowledged twice, so each wait is the ack
       timeout; long enough that an acknowledged message is not delivered
       again on a loaded machine before its ACK is committed.  */
    harness_t *h = s_start ("ack_timeout_ms = 1000\nmax_deliveries = 2");
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_client_t *cjit = s_client (h, "cjit.test", 8);
    dipx_send_t m = s_msg ();
    dipx_result_t poison;
    assert_int_equal (dipx_client_send (police, &m, "poison", 6, WAIT_MS, &poison), 0);
    for (int i = 1; i <= 2; i++) {
        dipx_message_t *msg = s_recv (cjit); /* and never acknowledged */
        assert_int_equal (dipx_message_delivery_count (msg), (uint64_t) i);
        dipx_message_destroy (&msg);
    }
    dipx_receipt_t rc;
    s_wait_receipt (police, poison.id, DIPX_EVENT_DEAD_LETTERED, &rc);
    assert_int_equal (rc.code, DIPX_E_UNDELIVERED);
    /* Other traffic is unaffected.  */
    dipx_result_t ok;
    assert_int_equal (dipx_client_send (police, &m, "fine", 4, WAIT_MS, &ok), 0);
    dipx_message_t *msg = s_recv (cjit);
    assert_memory_equal (dipx_message_id (msg), ok.id, DIPX_MESSAGE_ID_BYTES);
    assert_int_equal (dipx_client_ack (cjit, msg), 0);
    dipx_message_destroy (&msg);
    s_wait_receipt (police, ok.id, DIPX_EVENT_ACKED, NULL); /* the ACK is committed */
    /* The operator sees it, with the payload kept (metadata only shown).  */
    char idhex[33];
    dipx_id_to_hex (poison.id, idhex);
    char cmd[1400], line[1024];
    snprintf (cmd, sizeof cmd, "%s/broker/dipxd dead --data %s", getenv ("DIPX_BUILD_DIR"),
              h->data);
    FILE *p = popen (cmd, "r");
    assert_non_null (p);
    int found = 0;
    unsigned long long seq = 0;
    while (fgets (line, sizeof line, p))
        if (strstr (line, idhex) && strstr (line, "undelivered") && strstr (line, "deliveries=2")) {
            found++;
            seq = strtoull (line, NULL, 10);
        }
    assert_int_equal (pclose (p), 0);
    assert_int_equal (found, 1);
    /* ... and redrives it while the broker runs: the connected recipient
       gets it again, its count starting afresh.  */
    snprintf (cmd, sizeof cmd, "%s/broker/dipxd dead --data %s --redrive %llu >/dev/null",
              getenv ("DIPX_BUILD_DIR"), h->data, seq);
    assert_int_equal (system (cmd), 0);
    /* A redelivery of "fine" sent before its ACK was committed (its ack
       timeout passed first, on a loaded machine) may still come first.  */
    msg = s_recv (cjit);
    if (memcmp (dipx_message_id (msg), ok.id, DIPX_MESSAGE_ID_BYTES) == 0) {
        assert_int_equal (dipx_message_delivery_count (msg), 2);
        assert_int_equal (dipx_client_ack (cjit, msg), 0);
        dipx_message_destroy (&msg);
        msg = s_recv (cjit);
    }
    assert_memory_equal (dipx_message_id (msg), poison.id, DIPX_MESSAGE_ID_BYTES);
    assert_int_equal (dipx_message_delivery_count (msg), 1);
    assert_int_equal (dipx_client_ack (cjit, msg), 0);
    dipx_message_destroy (&msg);
    s_wait_receipt (police, poison.id, DIPX_EVENT_ACKED, NULL);
    assert_int_equal (harness_audit_count (h, "\"ev\":\"redriven\"", idhex, NULL), 1);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_end (h);
}

static void
test_expiry_dead_letters_and_notifies (void **state)
{
    (void) state;
    harness_t *h = s_start (NULL);
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_send_t m = s_msg ();
    m.ttl_ms = 1500; /* long enough to be ACCEPTED first on a slow machine */
    dipx_result_t r;
    assert_int_equal (dipx_client_send (police, &m, "short-lived", 11, WAIT_MS, &r), 0);
    /* The recipient is offline; the sender is told when it expires, and
       that it was never delivered.  */
    dipx_receipt_t rc;
    s_wait_receipt (police, r.id, DIPX_EVENT_EXPIRED, &rc);
    assert_int_equal (rc.code, DIPX_E_EXPIRED);
    assert_string_equal (rc.reason, "expired before delivery");
    /* It is never delivered: a marker sent after it arrives first.  */
    m.ttl_ms = 0;
    dipx_result_t marker;
    assert_int_equal (dipx_client_send (police, &m, "marker", 6, WAIT_MS, &marker), 0);
    dipx_client_t *cjit = s_client (h, "cjit.test", 8);
    dipx_message_t *msg = s_recv (cjit);
    assert_memory_equal (dipx_message_id (msg), marker.id, DIPX_MESSAGE_ID_BYTES);
    assert_int_equal (dipx_client_ack (cjit, msg), 0);
    dipx_message_destroy (&msg);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    char idhex[33];
    dipx_id_to_hex (r.id, idhex);
    assert_int_equal (harness_audit_count (h, "\"ev\":\"expired\"", idhex, NULL), 1);
    assert_int_equal (harness_audit_count (h, "\"ev\":\"dead_lettered\"", idhex, NULL), 1);
    s_end (h);
}

static void
test_queue_cap_refuses_never_drops (void **state)
{
    (void) state;
    harness_t *h = s_start ("queue_max_messages = 3");
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_send_t m = s_msg ();
    dipx_result_t r[3], full;
    for (int i = 0; i < 3; i++)
        assert_int_equal (dipx_client_send (police, &m, "q", 1, WAIT_MS, &r[i]), 0);
    assert_int_equal (dipx_client_send (police, &m, "q", 1, WAIT_MS, &full), DIPX_E_QUEUE_FULL);
    dipx_client_t *cjit = s_client (h, "cjit.test", 8);
    for (int i = 0; i < 3; i++) { /* the first three, in order: none dropped */
        dipx_message_t *msg = s_recv (cjit);
        assert_memory_equal (dipx_message_id (msg), r[i].id, DIPX_MESSAGE_ID_BYTES);
        assert_int_equal (dipx_client_ack (cjit, msg), 0);
        dipx_message_destroy (&msg);
    }
    /* Wait until the acknowledgements are applied, then there is room.  */
    for (int i = 0; i < 3; i++)
        s_wait_receipt (police, r[i].id, DIPX_EVENT_ACKED, NULL);
    assert_int_equal (dipx_client_send (police, &m, "q", 1, WAIT_MS, NULL), 0);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_end (h);
}

/*  The byte cap: 1 MiB queued for one recipient, then queue_full.  */
static void
test_queue_byte_cap (void **state)
{
    (void) state;
    harness_t *h = s_start ("queue_max_mb = 1");
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_send_t m = s_msg ();
    static uint8_t body[100000];
    int n = 0, rc;
    while ((rc = dipx_client_send (police, &m, body, sizeof body, WAIT_MS, NULL)) == 0)
        n++;
    assert_int_equal (rc, DIPX_E_QUEUE_FULL);
    assert_true (n >= 9 && n <= 10); /* 10 envelopes of ~100 KB fill 1 MiB */
    /* Small messages to another recipient are unaffected.  */
    m.to = "cjit.other";
    assert_int_equal (dipx_client_send (police, &m, "small", 5, WAIT_MS, NULL), 0);
    dipx_client_destroy (&police);
    s_end (h);
}

/*  A resend of a stored message gets its original ACCEPTED even when the
    checks would refuse it now (here: it has expired meanwhile), so that its
    sender does not take it for never stored and seal it again.  */
static void
test_resend_after_expiry_accepted (void **state)
{
    (void) state;
    harness_t *h = s_start (NULL);
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_send_t m = s_msg ();
    m.ttl_ms = 1500; /* long enough to be ACCEPTED first on a slow machine */
    uint8_t *env;
    size_t len;
    assert_int_equal (dipx_client_seal (police, &m, "stored", 6, &env, &len), 0);
    dipx_result_t a, b;
    assert_int_equal (dipx_client_post_sealed (police, env, len), 0);
    assert_int_equal (dipx_client_result (police, WAIT_MS, &a), 0);
    assert_int_equal (a.code, 0);
    s_wait_receipt (police, a.id, DIPX_EVENT_EXPIRED, NULL); /* the recipient is offline */
    assert_int_equal (dipx_client_post_sealed (police, env, len), 0);
    assert_int_equal (dipx_client_result (police, WAIT_MS, &b), 0);
    assert_int_equal (b.code, 0);
    assert_memory_equal (b.id, a.id, DIPX_MESSAGE_ID_BYTES);
    assert_int_equal (b.seq, a.seq);
    /* Not a resend: another ciphertext under that id is refused, for its
       expiry (checked first). Its last 70 bytes are the signature, with
       its key and length.  */
    env[len - 80] ^= 1;
    assert_int_equal (dipx_client_post_sealed (police, env, len), 0);
    assert_int_equal (dipx_client_result (police, WAIT_MS, &b), 0);
    assert_int_equal (b.code, DIPX_E_EXPIRED);
    free (env);
    dipx_client_destroy (&police);
    s_end (h);
}

static void
test_dedup_across_restart (void **state)
{
    (void) state;
    harness_t *h = s_start (NULL);
    dipx_client_t *police = s_client (h, "police.test", 0);
    uint8_t id[DIPX_MESSAGE_ID_BYTES];
    randombytes_buf (id, sizeof id);
    dipx_send_t m = s_msg ();
    m.id = id;
    uint8_t *env;
    size_t len;
    assert_int_equal (dipx_client_seal (police, &m, "only once", 9, &env, &len), 0);
    dipx_result_t a, b;
    assert_int_equal (dipx_client_post_sealed (police, env, len), 0);
    assert_int_equal (dipx_client_result (police, WAIT_MS, &a), 0);
    assert_int_equal (a.code, 0);
    /* The same envelope again: the original ACCEPTED, same seq.  */
    assert_int_equal (dipx_client_post_sealed (police, env, len), 0);
    assert_int_equal (dipx_client_result (police, WAIT_MS, &b), 0);
    assert_int_equal (b.code, 0);
    assert_int_equal (b.seq, a.seq);
    dipx_client_destroy (&police);
    /* ... and after a crash and restart.  */
    harness_stop (h, SIGKILL);
    assert_int_equal (harness_start (h), 0);
    police = s_client (h, "police.test", 0);
    assert_int_equal (dipx_client_post_sealed (police, env, len), 0);
    assert_int_equal (dipx_client_result (police, WAIT_MS, &b), 0);
    assert_int_equal (b.seq, a.seq);
    /* Another message under the same id is refused.  */
    assert_int_equal (dipx_client_send (police, &m, "different", 9, WAIT_MS, &b),
                      DIPX_E_ID_CONFLICT);
    /* Delivered exactly once: a marker follows it directly.  */
    dipx_result_t marker;
    m.id = NULL;
    assert_int_equal (dipx_client_send (police, &m, "marker", 6, WAIT_MS, &marker), 0);
    dipx_client_t *cjit = s_client (h, "cjit.test", 8);
    dipx_message_t *msg = s_recv (cjit);
    assert_memory_equal (dipx_message_id (msg), id, sizeof id);
    assert_int_equal (dipx_client_ack (cjit, msg), 0);
    dipx_message_destroy (&msg);
    msg = s_recv (cjit);
    assert_memory_equal (dipx_message_id (msg), marker.id, sizeof id);
    assert_int_equal (dipx_client_ack (cjit, msg), 0);
    dipx_message_destroy (&msg);
    free (env);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_end (h);
}

static void
test_receipts_outcome_and_track (void **state)
{
    (void) state;
    harness_t *h = s_start (NULL);
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_client_t *cjit = s_client (h, "cjit.test", 8);
    dipx_send_t m = s_msg ();
    dipx_result_t r;
    assert_int_equal (dipx_client_send (police, &m, "track me", 8, WAIT_MS, &r), 0);
    dipx_message_t *msg = s_recv (cjit);
    /* Acting before acknowledging is refused; after, it is recorded.  */
    assert_int_equal (dipx_client_ack (cjit, msg), 0);
    assert_int_equal (dipx_client_outcome (cjit, msg, false, "not known to this service"), 0);
    dipx_message_destroy (&msg);
    s_wait_receipt (police, r.id, DIPX_EVENT_DELIVERED, NULL);
    s_wait_receipt (police, r.id, DIPX_EVENT_ACKED, NULL);
    dipx_receipt_t rej;
    s_wait_receipt (police, r.id, DIPX_EVENT_REJECTED, &rej);
    assert_string_equal (rej.reason, "not known to this service");
    assert_string_equal (rej.by, "cjit.test");
    /* The sender's whole history of the message.  */
    dipx_receipt_t ev[16];
    size_t n = 0;
    assert_int_equal (dipx_client_track (police, r.id, WAIT_MS, ev, 16, &n), 0);
    assert_int_equal (n, 4);
    assert_int_equal (ev[0].event, DIPX_EVENT_ACCEPTED);
    assert_int_equal (ev[1].event, DIPX_EVENT_DELIVERED);
    assert_int_equal (ev[2].event, DIPX_EVENT_ACKED);
    assert_int_equal (ev[3].event, DIPX_EVENT_REJECTED);
    /* The recipient may track it too; another agency may not.  */
    assert_int_equal (dipx_client_track (cjit, r.id, WAIT_MS, ev, 16, &n), 0);
    uint8_t other[DIPX_MESSAGE_ID_BYTES] = {1};
    assert_int_equal (dipx_client_track (police, other, WAIT_MS, ev, 16, &n),
                      DIPX_E_NOT_RECIPIENT);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_end (h);
}

/*  A 1 MiB map that may not grow fills up: sends are REFUSED storage_full,
    never ACCEPTED; deliveries and acknowledgements go on; sending resumes
    by itself once space returns.  */
static void
test_storage_full (void **state)
{
    (void) state;
    harness_t *h = s_start ("map_size_mb = 1\nmap_max_mb = 1");
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_send_t m = s_msg ();
    static uint8_t body[60000];
    randombytes_buf (body, sizeof body);
    dipx_result_t accepted[64];
    int n = 0, rc = 0;
    while (n < 64) {
        rc = dipx_client_send (police, &m, body, sizeof body, WAIT_MS, &accepted[n]);
        if (rc != 0)
            break;
        n++;
    }
    assert_int_equal (rc, DIPX_E_STORAGE_FULL);
    assert_true (n > 0);
    /* Every ACCEPTED message is delivered; acknowledgements free space.  */
    dipx_client_t *cjit = s_client (h, "cjit.test", 64);
    for (int i = 0; i < n; i++) {
        dipx_message_t *msg = s_recv (cjit);
        assert_memory_equal (dipx_message_id (msg), accepted[i].id, DIPX_MESSAGE_ID_BYTES);
        assert_memory_equal (dipx_message_body (msg), body, sizeof body);
        assert_int_equal (dipx_client_ack (cjit, msg), 0);
        dipx_message_destroy (&msg);
    }
    for (int i = 0; i < n; i++)
        s_wait_receipt (police, accepted[i].id, DIPX_EVENT_ACKED, NULL);
    /* The sender retries, as storage_full asks it to: LMDB gives pages freed
       by the acknowledgements back one committed transaction later (the
       audited refusal is one), so a few attempts at most.  */
    int attempts = 0;
    do
        rc = dipx_client_send (police, &m, body, sizeof body, WAIT_MS, NULL);
    while (rc == DIPX_E_STORAGE_FULL && ++attempts < 5);
    assert_int_equal (rc, 0);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_end (h);
}

/*  The disk fills: the data file may not grow past a limit (RLIMIT_FSIZE,
    writes fail with EFBIG) while the map has room. New messages are REFUSED
    storage_full and never ACCEPTED; what was accepted is delivered; when the
    limit is lifted, sending resumes without a restart.  */
static void
test_disk_full (void **state)
{
    (void) state;
    harness_t *h = calloc (1, sizeof *h);
    assert_non_null (h);
    assert_int_equal (harness_init (h, "map_size_mb = 64"), 0);
    assert_non_null (harness_add (h, "police.test", DIPX_AGENCY_POLICE, DIPX_STATUS_ACTIVE));
    assert_non_null (harness_add (h, "cjit.test", DIPX_AGENCY_CJIT, DIPX_STATUS_ACTIVE));
    h->fsize_limit = 1024 * 1024;
    assert_int_equal (harness_start (h), 0);
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_send_t m = s_msg ();
    static uint8_t body[50000];
    randombytes_buf (body, sizeof body);
    dipx_result_t accepted[64];
    int n = 0, rc = 0;
    while (n < 64) {
        rc = dipx_client_send (police, &m, body, sizeof body, WAIT_MS, &accepted[n]);
        if (rc != 0)
            break;
        n++;
    }
    assert_int_equal (rc, DIPX_E_STORAGE_FULL);
    assert_true (n > 0 && n < 64);
    dipx_client_t *cjit = s_client (h, "cjit.test", 64);
    for (int i = 0; i < n; i++) {
        dipx_message_t *msg = s_recv (cjit);
        assert_memory_equal (dipx_message_id (msg), accepted[i].id, DIPX_MESSAGE_ID_BYTES);
        assert_int_equal (dipx_client_ack (cjit, msg), 0);
        dipx_message_destroy (&msg);
    }
    /* Space returns (the limit is lifted on the running broker).  */
    struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
    assert_int_equal (prlimit (h->pid, RLIMIT_FSIZE, &rl, NULL), 0);
    for (int i = 0; i < 30; i++)
        assert_int_equal (dipx_client_send (police, &m, body, sizeof body, WAIT_MS, NULL), 0);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_end (h);
}

/*  Acknowledgements of deliveries taken in a burst share one signature: the
    audit log shows fewer distinct ACK signatures than messages.  */
static void
test_acks_coalesced (void **state)
{
    (void) state;
    harness_t *h = s_start (NULL);
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_send_t m = s_msg ();
    enum { N = 20 };
    dipx_result_t r[N];
    for (int i = 0; i < N; i++)
        assert_int_equal (dipx_client_send (police, &m, "burst", 5, WAIT_MS, &r[i]), 0);
    dipx_client_t *cjit = s_client (h, "cjit.test", 64);
    for (int i = 0; i < N; i++)
        s_wait_receipt (police, r[i].id, DIPX_EVENT_DELIVERED, NULL);
    for (int i = 0; i < N; i++) {
        dipx_message_t *msg = s_recv (cjit);
        assert_int_equal (dipx_client_ack (cjit, msg), 0);
        dipx_message_destroy (&msg);
    }
    for (int i = 0; i < N; i++)
        s_wait_receipt (police, r[i].id, DIPX_EVENT_ACKED, NULL);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    /* Count distinct signatures among the acked records.  */
    char cmd[1400], line[4096], sigs[N][129];
    int nsigs = 0, acked = 0;
    snprintf (cmd, sizeof cmd, "%s/broker/dipxd audit --data %s", getenv ("DIPX_BUILD_DIR"),
              h->data);
    FILE *p = popen (cmd, "r");
    assert_non_null (p);
    while (fgets (line, sizeof line, p)) {
        char *sig = strstr (line, "\"sig\":\"");
        if (!strstr (line, "\"ev\":\"acked\"") || !sig)
            continue;
        acked++;
        bool seen = false;
        for (int i = 0; i < nsigs; i++)
            seen |= strncmp (sigs[i], sig + 7, 128) == 0;
        if (!seen && nsigs < N) {
            memcpy (sigs[nsigs], sig + 7, 128);
            sigs[nsigs++][128] = 0;
        }
    }
    pclose (p);
    printf ("acks: %d messages acknowledged under %d signatures\n", acked, nsigs);
    assert_int_equal (acked, N);
    assert_true (nsigs < N / 2);
    s_end (h);
}

/*  Runs `dipxd audit --data <store> <args>`; returns its exit status and
    its output lines, stderr's included (so a warning breaks a count), at
    most max, each cut at 4 KiB, in lines.  */
static int
s_audit_lines (harness_t *h, const char *args, char (*lines)[4096], int max, int *n)
{
    char cmd[1600];
    snprintf (cmd, sizeof cmd, "%s/broker/dipxd audit --data %s %s 2>&1",
              getenv ("DIPX_BUILD_DIR"), h->data, args);
    FILE *p = popen (cmd, "r");
    assert_non_null (p);
    char line[4096];
    *n = 0;
    while (fgets (line, sizeof line, p))
        if (*n < max)
            memcpy (lines[(*n)++], line, sizeof line);
    int st = pclose (p);
    return WIFEXITED (st) ? WEXITSTATUS (st) : -1;
}

/*  `dipxd audit --subject` lists every record about one subject (a subject
    access request): each message's acceptance, delivery and signed
    acknowledgement, in audit order, and nothing about anyone else. --id
    gives one message's history; --since/--until bound the period.  */
static void
test_audit_query_cli (void **state)
{
    (void) state;
    harness_t *h = s_start (NULL);
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_client_t *cjit = s_client (h, "cjit.test", 16);
    uint8_t other[DIPX_SUBJECT_BYTES];
    randombytes_buf (other, sizeof other);
    enum { NA = 3, NB = 2 };
    dipx_result_t r[NA + NB];
    for (int i = 0; i < NA + NB; i++) {
        dipx_send_t m = harness_dt1 ("cjit.test", i % 2 == 0 && i / 2 < NA ? s_subject : other);
        assert_int_equal (dipx_client_send (police, &m, "about", 5, WAIT_MS, &r[i]), 0);
    }
    for (int i = 0; i < NA + NB; i++) {
        dipx_message_t *msg = s_recv (cjit);
        assert_int_equal (dipx_client_ack (cjit, msg), 0);
        dipx_message_destroy (&msg);
    }
    for (int i = 0; i < NA + NB; i++)
        s_wait_receipt (police, r[i].id, DIPX_EVENT_ACKED, NULL);

    static char lines[64][4096];
    char args[300], hex[2 * DIPX_SUBJECT_BYTES + 1], idhex[3][2 * DIPX_MESSAGE_ID_BYTES + 1];
    sodium_bin2hex (hex, sizeof hex, s_subject, sizeof s_subject);
    for (int i = 0; i < NA; i++) /* subject A's messages are 0, 2, 4 */
        sodium_bin2hex (idhex[i], sizeof idhex[i], r[2 * i].id, DIPX_MESSAGE_ID_BYTES);
    int n;
    snprintf (args, sizeof args, "--subject %s", hex);
    assert_int_equal (s_audit_lines (h, args, lines, 64, &n), 0);
    assert_int_equal (n, 3 * NA); /* accepted, delivered, acked */
    int events[3] = {0, 0, 0};
    long prev = 0;
    for (int i = 0; i < n; i++) {
        bool ours = false;
        for (int j = 0; j < NA; j++)
            ours |= strstr (lines[i], idhex[j]) != NULL;
        assert_true (ours);
        events[0] += strstr (lines[i], "\"ev\":\"accepted\"") != NULL;
        events[1] += strstr (lines[i], "\"ev\":\"delivered\"") != NULL;
        events[2] += strstr (lines[i], "\"ev\":\"acked\"") != NULL;
        long seq = strtol (lines[i] + strlen ("{\"seq\":"), NULL, 10);
        assert_true (seq > prev);
        prev = seq;
    }
    for (int e = 0; e < 3; e++)
        assert_int_equal (events[e], NA);
    /* The other subject's, and one message's history.  */
    sodium_bin2hex (hex, sizeof hex, other, sizeof other);
    snprintf (args, sizeof args, "--subject %s --text", hex);
    assert_int_equal (s_audit_lines (h, args, lines, 64, &n), 0);
    assert_int_equal (n, 3 * NB);
    snprintf (args, sizeof args, "--id %s", idhex[1]);
    assert_int_equal (s_audit_lines (h, args, lines, 64, &n), 0);
    assert_int_equal (n, 3);
    for (int i = 0; i < n; i++)
        assert_non_null (strstr (lines[i], idhex[1]));
    /* Periods: all of it since the epoch, none of it in the future or
       before 1970-01-02.  */
    sodium_bin2hex (hex, sizeof hex, s_subject, sizeof s_subject);
    snprintf (args, sizeof args, "--subject %s --since 0", hex);
    assert_int_equal (s_audit_lines (h, args, lines, 64, &n), 0);
    assert_int_equal (n, 3 * NA);
    snprintf (args, sizeof args, "--subject %s --since 9999-01-01T00:00:00Z", hex);
    assert_int_equal (s_audit_lines (h, args, lines, 64, &n), 0);
    assert_int_equal (n, 0);
    snprintf (args, sizeof args, "--until 1970-01-02T00:00:00Z");
    assert_int_equal (s_audit_lines (h, args, lines, 64, &n), 0);
    assert_int_equal (n, 0);
    /* Bad values are usage errors, not empty answers.  */
    assert_int_equal (s_audit_lines (h, "--subject 00", lines, 64, &n), 2);
    assert_int_equal (s_audit_lines (h, "--since yesterday", lines, 64, &n), 2);
    assert_int_equal (s_audit_lines (h, "--since 10 --until 5", lines, 64, &n), 2);
    assert_int_equal (s_audit_lines (h, "--after ' -5'", lines, 64, &n), 2);
    /* Nothing comes after the largest sequence number.  */
    assert_int_equal (s_audit_lines (h, "--after 18446744073709551615", lines, 64, &n), 0);
    assert_int_equal (n, 0);
    snprintf (args, sizeof args, "--subject %s --subject %s", hex, hex);
    assert_int_equal (s_audit_lines (h, args, lines, 64, &n), 2);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_end (h);
}

/*  Disconnects client once the broker has logged the refusal of cjit.s2.  */
typedef struct {
    harness_t *h;
    dipx_client_t *client;
    long from; /* log offset */
    int rc;    /* 0: refusal seen */
} s_leaver_t;

static void *
s_leave_when_refused (void *arg)
{
    s_leaver_t *l = arg;
    l->rc = harness_log_wait (l->h, l->from, "session refused to cjit.s2", WAIT_MS);
    dipx_client_destroy (&l->client);
    return NULL;
}

/*  A session ends with its connection, so max_sessions bounds the agencies
    connected at once, not those seen since start. With room for two, five
    agencies connect in turn, each leaving before the next (the old broker
    refused the third for good). Then, with two connected, a third is
    refused (HELLO busy, which libdipx retries) until one of them leaves;
    and a message queued meanwhile for an agency that left reaches it when
    it comes back.  */
static void
test_sessions_end_with_connections (void **state)
{
    (void) state;
    harness_t *h = calloc (1, sizeof *h);
    assert_non_null (h);
    assert_int_equal (harness_init (h, "max_sessions = 2"), 0);
    assert_non_null (harness_add (h, "police.test", DIPX_AGENCY_POLICE, DIPX_STATUS_ACTIVE));
    char ids[5][32];
    for (int i = 0; i < 5; i++) {
        snprintf (ids[i], sizeof ids[i], "cjit.s%d", i);
        assert_non_null (harness_add (h, ids[i], DIPX_AGENCY_CJIT, DIPX_STATUS_ACTIVE));
    }
    assert_int_equal (harness_start (h), 0);
    for (int i = 0; i < 5; i++) {
        dipx_client_t *c = s_client (h, ids[i], 4);
        dipx_client_destroy (&c);
    }
    dipx_client_t *b = s_client (h, ids[1], 4);
    s_leaver_t leaver = {.h = h, .client = s_client (h, ids[0], 4), .from = harness_log_size (h)};
    /* libdipx does its I/O inside its calls: the third agency waits for its
       session here, while a thread disconnects the first once the broker
       has refused the third.  */
    dipx_client_t *c = NULL;
    assert_int_equal (harness_client (h, ids[2], 4, &c), 0);
    pthread_t t;
    assert_int_equal (pthread_create (&t, NULL, s_leave_when_refused, &leaver), 0);
    int ready = dipx_client_wait_ready (c, WAIT_MS);
    pthread_join (t, NULL);
    assert_int_equal (leaver.rc, 0);
    assert_int_equal (ready, 0);
    dipx_client_destroy (&b);
    dipx_client_destroy (&c);
    /* A connection that says HELLO and closes at once, so that its close
       may be seen before its HELLO is committed: its session must end all
       the same, or the two agencies after it cannot both get one.  */
    void *ctx = zmq_ctx_new ();
    assert_non_null (ctx);
    for (int round = 0; round < 10; round++) {
        void *raw = harness_raw (h, ctx, ids[3]);
        assert_non_null (raw);
        int linger = 5000;
        zmq_setsockopt (raw, ZMQ_LINGER, &linger, sizeof linger);
        dipx_frame_t f = {.cmd = DIPX_CMD_HELLO};
        f.u.hello.window = 4;
        uint8_t *out;
        size_t out_len;
        assert_int_equal (dipx_frame_encode (&f, &out, &out_len), 0);
        assert_int_equal (zmq_send (raw, out, out_len, 0), (int) out_len);
        free (out);
        zmq_close (raw);
        dipx_client_t *x = s_client (h, ids[4], 4), *y = s_client (h, ids[1], 4);
        dipx_client_destroy (&x);
        dipx_client_destroy (&y);
    }
    zmq_ctx_term (ctx);
    /* cjit.s0 is gone: its message waits in its queue for its return (a
       sender with window 0 has a session too, for its receipts).  */
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_send_t m = harness_dt1 (ids[0], s_subject);
    dipx_result_t r;
    assert_int_equal (dipx_client_send (police, &m, "back", 4, WAIT_MS, &r), 0);
    dipx_client_t *a = s_client (h, ids[0], 4);
    dipx_message_t *msg = s_recv (a);
    assert_memory_equal (dipx_message_id (msg), r.id, DIPX_MESSAGE_ID_BYTES);
    assert_int_equal (dipx_client_ack (a, msg), 0);
    dipx_message_destroy (&msg);
    dipx_client_destroy (&a);
    dipx_client_destroy (&police);
    s_end (h);
}

int
main (int argc, char **argv)
{
    if (sodium_init () < 0)
        return 1;
    randombytes_buf (s_subject, sizeof s_subject);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_redelivery_after_ack_timeout),
        cmocka_unit_test (test_redelivery_after_reconnect),
        cmocka_unit_test (test_send_only_hello_keeps_receiver),
        cmocka_unit_test (test_expired_card_bars_session),
        cmocka_unit_test (test_unacked_bytes_bound_deliveries),
        cmocka_unit_test (test_stalled_reader_bounded),
        cmocka_unit_test (test_held_redeliveries_dead_letter),
        cmocka_unit_test (test_dead_letter_and_redrive),
        cmocka_unit_test (test_expiry_dead_letters_and_notifies),
        cmocka_unit_test (test_queue_cap_refuses_never_drops),
        cmocka_unit_test (test_queue_byte_cap),
        cmocka_unit_test (test_dedup_across_restart),
        cmocka_unit_test (test_resend_after_expiry_accepted),
        cmocka_unit_test (test_receipts_outcome_and_track),
        cmocka_unit_test (test_storage_full),
        cmocka_unit_test (test_disk_full),
        cmocka_unit_test (test_acks_coalesced),
        cmocka_unit_test (test_audit_query_cli),
        cmocka_unit_test (test_sessions_end_with_connections),
    };
    if (argc > 1)
        cmocka_set_test_filter (argv[1]); /* one case, e.g. test_storage_full */
    return cmocka_run_group_tests (tests, NULL, NULL);
}
