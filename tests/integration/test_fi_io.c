/*  test_fi_io.c - the broker's data file fails under it: writes and syncs of
    data.mdb return EIO or ENOSPC (a real errno, from the LD_PRELOAD shim
    libdipx_fi_io.so, see fi_io.c), for a few calls (transient) or for good
    (persistent). The fault is armed by creating a file once the broker is
    READY and has accepted a first batch.

    The promise (fi_ledger.h): the broker never crashes; every SEND is
    answered ACCEPTED, REFUSED or ERROR with storage/storage_full, or the
    broker exits with a logged error and a non-zero status; nothing is
    ACCEPTED while every commit fails; after a restart without faults every
    ACCEPTED message is delivered and audited, and the rest can be resent.

    On top of it, by case:
      - a failed fsync/fdatasync of data pages may be survived: the kernel
        may have dropped those pages, but they belong to the aborted
        transaction and no meta page refers to them (LMDB never overwrites
        a live page), so the next transaction writes and syncs its own;
      - a failed meta-page write leaves LMDB in MDB_FATAL_ERROR (every later
        transaction MDB_PANIC): the broker must stop, not answer errors
        forever;
      - a transient data-page failure (EIO, ENOSPC) may be survived: then the
        broker recovers by itself, without a restart.

    Run one case: test_fi_io <name> (ctest registers each).  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "dipx_envelope.h"
#include "dipx_frame.h"
#include "dipx_registry.h"
#include "fi_ledger.h"

#define ANSWER_MS 15000 /* "answered at all": the wait ends at once if the broker exits */
#define BEFORE 5  /* messages accepted before the fault */
#define DURING 10 /* messages sent once it is armed */

typedef enum {
    MAY_SURVIVE, /* carrying on (with errors) or stopping cleanly are both right */
    MUST_STOP,   /* only a clean stop is right */
} s_expect_t;

/*  Starts the broker with the shim loaded and its faults (spec) waiting
    for the arm file; returns that file's path.  */
static const char *
s_start_shim (harness_t *h, const char *spec)
{
    static char fi[200], arm[600];
    harness_shim (h);
    snprintf (fi, sizeof fi, "DIPX_FI_IO=%s", spec);
    snprintf (arm, sizeof arm, "DIPX_FI_IO_ARM=%s/arm", h->dir);
    h->env[2] = fi;
    h->env[3] = arm;
    assert_int_equal (harness_start (h), 0);
    assert_true (fi_log_count (h, "fi-io: '") == 1); /* the shim is loaded */
    return arm + strlen ("DIPX_FI_IO_ARM=");
}

/*  SIGTERM: the broker exits with status 0 (not a signal's status, whose
    WEXITSTATUS would read 0 too).  */
static void
s_stop_clean (harness_t *h)
{
    int st = harness_stop (h, SIGTERM);
    assert_true (WIFEXITED (st));
    assert_int_equal (WEXITSTATUS (st), 0);
}

/*  A raw connection as agency says HELLO, reads the broker's answer into
    answer, and closes.  */
static void
s_raw_hello (harness_t *h, const char *agency, dipx_frame_t *answer)
{
    void *ctx = zmq_ctx_new ();
    void *raw = harness_raw (h, ctx, agency);
    assert_non_null (raw);
    assert_int_equal (harness_raw_hello (raw, 4, answer, 20000), 0);
    zmq_close (raw);
    zmq_ctx_term (ctx);
}

static void
s_arm (const char *path)
{
    int fd = open (path, O_WRONLY | O_CREAT, 0600);
    assert_true (fd >= 0);
    close (fd);
}

