/*  dipx_frame.c - schemas, decoder and encoder of protocol v1 frames.

    Each command's body is a table of fields (dipx_mp.h); the decoder and the
    encoder both walk that table, so a field added here is on the wire in both
    directions at once. PROTOCOL.md documents these tables field by field.

    Error precedence, which independent implementations should follow so that
    the same bad frame gets the same code everywhere: structure (pass 1), then
    the outer array's shape, then version, then command, then body fields in
    the order their keys appear, then missing fields, then cross-field rules.
*/
#include "dipx_frame.h"

#include <stddef.h>
#include <string.h>

static bool
s_reason_ok (const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] > 0x7e)
            return false;
    return true;
}

static const char *const s_event_names[DIPX_EVENT_COUNT] = {
    "accepted", "delivered", "acked", "actioned", "rejected",
    "expired", "dead_lettered", "redriven", "undeliverable",
};

#define F_UINT(st, fld, key, req, lo, hi)                                                          \
    {key, DIPX_FT_UINT, req, lo, hi, offsetof (st, fld), NULL, NULL, 0}
#define F_BOOL(st, fld, key, req) {key, DIPX_FT_BOOL, req, 0, 0, offsetof (st, fld), NULL, NULL, 0}
#define F_TEXT(st, fld, key, req, lo, hi, chk)                                                     \
    {key, DIPX_FT_TEXT, req, lo, hi, offsetof (st, fld), chk, NULL, 0}
#define F_BYTES(st, fld, key, req, n)                                                              \
    {key, DIPX_FT_BYTES, req, n, n, offsetof (st, fld), NULL, NULL, 0}
#define F_SLICE(st, fld, key, req, lo, hi)                                                         \
    {key, DIPX_FT_SLICE, req, lo, hi, offsetof (st, fld), NULL, NULL, 0}
#define F_ENUM(st, fld, key, req, names, n)                                                        \
    {key, DIPX_FT_ENUM, req, 0, 0, offsetof (st, fld), NULL, names, n}

static const dipx_field_t s_hello[] = {
    F_UINT (dipx_fhello_t, window, "window", true, 0, DIPX_MAX_WINDOW),
};
static const dipx_field_t s_welcome[] = {
    F_TEXT (dipx_fwelcome_t, broker, "broker", true, 1, DIPX_MAX_AGENCY_ID, dipx_text_is_agency_id),
    F_UINT (dipx_fwelcome_t, max_frame, "max_frame", true, 1, DIPX_MAX_FRAME),
    F_UINT (dipx_fwelcome_t, window, "window", true, 0, DIPX_MAX_WINDOW),
};
static const dipx_field_t s_send[] = {
    F_SLICE (dipx_fsend_t, env, "env", true, 1, DIPX_MAX_ENV),
};
static const dipx_field_t s_accepted[] = {
    F_BYTES (dipx_faccepted_t, id, "id", true, DIPX_ID_BYTES),
    F_UINT (dipx_faccepted_t, seq, "seq", true, 1, UINT64_MAX),
};
static const dipx_field_t s_refused[] = {
    F_BYTES (dipx_frefused_t, id, "id", true, DIPX_ID_BYTES),
    F_UINT (dipx_frefused_t, code, "code", true, 1, DIPX_E_LOCAL_FIRST - 1),
    F_TEXT (dipx_frefused_t, reason, "reason", true, 0, DIPX_MAX_REASON, s_reason_ok),
};
static const dipx_field_t s_deliver[] = {
    F_UINT (dipx_fdeliver_t, seq, "seq", true, 1, UINT64_MAX),
    F_UINT (dipx_fdeliver_t, count, "count", true, 1, UINT32_MAX),
    F_SLICE (dipx_fdeliver_t, env, "env", true, 1, DIPX_MAX_ENV),
};
static const dipx_field_t s_ack[] = {
    {"ids", DIPX_FT_IDLIST, true, 1, DIPX_MAX_ACK_IDS, offsetof (dipx_fack_t, ids), NULL, NULL, 0},
    F_UINT (dipx_fack_t, at, "at", true, 0, UINT64_MAX),
    F_BYTES (dipx_fack_t, sig, "sig", true, DIPX_SIG_BYTES),
};
static const dipx_field_t s_receipt[] = {
    F_BYTES (dipx_freceipt_t, id, "id", true, DIPX_ID_BYTES),
    F_ENUM (dipx_freceipt_t, event, "event", true, s_event_names, DIPX_EVENT_COUNT),
    F_UINT (dipx_freceipt_t, at, "at", true, 0, UINT64_MAX),
    F_TEXT (dipx_freceipt_t, by, "by", true, 1, DIPX_MAX_AGENCY_ID, dipx_text_is_agency_id),
    F_UINT (dipx_freceipt_t, code, "code", false, 1, DIPX_E_LOCAL_FIRST - 1),
    F_TEXT (dipx_freceipt_t, reason, "reason", false, 0, DIPX_MAX_REASON, s_reason_ok),
    F_UINT (dipx_freceipt_t, count, "count", false, 0, UINT32_MAX),
};
/*  HISTORY: a RECEIPT body plus its place in the answer to one TRACK: the
    broker sends `total` HISTORY frames with index 0..total-1, oldest first.  */
