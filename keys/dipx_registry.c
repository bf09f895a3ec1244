/*  dipx_registry.c - the agencies a broker trusts: their cards and status,
    with O(1) lookup by agency id and by CURVE public key.

    Design. Entries sit in one array in file order (so a save rewrites the
    file in the order the operator added cards). Three open-addressed hash
    tables with linear probing map agency id, encryption key and signing key
    to an entry's index + 1 (0 marks an empty slot). Entries are never
    removed (revocation is a status, and a revoked key must stay known so it
    can never come back under another name), so the tables need no
    tombstones. They are kept at most half full, which bounds every probe
    sequence and guarantees an empty slot to stop at.

    Slots are chosen with SipHash (crypto_shorthash) under a key drawn at
    random for each registry: the ids and keys are chosen by outsiders (a ZAP
    request carries whatever key the peer presents), and an unkeyed hash would
    let them pile lookups into one probe chain.

    The file format is a header line, then per entry a blank line, the card
    and two status lines. The parser is strict like the card parser, checks
    every card's self-signature, reports the line at fault, and refuses
    broker cards and duplicates exactly as dipx_registry_add does, so what
    one accepts the other accepts too. dipx_registry_add re-verifies a card
    before taking it, because a registry that saves a card it could not load
    again would lock the broker out at its next start.
*/
#include "dipx_registry.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "dipx_types.h"

#define S_REGISTRY_HEADER "dipx-registry 1"

/*  Longest text of one entry: blank line, card, status and changed lines.  */
#define S_ENTRY_MAX                                                                                \
    (1 + DIPX_CARD_TEXT_MAX + sizeof "status: suspended\n" - 1 + sizeof "changed: \n" - 1 + 20)
_Static_assert (sizeof S_REGISTRY_HEADER + (uint64_t) S_ENTRY_MAX * DIPX_MAX_AGENCIES
                    <= DIPX_MAX_REGISTRY_BYTES,
                "registry byte limit below a full registry of the largest cards");
_Static_assert (DIPX_MAX_AGENCIES < UINT32_MAX / 4, "slots hold an index + 1 in 32 bits");

enum { S_BY_ID, S_BY_ENC, S_BY_SIGN, S_TABLES };

#define S_MIN_SLOTS 64 /* a power of two */

static const char *const s_status_names[DIPX_STATUS_COUNT] = {"active", "suspended", "revoked"};

struct dipx_registry_t {
    dipx_entry_t *entries;                       /* in file order */
    size_t size;                                 /* entries in use */
    size_t cap;                                  /* entries allocated */
    uint32_t *tables[S_TABLES];                  /* entry index + 1 per slot, 0 = empty */
    size_t mask;                                 /* slots per table - 1; slots a power of 2 */
    uint8_t hash_key[crypto_shorthash_KEYBYTES]; /* this registry's SipHash key */
};

const char *
dipx_entry_unusable (const dipx_entry_t *e, int64_t now)
{
    if (e->status == DIPX_STATUS_SUSPENDED)
        return "agency suspended";
    if (e->status != DIPX_STATUS_ACTIVE)
        return "agency revoked";
    /* A card made a little ahead of this clock (keygen sets valid-from to
       its own now) is valid: the protocol's clock skew allowance.  */
    if (now + (int64_t) (DIPX_MAX_CLOCK_SKEW_MS / 1000) < e->card.valid_from)
        return "card not yet valid";
    if (now >= e->card.valid_until)
        return "card expired";
    return NULL;
}

dipx_registry_t *
dipx_registry_new (void)
{
    if (sodium_init () < 0)
        return NULL;
    dipx_registry_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    /* One block holds the three tables; tables[0] owns it.  */
    uint32_t *slots = calloc ((size_t) S_TABLES * S_MIN_SLOTS, sizeof *slots);
    if (!slots) {
        free (self);
        return NULL;
    }
    for (int t = 0; t < S_TABLES; t++)
        self->tables[t] = slots + (size_t) t * S_MIN_SLOTS;
    self->mask = S_MIN_SLOTS - 1;
    crypto_shorthash_keygen (self->hash_key);
    return self;
}

