/*  test_reload.c - SIGHUP with a large registry against a real dipxd: the
    registry, whose every card's self-signature is verified, is read on a
    thread of its own, so the broker goes on answering frames and ZAP
    handshakes meanwhile; what was read then takes effect; SIGHUPs during a
    reload are coalesced into one more; and SIGTERM during a reload stops
    cleanly (under ASan: nothing leaked).

    The large registry is the harness's agencies plus S_BULK generated cards,
    sized so that reading it takes far longer than a round trip (about 1.5 s
    here against tens of milliseconds). The cards are made once per program,
    on a fast path: no dipx_identity_t (its keys live in sodium_malloc pages),
    an Ed25519 key pair and a random CURVE key, and the card text written and
    signed directly; the broker checks them exactly as it would real ones.

    Synchronised on the broker's log lines (harness_log_wait) and replies,
    never on sleeps. "reload: reading" is logged when a reload starts and
    "reloaded: " when it has been swapped in. The broker runs with the
    fault-injection shim (fi_io.c), which holds the reload thread's open of
    the policy file, read after the registry, for as long as a hold file
    exists: so what a test does "during the reload" happens during it
    however slow the machine, instead of racing a reload of a second or
    two.  */
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

#include "dipx_card.h"
#include "dipx_envelope.h"
#include "dipx_registry.h"
#include "harness.h"

#define WAIT_MS 15000
#define RELOAD_MS 120000 /* reading the large registry: ~1.5 s, generous for a busy machine */
#define S_BULK 25000     /* generated agencies in the large registry */
#define S_STARTED "reload: reading"
#define S_RELOADED "reloaded: registry "
#define S_HELD "fi-io: holding open of "

static uint8_t s_subject[DIPX_SUBJECT_BYTES];
static char *s_bulk;      /* S_BULK registry entries, as file text */
static size_t s_bulk_len; /* its length */

/*  One generated registry entry (a blank line, the card, its status lines),
    appended at out. Returns its length.  */
static size_t
s_bulk_entry (int i, char *out)
{
    dipx_card_t card;
    memset (&card, 0, sizeof card);
    snprintf (card.id, sizeof card.id, "bulk.%06d", i);
    snprintf (card.name, sizeof card.name, "Generated agency %d", i);
    card.type = DIPX_AGENCY_TREATMENT;
    snprintf (card.org, sizeof card.org, "BULK%d", i % 100);
    snprintf (card.area, sizeof card.area, "AREA1");
    card.valid_from = 1700000000;
    card.valid_until = 4000000000;
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair (card.sign_pk, sk);
    randombytes_buf (card.enc_pk, sizeof card.enc_pk);
    /* The self-signature covers "dipx-v1-card\0" and the text before the
       "self-sig: " line (dipx_card.h).  */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal (dipx_card_format (&card, &text, &len), 0);
    const char *sig_line = strstr (text, "self-sig: ");
    assert_non_null (sig_line);
    static const char ctx[] = "dipx-v1-card";
    uint8_t msg[sizeof ctx + DIPX_MAX_CARD_BYTES];
    size_t body = (size_t) (sig_line - text);
    memcpy (msg, ctx, sizeof ctx);
    memcpy (msg + sizeof ctx, text, body);
    crypto_sign_detached (card.sig, NULL, msg, sizeof ctx + body, sk);
    sodium_memzero (sk, sizeof sk);
    free (text);
    assert_int_equal (dipx_card_format (&card, &text, &len), 0);
    size_t n = 0;
    out[n++] = '\n';
    memcpy (out + n, text, len);
    n += len;
    n += (size_t) sprintf (out + n, "status: active\nchanged: 2026-01-01T00:00:00Z\n");
    free (text);
    return n;
}

/*  Makes the S_BULK entries, once per program.  */
static void
s_bulk_make (void)
{
    if (s_bulk)
        return;
    uint64_t t0 = dipx_mono_ms ();
    size_t cap = (size_t) S_BULK * (DIPX_MAX_CARD_BYTES + 64);
    s_bulk = malloc (cap);
    assert_non_null (s_bulk);
    for (int i = 0; i < S_BULK; i++)
        s_bulk_len += s_bulk_entry (i, s_bulk + s_bulk_len);
    fprintf (stderr, "# %d cards made in %llu ms\n", S_BULK,
             (unsigned long long) (dipx_mono_ms () - t0));
}

