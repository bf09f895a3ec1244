/*  dipx_card.c - agency cards: strict parser, maker (self-signing), writer,
    and the RFC 3339 times they carry.

    Design. A card has exactly one spelling: fixed field order, "key: value"
    with one space, LF endings, a final LF and nothing after it, canonical Z85,
    times to the second in UTC. So dipx_card_format (dipx_card_parse (text))
    gives back text byte for byte, a card's bytes can be compared and hashed,
    and the fuzz target checks exactly that. The parser works on the caller's
    bytes without assuming a NUL and never reads past len.

    The signature covers a context string with its NUL ("dipx-v1-card\0") and
    then every byte before the "self-sig: " line, so it cannot be replayed as
    any other dipx signature, and the signed bytes are the text itself, not a
    re-encoding of parsed fields. Pure Ed25519 (not the prehashed variant)
    needs the whole message in one buffer: cards are at most
    DIPX_MAX_CARD_BYTES, so it sits on the stack.

    Parsing fills *card field by field but zeroes it on any failure, so a
    caller that forgets to check the result holds nothing unverified.
*/
#include "dipx_card.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "dipx_mp.h"
#include "dipx_types.h"

#define S_CARD_HEADER  "dipx-card 1"
#define S_SIG_CONTEXT  "dipx-v1-card" /* signed with its NUL */
#define S_SIG_Z85_LEN  (DIPX_SIG_BYTES / 4 * 5)
#define S_TIME_LEN     20
#define S_TYPE_NAME_MAX 16 /* longer than any agency type name */

/*  Signature input: context, its NUL, and the card before the self-sig line.  */
#define S_SIGNED_MAX (sizeof S_SIG_CONTEXT + DIPX_MAX_CARD_BYTES)

/*  Builds the signed message into msg (S_SIGNED_MAX bytes); returns its length.  */
static size_t
s_signed_message (const char *body, size_t body_len, uint8_t *msg)
{
    memcpy (msg, S_SIG_CONTEXT, sizeof S_SIG_CONTEXT);
    memcpy (msg + sizeof S_SIG_CONTEXT, body, body_len);
    return sizeof S_SIG_CONTEXT + body_len;
}

/*  0 if sig is sign_pk's signature of body, else DIPX_E_CARD_SIG.  */
static DIPX_MUST_CHECK int
s_verify (const char *body, size_t body_len, const uint8_t sig[DIPX_SIG_BYTES],
          const uint8_t sign_pk[DIPX_KEY_BYTES])
{
    uint8_t msg[S_SIGNED_MAX];
    if (body_len > DIPX_MAX_CARD_BYTES)
        return DIPX_E_CARD_SIG;
    size_t msg_len = s_signed_message (body, body_len, msg);
    if (crypto_sign_verify_detached (sig, msg, msg_len, sign_pk) != 0)
        return DIPX_E_CARD_SIG;
    return 0;
}

static bool
s_is_agency_id (const char *s, size_t len)
{
    return len <= DIPX_MAX_AGENCY_ID && dipx_text_is_agency_id (s, len);
}

static bool
s_is_name (const char *s, size_t len)
{
    return len <= DIPX_MAX_NAME && dipx_text_is_printable (s, len);
}

static bool
s_is_code (const char *s, size_t len)
{
    return len <= DIPX_MAX_CODE && dipx_text_is_code (s, len);
}

/*  Agency type from a name that is not NUL-terminated; DIPX_E_VALUE if none.  */
static int
s_type_parse (const char *s, size_t len)
{
    char name[S_TYPE_NAME_MAX + 1];
    if (len > S_TYPE_NAME_MAX || memchr (s, '\0', len))
        return DIPX_E_VALUE;
    memcpy (name, s, len);
    name[len] = '\0';
    return dipx_agency_type_parse (name);
}

