/*  dipx_identity.c - an agency's secret identity, its secret file, Z85 and key
    fingerprints, and the small file and line helpers the rest of keys/ shares.

    Design. The whole dipx_identity_t lives in one sodium_malloc'd block (guard
    pages, mlock'd, never swapped) and is made read-only once built; destroy
    makes it writable again only to wipe it. The struct holds nothing but byte
    arrays, so its alignment is 1: sodium_malloc places a block against its
    guard page and may hand back an unaligned address, which is harmless here
    and checked at compile time below.

    Secret files are written in one go from sodium_malloc'd memory: created
    with O_EXCL (never overwritten, never through a planted symlink), mode
    0600 whatever the umask, fsync'd with their directory. Loading opens the
    file first and checks the mode of what was opened (fstat), so there is no
    window between the check and the read; a mode granting group or others
    anything is refused, as ssh refuses a private key. The parser accepts
    exactly one spelling of a secret file, so a damaged file is reported and
    never half-read; it then derives the public keys from the secrets and
    checks nothing else (any 32 bytes are a valid X25519 key or Ed25519 seed).

    Z85 goes through libzmq, the same code CURVE uses. Decoding is strict: the
    text must have exactly the expected length and re-encode to itself, so
    every key has one spelling (libzmq alone would let some over-range groups
    through on older versions).
*/
#include "dipx_identity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include "dipx_mp.h"

struct dipx_identity_t {
    char id[DIPX_MAX_AGENCY_ID + 1];             /* agency id, NUL-terminated */
    uint8_t enc_pk[DIPX_KEY_BYTES];              /* X25519 public key */
    uint8_t enc_sk[DIPX_KEY_BYTES];              /* X25519 secret key */
    uint8_t sign_pk[DIPX_KEY_BYTES];             /* Ed25519 public key */
    uint8_t sign_seed[DIPX_KEY_BYTES];           /* Ed25519 seed, as in the file */
    uint8_t sign_sk[crypto_sign_SECRETKEYBYTES]; /* seed || public key (libsodium) */
};

_Static_assert (_Alignof (struct dipx_identity_t) == 1,
                "sodium_malloc may return unaligned memory: byte arrays only");
_Static_assert (crypto_box_SECRETKEYBYTES == DIPX_KEY_BYTES, "X25519 key size");
_Static_assert (crypto_box_PUBLICKEYBYTES == DIPX_KEY_BYTES, "X25519 key size");
_Static_assert (crypto_sign_SEEDBYTES == DIPX_KEY_BYTES, "Ed25519 seed size");
_Static_assert (crypto_sign_PUBLICKEYBYTES == DIPX_KEY_BYTES, "Ed25519 key size");
_Static_assert (crypto_sign_BYTES == DIPX_SIG_BYTES, "Ed25519 signature size");

#define S_SECRET_HEADER "dipx-secret 1"

/*  Longest secret file we write: header, three fields, their values.  */
#define S_SECRET_MAX                                                                               \
    (sizeof S_SECRET_HEADER + sizeof "id: " + DIPX_MAX_AGENCY_ID + sizeof "enc-secret: "           \
     + DIPX_Z85_KEY_LEN + sizeof "sign-secret: " + DIPX_Z85_KEY_LEN)
_Static_assert (S_SECRET_MAX <= DIPX_MAX_SECRET_BYTES, "secret file limit below largest file");

/*  Longest input dipx_z85_decode takes: a signature.  */
#define S_Z85_MAX_BYTES DIPX_SIG_BYTES

/*  A zeroed identity in guarded memory, or NULL.  */
static dipx_identity_t *
s_new (void)
{
    if (sodium_init () < 0)
        return NULL;
    dipx_identity_t *self = sodium_malloc (sizeof *self);
    if (self)
        sodium_memzero (self, sizeof *self);
    return self;
}

/*  Derives both public keys (and libsodium's signing key) from the secrets,
    then write-protects the block.  */
static int
s_seal (dipx_identity_t *self)
{
    if (crypto_scalarmult_base (self->enc_pk, self->enc_sk) != 0)
        return DIPX_E_SYNTAX;
    if (crypto_sign_seed_keypair (self->sign_pk, self->sign_sk, self->sign_seed) != 0)
        return DIPX_E_SYNTAX;
    if (sodium_mprotect_readonly (self) != 0)
        return DIPX_E_NOMEM;
    return 0;
}

static bool
s_is_agency_id (const char *id, size_t len)
{
    return len <= DIPX_MAX_AGENCY_ID && dipx_text_is_agency_id (id, len);
}