void
dipx_registry_destroy (dipx_registry_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dipx_registry_t *self = *self_p;
    free (self->tables[0]);
    free (self->entries);
    free (self);
    *self_p = NULL;
}

/*  Hash tables ------------------------------------------------------------*/

/*  The bytes table t is keyed on, for entry e.  */
static void
s_entry_key (const dipx_entry_t *e, int t, const void **key, size_t *len)
{
    if (t == S_BY_ID) {
        *key = e->card.id;
        *len = strlen (e->card.id);
    }
    else {
        *key = t == S_BY_ENC ? e->card.enc_pk : e->card.sign_pk;
        *len = DIPX_KEY_BYTES;
    }
}

/*  The slot of table t holding key, or the empty slot where it would go.  */
static uint32_t *
s_slot (const dipx_registry_t *self, int t, const void *key, size_t len)
{
    uint8_t hash[crypto_shorthash_BYTES];
    crypto_shorthash (hash, key, len, self->hash_key);
    uint64_t h;
    memcpy (&h, hash, sizeof h);
    for (size_t i = (size_t) h & self->mask;; i = (i + 1) & self->mask) {
        uint32_t *slot = &self->tables[t][i];
        if (*slot == 0)
            return slot;
        const void *k;
        size_t k_len;
        s_entry_key (&self->entries[*slot - 1], t, &k, &k_len);
        if (k_len == len && memcmp (k, key, len) == 0)
            return slot;
    }
}

/*  Makes room for one more entry: the array, and tables kept half empty.  */
static int
s_reserve (dipx_registry_t *self)
{
    if (self->size == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        if (cap > DIPX_MAX_AGENCIES)
            cap = DIPX_MAX_AGENCIES;
        dipx_entry_t *entries = realloc (self->entries, cap * sizeof *entries);
        if (!entries)
            return DIPX_E_NOMEM;
        self->entries = entries;
        self->cap = cap;
    }
    size_t slots = self->mask + 1;
    if ((self->size + 1) * 2 <= slots)
        return 0;
    slots *= 2;
    uint32_t *block = calloc ((size_t) S_TABLES * slots, sizeof *block);
    if (!block)
        return DIPX_E_NOMEM;
    free (self->tables[0]);
    for (int t = 0; t < S_TABLES; t++)
        self->tables[t] = block + (size_t) t * slots;
    self->mask = slots - 1;
    for (size_t i = 0; i < self->size; i++)
        for (int t = 0; t < S_TABLES; t++) {
            const void *k;
            size_t k_len;
            s_entry_key (&self->entries[i], t, &k, &k_len);
            *s_slot (self, t, k, k_len) = (uint32_t) (i + 1);
        }
    return 0;
}

int
dipx__registry_insert (dipx_registry_t *self, const dipx_card_t *card, int status,
                       int64_t changed)
{
    if (!self || !card)
        return DIPX_E_INVAL;
    if (card->type == DIPX_AGENCY_BROKER || !dipx_agency_type_name (card->type) || status < 0
        || status >= DIPX_STATUS_COUNT || memchr (card->id, '\0', sizeof card->id) == NULL)
        return DIPX_E_VALUE;
    if (self->size >= DIPX_MAX_AGENCIES)
        return DIPX_E_COUNT;
    int rc = s_reserve (self);
    if (rc != 0)
        return rc;
    dipx_entry_t *e = &self->entries[self->size];
    memset (e, 0, sizeof *e);
    e->card = *card;
    e->status = status;
    e->changed = changed;
    uint32_t *slots[S_TABLES];
    for (int t = 0; t < S_TABLES; t++) {
        const void *k;
        size_t k_len;
        s_entry_key (e, t, &k, &k_len);
        slots[t] = s_slot (self, t, k, k_len);
        if (*slots[t] != 0)
            return DIPX_E_EXISTS;
    }
    self->size++;
    for (int t = 0; t < S_TABLES; t++)
        *slots[t] = (uint32_t) self->size;
    return 0;
}