static void
s_io_case (const char *spec, bool transient, s_expect_t expect)
{
    harness_t *h = fi_harness (NULL);
    const char *arm = s_start_shim (h, spec);

    fi_ledger_t *l = fi_ledger ();
    fi_open (l, h);
    for (int i = 0; i < BEFORE; i++) {
        fi_send (l, ANSWER_MS);
        assert_int_equal (l->msgs[i].answer, FI_ACCEPTED);
    }
    uint64_t deadline = dipx_mono_ms () + 15000;
    while (fi_missing (l) > 0 && dipx_mono_ms () < deadline)
        fi_receive (l, 200);
    assert_int_equal (fi_missing (l), 0);

    /* The disk goes bad.  */
    s_arm (arm);
    int first = l->n, accepted_during = 0, bad_codes = 0;
    bool exited = false;
    for (int k = 0; k < DURING && !exited; k++) {
        int i = fi_send (l, ANSWER_MS);
        fi_msg_t *m = &l->msgs[i];
        if (m->answer == FI_ACCEPTED)
            accepted_during++;
        else if (m->answer == FI_REFUSED || m->answer == FI_ERROR) {
            if (m->code != DIPX_E_STORAGE && m->code != DIPX_E_STORAGE_FULL) {
                bad_codes++;
                print_message ("fi: message %d answered with code %s\n", i,
                               dipx_error_name (m->code));
            }
        }
        fi_receive (l, 0);
        exited = harness_wait_exit (h, 0);
    }
    /* A broker that stops may finish its turn first.  */
    if (!exited && expect == MUST_STOP)
        exited = harness_wait_exit (h, 5000);
    /* A resend of a message stored before the fault is answered with its
       ACCEPTED, however the fault has left the broker's turn: a REFUSED
       would tell its sender that it was not stored.  */
    int resent_answer = FI_ACCEPTED;
    if (!exited) {
        fi_resend (l, 0, ANSWER_MS);
        resent_answer = l->msgs[0].answer;
        fi_receive (l, 0);
        if (resent_answer == FI_SILENT && harness_wait_exit (h, 0)) {
            exited = true; /* it stopped meanwhile: judged below as a stop */
            resent_answer = FI_ACCEPTED;
        }
    }
    int injected = fi_log_count (h, "fi-io: fail");
    int last_answer = l->msgs[l->n - 1].answer;
    print_message ("fi: %s: %d I/O calls failed; of %d sends %d ACCEPTED; broker %s\n", spec,
                   injected, l->n - first, accepted_during,
                   exited ? "stopped by itself" : "carried on");
    assert_true (injected > 0); /* the fault really hit the data file */

    /* Judge what the broker did, then check the data in any case; a broken
       promise is reported at the end, after the data has been checked.  */
    char broken[512] = "";
    if (exited)
        fi_assert_clean_exit (h);
    else {
        if (expect == MUST_STOP)
            snprintf (broken, sizeof broken,
                      "the broker carried on after '%s' (it should stop with a logged error: "
                      "the state of its data file is unknown); see %s",
                      spec, h->log);
        else if (transient && last_answer != FI_ACCEPTED)
            snprintf (broken, sizeof broken,
                      "the broker did not recover after the transient fault '%s' (last answer "
                      "%d); see %s",
                      spec, last_answer, h->log);
        if (!transient && accepted_during > 0)
            snprintf (broken, sizeof broken,
                      "%d messages ACCEPTED while every write or sync of the data file failed "
                      "('%s'); see %s",
                      accepted_during, spec, h->log);
        int st = harness_stop (h, SIGTERM);
        if (!WIFEXITED (st))
            fail_msg ("the broker did not stop cleanly on SIGTERM (log %s)", h->log);
        fi_assert_log_clean (h);
    }
    if (bad_codes)
        snprintf (broken, sizeof broken, "%d SENDs answered with a code other than storage or "
                  "storage_full ('%s'); see %s", bad_codes, spec, h->log);
    if (resent_answer != FI_ACCEPTED)
        snprintf (broken, sizeof broken, "a stored message sent again was answered %d, not "
                  "ACCEPTED ('%s'); see %s", resent_answer, spec, h->log);
    fi_verify (l);
    if (broken[0])
        fail_msg ("%s", broken);
    harness_fini (h);
}

static void
test_eio_data_transient (void **state)
{
    (void) state;
    s_io_case ("errno=EIO,ops=data,count=2", true, MAY_SURVIVE);
}

static void
test_eio_data_persistent (void **state)
{
    (void) state;
    s_io_case ("errno=EIO,ops=data", false, MAY_SURVIVE);
}

static void
test_eio_sync_transient (void **state)
{
    (void) state;
    s_io_case ("errno=EIO,ops=sync,count=1", true, MAY_SURVIVE);
}

static void
test_eio_sync_persistent (void **state)
{
    (void) state;
    s_io_case ("errno=EIO,ops=sync", false, MAY_SURVIVE);
}

