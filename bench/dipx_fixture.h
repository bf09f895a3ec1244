/*  dipx_fixture.h - a real dipxd in a private temporary directory, with
    generated identities, a registry, a peers file and a config: what a
    benchmark (or an integration test) needs to drive a broker end to end.

    Unlike tests/integration/harness.c it holds any number of agencies (the
    idle-connection benchmark registers 10,000), writes secret files only for
    the agencies that a libdipx client will load, writes a separate, small
    peers file (a client parses and verifies every card in its peers file),
    takes the dipxd and policy paths from its caller instead of the
    environment, and times a start (spawn to READY) and a stop. It never
    exits or asserts: every call returns 0 or a negative DIPX_E_* code.

    Not thread-safe; the broker runs as a child process of the caller.
*/
#ifndef DIPX_FIXTURE_H_INCLUDED
#define DIPX_FIXTURE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "dipx_identity.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dipx_fixture_t dipx_fixture_t;

/*  Where things are. Strings are copied.  */
typedef struct {
    const char *dipxd;  /* path of the dipxd executable */
    const char *policy; /* policy file for the broker */
    const char *tmpdir; /* parent of the private directory; NULL = $TMPDIR or /tmp */
    const char *extra;  /* config lines appended to [dipxd], or NULL */
    bool keep;          /* leave the directory behind on destroy (for a post-mortem) */
} dipx_fixture_options_t;

/*  Flags for dipx_fixture_add.  */
enum {
    DIPX_FIXTURE_SECRET = 1, /* write <dir>/<id>.secret, for a libdipx client */
    DIPX_FIXTURE_PEER = 2,   /* list the agency in the peers file */
};

/*  Creates the private directory and the broker's identity. Returns 0 and
    *out (caller owns), DIPX_E_INVAL, DIPX_E_IO or DIPX_E_NOMEM.  */
int dipx_fixture_new (const dipx_fixture_options_t *options, dipx_fixture_t **out);

/*  Stops the broker (SIGTERM, then SIGKILL after 5 s), removes the directory
    unless told to keep it, and frees everything. Accepts NULL.  */
void dipx_fixture_destroy (dipx_fixture_t **self_p);

/*  Adds an active agency of type (dipx_agency_type_t) with a fresh identity.
    flags: DIPX_FIXTURE_SECRET | DIPX_FIXTURE_PEER. Returns its index, or a
    negative DIPX_E_* code.  */
int dipx_fixture_add (dipx_fixture_t *self, const char *id, int type, unsigned flags);

/*  Writes the registry (every agency), the peers file (the DIPX_FIXTURE_PEER
    agencies) and the config (a free port on 127.0.0.1 on the first start,
    the same port afterwards). dipx_fixture_start calls it.  */
int dipx_fixture_write (dipx_fixture_t *self);

/*  Starts dipxd and waits up to timeout_ms for its READY line. Sets
    *ready_s (if not NULL) to the seconds from fork to READY. 0, or
    DIPX_E_TIMEOUT / DIPX_E_IO (see the broker's log, dipx_fixture_log).  */
int dipx_fixture_start (dipx_fixture_t *self, int timeout_ms, double *ready_s);

/*  Sends sig to the broker and reaps it (SIGKILL after timeout_ms if it has
    not exited). Sets *exit_s (if not NULL) to the seconds it took. Returns
    the wait status, or -1 if no broker was running.  */
int dipx_fixture_stop (dipx_fixture_t *self, int sig, int timeout_ms, double *exit_s);

/*  Getters. Strings are owned by the fixture. endpoint is empty before the
    first start; pid is 0 when no broker runs.  */
const char *dipx_fixture_dir (const dipx_fixture_t *self);
const char *dipx_fixture_data_dir (const dipx_fixture_t *self);
const char *dipx_fixture_registry (const dipx_fixture_t *self);
const char *dipx_fixture_peers (const dipx_fixture_t *self);
const char *dipx_fixture_log (const dipx_fixture_t *self);
const char *dipx_fixture_endpoint (const dipx_fixture_t *self);
const char *dipx_fixture_broker_key (const dipx_fixture_t *self);
pid_t dipx_fixture_pid (const dipx_fixture_t *self);

/*  Agency i (0 <= i < dipx_fixture_size): its id, its secret file's path
    (empty without DIPX_FIXTURE_SECRET) and its keys.  */
size_t dipx_fixture_size (const dipx_fixture_t *self);
const char *dipx_fixture_agency_id (const dipx_fixture_t *self, size_t i);
const char *dipx_fixture_agency_secret (const dipx_fixture_t *self, size_t i);
const dipx_identity_t *dipx_fixture_agency_identity (const dipx_fixture_t *self, size_t i);

#ifdef __cplusplus
}
#endif

#endif
