/*  dipx_identity.h - an agency's (or the broker's) secret identity: an X25519
    encryption keypair, the same kind of key ZeroMQ CURVE uses, and a separate
    Ed25519 signing keypair.

    Secret file format (text, one field per line, LF endings, nothing else):

        dipx-secret 1
        id: <agency id>
        enc-secret: <Z85 of the 32-byte X25519 secret key>
        sign-secret: <Z85 of the 32-byte Ed25519 seed>

    The file is created with O_EXCL and mode 0600 and refused at load when its
    mode grants anything to group or others (as ssh refuses a private key).
    Secret keys live in sodium_malloc'd memory and are wiped on destroy.
*/
#ifndef DIPX_IDENTITY_H_INCLUDED
#define DIPX_IDENTITY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dipx_error.h"
#include "dipx_limits.h"

/*  Z85 text of a 32-byte key: 40 characters.  */
#define DIPX_Z85_KEY_LEN 40

typedef struct dipx_identity_t dipx_identity_t;

/*  Public half of an identity, copyable.  */
typedef struct {
    char id[DIPX_MAX_AGENCY_ID + 1];    /* agency id */
    uint8_t enc_pk[DIPX_KEY_BYTES];     /* X25519 public key (CURVE key) */
    uint8_t sign_pk[DIPX_KEY_BYTES];    /* Ed25519 public key */
} dipx_public_t;

/*  Generates a fresh identity for agency id. Returns NULL if id is not a
    valid agency id or memory is short. Caller owns the result.  */
dipx_identity_t *dipx_identity_generate (const char *id);

/*  Loads a secret file. Returns 0 and sets *out (caller owns), or
    DIPX_E_IO (cannot read), DIPX_E_PERM (group/world-accessible),
    DIPX_E_SYNTAX (not a secret file), DIPX_E_NOMEM.  */
int dipx_identity_load (const char *path, dipx_identity_t **out);

/*  Parses secret-file text (len bytes, at most DIPX_MAX_SECRET_BYTES).  */
int dipx_identity_parse (const char *text, size_t len, dipx_identity_t **out);

/*  Writes the secret file, created new (O_EXCL) with mode 0600 and fsync'd.
    DIPX_E_EXISTS if it exists, DIPX_E_IO otherwise.  */
int dipx_identity_save (const dipx_identity_t *self, const char *path);

/*  Frees and wipes. Accepts NULL; sets *self_p to NULL.  */
void dipx_identity_destroy (dipx_identity_t **self_p);

/*  Accessors. Secret pointers stay valid until destroy; never copy them out
    of sodium_malloc'd memory.  */
const char *dipx_identity_id (const dipx_identity_t *self);
const uint8_t *dipx_identity_enc_pk (const dipx_identity_t *self);
const uint8_t *dipx_identity_enc_sk (const dipx_identity_t *self);   /* 32 bytes */
const uint8_t *dipx_identity_sign_pk (const dipx_identity_t *self);
const uint8_t *dipx_identity_sign_sk (const dipx_identity_t *self);  /* 64 bytes */
void dipx_identity_public (const dipx_identity_t *self, dipx_public_t *pub);

/*  Z85 encoding of a 32-byte key into out (DIPX_Z85_KEY_LEN + 1 bytes).  */
void dipx_key_to_z85 (const uint8_t key[DIPX_KEY_BYTES], char out[DIPX_Z85_KEY_LEN + 1]);

/*  Decodes exactly DIPX_Z85_KEY_LEN Z85 characters. DIPX_E_SYNTAX if not.  */
int dipx_key_from_z85 (const char *text, size_t len, uint8_t key[DIPX_KEY_BYTES]);

/*  Short fingerprint of a public key for logs and audit: the first 8 bytes of
    BLAKE2b-256("dipx-v1-keyfp\0" || key) as 16 lowercase hex characters.  */
void dipx_key_fingerprint (const uint8_t key[DIPX_KEY_BYTES], char out[17]);

#endif