dipx_identity_t *
dipx_identity_generate (const char *id)
{
    size_t id_len = id ? strnlen (id, DIPX_MAX_AGENCY_ID + 1) : 0;
    if (!id || !s_is_agency_id (id, id_len))
        return NULL;
    dipx_identity_t *self = s_new ();
    if (!self)
        return NULL;
    memcpy (self->id, id, id_len);
    if (crypto_box_keypair (self->enc_pk, self->enc_sk) != 0) {
        dipx_identity_destroy (&self);
        return NULL;
    }
    randombytes_buf (self->sign_seed, sizeof self->sign_seed);
    if (s_seal (self) != 0)
        dipx_identity_destroy (&self);
    return self;
}

int
dipx_identity_parse (const char *text, size_t len, dipx_identity_t **out)
{
    if (!out || (!text && len))
        return DIPX_E_INVAL;
    *out = NULL;
    if (len > DIPX_MAX_SECRET_BYTES)
        return DIPX_E_SYNTAX;

    /* Structure first, so that a damaged file costs no guarded memory; the
       secrets are decoded only into the identity's own block.  */
    dipx__lines_t lines = {text, len, 0, 0};
    const char *id, *enc, *sign, *v;
    size_t id_len, enc_len, sign_len, v_len;
    if (!dipx__lines_next (&lines, &v, &v_len) || v_len != strlen (S_SECRET_HEADER)
        || memcmp (v, S_SECRET_HEADER, v_len) != 0)
        return DIPX_E_SYNTAX;
    if (!dipx__lines_field (&lines, "id", &id, &id_len) || !s_is_agency_id (id, id_len))
        return DIPX_E_SYNTAX;
    if (!dipx__lines_field (&lines, "enc-secret", &enc, &enc_len)
        || !dipx__lines_field (&lines, "sign-secret", &sign, &sign_len) || lines.pos != len)
        return DIPX_E_SYNTAX;

    dipx_identity_t *self = s_new ();
    if (!self)
        return DIPX_E_NOMEM;
    int rc = DIPX_E_SYNTAX;
    memcpy (self->id, id, id_len);
    if (dipx_z85_decode (enc, enc_len, self->enc_sk, sizeof self->enc_sk) != 0
        || dipx_z85_decode (sign, sign_len, self->sign_seed, sizeof self->sign_seed) != 0)
        goto cleanup;
    rc = s_seal (self);
    if (rc == 0) {
        *out = self;
        self = NULL;
    }
cleanup:
    dipx_identity_destroy (&self);
    return rc;
}

int
dipx_identity_load (const char *path, dipx_identity_t **out)
{
    if (!path || !out)
        return DIPX_E_INVAL;
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = dipx__file_read (path, DIPX_MAX_SECRET_BYTES, true, &text, &len);
    if (rc == 0) {
        rc = dipx_identity_parse (text, len, out);
        sodium_memzero (text, len);
        sodium_free (text);
    }
    return rc;
}

/*  Appends n bytes at *p, advancing it (the caller sized the buffer).  */
static void
s_put (char **p, const char *data, size_t n)
{
    memcpy (*p, data, n);
    *p += n;
}

/*  Appends "key: " and the Z85 of a 32-byte secret, then LF.  */
static void
s_put_key (char **p, const char *key, const uint8_t secret[DIPX_KEY_BYTES])
{
    s_put (p, key, strlen (key));
    s_put (p, ": ", 2);
    /* Encodes in place: the secret's text never leaves guarded memory.  */
    dipx_key_to_z85 (secret, *p);
    *p += DIPX_Z85_KEY_LEN;
    s_put (p, "\n", 1);
}

int
dipx_identity_save (const dipx_identity_t *self, const char *path)
{
    if (!self || !path)
        return DIPX_E_INVAL;
    char *buf = sodium_malloc (S_SECRET_MAX + 1);
    if (!buf)
        return DIPX_E_NOMEM;
    char *p = buf;
    s_put (&p, S_SECRET_HEADER "\n", strlen (S_SECRET_HEADER "\n"));
    s_put (&p, "id: ", 4);
    s_put (&p, self->id, strlen (self->id));
    s_put (&p, "\n", 1);
    s_put_key (&p, "enc-secret", self->enc_sk);
    s_put_key (&p, "sign-secret", self->sign_seed);
    size_t len = (size_t) (p - buf);
    int rc = dipx__file_write (path, buf, len, 0600, DIPX__WRITE_NEW);
    sodium_memzero (buf, S_SECRET_MAX + 1);
    sodium_free (buf);
    return rc;
}