static void
test_enospc_data_transient (void **state)
{
    (void) state;
    s_io_case ("errno=ENOSPC,ops=data,count=2", true, MAY_SURVIVE);
}

static void
test_enospc_data_persistent (void **state)
{
    (void) state;
    s_io_case ("errno=ENOSPC,ops=data", false, MAY_SURVIVE);
}

static void
test_eio_meta_transient (void **state)
{
    (void) state;
    s_io_case ("errno=EIO,ops=meta,count=1", true, MUST_STOP);
}

/*  A HELLO whose turn cannot be committed (three failed writes: the turn
    and its two degraded runs) is answered ERROR storage. The library asks
    again, backing off from 100 ms, rather than waiting for a reconnect that
    would never come, and the session starts once the disk works.  */
static void
test_hello_retried (void **state)
{
    (void) state;
    harness_t *h = fi_harness (NULL);
    const char *arm = s_start_shim (h, "errno=EIO,ops=data,count=3");
    /* A first session makes sure the start-up record is committed, so the
       faults fall on the second HELLO's turn.  */
    dipx_client_t *first, *c;
    assert_int_equal (harness_client (h, "police.test", 16, &first), 0);
    assert_int_equal (dipx_client_wait_ready (first, 20000), 0);
    s_arm (arm);
    assert_int_equal (harness_client (h, "cjit.test", 16, &c), 0);
    assert_int_equal (dipx_client_wait_ready (c, 20000), 0);
    assert_int_equal (fi_log_count (h, "commit failed three times"), 1);
    dipx_client_destroy (&c);
    dipx_client_destroy (&first);
    s_stop_clean (h);
    harness_fini (h);
}

/*  A session made by a HELLO whose turn could not be committed goes with
    the turn: the agency, gone without asking again, holds no max_sessions
    slot, so another agency gets the last one.  */
static void
test_failed_hello_leaves_no_session (void **state)
{
    (void) state;
    harness_t *h = fi_harness ("max_sessions = 2");
    assert_non_null (harness_add (h, "court.test", DIPX_AGENCY_COURT, DIPX_STATUS_ACTIVE));
    const char *arm = s_start_shim (h, "errno=EIO,ops=data,count=3");
    dipx_client_t *police;
    assert_int_equal (harness_client (h, "police.test", 16, &police), 0);
    assert_int_equal (dipx_client_wait_ready (police, 20000), 0);
    s_arm (arm);
    /* A raw connection says HELLO once, gets the turn's error, and leaves.  */
    dipx_frame_t f;
    s_raw_hello (h, "cjit.test", &f);
    assert_int_equal (f.cmd, DIPX_CMD_ERROR);
    assert_int_equal (f.u.error.code, (uint64_t) -DIPX_E_STORAGE);
    dipx_client_t *court;
    assert_int_equal (harness_client (h, "court.test", 0, &court), 0);
    assert_int_equal (dipx_client_wait_ready (court, 20000), 0);
    dipx_client_destroy (&court);
    dipx_client_destroy (&police);
    s_stop_clean (h);
    harness_fini (h);
}

/*  Without ZMQ_SRCFD (the shim hides it, as a libzmq without that deprecated
    property would) no HELLO can be tied to its connection, so no session is
    bound and the transport's close events end none. A connection that says
    HELLO, gets its WELCOME and leaves is then noticed only by a later frame
    to it: the broker repeats WELCOME to unbound sessions, and that frame
    finds the connection gone. Before, such a session held its max_sessions
    slot for good. A live unbound session is not ended by the repeats.  */
