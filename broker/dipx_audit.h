/*  dipx_audit.h - audit records: what the broker decided, when, about which
    message and agencies, and why. One record per decision, written in the same
    LMDB transaction as the state change it describes (dipx_store.h), so the
    log and the state can never disagree after a crash.

    A record is a msgpack map decoded by the same bounded schema machinery as
    the wire (dipx_mp.h): records read back from disk are not trusted either.
    It carries the routing facts DPA 2018 s.62 asks for (who, to whom, when,
    justification = basis + ref + purpose) and never the payload.
*/
#ifndef DIPX_AUDIT_H_INCLUDED
#define DIPX_AUDIT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dipx_envelope.h"
#include "dipx_limits.h"

typedef enum {
    DIPX_AUDIT_ACCEPTED,      /* message stored for its recipient */
    DIPX_AUDIT_REFUSED,       /* send refused, with code and reason */
    DIPX_AUDIT_DELIVERED,     /* handed to the recipient's session (count) */
    DIPX_AUDIT_ACKED,         /* recipient's signed acknowledgement (sig, sig_at) */
    DIPX_AUDIT_ACTIONED,      /* recipient's signed business outcome */
    DIPX_AUDIT_REJECTED,      /* recipient's signed rejection, with reason */
    DIPX_AUDIT_EXPIRED,       /* passed its expiry before acknowledgement */
    DIPX_AUDIT_DEAD_LETTERED, /* moved to the dead-letter store, with reason */
    DIPX_AUDIT_REDRIVEN,      /* put back in its queue by an operator */
    DIPX_AUDIT_UNDELIVERABLE, /* the recipient's connection could not take it */
    DIPX_AUDIT_AUTH_REFUSED,  /* connection refused by ZAP (key, peer address) */
    DIPX_AUDIT_SESSION,       /* an agency started a session (HELLO) */
    DIPX_AUDIT_PROTOCOL,      /* a frame was refused as malformed (code) */
    DIPX_AUDIT_STARTED,       /* broker started (registry and policy sizes in reason) */
    DIPX_AUDIT_COUNT
} dipx_audit_event_t;

/*  Presence bits of the optional fields, as the schema orders them.  */
enum {
    DIPX_AU_ID = 1u << 3,
    DIPX_AU_MSG_SEQ = 1u << 4,
    DIPX_AU_FROM = 1u << 5,
    DIPX_AU_TO = 1u << 6,
    DIPX_AU_TYPE = 1u << 7,
    DIPX_AU_SUBJ = 1u << 8,
    DIPX_AU_BASIS = 1u << 9,
    DIPX_AU_REF = 1u << 10,
    DIPX_AU_PURPOSE = 1u << 11,
    DIPX_AU_CATS = 1u << 12,
    DIPX_AU_BY = 1u << 13,
    DIPX_AU_CODE = 1u << 14,
    DIPX_AU_REASON = 1u << 15,
    DIPX_AU_COUNT = 1u << 16,
    DIPX_AU_SIG = 1u << 17,
    DIPX_AU_SIG_AT = 1u << 18,
    DIPX_AU_KEY = 1u << 19,
    DIPX_AU_PEER = 1u << 20,
};

#define DIPX_AUDIT_PEER_MAX 64

typedef struct {
    uint64_t seq;                            /* audit sequence number, from 1 */
    uint64_t at;                             /* broker clock, ms since the epoch */
    int event;                               /* dipx_audit_event_t */
    uint8_t id[DIPX_ID_BYTES];               /* message id */
    uint64_t msg_seq;                        /* broker sequence number of the message */
    char from[DIPX_MAX_AGENCY_ID + 1];       /* sender agency */
    char to[DIPX_MAX_AGENCY_ID + 1];         /* recipient agency */
    char type[DIPX_MAX_TYPE + 1];            /* message type */
    uint8_t subj[DIPX_SUBJ_BYTES];           /* subject reference */
    int basis;                               /* dipx_basis_t */
    char ref[DIPX_MAX_REF + 1];              /* basis reference */
    int purpose;                             /* dipx_purpose_t */
    uint32_t cats;                           /* data categories */
    char by[DIPX_MAX_AGENCY_ID + 1];         /* agency that acted (session, ack, outcome) */
    uint64_t code;                           /* wire error code */
    char reason[DIPX_MAX_REASON + 1];        /* detail */
    uint64_t count;                          /* delivery count */
    uint8_t sig[DIPX_SIG_BYTES];             /* recipient's ack/outcome signature */
    uint64_t sig_at;                         /* time the recipient signed */
    char key[17];                            /* key fingerprint (auth refusals) */
    char peer[DIPX_AUDIT_PEER_MAX + 1];      /* peer address (auth refusals) */
    uint32_t present;                        /* DIPX_AU_* bits of optional fields set */
} dipx_audit_t;

/*  Starts a record for event at time at; fields are added by the caller
    (setting the matching present bit).  */
void dipx_audit_init (dipx_audit_t *rec, int event, uint64_t at);

/*  Copies the routing facts of a header (id, from, to, type, subj, basis,
    ref, purpose, cats) into rec.  */
void dipx_audit_set_header (dipx_audit_t *rec, const dipx_header_t *h);

/*  Sets reason (truncated to the limit, non-printable bytes replaced).  */
void dipx_audit_set_reason (dipx_audit_t *rec, const char *reason);

/*  Encodes into a malloc'd buffer (caller owns) / decodes with full checks.  */
int dipx_audit_encode (const dipx_audit_t *rec, uint8_t **out, size_t *len);
int dipx_audit_decode (const uint8_t *buf, size_t len, dipx_audit_t *rec);

/*  Name of an audit event ("dead_lettered").  */
const char *dipx_audit_event_name (int event);

/*  Writes the record as one line of JSON (keys as in the record, binary as
    lowercase hex) to out. Returns 0 or DIPX_E_NOMEM.  */
int dipx_audit_print_json (const dipx_audit_t *rec, FILE *out);

/*  Writes the record as one line of text for people (the demo, operators).  */
int dipx_audit_print_text (const dipx_audit_t *rec, FILE *out);

#endif
