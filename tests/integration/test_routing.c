/*  test_routing.c - core routing against a real dipxd on loopback: delivery,
    store-and-forward, crash durability, every refusal with its code, and the
    recipient library's checks.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "dipx_envelope.h"
#include "dipx_frame.h"
#include "dipx_registry.h"
#include "harness.h"

#define WAIT_MS 15000

static uint8_t s_subject[DIPX_SUBJECT_BYTES];

static dipx_send_t
s_dt1 (const char *to)
{
    return harness_dt1 (to, s_subject);
}

static int
s_setup (void **state)
{
    harness_t *h = calloc (1, sizeof *h);
    assert_non_null (h);
    assert_int_equal (harness_init (h, "max_frame = 65536\nack_timeout_ms = 60000"), 0);
    assert_non_null (harness_add (h, "police.test", DIPX_AGENCY_POLICE, DIPX_STATUS_ACTIVE));
    assert_non_null (harness_add (h, "cjit.test", DIPX_AGENCY_CJIT, DIPX_STATUS_ACTIVE));
    assert_non_null (harness_add (h, "cjit.other", DIPX_AGENCY_CJIT, DIPX_STATUS_ACTIVE));
    assert_non_null (harness_add (h, "court.test", DIPX_AGENCY_COURT, DIPX_STATUS_ACTIVE));
    assert_non_null (harness_add (h, "police.revoked", DIPX_AGENCY_POLICE, DIPX_STATUS_REVOKED));
    assert_non_null (harness_add (h, "police.suspended", DIPX_AGENCY_POLICE,
                                  DIPX_STATUS_SUSPENDED));
    assert_non_null (harness_add (h, "police.unknown", DIPX_AGENCY_POLICE, -1));
    /* Active, with a card past its validity, and one not valid yet.  */
    h_agency_t *a = harness_add (h, "cjit.expired", DIPX_AGENCY_CJIT, DIPX_STATUS_ACTIVE);
    assert_non_null (a);
    a->valid_until = 1700000000 + 86400;
    a = harness_add (h, "cjit.future", DIPX_AGENCY_CJIT, DIPX_STATUS_ACTIVE);
    assert_non_null (a);
    a->valid_from = 3900000000;
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

static dipx_client_t *
s_client (harness_t *h, const char *id, uint32_t window)
{
    dipx_client_t *c = harness_ready_client (h, id, window, WAIT_MS);
    assert_non_null (c);
    return c;
}

/*  Posts n 2 KiB messages from police to cjit without waiting.  */
static void
s_post (dipx_client_t *police, int n)
{
    dipx_send_t m = s_dt1 ("cjit.test");
    static uint8_t body[2048];
    uint8_t id[DIPX_MESSAGE_ID_BYTES];
    for (int i = 0; i < n; i++)
        assert_int_equal (dipx_client_post (police, &m, body, sizeof body, id), 0);
}

/*  Waits for answers to police's posts, posting one more for each ACCEPTED
    (so the broker stays busy), until one is answered with code; fails if
    none is within 20 s.  */
static void
s_post_until (dipx_client_t *police, int code)
{
    uint64_t deadline = dipx_mono_ms () + 20000;
    while (dipx_mono_ms () < deadline) {
        dipx_result_t r;
        int rc = dipx_client_result (police, 1000, &r);
        if (rc == DIPX_E_TIMEOUT)
            continue;
        assert_int_equal (rc, 0);
        if (r.code == code)
            return;
        assert_int_equal (r.code, code == 0 ? DIPX_E_SENDER_INACTIVE : 0);
        s_post (police, 1);
    }
    fail_msg ("no send answered %s within 20 s", code ? dipx_error_name (code) : "accepted");
}

/*  SIGHUP reloads the registry while the broker is busy with a stream of
    sends: once the agency is suspended in the file its sends are refused
    sender_inactive on its open connection, and once reinstated they are
    accepted again.  */