static void
test_unbound_session_rechecked (void **state)
{
    (void) state;
    harness_t *h = fi_harness ("max_sessions = 2");
    assert_non_null (harness_add (h, "court.test", DIPX_AGENCY_COURT, DIPX_STATUS_ACTIVE));
    static char nofd[] = "DIPX_FI_NO_SRCFD=1";
    harness_shim (h);
    h->env[2] = nofd;
    assert_int_equal (harness_start (h), 0);
    assert_int_equal (fi_log_count (h, "fi-io: frames without ZMQ_SRCFD"), 1);
    dipx_client_t *cjit;
    assert_int_equal (harness_client (h, "cjit.test", 8, &cjit), 0);
    assert_int_equal (dipx_client_wait_ready (cjit, 20000), 0);
    /* The court's raw connection takes the second slot and leaves.  */
    long from = harness_log_size (h);
    dipx_frame_t f;
    s_raw_hello (h, "court.test", &f);
    assert_int_equal (f.cmd, DIPX_CMD_WELCOME);
    /* The police need a slot: refused busy until the court's ends.  */
    dipx_client_t *police;
    assert_int_equal (harness_client (h, "police.test", 0, &police), 0);
    assert_int_equal (dipx_client_wait_ready (police, 20000), 0);
    assert_int_equal (harness_log_wait (h, from, "session of court.test ended", 5000), 0);
    /* The shim really hid the descriptors (the broker asked for them).  */
    assert_int_equal (fi_log_count (h, "fi-io: hid a frame's ZMQ_SRCFD"), 1);
    assert_int_equal (harness_round_trip (police, cjit, "cjit.test", 20000), 0);
    assert_int_equal (harness_log_count (h, from, "session of cjit.test ended"), 0);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_stop_clean (h);
    harness_fini (h);
}

/*  Receives cjit's next message, checks that it is message id on its first
    delivery, and acknowledges it.  */
static void
s_take_first (dipx_client_t *cjit, const uint8_t *id)
{
    dipx_message_t *msg = NULL;
    assert_int_equal (dipx_client_recv (cjit, 20000, &msg), 0);
    assert_memory_equal (dipx_message_id (msg), id, DIPX_MESSAGE_ID_BYTES);
    assert_int_equal (dipx_message_delivery_count (msg), 1);
    assert_int_equal (dipx_client_ack (cjit, msg), 0);
    dipx_message_destroy (&msg);
}

/*  Starts the broker with the shim refusing DELIVERs while *full exists
    (not yet), and police and cjit (window 8) connected.  */
/* Extra environment (DIPX_FI_FULL_ERRNO=..., DIPX_FI_FULL_COUNT=...) for the
   next s_start_full, or NULL.  */
static const char *s_full_env;

static harness_t *
s_start_full (const char *extra, dipx_client_t **police, dipx_client_t **cjit, const char **full)
{
    harness_t *h = fi_harness (extra);
    static char gate[600];
    harness_shim (h);
    snprintf (gate, sizeof gate, "DIPX_FI_FULL_GATE=%s/full", h->dir);
    h->env[2] = gate;
    if (s_full_env)
        h->env[3] = s_full_env;
    assert_int_equal (harness_start (h), 0);
    assert_int_equal (harness_client (h, "police.test", 0, police), 0);
    assert_int_equal (harness_client (h, "cjit.test", 8, cjit), 0);
    assert_int_equal (dipx_client_wait_ready (*police, 20000), 0);
    assert_int_equal (dipx_client_wait_ready (*cjit, 20000), 0);
    *full = gate + strlen ("DIPX_FI_FULL_GATE=");
    return h;
}

/*  A DELIVER that finds the recipient's send queue full (EAGAIN, here from
    the shim) pauses its session for a second, then for twice as long each
    time the one DELIVER that probes it finds the queue full again; once a
    probe goes out, the rest follow, on the same connection, with no new
    HELLO. Before, the session stayed paused until the agency's next HELLO,
    which libdipx sends only on a new connection. A DELIVER that never left
    is not an attempt: the message arrives with count 1, never having been
    dead-lettered for max_deliveries (2 here) of them, and its sender hears
    of the one delivery only.  */
