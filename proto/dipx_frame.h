/*  dipx_frame.h - the frames of wire protocol v1 (see PROTOCOL.md).

    A frame is one ZeroMQ message part holding one msgpack array:
        [ version (uint, 1), command (uint), body (map) ]
    Bodies are decoded in place: slices point into the caller's buffer and
    stay valid only as long as it does.
*/
#ifndef DIPX_FRAME_H_INCLUDED
#define DIPX_FRAME_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dipx_mp.h"
#include "dipx_types.h"

typedef enum {
    DIPX_CMD_HELLO = 1,    /* client → broker: start a session */
    DIPX_CMD_WELCOME = 2,  /* broker → client: session started */
    DIPX_CMD_SEND = 3,     /* client → broker: an envelope */
    DIPX_CMD_ACCEPTED = 4, /* broker → client: envelope stored durably */
    DIPX_CMD_REFUSED = 5,  /* broker → client: envelope not taken, with reason */
    DIPX_CMD_DELIVER = 6,  /* broker → client: an envelope for you */
    DIPX_CMD_ACK = 7,      /* client → broker: signed receipt of delivered ids */
    DIPX_CMD_RECEIPT = 8,  /* broker → client: what happened to your message */
    DIPX_CMD_ERROR = 9,    /* broker → client: your frame was not understood */
    DIPX_CMD_OUTCOME = 10, /* client → broker: business outcome of a message */
    DIPX_CMD_TRACK = 11,   /* client → broker: history of a message you sent */
    DIPX_CMD_HISTORY = 12, /* broker → client: one event of that history */
    DIPX_CMD_MAX = 12
    /* 32..47 reserved for consent commands, 48..63 for audit commands */
} dipx_cmd_t;

/*  Receipt and history event kinds: dipx_event_t, in dipx_types.h.  */

typedef struct {
    uint64_t window; /* deliveries the client accepts in flight; 0 = send only */
} dipx_fhello_t;

typedef struct {
    char broker[DIPX_MAX_AGENCY_ID + 1]; /* broker's id */
    uint64_t max_frame;                  /* largest frame the broker accepts */
    uint64_t window;                     /* deliveries granted in flight */
} dipx_fwelcome_t;

typedef struct {
    dipx_slice_t env; /* the envelope document */
} dipx_fsend_t;

typedef struct {
    uint8_t id[DIPX_ID_BYTES]; /* message id */
    uint64_t seq;              /* broker sequence number */
} dipx_faccepted_t;

typedef struct {
    uint8_t id[DIPX_ID_BYTES];        /* message id (zero if none could be read) */
    uint64_t code;                    /* wire error code */
    char reason[DIPX_MAX_REASON + 1]; /* human-readable detail */
} dipx_frefused_t;

typedef struct {
    uint64_t seq;     /* broker sequence number */
    uint64_t count;   /* delivery attempt, 1 for the first; > 1 means redelivered */
    dipx_slice_t env; /* the envelope as the sender sent it */
} dipx_fdeliver_t;

typedef struct {
    dipx_idlist_t ids;             /* ids acknowledged */
    uint64_t at;                   /* recipient's clock, ms since the epoch */
    uint8_t sig[DIPX_SIG_BYTES];   /* Ed25519 by the recipient, see dipx_ack_sign */
} dipx_fack_t;

typedef struct {
    uint8_t id[DIPX_ID_BYTES];           /* message id */
    int event;                           /* dipx_event_t */
    uint64_t at;                         /* when, broker clock, ms since the epoch */
    char by[DIPX_MAX_AGENCY_ID + 1];     /* agency that caused it (recipient) or broker */
    uint64_t code;                       /* wire error code, optional */
    char reason[DIPX_MAX_REASON + 1];    /* detail, optional */
    uint64_t count;                      /* delivery count, optional */
    uint64_t index;                      /* HISTORY only: 0-based place in the answer */
    uint64_t total;                      /* HISTORY only: frames in the answer */
} dipx_freceipt_t;

