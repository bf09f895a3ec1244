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

/*  Z85 of size bytes (a multiple of 4) into out (size * 5 / 4 + 1 bytes,
    NUL-terminated). DIPX_E_INVAL if size is not a multiple of 4.  */
int dipx_z85_encode (const uint8_t *data, size_t size, char *out);

/*  Decodes exactly out_size * 5 / 4 characters of canonical Z85 (text need
    not be NUL-terminated) into out. DIPX_E_SYNTAX if not.  */
int dipx_z85_decode (const char *text, size_t len, uint8_t *out, size_t out_size);

/*  Private to keys/ (card and registry files share them); not an API.  */

/*  A cursor over LF-terminated lines of text that is not NUL-terminated.  */
typedef struct {
    const char *text; /* the whole input */
    size_t len;       /* its length in bytes */
    size_t pos;       /* offset of the next line */
    int line;         /* number of the line last taken (1-based), 0 before */
} dipx__lines_t;

/*  Takes the next line, without its LF. false at the end of the text or if
    the line has no LF (a final newline is required).  */
bool dipx__lines_next (dipx__lines_t *self, const char **line, size_t *line_len);

/*  Takes the next line, which must be "<key>: <value>" with exactly one space
    and a non-empty value; sets value and value_len. false otherwise.  */
bool dipx__lines_field (dipx__lines_t *self, const char *key, const char **value,
                        size_t *value_len);

/*  How dipx__file_write creates path.  */
enum {
    DIPX__WRITE_NEW = 1,    /* O_EXCL: DIPX_E_EXISTS if path exists */
    DIPX__WRITE_ATOMIC = 2, /* temp file in the same directory, then rename */
};

/*  Reads the regular file path, at most max bytes (DIPX_E_SYNTAX if longer,
    DIPX_E_IO if unreadable or not a regular file). With secret set, refuses a
    file whose mode grants group or others anything (DIPX_E_PERM) and reads
    into sodium_malloc'd memory that the caller wipes and sodium_free's;
    otherwise the caller free's *out.  */
int dipx__file_read (const char *path, size_t max, bool secret, char **out, size_t *out_len);

/*  Writes len bytes to path with mode, fsync'ing the file and its directory.
    how is DIPX__WRITE_NEW or DIPX__WRITE_ATOMIC. On failure nothing is left
    behind and an existing file is intact, except when only the directory
    sync fails after DIPX__WRITE_ATOMIC has replaced the file: the new one is
    then in place. DIPX_E_EXISTS, DIPX_E_IO or DIPX_E_NOMEM.  */
int dipx__file_write (const char *path, const void *data, size_t len, unsigned mode, int how);

#endif