int
dipx_registry_add (dipx_registry_t *self, const dipx_card_t *card)
{
    if (!self || !card)
        return DIPX_E_INVAL;
    if (card->type == DIPX_AGENCY_BROKER)
        return DIPX_E_VALUE;
    /* Round-trip through the text: checks every field and the signature
       exactly as the next load will.  */
    char *text = NULL;
    size_t len = 0;
    dipx_card_t checked;
    int rc = dipx_card_format (card, &text, &len);
    if (rc == 0)
        rc = dipx_card_parse (text, len, &checked);
    if (rc == 0)
        rc = dipx__registry_insert (self, &checked, DIPX_STATUS_ACTIVE, (int64_t) time (NULL));
    free (text);
    return rc;
}

int
dipx_registry_set_status (dipx_registry_t *self, const char *id, int status)
{
    if (!self || !id)
        return DIPX_E_INVAL;
    if (status < 0 || status >= DIPX_STATUS_COUNT)
        return DIPX_E_VALUE;
    dipx_entry_t *e = (dipx_entry_t *) dipx_registry_by_id (self, id);
    if (!e)
        return DIPX_E_NOT_FOUND;
    if (e->status == DIPX_STATUS_REVOKED && status != DIPX_STATUS_REVOKED)
        return DIPX_E_VALUE;
    if (e->status != status) {
        e->status = status;
        e->changed = (int64_t) time (NULL);
    }
    return 0;
}

const dipx_entry_t *
dipx_registry_by_id (const dipx_registry_t *self, const char *id)
{
    if (!self || !id)
        return NULL;
    size_t len = strnlen (id, DIPX_MAX_AGENCY_ID + 1);
    if (len == 0 || len > DIPX_MAX_AGENCY_ID)
        return NULL;
    uint32_t slot = *s_slot (self, S_BY_ID, id, len);
    return slot ? &self->entries[slot - 1] : NULL;
}

const dipx_entry_t *
dipx_registry_by_enc_key (const dipx_registry_t *self, const uint8_t key[DIPX_KEY_BYTES])
{
    if (!self || !key)
        return NULL;
    uint32_t slot = *s_slot (self, S_BY_ENC, key, DIPX_KEY_BYTES);
    return slot ? &self->entries[slot - 1] : NULL;
}

size_t
dipx_registry_size (const dipx_registry_t *self)
{
    return self ? self->size : 0;
}

const dipx_entry_t *
dipx_registry_at (const dipx_registry_t *self, size_t i)
{
    return self && i < self->size ? &self->entries[i] : NULL;
}

/*  Status names -----------------------------------------------------------*/

static int
s_status_parse (const char *name, size_t len)
{
    for (int i = 0; i < DIPX_STATUS_COUNT; i++)
        if (strlen (s_status_names[i]) == len && memcmp (s_status_names[i], name, len) == 0)
            return i;
    return DIPX_E_VALUE;
}

const char *
dipx_status_name (int status)
{
    return status >= 0 && status < DIPX_STATUS_COUNT ? s_status_names[status] : NULL;
}

int
dipx_status_parse (const char *name)
{
    return name ? s_status_parse (name, strlen (name)) : DIPX_E_VALUE;
}

/*  Text -------------------------------------------------------------------*/

int
dipx_registry_parse (const char *text, size_t len, dipx_registry_t **out, int *line)
{
    int line_dummy;
    if (!line)
        line = &line_dummy;
    *line = 0;
    if (!out || (!text && len))
        return DIPX_E_INVAL;
    *out = NULL;
    if (len > DIPX_MAX_REGISTRY_BYTES)
        return DIPX_E_SYNTAX;
    dipx_registry_t *self = dipx_registry_new ();
    if (!self)
        return DIPX_E_NOMEM;

    int rc = DIPX_E_SYNTAX;
    dipx__lines_t lines = {text, len, 0, 0};
    const char *v;
    size_t v_len;
    if (!dipx__lines_next (&lines, &v, &v_len) || v_len != strlen (S_REGISTRY_HEADER)
        || memcmp (v, S_REGISTRY_HEADER, v_len) != 0)
        goto cleanup;
    while (lines.pos < len) {
        rc = DIPX_E_SYNTAX;
        if (!dipx__lines_next (&lines, &v, &v_len) || v_len != 0)
            goto cleanup;
        /* A card is eleven lines; its own parser checks what they say.  */
        int card_line = lines.line + 1;
        size_t card_start = lines.pos;
        for (int i = 0; i < 11; i++)
            if (!dipx__lines_next (&lines, &v, &v_len))
                goto cleanup;
        dipx_card_t card;
        int at = 0;
        rc = dipx__card_parse (text + card_start, lines.pos - card_start, &card, &at);
        if (rc != 0) {
            lines.line = at ? card_line + at - 1 : card_line;
            goto cleanup;
        }
        rc = DIPX_E_SYNTAX;
        int status;
        int64_t changed;
        if (!dipx__lines_field (&lines, "status", &v, &v_len)
            || (status = s_status_parse (v, v_len)) < 0)
            goto cleanup;
        if (!dipx__lines_field (&lines, "changed", &v, &v_len)
            || dipx_time_parse (v, v_len, &changed) != 0)
            goto cleanup;
        rc = dipx__registry_insert (self, &card, status, changed);
        if (rc != 0) {
            lines.line = card_line;
            goto cleanup;
        }
    }
    rc = 0;
    *out = self;
    self = NULL;
cleanup:
    if (rc != 0)
        *line = lines.line;
    dipx_registry_destroy (&self);
    return rc;
}

