/*  dipx_envelope.c - header schema, sealing, opening and signature checks.

    Plaintext handling: the sealed plaintext (which holds the payload) is
    written into one buffer sized in advance, never grown by realloc, so no
    stray copy of it is left in freed memory; it is wiped before it is freed.
*/
#include "dipx_envelope.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "dipx_names.h"

#define F_TEXT(fld, key, req, lo, hi, chk)                                                         \
    {key, DIPX_FT_TEXT, req, lo, hi, offsetof (dipx_header_t, fld), chk, NULL, 0}

/*  "v" takes any uint, so that every version other than 1 is DIPX_E_VERSION
    (checked once the fields have decoded), as a frame's version is.  */
static const dipx_field_t s_header[] = {
    {"v", DIPX_FT_UINT, true, 0, UINT64_MAX, offsetof (dipx_header_t, v), NULL, NULL, 0},
    {"id", DIPX_FT_BYTES, true, DIPX_ID_BYTES, DIPX_ID_BYTES, offsetof (dipx_header_t, id), NULL,
     NULL, 0},
    F_TEXT (type, "type", true, 1, DIPX_MAX_TYPE, dipx_text_is_ident),
    F_TEXT (from, "from", true, 1, DIPX_MAX_AGENCY_ID, dipx_text_is_agency_id),
    F_TEXT (to, "to", true, 1, DIPX_MAX_AGENCY_ID, dipx_text_is_agency_id),
    {"subj", DIPX_FT_BYTES, true, DIPX_SUBJ_BYTES, DIPX_SUBJ_BYTES,
     offsetof (dipx_header_t, subj), NULL, NULL, 0},
    {"basis", DIPX_FT_ENUM, true, 0, 0, offsetof (dipx_header_t, basis), NULL, dipx_basis_names,
     DIPX_BASIS_COUNT},
    F_TEXT (ref, "ref", true, 1, DIPX_MAX_REF, dipx_text_is_printable),
    {"purpose", DIPX_FT_ENUM, true, 0, 0, offsetof (dipx_header_t, purpose), NULL,
     dipx_purpose_names, DIPX_PURPOSE_COUNT},
    {"cats", DIPX_FT_ENUMSET, true, 1, DIPX_MAX_CATS, offsetof (dipx_header_t, cats), NULL,
     dipx_category_names, DIPX_CAT_COUNT},
    {"created", DIPX_FT_UINT, true, 0, UINT64_MAX, offsetof (dipx_header_t, created), NULL, NULL,
     0},
    {"expires", DIPX_FT_UINT, true, 0, UINT64_MAX, offsetof (dipx_header_t, expires), NULL, NULL,
     0},
    F_TEXT (pi_by, "pi_by", false, 1, DIPX_MAX_PI_NAME, dipx_text_is_printable),
    F_TEXT (pi_approver, "pi_approver", false, 1, DIPX_MAX_PI_NAME, dipx_text_is_printable),
    F_TEXT (pi_why, "pi_why", false, 1, DIPX_MAX_PI_WHY, dipx_text_is_printable),
};
static const dipx_schema_t s_header_schema = DIPX_SCHEMA (s_header);
#define S_PI_FIELDS ((1u << 12) | (1u << 13) | (1u << 14))

typedef struct {
    dipx_slice_t hdr;            /* header document */
    dipx_slice_t ct;             /* ciphertext */
    uint8_t sig[DIPX_SIG_BYTES]; /* signature */
} s_env_t;

static const dipx_field_t s_env[] = {
    {"hdr", DIPX_FT_SLICE, true, 1, DIPX_MAX_HDR, offsetof (s_env_t, hdr), NULL, NULL, 0},
    {"ct", DIPX_FT_SLICE, true, DIPX_NONCE_BYTES + DIPX_MAC_BYTES + 1, DIPX_MAX_CT,
     offsetof (s_env_t, ct), NULL, NULL, 0},
    {"sig", DIPX_FT_BYTES, true, DIPX_SIG_BYTES, DIPX_SIG_BYTES, offsetof (s_env_t, sig), NULL,
     NULL, 0},
};
static const dipx_schema_t s_env_schema = DIPX_SCHEMA (s_env);

