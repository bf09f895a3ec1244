/*  bench_ackonly.h - a receiving agency for dipx-bench that does none of the
    agency-side crypto but the signed ACK: it speaks the wire protocol on a
    raw CURVE DEALER, takes each DELIVER's id from the envelope header and
    acknowledges what it has taken with one signature per ACK, as libdipx
    does, without verifying the sender's signature or opening the payload.
    It stands in for a consumer that does no crypto (as the broker
    benchmarks it is compared with do), so that the figures measure the
    broker. Never a model for an agency: an agency MUST verify and open
    before it acknowledges (PROTOCOL.md 5.3).  */
#ifndef DIPX_BENCH_ACKONLY_H_INCLUDED
#define DIPX_BENCH_ACKONLY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dipx_limits.h"

typedef struct bench_ackonly_t bench_ackonly_t;

/*  Connects as the agency whose secret file is secret_path, says HELLO with
    window and waits up to timeout_ms for WELCOME. ctx is a ZeroMQ context
    the caller owns. Returns 0 or a DIPX_E_* code.  */
int bench_ackonly_open (void *ctx, const char *endpoint, const char *broker_key_z85,
                        const char *secret_path, uint32_t window, int timeout_ms,
                        bench_ackonly_t **out);

/*  The next delivery within timeout_ms: its id and delivery count. Its
    acknowledgement is queued, and sent (one signed ACK for every id
    queued) when no further delivery is waiting or DIPX_MAX_ACK_IDS are
    queued. Returns 0, DIPX_E_TIMEOUT, or a DIPX_E_* code (an ERROR from
    the broker, a frame that does not decode, a send that failed).  */
int bench_ackonly_recv (bench_ackonly_t *self, int timeout_ms, uint8_t id[DIPX_ID_BYTES],
                        uint64_t *count);

/*  Sends the ACK for the ids queued, if any, and waits up to timeout_ms
    for the broker to have handled every ACK sent (its answer to a TRACK
    sent after them). 0, or a DIPX_E_* code: an ERROR about an ACK (a bad
    signature, say), DIPX_E_TIMEOUT.  */
int bench_ackonly_flush (bench_ackonly_t *self, int timeout_ms);

/*  The agency's id.  */
const char *bench_ackonly_id (const bench_ackonly_t *self);

void bench_ackonly_close (bench_ackonly_t **self_p);

#endif