static void
test_full_send_queue_resumes (void **state)
{
    (void) state;
    dipx_client_t *police, *cjit;
    const char *full;
    s_full_env = "DIPX_FI_FULL_COUNT=2"; /* the shim refuses two DELIVERs only */
    harness_t *h = s_start_full ("max_deliveries = 2", &police, &cjit, &full);
    s_full_env = NULL;
    s_arm (full);
    uint8_t subject[DIPX_SUBJECT_BYTES] = {1};
    dipx_send_t m = harness_dt1 ("cjit.test", subject);
    dipx_result_t r[2];
    assert_int_equal (dipx_client_send (police, &m, "missed", 6, 20000, &r[0]), 0);
    /* The first DELIVER finds the queue full; a message sent then waits
       behind it, not sent beside the probe a second later, which finds the
       queue full again.  */
    assert_int_equal (harness_log_wait (h, 0, "fi-io: send queue full for a DELIVER", 20000), 0);
    assert_int_equal (dipx_client_send (police, &m, "behind", 6, 20000, &r[1]), 0);
    /* The next probe, after twice the rest, goes out: the missed one (its
       third DELIVER, its first attempt), then the other (its first).  */
    for (int i = 0; i < 2; i++)
        s_take_first (cjit, r[i].id);
    /* Until both are acknowledged: one delivered receipt each, count 1.  */
    int delivered[2] = {0}, acked = 0;
    while (acked < 2) {
        dipx_receipt_t rc;
        assert_int_equal (dipx_client_receipt (police, 20000, &rc), 0);
        int k = memcmp (rc.id, r[0].id, DIPX_MESSAGE_ID_BYTES) == 0 ? 0 : 1;
        assert_memory_equal (rc.id, r[k].id, DIPX_MESSAGE_ID_BYTES);
        assert_true (rc.event == DIPX_EVENT_DELIVERED || rc.event == DIPX_EVENT_ACKED);
        if (rc.event == DIPX_EVENT_DELIVERED) {
            assert_int_equal (rc.count, 1);
            delivered[k]++;
        } else
            acked++;
    }
    assert_int_equal (delivered[0], 1);
    assert_int_equal (delivered[1], 1);
    assert_int_equal (fi_log_count (h, "fi-io: send queue full for a DELIVER"), 2);
    assert_int_equal (harness_round_trip (police, cjit, "cjit.test", 20000), 0);
    /* The audit trail has all three DELIVERs, and each miss, with its count.
       By the broker's clock, the rest after the second miss was twice the
       first: the DELIVER that went out came 3 s after the first, 2 s
       without the doubling.  */
    char idhex[33];
    dipx_id_to_hex (r[0].id, idhex);
    uint64_t at[3];
    assert_int_equal (harness_audit_times (h, at, 3, "\"ev\":\"delivered\"", idhex, NULL), 3);
    assert_int_equal (
        harness_audit_count (h, "\"ev\":\"undeliverable\"", "\"count\":1", idhex, NULL), 2);
    print_message ("DELIVERs at +0, +%llu, +%llu ms\n", (unsigned long long) (at[1] - at[0]),
                   (unsigned long long) (at[2] - at[0]));
    assert_true (at[1] - at[0] >= 1000 && at[2] - at[1] >= 2000);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_stop_clean (h);
    harness_fini (h);
}

/*  A DELIVER whose connection is gone when it is sent (EHOSTUNREACH, here
    from the shim; in life the connection closed between the turn that
    planned it and the send) ends the session and is not an attempt: after
    the agency reconnects the message arrives with count 1, and its sender
    hears of that one delivery only. The audit trail has both DELIVERs and
    the miss.  */
static void
test_gone_connection_deliver_taken_back (void **state)
{
    (void) state;
    dipx_client_t *police, *cjit;
    const char *full;
    s_full_env = "DIPX_FI_FULL_ERRNO=EHOSTUNREACH";
    harness_t *h = s_start_full (NULL, &police, &cjit, &full);
    s_full_env = NULL;
    s_arm (full);
    uint8_t subject[DIPX_SUBJECT_BYTES] = {1};
    dipx_send_t m = harness_dt1 ("cjit.test", subject);
    dipx_result_t r;
    assert_int_equal (dipx_client_send (police, &m, "gone", 4, 20000, &r), 0);
    assert_int_equal (harness_log_wait (h, 0, "fi-io: connection gone for a DELIVER", 20000), 0);
    assert_int_equal (unlink (full), 0);
    /* The shim left the connection up; its session is gone. The agency
       comes back as it would after a lost connection.  */
    dipx_client_destroy (&cjit);
    assert_int_equal (harness_client (h, "cjit.test", 8, &cjit), 0);
    s_take_first (cjit, r.id);
    int delivered = 0;
    for (;;) {
        dipx_receipt_t rc;
        assert_int_equal (dipx_client_receipt (police, 20000, &rc), 0);
        assert_memory_equal (rc.id, r.id, DIPX_MESSAGE_ID_BYTES);
        assert_true (rc.event == DIPX_EVENT_DELIVERED || rc.event == DIPX_EVENT_ACKED);
        if (rc.event == DIPX_EVENT_ACKED)
            break;
        assert_int_equal (rc.count, 1);
        delivered++;
    }
    assert_int_equal (delivered, 1);
    assert_int_equal (fi_log_count (h, "fi-io: connection gone for a DELIVER"), 1);
    char idhex[33];
    dipx_id_to_hex (r.id, idhex);
    assert_int_equal (harness_audit_count (h, "\"ev\":\"delivered\"", idhex, NULL), 2);
    assert_int_equal (
        harness_audit_count (h, "\"ev\":\"undeliverable\"", "\"count\":1", idhex, NULL), 1);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_stop_clean (h);
    harness_fini (h);
}

