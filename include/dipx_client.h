/*  dipx_client.h - libdipx: connect an agency system to a dipx broker.

    A client is one agency's connection: it seals and signs what it sends,
    opens and checks what it receives, and acknowledges with a signature.
    Calls block up to a timeout (milliseconds; 0 = do not wait, -1 = forever)
    and return 0 or a negative DIPX_E_* code (dipx_strerror). The library never
    logs on its own: give a log callback to see what it does.

    A client is not thread-safe: use it from one thread at a time.

    Reconnection: if the broker restarts, the client reconnects by itself,
    starts a new session, and resends every send that was not yet answered,
    with the same message id; the broker recognises the id, so nothing is
    stored twice. Deliveries that were not acknowledged come again (with a
    delivery count above 1).

    Durable outbox (optional, dipx_options_t.outbox): a directory where the
    client keeps, in LMDB, every send from the moment a post returns 0 until
    the application has collected the broker's answer (ACCEPTED or REFUSED,
    through dipx_client_send or dipx_client_result). Each post and each
    deletion is committed to disk (fsync) before the call returns, so each
    answer collected costs one such commit. An answer that was collected is
    never sent again (unless that deletion failed, which is logged: the next
    client then resends it, and the broker stores it once); one that arrived
    but was not collected (the client was destroyed, or the machine stopped,
    first) is sent again by the next client, which returns the broker's
    answer to it. An entry found damaged is not sent: its result is
    DIPX_E_CORRUPT, under the id stored with it. Posts succeed while the
    broker is unreachable, up to 1,000,000 sends whose answers are not
    collected (not 1024), and a client created later on the same directory,
    after the application or its machine restarted, sends what is left: the
    same bytes under the same ids, in post order, so the broker stores each
    once. The answers to those sends come through dipx_client_result. The
    directory belongs to one agency and one client at a time.
*/
#ifndef DIPX_CLIENT_H_INCLUDED
#define DIPX_CLIENT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dipx_error.h"
#include "dipx_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dipx_client_t dipx_client_t;
typedef struct dipx_message_t dipx_message_t;

/*  Log levels passed to the callback.  */
enum { DIPX_LOG_ERROR, DIPX_LOG_WARN, DIPX_LOG_INFO, DIPX_LOG_DEBUG };

/*  Log callback: level, a NUL-terminated line without newline, and arg. Never
    given keys or payload bytes.  */
typedef void (dipx_log_fn) (int level, const char *line, void *arg);

/*  How to connect. Strings are copied; the struct may be freed after new.  */
typedef struct {
    const char *endpoint;      /* broker endpoint, e.g. "tcp://127.0.0.1:7710" */
    const char *identity;      /* path of this agency's secret file (0600) */
    const char *broker_key;    /* broker's CURVE public key, Z85 (40 chars) */
    const char *peers;         /* path of a registry-format file with the cards of
                                  the agencies this one exchanges with */
    uint32_t window;           /* deliveries in flight to this client (1..1024);
                                  0 = send only, nothing is delivered */
    const char *outbox;        /* directory of a durable outbox (created 0700 if
                                  absent, files 0600), or NULL for none */
    dipx_log_fn *log;          /* log callback, or NULL */
    void *log_arg;             /* passed to log */
} dipx_options_t;

/*  Creates a client and starts connecting. Does not wait for the broker:
    sends made before it answers are queued. With an outbox, the sends it
    holds are sent once the broker has welcomed this client, and their
    answers come through dipx_client_result. Returns 0 and *out (caller owns,
    dipx_client_destroy), DIPX_E_IO/_PERM/_SYNTAX for the identity or peers
    file, DIPX_E_BROKER_KEY, DIPX_E_INVAL, DIPX_E_NOMEM, DIPX_E_ZMQ; for the
    outbox DIPX_E_IO (cannot create or open it), DIPX_E_PERM (an existing
    directory owned by another user, or writable by group or others),
    DIPX_E_BUSY (another client has it open), DIPX_E_INVAL (another
    agency's), DIPX_E_CORRUPT, DIPX_E_STORAGE.  */
DIPX_EXPORT int dipx_client_new (const dipx_options_t *options, dipx_client_t **out);

/*  Closes the connection and frees everything, wiping keys. Frames already
    written (acknowledgements) get up to 2 s to reach a connected broker;
    sends whose answers were not collected are abandoned, unless an outbox
    keeps them for the next client. Accepts NULL.  */
DIPX_EXPORT void dipx_client_destroy (dipx_client_t **self_p);

/*  This agency's id (owned by the client).  */
DIPX_EXPORT const char *dipx_client_id (const dipx_client_t *self);

/*  Waits until the broker has welcomed this client (0), or the timeout
    (DIPX_E_TIMEOUT), or the broker refused it: DIPX_E_AUTH, the key (unknown,
    suspended or revoked, or its card outside its validity: ZAP 400);
    DIPX_E_AUTH_TEMP, for now (ZAP 300 or 500, or its HELLO refused
    sender_inactive: suspended after it connected). A refusal is returned at once,
    by this and every other waiting call, until the broker admits the agency:
    the client keeps asking (a refused key: a new connection after 1 s,
    doubling to a minute; a refused HELLO: again after 100 ms, doubling to a
    minute), so an agency an operator registers or reactivates meanwhile
    needs no new client.  */
