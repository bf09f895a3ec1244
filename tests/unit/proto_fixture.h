/*  proto_fixture.h - shared helpers of the proto/ tests and fuzz targets:
    the byte notation the test tables are written in, the golden vectors in
    tests/vectors/, the fixed keys and headers they were made from, and
    envelope surgery (re-sign, re-seal) for the crypto negatives.

    Byte notation (fx_bytes_parse), a superset of the .hex vector files:
        00 c4 ff        hex bytes; whitespace between them is optional
        00*41           a byte repeated: 41 zero bytes
        'window'        a msgpack str, with its minimal header (a6 77 69 ...)
        b( ... )        a msgpack bin holding the bytes inside, minimal header
        s( ... )        a msgpack str holding the bytes inside: s(61*257)
        { ... }*N       the bytes inside, N times: {c4 10 00*16}*256
        $name           bytes bound with fx_var_set (a computed hash, say)
        # ...           a comment to the end of the line
*/
#ifndef PROTO_FIXTURE_H_INCLUDED
#define PROTO_FIXTURE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dipx_envelope.h"
#include "dipx_frame.h"

/*  Growable byte buffer.  */
typedef struct {
    uint8_t *data; /* malloc'd, or NULL when empty */
    size_t len;    /* bytes used */
    size_t cap;    /* bytes allocated */
} fx_buf_t;

void fx_buf_free (fx_buf_t *b);
void fx_buf_put (fx_buf_t *b, const void *data, size_t len);

/*  Parses the notation above into out (appended). Returns 0, or -1 with a
    message on stderr for a syntax error.  */
int fx_bytes_parse (const char *text, fx_buf_t *out);

/*  Binds $name (at most 8 bindings; a later one replaces an earlier).  */
void fx_var_set (const char *name, const uint8_t *data, size_t len);

/*  Loads tests/vectors/<name>.hex from $DIPX_SOURCE_DIR (or the source tree
    this was built from). Aborts the test on failure.  */
void fx_vector (const char *name, fx_buf_t *out);

/*  The fixed identities of the vectors (seeds 01, 02, 03, 04 x 32).  */
typedef struct {
    uint8_t s_enc_pk[32], s_enc_sk[32];   /* police.met.brixton X25519 */
    uint8_t s_sign_pk[32], s_sign_sk[64]; /* police.met.brixton Ed25519 */
    uint8_t r_enc_pk[32], r_enc_sk[32];   /* cjit.lambeth X25519 */
    uint8_t r_sign_pk[32], r_sign_sk[64]; /* cjit.lambeth Ed25519 */
    uint8_t shared[32];                   /* crypto_box_beforenm of the two */
} fx_keys_t;

void fx_keys (fx_keys_t *k);

#define FX_SENDER "police.met.brixton"
#define FX_RECIPIENT "cjit.lambeth"
#define FX_BROKER "dipx.broker"
#define FX_CREATED 1767225600000ull /* 2026-01-01T00:00:00Z */
#define FX_EXPIRES (FX_CREATED + 30ull * 86400 * 1000)
#define FX_ACK_AT (FX_CREATED + 60ull * 1000)
#define FX_OUTCOME_AT (FX_CREATED + 3600ull * 1000)
#define FX_BODY                                                                                    \
    "{\"form\":\"DT1\",\"pnc\":\"2001/0012345H\",\"result\":\"positive\",\"drugs\":"             \
    "[\"opiates\",\"cocaine\"]}"
#define FX_BODY_PI "Risk to a named child at the address recorded in DIR 7731; see attached note."
#define FX_REJECT_REASON "Not known to this CJIT: wrong area"

extern const uint8_t fx_id1[DIPX_ID_BYTES];
extern const uint8_t fx_id2[DIPX_ID_BYTES];
extern const uint8_t fx_nonce[DIPX_NONCE_BYTES];    /* 00 .. 17 */
extern const uint8_t fx_nonce_pi[DIPX_NONCE_BYTES]; /* 18 .. 2f */

/*  The headers of envelope.hex and envelope_pi.hex (subject from subject.hex).  */
void fx_header (dipx_header_t *h);
void fx_header_pi (dipx_header_t *h);

/*  Encodes an envelope map {hdr, ct, sig} around the given parts, signing
    hh || ph with sign_sk as a sender would. *out is malloc'd.  */
void fx_envelope_build (const uint8_t *hdr, size_t hdr_len, const uint8_t *ct, size_t ct_len,
                        const uint8_t *sign_sk, uint8_t **out, size_t *out_len);

/*  Seals arbitrary plaintext: ct = nonce || crypto_box_easy_afternm. *ct is
    malloc'd (len + 40 bytes).  */
void fx_box (const uint8_t *plain, size_t len, const uint8_t nonce[24], const uint8_t shared[32],
             uint8_t **ct, size_t *ct_len);

/*  Replaces every occurrence of `from` in buf with `to` (same length).
    Returns the number replaced.  */
int fx_replace (uint8_t *buf, size_t len, const char *from, const char *to);

/*  True if two decoded frames hold the same command, presence bits and field
    values (slices compared by content).  */
bool fx_frame_equal (const dipx_frame_t *a, const dipx_frame_t *b);

#endif