int
dipx__card_parse (const char *text, size_t len, dipx_card_t *card, int *line)
{
    int line_dummy;
    if (!line)
        line = &line_dummy;
    *line = 0;
    if (!card || (!text && len))
        return DIPX_E_INVAL;
    memset (card, 0, sizeof *card);
    if (len > DIPX_MAX_CARD_BYTES)
        return DIPX_E_SYNTAX;

    int rc = DIPX_E_SYNTAX;
    dipx__lines_t lines = {text, len, 0, 0};
    const char *v;
    size_t v_len;
    if (!dipx__lines_next (&lines, &v, &v_len) || v_len != strlen (S_CARD_HEADER)
        || memcmp (v, S_CARD_HEADER, v_len) != 0)
        goto cleanup;
    if (!dipx__lines_field (&lines, "id", &v, &v_len) || !s_is_agency_id (v, v_len))
        goto cleanup;
    memcpy (card->id, v, v_len);
    if (!dipx__lines_field (&lines, "name", &v, &v_len) || !s_is_name (v, v_len))
        goto cleanup;
    memcpy (card->name, v, v_len);
    if (!dipx__lines_field (&lines, "type", &v, &v_len) || (card->type = s_type_parse (v, v_len)) < 0)
        goto cleanup;
    if (!dipx__lines_field (&lines, "org", &v, &v_len) || !s_is_code (v, v_len))
        goto cleanup;
    memcpy (card->org, v, v_len);
    if (!dipx__lines_field (&lines, "area", &v, &v_len) || !s_is_code (v, v_len))
        goto cleanup;
    memcpy (card->area, v, v_len);
    if (!dipx__lines_field (&lines, "enc-key", &v, &v_len)
        || dipx_key_from_z85 (v, v_len, card->enc_pk) != 0)
        goto cleanup;
    if (!dipx__lines_field (&lines, "sign-key", &v, &v_len)
        || dipx_key_from_z85 (v, v_len, card->sign_pk) != 0)
        goto cleanup;
    if (!dipx__lines_field (&lines, "valid-from", &v, &v_len)
        || dipx_time_parse (v, v_len, &card->valid_from) != 0)
        goto cleanup;
    if (!dipx__lines_field (&lines, "valid-until", &v, &v_len)
        || dipx_time_parse (v, v_len, &card->valid_until) != 0
        || card->valid_until <= card->valid_from)
        goto cleanup;
    size_t body_len = lines.pos;
    if (!dipx__lines_field (&lines, "self-sig", &v, &v_len)
        || dipx_z85_decode (v, v_len, card->sig, sizeof card->sig) != 0)
        goto cleanup;
    if (lines.pos != len) {
        lines.line++;
        goto cleanup;
    }
    rc = s_verify (text, body_len, card->sig, card->sign_pk);
    if (rc != 0)
        lines.line = 0; /* the card as a whole */
cleanup:
    if (rc != 0) {
        memset (card, 0, sizeof *card);
        *line = lines.line;
    }
    return rc;
}

int
dipx_card_parse (const char *text, size_t len, dipx_card_t *card)
{
    return dipx__card_parse (text, len, card, NULL);
}

int
dipx_card_load (const char *path, dipx_card_t *card)
{
    if (!path || !card)
        return DIPX_E_INVAL;
    memset (card, 0, sizeof *card);
    char *text = NULL;
    size_t len = 0;
    int rc = dipx__file_read (path, DIPX_MAX_CARD_BYTES, false, &text, &len);
    if (rc == 0)
        rc = dipx_card_parse (text, len, card);
    free (text);
    return rc;
}

/*  Every field but the keys and signature within its bounds?  */
static bool
s_fields_ok (const dipx_card_t *card)
{
    return s_is_agency_id (card->id, strnlen (card->id, sizeof card->id))
           && s_is_name (card->name, strnlen (card->name, sizeof card->name))
           && dipx_agency_type_name (card->type) != NULL
           && s_is_code (card->org, strnlen (card->org, sizeof card->org))
           && s_is_code (card->area, strnlen (card->area, sizeof card->area))
           && card->valid_from >= 0 && card->valid_until <= DIPX_TIME_MAX
           && card->valid_from < card->valid_until;
}

/*  Text being built in a buffer of known, sufficient size.  */
typedef struct {
    char *p; /* next byte to write */
} s_text_t;

static void
s_text_put (s_text_t *t, const char *s)
{
    size_t n = strlen (s);
    memcpy (t->p, s, n);
    t->p += n;
}

static void
s_text_field (s_text_t *t, const char *key, const char *value)
{
    s_text_put (t, key);
    s_text_put (t, ": ");
    s_text_put (t, value);
    s_text_put (t, "\n");
}

/*  Writes everything before the self-sig line into buf (DIPX_CARD_TEXT_MAX
    bytes or more); returns its length. The fields must be valid.  */
static size_t
s_write_body (const dipx_card_t *card, char *buf)
{
    s_text_t t = {buf};
    char z85[DIPX_Z85_KEY_LEN + 1];
    char when[S_TIME_LEN + 1];
    s_text_put (&t, S_CARD_HEADER "\n");
    s_text_field (&t, "id", card->id);
    s_text_field (&t, "name", card->name);
    s_text_field (&t, "type", dipx_agency_type_name (card->type));
    s_text_field (&t, "org", card->org);
    s_text_field (&t, "area", card->area);
    dipx_key_to_z85 (card->enc_pk, z85);
    s_text_field (&t, "enc-key", z85);
    dipx_key_to_z85 (card->sign_pk, z85);
    s_text_field (&t, "sign-key", z85);
    dipx_time_format (card->valid_from, when);
    s_text_field (&t, "valid-from", when);
    dipx_time_format (card->valid_until, when);
    s_text_field (&t, "valid-until", when);
    return (size_t) (t.p - buf);
}

/*  Appends the self-sig line at buf + len; returns the new length.  */
static size_t
s_write_sig (const dipx_card_t *card, char *buf, size_t len)
{
    s_text_t t = {buf + len};
    char z85[S_SIG_Z85_LEN + 1];
    dipx_z85_encode (card->sig, sizeof card->sig, z85);
    s_text_field (&t, "self-sig", z85);
    return (size_t) (t.p - buf);
}

