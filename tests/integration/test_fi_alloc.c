/*  test_fi_alloc.c - allocations that fail inside the broker (dipxd_fi, see
    fi_alloc.c): at start-up the broker refuses to start with a logged error
    and exit status 1, never a signal; in service it answers every SEND
    (ACCEPTED, REFUSED or ERROR), never ACCEPTs what it did not store, and
    after a restart without faults everything accepted is delivered and
    audited (fi_ledger.h).

        startup   every allocation made before READY, failed in turn (one
                  broker start each)
        paths     in service: the first allocation on every distinct call
                  path fails, once; a workload of sends, deliveries,
                  acknowledgements, outcomes and tracks reaches the paths
        bursts    in service: runs of consecutive failures at a fixed period,
                  so that whole turns fail (the "commit failed three times"
                  answer) and failures land in the middle of a turn
        resend_out_of_memory
                  every allocation fails: a resend of a stored message is
                  still ACCEPTED, in order after a new message's REFUSED,
                  and the broker retries what it cannot write on a timer
        resend_failed_turn
                  the same in a turn whose commit fails three times
        shutdown_writes_pending
                  shutdown writes the audit records a level-2 turn left

    Run one case: test_fi_alloc <name> (ctest registers each).  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

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
#include "fi_ledger.h"

#define FI_EXE "tests/dipxd_fi"
#define ANSWER_MS 2000
/* A SEND unanswered this long by a running broker breaks the promise: far
   above any answer's time (ASan, the paths mode's backtraces, a slow
   fsync on a loaded machine), since the wait ends at once if it exits.  */
#define SEND_MS 15000

/*  The count the broker reported of its allocations before READY.  */
static long
s_startup_allocs (harness_t *h)
{
    FILE *f = fopen (h->log, "r");
    assert_non_null (f);
    char line[1024];
    long n = -1;
    while (fgets (line, sizeof line, f)) {
        const char *p = strstr (line, "fi-alloc: ");
        long v;
        if (p && sscanf (p, "fi-alloc: %ld allocations before the service loop", &v) == 1)
            n = v;
    }
    fclose (f);
    return n;
}

static void
test_startup (void **state)
{
    (void) state;
    harness_t *h = fi_harness (NULL);
    h->exe = FI_EXE;
    h->env[0] = "DIPX_FI_ALLOC=count";
    assert_int_equal (harness_start (h), 0);
    assert_true (WIFEXITED (harness_stop (h, SIGTERM)));
    long total = s_startup_allocs (h);
    assert_true (total > 0);
    int refused = 0, tolerated = 0;
    char spec[64];
    h->env[0] = spec;
    for (long k = 1; k <= total; k++) {
        snprintf (spec, sizeof spec, "DIPX_FI_ALLOC=start,nth=%ld", k);
        assert_int_equal (truncate (h->log, 0), 0);
        if (harness_start (h) == 0) {
            /* A failure the broker can do without: it must then serve.  */
            tolerated++;
            assert_true (WIFEXITED (harness_stop (h, SIGTERM)));
            fi_assert_log_clean (h);
        } else {
            refused++;
            fi_assert_clean_exit (h);
        }
        if (fi_log_count (h, "fi-alloc: fail") != 1)
            fail_msg ("allocation %ld of %ld did not fail exactly once (log %s)", k, total, h->log);
    }
    print_message ("fi: start-up: %ld allocations failed in turn: %d refused to start cleanly, "
                   "%d tolerated\n", total, refused, tolerated);
    /* The data directory the failed starts left behind serves as usual.  */
    h->exe = NULL;
    h->env[0] = NULL;
    assert_int_equal (harness_start (h), 0);
    fi_ledger_t *l = fi_ledger ();
    fi_open (l, h);
    fi_send (l, SEND_MS);
    assert_int_equal (l->msgs[0].answer, FI_ACCEPTED);
    harness_stop (h, SIGTERM);
    fi_verify (l);
    harness_fini (h);
}

/*  Sends n messages one at a time, receiving as it goes; tracks some. Stops
    early if the broker exits.  */
static void
s_workload (fi_ledger_t *l, int n)
{
    for (int k = 0; k < n; k++) {
        int i = fi_send (l, SEND_MS);
        if (l->msgs[i].answer == FI_SILENT && harness_wait_exit (l->h, 0))
            return;
        fi_receive (l, 0);
        if (k % 4 == 3 && fi_session (l, &l->police, "police.test", 0, ANSWER_MS) == 0) {
            dipx_receipt_t ev[8];
            size_t got = 0;
            dipx_client_track (l->police, l->msgs[i].id, ANSWER_MS, ev, 8, &got); /* may fail */
        }
    }
    uint64_t deadline = dipx_mono_ms () + 5000;
    while (fi_missing (l) > 0 && dipx_mono_ms () < deadline && !harness_wait_exit (l->h, 0))
        fi_receive (l, 200);
}