static void
test_reload_under_load (void **state)
{
    harness_t *h = *state;
    dipx_client_t *police = s_client (h, "police.test", 0);
    s_post (police, 200);
    h_agency_t *a = harness_agency (h, "police.test");
    a->status = DIPX_STATUS_SUSPENDED;
    assert_int_equal (harness_write_registry (h), 0);
    assert_int_equal (kill (h->pid, SIGHUP), 0);
    s_post_until (police, DIPX_E_SENDER_INACTIVE);

    a->status = DIPX_STATUS_ACTIVE;
    assert_int_equal (harness_write_registry (h), 0);
    s_post (police, 100);
    assert_int_equal (kill (h->pid, SIGHUP), 0);
    s_post_until (police, 0);
    dipx_client_destroy (&police);
}

/*  Receives one message and checks it carries body.  */
static void
s_expect (dipx_client_t *c, const uint8_t *body, size_t len, uint64_t count)
{
    dipx_message_t *msg = NULL;
    assert_int_equal (dipx_client_recv (c, WAIT_MS, &msg), 0);
    assert_int_equal (dipx_message_body_len (msg), len);
    assert_memory_equal (dipx_message_body (msg), body, len);
    if (count)
        assert_int_equal (dipx_message_delivery_count (msg), count);
    assert_int_equal (dipx_client_ack (c, msg), 0);
    dipx_message_destroy (&msg);
}

static void
test_delivered_byte_identical (void **state)
{
    harness_t *h = *state;
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_client_t *cjit = s_client (h, "cjit.test", 16);
    uint8_t body[2048];
    randombytes_buf (body, sizeof body);
    dipx_send_t m = s_dt1 ("cjit.test");
    dipx_result_t r;
    assert_int_equal (dipx_client_send (police, &m, body, sizeof body, WAIT_MS, &r), 0);
    assert_true (r.seq > 0);

    dipx_message_t *msg = NULL;
    assert_int_equal (dipx_client_recv (cjit, WAIT_MS, &msg), 0);
    assert_memory_equal (dipx_message_id (msg), r.id, DIPX_MESSAGE_ID_BYTES);
    assert_string_equal (dipx_message_from (msg), "police.test");
    assert_string_equal (dipx_message_to (msg), "cjit.test");
    assert_string_equal (dipx_message_type (msg), "drug_test_result");
    assert_int_equal (dipx_message_basis (msg), DIPX_BASIS_STATUTE);
    assert_int_equal (dipx_message_purpose (msg), DIPX_PURPOSE_LAW_ENFORCEMENT);
    assert_memory_equal (dipx_message_subject (msg), s_subject, DIPX_SUBJECT_BYTES);
    assert_int_equal (dipx_message_seq (msg), r.seq);
    assert_int_equal (dipx_message_delivery_count (msg), 1);
    assert_false (dipx_message_is_redelivered (msg));
    assert_int_equal (dipx_message_body_len (msg), sizeof body);
    assert_memory_equal (dipx_message_body (msg), body, sizeof body);
    assert_int_equal (dipx_client_ack (cjit, msg), 0);
    dipx_message_destroy (&msg);

    /* The sender hears DELIVERED, then ACKED.  */
    dipx_receipt_t rc;
    assert_int_equal (dipx_client_receipt (police, WAIT_MS, &rc), 0);
    assert_int_equal (rc.event, DIPX_EVENT_DELIVERED);
    assert_int_equal (dipx_client_receipt (police, WAIT_MS, &rc), 0);
    assert_int_equal (rc.event, DIPX_EVENT_ACKED);
    assert_string_equal (rc.by, "cjit.test");
    assert_memory_equal (rc.id, r.id, DIPX_MESSAGE_ID_BYTES);

    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    char idhex[33];
    dipx_id_to_hex (r.id, idhex);
    assert_int_equal (harness_audit_count (h, "\"ev\":\"accepted\"", idhex, NULL), 1);
    assert_int_equal (harness_audit_count (h, "\"ev\":\"delivered\"", idhex, NULL), 1);
    assert_int_equal (harness_audit_count (h, "\"ev\":\"acked\"", idhex, "\"sig\"", NULL), 1);
}

