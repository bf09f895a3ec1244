/*  test_vectors.c - golden byte vectors of protocol v1.

    Every command, the envelope and the signed statements are checked in both
    directions against the files in tests/vectors/: a fixed value encodes to exactly
    the expected bytes, and those bytes decode to exactly that value, with the
    same presence bits. The .hex files were written by mkvectors.py, a second
    implementation of the format from PROTOCOL.md, so a pass here means two
    implementations agree byte for byte. PROTOCOL.md quotes the same files.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "dipx_envelope.h"
#include "dipx_frame.h"
#include "dipx_names.h"
#include "unit/proto_fixture.h"

static fx_keys_t s_keys;

/*  Asserts that two byte strings are equal, printing where they differ.  */
static void
s_assert_bytes (const char *what, const uint8_t *got, size_t got_len, const uint8_t *want,
                size_t want_len)
{
    if (got_len == want_len && memcmp (got, want, got_len) == 0)
        return;
    size_t i = 0;
    while (i < got_len && i < want_len && got[i] == want[i])
        i++;
    print_error ("%s: %zu bytes, expected %zu; first difference at offset %zu\n", what, got_len,
                 want_len, i);
    fail ();
}

/*  The subject reference construction (PROTOCOL.md "Subject reference"),
    computed directly with libsodium: the client's dipx_subject_ref must give
    the same 32 bytes.  */
static void
test_subject (void **state)
{
    (void) state;
    static const char msg[] = "dipx-v1-subject\0pnc\0" "2001/0012345H";
    uint8_t key[32], out[32];
    memset (key, 0x70, sizeof key);
    crypto_generichash (out, sizeof out, (const uint8_t *) msg, sizeof msg - 1, key, sizeof key);
    fx_buf_t v = {0};
    fx_vector ("subject", &v);
    s_assert_bytes ("subject", out, sizeof out, v.data, v.len);
    fx_buf_free (&v);
}

/*  --- frames ---------------------------------------------------------------  */

typedef struct {
    const char *name;                   /* vector file */
    int cmd;                            /* command */
    uint32_t present;                   /* presence bits decode must report */
    void (*build) (dipx_frame_t *f);    /* fills the frame's body */
} s_frame_case_t;

static fx_buf_t s_envelope; /* envelope.hex, the body of SEND and DELIVER */

static void
b_hello (dipx_frame_t *f)
{
    f->u.hello.window = 64;
}

static void
b_welcome (dipx_frame_t *f)
{
    strcpy (f->u.welcome.broker, FX_BROKER);
    f->u.welcome.max_frame = DIPX_MAX_FRAME;
    f->u.welcome.window = 64;
}

static void
b_send (dipx_frame_t *f)
{
    f->u.send.env = (dipx_slice_t){s_envelope.data, s_envelope.len};
}

static void
b_accepted (dipx_frame_t *f)
{
    memcpy (f->u.accepted.id, fx_id1, DIPX_ID_BYTES);
    f->u.accepted.seq = 42;
}

static void
b_refused (dipx_frame_t *f)
{
    memcpy (f->u.refused.id, fx_id1, DIPX_ID_BYTES);
    f->u.refused.code = (uint64_t) -DIPX_E_POLICY;
    strcpy (f->u.refused.reason,
            "drug_test_result police -> treatment on basis statute: flow not allowed");
}

static void
b_deliver (dipx_frame_t *f)
{
    f->u.deliver.seq = 42;
    f->u.deliver.count = 1;
    f->u.deliver.env = (dipx_slice_t){s_envelope.data, s_envelope.len};
}

static void
b_ack (dipx_frame_t *f)
{
    dipx_fack_t *a = &f->u.ack;
    memcpy (a->ids.ids[0], fx_id1, DIPX_ID_BYTES);
    memcpy (a->ids.ids[1], fx_id2, DIPX_ID_BYTES);
    a->ids.count = 2;
    a->at = FX_ACK_AT;
    uint8_t stmt[DIPX_ACK_STMT_MAX];
    size_t n = dipx_ack_statement (FX_RECIPIENT, a->at, &a->ids, stmt);
    crypto_sign_detached (a->sig, NULL, stmt, n, s_keys.r_sign_sk);
}

