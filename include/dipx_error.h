/*  dipx_error.h - error codes shared by the library, the broker and the wire.

    Every dipx function that can fail returns int: 0 on success, a negative
    DIPX_E_* code on failure. Codes 1..99 may also travel on the wire, as the
    positive number, in REFUSED and ERROR replies (see proto/PROTOCOL.md);
    codes 100 and above are local to one process and never sent.
*/
#ifndef DIPX_ERROR_H_INCLUDED
#define DIPX_ERROR_H_INCLUDED

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(DIPX_BUILDING)
#define DIPX_EXPORT __attribute__ ((visibility ("default")))
#else
#define DIPX_EXPORT
#endif

#if defined(__GNUC__)
#define DIPX_MUST_CHECK __attribute__ ((warn_unused_result))
#else
#define DIPX_MUST_CHECK
#endif

/*  X(NAME, number, wire-name, description). The one table behind the enum,
    dipx_strerror and dipx_error_name: add a code here and nowhere else.  */
#define DIPX_ERROR_TABLE(X)                                                                        \
    /* decoding: the frame or a document in it is not what the schema says */                     \
    X (MALFORMED, 1, "malformed", "not valid msgpack")                                            \
    X (TRUNCATED, 2, "truncated", "input ends inside a value")                                    \
    X (TRAILING, 3, "trailing", "bytes after the end of the document")                            \
    X (DEPTH, 4, "depth", "containers nested deeper than the limit")                              \
    X (COUNT, 5, "count", "container holds more elements than the limit")                         \
    X (TYPE, 6, "type", "value has the wrong msgpack type")                                       \
    X (DUP_FIELD, 7, "dup_field", "field appears twice in a map")                                 \
    X (UNKNOWN_FIELD, 8, "unknown_field", "field not defined for this map")                       \
    X (MISSING_FIELD, 9, "missing_field", "required field absent")                                \
    X (FIELD_LENGTH, 10, "field_length", "string or byte field outside its length bounds")        \
    X (VALUE, 11, "value", "value outside its allowed set or range")                              \
    X (VERSION, 12, "version", "unsupported protocol version")                                    \
    X (COMMAND, 13, "command", "unknown command")                                                  \
    X (FRAME_SIZE, 14, "frame_size", "frame too large or not a single part")                      \
    X (STATE, 15, "state", "command not valid now or from this side")                             \
    /* refusals: a well-formed message the broker will not take */                                \
    X (SENDER_MISMATCH, 20, "sender_mismatch", "envelope sender is not the authenticated agency") \
    X (BAD_SIGNATURE, 21, "bad_signature", "signature does not verify")                           \
    X (POLICY, 22, "policy", "message type not allowed between these agency types")               \
    X (UNKNOWN_RECIPIENT, 23, "unknown_recipient", "recipient is not registered")                 \
    X (RECIPIENT_INACTIVE, 24, "recipient_inactive", "recipient is suspended or revoked")         \
    X (SENDER_INACTIVE, 25, "sender_inactive", "sender is suspended or revoked")                  \
    X (EXPIRED, 26, "expired", "message is past its expiry")                                      \
    X (CLOCK, 27, "clock", "created-at or expiry outside the allowed window")                     \
    X (ID_CONFLICT, 28, "id_conflict", "message id already used for a different message")         \
    X (QUEUE_FULL, 29, "queue_full", "recipient queue is at its cap")                             \
    X (STORAGE_FULL, 30, "storage_full", "broker storage is full")                                \
    X (STORAGE, 31, "storage", "broker could not commit")                                         \
    X (BASIS, 32, "basis", "basis not allowed for this flow")                                     \
    X (CONSENT, 33, "consent", "consent record does not cover this message")                      \
    X (NOT_RECIPIENT, 34, "not_recipient", "acknowledged message is not queued for this agency")  \
    X (BUSY, 35, "busy", "broker is overloaded; retry later")                                     \
    X (UNDELIVERED, 36, "undelivered", "not acknowledged after the most deliveries allowed")     \
    X (RECIPIENT_REJECTED, 37, "recipient_rejected", "the recipient rejected the message")       \
    /* local: never on the wire */                                                                 \
    X (NOMEM, 100, "nomem", "out of memory")                                                       \
    X (INVAL, 101, "inval", "invalid argument")                                                    \
    X (IO, 102, "io", "input/output error")                                                        \
    X (TIMEOUT, 103, "timeout", "timed out")                                                       \
    X (PERM, 104, "perm", "secret file is readable or writable by group or others")               \
    X (CRYPTO, 105, "crypto", "payload does not decrypt with these keys")                         \
    X (READDRESSED, 106, "readdressed", "sealed sender, recipient or id differs from header")     \
    X (HEADER_MISMATCH, 107, "header_mismatch", "sealed header hash differs from header")         \
    X (UNKNOWN_SENDER, 108, "unknown_sender", "sender's card is not known here")                  \
    X (AUTH, 109, "auth", "broker refused this agency's key")                                     \
    X (AUTH_TEMP, 110, "auth_temp", "broker refused this agency's key for now (suspended)")       \
    X (CLOSED, 111, "closed", "object is closed")                                                  \
    X (ZMQ, 112, "zmq", "ZeroMQ error")                                                            \
    X (NOT_FOUND, 113, "not_found", "not found")                                                   \
    X (SYNTAX, 114, "syntax", "text file does not follow its format")                             \
    X (CARD_SIG, 115, "card_sig", "card self-signature does not verify")                          \
    X (CONFIG, 116, "config", "configuration error")                                               \
    X (EXISTS, 117, "exists", "already exists")                                                    \
    X (REFUSED, 118, "refused", "refused by the broker")                                           \
    X (NOT_ACTIVE, 119, "not_active", "agency is not active")                                      \
    X (CORRUPT, 120, "corrupt", "stored record is corrupt")                                        \
    X (BROKER_KEY, 121, "broker_key", "broker key does not match")

typedef enum {
    DIPX_OK = 0,
#define DIPX_X_ENUM(name, num, wire, text) DIPX_E_##name = -(num),
    DIPX_ERROR_TABLE (DIPX_X_ENUM)
#undef DIPX_X_ENUM
} dipx_error_t;

/*  First code that never travels on the wire.  */
#define DIPX_E_LOCAL_FIRST 100

/*  Describes an error code in English. Never returns NULL; the string is
    static. Accepts the negative form, the wire (positive) form and 0.  */
DIPX_EXPORT const char *dipx_strerror (int code);

/*  Short stable name of an error code ("policy", "bad_signature"), as used in
    logs, JSON output and PROTOCOL.md. Returns "unknown" for other values.  */
DIPX_EXPORT const char *dipx_error_name (int code);

/*  True if code (negative form) may be carried on the wire.  */
DIPX_EXPORT int dipx_error_is_wire (int code);

#ifdef __cplusplus
}
#endif

#endif