static void
test_offline_recipient (void **state)
{
    harness_t *h = *state;
    dipx_client_t *police = s_client (h, "police.test", 0);
    uint8_t body[100];
    randombytes_buf (body, sizeof body);
    dipx_send_t m = s_dt1 ("cjit.test");
    assert_int_equal (dipx_client_send (police, &m, body, sizeof body, WAIT_MS, NULL), 0);
    /* Only now does the recipient connect.  */
    dipx_client_t *cjit = s_client (h, "cjit.test", 16);
    s_expect (cjit, body, sizeof body, 1);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
}

static void
test_survives_sigkill (void **state)
{
    harness_t *h = *state;
    dipx_client_t *police = s_client (h, "police.test", 0);
    enum { N = 5 };
    uint8_t bodies[N][64];
    for (int i = 0; i < N; i++) {
        randombytes_buf (bodies[i], sizeof bodies[i]);
        dipx_send_t m = s_dt1 ("cjit.test");
        assert_int_equal (dipx_client_send (police, &m, bodies[i], 64, WAIT_MS, NULL), 0);
    }
    dipx_client_destroy (&police);
    /* ACCEPTED, not yet delivered: the broker dies without warning.  */
    harness_stop (h, SIGKILL);
    assert_int_equal (harness_start (h), 0);
    dipx_client_t *cjit = s_client (h, "cjit.test", 16);
    for (int i = 0; i < N; i++)
        s_expect (cjit, bodies[i], 64, 1);
    /* A marker sent after them arrives next: nothing was delivered twice.  */
    police = s_client (h, "police.test", 0);
    uint8_t marker[8] = "marker!";
    dipx_send_t m = s_dt1 ("cjit.test");
    assert_int_equal (dipx_client_send (police, &m, marker, sizeof marker, WAIT_MS, NULL), 0);
    s_expect (cjit, marker, sizeof marker, 1);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
}

static void
test_auth_refusals (void **state)
{
    harness_t *h = *state;
    const struct {
        const char *id;
        int code;
    } cases[] = {
        {"police.unknown", DIPX_E_AUTH},
        {"police.revoked", DIPX_E_AUTH},
        {"police.suspended", DIPX_E_AUTH},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dipx_client_t *c = NULL;
        assert_int_equal (harness_client (h, cases[i].id, 0, &c), 0);
        assert_int_equal (dipx_client_wait_ready (c, WAIT_MS), cases[i].code);
        dipx_client_destroy (&c);
    }
    /* Still serving. The refusals' records wait for the next transaction,
       which this send's ACCEPTED follows.  */
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_send_t m = s_dt1 ("cjit.test");
    assert_int_equal (dipx_client_send (police, &m, "x", 1, WAIT_MS, NULL), 0);
    dipx_client_destroy (&police);
    /* Refusals are recorded with the key fingerprint and peer address.  */
    assert_true (harness_audit_count (h, "\"ev\":\"auth_refused\"", "\"key\"", "\"peer\"", NULL)
                 >= 3);
    assert_true (harness_audit_count (h, "\"ev\":\"auth_refused\"", "police.revoked", NULL) >= 1);
}

/*  A drug test result from police.test to agency `to`, sealed for agency
    sealed_for (its key from the harness), without libdipx's checks.  */
static void
s_seal_raw (harness_t *h, const char *to, const char *sealed_for, const char *body,
            uint8_t **env, size_t *len)
{
    h_agency_t *police = harness_agency (h, "police.test");
    h_agency_t *b = harness_agency (h, sealed_for);
    dipx_header_t hd;
    memset (&hd, 0, sizeof hd);
    hd.v = 1;
    randombytes_buf (hd.id, sizeof hd.id);
    strcpy (hd.type, "drug_test_result");
    strcpy (hd.from, "police.test");
    snprintf (hd.to, sizeof hd.to, "%s", to);
    memcpy (hd.subj, s_subject, sizeof hd.subj);
    hd.basis = DIPX_BASIS_STATUTE;
    strcpy (hd.ref, "PACE s.63B");
    hd.purpose = DIPX_PURPOSE_LAW_ENFORCEMENT;
    hd.cats = 1u << DIPX_CAT_TEST_RESULTS;
    hd.created = dipx_now_ms ();
    hd.expires = hd.created + 3600000;
    uint8_t shared_b[32];
    assert_int_equal (crypto_box_beforenm (shared_b, dipx_identity_enc_pk (b->identity),
                                           dipx_identity_enc_sk (police->identity)),
                      0);
    assert_int_equal (dipx_envelope_seal (&hd, (const uint8_t *) body, strlen (body), shared_b,
                                          dipx_identity_sign_sk (police->identity), env, len),
                      0);
}

