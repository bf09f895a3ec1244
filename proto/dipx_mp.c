/*  dipx_mp.c - bounded msgpack reading and schema-driven maps.

    Why not msgpack-c's unpacker for reading: it allocates storage for a
    container's elements from the count in the container's header, before it
    has seen a single element, so a short hostile frame can ask for gigabytes.
    Our documents are small and flat, so a cursor that checks every read
    against its ceiling, and a first pass that proves the structure sound,
    decode them with no allocation at all. Writing uses msgpack-c's packer.

    Invariant: nothing in this file reads at or past r->end, and no count or
    length from the input is used before it is compared with what remains.
*/
#include "dipx_mp.h"

#include <stdlib.h>
#include <string.h>

static uint64_t
s_be (const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*  Reads an n-byte big-endian length or count that follows a type byte.  */
static int
s_take_be (const uint8_t **p, const uint8_t *end, int n, uint64_t *v)
{
    if (end - *p < n)
        return DIPX_E_TRUNCATED;
    *v = s_be (*p, n);
    *p += n;
    return 0;
}

int
dipx_mp_check (const uint8_t *buf, size_t len, int max_depth)
{
    if (max_depth > DIPX_MAX_DEPTH)
        max_depth = DIPX_MAX_DEPTH;
    if (len == 0) /* before any pointer arithmetic: buf may be NULL */
        return DIPX_E_TRUNCATED;
    const uint8_t *p = buf;
    const uint8_t *end = buf + len;
    uint64_t left[DIPX_MAX_DEPTH + 1]; /* values still to read per open level */
    int depth = 0;                     /* containers open */
    left[0] = 1;

    for (;;) {
        while (depth > 0 && left[depth] == 0)
            depth--;
        if (left[depth] == 0)
            break;
        left[depth]--;
        if (p >= end)
            return DIPX_E_TRUNCATED;

        uint8_t b = *p++;
        uint64_t skip = 0;       /* payload bytes after the header */
        uint64_t elements = 0;   /* values inside a container */
        bool container = false;
        int rc = 0;

        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            ; /* fixint, nil, bool: the type byte is the value */
        else if (b >= 0x80 && b <= 0x8f) {
            container = true;
            elements = (uint64_t) (b & 0x0f) * 2;
        }
        else if (b >= 0x90 && b <= 0x9f) {
            container = true;
            elements = b & 0x0f;
        }
        else if (b >= 0xa0 && b <= 0xbf)
            skip = b & 0x1f;
        else
            switch (b) {
            case 0xc4: case 0xd9: rc = s_take_be (&p, end, 1, &skip); break;
            case 0xc5: case 0xda: rc = s_take_be (&p, end, 2, &skip); break;
            case 0xc6: case 0xdb: rc = s_take_be (&p, end, 4, &skip); break;
            case 0xc7: rc = s_take_be (&p, end, 1, &skip); skip += 1; break;
            case 0xc8: rc = s_take_be (&p, end, 2, &skip); skip += 1; break;
            case 0xc9: rc = s_take_be (&p, end, 4, &skip); skip += 1; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: container = true; rc = s_take_be (&p, end, 2, &elements); break;
            case 0xdd: container = true; rc = s_take_be (&p, end, 4, &elements); break;
            case 0xde:
                container = true;
                rc = s_take_be (&p, end, 2, &elements);
                elements *= 2;
                break;
            case 0xdf:
                container = true;
                rc = s_take_be (&p, end, 4, &elements);
                elements *= 2;
                break;
            default: /* 0xc1 is never used */
                return DIPX_E_MALFORMED;
            }
        if (rc)
            return rc;
        if (container) {
            bool is_map = (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
            if (depth + 1 > max_depth)
                return DIPX_E_DEPTH;
            if ((is_map ? elements / 2 : elements) > DIPX_MAX_CONTAINER)
                return DIPX_E_COUNT;
            if (elements > (uint64_t) (end - p))
                return DIPX_E_TRUNCATED; /* every value takes at least one byte */
            left[++depth] = elements;
        }
        else if (skip > (uint64_t) (end - p))
            return DIPX_E_TRUNCATED;
        else
            p += skip;
    }
    return p == end ? 0 : DIPX_E_TRAILING;
}

/*  Reads a container header of the given family (map or array).  */
static int
s_read_container (dipx_mp_t *r, bool map, uint32_t *count)
{
    if (r->p >= r->end)
        return DIPX_E_TRUNCATED;
    uint8_t b = *r->p;
    uint8_t fix_lo = map ? 0x80 : 0x90;
    uint8_t b16 = map ? 0xde : 0xdc;
    uint64_t n;
    const uint8_t *p = r->p + 1;
    if (b >= fix_lo && b <= fix_lo + 0x0f)
        n = b & 0x0f;
    else if (b == b16 || b == b16 + 1) {
        int rc = s_take_be (&p, r->end, b == b16 ? 2 : 4, &n);
        if (rc)
            return rc;
    }
    else
        return DIPX_E_TYPE;
    if (n > DIPX_MAX_CONTAINER)
        return DIPX_E_COUNT;
    r->p = p;
    *count = (uint32_t) n;
    return 0;
}

int
dipx_mp_read_array (dipx_mp_t *r, uint32_t *count)
{
    return s_read_container (r, false, count);
}

int
dipx_mp_read_map (dipx_mp_t *r, uint32_t *count)
{
    return s_read_container (r, true, count);
}

int
dipx_mp_read_uint (dipx_mp_t *r, uint64_t *value)
{
    if (r->p >= r->end)
        return DIPX_E_TRUNCATED;
    uint8_t b = *r->p;
    const uint8_t *p = r->p + 1;
    int n;
    if (b <= 0x7f) {
        *value = b;
        r->p = p;
        return 0;
    }
    switch (b) {
    case 0xcc: n = 1; break;
    case 0xcd: n = 2; break;
    case 0xce: n = 4; break;
    case 0xcf: n = 8; break;
    default: return DIPX_E_TYPE;
    }
    int rc = s_take_be (&p, r->end, n, value);
    if (rc == 0)
        r->p = p;
    return rc;
}

int
dipx_mp_read_bool (dipx_mp_t *r, bool *value)
{
    if (r->p >= r->end)
        return DIPX_E_TRUNCATED;
    if (*r->p != 0xc2 && *r->p != 0xc3)
        return DIPX_E_TYPE;
    *value = *r->p == 0xc3;
    r->p++;
    return 0;
}

/*  Reads a str (is_str) or bin header and returns its bytes in place.  */
static int
s_read_raw (dipx_mp_t *r, bool is_str, const uint8_t **bytes, uint32_t *len)
{
    if (r->p >= r->end)
        return DIPX_E_TRUNCATED;
    uint8_t b = *r->p;
    const uint8_t *p = r->p + 1;
    uint64_t n;
    int w;
    if (is_str && b >= 0xa0 && b <= 0xbf) {
        n = b & 0x1f;
        w = 0;
    }
    else if (b == (is_str ? 0xd9 : 0xc4))
        w = 1;
    else if (b == (is_str ? 0xda : 0xc5))
        w = 2;
    else if (b == (is_str ? 0xdb : 0xc6))
        w = 4;
    else
        return DIPX_E_TYPE;
    if (w) {
        int rc = s_take_be (&p, r->end, w, &n);
        if (rc)
            return rc;
    }
    if (n > (uint64_t) (r->end - p))
        return DIPX_E_TRUNCATED;
    *bytes = p;
    *len = (uint32_t) n;
    r->p = p + n;
    return 0;
}

int
dipx_mp_read_str (dipx_mp_t *r, const char **str, uint32_t *len)
{
    return s_read_raw (r, true, (const uint8_t **) str, len);
}

int
dipx_mp_read_bin (dipx_mp_t *r, const uint8_t **bin, uint32_t *len)
{
    return s_read_raw (r, false, bin, len);
}

static int
s_lookup_name (const dipx_field_t *f, const char *s, uint32_t len)
{
    for (int i = 0; i < f->nnames; i++)
        if (strlen (f->names[i]) == len && memcmp (f->names[i], s, len) == 0)
            return i;
    return -1;
}

/*  Reads one value for field f into dest.  */
static int
s_decode_field (dipx_mp_t *r, const dipx_field_t *f, uint8_t *dest)
{
    int rc;
    uint32_t len, count;
    const char *s;
    const uint8_t *b;
    switch (f->type) {
    case DIPX_FT_UINT: {
        uint64_t v;
        if ((rc = dipx_mp_read_uint (r, &v)))
            return rc;
        if (v < f->lo || v > f->hi)
            return DIPX_E_VALUE;
        memcpy (dest, &v, sizeof v);
        return 0;
    }
    case DIPX_FT_BOOL: {
        bool v;
        if ((rc = dipx_mp_read_bool (r, &v)))
            return rc;
        memcpy (dest, &v, sizeof v);
        return 0;
    }
    case DIPX_FT_TEXT:
        if ((rc = dipx_mp_read_str (r, &s, &len)))
            return rc;
        if (len < f->lo || len > f->hi)
            return DIPX_E_FIELD_LENGTH;
        if (memchr (s, 0, len) || (f->check && !f->check (s, len)))
            return DIPX_E_VALUE;
        memcpy (dest, s, len);
        dest[len] = 0;
        return 0;
    case DIPX_FT_ENUM: {
        if ((rc = dipx_mp_read_str (r, &s, &len)))
            return rc;
        int idx = s_lookup_name (f, s, len);
        if (idx < 0)
            return DIPX_E_VALUE;
        memcpy (dest, &idx, sizeof idx);
        return 0;
    }
    case DIPX_FT_ENUMSET: {
        if ((rc = dipx_mp_read_array (r, &count)))
            return rc;
        if (count < f->lo || count > f->hi)
            return DIPX_E_COUNT;
        uint32_t mask = 0;
        for (uint32_t i = 0; i < count; i++) {
            if ((rc = dipx_mp_read_str (r, &s, &len)))
                return rc;
            int idx = s_lookup_name (f, s, len);
            if (idx < 0 || (mask & (1u << idx)))
                return DIPX_E_VALUE; /* unknown or repeated member */
            mask |= 1u << idx;
        }
        memcpy (dest, &mask, sizeof mask);
        return 0;
    }
    case DIPX_FT_BYTES:
        if ((rc = dipx_mp_read_bin (r, &b, &len)))
            return rc;
        if (len != f->hi)
            return DIPX_E_FIELD_LENGTH;
        memcpy (dest, b, len);
        return 0;
    case DIPX_FT_SLICE: {
        if ((rc = dipx_mp_read_bin (r, &b, &len)))
            return rc;
        if (len < f->lo || len > f->hi)
            return DIPX_E_FIELD_LENGTH;
        dipx_slice_t sl = {len ? b : NULL, len};
        memcpy (dest, &sl, sizeof sl);
        return 0;
    }
    case DIPX_FT_IDLIST: {
        dipx_idlist_t *list = (dipx_idlist_t *) (void *) dest;
        if ((rc = dipx_mp_read_array (r, &count)))
            return rc;
        if (count < f->lo || count > f->hi || count > DIPX_MAX_ACK_IDS)
            return DIPX_E_COUNT;
        for (uint32_t i = 0; i < count; i++) {
            if ((rc = dipx_mp_read_bin (r, &b, &len)))
                return rc;
            if (len != DIPX_ID_BYTES)
                return DIPX_E_FIELD_LENGTH;
            memcpy (list->ids[i], b, DIPX_ID_BYTES);
        }
        list->count = count;
        return 0;
    }
    }
    return DIPX_E_TYPE;
}

int
dipx_mp_decode_map (dipx_mp_t *r, const dipx_schema_t *schema, void *dest, uint32_t *present)
{
    uint32_t n, seen = 0;
    if (schema->count > DIPX_SCHEMA_MAX)
        return DIPX_E_INVAL;
    int rc = dipx_mp_read_map (r, &n);
    if (rc)
        return rc;
    if (n > DIPX_MAX_FIELDS)
        return DIPX_E_COUNT;
    for (uint32_t i = 0; i < n; i++) {
        const char *key;
        uint32_t klen;
        if ((rc = dipx_mp_read_str (r, &key, &klen)))
            return rc;
        int fi = -1;
        for (int j = 0; j < schema->count; j++)
            if (strlen (schema->fields[j].name) == klen
                && memcmp (schema->fields[j].name, key, klen) == 0) {
                fi = j;
                break;
            }
        if (fi < 0)
            return DIPX_E_UNKNOWN_FIELD;
        if (seen & (1u << fi))
            return DIPX_E_DUP_FIELD;
        seen |= 1u << fi;
        const dipx_field_t *f = &schema->fields[fi];
        if ((rc = s_decode_field (r, f, (uint8_t *) dest + f->off)))
            return rc;
    }
    for (int j = 0; j < schema->count; j++)
        if (schema->fields[j].required && !(seen & (1u << j)))
            return DIPX_E_MISSING_FIELD;
    if (present)
        *present = seen;
    return 0;
}

int
dipx_mp_decode_doc (const uint8_t *buf, size_t len, int max_depth, const dipx_schema_t *schema,
                    void *dest, uint32_t *present)
{
    int rc = dipx_mp_check (buf, len, max_depth);
    if (rc)
        return rc;
    dipx_mp_t r = {buf, buf + len};
    return dipx_mp_decode_map (&r, schema, dest, present);
}

/*  msgpack-c's pack functions return 0 or the write callback's error (-1
    from sbuffer when realloc fails).  */
#define PK(call)                                                                                   \
    do {                                                                                           \
        if ((call) != 0)                                                                           \
            return DIPX_E_NOMEM;                                                                   \
    } while (0)

static int
s_pack_str (msgpack_packer *pk, const char *s)
{
    size_t len = strlen (s);
    PK (msgpack_pack_str (pk, len));
    PK (msgpack_pack_str_body (pk, s, len));
    return 0;
}

static int
s_encode_field (msgpack_packer *pk, const dipx_field_t *f, const uint8_t *src)
{
    switch (f->type) {
    case DIPX_FT_UINT: {
        uint64_t v;
        memcpy (&v, src, sizeof v);
        PK (msgpack_pack_uint64 (pk, v));
        return 0;
    }
    case DIPX_FT_BOOL: {
        bool v;
        memcpy (&v, src, sizeof v);
        PK (v ? msgpack_pack_true (pk) : msgpack_pack_false (pk));
        return 0;
    }
    case DIPX_FT_TEXT: return s_pack_str (pk, (const char *) src);
    case DIPX_FT_ENUM: {
        int idx;
        memcpy (&idx, src, sizeof idx);
        if (idx < 0 || idx >= f->nnames)
            return DIPX_E_INVAL;
        return s_pack_str (pk, f->names[idx]);
    }
    case DIPX_FT_ENUMSET: {
        uint32_t mask, count = 0;
        memcpy (&mask, src, sizeof mask);
        for (int i = 0; i < f->nnames; i++)
            count += (mask >> i) & 1u;
        PK (msgpack_pack_array (pk, count));
        for (int i = 0; i < f->nnames; i++)
            if (mask & (1u << i)) {
                int rc = s_pack_str (pk, f->names[i]);
                if (rc)
                    return rc;
            }
        return 0;
    }
    case DIPX_FT_BYTES:
        PK (msgpack_pack_bin_with_body (pk, src, (size_t) f->hi));
        return 0;
    case DIPX_FT_SLICE: {
        dipx_slice_t sl;
        memcpy (&sl, src, sizeof sl);
        PK (msgpack_pack_bin_with_body (pk, sl.ptr, sl.len));
        return 0;
    }
    case DIPX_FT_IDLIST: {
        const dipx_idlist_t *list = (const dipx_idlist_t *) (const void *) src;
        if (list->count > DIPX_MAX_ACK_IDS)
            return DIPX_E_INVAL; /* ids[] holds no more: never read past it */
        PK (msgpack_pack_array (pk, list->count));
        for (uint32_t i = 0; i < list->count; i++)
            PK (msgpack_pack_bin_with_body (pk, list->ids[i], DIPX_ID_BYTES));
        return 0;
    }
    }
    return DIPX_E_INVAL;
}

int
dipx_mp_encode_map (msgpack_packer *pk, const dipx_schema_t *schema, const void *src,
                    uint32_t present)
{
    uint32_t count = 0;
    if (schema->count > DIPX_SCHEMA_MAX)
        return DIPX_E_INVAL;
    for (int j = 0; j < schema->count; j++)
        if (schema->fields[j].required || (present & (1u << j)))
            count++;
    PK (msgpack_pack_map (pk, count));
    for (int j = 0; j < schema->count; j++) {
        const dipx_field_t *f = &schema->fields[j];
        if (!f->required && !(present & (1u << j)))
            continue;
        int rc = s_pack_str (pk, f->name);
        if (rc == 0)
            rc = s_encode_field (pk, f, (const uint8_t *) src + f->off);
        if (rc)
            return rc;
    }
    return 0;
}

int
dipx_mp_fixed_write (void *data, const char *buf, size_t len)
{
    dipx_mp_fixed_t *f = (dipx_mp_fixed_t *) data;
    if (len > f->cap - f->len)
        return -1;
    if (len) /* msgpack-c passes NULL with an empty body */
        memcpy (f->buf + f->len, buf, len);
    f->len += len;
    return 0;
}

int
dipx_mp_encode_doc (const dipx_schema_t *schema, const void *src, uint32_t present, uint8_t **out,
                    size_t *out_len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init (&sb);
    msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
    int rc = dipx_mp_encode_map (&pk, schema, src, present);
    if (rc) {
        msgpack_sbuffer_destroy (&sb);
        return rc;
    }
    *out_len = sb.size;
    *out = (uint8_t *) msgpack_sbuffer_release (&sb);
    if (!*out) /* an empty buffer is never produced: a map has a header */
        return DIPX_E_NOMEM;
    return 0;
}

bool
dipx_text_is_agency_id (const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '-' && c != '_')))
            return false;
    }
    return true;
}

bool
dipx_text_is_ident (const char *s, size_t len)
{
    if (len == 0 || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

bool
dipx_text_is_printable (const char *s, size_t len)
{
    if (len == 0 || s[0] == ' ' || s[len - 1] == ' ')
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] > 0x7e)
            return false;
    return true;
}

bool
dipx_text_is_code (const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}
