/*  fuzz_policy.c - libFuzzer target for dipx_policy_parse and, when the text
    parses, dipx_policy_check.

    Beyond "no crash, no overread": a refusal is DIPX_E_SYNTAX with a line
    number within the text, or DIPX_E_COUNT; a policy holds at most
    DIPX_MAX_POLICY_RULES rules; a check answers 0, DIPX_E_BASIS or
    DIPX_E_POLICY, never allows the broker's own type or a basis out of range,
    and allows nothing at all in a policy without rules. The message types
    checked are fixed ones and the third word of the first rule line.
*/
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dipx_error.h"
#include "dipx_limits.h"
#include "dipx_policy.h"
#include "dipx_types.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/*  The third word of the first line that starts with "allow ", or "".  */
static void
s_first_type (const char *text, size_t len, char out[DIPX_MAX_TYPE + 1])
{
    out[0] = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr (p, '\n', (size_t) (end - p));
        const char *le = nl ? nl : end;
        if (le - p > 6 && memcmp (p, "allow ", 6) == 0) {
            int word = 0;
            const char *q = p;
            while (q < le) {
                while (q < le && (*q == ' ' || *q == '\t'))
                    q++;
                const char *w = q;
                while (q < le && *q != ' ' && *q != '\t')
                    q++;
                if (++word == 3) {
                    size_t n = (size_t) (q - w);
                    if (n > DIPX_MAX_TYPE)
                        n = DIPX_MAX_TYPE;
                    memcpy (out, w, n);
                    out[n] = 0;
                    return;
                }
            }
            return;
        }
        p = le + 1;
    }
}

static int
s_lines (const uint8_t *data, size_t size)
{
    int n = size ? 1 : 0;
    for (size_t i = 0; i + 1 < size; i++)
        if (data[i] == '\n')
            n++;
    return n;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    const char *text = (const char *) data;
    dipx_policy_t *p = NULL;
    int line = -1;
    int rc = dipx_policy_parse (text, size, &p, &line);
    if (rc != 0) {
        if (p || (rc != DIPX_E_SYNTAX && rc != DIPX_E_COUNT && rc != DIPX_E_NOMEM))
            abort ();
        if (rc == DIPX_E_SYNTAX && (line < 1 || line > s_lines (data, size)))
            abort ();
        return 0;
    }
    if (!p || line != 0 || dipx_policy_size (p) > DIPX_MAX_POLICY_RULES)
        abort ();
    char first[DIPX_MAX_TYPE + 1];
    s_first_type (text, size, first);
    const char *types[] = {first, "drug_test_result", "safeguarding_disclosure", "", "x"};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (int from = -1; from <= DIPX_AGENCY_COUNT; from++)
            for (int to = -1; to <= DIPX_AGENCY_COUNT; to++)
                for (int b = -1; b <= DIPX_BASIS_COUNT; b++) {
                    rc = dipx_policy_check (p, from, types[t], to, b);
                    if (rc != 0 && rc != DIPX_E_BASIS && rc != DIPX_E_POLICY)
                        abort ();
                    bool agencies = from >= 0 && from < DIPX_AGENCY_BROKER && to >= 0
                                    && to < DIPX_AGENCY_BROKER;
                    if (rc == 0 && (!agencies || b < 0 || b >= DIPX_BASIS_COUNT))
                        abort ();
                    if (rc != DIPX_E_POLICY && dipx_policy_size (p) == 0)
                        abort ();
                }
    dipx_policy_destroy (&p);
    return 0;
}