/*  A card is used only within its validity period: an agency whose card
    has expired, or is not valid yet, is refused at the handshake and as a
    recipient, with the reason in the audit and the REFUSED.  */
static void
test_card_validity (void **state)
{
    harness_t *h = *state;
    const char *const ids[] = {"cjit.expired", "cjit.future"};
    const char *const whys[] = {"card expired", "card not yet valid"};
    dipx_client_t *police = s_client (h, "police.test", 0);
    for (int i = 0; i < 2; i++) {
        dipx_client_t *c = NULL;
        assert_int_equal (harness_client (h, ids[i], 0, &c), 0);
        assert_int_equal (dipx_client_wait_ready (c, WAIT_MS), DIPX_E_AUTH);
        dipx_client_destroy (&c);
        /* The refusal is audited by the broker's next transaction.  */
        uint64_t t0 = dipx_mono_ms ();
        while (harness_audit_count (h, "\"ev\":\"auth_refused\"", ids[i], whys[i], NULL) < 1) {
            assert_true (dipx_mono_ms () - t0 < WAIT_MS);
            usleep (20000);
        }
        /* The sender's library refuses it first (its peers have the card
           too), and the broker refuses the envelope posted as it is.  */
        dipx_send_t m = s_dt1 (ids[i]);
        dipx_result_t r;
        assert_int_equal (dipx_client_send (police, &m, "x", 1, WAIT_MS, &r),
                          DIPX_E_RECIPIENT_INACTIVE);
        uint8_t *env;
        size_t len;
        s_seal_raw (h, ids[i], ids[i], "x", &env, &len);
        assert_int_equal (dipx_client_post_sealed (police, env, len), 0);
        free (env);
        assert_int_equal (dipx_client_result (police, WAIT_MS, &r), 0);
        assert_int_equal (r.code, DIPX_E_RECIPIENT_INACTIVE);
        assert_non_null (strstr (r.reason, whys[i]));
    }
    dipx_client_destroy (&police);
}

static void
test_policy_refusals (void **state)
{
    harness_t *h = *state;
    dipx_client_t *cjit = s_client (h, "cjit.test", 0);
    dipx_client_t *police = s_client (h, "police.test", 0);
    dipx_result_t r;
    /* cjit may not send a drug test result to a court.  */
    dipx_send_t m = s_dt1 ("court.test");
    assert_int_equal (dipx_client_send (cjit, &m, "x", 1, WAIT_MS, &r), DIPX_E_POLICY);
    assert_true (strlen (r.reason) > 0);
    /* police → cjit drug_test_result is statutory, not consent-based.  */
    m = s_dt1 ("cjit.test");
    m.basis = DIPX_BASIS_CONSENT;
    assert_int_equal (dipx_client_send (police, &m, "x", 1, WAIT_MS, &r), DIPX_E_BASIS);
    /* Unknown message type.  */
    m = s_dt1 ("cjit.test");
    m.type = "gossip";
    assert_int_equal (dipx_client_send (police, &m, "x", 1, WAIT_MS, &r), DIPX_E_POLICY);
    assert_true (harness_audit_count (h, "\"ev\":\"refused\"", "\"code_name\":\"policy\"", NULL)
                 >= 2);
    dipx_client_destroy (&cjit);
    dipx_client_destroy (&police);
}