static void
b_receipt (dipx_frame_t *f)
{
    memcpy (f->u.receipt.id, fx_id1, DIPX_ID_BYTES);
    f->u.receipt.event = DIPX_EVENT_ACCEPTED;
    f->u.receipt.at = FX_CREATED + 123;
    strcpy (f->u.receipt.by, FX_BROKER);
}

static void
b_receipt_full (dipx_frame_t *f)
{
    memcpy (f->u.receipt.id, fx_id1, DIPX_ID_BYTES);
    f->u.receipt.event = DIPX_EVENT_EXPIRED;
    f->u.receipt.at = FX_EXPIRES;
    strcpy (f->u.receipt.by, FX_BROKER);
    f->u.receipt.code = (uint64_t) -DIPX_E_EXPIRED;
    strcpy (f->u.receipt.reason, "expired before it was acknowledged");
    f->u.receipt.count = 3;
    f->present = DIPX_RECEIPT_HAS_CODE | DIPX_RECEIPT_HAS_REASON | DIPX_RECEIPT_HAS_COUNT;
}

static void
b_error (dipx_frame_t *f)
{
    f->u.error.code = (uint64_t) -DIPX_E_NOT_RECIPIENT;
    f->u.error.cmd = DIPX_CMD_ACK;
    strcpy (f->u.error.reason, "1 of 2 ids are not queued for this agency");
}

static void
s_outcome (dipx_frame_t *f, int event, const char *reason)
{
    dipx_foutcome_t *o = &f->u.outcome;
    memcpy (o->id, fx_id1, DIPX_ID_BYTES);
    o->event = event;
    o->at = FX_OUTCOME_AT;
    if (reason) {
        strcpy (o->reason, reason);
        f->present = DIPX_OUTCOME_HAS_REASON;
    }
    uint8_t stmt[DIPX_OUTCOME_STMT_MAX];
    size_t n = dipx_outcome_statement (FX_RECIPIENT, o, stmt);
    crypto_sign_detached (o->sig, NULL, stmt, n, s_keys.r_sign_sk);
}

static void
b_outcome_actioned (dipx_frame_t *f)
{
    s_outcome (f, DIPX_EVENT_ACTIONED, NULL);
}

static void
b_outcome_rejected (dipx_frame_t *f)
{
    s_outcome (f, DIPX_EVENT_REJECTED, FX_REJECT_REASON);
}

static void
b_track (dipx_frame_t *f)
{
    memcpy (f->u.track.id, fx_id1, DIPX_ID_BYTES);
}

static void
b_history (dipx_frame_t *f)
{
    dipx_freceipt_t *h = &f->u.history;
    memcpy (h->id, fx_id1, DIPX_ID_BYTES);
    h->event = DIPX_EVENT_DELIVERED;
    h->at = FX_CREATED + 456;
    strcpy (h->by, FX_BROKER);
    h->count = 1;
    h->index = 1;
    h->total = 3;
    f->present = DIPX_RECEIPT_HAS_COUNT;
}

static const s_frame_case_t s_frames[] = {
    {"hello", DIPX_CMD_HELLO, 0x1, b_hello},
    {"welcome", DIPX_CMD_WELCOME, 0x7, b_welcome},
    {"send", DIPX_CMD_SEND, 0x1, b_send},
    {"accepted", DIPX_CMD_ACCEPTED, 0x3, b_accepted},
    {"refused", DIPX_CMD_REFUSED, 0x7, b_refused},
    {"deliver", DIPX_CMD_DELIVER, 0x7, b_deliver},
    {"ack", DIPX_CMD_ACK, 0x7, b_ack},
    {"receipt", DIPX_CMD_RECEIPT, 0x0f, b_receipt},
    {"receipt_full", DIPX_CMD_RECEIPT, 0x7f, b_receipt_full},
    {"error", DIPX_CMD_ERROR, 0x7, b_error},
    {"outcome_actioned", DIPX_CMD_OUTCOME, 0x1b, b_outcome_actioned},
    {"outcome_rejected", DIPX_CMD_OUTCOME, 0x1f, b_outcome_rejected},
    {"track", DIPX_CMD_TRACK, 0x1, b_track},
    {"history", DIPX_CMD_HISTORY, 0x1cf, b_history},
};