DIPX_EXPORT int dipx_client_wait_ready (dipx_client_t *self, int timeout_ms);

/*  What to send: the clear envelope header's fields. The payload itself
    travels sealed.  */
typedef struct {
    const char *to;                 /* recipient agency id (must be in peers) */
    const char *type;               /* message type, e.g. "drug_test_result" */
    const uint8_t *subject;         /* subject reference, DIPX_SUBJECT_BYTES */
    int basis;                      /* dipx_basis_t */
    const char *ref;                /* consent id, statute, order or decision ref */
    int purpose;                    /* dipx_purpose_t */
    uint32_t categories;            /* bitmask of (1u << dipx_category_t) */
    uint64_t ttl_ms;                /* lifetime; 0 = 30 days */
    const char *pi_by;              /* public interest: decision-maker, else NULL */
    const char *pi_approver;        /* public interest: senior sign-off, else NULL */
    const char *pi_why;             /* public interest: justification, else NULL */
    const uint8_t *id;              /* DIPX_MESSAGE_ID_BYTES to reuse, or NULL for a new one */
} dipx_send_t;

#define DIPX_MESSAGE_ID_BYTES 16
#define DIPX_SUBJECT_BYTES 32

/*  The broker's answer to a send.  */
typedef struct {
    uint8_t id[DIPX_MESSAGE_ID_BYTES]; /* the message id */
    uint64_t seq;                      /* broker sequence number when accepted */
    int code;                          /* 0 accepted, else negative DIPX_E_* */
    char reason[257];                  /* why it was refused: the broker's reason, or
                                          libdipx's when it refused the send itself */
} dipx_result_t;

/*  Builds, seals, signs and sends one message and waits for the broker's
    answer. Returns 0 when ACCEPTED (stored durably by the broker), the
    refusal code (negative DIPX_E_*, reason in result) when REFUSED, or a local
    error (DIPX_E_TIMEOUT: no answer yet; the send stays queued, is written
    again after a reconnection or once a later send's answer shows its own
    was lost, and a later call to dipx_client_result can collect the
    answer). With an outbox and 1024 posts whose answers are not collected,
    the send is kept on disk only and DIPX_E_TIMEOUT comes at once. result
    may be NULL.  */
DIPX_EXPORT int dipx_client_send (dipx_client_t *self, const dipx_send_t *msg, const void *body,
                                  size_t body_len, int timeout_ms, dipx_result_t *result);

/*  Pipelined sending: dipx_client_post sends without waiting and writes the
    message id; dipx_client_result waits for the next answer to any posted
    message (in the order answers arrive). At most 1024 posts may be
    unanswered; beyond that post returns DIPX_E_BUSY. With an outbox, post
    returns 0 once the send is on disk; the first 1024 unanswered are in
    flight and the rest wait on disk until results are collected, up to
    1,000,000 (then DIPX_E_BUSY); DIPX_E_STORAGE_FULL when its disk or map
    (4 GiB) is full.  */
DIPX_EXPORT int dipx_client_post (dipx_client_t *self, const dipx_send_t *msg, const void *body,
                                  size_t body_len, uint8_t id[DIPX_MESSAGE_ID_BYTES]);
DIPX_EXPORT int dipx_client_result (dipx_client_t *self, int timeout_ms, dipx_result_t *result);

/*  Posts an envelope that was sealed and signed earlier (the bench replays
    these), as dipx_client_post does. DIPX_E_INVAL if it is not a well-formed
    envelope from this agency.  */
DIPX_EXPORT int dipx_client_post_sealed (dipx_client_t *self, const uint8_t *env, size_t len);

/*  Seals and signs without sending: *env is malloc'd, caller owns (free).  */
DIPX_EXPORT int dipx_client_seal (dipx_client_t *self, const dipx_send_t *msg, const void *body,
                                  size_t body_len, uint8_t **env, size_t *env_len);

/*  Waits for the next message delivered to this agency, opens it and checks
    it. Returns 0 and *msg (caller owns, dipx_message_destroy), or
    DIPX_E_TIMEOUT. A delivery that fails its checks (bad signature, not
    sealed by the named sender, re-addressed, header altered, unknown sender)
    is never returned: the client rejects it to the broker with the reason,
    reports it through the log callback, and keeps waiting, up to the
    timeout.  */
DIPX_EXPORT int dipx_client_recv (dipx_client_t *self, int timeout_ms, dipx_message_t **msg);

/*  Acknowledges a received message with a signed ACK: the broker then
    removes it from this agency's queue. Does not consume msg. While more
    deliveries are already waiting to be taken, acknowledgements are
    coalesced (one signature covers up to 256); they are written as soon as
    none is waiting, before any call waits, and at destroy. Returns 0 once
    the acknowledgement is listed (if the connection cannot take it now, it
    goes later, untouched by the application), or DIPX_E_BUSY when 256 are
    listed and none can be written yet: call again after a waiting call.  */