/*  Sends a SEND frame with env on a raw socket; returns the decoded reply.  */
static void
s_raw_send (void *sock, const uint8_t *env, size_t len, dipx_frame_t *reply, uint8_t *buf,
            size_t cap)
{
    dipx_frame_t f = {.cmd = DIPX_CMD_SEND};
    f.u.send.env.ptr = env;
    f.u.send.env.len = len;
    uint8_t *out;
    size_t out_len;
    assert_int_equal (dipx_frame_encode (&f, &out, &out_len), 0);
    assert_int_equal (zmq_send (sock, out, out_len, 0), (int) out_len);
    free (out);
    int n = harness_raw_recv (sock, buf, cap, WAIT_MS);
    assert_true (n > 0);
    assert_int_equal (dipx_frame_decode (buf, (size_t) n, reply), 0);
}

static void
test_envelope_refusals (void **state)
{
    harness_t *h = *state;
    void *ctx = zmq_ctx_new ();
    dipx_client_t *police = s_client (h, "police.test", 0);
    uint8_t *env;
    size_t len;
    dipx_send_t m = s_dt1 ("cjit.test");
    assert_int_equal (dipx_client_seal (police, &m, "hello", 5, &env, &len), 0);
    static uint8_t buf[70000];
    dipx_frame_t reply;

    /* Sender mismatch: police's envelope on cjit's authenticated connection.  */
    void *as_cjit = harness_raw (h, ctx, "cjit.test");
    s_raw_send (as_cjit, env, len, &reply, buf, sizeof buf);
    assert_int_equal (reply.cmd, DIPX_CMD_REFUSED);
    assert_int_equal (reply.u.refused.code, -DIPX_E_SENDER_MISMATCH);

    /* Bad signature: the last byte of the envelope is the signature's.  */
    void *as_police = harness_raw (h, ctx, "police.test");
    env[len - 1] ^= 1;
    s_raw_send (as_police, env, len, &reply, buf, sizeof buf);
    assert_int_equal (reply.cmd, DIPX_CMD_REFUSED);
    assert_int_equal (reply.u.refused.code, -DIPX_E_BAD_SIGNATURE);
    env[len - 1] ^= 1;

    /* Malformed envelope inside a well-formed frame.  */
    const uint8_t junk[] = {0x93, 0x01, 0x02};
    s_raw_send (as_police, junk, sizeof junk, &reply, buf, sizeof buf);
    assert_int_equal (reply.cmd, DIPX_CMD_REFUSED);
    assert_true (reply.u.refused.code >= 1 && reply.u.refused.code <= 15);

    /* A frame that is not a frame: ERROR with its code.  */
    assert_int_equal (zmq_send (as_police, "\xc1", 1, 0), 1);
    int n = harness_raw_recv (as_police, buf, sizeof buf, WAIT_MS);
    assert_true (n > 0);
    assert_int_equal (dipx_frame_decode (buf, (size_t) n, &reply), 0);
    assert_int_equal (reply.cmd, DIPX_CMD_ERROR);
    assert_int_equal (reply.u.error.code, -DIPX_E_MALFORMED);

    /* Oversized frame (the test broker's max_frame is 64 KiB): the
       connection is dropped, nothing is answered, the broker carries on.  */
    uint8_t *big = calloc (1, 70000);
    assert_non_null (big);
    assert_int_equal (zmq_send (as_police, big, 70000, 0), 70000);
    free (big);
    s_raw_send (as_cjit, env, len, &reply, buf, sizeof buf); /* others still served */
    assert_int_equal (reply.cmd, DIPX_CMD_REFUSED);

    /* The genuine envelope is still accepted, by the library.  */
    assert_int_equal (dipx_client_post_sealed (police, env, len), 0);
    dipx_result_t r;
    assert_int_equal (dipx_client_result (police, WAIT_MS, &r), 0);
    assert_int_equal (r.code, 0);
    free (env);
    zmq_close (as_cjit);
    zmq_close (as_police);
    zmq_ctx_term (ctx);
    dipx_client_destroy (&police);
}

/*  A message sealed for cjit.test but addressed (and signed) for cjit.other:
    the broker cannot tell, the recipient's library must.  */