static void
test_frames (void **state)
{
    (void) state;
    fx_vector ("envelope", &s_envelope);
    bool seen[DIPX_CMD_MAX + 1] = {false};
    for (size_t i = 0; i < sizeof s_frames / sizeof s_frames[0]; i++) {
        const s_frame_case_t *c = &s_frames[i];
        fx_buf_t want = {0};
        fx_vector (c->name, &want);

        dipx_frame_t f;
        memset (&f, 0, sizeof f); /* padding too: fx_frame_equal compares bytes */
        f.cmd = c->cmd;
        c->build (&f);
        uint8_t *got;
        size_t got_len;
        assert_int_equal (dipx_frame_encode (&f, &got, &got_len), 0);
        s_assert_bytes (c->name, got, got_len, want.data, want.len);

        dipx_frame_t d;
        int rc = dipx_frame_decode (want.data, want.len, &d);
        if (rc)
            print_error ("%s: decode gave %s\n", c->name, dipx_error_name (rc));
        assert_int_equal (rc, 0);
        assert_int_equal (d.cmd, c->cmd);
        assert_int_equal (d.present, c->present);
        f.present = c->present; /* encode needs only the optional bits; decode reports all */
        if (!fx_frame_equal (&d, &f)) {
            print_error ("%s: decoded fields differ from the encoded ones\n", c->name);
            fail ();
        }
        /* And what was decoded encodes to the same bytes again.  */
        uint8_t *again;
        size_t again_len;
        assert_int_equal (dipx_frame_encode (&d, &again, &again_len), 0);
        s_assert_bytes (c->name, again, again_len, want.data, want.len);
        /* Into a fixed buffer (the broker's allocation-free replies): the
           same bytes when it fits exactly, frame_size when one byte short.  */
        uint8_t *fixed = malloc (want.len);
        size_t fixed_len = 0;
        assert_non_null (fixed);
        assert_int_equal (dipx_frame_encode_into (&f, fixed, want.len, &fixed_len), 0);
        s_assert_bytes (c->name, fixed, fixed_len, want.data, want.len);
        assert_int_equal (dipx_frame_encode_into (&f, fixed, want.len - 1, &fixed_len),
                          DIPX_E_FRAME_SIZE);
        assert_int_equal (fixed_len, 0);
        free (fixed);
        seen[c->cmd] = true;
        free (again);
        free (got);
        fx_buf_free (&want);
    }
    for (int cmd = 1; cmd <= DIPX_CMD_MAX; cmd++)
        if (!seen[cmd]) {
            print_error ("no vector for command %s\n", dipx_cmd_name (cmd));
            fail ();
        }
    fx_buf_free (&s_envelope);
}

/*  The ACK and OUTCOME statements: exact bytes, and the vectors' signatures
    verify over them with the recipient's key.  */
