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

/*  Parses and checks a card: syntax, field order, charsets, lengths, dates,
    and the self-signature. Returns 0, DIPX_E_SYNTAX or DIPX_E_CARD_SIG.  */
int dipx_card_parse (const char *text, size_t len, dipx_card_t *card);

/*  Makes and self-signs a card for identity (fields other than keys and sig
    taken from *card). Writes the text into a malloc'd *out (caller owns).  */
int dipx_card_make (const dipx_identity_t *identity, dipx_card_t *card, char **out,
                    size_t *out_len);

/*  Writes a (parsed) card as text into a malloc'd *out (caller owns).  */
int dipx_card_format (const dipx_card_t *card, char **out, size_t *out_len);

/*  Reads a card file (at most DIPX_MAX_CARD_BYTES) and parses it.  */
int dipx_card_load (const char *path, dipx_card_t *card);

/*  RFC 3339 UTC times "YYYY-MM-DDTHH:MM:SSZ", strictly.  */
int dipx_time_parse (const char *text, size_t len, int64_t *secs);
void dipx_time_format (int64_t secs, char out[21]);

#endif