int
dipx_registry_load (const char *path, dipx_registry_t **out, int *line)
{
    if (line)
        *line = 0;
    if (!path || !out)
        return DIPX_E_INVAL;
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = dipx_registry_read (path, &text, &len);
    if (rc == 0)
        rc = dipx_registry_parse (text, len, out, line);
    free (text);
    return rc;
}

int
dipx_registry_read (const char *path, char **text, size_t *len)
{
    if (!path || !text || !len)
        return DIPX_E_INVAL;
    return dipx__file_read (path, DIPX_MAX_REGISTRY_BYTES, false, text, len);
}

int
dipx_registry_format (const dipx_registry_t *self, char **out, size_t *out_len)
{
    if (!self || !out)
        return DIPX_E_INVAL;
    *out = NULL;
    /* Sized for the worst case up front: at most ~30 MB for a full registry
       (see the assertion at the top), and no growth logic to get wrong.  */
    size_t cap = sizeof S_REGISTRY_HEADER + 1 + self->size * S_ENTRY_MAX;
    char *buf = malloc (cap);
    if (!buf)
        return DIPX_E_NOMEM;
    size_t len = 0;
    int rc = 0;
    memcpy (buf, S_REGISTRY_HEADER "\n", sizeof S_REGISTRY_HEADER);
    len += sizeof S_REGISTRY_HEADER;
    for (size_t i = 0; i < self->size && rc == 0; i++) {
        const dipx_entry_t *e = &self->entries[i];
        char *card = NULL;
        size_t card_len = 0;
        rc = dipx_card_format (&e->card, &card, &card_len);
        if (rc != 0)
            break;
        char when[21];
        dipx_time_format (e->changed, when);
        buf[len++] = '\n';
        memcpy (buf + len, card, card_len);
        len += card_len;
        len += (size_t) sprintf (buf + len, "status: %s\nchanged: %s\n",
                                 s_status_names[e->status], when);
        free (card);
    }
    if (rc == 0) {
        buf[len] = '\0';
        *out = buf;
        if (out_len)
            *out_len = len;
        buf = NULL;
    }
    free (buf);
    return rc;
}

/*  Formats and writes with how (DIPX__WRITE_*).  */
static int
s_write (const dipx_registry_t *self, const char *path, unsigned mode, int how)
{
    if (!self || !path)
        return DIPX_E_INVAL;
    char *text = NULL;
    size_t len = 0;
    int rc = dipx_registry_format (self, &text, &len);
    if (rc == 0)
        rc = dipx__file_write (path, text, len, mode, how);
    free (text);
    return rc;
}

int
dipx_registry_save (const dipx_registry_t *self, const char *path)
{
    struct stat st;
    unsigned mode = path && stat (path, &st) == 0 ? (unsigned) (st.st_mode & 0777) : 0644;
    return s_write (self, path, mode, DIPX__WRITE_ATOMIC);
}

int
dipx_registry_create (const dipx_registry_t *self, const char *path)
{
    return s_write (self, path, 0644, DIPX__WRITE_NEW);
}
