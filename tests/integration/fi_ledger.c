/*  fi_ledger.c - see fi_ledger.h.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "dipx_envelope.h"
#include "dipx_frame.h"
#include "dipx_registry.h"
#include "fi_ledger.h"

#define FI_WAIT_MS 15000

harness_t *
fi_harness (const char *extra)
{
    /* Static: a failed assertion leaves the test without freeing it, and
       LeakSanitizer would drown the failure in a leak report.  */
    static harness_t harness;
    harness_t *h = &harness;
    assert_int_equal (harness_init (h, extra), 0);
    assert_non_null (harness_add (h, "police.test", DIPX_AGENCY_POLICE, DIPX_STATUS_ACTIVE));
    assert_non_null (harness_add (h, "cjit.test", DIPX_AGENCY_CJIT, DIPX_STATUS_ACTIVE));
    return h;
}

fi_ledger_t *
fi_ledger (void)
{
    static fi_ledger_t ledger;
    memset (&ledger, 0, sizeof ledger);
    return &ledger;
}

void
fi_open (fi_ledger_t *l, harness_t *h)
{
    l->h = h;
    l->ctx = zmq_ctx_new ();
    assert_non_null (l->ctx);
    l->raw = harness_raw (h, l->ctx, "police.test");
    assert_non_null (l->raw);
    /* Not waited for: under injected faults a HELLO may need a retry.  */
    assert_int_equal (harness_client (h, "police.test", 0, &l->police), 0);
    assert_int_equal (harness_client (h, "cjit.test", 16, &l->cjit), 0);
}

void
fi_close (fi_ledger_t *l)
{
    dipx_client_destroy (&l->police);
    dipx_client_destroy (&l->cjit);
    if (l->raw)
        zmq_close (l->raw);
    if (l->ctx)
        zmq_ctx_term (l->ctx);
    l->raw = l->ctx = NULL;
}

static int
s_find (const fi_ledger_t *l, const uint8_t *id)
{
    for (int i = 0; i < l->n; i++)
        if (memcmp (l->msgs[i].id, id, DIPX_MESSAGE_ID_BYTES) == 0)
            return i;
    return -1;
}

/*  Waits for message i's answer; answers to other messages (late) are
    recorded too.  */
static void
s_answer (fi_ledger_t *l, int i, int timeout_ms)
{
    static uint8_t buf[70000];
    static dipx_frame_t f;
    fi_msg_t *m = &l->msgs[i];
    uint64_t deadline = dipx_mono_ms () + (uint64_t) timeout_ms;
    m->answer = FI_SILENT;
    m->code = 0;
    /* Wait on the broker's exit too (its pidfd), not only on the socket: a
       broker that stops answers nothing.  */
    int pfd = -1;
#ifdef SYS_pidfd_open
    if (l->h->pid > 0)
        pfd = (int) syscall (SYS_pidfd_open, l->h->pid, 0);
#endif
    for (;;) {
        uint64_t now = dipx_mono_ms ();
        if (now >= deadline)
            break;
        zmq_pollitem_t it[2] = {{l->raw, 0, ZMQ_POLLIN, 0}, {NULL, pfd, ZMQ_POLLIN, 0}};
        if (zmq_poll (it, pfd >= 0 ? 2 : 1, (long) (deadline - now)) < 0 && zmq_errno () != EINTR)
            break;
        if (!(it[0].revents & ZMQ_POLLIN)) {
            if (it[1].revents & ZMQ_POLLIN)
                break; /* the broker exited */
            continue;
        }
        int n = harness_raw_recv (l->raw, buf, sizeof buf, 0);
        if (n < 0)
            break;
        assert_int_equal (dipx_frame_decode (buf, (size_t) n, &f), 0);
        if (f.cmd == DIPX_CMD_ERROR) {
            /* No id: the answer to the send in flight (one at a time).  */
            assert_int_equal (f.u.error.cmd, DIPX_CMD_SEND);
            m->answer = FI_ERROR;
            m->code = -(int) f.u.error.code;
            break;
        }
        const uint8_t *id = f.cmd == DIPX_CMD_ACCEPTED ? f.u.accepted.id : f.u.refused.id;
        assert_true (f.cmd == DIPX_CMD_ACCEPTED || f.cmd == DIPX_CMD_REFUSED);
        int j = s_find (l, id);
        assert_true (j >= 0);
        if (f.cmd == DIPX_CMD_ACCEPTED)
            l->msgs[j].accepted = true;
        if (j == i) {
            m->answer = f.cmd == DIPX_CMD_ACCEPTED ? FI_ACCEPTED : FI_REFUSED;
            m->code = f.cmd == DIPX_CMD_REFUSED ? -(int) f.u.refused.code : 0;
            break;
        }
    }
    if (pfd >= 0)
        close (pfd);
    if (m->answer == FI_SILENT && l->h->pid > 0 && harness_wait_exit (l->h, 0) == 0) {
        l->silent++;
        print_message ("fi: message %d: no answer within %d ms from a running broker\n", i,
                       timeout_ms);
    }
    l->nanswers[m->answer]++;
}

