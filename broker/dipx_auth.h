/*  dipx_auth.h - the broker's ZAP handler: admits a CURVE connection only if
    its public key belongs to an active agency in the registry, and names the
    connection with that agency's id (ZMQ's User-Id), which is the only source
    of a sender's identity.

    libzmq 4.3 admits every CURVE client when no ZAP handler is bound, so the
    handler is bound before the broker's socket, and dipx_server checks at
    start-up that a random key is refused.
*/
#ifndef DIPX_AUTH_H_INCLUDED
#define DIPX_AUTH_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#include "dipx_audit.h"
#include "dipx_registry.h"

typedef struct dipx_auth_t dipx_auth_t;

/*  One decision, for the audit log.  */
typedef struct {
    bool admitted;                       /* 200 */
    int status;                          /* 200 or 400 */
    char agency[DIPX_MAX_AGENCY_ID + 1]; /* admitted or known agency, else "" */
    char key[17];                        /* fingerprint of the client's key */
    char peer[DIPX_AUDIT_PEER_MAX + 1];  /* client's address */
    char why[64];                        /* short reason */
} dipx_auth_event_t;

/*  Binds the ZAP endpoint in zmq context ctx. NULL on failure.  */
dipx_auth_t *dipx_auth_new (void *ctx);
void dipx_auth_destroy (dipx_auth_t **self_p);

/*  The ZAP socket, to poll for ZMQ_POLLIN.  */
void *dipx_auth_socket (dipx_auth_t *self);

/*  The registry consulted (not owned; replaced on reload).  */
void dipx_auth_set_registry (dipx_auth_t *self, const dipx_registry_t *registry);

/*  Answers one pending ZAP request without blocking. Returns 1 and fills ev
    if a request was answered, 0 if none was waiting, or a negative error.  */
int dipx_auth_handle (dipx_auth_t *self, dipx_auth_event_t *ev);

#endif