/*  Runs the workload on dipxd_fi with spec, then checks the promise.  */
static void
s_in_service (const char *spec, int min_failures)
{
    harness_t *h = fi_harness ("ack_timeout_ms = 2000");
    h->exe = FI_EXE;
    h->env[0] = spec;
    assert_int_equal (harness_start (h), 0);
    fi_ledger_t *l = fi_ledger ();
    l->outcomes = true;
    fi_open (l, h);
    s_workload (l, 40);
    if (harness_wait_exit (h, 0))
        fi_assert_clean_exit (h); /* it may stop; only cleanly */
    else if (!WIFEXITED (harness_stop (h, SIGTERM)))
        fail_msg ("broker did not stop cleanly on SIGTERM (log %s)", h->log);
    fi_assert_log_clean (h);
    int failed = fi_log_count (h, "fi-alloc: fail ");
    int paths = fi_log_count (h, "fi-alloc: fail path");
    print_message ("fi: %s: %d allocations failed (%d distinct paths); %d sends unanswered; "
                   "%d accepted not delivered before the restart; client sessions refused %d "
                   "times\n",
                   spec, failed - paths, paths, l->silent, fi_missing (l), l->rehello);
    assert_true (failed >= min_failures); /* the faults really reached the broker */
    int silent = l->silent;
    fi_verify (l);
    if (silent)
        fail_msg ("%d SENDs got no answer at all from the running broker (log %s)", silent,
                  h->log);
    harness_fini (h);
}

static void
test_paths (void **state)
{
    (void) state;
    s_in_service ("DIPX_FI_ALLOC=run,paths", 10);
}

static void
test_bursts (void **state)
{
    (void) state;
    s_in_service ("DIPX_FI_ALLOC=run,nth=3,every=61,burst=4", 10);
}

#define OOM_BURST 1000
#define S_STR(x) S_STR2 (x)
#define S_STR2(x) #x
/* Every allocation of our own code fails, the first OOM_BURST of the service loop.  */
#define S_OOM_SPEC "DIPX_FI_ALLOC=run,nth=1,burst=" S_STR (OOM_BURST)

/*  Stores one message (*stored) and seals another (*fresh) on h's broker
    without faults, then restarts it as dipxd_fi with allocations of our own
    code failing as spec says (LMDB's and libzmq's are not wrapped), and
    opens the raw socket.  */
static void
s_restart_out_of_memory (harness_t *h, fi_ledger_t *l, int *stored, int *fresh, const char *spec)
{
    assert_int_equal (harness_start (h), 0);
    fi_open (l, h);
    *stored = fi_send (l, SEND_MS);
    *fresh = fi_seal (l);
    assert_int_equal (l->msgs[*stored].answer, FI_ACCEPTED);
    fi_close (l);
    assert_true (WIFEXITED (harness_stop (h, SIGTERM)));
    h->exe = FI_EXE;
    h->env[0] = spec;
    assert_int_equal (harness_start (h), 0);
    l->ctx = zmq_ctx_new ();
    assert_non_null (l->ctx);
    l->raw = harness_raw (h, l->ctx, "police.test");
    assert_non_null (l->raw);
}

/*  The next frame on the raw socket, decoded into *f.  */
static void
s_raw_answer (fi_ledger_t *l, dipx_frame_t *f)
{
    static uint8_t buf[4096];
    int n = harness_raw_recv (l->raw, buf, sizeof buf, SEND_MS);
    assert_true (n > 0);
    assert_int_equal (dipx_frame_decode (buf, (size_t) n, f), 0);
}

static void
s_expect_refused (const dipx_frame_t *f, const fi_msg_t *m)
{
    assert_int_equal (f->cmd, DIPX_CMD_REFUSED);
    assert_memory_equal (f->u.refused.id, m->id, sizeof m->id);
    assert_int_equal (-(int) f->u.refused.code, DIPX_E_STORAGE);
}

static void
s_expect_accepted (const dipx_frame_t *f, const fi_msg_t *m)
{
    assert_int_equal (f->cmd, DIPX_CMD_ACCEPTED);
    assert_memory_equal (f->u.accepted.id, m->id, sizeof m->id);
}

static void
s_stop_out_of_memory (harness_t *h, fi_ledger_t *l)
{
    int failed = fi_log_count (h, "fi-alloc: fail ");
    print_message ("fi: %d allocations failed\n", failed);
    /* Fewer than the burst: every allocation of the run failed.  */
    assert_true (failed > 0 && failed < OOM_BURST);
    fi_close (l);
    assert_true (WIFEXITED (harness_stop (h, SIGTERM)));
    fi_assert_log_clean (h);
    harness_fini (h);
}

/*  Every allocation fails: a new message is refused and a resend of a
    message stored before is still ACCEPTED (a REFUSED would tell its sender
    that it was not stored), answered in order, and the broker does not spin
    retrying what it cannot write. Neither answer may need memory: the room
    for a batch of answers is taken at start-up and a write transaction
    begins without allocating, so the turn commits at its last degraded
    level, which writes no audit record, and looking the stored id up
    allocates nothing.  */
