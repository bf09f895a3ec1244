/*  fuzz_envelope.c - libFuzzer target for dipx_envelope_decode and
    dipx_envelope_verify, which the broker runs on every SEND.

    Decode refuses with a decode code or succeeds; on success hh must be the
    hash of the header bytes, and the signature is checked with the vectors'
    sender key (police.met.brixton), so that the golden envelopes in the
    corpus go on through dipx_envelope_open as a recipient would.
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
    static int ready;
    if (!ready) {
        fx_keys (&keys);
        ready = 1;
    }
    dipx_envelope_t e;
    int rc = dipx_envelope_decode (data, size, &e);
    if (rc != 0) {
        if (rc > DIPX_E_MALFORMED || rc < DIPX_E_VERSION)
            abort (); /* only decode codes, 1..12 */
        return 0;
    }
    uint8_t hh[DIPX_HASH_BYTES], digest[2 * DIPX_HASH_BYTES];
    dipx_hash_labelled ("dipx-v1-header", e.hdr.ptr, e.hdr.len, hh);
    if (memcmp (hh, e.hh, sizeof hh) != 0)
        abort ();
    if (e.hdr.ptr < data || e.hdr.ptr + e.hdr.len > data + size || e.ct.ptr < data
        || e.ct.ptr + e.ct.len > data + size)
        abort (); /* slices point into the input */
    rc = dipx_envelope_verify (&e, keys.s_sign_pk, digest);
    if (rc != 0) {
        if (rc != DIPX_E_BAD_SIGNATURE)
            abort ();
        return 0;
    }
    uint8_t *body = NULL;
    size_t body_len;
    rc = dipx_envelope_open (&e, keys.shared, &body, &body_len);
    if (rc == 0)
        free (body);
    else if (body)
        abort ();
    return 0;
}