typedef struct {
    uint64_t code;                    /* wire error code */
    uint64_t cmd;                     /* command that caused it, 0 if unknown */
    char reason[DIPX_MAX_REASON + 1]; /* detail */
} dipx_ferror_t;

typedef struct {
    uint8_t id[DIPX_ID_BYTES];        /* message id */
    int event;                        /* DIPX_EVENT_ACTIONED or _REJECTED */
    char reason[DIPX_MAX_REASON + 1]; /* detail: optional for actioned, required for rejected */
    uint64_t at;                      /* recipient's clock */
    uint8_t sig[DIPX_SIG_BYTES];      /* Ed25519 by the recipient, see dipx_outcome_sign */
} dipx_foutcome_t;

typedef struct {
    uint8_t id[DIPX_ID_BYTES]; /* message id */
} dipx_ftrack_t;

/*  One decoded frame. Optional fields' presence is in `present`.  */
typedef struct {
    int cmd;          /* dipx_cmd_t */
    uint32_t present; /* bitmask of body fields seen (schema order) */
    union {
        dipx_fhello_t hello;
        dipx_fwelcome_t welcome;
        dipx_fsend_t send;
        dipx_faccepted_t accepted;
        dipx_frefused_t refused;
        dipx_fdeliver_t deliver;
        dipx_fack_t ack;
        dipx_freceipt_t receipt;
        dipx_ferror_t error;
        dipx_foutcome_t outcome;
        dipx_ftrack_t track;
        dipx_freceipt_t history; /* RECEIPT's body plus index and total */
    } u;
} dipx_frame_t;

/*  Field bits of RECEIPT/HISTORY optional fields, for `present`.  */
#define DIPX_RECEIPT_HAS_CODE (1u << 4)
#define DIPX_RECEIPT_HAS_REASON (1u << 5)
#define DIPX_RECEIPT_HAS_COUNT (1u << 6)
#define DIPX_OUTCOME_HAS_REASON (1u << 2)

/*  Decodes one frame. Returns 0, or a decode error (version first, then
    command, then the body's fields, then cross-field rules: an OUTCOME event
    other than actioned/rejected is DIPX_E_VALUE, a rejected OUTCOME without
    reason DIPX_E_MISSING_FIELD, a HISTORY index >= total DIPX_E_VALUE). On
    error f->cmd holds the command if it was read, else 0.  */
int dipx_frame_decode (const uint8_t *buf, size_t len, dipx_frame_t *f);

/*  Encodes f into a fresh buffer; *out is malloc'd and owned by the caller.  */
int dipx_frame_encode (const dipx_frame_t *f, uint8_t **out, size_t *out_len);

/*  Encodes into buf (cap bytes) without allocating: 0 and *out_len, or
    DIPX_E_FRAME_SIZE when it does not fit, or the error above.  */
int dipx_frame_encode_into (const dipx_frame_t *f, uint8_t *buf, size_t cap, size_t *out_len);

/*  Name of a command ("SEND"), or "?" for an unknown one.  */
const char *dipx_cmd_name (int cmd);

/*  Name of an event kind ("acked"), or NULL.  */
const char *dipx_event_name (int event);

/*  Bytes an ACK signature covers: domain label, the acknowledging agency's
    id, the time and the ids, written into buf (at least DIPX_ACK_STMT_MAX
    bytes). Returns the length.  */
#define DIPX_ACK_STMT_MAX (32 + 1 + DIPX_MAX_AGENCY_ID + 8 + 2 + DIPX_MAX_ACK_IDS * DIPX_ID_BYTES)
size_t dipx_ack_statement (const char *by, uint64_t at, const dipx_idlist_t *ids, uint8_t *buf);

/*  Bytes an OUTCOME signature covers, likewise (at least DIPX_OUTCOME_STMT_MAX).  */
#define DIPX_OUTCOME_STMT_MAX (32 + 1 + DIPX_MAX_AGENCY_ID + DIPX_ID_BYTES + 1 + 8 + 2 + DIPX_MAX_REASON)
size_t dipx_outcome_statement (const char *by, const dipx_foutcome_t *o, uint8_t *buf);

#endif