typedef struct {
    uint64_t v;                        /* protocol version, 1 */
    uint8_t id[DIPX_ID_BYTES];         /* message id */
    char from[DIPX_MAX_AGENCY_ID + 1]; /* sender */
    char to[DIPX_MAX_AGENCY_ID + 1];   /* recipient */
    uint8_t hh[DIPX_HASH_BYTES];       /* header hash */
    dipx_slice_t body;                 /* the payload */
} s_inner_t;

static const dipx_field_t s_inner[] = {
    {"v", DIPX_FT_UINT, true, 0, UINT64_MAX, offsetof (s_inner_t, v), NULL, NULL, 0},
    {"id", DIPX_FT_BYTES, true, DIPX_ID_BYTES, DIPX_ID_BYTES, offsetof (s_inner_t, id), NULL,
     NULL, 0},
    {"from", DIPX_FT_TEXT, true, 1, DIPX_MAX_AGENCY_ID, offsetof (s_inner_t, from),
     dipx_text_is_agency_id, NULL, 0},
    {"to", DIPX_FT_TEXT, true, 1, DIPX_MAX_AGENCY_ID, offsetof (s_inner_t, to),
     dipx_text_is_agency_id, NULL, 0},
    {"hh", DIPX_FT_BYTES, true, DIPX_HASH_BYTES, DIPX_HASH_BYTES, offsetof (s_inner_t, hh), NULL,
     NULL, 0},
    {"body", DIPX_FT_SLICE, true, 0, DIPX_MAX_BODY, offsetof (s_inner_t, body), NULL, NULL, 0},
};
static const dipx_schema_t s_inner_schema = DIPX_SCHEMA (s_inner);