void
fi_post (fi_ledger_t *l, int i)
{
    fi_msg_t *m = &l->msgs[i];
    dipx_frame_t f = {.cmd = DIPX_CMD_SEND};
    f.u.send.env.ptr = m->env;
    f.u.send.env.len = m->env_len;
    uint8_t *out;
    size_t out_len;
    assert_int_equal (dipx_frame_encode (&f, &out, &out_len), 0);
    assert_int_equal (zmq_send (l->raw, out, out_len, 0), (int) out_len);
    free (out);
}

int
fi_resend (fi_ledger_t *l, int i, int timeout_ms)
{
    fi_post (l, i);
    s_answer (l, i, timeout_ms);
    return i;
}

int
fi_seal (fi_ledger_t *l)
{
    assert_true (l->n < FI_MAX);
    int i = l->n++;
    fi_msg_t *m = &l->msgs[i];
    memset (m, 0, sizeof *m);
    randombytes_buf (m->id, sizeof m->id);
    uint8_t subject[DIPX_SUBJECT_BYTES] = {5};
    dipx_send_t s = harness_dt1 ("cjit.test", subject);
    s.id = m->id;
    char body[64];
    int len = snprintf (body, sizeof body, "fault injection message %d", i);
    uint8_t *env;
    assert_int_equal (dipx_client_seal (l->police, &s, body, (size_t) len, &env, &m->env_len), 0);
    assert_true (m->env_len <= sizeof m->env);
    memcpy (m->env, env, m->env_len);
    free (env);
    return i;
}

int
fi_send (fi_ledger_t *l, int timeout_ms)
{
    return fi_resend (l, fi_seal (l), timeout_ms);
}

int
fi_session (fi_ledger_t *l, dipx_client_t **c, const char *id, uint32_t window, int timeout_ms)
{
    /* libdipx asks again after a transient refusal (storage, busy); a HELLO
       refused for good, or never answered, needs a new connection, which
       is what an application would open.  */
    int rc = dipx_client_wait_ready (*c, timeout_ms);
    bool lost = rc == DIPX_E_TIMEOUT && timeout_ms > 0 && harness_wait_exit (l->h, 0) == 0;
    if ((rc != 0 && rc != DIPX_E_TIMEOUT) || lost) {
        if (lost)
            print_message ("fi: %s's HELLO not answered in %d ms: reconnecting\n", id,
                           timeout_ms);
        else
            print_message ("fi: %s's session refused (%s): reconnecting\n", id,
                           dipx_error_name (rc));
        l->rehello++;
        dipx_client_destroy (c);
        assert_int_equal (harness_client (l->h, id, window, c), 0);
    }
    return rc;
}

int
fi_receive (fi_ledger_t *l, int timeout_ms)
{
    int taken = 0;
    fi_session (l, &l->cjit, "cjit.test", 16, 0);
    for (;;) {
        dipx_message_t *msg = NULL;
        if (dipx_client_recv (l->cjit, timeout_ms, &msg) != 0)
            break;
        uint64_t count = dipx_message_delivery_count (msg);
        int i = s_find (l, dipx_message_id (msg));
        if (i < 0)
            l->unknown++;
        else {
            fi_msg_t *m = &l->msgs[i];
            uint64_t bit = count < 64 ? 1ull << count : 1ull << 63;
            /* A second delivery must be a redelivery: a new, higher count.  */
            if (m->seen > 0 && (count <= 1 || (m->counts & bit)))
                l->bad_dup++;
            m->counts |= bit;
            m->seen++;
        }
        dipx_client_ack (l->cjit, msg); /* may be lost to a fault: then redelivered */
        if (l->outcomes && i >= 0 && i % 3 == 0)
            dipx_client_outcome (l->cjit, msg, true, NULL); /* may be refused: not acked yet */
        dipx_message_destroy (&msg);
        taken++;
    }
    return taken;
}

int
fi_missing (const fi_ledger_t *l)
{
    int missing = 0;
    for (int i = 0; i < l->n; i++)
        missing += l->msgs[i].accepted && l->msgs[i].seen == 0;
    return missing;
}

int
fi_log_count (const harness_t *h, const char *needle)
{
    FILE *f = fopen (h->log, "r");
    if (!f)
        return 0;
    static char line[4096];
    int count = 0;
    while (fgets (line, sizeof line, f))
        count += strstr (line, needle) != NULL;
    fclose (f);
    return count;
}