static void
test_resend_out_of_memory (void **state)
{
    (void) state;
    fi_ledger_t *l = fi_ledger ();
    int stored, fresh;
    harness_t *h = fi_harness (NULL);
    s_restart_out_of_memory (h, l, &stored, &fresh, S_OOM_SPEC);
    fi_post (l, fresh);
    fi_post (l, stored);
    dipx_frame_t f;
    s_raw_answer (l, &f);
    s_expect_refused (&f, &l->msgs[fresh]);
    s_raw_answer (l, &f);
    s_expect_accepted (&f, &l->msgs[stored]);
    /* The broker holds an audit record it cannot write (its start-up
       record). It retries it on its housekeeping timer, a few allocations a
       second; a broker that retried in a loop made hundreds a second and
       soon used up the burst.  */
    int failed = fi_log_count (h, "fi-alloc: fail ");
    usleep (1000 * 1000);
    int idle = fi_log_count (h, "fi-alloc: fail ") - failed;
    print_message ("fi: %d allocations failed in 1 s idle\n", idle);
    assert_true (idle < 100);
    s_stop_out_of_memory (h, l);
}

/*  The same in a turn whose commit fails three times: a HELLO needs memory
    for its session even at the last level, so its batch is answered from
    the failure branch, which looks the resend up in the store. The frames
    are HELLO, the resend, a new message: the new message's REFUSED says
    "could not commit" only from that branch, and as it and the HELLO
    bracket the resend, the resend was in the same turn. Frames written
    together are read in one batch, so the first try nearly always shows it;
    a few more are allowed.  */
static void
test_resend_failed_turn (void **state)
{
    (void) state;
    fi_ledger_t *l = fi_ledger ();
    int stored, fresh;
    harness_t *h = fi_harness (NULL);
    s_restart_out_of_memory (h, l, &stored, &fresh, S_OOM_SPEC);
    dipx_frame_t hello = {.cmd = DIPX_CMD_HELLO}, f;
    hello.u.hello.window = 8;
    uint8_t *enc;
    size_t len;
    assert_int_equal (dipx_frame_encode (&hello, &enc, &len), 0);
    bool branch = false;
    for (int tries = 0; tries < 5 && !branch; tries++) {
        assert_int_equal (zmq_send (l->raw, enc, len, 0), (int) len);
        fi_post (l, stored);
        fi_post (l, fresh);
        s_raw_answer (l, &f);
        assert_int_equal (f.cmd, DIPX_CMD_ERROR);
        assert_int_equal (f.u.error.cmd, DIPX_CMD_HELLO);
        s_raw_answer (l, &f);
        s_expect_accepted (&f, &l->msgs[stored]);
        s_raw_answer (l, &f);
        s_expect_refused (&f, &l->msgs[fresh]);
        branch = strstr (f.u.refused.reason, "could not commit") != NULL;
    }
    free (enc);
    assert_true (branch);
    assert_true (fi_log_count (h, "commit failed three times") >= 1);
    s_stop_out_of_memory (h, l);
}

/*  Shutdown writes the audit records still pending, whatever level the last
    turn reached. Every allocation fails until the test makes a file, so the
    start-up record waits, and each turn fails at levels 0 and 1 (one
    failed allocation each: every call fails, so each is logged) and commits
    at level 2, which skips pending records. Just after such a turn (a
    housekeeping one, 250 ms apart) allocations work again and SIGTERM
    comes: shutdown's own transaction must write the record, at level 0.
    Should the next housekeeping turn come first (under heavy load), it
    writes the record and the test cannot tell; it never fails wrongly.  */
static void
test_shutdown_writes_pending (void **state)
{
    (void) state;
    fi_ledger_t *l = fi_ledger ();
    int stored, fresh;
    static char spec[800], flag[600];
    harness_t *h = fi_harness (NULL);
    snprintf (flag, sizeof flag, "%s/fi-alloc-stop", h->dir);
    snprintf (spec, sizeof spec, "DIPX_FI_ALLOC=run,nth=1,burst=1000000000,until=%s", flag);
    s_restart_out_of_memory (h, l, &stored, &fresh, spec);
    fi_post (l, fresh);
    dipx_frame_t f;
    s_raw_answer (l, &f);
    s_expect_refused (&f, &l->msgs[fresh]);
    assert_null (strstr (f.u.refused.reason, "could not commit")); /* level 2 committed */
    /* The next turn's second failure: every call fails, so the calls so
       far are the failures logged.  */
    char second[64];
    snprintf (second, sizeof second, ", call %d\n", fi_log_count (h, "fi-alloc: fail ") + 2);
    assert_int_equal (harness_log_wait (h, 0, second, SEND_MS), 0);
    FILE *fp = fopen (flag, "w");
    assert_non_null (fp);
    fclose (fp);
    assert_true (WIFEXITED (harness_stop (h, SIGTERM)));
    fi_close (l);
    assert_int_equal (fi_log_count (h, "commit failed three times"), 0);
    fi_assert_log_clean (h);
    /* The first run's start-up record and the faulty run's.  */
    assert_int_equal (harness_audit_count (h, "started", (char *) NULL), 2);
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
        cmocka_unit_test (test_startup),
        cmocka_unit_test (test_paths),
        cmocka_unit_test (test_bursts),
        cmocka_unit_test (test_resend_out_of_memory),
        cmocka_unit_test (test_resend_failed_turn),
        cmocka_unit_test (test_shutdown_writes_pending),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