void
dipx_identity_destroy (dipx_identity_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dipx_identity_t *self = *self_p;
    sodium_mprotect_readwrite (self);
    sodium_memzero (self, sizeof *self);
    sodium_free (self);
    *self_p = NULL;
}

const char *
dipx_identity_id (const dipx_identity_t *self)
{
    return self->id;
}

const uint8_t *
dipx_identity_enc_pk (const dipx_identity_t *self)
{
    return self->enc_pk;
}

const uint8_t *
dipx_identity_enc_sk (const dipx_identity_t *self)
{
    return self->enc_sk;
}

const uint8_t *
dipx_identity_sign_pk (const dipx_identity_t *self)
{
    return self->sign_pk;
}

const uint8_t *
dipx_identity_sign_sk (const dipx_identity_t *self)
{
    return self->sign_sk;
}

void
dipx_identity_public (const dipx_identity_t *self, dipx_public_t *pub)
{
    memset (pub, 0, sizeof *pub);
    memcpy (pub->id, self->id, sizeof pub->id);
    memcpy (pub->enc_pk, self->enc_pk, sizeof pub->enc_pk);
    memcpy (pub->sign_pk, self->sign_pk, sizeof pub->sign_pk);
}

/*  Z85 ---------------------------------------------------------------------*/

int
dipx_z85_encode (const uint8_t *data, size_t size, char *out)
{
    if (size % 4 != 0 || (!data && size))
        return DIPX_E_INVAL;
    if (size == 0) {
        out[0] = '\0';
        return 0;
    }
    return zmq_z85_encode (out, data, size) ? 0 : DIPX_E_INVAL;
}

int
dipx_z85_decode (const char *text, size_t len, uint8_t *out, size_t out_size)
{
    if (out_size == 0 || out_size % 4 != 0 || out_size > S_Z85_MAX_BYTES)
        return DIPX_E_INVAL;
    if (!text || len != out_size / 4 * 5)
        return DIPX_E_SYNTAX;
    /* libzmq wants a C string; the copies may hold secret text: wipe them.  */
    char copy[S_Z85_MAX_BYTES / 4 * 5 + 1];
    char again[sizeof copy];
    uint8_t bytes[S_Z85_MAX_BYTES];
    int rc = DIPX_E_SYNTAX;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) text[i] <= 0x20 || (unsigned char) text[i] >= 0x7f)
            goto cleanup;
    memcpy (copy, text, len);
    copy[len] = '\0';
    if (!zmq_z85_decode (bytes, copy))
        goto cleanup;
    if (!zmq_z85_encode (again, bytes, out_size) || sodium_memcmp (again, copy, len) != 0)
        goto cleanup;
    memcpy (out, bytes, out_size);
    rc = 0;
cleanup:
    sodium_memzero (copy, sizeof copy);
    sodium_memzero (again, sizeof again);
    sodium_memzero (bytes, sizeof bytes);
    return rc;
}

void
dipx_key_to_z85 (const uint8_t key[DIPX_KEY_BYTES], char out[DIPX_Z85_KEY_LEN + 1])
{
    zmq_z85_encode (out, key, DIPX_KEY_BYTES);
}

int
dipx_key_from_z85 (const char *text, size_t len, uint8_t key[DIPX_KEY_BYTES])
{
    return dipx_z85_decode (text, len, key, DIPX_KEY_BYTES);
}

void
dipx_key_fingerprint (const uint8_t key[DIPX_KEY_BYTES], char out[17])
{
    static const char context[] = "dipx-v1-keyfp"; /* hashed with its NUL */
    uint8_t hash[32];
    crypto_generichash_state state;
    crypto_generichash_init (&state, NULL, 0, sizeof hash);
    crypto_generichash_update (&state, (const uint8_t *) context, sizeof context);
    crypto_generichash_update (&state, key, DIPX_KEY_BYTES);
    crypto_generichash_final (&state, hash, sizeof hash);
    sodium_bin2hex (out, 17, hash, 8);
}

/*  Lines ------------------------------------------------------------------*/

bool
dipx__lines_next (dipx__lines_t *self, const char **line, size_t *line_len)
{
    self->line++; /* counted even when missing, for error reports */
    if (self->pos >= self->len)
        return false;
    const char *start = self->text + self->pos;
    const char *lf = memchr (start, '\n', self->len - self->pos);
    if (!lf)
        return false;
    *line = start;
    *line_len = (size_t) (lf - start);
    self->pos += *line_len + 1;
    return true;
}