DIPX_EXPORT int dipx_client_ack (dipx_client_t *self, const dipx_message_t *msg);

/*  Tells the sender what became of a message: actioned (reason may be NULL)
    or rejected (reason required). Signed like an ACK.  */
DIPX_EXPORT int dipx_client_outcome (dipx_client_t *self, const dipx_message_t *msg,
                                     bool actioned, const char *reason);

/*  A file descriptor that becomes readable when the client may have work:
    when it does, call dipx_client_recv / dipx_client_result / dipx_client_receipt
    with timeout 0 until they return DIPX_E_TIMEOUT (it is edge-triggered, as
    ZMQ_FD is). It must be watched even by a program that only sends: the
    client answers each new connection with its HELLO inside these calls.
    Linux: an epoll descriptor over the ZMQ_FDs of the connection and of its
    monitor. Owned by the client.  */
DIPX_EXPORT int dipx_client_fd (dipx_client_t *self, int *fd);

/*  A receipt: what happened to a message this agency sent.  */
typedef struct {
    uint8_t id[DIPX_MESSAGE_ID_BYTES]; /* message id */
    int event;                         /* dipx_event_t, see dipx_event_name */
    uint64_t at;                       /* ms since the epoch, broker's clock */
    char by[65];                       /* agency that caused it, or the broker */
    int code;                          /* 0 or negative DIPX_E_* when relevant */
    char reason[257];                  /* detail, may be empty */
    uint64_t count;                    /* delivery count where relevant */
} dipx_receipt_t;

/*  Waits for the next receipt for messages this agency sent (DELIVERED,
    ACKED, ACTIONED, REJECTED, EXPIRED, ...). 0 or DIPX_E_TIMEOUT.  */
DIPX_EXPORT int dipx_client_receipt (dipx_client_t *self, int timeout_ms, dipx_receipt_t *r);

/*  Asks the broker for the whole history of a message this agency sent or
    received. Writes up to max events into events and their number into *n.  */
DIPX_EXPORT int dipx_client_track (dipx_client_t *self, const uint8_t id[DIPX_MESSAGE_ID_BYTES],
                                   int timeout_ms, dipx_receipt_t *events, size_t max, size_t *n);

/*  Name of a receipt event ("delivered"), or NULL.  */
DIPX_EXPORT const char *dipx_receipt_event_name (int event);

/*  A received message. Getters return pointers owned by the message.  */
DIPX_EXPORT void dipx_message_destroy (dipx_message_t **self_p); /* wipes the body */
DIPX_EXPORT const uint8_t *dipx_message_id (const dipx_message_t *self);
DIPX_EXPORT const char *dipx_message_from (const dipx_message_t *self);
DIPX_EXPORT const char *dipx_message_to (const dipx_message_t *self);
DIPX_EXPORT const char *dipx_message_type (const dipx_message_t *self);
DIPX_EXPORT const uint8_t *dipx_message_subject (const dipx_message_t *self);
DIPX_EXPORT int dipx_message_basis (const dipx_message_t *self);
DIPX_EXPORT const char *dipx_message_ref (const dipx_message_t *self);
DIPX_EXPORT int dipx_message_purpose (const dipx_message_t *self);
DIPX_EXPORT uint32_t dipx_message_categories (const dipx_message_t *self);
DIPX_EXPORT uint64_t dipx_message_created (const dipx_message_t *self);
DIPX_EXPORT uint64_t dipx_message_expires (const dipx_message_t *self);
DIPX_EXPORT uint64_t dipx_message_seq (const dipx_message_t *self);
DIPX_EXPORT uint64_t dipx_message_delivery_count (const dipx_message_t *self);
DIPX_EXPORT bool dipx_message_is_redelivered (const dipx_message_t *self);
DIPX_EXPORT const uint8_t *dipx_message_body (const dipx_message_t *self);
DIPX_EXPORT size_t dipx_message_body_len (const dipx_message_t *self);

/*  Computes a subject reference: BLAKE2b-256 keyed with the programme key
    (32 bytes, held by agencies and auditors, never by the broker) over
    "dipx-v1-subject\0" || kind || "\0" || canonical identifier. kind names the
    identifier scheme ("pnc", "nhs", ...).  */
DIPX_EXPORT int dipx_subject_ref (const uint8_t programme_key[32], const char *kind,
                                  const char *identifier, uint8_t out[DIPX_SUBJECT_BYTES]);

/*  Hex form of a message id (32 chars + NUL) and its parse.  */
DIPX_EXPORT void dipx_id_to_hex (const uint8_t id[DIPX_MESSAGE_ID_BYTES], char out[33]);
DIPX_EXPORT int dipx_id_from_hex (const char *hex, uint8_t id[DIPX_MESSAGE_ID_BYTES]);

#ifdef __cplusplus
}
#endif

#endif