static const dipx_field_t s_history[] = {
    F_BYTES (dipx_freceipt_t, id, "id", true, DIPX_ID_BYTES),
    F_ENUM (dipx_freceipt_t, event, "event", true, s_event_names, DIPX_EVENT_COUNT),
    F_UINT (dipx_freceipt_t, at, "at", true, 0, UINT64_MAX),
    F_TEXT (dipx_freceipt_t, by, "by", true, 1, DIPX_MAX_AGENCY_ID, dipx_text_is_agency_id),
    F_UINT (dipx_freceipt_t, code, "code", false, 1, DIPX_E_LOCAL_FIRST - 1),
    F_TEXT (dipx_freceipt_t, reason, "reason", false, 0, DIPX_MAX_REASON, s_reason_ok),
    F_UINT (dipx_freceipt_t, count, "count", false, 0, UINT32_MAX),
    F_UINT (dipx_freceipt_t, index, "index", true, 0, DIPX_MAX_HISTORY - 1),
    F_UINT (dipx_freceipt_t, total, "total", true, 1, DIPX_MAX_HISTORY),
};
static const dipx_field_t s_error[] = {
    F_UINT (dipx_ferror_t, code, "code", true, 1, DIPX_E_LOCAL_FIRST - 1),
    F_UINT (dipx_ferror_t, cmd, "cmd", true, 0, 255),
    F_TEXT (dipx_ferror_t, reason, "reason", true, 0, DIPX_MAX_REASON, s_reason_ok),
};
static const dipx_field_t s_outcome[] = {
    F_BYTES (dipx_foutcome_t, id, "id", true, DIPX_ID_BYTES),
    F_ENUM (dipx_foutcome_t, event, "event", true, s_event_names, DIPX_EVENT_COUNT),
    F_TEXT (dipx_foutcome_t, reason, "reason", false, 0, DIPX_MAX_REASON, s_reason_ok),
    F_UINT (dipx_foutcome_t, at, "at", true, 0, UINT64_MAX),
    F_BYTES (dipx_foutcome_t, sig, "sig", true, DIPX_SIG_BYTES),
};
static const dipx_field_t s_track[] = {
    F_BYTES (dipx_ftrack_t, id, "id", true, DIPX_ID_BYTES),
};

static const dipx_schema_t s_schemas[DIPX_CMD_MAX + 1] = {
    [DIPX_CMD_HELLO] = DIPX_SCHEMA (s_hello),       [DIPX_CMD_WELCOME] = DIPX_SCHEMA (s_welcome),
    [DIPX_CMD_SEND] = DIPX_SCHEMA (s_send),         [DIPX_CMD_ACCEPTED] = DIPX_SCHEMA (s_accepted),
    [DIPX_CMD_REFUSED] = DIPX_SCHEMA (s_refused),   [DIPX_CMD_DELIVER] = DIPX_SCHEMA (s_deliver),
    [DIPX_CMD_ACK] = DIPX_SCHEMA (s_ack),           [DIPX_CMD_RECEIPT] = DIPX_SCHEMA (s_receipt),
    [DIPX_CMD_ERROR] = DIPX_SCHEMA (s_error),       [DIPX_CMD_OUTCOME] = DIPX_SCHEMA (s_outcome),
    [DIPX_CMD_TRACK] = DIPX_SCHEMA (s_track),       [DIPX_CMD_HISTORY] = DIPX_SCHEMA (s_history),
};

static const char *const s_cmd_names[DIPX_CMD_MAX + 1] = {
    "?",      "HELLO",   "WELCOME", "SEND",    "ACCEPTED", "REFUSED", "DELIVER",
    "ACK",    "RECEIPT", "ERROR",   "OUTCOME", "TRACK",    "HISTORY",
};

const char *
dipx_cmd_name (int cmd)
{
    return cmd > 0 && cmd <= DIPX_CMD_MAX ? s_cmd_names[cmd] : "?";
}

const char *
dipx_event_name (int event)
{
    return event >= 0 && event < DIPX_EVENT_COUNT ? s_event_names[event] : NULL;
}