void
fi_assert_log_clean (const harness_t *h)
{
    static const char *const bad[] = {"Sanitizer", "runtime error:", "LeakSanitizer",
                                      "Assertion", "stack-buffer"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (fi_log_count (h, bad[i]))
            fail_msg ("broker log %s has '%s'", h->log, bad[i]);
}

void
fi_assert_clean_exit (const harness_t *h)
{
    int st = h->last_status;
    if (WIFSIGNALED (st))
        fail_msg ("broker died of signal %d (log %s)", WTERMSIG (st), h->log);
    assert_true (WIFEXITED (st));
    if (WEXITSTATUS (st) == 0)
        fail_msg ("broker stopped by itself with status 0 (log %s)", h->log);
    if (fi_log_count (h, "dipxd error:") == 0)
        fail_msg ("broker exited (status %d) without an error line in %s", WEXITSTATUS (st),
                  h->log);
    fi_assert_log_clean (h);
}

/*  One pass over the audit dump: every message has its "accepted" record;
    every delivery received has its "delivered" record.  */
static void
s_check_audit (fi_ledger_t *l)
{
    char cmd[1400];
    snprintf (cmd, sizeof cmd, "%s/broker/dipxd audit --data %s", getenv ("DIPX_BUILD_DIR"),
              l->h->data);
    FILE *p = popen (cmd, "r");
    assert_non_null (p);
    static char line[8192];
    static bool audited_accept[FI_MAX];
    memset (audited_accept, 0, sizeof audited_accept);
    uint64_t counts[FI_MAX];
    for (int i = 0; i < l->n; i++)
        counts[i] = l->msgs[i].counts;
    while (fgets (line, sizeof line, p)) {
        bool acc = strstr (line, "\"ev\":\"accepted\"") != NULL;
        bool del = strstr (line, "\"ev\":\"delivered\"") != NULL;
        char *idp = strstr (line, "\"id\":\"");
        if ((!acc && !del) || !idp)
            continue;
        char hex[33];
        memcpy (hex, idp + 6, 32);
        hex[32] = 0;
        uint8_t id[DIPX_MESSAGE_ID_BYTES];
        assert_int_equal (dipx_id_from_hex (hex, id), 0);
        int i = s_find (l, id);
        assert_true (i >= 0); /* nothing in the audit log that was never sent */
        if (acc)
            audited_accept[i] = true;
        char *cp = strstr (line, "\"count\":");
        if (del && cp) {
            uint64_t c = strtoull (cp + 8, NULL, 10);
            if (c < 64)
                counts[i] &= ~(1ull << c);
        }
    }
    assert_int_equal (pclose (p), 0);
    for (int i = 0; i < l->n; i++) {
        if (!audited_accept[i])
            fail_msg ("message %d was accepted without an \"accepted\" audit record", i);
        if (counts[i])
            fail_msg ("message %d: a delivery received has no \"delivered\" audit record", i);
    }
}

void
fi_verify (fi_ledger_t *l)
{
    harness_t *h = l->h;
    assert_int_equal (h->pid, 0); /* the faulty broker is gone */
    int under[5];
    memcpy (under, l->nanswers, sizeof under);
    h->exe = NULL;
    memset (h->env, 0, sizeof h->env);
    assert_int_equal (harness_start (h), 0);
    /* The clients and the raw socket reconnect by themselves (same port).
       What was refused or never answered is sent again, same id: ACCEPTED,
       once (a message stored after all is recognised by its id).  */
    int resent = 0;
    for (int i = 0; i < l->n; i++) {
        if (l->msgs[i].accepted)
            continue;
        fi_resend (l, i, FI_WAIT_MS);
        if (l->msgs[i].answer != FI_ACCEPTED)
            fail_msg ("message %d: resend after the faults got answer %d code %s", i,
                      l->msgs[i].answer, dipx_error_name (l->msgs[i].code));
        resent++;
    }
    uint64_t deadline = dipx_mono_ms () + 60000;
    while (fi_missing (l) > 0 && dipx_mono_ms () < deadline)
        fi_receive (l, 200);
    int delivered = 0;
    for (int i = 0; i < l->n; i++)
        delivered += l->msgs[i].seen;
    print_message ("fi: %d messages: %d accepted, %d refused, %d errors, %d unanswered under "
                   "faults; %d resent after; %d deliveries\n",
                   l->n, under[FI_ACCEPTED], under[FI_REFUSED], under[FI_ERROR], under[FI_SILENT],
                   resent, delivered);
    assert_int_equal (fi_missing (l), 0); /* nothing accepted is lost */
    assert_int_equal (l->unknown, 0);     /* nothing invented */
    assert_int_equal (l->bad_dup, 0);     /* duplicates only as redeliveries */
    fi_close (l);
    assert_true (WIFEXITED (harness_stop (h, SIGTERM)));
    fi_assert_log_clean (h);
    s_check_audit (l);
}