/*  Writes the harness's agencies (harness_write_registry) followed by the
    bulk entries, atomically (a temporary file renamed over it), so a reload
    reads either the old file or the whole new one.  */
static void
s_write_large_registry (harness_t *h)
{
    s_bulk_make ();
    assert_int_equal (harness_write_registry (h), 0);
    FILE *f = fopen (h->registry, "r");
    assert_non_null (f);
    static char base[64 * 1024];
    size_t n = fread (base, 1, sizeof base, f);
    assert_true (feof (f));
    fclose (f);
    char tmp[600];
    snprintf (tmp, sizeof tmp, "%s.large", h->registry);
    f = fopen (tmp, "w");
    assert_non_null (f);
    assert_int_equal (fwrite (base, 1, n, f), n);
    assert_int_equal (fwrite (s_bulk, 1, s_bulk_len, f), s_bulk_len);
    assert_int_equal (fclose (f), 0);
    assert_int_equal (rename (tmp, h->registry), 0);
}

/*  Writes the large registry and sends SIGHUP; returns the log offset from
    before the signal.  */
static long
s_hup_large (harness_t *h)
{
    s_write_large_registry (h);
    long from = harness_log_size (h);
    assert_int_equal (kill (h->pid, SIGHUP), 0);
    return from;
}

/*  The number in the last "reloaded: registry N agencies" line after from.  */
static int
s_reloaded_agencies (harness_t *h, long from)
{
    FILE *f = fopen (h->log, "r");
    assert_non_null (f);
    assert_int_equal (fseek (f, from, SEEK_SET), 0);
    char line[4096];
    int n = -1;
    while (fgets (line, sizeof line, f)) {
        const char *p = strstr (line, S_RELOADED);
        if (p)
            n = atoi (p + strlen (S_RELOADED));
    }
    fclose (f);
    return n;
}

static int
s_setup (void **state)
{
    harness_t *h = calloc (1, sizeof *h);
    assert_non_null (h);
    assert_int_equal (harness_init (h, NULL), 0);
    assert_non_null (harness_add (h, "police.test", DIPX_AGENCY_POLICE, DIPX_STATUS_ACTIVE));
    assert_non_null (harness_add (h, "cjit.test", DIPX_AGENCY_CJIT, DIPX_STATUS_ACTIVE));
    assert_non_null (harness_add (h, "court.test", DIPX_AGENCY_COURT, DIPX_STATUS_ACTIVE));
    /* Not in the registry the broker starts with; added by a reload.  */
    assert_non_null (harness_add (h, "police.new", DIPX_AGENCY_POLICE, -1));
    /* The clients' peers: every agency, and none of the generated ones
       (loading those would cost each client what it costs the broker).  */
    assert_int_equal (harness_write_peers (h), 0);
    static char hold[] = "DIPX_FI_HOLD=/policy.conf", gate[600];
    snprintf (gate, sizeof gate, "DIPX_FI_HOLD_GATE=%s/hold", h->dir);
    harness_shim (h);
    h->env[2] = hold;
    h->env[3] = gate;
    assert_int_equal (harness_start (h), 0);
    *state = h;
    return 0;
}

static int
s_teardown (void **state)
{
    harness_t *h = *state;
    harness_fini (h);
    free (h);
    return 0;
}

/*  Makes the broker's next reload wait before it opens the policy file,
    and sends SIGHUP with the large registry written; returns the log offset
    from before the signal, once the reload waits (the large registry read
    and its cards checked).  */
static long
s_hup_held (harness_t *h)
{
    char path[600];
    snprintf (path, sizeof path, "%s/hold", h->dir);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    assert_int_equal (fclose (f), 0);
    long from = s_hup_large (h);
    assert_int_equal (harness_log_wait (h, from, S_STARTED, WAIT_MS), 0);
    assert_int_equal (harness_log_wait (h, from, S_HELD, RELOAD_MS), 0);
    return from;
}

/*  Lets the held reload go on.  */
static void
s_release (harness_t *h)
{
    char path[600];
    snprintf (path, sizeof path, "%s/hold", h->dir);
    assert_int_equal (unlink (path), 0);
}