void
dipx_hash_labelled (const char *label, const uint8_t *data, size_t len,
                    uint8_t out[DIPX_HASH_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init (&st, NULL, 0, DIPX_HASH_BYTES);
    crypto_generichash_update (&st, (const uint8_t *) label, strlen (label) + 1);
    crypto_generichash_update (&st, data, len);
    crypto_generichash_final (&st, out, DIPX_HASH_BYTES);
}

uint64_t
dipx_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

uint64_t
dipx_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

static int
s_header_decode (const uint8_t *buf, size_t len, dipx_header_t *h)
{
    uint32_t present;
    memset (h, 0, sizeof *h);
    int rc = dipx_mp_decode_doc (buf, len, 2, &s_header_schema, h, &present);
    if (rc)
        return rc;
    if (h->v != DIPX_PROTO_VERSION)
        return DIPX_E_VERSION;
    uint32_t pi = present & S_PI_FIELDS;
    if (h->basis == DIPX_BASIS_PUBLIC_INTEREST && pi != S_PI_FIELDS)
        return DIPX_E_MISSING_FIELD;
    if (h->basis != DIPX_BASIS_PUBLIC_INTEREST && pi)
        return DIPX_E_VALUE;
    if (h->expires <= h->created || h->expires - h->created > DIPX_MAX_TTL_MS)
        return DIPX_E_VALUE;
    if (strcmp (h->from, h->to) == 0)
        return DIPX_E_VALUE;
    /* 16 zero bytes stand for "no id" in REFUSED (an envelope that did not
       decode), so no message may have them.  */
    if (sodium_is_zero (h->id, sizeof h->id))
        return DIPX_E_VALUE;
    return 0;
}

int
dipx_envelope_decode (const uint8_t *buf, size_t len, dipx_envelope_t *env)
{
    s_env_t e;
    int rc = dipx_mp_decode_doc (buf, len, 1, &s_env_schema, &e, NULL);
    if (rc)
        return rc;
    if ((rc = s_header_decode (e.hdr.ptr, e.hdr.len, &env->h)))
        return rc;
    env->hdr = e.hdr;
    env->ct = e.ct;
    memcpy (env->sig, e.sig, sizeof env->sig);
    dipx_hash_labelled ("dipx-v1-header", e.hdr.ptr, e.hdr.len, env->hh);
    return 0;
}

/*  The 81 bytes an envelope signature covers.  */
#define S_SIGMSG_LABEL "dipx-v1-envelope"
#define S_SIGMSG_BYTES (sizeof S_SIGMSG_LABEL + 2 * DIPX_HASH_BYTES)

static void
s_sigmsg (const uint8_t hh[DIPX_HASH_BYTES], const uint8_t *ct, size_t ct_len,
          uint8_t msg[S_SIGMSG_BYTES])
{
    memcpy (msg, S_SIGMSG_LABEL, sizeof S_SIGMSG_LABEL);
    memcpy (msg + sizeof S_SIGMSG_LABEL, hh, DIPX_HASH_BYTES);
    dipx_hash_labelled ("dipx-v1-payload", ct, ct_len,
                        msg + sizeof S_SIGMSG_LABEL + DIPX_HASH_BYTES);
}

void
dipx_envelope_digest (const dipx_envelope_t *env, uint8_t digest[2 * DIPX_HASH_BYTES])
{
    uint8_t msg[S_SIGMSG_BYTES];
    s_sigmsg (env->hh, env->ct.ptr, env->ct.len, msg);
    memcpy (digest, msg + sizeof S_SIGMSG_LABEL, 2 * DIPX_HASH_BYTES);
}

int
dipx_envelope_verify (const dipx_envelope_t *env, const uint8_t sign_pk[DIPX_KEY_BYTES],
                      uint8_t digest[2 * DIPX_HASH_BYTES])
{
    uint8_t msg[S_SIGMSG_BYTES];
    s_sigmsg (env->hh, env->ct.ptr, env->ct.len, msg);
    if (crypto_sign_verify_detached (env->sig, msg, sizeof msg, sign_pk) != 0)
        return DIPX_E_BAD_SIGNATURE;
    if (digest)
        memcpy (digest, msg + sizeof S_SIGMSG_LABEL, 2 * DIPX_HASH_BYTES);
    return 0;
}

/*  Seals with the given nonce, or a random one when nonce is NULL.  */
static int
s_seal (const dipx_header_t *h, const uint8_t *body, size_t body_len,
        const uint8_t shared[DIPX_KEY_BYTES], const uint8_t *sign_sk,
        const uint8_t *nonce, uint8_t **out, size_t *out_len)
{
    if (body_len > DIPX_MAX_BODY || (!body && body_len))
        return DIPX_E_INVAL;
    uint8_t *hdr = NULL, *inner = NULL, *ct = NULL;
    size_t hdr_len = 0;
    size_t cap = body_len + DIPX_INNER_OVERHEAD; /* the sealed plaintext's buffer */
    uint32_t present = h->basis == DIPX_BASIS_PUBLIC_INTEREST ? S_PI_FIELDS : 0;
    int rc = dipx_mp_encode_doc (&s_header_schema, h, present, &hdr, &hdr_len);
    if (rc)
        goto done;
    /* The header must be one a broker would accept: decode what we wrote.  */
    dipx_header_t *check = (dipx_header_t *) malloc (sizeof *check);
    if (!check) {
        rc = DIPX_E_NOMEM;
        goto done;
    }
    rc = hdr_len > DIPX_MAX_HDR ? DIPX_E_FIELD_LENGTH : s_header_decode (hdr, hdr_len, check);
    free (check);
    if (rc)
        goto done;

    s_inner_t in;
    in.v = DIPX_PROTO_VERSION;
    memcpy (in.id, h->id, DIPX_ID_BYTES);
    memcpy (in.from, h->from, sizeof in.from);
    memcpy (in.to, h->to, sizeof in.to);
    dipx_hash_labelled ("dipx-v1-header", hdr, hdr_len, in.hh);
    in.body = (dipx_slice_t){body, body_len};

    inner = (uint8_t *) malloc (cap);
    ct = (uint8_t *) malloc (DIPX_NONCE_BYTES + DIPX_MAC_BYTES + cap);
    if (!inner || !ct) {
        rc = DIPX_E_NOMEM;
        goto done;
    }
    dipx_mp_fixed_t fx = {inner, cap, 0};
    msgpack_packer pk;
    msgpack_packer_init (&pk, &fx, dipx_mp_fixed_write);
    if ((rc = dipx_mp_encode_map (&pk, &s_inner_schema, &in, 0)))
        goto done;

    if (nonce)
        memcpy (ct, nonce, DIPX_NONCE_BYTES);
    else
        randombytes_buf (ct, DIPX_NONCE_BYTES);
    crypto_box_easy_afternm (ct + DIPX_NONCE_BYTES, inner, fx.len, ct, shared);
    size_t ct_len = DIPX_NONCE_BYTES + DIPX_MAC_BYTES + fx.len;

    s_env_t e;
    uint8_t msg[S_SIGMSG_BYTES];
    s_sigmsg (in.hh, ct, ct_len, msg);
    crypto_sign_detached (e.sig, NULL, msg, sizeof msg, sign_sk);
    e.hdr = (dipx_slice_t){hdr, hdr_len};
    e.ct = (dipx_slice_t){ct, ct_len};
    rc = dipx_mp_encode_doc (&s_env_schema, &e, 0, out, out_len);
done:
    if (inner) /* also after a failed encode, which may have written part of it */
        sodium_memzero (inner, cap);
    free (inner);
    free (ct);
    free (hdr);
    return rc;
}

int
dipx_envelope_seal (const dipx_header_t *h, const uint8_t *body, size_t body_len,
                    const uint8_t shared[DIPX_KEY_BYTES], const uint8_t *sign_sk, uint8_t **out,
                    size_t *out_len)
{
    return s_seal (h, body, body_len, shared, sign_sk, NULL, out, out_len);
}

int
dipx__envelope_seal_nonce (const dipx_header_t *h, const uint8_t *body, size_t body_len,
                           const uint8_t shared[DIPX_KEY_BYTES], const uint8_t *sign_sk,
                           const uint8_t nonce[DIPX_NONCE_BYTES], uint8_t **out, size_t *out_len)
{
    return s_seal (h, body, body_len, shared, sign_sk, nonce, out, out_len);
}

int
dipx_envelope_open (const dipx_envelope_t *env, const uint8_t shared[DIPX_KEY_BYTES],
                    uint8_t **body, size_t *body_len)
{
    *body = NULL;
    *body_len = 0;
    if (env->ct.len < DIPX_NONCE_BYTES + DIPX_MAC_BYTES + 1)
        return DIPX_E_CRYPTO;
    size_t plain_len = env->ct.len - DIPX_NONCE_BYTES - DIPX_MAC_BYTES;
    uint8_t *plain = (uint8_t *) malloc (plain_len);
    if (!plain)
        return DIPX_E_NOMEM;
    int rc = DIPX_E_CRYPTO;
    if (crypto_box_open_easy_afternm (plain, env->ct.ptr + DIPX_NONCE_BYTES,
                                      env->ct.len - DIPX_NONCE_BYTES, env->ct.ptr, shared)
        != 0)
        goto done;
    s_inner_t in;
    if ((rc = dipx_mp_decode_doc (plain, plain_len, 1, &s_inner_schema, &in, NULL)))
        goto done;
    if (in.v != DIPX_PROTO_VERSION) {
        rc = DIPX_E_VERSION;
        goto done;
    }
    if (memcmp (in.id, env->h.id, DIPX_ID_BYTES) != 0 || strcmp (in.from, env->h.from) != 0
        || strcmp (in.to, env->h.to) != 0) {
        rc = DIPX_E_READDRESSED;
        goto done;
    }
    if (sodium_memcmp (in.hh, env->hh, DIPX_HASH_BYTES) != 0) {
        rc = DIPX_E_HEADER_MISMATCH;
        goto done;
    }
    *body = (uint8_t *) malloc (in.body.len ? in.body.len : 1);
    if (!*body) {
        rc = DIPX_E_NOMEM;
        goto done;
    }
    if (in.body.len)
        memcpy (*body, in.body.ptr, in.body.len);
    *body_len = in.body.len;
    rc = 0;
done:
    sodium_memzero (plain, plain_len);
    free (plain);
    return rc;
}
