/*  dipx_server.h - the broker service: one ROUTER socket with CURVE, the ZAP
    handler, the store, the policy, and the loop that ties them together.  */
#ifndef DIPX_SERVER_H_INCLUDED
#define DIPX_SERVER_H_INCLUDED

#include <signal.h>

#include "dipx_config.h"

typedef struct dipx_server_t dipx_server_t;

/*  Loads the identity, registry and policy, opens the store, binds, and runs
    the start-up self-check (a connection with a random key must be refused
    by the ZAP handler). Returns 0 and *out, or an error (logged).  */
int dipx_server_new (const dipx_config_t *cfg, dipx_server_t **out);
void dipx_server_destroy (dipx_server_t **self_p);

/*  The endpoint actually bound (with the port chosen for tcp://...:*).  */
const char *dipx_server_endpoint (const dipx_server_t *self);

/*  The broker's CURVE public key in Z85.  */
const char *dipx_server_public_key (const dipx_server_t *self);

/*  Serves until *stop is set. When *reload is set, clears it and reads the
    registry, policy and reloadable config keys from cfg_path on a thread of
    its own, serving meanwhile; they take effect between jobs once read.  */
int dipx_server_run (dipx_server_t *self, volatile sig_atomic_t *stop,
                     volatile sig_atomic_t *reload, const char *cfg_path);

#endif
