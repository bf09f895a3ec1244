/*  fuzz_records.c - libFuzzer target for the decoders of records read back
    from the broker's LMDB store: the first byte selects
        0  dipx_store_decode_msg    message record
        1  dipx_store_decode_id     id record
        2  dipx_audit_decode        audit record (msgpack)
    and the rest is the record.

    Beyond "no crash, no overread": a message or id record that decodes is
    rebuilt from the decoded fields and must give back the same bytes (the
    decoder reads every byte it accepts, the pad byte of a message record
    excepted); an audit record that decodes must encode again and decode to
    the same struct, and print as JSON without failing (to /dev/null).
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dipx_audit.h"
#include "dipx_error.h"
#include "dipx_store.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
s_put (uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t) v;
}

static void
s_msg (const uint8_t *buf, size_t len)
{
    dipx_msgrec_t r;
    int rc = dipx_store_decode_msg (buf, len, &r);
    if (rc != 0) {
        if (rc != DIPX_E_CORRUPT)
            abort ();
        return;
    }
    size_t fl = strlen (r.from), tl = strlen (r.to);
    if (r.env_len == 0 || r.env != buf + len - r.env_len || 40 + fl + tl + r.env_len != len)
        abort ();
    uint8_t *again = malloc (len);
    if (!again)
        return;
    again[0] = 1;
    again[1] = (uint8_t) fl;
    again[2] = (uint8_t) tl;
    again[3] = buf[3]; /* pad: not read */
    s_put (again + 4, r.accepted_at, 8);
    s_put (again + 12, r.expires, 8);
    s_put (again + 20, r.env_len, 4);
    memcpy (again + 24, r.id, DIPX_ID_BYTES);
    memcpy (again + 40, r.from, fl);
    memcpy (again + 40 + fl, r.to, tl);
    memcpy (again + 40 + fl + tl, r.env, r.env_len);
    if (memcmp (again, buf, len) != 0)
        abort ();
    free (again);
}

static void
s_id (const uint8_t *buf, size_t len)
{
    dipx_idrec_t r;
    int rc = dipx_store_decode_id (buf, len, &r);
    if (rc != 0) {
        if (rc != DIPX_E_CORRUPT)
            abort ();
        return;
    }
    size_t fl = strlen (r.from), tl = strlen (r.to);
    uint8_t again[84 + 2 * DIPX_MAX_AGENCY_ID];
    if (84 + fl + tl != len || r.state < DIPX_MSG_QUEUED || r.state > DIPX_MSG_DEAD)
        abort ();
    again[0] = 1;
    again[1] = (uint8_t) r.state;
    again[2] = (uint8_t) fl;
    again[3] = (uint8_t) tl;
    s_put (again + 4, r.seq, 8);
    s_put (again + 12, r.at, 8);
    memcpy (again + 20, r.digest, sizeof r.digest);
    memcpy (again + 84, r.from, fl);
    memcpy (again + 84 + fl, r.to, tl);
    if (memcmp (again, buf, len) != 0)
        abort ();
}

static void
s_audit (const uint8_t *buf, size_t len)
{
    static FILE *null;
    dipx_audit_t rec, again;
    if (dipx_audit_decode (buf, len, &rec) != 0)
        return;
    uint8_t *enc;
    size_t enc_len;
    if (dipx_audit_encode (&rec, &enc, &enc_len) != 0)
        abort ();
    if (dipx_audit_decode (enc, enc_len, &again) != 0 || memcmp (&rec, &again, sizeof rec) != 0)
        abort ();
    free (enc);
    if (!null)
        null = fopen ("/dev/null", "w");
    if (null && dipx_audit_print_json (&rec, null) != 0)
        abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* An exact-size copy of the record, so that ASan sees any overread.  */
    size_t len = size - 1;
    uint8_t *buf = malloc (len ? len : 1);
    if (!buf)
        return 0;
    memcpy (buf, data + 1, len);
    switch (data[0] % 3) {
    case 0:
        s_msg (buf, len);
        break;
    case 1:
        s_id (buf, len);
        break;
    default:
        s_audit (buf, len);
        break;
    }
    free (buf);
    return 0;
}