/*  police sends one message to cjit, which receives and acknowledges it.  */
static void
s_round_trip (dipx_client_t *police, dipx_client_t *cjit)
{
    assert_int_equal (harness_round_trip (police, cjit, "cjit.test", WAIT_MS), 0);
}

/*  An agency's connection is refused by the ZAP handler.  */
static void
s_refused (harness_t *h, const char *id)
{
    dipx_client_t *c = NULL;
    assert_int_equal (harness_client (h, id, 0, &c), 0);
    assert_int_equal (dipx_client_wait_ready (c, WAIT_MS), DIPX_E_AUTH);
    dipx_client_destroy (&c);
}

/*  While the large registry is read, a send -> receive round trip completes
    and a new connection is admitted (ZAP answered); then the new registry
    is in force: an agency it adds is admitted, one it drops is refused.  */
static void
test_serves_during_reload (void **state)
{
    harness_t *h = *state;
    dipx_client_t *police = harness_ready_client (h, "police.test", 0, WAIT_MS);
    dipx_client_t *cjit = harness_ready_client (h, "cjit.test", 16, WAIT_MS);
    assert_non_null (police);
    assert_non_null (cjit);
    s_round_trip (police, cjit);
    s_refused (h, "police.new");

    harness_agency (h, "police.new")->status = DIPX_STATUS_ACTIVE;
    harness_agency (h, "court.test")->status = -1; /* dropped from the file */
    long from = s_hup_held (h);
    uint64_t t0 = dipx_mono_ms ();

    /* A round trip completes with the reload under way; a broker whose
       loop thread read the files itself would be stuck in the reload.  */
    s_round_trip (police, cjit);
    uint64_t rt_ms = dipx_mono_ms () - t0;
    /* A new connection's ZAP handshake is answered meanwhile too.  */
    dipx_client_t *court = harness_ready_client (h, "court.test", 0, WAIT_MS);
    assert_non_null (court);
    assert_int_equal (harness_log_count (h, from, S_RELOADED), 0);
    fprintf (stderr, "# round trip during the reload: %llu ms; a handshake too\n",
             (unsigned long long) rt_ms);
    s_release (h);

    /* The reload completes and takes effect.  */
    assert_int_equal (harness_log_wait (h, from, S_RELOADED, RELOAD_MS), 0);
    fprintf (stderr, "# reload seen after %llu ms\n", (unsigned long long) (dipx_mono_ms () - t0));
    assert_int_equal (s_reloaded_agencies (h, from), S_BULK + 3);
    dipx_client_t *added = harness_ready_client (h, "police.new", 0, WAIT_MS);
    assert_non_null (added);
    dipx_send_t m = harness_dt1 ("cjit.test", s_subject);
    assert_int_equal (dipx_client_send (added, &m, "new", 3, WAIT_MS, NULL), 0);
    dipx_message_t *msg = NULL;
    assert_int_equal (dipx_client_recv (cjit, WAIT_MS, &msg), 0);
    assert_string_equal (dipx_message_from (msg), "police.new");
    assert_int_equal (dipx_client_ack (cjit, msg), 0);
    dipx_message_destroy (&msg);
    s_refused (h, "court.test");
    /* court's open connection is not cut (ZAP is per handshake), but what
       it sends is refused now that its agency is unknown.  */
    assert_int_equal (dipx_client_send (court, &m, "old", 3, WAIT_MS, NULL),
                      DIPX_E_SENDER_INACTIVE);
    dipx_client_destroy (&court);
    dipx_client_destroy (&added);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
}

/*  SIGHUPs during a reload are coalesced into one more reload after it,
    which reads the files as they are then: the last write wins.  */