bool
dipx__lines_field (dipx__lines_t *self, const char *key, const char **value, size_t *value_len)
{
    const char *line;
    size_t len;
    size_t key_len = strlen (key);
    if (!dipx__lines_next (self, &line, &len))
        return false;
    if (len < key_len + 3 || memcmp (line, key, key_len) != 0 || line[key_len] != ':'
        || line[key_len + 1] != ' ')
        return false;
    *value = line + key_len + 2;
    *value_len = len - key_len - 2;
    return true;
}

/*  Files ------------------------------------------------------------------*/

int
dipx__file_read (const char *path, size_t max, bool secret, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    int rc = DIPX_E_IO;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    /* O_NONBLOCK: a FIFO planted at path must not hang us before fstat.  */
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        goto cleanup;
    struct stat st;
    if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode))
        goto cleanup;
    if (secret && (st.st_mode & 077)) {
        rc = DIPX_E_PERM;
        goto cleanup;
    }
    if (st.st_size < 0 || (uint64_t) st.st_size > max) {
        rc = DIPX_E_SYNTAX;
        goto cleanup;
    }
    /* One spare byte tells us the file grew since fstat.  */
    cap = (size_t) st.st_size + 1;
    buf = secret ? sodium_malloc (cap) : malloc (cap);
    if (!buf) {
        rc = DIPX_E_NOMEM;
        goto cleanup;
    }
    while (len < cap) {
        ssize_t n = read (fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto cleanup;
        if (n == 0)
            break;
        len += (size_t) n;
    }
    if (len == cap) /* changed under us: refuse rather than guess */
        goto cleanup;
    *out = buf;
    *out_len = len;
    buf = NULL;
    rc = 0;
cleanup:
    if (buf && secret) {
        sodium_memzero (buf, cap);
        sodium_free (buf);
    }
    else
        free (buf);
    if (fd >= 0)
        close (fd);
    return rc;
}

/*  fsyncs the directory holding path, so that a new name survives a crash.  */
static int
s_sync_dir (const char *path)
{
    const char *slash = strrchr (path, '/');
    char *dir = slash ? strndup (path, slash == path ? 1 : (size_t) (slash - path)) : strdup (".");
    if (!dir)
        return DIPX_E_NOMEM;
    int rc = DIPX_E_IO;
    int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    /* Some file systems cannot fsync a directory (EINVAL): nothing to do.  */
    if (fd >= 0 && (fsync (fd) == 0 || errno == EINVAL))
        rc = 0;
    if (fd >= 0)
        close (fd);
    free (dir);
    return rc;
}

int
dipx__file_write (const char *path, const void *data, size_t len, unsigned mode, int how)
{
    int rc = DIPX_E_IO;
    int fd = -1;
    char *tmp = NULL;
    const char *made = NULL; /* the name we created, removed on failure */
    if (how == DIPX__WRITE_ATOMIC) {
        size_t path_len = strlen (path);
        tmp = malloc (path_len + sizeof ".tmp.XXXXXX");
        if (!tmp) {
            rc = DIPX_E_NOMEM;
            goto cleanup;
        }
        memcpy (tmp, path, path_len);
        memcpy (tmp + path_len, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
        fd = mkostemp (tmp, O_CLOEXEC);
        made = tmp;
    }
    else {
        fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, (mode_t) mode);
        if (fd < 0 && errno == EEXIST)
            rc = DIPX_E_EXISTS;
        made = path;
    }
    if (fd < 0) {
        made = NULL;
        goto cleanup;
    }
    /* The mode asked for, whatever the umask (mkostemp makes 0600).  */
    if (fchmod (fd, (mode_t) mode) != 0)
        goto cleanup;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write (fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto cleanup;
        p += n;
        left -= (size_t) n;
    }
    if (fsync (fd) != 0)
        goto cleanup;
    int closed = close (fd);
    fd = -1;
    if (closed != 0)
        goto cleanup;
    if (tmp && rename (tmp, path) != 0)
        goto cleanup;
    /* A new file whose directory cannot be synced is removed (its name
       might not survive a crash; a retry must not find it there). A
       replaced one cannot be: the old one is gone, so the error only says
       the rename may not survive a crash.  */
    if (tmp)
        made = NULL;
    rc = s_sync_dir (path);
    if (rc == 0)
        made = NULL;
cleanup:
    if (fd >= 0)
        close (fd);
    if (made)
        unlink (made);
    free (tmp);
    return rc;
}
