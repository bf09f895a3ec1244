/*  dipx_audit.c - the audit record schema, its codec and its JSON form.

    The schema is one table, like the wire's: encode writes required fields
    and the optional fields whose bits are set, decode rejects anything else.
    Field order is fixed and the present bits in dipx_audit.h follow it.
*/
#include "dipx_audit.h"

#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dipx_names.h"

static const char *const s_event_names[DIPX_AUDIT_COUNT] = {
    "accepted", "refused",        "delivered",    "acked",   "actioned", "rejected", "expired",
    "dead_lettered", "redriven", "undeliverable", "auth_refused", "session", "protocol", "started",
};

static bool
s_printable (const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] > 0x7e)
            return false;
    return true;
}

#define O(f) offsetof (dipx_audit_t, f)
static const dipx_field_t s_fields[] = {
    {"seq", DIPX_FT_UINT, true, 1, UINT64_MAX, O (seq), NULL, NULL, 0},
    {"at", DIPX_FT_UINT, true, 0, UINT64_MAX, O (at), NULL, NULL, 0},
    {"ev", DIPX_FT_ENUM, true, 0, 0, O (event), NULL, s_event_names, DIPX_AUDIT_COUNT},
    {"id", DIPX_FT_BYTES, false, DIPX_ID_BYTES, DIPX_ID_BYTES, O (id), NULL, NULL, 0},
    {"msg_seq", DIPX_FT_UINT, false, 1, UINT64_MAX, O (msg_seq), NULL, NULL, 0},
    {"from", DIPX_FT_TEXT, false, 1, DIPX_MAX_AGENCY_ID, O (from), dipx_text_is_agency_id, NULL,
     0},
    {"to", DIPX_FT_TEXT, false, 1, DIPX_MAX_AGENCY_ID, O (to), dipx_text_is_agency_id, NULL, 0},
    {"type", DIPX_FT_TEXT, false, 1, DIPX_MAX_TYPE, O (type), dipx_text_is_ident, NULL, 0},
    {"subj", DIPX_FT_BYTES, false, DIPX_SUBJ_BYTES, DIPX_SUBJ_BYTES, O (subj), NULL, NULL, 0},
    {"basis", DIPX_FT_ENUM, false, 0, 0, O (basis), NULL, dipx_basis_names, DIPX_BASIS_COUNT},
    {"ref", DIPX_FT_TEXT, false, 1, DIPX_MAX_REF, O (ref), s_printable, NULL, 0},
    {"purpose", DIPX_FT_ENUM, false, 0, 0, O (purpose), NULL, dipx_purpose_names,
     DIPX_PURPOSE_COUNT},
    {"cats", DIPX_FT_ENUMSET, false, 0, DIPX_MAX_CATS, O (cats), NULL, dipx_category_names,
     DIPX_CAT_COUNT},
    {"by", DIPX_FT_TEXT, false, 1, DIPX_MAX_AGENCY_ID, O (by), dipx_text_is_agency_id, NULL, 0},
    {"code", DIPX_FT_UINT, false, 1, UINT32_MAX, O (code), NULL, NULL, 0},
    {"reason", DIPX_FT_TEXT, false, 0, DIPX_MAX_REASON, O (reason), s_printable, NULL, 0},
    {"count", DIPX_FT_UINT, false, 0, UINT32_MAX, O (count), NULL, NULL, 0},
    {"sig", DIPX_FT_BYTES, false, DIPX_SIG_BYTES, DIPX_SIG_BYTES, O (sig), NULL, NULL, 0},
    {"sig_at", DIPX_FT_UINT, false, 0, UINT64_MAX, O (sig_at), NULL, NULL, 0},
    {"key", DIPX_FT_TEXT, false, 16, 16, O (key), s_printable, NULL, 0},
    {"peer", DIPX_FT_TEXT, false, 0, DIPX_AUDIT_PEER_MAX, O (peer), s_printable, NULL, 0},
};
static const dipx_schema_t s_schema = DIPX_SCHEMA (s_fields);
_Static_assert (sizeof s_fields / sizeof s_fields[0] <= DIPX_MAX_FIELDS, "audit record fields");