static void
test_readdressed_refused_by_recipient (void **state)
{
    harness_t *h = *state;
    uint8_t *env;
    size_t len;
    s_seal_raw (h, "cjit.other", "cjit.test", "for B only", &env, &len);
    dipx_client_t *sender = s_client (h, "police.test", 0);
    dipx_client_t *c = s_client (h, "cjit.other", 16);
    assert_int_equal (dipx_client_post_sealed (sender, env, len), 0);
    dipx_result_t r;
    assert_int_equal (dipx_client_result (sender, WAIT_MS, &r), 0);
    assert_int_equal (r.code, 0); /* the broker cannot see inside */
    /* The recipient's library rejects it: the recipient never sees the
       message, and the sender hears REJECTED. The client works only inside
       its calls, so drive both until the receipt arrives.  */
    bool rejected = false;
    for (int i = 0; i < WAIT_MS / 50 && !rejected; i++) {
        dipx_message_t *msg = NULL;
        assert_int_equal (dipx_client_recv (c, 50, &msg), DIPX_E_TIMEOUT);
        dipx_receipt_t rc;
        while (!rejected && dipx_client_receipt (sender, 0, &rc) == 0) {
            assert_memory_equal (rc.id, r.id, 16);
            rejected = rc.event == DIPX_EVENT_REJECTED;
            if (rejected) /* one receipt, carrying why it went to the dead letters */
                assert_int_equal (rc.code, DIPX_E_RECIPIENT_REJECTED);
        }
    }
    assert_true (rejected);
    char idhex[33];
    dipx_id_to_hex (r.id, idhex);
    assert_int_equal (harness_audit_count (h, "\"ev\":\"dead_lettered\"", idhex,
                                           "recipient_rejected", NULL),
                      1);
    free (env);
    dipx_client_destroy (&sender);
    dipx_client_destroy (&c);
}

/*  Every single-bit flip of a sealed message is refused by the broker (or,
    if the broker took it, by the recipient).  */
static void
test_bit_flips_refused (void **state)
{
    harness_t *h = *state;
    void *ctx = zmq_ctx_new ();
    dipx_client_t *police = s_client (h, "police.test", 0);
    uint8_t *env;
    size_t len;
    dipx_send_t m = s_dt1 ("cjit.test");
    assert_int_equal (dipx_client_seal (police, &m, "flip me", 7, &env, &len), 0);
    void *raw = harness_raw (h, ctx, "police.test");
    uint8_t *copy = malloc (len);
    size_t bits = len * 8, refused = 0;
    for (size_t b = 0; b < bits; b++) {
        memcpy (copy, env, len);
        copy[b / 8] ^= (uint8_t) (1u << (b % 8));
        dipx_frame_t f = {.cmd = DIPX_CMD_SEND};
        f.u.send.env.ptr = copy;
        f.u.send.env.len = len;
        uint8_t *out;
        size_t out_len;
        assert_int_equal (dipx_frame_encode (&f, &out, &out_len), 0);
        assert_int_equal (zmq_send (raw, out, out_len, 0), (int) out_len);
        free (out);
    }
    static uint8_t buf[8192];
    for (size_t b = 0; b < bits; b++) {
        int n = harness_raw_recv (raw, buf, sizeof buf, WAIT_MS);
        assert_true (n > 0);
        dipx_frame_t reply;
        assert_int_equal (dipx_frame_decode (buf, (size_t) n, &reply), 0);
        if (reply.cmd == DIPX_CMD_REFUSED || reply.cmd == DIPX_CMD_ERROR)
            refused++;
    }
    assert_int_equal (refused, bits);
    free (copy);
    free (env);
    zmq_close (raw);
    zmq_ctx_term (ctx);
    dipx_client_destroy (&police);
}

int
main (void)
{
    if (sodium_init () < 0)
        return 1;
    randombytes_buf (s_subject, sizeof s_subject);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_delivered_byte_identical, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_offline_recipient, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_survives_sigkill, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_auth_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_card_validity, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_policy_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_envelope_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_readdressed_refused_by_recipient, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_bit_flips_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reload_under_load, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
