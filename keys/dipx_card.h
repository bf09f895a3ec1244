/*  dipx_card.h - an agency card: the public, shareable description of one
    agency, self-signed with its Ed25519 key.

    Card format (text, LF endings, fields in exactly this order, no blank lines,
    no trailing spaces, at most DIPX_MAX_CARD_BYTES):

        dipx-card 1
        id: police.met.brixton
        name: Metropolitan Police, Brixton custody suite
        type: police
        org: MPS01
        area: LBLAM
        enc-key: <Z85 X25519 public key>
        sign-key: <Z85 Ed25519 public key>
        valid-from: 2026-01-01T00:00:00Z
        valid-until: 2028-01-01T00:00:00Z
        self-sig: <Z85 of Ed25519 signature, 80 characters>

    self-sig signs "dipx-v1-card\0" followed by every byte of the card before the
    "self-sig: " line. It proves the card's maker holds the signing key; it
    does not make the card trusted: trust is the operator adding it to the
    registry.
*/
#ifndef DIPX_CARD_H_INCLUDED
#define DIPX_CARD_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "dipx_identity.h"

typedef struct {
    char id[DIPX_MAX_AGENCY_ID + 1];  /* agency id */
    char name[DIPX_MAX_NAME + 1];     /* display name, printable ASCII */
    int type;                         /* dipx_agency_type_t */
    char org[DIPX_MAX_CODE + 1];      /* organisation code [A-Z0-9] */
    char area[DIPX_MAX_CODE + 1];     /* area (DAT) code [A-Z0-9] */
    uint8_t enc_pk[DIPX_KEY_BYTES];   /* X25519 / CURVE public key */
    uint8_t sign_pk[DIPX_KEY_BYTES];  /* Ed25519 public key */
    int64_t valid_from;               /* seconds since the epoch, UTC */
    int64_t valid_until;              /* seconds since the epoch, UTC, > valid_from */
    uint8_t sig[DIPX_SIG_BYTES];      /* self-signature */
} dipx_card_t;

/*  Longest card text dipx_card_format writes (every field at its maximum).  */
#define DIPX_CARD_TEXT_MAX                                                                         \
    (sizeof "dipx-card 1\n" - 1 + sizeof "id: \n" - 1 + DIPX_MAX_AGENCY_ID                         \
     + sizeof "name: \n" - 1 + DIPX_MAX_NAME + sizeof "type: monitoring\n" - 1                     \
     + sizeof "org: \n" - 1 + DIPX_MAX_CODE + sizeof "area: \n" - 1 + DIPX_MAX_CODE                \
     + sizeof "enc-key: \n" - 1 + DIPX_Z85_KEY_LEN + sizeof "sign-key: \n" - 1 + DIPX_Z85_KEY_LEN  \
     + sizeof "valid-from: \n" - 1 + 20 + sizeof "valid-until: \n" - 1 + 20                      \
     + sizeof "self-sig: \n" - 1 + DIPX_SIG_BYTES / 4 * 5)
_Static_assert (DIPX_CARD_TEXT_MAX <= DIPX_MAX_CARD_BYTES, "card limit below largest card");

/*  Parses and checks a card: syntax, field order, charsets, lengths, dates,
    and the self-signature. Returns 0, DIPX_E_SYNTAX or DIPX_E_CARD_SIG; on
    failure *card is zeroed, so nothing unverified is left to use.  */
DIPX_MUST_CHECK int dipx_card_parse (const char *text, size_t len, dipx_card_t *card);

/*  Makes and self-signs a card for identity (fields other than keys and sig
    taken from *card; id, if empty, from identity, and if set it must match).
    Fills in card's keys and sig and writes the text into a malloc'd *out
    (caller owns). DIPX_E_VALUE if a field is out of range or the id differs,
    DIPX_E_NOMEM.  */
int dipx_card_make (const dipx_identity_t *identity, dipx_card_t *card, char **out,
                    size_t *out_len);

/*  Writes a (parsed) card as text into a malloc'd *out (caller owns). Does
    not check the signature. DIPX_E_VALUE if a field is out of range.  */
int dipx_card_format (const dipx_card_t *card, char **out, size_t *out_len);

/*  Reads a card file (at most DIPX_MAX_CARD_BYTES) and parses it. As parse,
    or DIPX_E_IO.  */
DIPX_MUST_CHECK int dipx_card_load (const char *path, dipx_card_t *card);

/*  Writes a card file, created new (O_EXCL) with mode 0644 and fsync'd.
    DIPX_E_EXISTS, DIPX_E_VALUE (as format), DIPX_E_IO.  */
int dipx_card_save (const dipx_card_t *card, const char *path);

/*  RFC 3339 UTC times "YYYY-MM-DDTHH:MM:SSZ", strictly: years 1970-9999,
    real dates only, no leap second. parse returns 0 or DIPX_E_SYNTAX.  */
int dipx_time_parse (const char *text, size_t len, int64_t *secs);
void dipx_time_format (int64_t secs, char out[21]);

/*  Latest time the format can hold, 9999-12-31T23:59:59Z; dipx_time_format
    clamps to [0, DIPX_TIME_MAX] and dipx_time_parse accepts only that range.  */
#define DIPX_TIME_MAX INT64_C (253402300799)

/*  Private to keys/: as dipx_card_parse, and on failure sets *line to the
    1-based line at fault (0 when the whole text is, e.g. too long).  */
DIPX_MUST_CHECK int dipx__card_parse (const char *text, size_t len, dipx_card_t *card, int *line);

#endif