static void
test_statements (void **state)
{
    (void) state;
    fx_buf_t want = {0}, frame = {0};
    dipx_frame_t f;

    fx_vector ("ack", &frame);
    assert_int_equal (dipx_frame_decode (frame.data, frame.len, &f), 0);
    uint8_t stmt[DIPX_ACK_STMT_MAX > DIPX_OUTCOME_STMT_MAX ? DIPX_ACK_STMT_MAX
                                                           : DIPX_OUTCOME_STMT_MAX];
    size_t n = dipx_ack_statement (FX_RECIPIENT, f.u.ack.at, &f.u.ack.ids, stmt);
    fx_vector ("ack_statement", &want);
    s_assert_bytes ("ack_statement", stmt, n, want.data, want.len);
    assert_int_equal (crypto_sign_verify_detached (f.u.ack.sig, stmt, n, s_keys.r_sign_pk), 0);
    assert_int_not_equal (crypto_sign_verify_detached (f.u.ack.sig, stmt, n, s_keys.s_sign_pk),
                          0);
    /* The statement binds the acknowledging agency: another id, another statement.  */
    n = dipx_ack_statement (FX_SENDER, f.u.ack.at, &f.u.ack.ids, stmt);
    assert_int_not_equal (crypto_sign_verify_detached (f.u.ack.sig, stmt, n, s_keys.r_sign_pk),
                          0);

    fx_vector ("outcome_rejected", &frame);
    assert_int_equal (dipx_frame_decode (frame.data, frame.len, &f), 0);
    n = dipx_outcome_statement (FX_RECIPIENT, &f.u.outcome, stmt);
    fx_vector ("outcome_statement", &want);
    s_assert_bytes ("outcome_statement", stmt, n, want.data, want.len);
    assert_int_equal (crypto_sign_verify_detached (f.u.outcome.sig, stmt, n, s_keys.r_sign_pk),
                      0);

    fx_vector ("outcome_actioned", &frame);
    assert_int_equal (dipx_frame_decode (frame.data, frame.len, &f), 0);
    n = dipx_outcome_statement (FX_RECIPIENT, &f.u.outcome, stmt);
    /* label 16, id length 1 + 12, message id 16, event 1, at 8, reason length 2 */
    assert_int_equal (n, 16 + 1 + 12 + 16 + 1 + 8 + 2);
    assert_int_equal (stmt[16 + 1 + 12 + 16], 3); /* actioned */
    assert_int_equal (crypto_sign_verify_detached (f.u.outcome.sig, stmt, n, s_keys.r_sign_pk),
                      0);
    fx_buf_free (&want);
    fx_buf_free (&frame);
}

/*  --- envelopes ------------------------------------------------------------  */

static void
s_check_golden_envelope (const char *name, const dipx_header_t *h, const uint8_t *body,
                         size_t body_len, const uint8_t *nonce, const uint8_t *sign_sk,
                         const uint8_t *sign_pk)
{
    fx_buf_t want = {0}, inner = {0};
    char inner_name[64];
    fx_vector (name, &want);
    snprintf (inner_name, sizeof inner_name, "%s_inner", name);
    fx_vector (inner_name, &inner);

    uint8_t *env;
    size_t env_len;
    assert_int_equal (dipx__envelope_seal_nonce (h, body, body_len, s_keys.shared, sign_sk, nonce,
                                                 &env, &env_len),
                      0);
    s_assert_bytes (name, env, env_len, want.data, want.len);

    dipx_envelope_t e;
    assert_int_equal (dipx_envelope_decode (want.data, want.len, &e), 0);
    assert_memory_equal (&e.h, h, sizeof *h); /* both zeroed, then filled */
    uint8_t digest[64];
    assert_int_equal (dipx_envelope_verify (&e, sign_pk, digest), 0);
    assert_memory_equal (digest, e.hh, 32);

    /* The sealed plaintext, opened here with libsodium alone.  */
    size_t plain_len = e.ct.len - 40;
    uint8_t *plain = malloc (plain_len);
    assert_non_null (plain);
    assert_int_equal (crypto_box_open_easy_afternm (plain, e.ct.ptr + 24, e.ct.len - 24, e.ct.ptr,
                                                    s_keys.shared),
                      0);
    s_assert_bytes (inner_name, plain, plain_len, inner.data, inner.len);
    assert_memory_equal (e.ct.ptr, nonce, 24);

    uint8_t *opened;
    size_t opened_len;
    assert_int_equal (dipx_envelope_open (&e, s_keys.shared, &opened, &opened_len), 0);
    s_assert_bytes ("body", opened, opened_len, body, body_len);
    free (opened);
    free (plain);
    free (env);
    fx_buf_free (&want);
    fx_buf_free (&inner);
}

