/*  dipx_envelope.h - the envelope: a clear header the broker routes on, a
    payload sealed from sender to recipient, and the sender's signature.

        envelope = { "hdr": bin header, "ct": bin ciphertext, "sig": bin 64 }
        hh  = BLAKE2b-256("dipx-v1-header\0"  || hdr)
        ct  = nonce(24) || crypto_box_easy(inner, nonce, recipient_pk, sender_sk)
        inner = { v, id, from, to, hh, body }       (the sealed plaintext)
        ph  = BLAKE2b-256("dipx-v1-payload\0" || ct)
        sig = Ed25519(sender_sign_sk, "dipx-v1-envelope\0" || hh || ph)

    The header cannot carry a hash of the ciphertext, because the ciphertext
    carries a hash of the header; the signature covers both hashes instead.
    PROTOCOL.md says which attack each part stops.
*/
#ifndef DIPX_ENVELOPE_H_INCLUDED
#define DIPX_ENVELOPE_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "dipx_mp.h"
#include "dipx_types.h"

/*  The clear header: everything the broker needs to route, check and audit a
    message, and nothing that identifies the person it is about.  */
typedef struct {
    uint64_t v;                                /* protocol version, 1 */
    uint8_t id[DIPX_ID_BYTES];                 /* message id, random, sender-chosen */
    char type[DIPX_MAX_TYPE + 1];              /* message type, e.g. drug_test_result */
    char from[DIPX_MAX_AGENCY_ID + 1];         /* sender agency id */
    char to[DIPX_MAX_AGENCY_ID + 1];           /* recipient agency id */
    uint8_t subj[DIPX_SUBJ_BYTES];             /* subject reference (keyed hash) */
    int basis;                                 /* dipx_basis_t */
    char ref[DIPX_MAX_REF + 1];                /* consent id, statute, order or decision ref */
    int purpose;                               /* dipx_purpose_t */
    uint32_t cats;                             /* data categories, bitmask */
    uint64_t created;                          /* ms since the epoch, sender clock */
    uint64_t expires;                          /* ms since the epoch */
    char pi_by[DIPX_MAX_PI_NAME + 1];          /* public interest: decision-maker */
    char pi_approver[DIPX_MAX_PI_NAME + 1];    /* public interest: senior sign-off */
    char pi_why[DIPX_MAX_PI_WHY + 1];          /* public interest: justification */
} dipx_header_t;

/*  A decoded envelope. Slices point into the buffer it was decoded from.  */
typedef struct {
    dipx_header_t h;             /* decoded header */
    dipx_slice_t hdr;            /* header bytes as sent */
    dipx_slice_t ct;             /* ciphertext: nonce || box */
    uint8_t sig[DIPX_SIG_BYTES]; /* sender's signature */
    uint8_t hh[DIPX_HASH_BYTES]; /* header hash, computed by decode */
} dipx_envelope_t;

/*  Decodes an envelope and its header and computes hh. No crypto is checked.
    Returns 0 or a decode error; DIPX_E_VERSION for a header version other
    than 1; DIPX_E_VALUE for cross-field faults (expiry not after creation or
    beyond the maximum lifetime, sender = recipient, public-interest fields on
    another basis); DIPX_E_MISSING_FIELD for a public-interest basis without
    its three fields.  */
int dipx_envelope_decode (const uint8_t *buf, size_t len, dipx_envelope_t *env);

/*  Computes the payload hash and checks the sender's signature with its
    Ed25519 public key. Returns 0 or DIPX_E_BAD_SIGNATURE. If digest is not
    NULL it receives hh || ph (64 bytes), which identifies the envelope.  */
DIPX_MUST_CHECK int dipx_envelope_verify (const dipx_envelope_t *env,
                                          const uint8_t sign_pk[DIPX_KEY_BYTES],
                                          uint8_t digest[2 * DIPX_HASH_BYTES]);

/*  The digest alone (hh || ph), unverified: to recognise a resend of an
    envelope already stored.  */
void dipx_envelope_digest (const dipx_envelope_t *env, uint8_t digest[2 * DIPX_HASH_BYTES]);

/*  Builds, seals and signs an envelope. shared is crypto_box_beforenm of the
    recipient's public key and the sender's secret key; sign_sk is the
    sender's Ed25519 secret key (64 bytes). Validates the header by decoding
    what it encoded. On success *out is malloc'd, owned by the caller.  */
int dipx_envelope_seal (const dipx_header_t *h, const uint8_t *body, size_t body_len,
                        const uint8_t shared[DIPX_KEY_BYTES], const uint8_t *sign_sk,
                        uint8_t **out, size_t *out_len);

/*  Private but shared (tests only): dipx_envelope_seal with a given nonce
    instead of a random one, so that a golden envelope is byte-exact. Never
    use it to send: a repeated nonce under one shared key breaks the box.  */
int dipx__envelope_seal_nonce (const dipx_header_t *h, const uint8_t *body, size_t body_len,
                               const uint8_t shared[DIPX_KEY_BYTES], const uint8_t *sign_sk,
                               const uint8_t nonce[DIPX_NONCE_BYTES], uint8_t **out,
                               size_t *out_len);

/*  Opens the sealed payload of a decoded envelope with the shared key of the
    recipient's secret key and the sender's public key, and checks that the
    sealed id, sender and recipient equal the header's (DIPX_E_READDRESSED)
    and that the sealed header hash equals hh (DIPX_E_HEADER_MISMATCH).
    DIPX_E_CRYPTO if it does not decrypt. On success *body is malloc'd, owned
    by the caller, who should wipe it (sodium_memzero) before free.  */
DIPX_MUST_CHECK int dipx_envelope_open (const dipx_envelope_t *env,
                                        const uint8_t shared[DIPX_KEY_BYTES], uint8_t **body,
                                        size_t *body_len);

/*  BLAKE2b-256 of label (with its NUL) followed by data.  */
void dipx_hash_labelled (const char *label, const uint8_t *data, size_t len,
                         uint8_t out[DIPX_HASH_BYTES]);

/*  Milliseconds since the Unix epoch (wall clock) and since boot (monotonic).  */
uint64_t dipx_now_ms (void);
uint64_t dipx_mono_ms (void);

#endif