int
dipx_frame_decode (const uint8_t *buf, size_t len, dipx_frame_t *f)
{
    f->cmd = 0;
    f->present = 0;
    memset (&f->u, 0, sizeof f->u); /* absent optional fields read as zero/empty */
    if (len > DIPX_MAX_FRAME)
        return DIPX_E_FRAME_SIZE;
    int rc = dipx_mp_check (buf, len, DIPX_MAX_DEPTH);
    if (rc)
        return rc;
    dipx_mp_t r = {buf, buf + len};
    uint32_t n;
    uint64_t version, cmd;
    if ((rc = dipx_mp_read_array (&r, &n)))
        return rc;
    if (n != 3)
        return DIPX_E_TYPE;
    if ((rc = dipx_mp_read_uint (&r, &version)))
        return rc;
    if (version != DIPX_PROTO_VERSION)
        return DIPX_E_VERSION;
    if ((rc = dipx_mp_read_uint (&r, &cmd)))
        return rc;
    if (cmd == 0 || cmd > DIPX_CMD_MAX)
        return DIPX_E_COMMAND;
    f->cmd = (int) cmd;
    if ((rc = dipx_mp_decode_map (&r, &s_schemas[cmd], &f->u, &f->present)))
        return rc;
    /* Cross-field rules. An OUTCOME is actioned or rejected, and a rejection
       says why; a HISTORY frame's index lies inside its answer.  */
    if (cmd == DIPX_CMD_OUTCOME) {
        if (f->u.outcome.event != DIPX_EVENT_ACTIONED && f->u.outcome.event != DIPX_EVENT_REJECTED)
            return DIPX_E_VALUE;
        if (f->u.outcome.event == DIPX_EVENT_REJECTED && !(f->present & DIPX_OUTCOME_HAS_REASON))
            return DIPX_E_MISSING_FIELD;
    }
    if (cmd == DIPX_CMD_HISTORY && f->u.history.index >= f->u.history.total)
        return DIPX_E_VALUE;
    return r.p == r.end ? 0 : DIPX_E_TRAILING;
}

static int
s_encode (const dipx_frame_t *f, msgpack_packer *pk, int full)
{
    if (f->cmd <= 0 || f->cmd > DIPX_CMD_MAX)
        return DIPX_E_INVAL;
    if (msgpack_pack_array (pk, 3) == 0 && msgpack_pack_uint8 (pk, DIPX_PROTO_VERSION) == 0
        && msgpack_pack_uint8 (pk, (uint8_t) f->cmd) == 0) {
        int rc = dipx_mp_encode_map (pk, &s_schemas[f->cmd], &f->u, f->present);
        return rc == DIPX_E_NOMEM ? full : rc;
    }
    return full;
}

int
dipx_frame_encode_into (const dipx_frame_t *f, uint8_t *buf, size_t cap, size_t *out_len)
{
    dipx_mp_fixed_t fx = {buf, cap, 0};
    msgpack_packer pk;
    msgpack_packer_init (&pk, &fx, dipx_mp_fixed_write);
    int rc = s_encode (f, &pk, DIPX_E_FRAME_SIZE);
    *out_len = rc ? 0 : fx.len;
    return rc;
}

int
dipx_frame_encode (const dipx_frame_t *f, uint8_t **out, size_t *out_len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init (&sb);
    msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
    int rc = s_encode (f, &pk, DIPX_E_NOMEM);
    if (rc) {
        msgpack_sbuffer_destroy (&sb);
        return rc;
    }
    *out_len = sb.size;
    *out = (uint8_t *) msgpack_sbuffer_release (&sb);
    return *out ? 0 : DIPX_E_NOMEM;
}

static size_t
s_put_be (uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t) v;
        v >>= 8;
    }
    return (size_t) n;
}

static size_t
s_put_label_by (uint8_t *p, const char *label, const char *by)
{
    size_t n = strlen (label) + 1; /* the NUL separates the label from what follows */
    memcpy (p, label, n);
    size_t blen = strnlen (by, DIPX_MAX_AGENCY_ID);
    p[n++] = (uint8_t) blen;
    memcpy (p + n, by, blen);
    return n + blen;
}

size_t
dipx_ack_statement (const char *by, uint64_t at, const dipx_idlist_t *ids, uint8_t *buf)
{
    size_t n = s_put_label_by (buf, "dipx-v1-ack", by);
    n += s_put_be (buf + n, at, 8);
    n += s_put_be (buf + n, ids->count, 2);
    for (uint32_t i = 0; i < ids->count && i < DIPX_MAX_ACK_IDS; i++) {
        memcpy (buf + n, ids->ids[i], DIPX_ID_BYTES);
        n += DIPX_ID_BYTES;
    }
    return n;
}

/*  The statement signs the event's number: these two values are on the wire
    (PROTOCOL.md 5.6), whatever dipx_types.h says of its numbering.  */
_Static_assert (DIPX_EVENT_ACTIONED == 3 && DIPX_EVENT_REJECTED == 4,
                "OUTCOME statements sign the event numbers 3 and 4");

size_t
dipx_outcome_statement (const char *by, const dipx_foutcome_t *o, uint8_t *buf)
{
    size_t n = s_put_label_by (buf, "dipx-v1-outcome", by);
    memcpy (buf + n, o->id, DIPX_ID_BYTES);
    n += DIPX_ID_BYTES;
    buf[n++] = (uint8_t) o->event;
    n += s_put_be (buf + n, o->at, 8);
    size_t rlen = strnlen (o->reason, DIPX_MAX_REASON);
    n += s_put_be (buf + n, rlen, 2);
    memcpy (buf + n, o->reason, rlen);
    return n + rlen;
}
