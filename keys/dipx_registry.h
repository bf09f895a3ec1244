/*  dipx_registry.h - the set of agency cards a broker trusts, with each
    agency's status.

    Registry file format: the line "dipx-registry 1", then for each agency a
    blank line followed by its card (dipx_card.h) and two lines:

        status: active | suspended | revoked
        changed: 2026-11-23T10:00:00Z

    Saved atomically (write a temp file, fsync, rename). Lookups by agency id
    and by encryption (CURVE) public key are hash-table lookups keyed with
    libsodium's SipHash, so a registry of 50,000 agencies costs O(1) per ZAP
    request and a hostile key cannot make the table degenerate.
*/
#ifndef DIPX_REGISTRY_H_INCLUDED
#define DIPX_REGISTRY_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "dipx_card.h"

typedef enum {
    DIPX_STATUS_ACTIVE,    /* may connect and send/receive */
    DIPX_STATUS_SUSPENDED, /* refused until reactivated (ZAP 400, as revoked) */
    DIPX_STATUS_REVOKED,   /* refused for good (ZAP 400); never reactivated */
    DIPX_STATUS_COUNT
} dipx_status_t;

typedef struct {
    dipx_card_t card;  /* the agency's card */
    int status;        /* dipx_status_t */
    int64_t changed;   /* when status last changed, seconds since the epoch */
} dipx_entry_t;

typedef struct dipx_registry_t dipx_registry_t;

/*  Why an agency's entry cannot be used at time now (seconds since the
    epoch): NULL when it is active and now is within its card's validity
    (valid-from <= now + the 5-minute clock skew, now < valid-until); else
    "agency suspended", "agency revoked", "card not yet valid" or "card
    expired".  */
const char *dipx_entry_unusable (const dipx_entry_t *e, int64_t now);

/*  An empty registry. NULL if memory is short.  */
dipx_registry_t *dipx_registry_new (void);

/*  Loads a registry file (at most DIPX_MAX_REGISTRY_BYTES, DIPX_MAX_AGENCIES
    entries). Returns 0 and *out (caller owns), DIPX_E_IO, DIPX_E_SYNTAX,
    DIPX_E_CARD_SIG, DIPX_E_EXISTS (duplicate id or key), DIPX_E_VALUE (a
    broker-type card), DIPX_E_COUNT, DIPX_E_NOMEM. If line is not NULL it gets
    the 1-based line at fault (the card's first line for a card-wide error),
    or 0.  */
int dipx_registry_load (const char *path, dipx_registry_t **out, int *line);

/*  Reads a registry file's text (at most DIPX_MAX_REGISTRY_BYTES) into a
    malloc'd *text (caller frees), for dipx_registry_parse: load in two
    steps. 0, DIPX_E_IO or DIPX_E_SYNTAX (too long).  */
int dipx_registry_read (const char *path, char **text, size_t *len);

/*  Parses registry text; as load.  */
int dipx_registry_parse (const char *text, size_t len, dipx_registry_t **out, int *line);

/*  Saves atomically, keeping an existing file's permission bits (else 0644).
    DIPX_E_IO on failure (the old file is intact).  */
int dipx_registry_save (const dipx_registry_t *self, const char *path);

/*  Saves to a new file (O_EXCL, mode 0644), for `registry init`.
    DIPX_E_EXISTS if path exists, DIPX_E_IO.  */
int dipx_registry_create (const dipx_registry_t *self, const char *path);

/*  Writes the registry as file text into a malloc'd *out (caller owns).  */
int dipx_registry_format (const dipx_registry_t *self, char **out, size_t *out_len);

void dipx_registry_destroy (dipx_registry_t **self_p);

/*  Adds a card as active (time now). DIPX_E_EXISTS if its id or either key is
    already present; DIPX_E_VALUE for a broker-type card or a field out of
    range; DIPX_E_CARD_SIG if its self-signature does not verify (so that a
    saved registry always loads again); DIPX_E_COUNT if full.  */
int dipx_registry_add (dipx_registry_t *self, const dipx_card_t *card);

/*  Changes an entry's status. DIPX_E_NOT_FOUND; DIPX_E_VALUE when reactivating
    or suspending a revoked entry (revocation is final).  */
int dipx_registry_set_status (dipx_registry_t *self, const char *id, int status);

/*  Lookups; NULL if absent. The pointer is valid until the registry changes.  */
const dipx_entry_t *dipx_registry_by_id (const dipx_registry_t *self, const char *id);
const dipx_entry_t *dipx_registry_by_enc_key (const dipx_registry_t *self,
                                              const uint8_t key[DIPX_KEY_BYTES]);

/*  Number of entries, and the i-th in file order (0 <= i < size).  */
size_t dipx_registry_size (const dipx_registry_t *self);
const dipx_entry_t *dipx_registry_at (const dipx_registry_t *self, size_t i);

/*  Wire name of a status ("active"), NULL if out of range; and back, or
    DIPX_E_VALUE.  */
const char *dipx_status_name (int status);
int dipx_status_parse (const char *name);

/*  Private to keys/ and its tests: adds a card the caller has already
    verified, with the given status and change time; checks only type,
    duplicates and count, as dipx_registry_add.  */
int dipx__registry_insert (dipx_registry_t *self, const dipx_card_t *card, int status,
                           int64_t changed);

#endif