/*  Waits for the ACKED receipt of id, skipping other receipts.  */
static void
s_wait_acked (dipx_client_t *police, const uint8_t *id)
{
    for (;;) {
        dipx_receipt_t rc;
        assert_int_equal (dipx_client_receipt (police, 20000, &rc), 0);
        if (rc.event == DIPX_EVENT_ACKED && memcmp (rc.id, id, DIPX_MESSAGE_ID_BYTES) == 0)
            return;
    }
}

/*  The message a full send queue made the session miss is acknowledged
    (from an earlier copy) while the session rests: nothing is left to probe
    with, so the next new message is the probe, and it and the rest arrive.  */
static void
test_full_send_queue_ack_during_pause (void **state)
{
    (void) state;
    dipx_client_t *police, *cjit;
    const char *full;
    harness_t *h = s_start_full ("ack_timeout_ms = 1000", &police, &cjit, &full);
    uint8_t subject[DIPX_SUBJECT_BYTES] = {1};
    dipx_send_t m = harness_dt1 ("cjit.test", subject);
    dipx_result_t r;
    assert_int_equal (dipx_client_send (police, &m, "first", 5, 20000, &r), 0);
    dipx_message_t *first = NULL;
    assert_int_equal (dipx_client_recv (cjit, 20000, &first), 0);
    /* Its redelivery, an ack timeout later, finds the queue full.  */
    s_arm (full);
    assert_int_equal (harness_log_wait (h, 0, "fi-io: send queue full for a DELIVER", 20000), 0);
    assert_int_equal (dipx_client_ack (cjit, first), 0);
    dipx_message_destroy (&first);
    s_wait_acked (police, r.id);
    assert_int_equal (unlink (full), 0);
    for (int i = 0; i < 3; i++) {
        dipx_result_t next;
        assert_int_equal (dipx_client_send (police, &m, "next", 4, 20000, &next), 0);
        s_take_first (cjit, next.id);
    }
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_stop_clean (h);
    harness_fini (h);
}

#define S_LOUD_FRAME (1 << 20) /* just under the default max_frame */
#define S_LOUD_MAX 1600         /* frames written at most */
#define S_LOUD_GROWTH_MB 128    /* the broker's RSS may grow by this much */

/*  An agency's connection that writes large frames faster than the broker
    reads them costs the broker a bounded amount of memory. The disk stalls
    (the shim holds every sync of data.mdb, so the commit in progress
    waits); the loop thread reads frames into the next batch until it holds
    16 MiB, and then nothing, so what the connection writes waits in the
    broker's queue for it (libzmq's, in frames) and then in TCP. The
    connection writes 1 MiB frames until the broker has taken none for a
    second. Before, the queue held 1,024 of them: over a GiB from one
    connection (and 280 MiB with the queue bounded but not the batch's
    bytes). Then the disk
    comes back: the message posted before the stall is ACCEPTED, every
    frame is answered (ERROR: they are no frames), and a round trip works.  */
