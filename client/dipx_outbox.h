/*  dipx_outbox.h - libdipx's durable outbox: sealed envelopes kept on disk
    (LMDB) from the moment a post succeeds until the application has
    collected the broker's answer to them, so that sends survive a broker
    outage and a restart of the agency system.

    Private to libdipx (never installed, never exported). Entries are keyed by
    a sequence number that grows with every put, so key order is post order.
    Every put and every delete is one committed, fsync'd transaction.
*/
#ifndef DIPX_OUTBOX_H_INCLUDED
#define DIPX_OUTBOX_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dipx_client.h"
#include "dipx_limits.h"

typedef struct dipx__outbox_t dipx__outbox_t;

/*  Opens the outbox in directory dir for agency (its id), creating dir (0700)
    and the LMDB files (0600) if absent. Holds an exclusive lock on dir while
    open. Failures are reported through log (may be NULL). Returns 0 and *out
    (caller owns, dipx__outbox_destroy); DIPX_E_IO (dir cannot be created,
    opened or synced), DIPX_E_PERM (dir is another user's, or writable by
    group or others), DIPX_E_BUSY (another client, in this process or another, has it
    open), DIPX_E_INVAL (it belongs to another agency), DIPX_E_NOMEM,
    DIPX_E_CORRUPT, DIPX_E_STORAGE.  */
int dipx__outbox_open (const char *dir, const char *agency, dipx_log_fn *log, void *log_arg,
                       dipx__outbox_t **out);

/*  Closes the outbox; entries stay on disk. Accepts NULL.  */
void dipx__outbox_destroy (dipx__outbox_t **self_p);

/*  Commits one envelope (and its message id) and writes its key into *key.
    0; DIPX_E_BUSY when DIPX_MAX_OUTBOX entries are held; DIPX_E_STORAGE_FULL
    when the map is at DIPX_MAX_OUTBOX_MAP or the disk is full; DIPX_E_INVAL;
    DIPX_E_STORAGE.  */
int dipx__outbox_put (dipx__outbox_t *self, const uint8_t id[DIPX_ID_BYTES], const uint8_t *env,
                      size_t env_len, uint64_t *key);

/*  Deletes the entries with these n keys in one transaction; keys that are
    not there are ignored. 0 or DIPX_E_STORAGE(_FULL).  */
int dipx__outbox_delete (dipx__outbox_t *self, const uint64_t *keys, size_t n);

/*  Called by scan for one entry. The bytes are valid only during the call.
    Returns true to take the entry and go on, false to stop before it. It
    must not put or delete: no write transaction may run inside the scan's
    read transaction (the map could not grow).  */
typedef bool (dipx__outbox_entry_fn) (uint64_t key, const uint8_t id[DIPX_ID_BYTES],
                                      const uint8_t *env, size_t env_len, void *arg);

/*  Visits the entries with keys >= *from in key order, in one read
    transaction, until fn returns false or none remain. *from becomes the key
    after the last entry taken; an entry that is not well-formed is skipped
    (reported through the log, left on disk) and counted in *skipped. 0, or
    DIPX_E_STORAGE / DIPX_E_CORRUPT / DIPX_E_NOMEM if the read failed.  */
int dipx__outbox_scan (dipx__outbox_t *self, uint64_t *from, dipx__outbox_entry_fn *fn,
                       void *arg, size_t *skipped);

/*  Entries held now.  */
size_t dipx__outbox_count (const dipx__outbox_t *self);

/*  The key the next put will use: every entry's key is below it.  */
uint64_t dipx__outbox_end (const dipx__outbox_t *self);

#endif
