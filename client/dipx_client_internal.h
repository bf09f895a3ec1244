/*  dipx_client_internal.h - private functions shared by libdipx's own files
    and its unit tests. Never installed; none of these is exported from the
    shared library.
*/
#ifndef DIPX_CLIENT_INTERNAL_H_INCLUDED
#define DIPX_CLIENT_INTERNAL_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "dipx_client.h"
#include "dipx_envelope.h"

/*  Makes a received message from its checked header, its broker sequence and
    delivery count, and its opened body. Takes *body (malloc'd, as from
    dipx_envelope_open) on every path: on success the message owns it, on
    failure it is wiped and freed; *body is set to NULL either way. Returns
    NULL if memory is short.  */
dipx_message_t *dipx__message_new (const dipx_header_t *h, uint64_t seq, uint64_t count,
                                   uint8_t **body, size_t body_len);

/*  Runs one turn of the client's loop: waits up to timeout_ms for the broker
    or the connection monitor, then handles everything that is ready. Tests use
    it to let the client work while they play the broker. 0 or DIPX_E_ZMQ.  */
int dipx__client_pump (dipx_client_t *self, int timeout_ms);

/*  Counters for tests and diagnostics.  */
typedef struct {
    uint64_t sessions;         /* handshakes that succeeded */
    uint64_t bad_frames;       /* frames from the broker that did not decode */
    uint64_t unmatched;        /* answers and ERRORs that matched no send */
    uint64_t rejected;         /* deliveries rejected with an OUTCOME */
    uint64_t receipts_dropped; /* receipts dropped because the queue was full */
    uint64_t deliveries_dropped; /* deliveries dropped (queue full or connection lost) */
    uint64_t outbox_reloaded;  /* outbox entries found by dipx_client_new */
    uint64_t outbox;           /* outbox entries now (sends whose answer is not yet
                                  collected); 0 without one */
    uint64_t uncollected;      /* answers waiting for dipx_client_result */
    uint64_t resent;           /* SENDs written again on a connection: their answers were lost */
} dipx__client_stats_t;

void dipx__client_stats (const dipx_client_t *self, dipx__client_stats_t *stats);

#endif