static void
test_envelope (void **state)
{
    (void) state;
    dipx_header_t h;
    fx_header (&h);
    s_check_golden_envelope ("envelope", &h, (const uint8_t *) FX_BODY, strlen (FX_BODY), fx_nonce,
                             s_keys.s_sign_sk, s_keys.s_sign_pk);

    /* hh, ph and the signature against envelope_sigmsg.hex.  */
    fx_buf_t env = {0}, sigmsg = {0};
    fx_vector ("envelope", &env);
    fx_vector ("envelope_sigmsg", &sigmsg);
    assert_int_equal (sigmsg.len, 17 + 32 + 32);
    assert_memory_equal (sigmsg.data, "dipx-v1-envelope", 17);
    dipx_envelope_t e;
    assert_int_equal (dipx_envelope_decode (env.data, env.len, &e), 0);
    assert_memory_equal (e.hh, sigmsg.data + 17, 32);
    uint8_t ph[32], digest[64];
    dipx_hash_labelled ("dipx-v1-payload", e.ct.ptr, e.ct.len, ph);
    assert_memory_equal (ph, sigmsg.data + 49, 32);
    assert_int_equal (crypto_sign_verify_detached (e.sig, sigmsg.data, sigmsg.len,
                                                   s_keys.s_sign_pk),
                      0);
    assert_int_equal (dipx_envelope_verify (&e, s_keys.s_sign_pk, digest), 0);
    assert_memory_equal (digest, sigmsg.data + 17, 64);
    /* The signature is the last 64 bytes of the envelope (its last field).  */
    assert_memory_equal (e.sig, env.data + env.len - 64, 64);
    fx_buf_free (&env);
    fx_buf_free (&sigmsg);

    /* The public-interest example, sealed the other way round.  */
    fx_header_pi (&h);
    s_check_golden_envelope ("envelope_pi", &h, (const uint8_t *) FX_BODY_PI, strlen (FX_BODY_PI),
                             fx_nonce_pi, s_keys.r_sign_sk, s_keys.r_sign_pk);
}

/*  seal -> decode -> verify -> open with random nonces and a range of body
    sizes up to the limit, and each envelope inside SEND and DELIVER frames.  */
static void
test_envelope_roundtrip (void **state)
{
    (void) state;
    static const size_t sizes[] = {0, 1, 255, 256, 2048, 65535, 65536, DIPX_MAX_BODY};
    uint8_t *body = malloc (DIPX_MAX_BODY + 1);
    assert_non_null (body);
    randombytes_buf (body, DIPX_MAX_BODY + 1);
    dipx_header_t h;
    fx_header (&h);
    uint8_t first_nonce[24] = {0};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *env, *opened;
        size_t env_len, opened_len;
        assert_int_equal (dipx_envelope_seal (&h, body, sizes[i], s_keys.shared, s_keys.s_sign_sk,
                                              &env, &env_len),
                          0);
        assert_true (env_len <= DIPX_MAX_ENV);
        dipx_envelope_t e;
        assert_int_equal (dipx_envelope_decode (env, env_len, &e), 0);
        assert_int_equal (dipx_envelope_verify (&e, s_keys.s_sign_pk, NULL), 0);
        assert_int_equal (dipx_envelope_open (&e, s_keys.shared, &opened, &opened_len), 0);
        s_assert_bytes ("body", opened, opened_len, body, sizes[i]);
        /* Random nonces: two seals never share one.  */
        if (i == 0)
            memcpy (first_nonce, e.ct.ptr, 24);
        else
            assert_memory_not_equal (first_nonce, e.ct.ptr, 24);

        /* The largest envelope still fits a SEND and a DELIVER frame with
           the largest sequence number and count.  */
        dipx_frame_t f, d;
        memset (&f, 0, sizeof f);
        f.cmd = DIPX_CMD_DELIVER;
        f.u.deliver.seq = UINT64_MAX;
        f.u.deliver.count = UINT32_MAX;
        f.u.deliver.env = (dipx_slice_t){env, env_len};
        uint8_t *fb;
        size_t fb_len;
        assert_int_equal (dipx_frame_encode (&f, &fb, &fb_len), 0);
        assert_int_equal (dipx_frame_decode (fb, fb_len, &d), 0);
        assert_int_equal (d.u.deliver.env.len, env_len);
        free (fb);
        free (opened);
        free (env);
    }
    /* One byte over the body limit is refused before anything is sealed.  */
    uint8_t *env = NULL;
    size_t env_len = 0;
    assert_int_equal (dipx_envelope_seal (&h, body, DIPX_MAX_BODY + 1, s_keys.shared,
                                          s_keys.s_sign_sk, &env, &env_len),
                      DIPX_E_INVAL);
    assert_null (env);
    free (body);
}

