/*  dipx_message.c - a received message, and the small public helpers of
    libdipx that need no connection: subject references, message id hex,
    receipt event names and the library version.

    A message owns a copy of its clear header and its opened body. The body is
    personal data: it lives in malloc'd memory (it can be up to 1 MiB, too much
    to lock) and is wiped before it is freed.
*/
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dipx.h"
#include "dipx_client_internal.h"
#include "dipx_frame.h"

struct dipx_message_t {
    dipx_header_t h;  /* clear header as the sender wrote it */
    uint64_t seq;     /* broker sequence number */
    uint64_t count;   /* delivery count: 1 the first time */
    uint8_t *body;    /* opened payload, malloc'd, wiped on destroy */
    size_t body_len;  /* its length */
};

dipx_message_t *
dipx__message_new (const dipx_header_t *h, uint64_t seq, uint64_t count, uint8_t **body,
                   size_t body_len)
{
    dipx_message_t *self = (dipx_message_t *) calloc (1, sizeof *self);
    if (!self) {
        if (*body) {
            sodium_memzero (*body, body_len);
            free (*body);
        }
        *body = NULL;
        return NULL;
    }
    self->h = *h;
    self->seq = seq;
    self->count = count;
    self->body = *body;
    self->body_len = body_len;
    *body = NULL;
    return self;
}

void
dipx_message_destroy (dipx_message_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dipx_message_t *self = *self_p;
    if (self->body) {
        sodium_memzero (self->body, self->body_len);
        free (self->body);
    }
    sodium_memzero (self, sizeof *self);
    free (self);
    *self_p = NULL;
}

const uint8_t *
dipx_message_id (const dipx_message_t *self)
{
    return self->h.id;
}

const char *
dipx_message_from (const dipx_message_t *self)
{
    return self->h.from;
}

const char *
dipx_message_to (const dipx_message_t *self)
{
    return self->h.to;
}

const char *
dipx_message_type (const dipx_message_t *self)
{
    return self->h.type;
}

const uint8_t *
dipx_message_subject (const dipx_message_t *self)
{
    return self->h.subj;
}

int
dipx_message_basis (const dipx_message_t *self)
{
    return self->h.basis;
}

const char *
dipx_message_ref (const dipx_message_t *self)
{
    return self->h.ref;
}

int
dipx_message_purpose (const dipx_message_t *self)
{
    return self->h.purpose;
}

uint32_t
dipx_message_categories (const dipx_message_t *self)
{
    return self->h.cats;
}

uint64_t
dipx_message_created (const dipx_message_t *self)
{
    return self->h.created;
}

uint64_t
dipx_message_expires (const dipx_message_t *self)
{
    return self->h.expires;
}

uint64_t
dipx_message_seq (const dipx_message_t *self)
{
    return self->seq;
}

uint64_t
dipx_message_delivery_count (const dipx_message_t *self)
{
    return self->count;
}

bool
dipx_message_is_redelivered (const dipx_message_t *self)
{
    return self->count > 1;
}

const uint8_t *
dipx_message_body (const dipx_message_t *self)
{
    return self->body;
}

size_t
dipx_message_body_len (const dipx_message_t *self)
{
    return self->body_len;
}

/*  Longest identifier hashed into a subject reference. Canonical forms are
    short (an NHS number is 10 digits, attributors about 20 characters); the
    bound only stops a caller hashing a document by mistake.  */
#define S_MAX_SUBJECT_IDENT 256
#define S_MAX_SUBJECT_KIND 32

int
dipx_subject_ref (const uint8_t programme_key[32], const char *kind, const char *identifier,
                  uint8_t out[DIPX_SUBJECT_BYTES])
{
    if (!programme_key || !kind || !identifier || !out)
        return DIPX_E_INVAL;
    size_t klen = strnlen (kind, S_MAX_SUBJECT_KIND + 1);
    size_t ilen = strnlen (identifier, S_MAX_SUBJECT_IDENT + 1);
    if (klen == 0 || klen > S_MAX_SUBJECT_KIND || !dipx_text_is_ident (kind, klen) || ilen == 0
        || ilen > S_MAX_SUBJECT_IDENT)
        return DIPX_E_INVAL;
    if (sodium_init () < 0)
        return DIPX_E_CRYPTO;
    static const char label[] = "dipx-v1-subject"; /* hashed with its NUL */
    crypto_generichash_state st;
    int rc = DIPX_E_CRYPTO;
    if (crypto_generichash_init (&st, programme_key, 32, DIPX_SUBJECT_BYTES) == 0
        && crypto_generichash_update (&st, (const uint8_t *) label, sizeof label) == 0
        && crypto_generichash_update (&st, (const uint8_t *) kind, klen + 1) == 0
        && crypto_generichash_update (&st, (const uint8_t *) identifier, ilen) == 0
        && crypto_generichash_final (&st, out, DIPX_SUBJECT_BYTES) == 0)
        rc = 0;
    sodium_memzero (&st, sizeof st); /* the state holds the keyed prefix */
    return rc;
}

void
dipx_id_to_hex (const uint8_t id[DIPX_MESSAGE_ID_BYTES], char out[33])
{
    sodium_bin2hex (out, 33, id, DIPX_MESSAGE_ID_BYTES);
}

int
dipx_id_from_hex (const char *hex, uint8_t id[DIPX_MESSAGE_ID_BYTES])
{
    if (!hex || !id || strnlen (hex, 2 * DIPX_MESSAGE_ID_BYTES + 1) != 2 * DIPX_MESSAGE_ID_BYTES)
        return DIPX_E_INVAL;
    uint8_t bin[DIPX_MESSAGE_ID_BYTES];
    size_t bin_len = 0;
    const char *end = NULL;
    if (sodium_hex2bin (bin, sizeof bin, hex, 2 * DIPX_MESSAGE_ID_BYTES, NULL, &bin_len, &end) != 0
        || bin_len != DIPX_MESSAGE_ID_BYTES || end != hex + 2 * DIPX_MESSAGE_ID_BYTES)
        return DIPX_E_INVAL;
    memcpy (id, bin, sizeof bin);
    return 0;
}

const char *
dipx_receipt_event_name (int event)
{
    return dipx_event_name (event);
}

int
dipx_version (void)
{
    return DIPX_VERSION;
}
