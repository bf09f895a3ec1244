/*  proto_fixture.c - see proto_fixture.h. Test code: it aborts on the
    failures it cannot report (out of memory, a missing vector file), because
    a test that cannot set itself up must not pass.
*/
#include "unit/proto_fixture.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <sodium.h>

#ifndef FX_SOURCE_DIR
#define FX_SOURCE_DIR "."
#endif

const uint8_t fx_id1[DIPX_ID_BYTES] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                       0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
const uint8_t fx_id2[DIPX_ID_BYTES] = {0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78,
                                       0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0};
const uint8_t fx_nonce[DIPX_NONCE_BYTES] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                            12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23};
const uint8_t fx_nonce_pi[DIPX_NONCE_BYTES] = {24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,
                                               36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47};

static void
s_die (const char *what)
{
    fprintf (stderr, "proto_fixture: %s\n", what);
    abort ();
}

void
fx_buf_free (fx_buf_t *b)
{
    free (b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void
fx_buf_put (fx_buf_t *b, const void *data, size_t len)
{
    if (len == 0)
        return;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *grown = (uint8_t *) realloc (b->data, cap);
        if (!grown)
            s_die ("out of memory");
        b->data = grown;
        b->cap = cap;
    }
    memcpy (b->data + b->len, data, len);
    b->len += len;
}

/*  msgpack str/bin header for n bytes, minimal.  */
static void
s_put_header (fx_buf_t *b, bool is_str, size_t n)
{
    uint8_t h[5];
    size_t hl;
    if (is_str && n < 32) {
        h[0] = (uint8_t) (0xa0 | n);
        hl = 1;
    }
    else if (n < 0x100) {
        h[0] = is_str ? 0xd9 : 0xc4;
        h[1] = (uint8_t) n;
        hl = 2;
    }
    else if (n < 0x10000) {
        h[0] = is_str ? 0xda : 0xc5;
        h[1] = (uint8_t) (n >> 8);
        h[2] = (uint8_t) n;
        hl = 3;
    }
    else {
        h[0] = is_str ? 0xdb : 0xc6;
        h[1] = (uint8_t) (n >> 24);
        h[2] = (uint8_t) (n >> 16);
        h[3] = (uint8_t) (n >> 8);
        h[4] = (uint8_t) n;
        hl = 5;
    }
    fx_buf_put (b, h, hl);
}

#define S_VARS 8
static struct {
    char name[16];   /* binding name, "" if free */
    fx_buf_t value;  /* bound bytes */
} s_vars[S_VARS];

void
fx_var_set (const char *name, const uint8_t *data, size_t len)
{
    int slot = -1;
    for (int i = 0; i < S_VARS && slot < 0; i++)
        if (strcmp (s_vars[i].name, name) == 0)
            slot = i;
    for (int i = 0; i < S_VARS && slot < 0; i++)
        if (!s_vars[i].name[0])
            slot = i;
    if (slot < 0 || strlen (name) >= sizeof s_vars[0].name)
        s_die ("too many variables");
    snprintf (s_vars[slot].name, sizeof s_vars[slot].name, "%s", name);
    s_vars[slot].value.len = 0;
    fx_buf_put (&s_vars[slot].value, data, len);
}

static int
s_hexval (int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower (c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*  Parses until end of text or an unmatched ')' (returned in *pp).  */
static int
s_parse (const char **pp, fx_buf_t *out, int level)
{
    const char *p = *pp;
    for (;;) {
        while (*p && isspace ((unsigned char) *p))
            p++;
        if (!*p) {
            *pp = p;
            return level == 0 ? 0 : -1;
        }
        if (*p == '#') {
            while (*p && *p != '\n')
                p++;
            continue;
        }
        if (*p == ')' || *p == '}') {
            *pp = p + 1;
            return level > 0 ? 0 : -1;
        }
        if (*p == '{') {
            fx_buf_t group = {0};
            p++;
            if (s_parse (&p, &group, level + 1)) {
                fx_buf_free (&group);
                return -1;
            }
            unsigned long repeat = 1;
            if (*p == '*') {
                char *end;
                repeat = strtoul (p + 1, &end, 10);
                p = end;
            }
            for (unsigned long i = 0; i < repeat; i++)
                fx_buf_put (out, group.data, group.len);
            fx_buf_free (&group);
            continue;
        }
        if (*p == '\'') {
            const char *end = strchr (p + 1, '\'');
            if (!end)
                return -1;
            s_put_header (out, true, (size_t) (end - p - 1));
            fx_buf_put (out, p + 1, (size_t) (end - p - 1));
            p = end + 1;
            continue;
        }
        if ((*p == 'b' || *p == 's') && p[1] == '(') {
            bool is_str = *p == 's';
            fx_buf_t inner = {0};
            p += 2;
            if (s_parse (&p, &inner, level + 1)) {
                fx_buf_free (&inner);
                return -1;
            }
            s_put_header (out, is_str, inner.len);
            fx_buf_put (out, inner.data, inner.len);
            fx_buf_free (&inner);
            continue;
        }
        if (*p == '$') {
            const char *start = ++p;
            while (isalnum ((unsigned char) *p) || *p == '_')
                p++;
            size_t n = (size_t) (p - start);
            int found = 0;
            for (int i = 0; i < S_VARS && !found; i++)
                if (strlen (s_vars[i].name) == n && memcmp (s_vars[i].name, start, n) == 0) {
                    fx_buf_put (out, s_vars[i].value.data, s_vars[i].value.len);
                    found = 1;
                }
            if (!found)
                return -1;
            continue;
        }
        int hi = s_hexval (p[0]), lo = hi < 0 ? -1 : s_hexval (p[1]);
        if (hi < 0 || lo < 0)
            return -1;
        uint8_t byte = (uint8_t) (hi << 4 | lo);
        p += 2;
        unsigned long repeat = 1;
        if (*p == '*') {
            char *end;
            repeat = strtoul (p + 1, &end, 10);
            if (end == p + 1)
                return -1;
            p = end;
        }
        for (unsigned long i = 0; i < repeat; i++)
            fx_buf_put (out, &byte, 1);
    }
}

int
fx_bytes_parse (const char *text, fx_buf_t *out)
{
    const char *p = text;
    if (s_parse (&p, out, 0) == 0)
        return 0;
    fprintf (stderr, "proto_fixture: cannot parse near \"%.20s\"\n", p);
    return -1;
}

void
fx_vector (const char *name, fx_buf_t *out)
{
    const char *dir = getenv ("DIPX_SOURCE_DIR");
    char path[4096];
    snprintf (path, sizeof path, "%s/tests/vectors/%s.hex", dir ? dir : FX_SOURCE_DIR, name);
    FILE *f = fopen (path, "rb");
    if (!f) {
        fprintf (stderr, "proto_fixture: cannot open %s\n", path);
        abort ();
    }
    fx_buf_t text = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread (chunk, 1, sizeof chunk, f)) > 0)
        fx_buf_put (&text, chunk, n);
    fclose (f);
    fx_buf_put (&text, "", 1);
    out->len = 0;
    if (fx_bytes_parse ((const char *) text.data, out))
        s_die (path);
    fx_buf_free (&text);
}

void
fx_keys (fx_keys_t *k)
{
    uint8_t seed[32];
    if (sodium_init () < 0)
        s_die ("sodium_init");
    memset (seed, 1, sizeof seed);
    crypto_box_seed_keypair (k->s_enc_pk, k->s_enc_sk, seed);
    memset (seed, 2, sizeof seed);
    crypto_sign_seed_keypair (k->s_sign_pk, k->s_sign_sk, seed);
    memset (seed, 3, sizeof seed);
    crypto_box_seed_keypair (k->r_enc_pk, k->r_enc_sk, seed);
    memset (seed, 4, sizeof seed);
    crypto_sign_seed_keypair (k->r_sign_pk, k->r_sign_sk, seed);
    if (crypto_box_beforenm (k->shared, k->r_enc_pk, k->s_enc_sk) != 0)
        s_die ("crypto_box_beforenm");
}

static void
s_subject (uint8_t subj[DIPX_SUBJ_BYTES])
{
    fx_buf_t v = {0};
    fx_vector ("subject", &v);
    if (v.len != DIPX_SUBJ_BYTES)
        s_die ("subject.hex is not 32 bytes");
    memcpy (subj, v.data, DIPX_SUBJ_BYTES);
    fx_buf_free (&v);
}

void
fx_header (dipx_header_t *h)
{
    memset (h, 0, sizeof *h);
    h->v = 1;
    memcpy (h->id, fx_id1, DIPX_ID_BYTES);
    strcpy (h->type, "drug_test_result");
    strcpy (h->from, FX_SENDER);
    strcpy (h->to, FX_RECIPIENT);
    s_subject (h->subj);
    h->basis = DIPX_BASIS_STATUTE;
    strcpy (h->ref, "PACE s.63B");
    h->purpose = DIPX_PURPOSE_LAW_ENFORCEMENT;
    h->cats = (1u << DIPX_CAT_IDENTIFIERS) | (1u << DIPX_CAT_TEST_RESULTS);
    h->created = FX_CREATED;
    h->expires = FX_EXPIRES;
}

void
fx_header_pi (dipx_header_t *h)
{
    memset (h, 0, sizeof *h);
    h->v = 1;
    memcpy (h->id, fx_id2, DIPX_ID_BYTES);
    strcpy (h->type, "safeguarding_disclosure");
    strcpy (h->from, FX_RECIPIENT);
    strcpy (h->to, FX_SENDER);
    s_subject (h->subj);
    h->basis = DIPX_BASIS_PUBLIC_INTEREST;
    strcpy (h->ref, "PI-2026-0042");
    h->purpose = DIPX_PURPOSE_SAFEGUARDING;
    h->cats = (1u << DIPX_CAT_IDENTIFIERS) | (1u << DIPX_CAT_RISK);
    h->created = FX_CREATED;
    h->expires = FX_CREATED + 86400ull * 1000;
    strcpy (h->pi_by, "J. Smith, CJIT team leader");
    strcpy (h->pi_approver, "A. Jones, Head of Service");
    strcpy (h->pi_why, "Credible threat of serious harm to a named child");
}

static void
s_pack_bin (msgpack_packer *pk, const char *key, const uint8_t *data, size_t len)
{
    msgpack_pack_str_with_body (pk, key, strlen (key));
    msgpack_pack_bin_with_body (pk, data, len);
}

void
fx_envelope_build (const uint8_t *hdr, size_t hdr_len, const uint8_t *ct, size_t ct_len,
                   const uint8_t *sign_sk, uint8_t **out, size_t *out_len)
{
    /* As PROTOCOL.md says, written here from the spec, not from dipx_envelope.c. */
    uint8_t msg[17 + 64];
    memcpy (msg, "dipx-v1-envelope", 17);
    dipx_hash_labelled ("dipx-v1-header", hdr, hdr_len, msg + 17);
    dipx_hash_labelled ("dipx-v1-payload", ct, ct_len, msg + 17 + 32);
    uint8_t sig[64];
    crypto_sign_detached (sig, NULL, msg, sizeof msg, sign_sk);

    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init (&sb);
    msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    s_pack_bin (&pk, "hdr", hdr, hdr_len);
    s_pack_bin (&pk, "ct", ct, ct_len);
    s_pack_bin (&pk, "sig", sig, sizeof sig);
    *out_len = sb.size;
    *out = (uint8_t *) msgpack_sbuffer_release (&sb);
    if (!*out)
        s_die ("out of memory");
}

void
fx_box (const uint8_t *plain, size_t len, const uint8_t nonce[24], const uint8_t shared[32],
        uint8_t **ct, size_t *ct_len)
{
    *ct_len = len + 40;
    *ct = (uint8_t *) malloc (*ct_len);
    if (!*ct)
        s_die ("out of memory");
    memcpy (*ct, nonce, 24);
    crypto_box_easy_afternm (*ct + 24, plain, len, nonce, shared);
}

int
fx_replace (uint8_t *buf, size_t len, const char *from, const char *to)
{
    size_t n = strlen (from);
    int count = 0;
    if (strlen (to) != n)
        s_die ("fx_replace: lengths differ");
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp (buf + i, from, n) == 0) {
            memcpy (buf + i, to, n);
            count++;
        }
    return count;
}

static bool
s_slice_equal (dipx_slice_t a, dipx_slice_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp (a.ptr, b.ptr, a.len) == 0);
}

bool
fx_frame_equal (const dipx_frame_t *a, const dipx_frame_t *b)
{
    dipx_frame_t x, y; /* memcpy, not assignment: padding must be copied too */
    memcpy (&x, a, sizeof x);
    memcpy (&y, b, sizeof y);
    if (x.cmd != y.cmd || x.present != y.present)
        return false;
    dipx_slice_t *sx = NULL, *sy = NULL;
    if (x.cmd == DIPX_CMD_SEND) {
        sx = &x.u.send.env;
        sy = &y.u.send.env;
    }
    else if (x.cmd == DIPX_CMD_DELIVER) {
        sx = &x.u.deliver.env;
        sy = &y.u.deliver.env;
    }
    if (sx) {
        if (!s_slice_equal (*sx, *sy))
            return false;
        sx->ptr = sy->ptr = NULL;
    }
    /* Both were zeroed before they were filled, so every other byte of the
       union, text tails included, compares equal when the values do.  */
    return memcmp (&x.u, &y.u, sizeof x.u) == 0;
}