/*  The worst-case header (every field at its maximum) with the largest body:
    the limits in dipx_limits.h must let it through every decoder.  */
static void
test_envelope_worst_case (void **state)
{
    (void) state;
    dipx_header_t h;
    fx_header (&h);
    memset (h.type, 'a', DIPX_MAX_TYPE);
    h.type[DIPX_MAX_TYPE] = 0;
    memset (h.from, 'f', DIPX_MAX_AGENCY_ID);
    h.from[DIPX_MAX_AGENCY_ID] = 0;
    memset (h.to, 't', DIPX_MAX_AGENCY_ID);
    h.to[DIPX_MAX_AGENCY_ID] = 0;
    memset (h.ref, 'r', DIPX_MAX_REF);
    h.ref[DIPX_MAX_REF] = 0;
    h.basis = DIPX_BASIS_PUBLIC_INTEREST;
    h.purpose = DIPX_PURPOSE_NATIONAL_MONITORING;
    h.cats = (1u << DIPX_CAT_COUNT) - 1;
    h.created = UINT64_MAX - DIPX_MAX_TTL_MS;
    h.expires = UINT64_MAX;
    memset (h.pi_by, 'b', DIPX_MAX_PI_NAME);
    memset (h.pi_approver, 'a', DIPX_MAX_PI_NAME);
    memset (h.pi_why, 'w', DIPX_MAX_PI_WHY);
    uint8_t *body = calloc (1, DIPX_MAX_BODY);
    assert_non_null (body);
    uint8_t *env, *opened;
    size_t env_len, opened_len;
    assert_int_equal (dipx_envelope_seal (&h, body, DIPX_MAX_BODY, s_keys.shared,
                                          s_keys.s_sign_sk, &env, &env_len),
                      0);
    assert_true (env_len <= DIPX_MAX_ENV);
    dipx_envelope_t e;
    assert_int_equal (dipx_envelope_decode (env, env_len, &e), 0);
    assert_true (e.hdr.len <= DIPX__HDR_WORST);
    assert_int_equal (dipx_envelope_verify (&e, s_keys.s_sign_pk, NULL), 0);
    assert_int_equal (dipx_envelope_open (&e, s_keys.shared, &opened, &opened_len), 0);
    assert_int_equal (opened_len, DIPX_MAX_BODY);

    dipx_frame_t f, d;
    memset (&f, 0, sizeof f);
    f.cmd = DIPX_CMD_DELIVER;
    f.u.deliver.seq = UINT64_MAX;
    f.u.deliver.count = UINT32_MAX;
    f.u.deliver.env = (dipx_slice_t){env, env_len};
    uint8_t *fb;
    size_t fb_len;
    assert_int_equal (dipx_frame_encode (&f, &fb, &fb_len), 0);
    assert_true (fb_len <= DIPX_MAX_FRAME);
    assert_int_equal (dipx_frame_decode (fb, fb_len, &d), 0);
    print_message ("largest header %zu bytes, envelope %zu, DELIVER frame %zu (limit %u)\n",
                   e.hdr.len, env_len, fb_len, (unsigned) DIPX_MAX_FRAME);
    free (fb);
    free (opened);
    free (env);
    free (body);
}

