/*  fuzz_card.c - libFuzzer target for dipx_card_parse, and for the time and
    Z85 parsers it is built on.

    Beyond "no crash, no overread", it checks the parsers' one-spelling
    promise: whatever parses formats back to exactly the input bytes, and
    every failure is one of the documented codes.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dipx_card.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    const char *text = (const char *) data;
    dipx_card_t card;
    int rc = dipx_card_parse (text, size, &card);
    if (rc == 0) {
        char *out = NULL;
        size_t out_len = 0;
        if (dipx_card_format (&card, &out, &out_len) != 0 || out_len != size
            || memcmp (out, data, size) != 0)
            abort ();
        free (out);
    }
    else if (rc != DIPX_E_SYNTAX && rc != DIPX_E_CARD_SIG)
        abort ();

    /* The leading bytes as a time and as a Z85 key.  */
    int64_t secs;
    if (size >= 20 && dipx_time_parse (text, 20, &secs) == 0) {
        char again[21];
        dipx_time_format (secs, again);
        if (memcmp (again, text, 20) != 0)
            abort ();
    }
    uint8_t key[DIPX_KEY_BYTES];
    if (size >= DIPX_Z85_KEY_LEN && dipx_key_from_z85 (text, DIPX_Z85_KEY_LEN, key) == 0) {
        char again[DIPX_Z85_KEY_LEN + 1];
        dipx_key_to_z85 (key, again);
        if (memcmp (again, text, DIPX_Z85_KEY_LEN) != 0)
            abort ();
    }
    return 0;
}
