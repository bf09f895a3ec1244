/*  fuzz_registry.c - libFuzzer target for dipx_registry_parse.

    Checks that whatever parses formats back to exactly the input bytes, that
    every entry is found by its id and by its encryption key, and that a
    failure is one of the documented codes with a line inside the input.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dipx_registry.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/*  Lines in the input, counting a last line without LF.  */
static int
s_lines (const uint8_t *data, size_t size)
{
    int lines = 1;
    for (size_t i = 0; i < size; i++)
        if (data[i] == '\n')
            lines++;
    return lines;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    dipx_registry_t *reg = NULL;
    int line = -1;
    int rc = dipx_registry_parse ((const char *) data, size, &reg, &line);
    if (rc != 0) {
        if (reg || line < 0 || line > s_lines (data, size) + 1)
            abort ();
        if (rc != DIPX_E_SYNTAX && rc != DIPX_E_CARD_SIG && rc != DIPX_E_EXISTS
            && rc != DIPX_E_VALUE && rc != DIPX_E_COUNT)
            abort ();
        return 0;
    }
    if (!reg || line != 0)
        abort ();
    char *out = NULL;
    size_t out_len = 0;
    if (dipx_registry_format (reg, &out, &out_len) != 0 || out_len != size
        || memcmp (out, data, size) != 0)
        abort ();
    free (out);
    for (size_t i = 0; i < dipx_registry_size (reg); i++) {
        const dipx_entry_t *e = dipx_registry_at (reg, i);
        if (dipx_registry_by_id (reg, e->card.id) != e
            || dipx_registry_by_enc_key (reg, e->card.enc_pk) != e)
            abort ();
    }
    dipx_registry_destroy (&reg);
    return 0;
}
