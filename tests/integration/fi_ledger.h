/*  fi_ledger.h - the bookkeeping of the fault-injection tests: what each
    message got from the broker while faults were on, what was delivered,
    and the promise checked afterwards on a broker restarted without faults:

        - every SEND was answered ACCEPTED, REFUSED or ERROR (with a code),
          unless the broker had exited;
        - every ACCEPTED message is delivered (nothing accepted is lost);
        - nothing unknown is delivered, and a second delivery is only ever a
          redelivery (a higher count);
        - every message refused or unanswered can be sent again (same id)
          and is ACCEPTED;
        - every message has its "accepted" audit record and every delivery
          received has its "delivered" record (same id and count).

    The sender is a raw CURVE socket of police.test carrying envelopes that
    police.test's libdipx client sealed, so that the test sees exactly what
    the broker answered (an ERROR, which carries no message id, cannot be
    told from silence through libdipx). The receiver is cjit.test's libdipx
    client, acknowledging everything.  */
#ifndef DIPX_FI_LEDGER_H_INCLUDED
#define DIPX_FI_LEDGER_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#include "harness.h"

#define FI_MAX 256
#define FI_ENV_MAX 2048 /* a sealed DT1 with a short body fits */

typedef enum { FI_UNSENT, FI_ACCEPTED, FI_REFUSED, FI_ERROR, FI_SILENT } fi_answer_t;

typedef struct {
    uint8_t id[DIPX_MESSAGE_ID_BYTES]; /* message id */
    uint8_t env[FI_ENV_MAX];           /* sealed envelope */
    size_t env_len;
    int answer;                        /* fi_answer_t of the last send */
    int code;                          /* REFUSED/ERROR code (negative DIPX_E_*) */
    bool accepted;                     /* ACCEPTED seen, at any time */
    uint32_t seen;                     /* deliveries received */
    uint64_t counts;                   /* bitmask of delivery counts received */
} fi_msg_t;

typedef struct {
    harness_t *h;          /* the broker */
    void *ctx;             /* zmq context of the raw socket */
    void *raw;             /* police.test's raw DEALER */
    dipx_client_t *police; /* seals (window 0) */
    dipx_client_t *cjit;   /* receives and acknowledges */
    fi_msg_t msgs[FI_MAX]; /* every message of the test */
    int n;
    int unknown;           /* deliveries of ids never sent */
    int bad_dup;           /* second deliveries that are not redeliveries */
    int silent;            /* sends left without an answer while the broker ran */
    int rehello;           /* client sessions refused, and reopened */
    int nanswers[5];       /* sends per fi_answer_t */
    bool outcomes;         /* also report every third message received actioned */
} fi_ledger_t;

/*  A harness with police.test and cjit.test; extra config lines or NULL.
    One per process (static): harness_fini it, never free it.  */
harness_t *fi_harness (const char *extra);

/*  An empty ledger, one per process (static).  */
fi_ledger_t *fi_ledger (void);

/*  Opens the sockets and clients on a started broker. Every call that
    waits asserts (cmocka) on a broken precondition.  */
void fi_open (fi_ledger_t *l, harness_t *h);

/*  Closes them (the broker may be running or not).  */
void fi_close (fi_ledger_t *l);

/*  Seals a new message and sends it; waits up to timeout_ms for its answer.
    Returns its index; the answer is in msgs[i].answer.  */
int fi_send (fi_ledger_t *l, int timeout_ms);

/*  Sends message i again (the same bytes) and waits for its answer.  */
int fi_resend (fi_ledger_t *l, int i, int timeout_ms);

/*  Seals a new message without sending it. Returns its index.  */
int fi_seal (fi_ledger_t *l);

/*  Writes message i's SEND on the raw socket and returns (no wait).  */
void fi_post (fi_ledger_t *l, int i);

/*  Waits up to timeout_ms for client *c (agency id) to be welcomed. If the
    broker refused its HELLO (an ERROR, e.g. storage, which libdipx does not
    retry on the same connection), or left it unanswered for timeout_ms (> 0)
    while running, replaces it with a new client, as an application would.
    Returns what dipx_client_wait_ready returned.  */
int fi_session (fi_ledger_t *l, dipx_client_t **c, const char *id, uint32_t window,
                int timeout_ms);

/*  Receives and acknowledges what arrives within timeout_ms (stops at the
    first wait that times out). Returns deliveries taken.  */
int fi_receive (fi_ledger_t *l, int timeout_ms);

/*  Messages ACCEPTED and not yet received.  */
int fi_missing (const fi_ledger_t *l);

/*  The broker's log has no sanitizer report and no other sign of a crash.  */
void fi_assert_log_clean (const harness_t *h);

/*  Lines of the broker's log containing needle.  */
int fi_log_count (const harness_t *h, const char *needle);

/*  After the faults: restarts the broker as plain dipxd (no faults) on the
    same data, resends everything not ACCEPTED, receives everything, stops
    the broker and checks the promise and the audit log (see above).  */
void fi_verify (fi_ledger_t *l);

/*  The broker exited by itself: not by a signal, with a non-zero status and
    an error line in its log.  */
void fi_assert_clean_exit (const harness_t *h);

#endif