void
dipx_audit_init (dipx_audit_t *rec, int event, uint64_t at)
{
    memset (rec, 0, sizeof *rec);
    rec->event = event;
    rec->at = at;
}

void
dipx_audit_set_header (dipx_audit_t *rec, const dipx_header_t *h)
{
    memcpy (rec->id, h->id, DIPX_ID_BYTES);
    memcpy (rec->from, h->from, sizeof rec->from);
    memcpy (rec->to, h->to, sizeof rec->to);
    memcpy (rec->type, h->type, sizeof rec->type);
    memcpy (rec->subj, h->subj, DIPX_SUBJ_BYTES);
    rec->basis = h->basis;
    memcpy (rec->ref, h->ref, sizeof rec->ref);
    rec->purpose = h->purpose;
    rec->cats = h->cats;
    rec->present |= DIPX_AU_ID | DIPX_AU_FROM | DIPX_AU_TO | DIPX_AU_TYPE | DIPX_AU_SUBJ
                    | DIPX_AU_BASIS | DIPX_AU_REF | DIPX_AU_PURPOSE | DIPX_AU_CATS;
}

void
dipx_audit_set_reason (dipx_audit_t *rec, const char *reason)
{
    size_t i = 0;
    for (; reason[i] && i < DIPX_MAX_REASON; i++) {
        unsigned char c = (unsigned char) reason[i];
        rec->reason[i] = (c < 0x20 || c > 0x7e) ? '?' : (char) c;
    }
    rec->reason[i] = 0;
    rec->present |= DIPX_AU_REASON;
}

int
dipx_audit_encode (const dipx_audit_t *rec, uint8_t **out, size_t *len)
{
    return dipx_mp_encode_doc (&s_schema, rec, rec->present, out, len);
}

int
dipx_audit_decode (const uint8_t *buf, size_t len, dipx_audit_t *rec)
{
    memset (rec, 0, sizeof *rec);
    if (len > DIPX_MAX_AUDIT_REC)
        return DIPX_E_FIELD_LENGTH;
    uint32_t present = 0;
    int rc = dipx_mp_decode_doc (buf, len, 2, &s_schema, rec, &present);
    rec->present = present & ~7u;
    return rc;
}

const char *
dipx_audit_event_name (int event)
{
    return event >= 0 && event < DIPX_AUDIT_COUNT ? s_event_names[event] : NULL;
}

static int
s_hex (json_t *obj, const char *key, const uint8_t *bin, size_t len)
{
    char hex[2 * DIPX_SIG_BYTES + 1];
    sodium_bin2hex (hex, sizeof hex, bin, len);
    return json_object_set_new (obj, key, json_string (hex));
}

