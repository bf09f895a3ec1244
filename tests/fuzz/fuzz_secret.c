/*  fuzz_secret.c - libFuzzer target for dipx_identity_parse, the secret-file
    parser.

    Checks that whatever parses is spelled exactly as the identity would be
    written back, and that its public keys belong to its secret keys.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dipx_identity.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    dipx_identity_t *identity = NULL;
    int rc = dipx_identity_parse ((const char *) data, size, &identity);
    if (rc != 0) {
        if (identity || rc != DIPX_E_SYNTAX)
            abort ();
        return 0;
    }
    char enc[DIPX_Z85_KEY_LEN + 1], seed[DIPX_Z85_KEY_LEN + 1];
    char again[DIPX_MAX_SECRET_BYTES + 1];
    dipx_key_to_z85 (dipx_identity_enc_sk (identity), enc);
    dipx_key_to_z85 (dipx_identity_sign_sk (identity), seed); /* seed: first 32 bytes */
    int n = snprintf (again, sizeof again, "dipx-secret 1\nid: %s\nenc-secret: %s\nsign-secret: %s\n",
                      dipx_identity_id (identity), enc, seed);
    if (n < 0 || (size_t) n != size || memcmp (again, data, size) != 0)
        abort ();
    uint8_t pk[DIPX_KEY_BYTES];
    if (crypto_scalarmult_base (pk, dipx_identity_enc_sk (identity)) != 0
        || memcmp (pk, dipx_identity_enc_pk (identity), sizeof pk) != 0
        || memcmp (dipx_identity_sign_sk (identity) + 32, dipx_identity_sign_pk (identity), 32) != 0)
        abort ();
    dipx_identity_destroy (&identity);
    return 0;
}
