/*  fuzz_inner.c - libFuzzer target for the sealed plaintext: the input is
    sealed (crypto_box, the vectors' keys) under the reference header and
    opened with dipx_envelope_open. A registered agency can seal anything it
    likes, so to the recipient the plaintext is untrusted input like the rest.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dipx_envelope.h"
#include "unit/proto_fixture.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static fx_keys_t keys;
    static uint8_t *ref;
    static dipx_envelope_t e;
    if (!ref) {
        dipx_header_t h;
        size_t ref_len;
        fx_keys (&keys);
        fx_header (&h);
        if (dipx__envelope_seal_nonce (&h, (const uint8_t *) "x", 1, keys.shared,
                                       keys.s_sign_sk, fx_nonce, &ref, &ref_len)
                != 0
            || dipx_envelope_decode (ref, ref_len, &e) != 0)
            abort ();
    }
    if (size == 0 || size > DIPX_MAX_INNER)
        return 0; /* a ciphertext without plaintext is refused by decode (ct too short) */
    uint8_t *ct, *body = NULL;
    size_t ct_len, body_len;
    fx_box (data, size, fx_nonce, keys.shared, &ct, &ct_len);
    dipx_envelope_t mine = e;
    mine.ct = (dipx_slice_t){ct, ct_len};
    int rc = dipx_envelope_open (&mine, keys.shared, &body, &body_len);
    if (rc == 0) {
        if (body_len > size)
            abort ();
        free (body);
    }
    else if (body
             || !((rc <= DIPX_E_MALFORMED && rc >= DIPX_E_VERSION) || rc == DIPX_E_READDRESSED
                  || rc == DIPX_E_HEADER_MISMATCH))
        abort (); /* decode codes, or the two binding checks; never CRYPTO */
    free (ct);
    return 0;
}