/*  Wire names: the tables PROTOCOL.md lists, and the error table's shape.  */
static void
test_names (void **state)
{
    (void) state;
    for (int i = 0; i < DIPX_AGENCY_COUNT; i++)
        assert_int_equal (dipx_agency_type_parse (dipx_agency_type_name (i)), i);
    for (int i = 0; i < DIPX_BASIS_COUNT; i++)
        assert_int_equal (dipx_basis_parse (dipx_basis_name (i)), i);
    for (int i = 0; i < DIPX_PURPOSE_COUNT; i++)
        assert_int_equal (dipx_purpose_parse (dipx_purpose_name (i)), i);
    for (int i = 0; i < DIPX_CAT_COUNT; i++)
        assert_int_equal (dipx_category_parse (dipx_category_name (i)), i);
    assert_null (dipx_basis_name (DIPX_BASIS_COUNT));
    assert_int_equal (dipx_basis_parse ("Statute"), DIPX_E_VALUE);
    assert_string_equal (dipx_basis_name (DIPX_BASIS_PUBLIC_INTEREST), "public_interest");
    uint32_t mask;
    assert_int_equal (dipx_categories_parse ("identifiers,risk", &mask), 0);
    assert_int_equal (mask, (1u << DIPX_CAT_IDENTIFIERS) | (1u << DIPX_CAT_RISK));
    assert_int_equal (dipx_categories_parse ("risk,risk", &mask), DIPX_E_VALUE);
    assert_int_equal (dipx_categories_parse ("", &mask), DIPX_E_VALUE);

    assert_string_equal (dipx_cmd_name (DIPX_CMD_HISTORY), "HISTORY");
    assert_string_equal (dipx_cmd_name (0), "?");
    assert_string_equal (dipx_cmd_name (32), "?");
    assert_string_equal (dipx_event_name (DIPX_EVENT_UNDELIVERABLE), "undeliverable");
    assert_null (dipx_event_name (DIPX_EVENT_COUNT));
    /* The outcome statement carries the event's number: these two are wire values.  */
    assert_int_equal (DIPX_EVENT_ACTIONED, 3);
    assert_int_equal (DIPX_EVENT_REJECTED, 4);

    assert_string_equal (dipx_error_name (DIPX_E_POLICY), "policy");
    assert_string_equal (dipx_error_name (22), "policy");
    assert_string_equal (dipx_error_name (0), "ok");
    assert_string_equal (dipx_error_name (-99), "unknown");
    assert_true (dipx_error_is_wire (DIPX_E_BUSY));
    assert_false (dipx_error_is_wire (DIPX_E_NOMEM));
    assert_false (dipx_error_is_wire (-99));
    assert_false (dipx_error_is_wire (0));
    assert_string_equal (dipx_strerror (DIPX_E_TRUNCATED), "input ends inside a value");
    assert_string_equal (dipx_strerror (INT_MIN), "unknown error"); /* no -INT_MIN */
    assert_string_equal (dipx_error_name (INT_MIN), "unknown");
    assert_false (dipx_error_is_wire (INT_MIN));
    assert_string_equal (dipx_error_name (INT_MAX), "unknown");
    for (int code = 1; code < 200; code++)
        if (strcmp (dipx_error_name (code), "unknown") != 0)
            assert_int_equal (dipx_error_is_wire (-code), code < DIPX_E_LOCAL_FIRST);
}

int
main (void)
{
    fx_keys (&s_keys);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_subject),
        cmocka_unit_test (test_frames),
        cmocka_unit_test (test_statements),
        cmocka_unit_test (test_envelope),
        cmocka_unit_test (test_envelope_roundtrip),
        cmocka_unit_test (test_envelope_worst_case),
        cmocka_unit_test (test_names),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