static void
test_loud_connection_bounded (void **state)
{
    (void) state;
    harness_t *h = fi_harness (NULL);
    static char hold_env[600], *gate;
    harness_shim (h);
    snprintf (hold_env, sizeof hold_env, "DIPX_FI_HOLD_GATE=%s/hold", h->dir);
    gate = hold_env + strlen ("DIPX_FI_HOLD_GATE=");
    h->env[2] = "DIPX_FI_HOLD=sync";
    h->env[3] = hold_env;
    assert_int_equal (harness_start (h), 0);
    dipx_client_t *police, *cjit;
    assert_int_equal (harness_client (h, "police.test", 0, &police), 0);
    assert_int_equal (harness_client (h, "cjit.test", 8, &cjit), 0);
    assert_int_equal (dipx_client_wait_ready (police, 20000), 0);
    assert_int_equal (dipx_client_wait_ready (cjit, 20000), 0);
    void *ctx = zmq_ctx_new ();
    void *loud = harness_raw_sender (h, ctx, "police.test", 2);
    assert_non_null (loud);
    /* Connected before the stall: the broker answers ZAP between commits.  */
    static uint8_t frame[S_LOUD_FRAME];
    memset (frame, 0xc1, sizeof frame); /* msgpack's never-used byte */
    uint8_t buf[512];
    assert_int_equal (zmq_send (loud, frame, 1, 0), 1);
    assert_true (harness_raw_recv (loud, buf, sizeof buf, 20000) > 0);
    long rss0 = harness_broker_kb (h, "VmRSS");

    /* The disk stalls under a commit.  */
    s_arm (gate);
    uint8_t subject[DIPX_SUBJECT_BYTES] = {1}, id[DIPX_MESSAGE_ID_BYTES];
    dipx_send_t m = harness_dt1 ("cjit.test", subject);
    assert_int_equal (dipx_client_post (police, &m, "before the stall", 16, id), 0);
    assert_int_equal (harness_log_wait (h, 0, "fi-io: holding a sync of data.mdb", 20000), 0);

    int sent = 0;
    while (sent < S_LOUD_MAX) {
        zmq_pollitem_t it = {loud, 0, ZMQ_POLLOUT, 0};
        if (zmq_poll (&it, 1, 1000) <= 0)
            break; /* taken no more for a second */
        assert_int_equal (zmq_send (loud, frame, sizeof frame, ZMQ_DONTWAIT), (int) sizeof frame);
        sent++;
    }
    long rss1 = harness_broker_kb (h, "VmRSS");
    print_message ("loud connection: %d frames of 1 MiB written while the disk stalled; "
                   "broker RSS %ld -> %ld MiB\n",
                   sent, rss0 / 1024, rss1 / 1024);
    assert_true (sent < S_LOUD_MAX);
    assert_true (rss1 - rss0 < S_LOUD_GROWTH_MB * 1024);

    /* The disk comes back.  */
    assert_int_equal (unlink (gate), 0);
    dipx_result_t r;
    assert_int_equal (dipx_client_result (police, 60000, &r), 0);
    assert_memory_equal (r.id, id, sizeof id);
    int answered = 0;
    while (answered < sent) {
        int n = harness_raw_recv (loud, buf, sizeof buf, 20000);
        assert_true (n > 0);
        dipx_frame_t f;
        assert_int_equal (dipx_frame_decode (buf, (size_t) n, &f), 0);
        assert_int_equal (f.cmd, DIPX_CMD_ERROR);
        answered++;
    }
    zmq_close (loud);
    zmq_ctx_term (ctx);
    s_take_first (cjit, id);
    assert_int_equal (harness_round_trip (police, cjit, "cjit.test", 20000), 0);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_stop_clean (h);
    fi_assert_log_clean (h);
    harness_fini (h);
}

int
main (int argc, char **argv)
{
    if (sodium_init () < 0)
        return 1;
    if (argc > 1)
        cmocka_set_test_filter (argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_eio_data_transient),
        cmocka_unit_test (test_eio_data_persistent),
        cmocka_unit_test (test_eio_sync_transient),
        cmocka_unit_test (test_eio_sync_persistent),
        cmocka_unit_test (test_enospc_data_transient),
        cmocka_unit_test (test_enospc_data_persistent),
        cmocka_unit_test (test_eio_meta_transient),
        cmocka_unit_test (test_hello_retried),
        cmocka_unit_test (test_failed_hello_leaves_no_session),
        cmocka_unit_test (test_unbound_session_rechecked),
        cmocka_unit_test (test_full_send_queue_resumes),
        cmocka_unit_test (test_gone_connection_deliver_taken_back),
        cmocka_unit_test (test_full_send_queue_ack_during_pause),
        cmocka_unit_test (test_loud_connection_bounded),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