int
dipx_audit_print_json (const dipx_audit_t *rec, FILE *out)
{
    json_t *o = json_object ();
    if (!o)
        return DIPX_E_NOMEM;
    int e = 0;
    uint32_t p = rec->present;
    e |= json_object_set_new (o, "seq", json_integer ((json_int_t) rec->seq));
    e |= json_object_set_new (o, "at", json_integer ((json_int_t) rec->at));
    e |= json_object_set_new (o, "ev", json_string (s_event_names[rec->event]));
    if (p & DIPX_AU_ID)
        e |= s_hex (o, "id", rec->id, DIPX_ID_BYTES);
    if (p & DIPX_AU_MSG_SEQ)
        e |= json_object_set_new (o, "msg_seq", json_integer ((json_int_t) rec->msg_seq));
    if (p & DIPX_AU_FROM)
        e |= json_object_set_new (o, "from", json_string (rec->from));
    if (p & DIPX_AU_TO)
        e |= json_object_set_new (o, "to", json_string (rec->to));
    if (p & DIPX_AU_TYPE)
        e |= json_object_set_new (o, "type", json_string (rec->type));
    if (p & DIPX_AU_SUBJ)
        e |= s_hex (o, "subj", rec->subj, DIPX_SUBJ_BYTES);
    if (p & DIPX_AU_BASIS)
        e |= json_object_set_new (o, "basis", json_string (dipx_basis_names[rec->basis]));
    if (p & DIPX_AU_REF)
        e |= json_object_set_new (o, "ref", json_string (rec->ref));
    if (p & DIPX_AU_PURPOSE)
        e |= json_object_set_new (o, "purpose", json_string (dipx_purpose_names[rec->purpose]));
    if (p & DIPX_AU_CATS) {
        json_t *a = json_array ();
        for (int i = 0; a && i < DIPX_CAT_COUNT; i++)
            if (rec->cats & (1u << i))
                e |= json_array_append_new (a, json_string (dipx_category_names[i]));
        e |= json_object_set_new (o, "cats", a);
    }
    if (p & DIPX_AU_BY)
        e |= json_object_set_new (o, "by", json_string (rec->by));
    if (p & DIPX_AU_CODE) {
        e |= json_object_set_new (o, "code", json_integer ((json_int_t) rec->code));
        /* code is up to UINT32_MAX in a record: negate only what fits.  */
        const char *name = rec->code <= INT_MAX ? dipx_error_name (-(int) rec->code) : NULL;
        if (name)
            e |= json_object_set_new (o, "code_name", json_string (name));
    }
    if (p & DIPX_AU_REASON)
        e |= json_object_set_new (o, "reason", json_string (rec->reason));
    if (p & DIPX_AU_COUNT)
        e |= json_object_set_new (o, "count", json_integer ((json_int_t) rec->count));
    if (p & DIPX_AU_SIG)
        e |= s_hex (o, "sig", rec->sig, DIPX_SIG_BYTES);
    if (p & DIPX_AU_SIG_AT)
        e |= json_object_set_new (o, "sig_at", json_integer ((json_int_t) rec->sig_at));
    if (p & DIPX_AU_KEY)
        e |= json_object_set_new (o, "key", json_string (rec->key));
    if (p & DIPX_AU_PEER)
        e |= json_object_set_new (o, "peer", json_string (rec->peer));
    char *text = e ? NULL : json_dumps (o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref (o);
    if (!text)
        return DIPX_E_NOMEM;
    fprintf (out, "%s\n", text);
    free (text);
    return 0;
}

int
dipx_audit_print_text (const dipx_audit_t *rec, FILE *out)
{
    uint32_t p = rec->present;
    char who[2 * DIPX_MAX_AGENCY_ID + 8] = "";
    if ((p & DIPX_AU_FROM) && (p & DIPX_AU_TO))
        snprintf (who, sizeof who, "%s -> %s", rec->from, rec->to);
    else if (p & DIPX_AU_BY)
        snprintf (who, sizeof who, "%s", rec->by);
    else if (p & DIPX_AU_TO)
        snprintf (who, sizeof who, "-> %s", rec->to);
    time_t secs = (time_t) (rec->at / 1000);
    struct tm tm;
    char when[32];
    gmtime_r (&secs, &tm);
    strftime (when, sizeof when, "%H:%M:%S", &tm);
    fprintf (out, "%5llu %s.%03u %-13s %-42s", (unsigned long long) rec->seq, when,
             (unsigned) (rec->at % 1000), s_event_names[rec->event], who);
    if (p & DIPX_AU_TYPE)
        fprintf (out, " %s", rec->type);
    if (p & DIPX_AU_BASIS)
        fprintf (out, " [%s: %s]", dipx_basis_names[rec->basis], rec->ref);
    if ((p & DIPX_AU_COUNT)
        && (rec->event == DIPX_AUDIT_DELIVERED || rec->event == DIPX_AUDIT_UNDELIVERABLE))
        fprintf (out, " #%llu", (unsigned long long) rec->count);
    if (p & DIPX_AU_SIG)
        fprintf (out, " signed");
    if (p & DIPX_AU_CODE) {
        const char *name = rec->code <= INT_MAX ? dipx_error_name (-(int) rec->code) : NULL;
        fprintf (out, " %s", name && rec->event != DIPX_AUDIT_AUTH_REFUSED ? name : "");
    }
    if (p & DIPX_AU_KEY)
        fprintf (out, " key %s from %s", rec->key, rec->peer);
    if (p & DIPX_AU_REASON)
        fprintf (out, " (%s)", rec->reason);
    fputc ('\n', out);
    return 0;
}
