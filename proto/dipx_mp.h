/*  dipx_mp.h - bounded msgpack reading and schema-driven maps.

    Every dipx document (frame, envelope, header, sealed plaintext, stored
    record) is decoded in two passes over the caller's buffer, with no
    allocation:
      1. dipx_mp_check walks the structure: valid msgpack, nesting within the
         depth limit, every container count within DIPX_MAX_CONTAINER and
         within the bytes that remain, every length within the buffer, and no
         trailing bytes. A 5-byte header that claims 4 G elements fails here,
         having allocated nothing.
      2. dipx_mp_decode_map reads one map against a schema (a table of fields),
         rejecting wrong types, duplicate, unknown and missing fields, lengths
         outside bounds and values outside their sets.
    Encoding uses msgpack-c's packer, driven by the same schema tables, so one
    table defines a map's decoder, its encoder and (by hand) its PROTOCOL.md
    section.
*/
#ifndef DIPX_MP_H_INCLUDED
#define DIPX_MP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "dipx_error.h"
#include "dipx_limits.h"

/*  Bytes inside a decoded buffer; valid only as long as that buffer.  */
typedef struct {
    const uint8_t *ptr; /* first byte, or NULL when len is 0 */
    size_t len;         /* number of bytes */
} dipx_slice_t;

/*  A read cursor and its ceiling.  */
typedef struct {
    const uint8_t *p;   /* next byte to read */
    const uint8_t *end; /* one past the last readable byte */
} dipx_mp_t;

/*  Field types a schema can hold, and where decode puts them in the struct.  */
typedef enum {
    DIPX_FT_UINT,    /* uint64_t, value in [lo, hi] */
    DIPX_FT_BOOL,    /* bool */
    DIPX_FT_TEXT,    /* char[hi + 1], copied and NUL-terminated, length in [lo, hi] */
    DIPX_FT_ENUM,    /* int: index of the string in names[] */
    DIPX_FT_ENUMSET, /* uint32_t bitmask: array of distinct names[], count in [lo, hi] */
    DIPX_FT_BYTES,   /* uint8_t[hi]: bin of exactly hi bytes (lo == hi) */
    DIPX_FT_SLICE,   /* dipx_slice_t: bin pointing into the input, length in [lo, hi] */
    DIPX_FT_IDLIST,  /* dipx_idlist_t: array of bin16, count in [lo, hi] */
} dipx_ftype_t;

/*  A list of message ids, as carried by ACK.  */
typedef struct {
    uint8_t ids[DIPX_MAX_ACK_IDS][DIPX_ID_BYTES]; /* the ids, in wire order */
    uint32_t count;                               /* how many of ids[] are set */
} dipx_idlist_t;

/*  Validates a TEXT field's characters; returns true if acceptable.  */
typedef bool (dipx_text_check_fn) (const char *s, size_t len);

/*  One field of a map.  */
typedef struct {
    const char *name;            /* key, a msgpack str */
    dipx_ftype_t type;           /* how the value is read and stored */
    bool required;               /* absent → DIPX_E_MISSING_FIELD */
    uint64_t lo, hi;             /* bounds: value, length or count by type */
    size_t off;                  /* offset of the destination in the struct */
    dipx_text_check_fn *check;   /* TEXT only: charset check, or NULL */
    const char *const *names;    /* ENUM/ENUMSET: allowed strings */
    int nnames;                  /* ENUM/ENUMSET: entries in names[] */
} dipx_field_t;

/*  A map's schema: its fields in encoding order. At most DIPX_SCHEMA_MAX
    fields, because `present` and the duplicate check are 32-bit masks.  */
typedef struct {
    const dipx_field_t *fields; /* the table */
    int count;                  /* entries in the table */
} dipx_schema_t;

#define DIPX_SCHEMA_MAX 32

/*  A schema from a static table. The char array of size -1 stops the build if
    the table has more than DIPX_SCHEMA_MAX fields (a _Static_assert cannot sit
    inside an initializer); decode and encode also check at run time, for
    schemas built by hand.  */
#define DIPX_SCHEMA_N(table) (sizeof (table) / sizeof ((table)[0]))
#define DIPX_SCHEMA(table)                                                                         \
    {(table), (int) DIPX_SCHEMA_N (table)                                                          \
                  + 0 * (int) sizeof (char[DIPX_SCHEMA_N (table) <= DIPX_SCHEMA_MAX ? 1 : -1])}

/*  Pass 1: checks that buf[0..len) is exactly one well-formed msgpack value
    nested at most max_depth containers deep. Returns 0 or DIPX_E_MALFORMED,
    _TRUNCATED, _DEPTH, _COUNT or _TRAILING.  */
int dipx_mp_check (const uint8_t *buf, size_t len, int max_depth);

/*  Cursor reads. Each checks the type (DIPX_E_TYPE) and the ceiling
    (DIPX_E_TRUNCATED) and advances past the value on success.  */
int dipx_mp_read_array (dipx_mp_t *r, uint32_t *count);
int dipx_mp_read_map (dipx_mp_t *r, uint32_t *count);
int dipx_mp_read_uint (dipx_mp_t *r, uint64_t *value);
int dipx_mp_read_bool (dipx_mp_t *r, bool *value);
int dipx_mp_read_str (dipx_mp_t *r, const char **str, uint32_t *len);
int dipx_mp_read_bin (dipx_mp_t *r, const uint8_t **bin, uint32_t *len);

/*  Pass 2: reads one map at the cursor into dest according to schema. Sets
    *present to a bitmask of the fields seen (bit i = schema field i). Returns 0
    or the first error met, in key order; missing fields are reported last.
    DIPX_E_INVAL for a schema of more than DIPX_SCHEMA_MAX fields.  */
int dipx_mp_decode_map (dipx_mp_t *r, const dipx_schema_t *schema, void *dest,
                        uint32_t *present);

/*  Checks then decodes a buffer holding exactly one map.  */
int dipx_mp_decode_doc (const uint8_t *buf, size_t len, int max_depth,
                        const dipx_schema_t *schema, void *dest, uint32_t *present);

/*  Packs the map from src: every required field, and each optional field
    whose bit is set in present, in schema order. Returns 0, DIPX_E_NOMEM, or
    DIPX_E_INVAL (enum value out of range, id list over DIPX_MAX_ACK_IDS,
    schema over DIPX_SCHEMA_MAX fields).  */
int dipx_mp_encode_map (msgpack_packer *pk, const dipx_schema_t *schema, const void *src,
                        uint32_t present);

/*  Packs a map into a fresh buffer. On success *out is malloc'd and owned by
    the caller (free()).  */
/*  msgpack-c write callback into a buffer that never grows (data: a
    dipx_mp_fixed_t); a write that does not fit fails.  */
typedef struct {
    uint8_t *buf; /* destination */
    size_t cap;   /* its size */
    size_t len;   /* bytes written */
} dipx_mp_fixed_t;
int dipx_mp_fixed_write (void *data, const char *buf, size_t len);

int dipx_mp_encode_doc (const dipx_schema_t *schema, const void *src, uint32_t present,
                        uint8_t **out, size_t *out_len);

/*  Charset checks used by the schemas (and by cards, policy, config).  */
bool dipx_text_is_agency_id (const char *s, size_t len); /* [a-z0-9][a-z0-9._-]* */
bool dipx_text_is_ident (const char *s, size_t len);     /* [a-z][a-z0-9_]* */
bool dipx_text_is_printable (const char *s, size_t len); /* 0x20..0x7e, no edge spaces */
bool dipx_text_is_code (const char *s, size_t len);      /* [A-Z0-9]+ */

#endif