static void
test_sighup_during_reload (void **state)
{
    harness_t *h = *state;
    harness_agency (h, "police.new")->status = DIPX_STATUS_ACTIVE;
    long from = s_hup_held (h);
    /* The large file has been read; the final one replaces it: small,
       without police.new, court.test suspended.  */
    harness_agency (h, "police.new")->status = -1;
    harness_agency (h, "court.test")->status = DIPX_STATUS_SUSPENDED;
    assert_int_equal (harness_write_registry (h), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal (kill (h->pid, SIGHUP), 0);
    assert_int_equal (harness_log_wait (h, from, "reload: SIGHUP during a reload", WAIT_MS), 0);
    assert_int_equal (harness_log_count (h, from, S_RELOADED), 0); /* still on the first */
    s_release (h);

    /* The first reload, then exactly one more, reading the final file.  */
    assert_int_equal (harness_log_wait (h, from, "reloaded: registry 3 agencies", RELOAD_MS), 0);
    dipx_client_t *police = harness_ready_client (h, "police.test", 0, WAIT_MS);
    assert_non_null (police);
    s_refused (h, "police.new");
    s_refused (h, "court.test");
    assert_int_equal (harness_log_count (h, from, S_STARTED), 2);
    assert_int_equal (harness_log_count (h, from, S_RELOADED), 2);
    assert_int_equal (s_reloaded_agencies (h, from), 3);
    dipx_client_destroy (&police);
}

/*  A registry that does not load leaves the running one in force, with the
    same errors as before, also when it is found on the reload thread.  */
static void
test_failed_reload_keeps_running (void **state)
{
    harness_t *h = *state;
    harness_agency (h, "police.new")->status = DIPX_STATUS_ACTIVE;
    s_write_large_registry (h);
    /* Corrupt the last card's signature: found only after every other card
       has been verified.  */
    FILE *f = fopen (h->registry, "r+");
    assert_non_null (f);
    char *text = calloc (1, s_bulk_len + 64 * 1024 + 1);
    assert_non_null (text);
    size_t len = fread (text, 1, s_bulk_len + 64 * 1024, f);
    assert_true (len > 1024);
    char *sig = NULL; /* the last card is in the last 1 KiB */
    for (char *p = text + len - 1024; (p = strstr (p, "self-sig: ")) != NULL; p++)
        sig = p + strlen ("self-sig: ");
    assert_non_null (sig);
    *sig = *sig == 'a' ? 'b' : 'a';
    assert_int_equal (fseek (f, sig - text, SEEK_SET), 0);
    assert_int_equal (fputc (*sig, f), *sig);
    assert_int_equal (fclose (f), 0);
    free (text);

    long from = harness_log_size (h);
    assert_int_equal (kill (h->pid, SIGHUP), 0);
    assert_int_equal (
        harness_log_wait (h, from, "reload: keeping the running registry and policy", RELOAD_MS),
        0);
    char line[600];
    snprintf (line, sizeof line, "registry %s: ", h->registry);
    assert_int_equal (harness_log_count (h, from, line), 1);
    assert_int_equal (harness_log_count (h, from, S_RELOADED), 0);
    s_refused (h, "police.new"); /* active in the file, unknown to the running registry */
    dipx_client_t *police = harness_ready_client (h, "police.test", 0, WAIT_MS);
    dipx_client_t *cjit = harness_ready_client (h, "cjit.test", 16, WAIT_MS);
    assert_non_null (police);
    assert_non_null (cjit);
    s_round_trip (police, cjit);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
}

/*  SIGTERM during a reload: the broker waits for the reload thread, drops
    what it read, and exits 0 (under ASan, with no leak reported).  */
static void
test_stop_during_reload (void **state)
{
    harness_t *h = *state;
    harness_agency (h, "police.new")->status = DIPX_STATUS_ACTIVE;
    long from = s_hup_held (h);
    assert_int_equal (kill (h->pid, SIGTERM), 0);
    assert_int_equal (harness_log_wait (h, from, "reload: stopping", WAIT_MS), 0);
    s_release (h);
    assert_int_equal (harness_wait_exit (h, WAIT_MS), 1);
    int st = h->last_status;
    if (!WIFEXITED (st) || WEXITSTATUS (st) != 0)
        fail_msg ("broker stopped during a reload with status %#x (log %s)", st, h->log);
    assert_int_equal (harness_log_count (h, from, S_RELOADED), 0);
    assert_int_equal (harness_log_count (h, from, "reload: stopping"), 1);
    assert_int_equal (harness_log_count (h, from, "info: stopped"), 1);
}

int
main (void)
{
    if (sodium_init () < 0)
        return 1;
    randombytes_buf (s_subject, sizeof s_subject);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_serves_during_reload, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_sighup_during_reload, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_failed_reload_keeps_running, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stop_during_reload, s_setup, s_teardown),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    free (s_bulk);
    return rc;
}