/*  Hands a malloc'd copy of buf to the caller.  */
static int
s_hand_out (const char *buf, size_t len, char **out, size_t *out_len)
{
    char *copy = malloc (len + 1);
    if (!copy)
        return DIPX_E_NOMEM;
    memcpy (copy, buf, len);
    copy[len] = '\0'; /* a convenience; len is the length */
    *out = copy;
    if (out_len)
        *out_len = len;
    return 0;
}

int
dipx_card_make (const dipx_identity_t *identity, dipx_card_t *card, char **out, size_t *out_len)
{
    if (!identity || !card || !out)
        return DIPX_E_INVAL;
    *out = NULL;
    const char *id = dipx_identity_id (identity);
    if (card->id[0] == '\0')
        memcpy (card->id, id, strlen (id) + 1);
    else if (strncmp (card->id, id, sizeof card->id) != 0)
        return DIPX_E_VALUE;
    if (!s_fields_ok (card))
        return DIPX_E_VALUE;
    memcpy (card->enc_pk, dipx_identity_enc_pk (identity), DIPX_KEY_BYTES);
    memcpy (card->sign_pk, dipx_identity_sign_pk (identity), DIPX_KEY_BYTES);

    char buf[DIPX_CARD_TEXT_MAX + 1];
    uint8_t msg[S_SIGNED_MAX];
    size_t len = s_write_body (card, buf);
    size_t msg_len = s_signed_message (buf, len, msg);
    crypto_sign_detached (card->sig, NULL, msg, msg_len, dipx_identity_sign_sk (identity));
    len = s_write_sig (card, buf, len);
    return s_hand_out (buf, len, out, out_len);
}

int
dipx_card_format (const dipx_card_t *card, char **out, size_t *out_len)
{
    if (!card || !out)
        return DIPX_E_INVAL;
    *out = NULL;
    if (!s_fields_ok (card))
        return DIPX_E_VALUE;
    char buf[DIPX_CARD_TEXT_MAX + 1];
    size_t len = s_write_body (card, buf);
    len = s_write_sig (card, buf, len);
    return s_hand_out (buf, len, out, out_len);
}

int
dipx_card_save (const dipx_card_t *card, const char *path)
{
    if (!path)
        return DIPX_E_INVAL;
    char *text = NULL;
    size_t len = 0;
    int rc = dipx_card_format (card, &text, &len);
    if (rc == 0)
        rc = dipx__file_write (path, text, len, 0644, DIPX__WRITE_NEW);
    free (text);
    return rc;
}

/*  Times ------------------------------------------------------------------*/

static bool
s_is_leap (int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int
s_days_in_month (int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && s_is_leap (year) ? 29 : days[month - 1];
}

/*  The decimal number in text[0..n), all digits (checked by the caller).  */
static int
s_number (const char *text, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (text[i] - '0');
    return v;
}

int
dipx_time_parse (const char *text, size_t len, int64_t *secs)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    _Static_assert (sizeof shape - 1 == S_TIME_LEN, "time shape");
    if (!text || !secs || len != S_TIME_LEN)
        return DIPX_E_SYNTAX;
    for (size_t i = 0; i < S_TIME_LEN; i++) {
        bool digit = text[i] >= '0' && text[i] <= '9';
        if (shape[i] == 'd' ? !digit : text[i] != shape[i])
            return DIPX_E_SYNTAX;
    }
    int year = s_number (text, 4), month = s_number (text + 5, 2), day = s_number (text + 8, 2);
    int hour = s_number (text + 11, 2), min = s_number (text + 14, 2), sec = s_number (text + 17, 2);
    if (year < 1970 || month < 1 || month > 12 || day < 1 || day > s_days_in_month (year, month)
        || hour > 23 || min > 59 || sec > 59)
        return DIPX_E_SYNTAX;
    struct tm tm = {
        .tm_year = year - 1900,
        .tm_mon = month - 1,
        .tm_mday = day,
        .tm_hour = hour,
        .tm_min = min,
        .tm_sec = sec,
    };
    time_t t = timegm (&tm);
    if (t == (time_t) -1 || t < 0 || (int64_t) t > DIPX_TIME_MAX)
        return DIPX_E_SYNTAX;
    *secs = (int64_t) t;
    return 0;
}

/*  Writes value as n decimal digits, zero-padded (value < 10^n).  */
static void
s_digits (char *out, int value, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char) ('0' + value % 10);
        value /= 10;
    }
}

void
dipx_time_format (int64_t secs, char out[21])
{
    if (secs < 0)
        secs = 0;
    if (secs > DIPX_TIME_MAX)
        secs = DIPX_TIME_MAX;
    time_t t = (time_t) secs;
    struct tm tm;
    memset (&tm, 0, sizeof tm);
    gmtime_r (&t, &tm);
    memcpy (out, "0000-00-00T00:00:00Z", S_TIME_LEN + 1);
    s_digits (out, tm.tm_year + 1900, 4);
    s_digits (out + 5, tm.tm_mon + 1, 2);
    s_digits (out + 8, tm.tm_mday, 2);
    s_digits (out + 11, tm.tm_hour, 2);
    s_digits (out + 14, tm.tm_min, 2);
    s_digits (out + 17, tm.tm_sec, 2);
}
