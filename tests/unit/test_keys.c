/*  test_keys.c - unit tests of keys/: identities and secret files, cards,
    RFC 3339 times, Z85 and fingerprints, and the registry.

    Fixed vectors: the ZeroMQ Z85 example and CURVE test keypair, a key
    fingerprint, and a card made from fixed secrets (Ed25519 signatures are
    deterministic) compared byte for byte with tests/vectors/card.txt. Set
    DIPX_REGEN_VECTORS=1 to rewrite that file after a deliberate format change.

    Parsers are tried on every prefix and every bit flip of good input; files
    are made in a fresh temporary directory per test.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "testutil.h"
#include "dipx_card.h"
#include "dipx_identity.h"
#include "dipx_registry.h"
#include "dipx_types.h"

/*  Helpers ----------------------------------------------------------------*/

typedef dipx_test_tmp_t s_tmp_t;

static int
s_setup (void **state)
{
    return dipx_test_tmp_new (state, "dipx-keys");
}

#define s_teardown dipx_test_tmp_free
#define s_path dipx_test_path

static void
s_write_file (const char *path, const char *data, size_t len, mode_t mode)
{
    FILE *f = fopen (path, "wb");
    assert_non_null (f);
    assert_int_equal (fwrite (data, 1, len, f), len);
    assert_int_equal (fclose (f), 0);
    assert_int_equal (chmod (path, mode), 0);
}

/*  Reads a whole file into a malloc'd, NUL-terminated buffer.  */
static char *
s_read_file (const char *path, size_t *len)
{
    FILE *f = fopen (path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc (1 << 20);
    assert_non_null (buf);
    *len = fread (buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose (f);
    return buf;
}

static mode_t
s_mode (const char *path)
{
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    return st.st_mode & 07777;
}

/*  An exact-size heap copy, so ASan catches any read past len.  */
static char *
s_dup (const char *text, size_t len)
{
    char *copy = malloc (len ? len : 1);
    assert_non_null (copy);
    memcpy (copy, text, len);
    return copy;
}

/*  Calls a parser on an exact-size copy of text.  */
static int
s_parse_card (const char *text, size_t len)
{
    char *copy = s_dup (text, len);
    dipx_card_t card;
    int rc = dipx_card_parse (copy, len, &card);
    free (copy);
    return rc;
}

static int
s_parse_identity (const char *text, size_t len)
{
    char *copy = s_dup (text, len);
    dipx_identity_t *identity = NULL;
    int rc = dipx_identity_parse (copy, len, &identity);
    if (rc == 0)
        assert_non_null (identity);
    else
        assert_null (identity);
    dipx_identity_destroy (&identity);
    free (copy);
    return rc;
}

static int
s_parse_registry (const char *text, size_t len, int *line)
{
    char *copy = s_dup (text, len);
    dipx_registry_t *reg = NULL;
    int rc = dipx_registry_parse (copy, len, &reg, line);
    if (rc == 0)
        assert_non_null (reg);
    else
        assert_null (reg);
    dipx_registry_destroy (&reg);
    free (copy);
    return rc;
}

/*  Replaces the first occurrence of from with to in text (a malloc'd copy).  */
static char *
s_replace (const char *text, const char *from, const char *to)
{
    const char *at = strstr (text, from);
    assert_non_null (at);
    size_t head = (size_t) (at - text);
    size_t len = strlen (text) - strlen (from) + strlen (to);
    char *out = malloc (len + 1);
    assert_non_null (out);
    memcpy (out, text, head);
    memcpy (out + head, to, strlen (to));
    strcpy (out + head + strlen (to), at + strlen (from));
    return out;
}

/*  Fixed secrets for the golden vectors.  */
static void
s_fixed_secret_text (const char *id, uint8_t enc_base, uint8_t sign_base, char *out, size_t size)
{
    uint8_t enc[DIPX_KEY_BYTES], seed[DIPX_KEY_BYTES];
    for (int i = 0; i < DIPX_KEY_BYTES; i++) {
        enc[i] = (uint8_t) (enc_base + i);
        seed[i] = (uint8_t) (sign_base + i);
    }
    char enc_z85[DIPX_Z85_KEY_LEN + 1], seed_z85[DIPX_Z85_KEY_LEN + 1];
    dipx_key_to_z85 (enc, enc_z85);
    dipx_key_to_z85 (seed, seed_z85);
    snprintf (out, size, "dipx-secret 1\nid: %s\nenc-secret: %s\nsign-secret: %s\n", id, enc_z85,
              seed_z85);
}

static dipx_identity_t *
s_fixed_identity (const char *id, uint8_t enc_base, uint8_t sign_base)
{
    char text[512];
    s_fixed_secret_text (id, enc_base, sign_base, text, sizeof text);
    dipx_identity_t *identity = NULL;
    assert_int_equal (dipx_identity_parse (text, strlen (text), &identity), 0);
    return identity;
}

/*  Fields of the golden card (keys and signature come from the identity).  */
static void
s_golden_fields (dipx_card_t *card)
{
    memset (card, 0, sizeof *card);
    strcpy (card->name, "Metropolitan Police, Brixton custody suite");
    card->type = DIPX_AGENCY_POLICE;
    strcpy (card->org, "MPS01");
    strcpy (card->area, "LBLAM");
    assert_int_equal (dipx_time_parse ("2026-01-01T00:00:00Z", 20, &card->valid_from), 0);
    assert_int_equal (dipx_time_parse ("2028-01-01T00:00:00Z", 20, &card->valid_until), 0);
}

/*  A card for a fresh identity; *text is malloc'd (caller frees).  */
static void
s_make_card (const char *id, int type, dipx_identity_t **identity_out, dipx_card_t *card,
             char **text, size_t *len)
{
    dipx_identity_t *identity = dipx_identity_generate (id);
    assert_non_null (identity);
    s_golden_fields (card);
    card->type = type;
    assert_int_equal (dipx_card_make (identity, card, text, len), 0);
    if (identity_out)
        *identity_out = identity;
    else
        dipx_identity_destroy (&identity);
}

/*  Z85, fingerprints, times ------------------------------------------------*/

static void
test_z85 (void **state)
{
    (void) state;
    /* ZeroMQ RFC 32's example.  */
    const uint8_t hello[8] = {0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B};
    char text[11];
    assert_int_equal (dipx_z85_encode (hello, sizeof hello, text), 0);
    assert_string_equal (text, "HelloWorld");
    uint8_t back[8];
    assert_int_equal (dipx_z85_decode ("HelloWorld", 10, back, sizeof back), 0);
    assert_memory_equal (back, hello, sizeof hello);
    assert_int_equal (dipx_z85_encode (hello, 7, text), DIPX_E_INVAL);

    /* libzmq's CURVE test keypair: Z85 and X25519 agree with it.  */
    const char *secret = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs";
    const char *public = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
    uint8_t sk[DIPX_KEY_BYTES], pk[DIPX_KEY_BYTES];
    assert_int_equal (dipx_key_from_z85 (secret, 40, sk), 0);
    assert_int_equal (crypto_scalarmult_base (pk, sk), 0);
    char pk_z85[DIPX_Z85_KEY_LEN + 1];
    dipx_key_to_z85 (pk, pk_z85);
    assert_string_equal (pk_z85, public);

    /* Wrong lengths, characters outside Z85, and over-range groups.  */
    assert_int_equal (dipx_key_from_z85 (public, 39, pk), DIPX_E_SYNTAX);
    assert_int_equal (dipx_key_from_z85 ("HelloWorldHelloWorldHelloWorldHelloWorldX", 41, pk),
                      DIPX_E_SYNTAX);
    assert_int_equal (dipx_key_from_z85 ("HelloWorldHelloWorldHelloWorldHelloWorl\"", 40, pk),
                      DIPX_E_SYNTAX);
    assert_int_equal (dipx_key_from_z85 ("HelloWorldHelloWorldHelloWorldHelloWorl ", 40, pk),
                      DIPX_E_SYNTAX);
    assert_int_equal (dipx_key_from_z85 ("HelloWorldHelloWorldHelloWorldHello\0orld", 40, pk),
                      DIPX_E_SYNTAX);
    assert_int_equal (dipx_key_from_z85 ("#####WorldHelloWorldHelloWorldHelloWorld", 40, pk),
                      DIPX_E_SYNTAX);
    /* "%nSc1" is 2^32 exactly: one past the largest group.  */
    assert_int_equal (dipx_key_from_z85 ("%nSc1WorldHelloWorldHelloWorldHelloWorld", 40, pk),
                      DIPX_E_SYNTAX);
    assert_int_equal (dipx_key_from_z85 ("%nSc0WorldHelloWorldHelloWorldHelloWorld", 40, pk), 0);
    memset (pk, 0xff, sizeof pk);
    dipx_key_to_z85 (pk, pk_z85);
    assert_memory_equal (pk_z85, "%nSc0", 5);
}

static void
test_fingerprint (void **state)
{
    (void) state;
    /* BLAKE2b-256("dipx-v1-keyfp\0" || 32 zero bytes), first 8 bytes; the
       expected value was computed with Python's hashlib.  */
    uint8_t key[DIPX_KEY_BYTES] = {0};
    char fp[17];
    dipx_key_fingerprint (key, fp);
    assert_string_equal (fp, "7c409a7bdb623e9b");
    assert_int_equal (strlen (fp), 16);
    key[31] = 1;
    char fp2[17];
    dipx_key_fingerprint (key, fp2);
    assert_string_not_equal (fp, fp2);
}

static void
test_time (void **state)
{
    (void) state;
    int64_t t;
    char out[21];
    struct {
        const char *text;
        int64_t secs; /* expected, or -1 if refused */
    } cases[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2026-01-01T00:00:00Z", 1767225600},
        {"2024-02-29T12:34:56Z", 1709210096},
        {"2000-02-29T00:00:00Z", 951782400},
        {"9999-12-31T23:59:59Z", DIPX_TIME_MAX},
        {"2026-02-29T00:00:00Z", -1},
        {"2026-02-30T00:00:00Z", -1},
        {"2100-02-29T00:00:00Z", -1},
        {"2026-04-31T00:00:00Z", -1},
        {"2026-13-01T00:00:00Z", -1},
        {"2026-00-01T00:00:00Z", -1},
        {"2026-01-00T00:00:00Z", -1},
        {"2026-01-01T24:00:00Z", -1},
        {"2026-01-01T23:60:00Z", -1},
        {"2026-01-01T23:59:60Z", -1},
        {"1969-12-31T23:59:59Z", -1},
        {"2026-01-01t00:00:00Z", -1},
        {"2026-01-01T00:00:00z", -1},
        {"2026-01-01 00:00:00Z", -1},
        {"2026-1-01T00:00:00Z", -1},
        {"2026-01-01T00:00:00+00:00", -1},
        {"2026-01-01T00:00:00.0Z", -1},
        {"+026-01-01T00:00:00Z", -1},
        {"2026-01-01T00:00:00Z\n", -1},
        {"", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = dipx_time_parse (cases[i].text, strlen (cases[i].text), &t);
        if (cases[i].secs < 0) {
            if (rc != DIPX_E_SYNTAX)
                fail_msg ("accepted %s", cases[i].text);
            continue;
        }
        assert_int_equal (rc, 0);
        assert_int_equal (t, cases[i].secs);
        dipx_time_format (t, out);
        assert_string_equal (out, cases[i].text);
    }
    /* Not NUL-terminated: only len bytes count.  */
    assert_int_equal (dipx_time_parse ("2026-01-01T00:00:00Zjunk", 20, &t), 0);
    dipx_time_format (-5, out);
    assert_string_equal (out, "1970-01-01T00:00:00Z");
    dipx_time_format (INT64_MAX, out);
    assert_string_equal (out, "9999-12-31T23:59:59Z");
}

/*  Identities -------------------------------------------------------------*/

static void
test_identity_generate (void **state)
{
    (void) state;
    char long_id[DIPX_MAX_AGENCY_ID + 2];
    memset (long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_null (dipx_identity_generate (NULL));
    assert_null (dipx_identity_generate (""));
    assert_null (dipx_identity_generate ("Police.met"));
    assert_null (dipx_identity_generate (".police"));
    assert_null (dipx_identity_generate (long_id));
    long_id[DIPX_MAX_AGENCY_ID] = '\0';
    dipx_identity_t *a = dipx_identity_generate (long_id);
    assert_non_null (a);
    dipx_identity_t *b = dipx_identity_generate ("police.met.brixton");
    assert_non_null (b);
    assert_string_equal (dipx_identity_id (b), "police.met.brixton");
    assert_memory_not_equal (dipx_identity_enc_pk (a), dipx_identity_enc_pk (b), 32);
    assert_memory_not_equal (dipx_identity_sign_pk (a), dipx_identity_sign_pk (b), 32);

    /* The keys work: the public keys belong to the secret ones.  */
    uint8_t pk[32];
    assert_int_equal (crypto_scalarmult_base (pk, dipx_identity_enc_sk (b)), 0);
    assert_memory_equal (pk, dipx_identity_enc_pk (b), 32);
    uint8_t sig[64];
    crypto_sign_detached (sig, NULL, (const uint8_t *) "x", 1, dipx_identity_sign_sk (b));
    assert_int_equal (
        crypto_sign_verify_detached (sig, (const uint8_t *) "x", 1, dipx_identity_sign_pk (b)), 0);

    dipx_public_t pub;
    dipx_identity_public (b, &pub);
    assert_string_equal (pub.id, "police.met.brixton");
    assert_memory_equal (pub.enc_pk, dipx_identity_enc_pk (b), 32);
    assert_memory_equal (pub.sign_pk, dipx_identity_sign_pk (b), 32);
    dipx_identity_destroy (&a);
    dipx_identity_destroy (&b);
    assert_null (b);
    dipx_identity_destroy (&b);
    dipx_identity_destroy (NULL);
}

/*  fsync is wrapped (-Wl,--wrap=fsync, keys.cmake) so that a test can make
    the sync of a directory fail.  */
int __real_fsync (int fd);
int __wrap_fsync (int fd);
static bool s_fail_dir_sync;

int
__wrap_fsync (int fd)
{
    struct stat st;
    if (s_fail_dir_sync && fstat (fd, &st) == 0 && S_ISDIR (st.st_mode)) {
        errno = EIO;
        return -1;
    }
    return __real_fsync (fd);
}

/*  A new secret file whose directory cannot be synced is not left behind
    (its name might not survive a crash), so saving again works.  */
static void
test_identity_dir_sync_fails (void **state)
{
    s_tmp_t *tmp = *state;
    dipx_identity_t *a = dipx_identity_generate ("cjit.lambeth");
    assert_non_null (a);
    const char *path = s_path (tmp, "cjit.secret");
    s_fail_dir_sync = true;
    assert_int_equal (dipx_identity_save (a, path), DIPX_E_IO);
    s_fail_dir_sync = false;
    struct stat st;
    assert_int_equal (lstat (path, &st), -1);
    assert_int_equal (dipx_identity_save (a, path), 0);
    assert_int_equal (s_mode (path), 0600);
    dipx_identity_destroy (&a);
}

static void
test_identity_save_load (void **state)
{
    s_tmp_t *tmp = *state;
    mode_t old_umask = umask (0);  /* the file must be 0600 whatever the umask */
    dipx_identity_t *a = dipx_identity_generate ("cjit.lambeth");
    assert_non_null (a);
    const char *path = s_path (tmp, "cjit.secret");
    assert_int_equal (dipx_identity_save (a, path), 0);
    umask (old_umask);
    assert_int_equal (s_mode (path), 0600);

    dipx_identity_t *b = NULL;
    assert_int_equal (dipx_identity_load (path, &b), 0);
    assert_string_equal (dipx_identity_id (b), "cjit.lambeth");
    assert_int_equal (sodium_memcmp (dipx_identity_enc_sk (a), dipx_identity_enc_sk (b), 32), 0);
    assert_int_equal (sodium_memcmp (dipx_identity_sign_sk (a), dipx_identity_sign_sk (b), 64), 0);
    assert_memory_equal (dipx_identity_enc_pk (a), dipx_identity_enc_pk (b), 32);
    assert_memory_equal (dipx_identity_sign_pk (a), dipx_identity_sign_pk (b), 32);

    /* O_EXCL: never overwritten, and the file is untouched.  */
    size_t len1, len2;
    char *before = s_read_file (path, &len1);
    dipx_identity_t *c = dipx_identity_generate ("cjit.lambeth");
    assert_int_equal (dipx_identity_save (c, path), DIPX_E_EXISTS);
    char *after = s_read_file (path, &len2);
    assert_int_equal (len1, len2);
    assert_memory_equal (before, after, len1);
    free (before);
    free (after);

    /* Nor through a symlink, even a dangling one.  */
    const char *link_path = s_path (tmp, "link.secret");
    assert_int_equal (symlink ("nowhere.secret", link_path), 0);
    assert_int_equal (dipx_identity_save (c, link_path), DIPX_E_EXISTS);
    assert_int_equal (dipx_identity_save (c, s_path (tmp, "no/such/dir.secret")), DIPX_E_IO);

    dipx_identity_destroy (&a);
    dipx_identity_destroy (&b);
    dipx_identity_destroy (&c);
}

static void
test_identity_perm (void **state)
{
    s_tmp_t *tmp = *state;
    dipx_identity_t *a = dipx_identity_generate ("court.southwark");
    char path[512];
    snprintf (path, sizeof path, "%s", s_path (tmp, "court.secret"));
    assert_int_equal (dipx_identity_save (a, path), 0);
    dipx_identity_destroy (&a);

    const struct {
        mode_t mode;
        int rc;
    } cases[] = {
        {0640, DIPX_E_PERM}, {0604, DIPX_E_PERM}, {0660, DIPX_E_PERM}, {0610, DIPX_E_PERM},
        {0601, DIPX_E_PERM}, {0644, DIPX_E_PERM}, {0400, 0},           {0600, 0},
        {0700, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal (chmod (path, cases[i].mode), 0);
        dipx_identity_t *b = NULL;
        int rc = dipx_identity_load (path, &b);
        if (rc != cases[i].rc)
            fail_msg ("mode %o: got %d", (unsigned) cases[i].mode, rc);
        assert_true (rc == 0 ? b != NULL : b == NULL);
        dipx_identity_destroy (&b);
    }

    /* Missing file, a directory, an oversized file.  */
    dipx_identity_t *b = NULL;
    assert_int_equal (dipx_identity_load (s_path (tmp, "missing"), &b), DIPX_E_IO);
    assert_int_equal (dipx_identity_load (tmp->dir, &b), DIPX_E_IO);
    char big[DIPX_MAX_SECRET_BYTES + 1];
    memset (big, 'x', sizeof big);
    s_write_file (s_path (tmp, "big.secret"), big, sizeof big, 0600);
    assert_int_equal (dipx_identity_load (tmp->path, &b), DIPX_E_SYNTAX);
    s_write_file (s_path (tmp, "empty.secret"), "", 0, 0600);
    assert_int_equal (dipx_identity_load (tmp->path, &b), DIPX_E_SYNTAX);
    assert_null (b);
}

static void
test_identity_fixed (void **state)
{
    s_tmp_t *tmp = *state;
    /* Saving a parsed identity writes back exactly its text.  */
    char text[512];
    s_fixed_secret_text ("police.met.brixton", 1, 0x80, text, sizeof text);
    dipx_identity_t *a = NULL;
    assert_int_equal (dipx_identity_parse (text, strlen (text), &a), 0);
    assert_int_equal (dipx_identity_save (a, s_path (tmp, "fixed.secret")), 0);
    size_t len;
    char *saved = s_read_file (tmp->path, &len);
    assert_int_equal (len, strlen (text));
    assert_memory_equal (saved, text, len);
    free (saved);
    dipx_identity_destroy (&a);
}

static void
test_identity_corrupt (void **state)
{
    (void) state;
    char good[512];
    s_fixed_secret_text ("police.met.brixton", 1, 0x80, good, sizeof good);
    size_t len = strlen (good);
    assert_int_equal (s_parse_identity (good, len), 0);

    /* Every truncation, and every extra byte after the end.  */
    for (size_t n = 0; n < len; n++)
        assert_int_equal (s_parse_identity (good, n), DIPX_E_SYNTAX);
    const char *tails[] = {"\n", " ", "x", "\0", "\r", "id: x\n"};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        char longer[600];
        memcpy (longer, good, len);
        size_t tail = strlen (tails[i]) ? strlen (tails[i]) : 1;
        memcpy (longer + len, tails[i], tail);
        assert_int_equal (s_parse_identity (longer, len + tail), DIPX_E_SYNTAX);
    }

    /* Each field broken.  */
    const char *enc = strstr (good, "enc-secret: ") + 12;
    char enc_key[41];
    memcpy (enc_key, enc, 40);
    enc_key[40] = '\0';
    char short_key[41], long_key[42], bad_char[41];
    memcpy (short_key, enc_key, 39);
    short_key[39] = '\0';
    snprintf (long_key, sizeof long_key, "%s0", enc_key);
    snprintf (bad_char, sizeof bad_char, "%s", enc_key);
    bad_char[7] = '"';
    const struct {
        const char *from, *to;
    } breaks[] = {
        {"dipx-secret 1", "dipx-secret 2"},
        {"dipx-secret 1", "dipx-secret 1 "},
        {"dipx-secret 1", "DIPX-secret 1"},
        {"dipx-secret 1\n", ""},
        {"dipx-secret 1\n", "\ndipx-secret 1\n"},
        {"id: ", "id:"},
        {"id: ", "id:  "},
        {"id: ", "ID: "},
        {"id: ", "id : "},
        {"id: police", "id: Police"},
        {"id: police", "id: .police"},
        {"brixton\n", "brixton \n"},
        {"brixton\n", "brixton\r\n"},
        {"id: police.met.brixton\n", ""},
        {"id: police.met.brixton\n", "id: \n"},
        {"enc-secret: ", "enc-secret:"},
        {"enc-secret: ", "enc_secret: "},
        {enc_key, short_key},
        {enc_key, long_key},
        {enc_key, bad_char},
        {"sign-secret: ", "sign-secret:  "},
        {"sign-secret: ", "sign-key: "},
        {"\nsign-secret", "\n\nsign-secret"},
    };
    for (size_t i = 0; i < sizeof breaks / sizeof breaks[0]; i++) {
        char *bad = s_replace (good, breaks[i].from, breaks[i].to);
        if (s_parse_identity (bad, strlen (bad)) != DIPX_E_SYNTAX)
            fail_msg ("accepted with \"%s\" -> \"%s\"", breaks[i].from, breaks[i].to);
        free (bad);
    }

    /* Fields swapped.  */
    char swapped[600];
    const char *id_line = strstr (good, "id: ");
    const char *enc_line = strstr (good, "enc-secret: ");
    const char *sign_line = strstr (good, "sign-secret: ");
    int n = snprintf (swapped, sizeof swapped, "dipx-secret 1\n%.*s%.*s%s",
                      (int) (sign_line - enc_line), enc_line, (int) (enc_line - id_line), id_line,
                      sign_line);
    assert_int_equal (s_parse_identity (swapped, (size_t) n), DIPX_E_SYNTAX);
    n = snprintf (swapped, sizeof swapped, "dipx-secret 1\n%.*s%s%.*s",
                  (int) (enc_line - id_line), id_line, sign_line, (int) (sign_line - enc_line),
                  enc_line);
    assert_int_equal (s_parse_identity (swapped, (size_t) n), DIPX_E_SYNTAX);

    /* CRLF throughout; too long.  */
    char crlf[600];
    size_t m = 0;
    for (size_t i = 0; i < len; i++) {
        if (good[i] == '\n')
            crlf[m++] = '\r';
        crlf[m++] = good[i];
    }
    assert_int_equal (s_parse_identity (crlf, m), DIPX_E_SYNTAX);
    char big[DIPX_MAX_SECRET_BYTES + 8];
    memset (big, '\n', sizeof big);
    memcpy (big, good, len);
    assert_int_equal (s_parse_identity (big, sizeof big), DIPX_E_SYNTAX);
    dipx_identity_t *id = NULL;
    assert_int_equal (dipx_identity_parse (NULL, 5, &id), DIPX_E_INVAL);
    assert_int_equal (dipx_identity_parse (NULL, 0, &id), DIPX_E_SYNTAX);
}

/*  Cards ------------------------------------------------------------------*/

static void
test_card_round_trip (void **state)
{
    (void) state;
    dipx_identity_t *identity = NULL;
    dipx_card_t made;
    char *text = NULL;
    size_t len = 0;
    s_make_card ("treatment.lambeth.south", DIPX_AGENCY_TREATMENT, &identity, &made, &text, &len);
    assert_int_equal (strlen (text), len);
    assert_string_equal (made.id, "treatment.lambeth.south");
    assert_memory_equal (made.enc_pk, dipx_identity_enc_pk (identity), 32);
    assert_memory_equal (made.sign_pk, dipx_identity_sign_pk (identity), 32);

    dipx_card_t parsed;
    assert_int_equal (s_parse_card (text, len), 0);
    assert_int_equal (dipx_card_parse (text, len, &parsed), 0);
    assert_memory_equal (&parsed, &made, sizeof made);

    /* format (parse (text)) == text.  */
    char *again = NULL;
    size_t again_len = 0;
    assert_int_equal (dipx_card_format (&parsed, &again, &again_len), 0);
    assert_int_equal (again_len, len);
    assert_memory_equal (again, text, len);
    free (again);

    /* A broker may make its own card; the id must match the identity.  */
    dipx_card_t other;
    s_golden_fields (&other);
    other.type = DIPX_AGENCY_BROKER;
    assert_int_equal (dipx_card_make (identity, &other, &again, NULL), 0);
    assert_int_equal (s_parse_card (again, strlen (again)), 0);
    free (again);
    strcpy (other.id, "someone.else");
    assert_int_equal (dipx_card_make (identity, &other, &again, NULL), DIPX_E_VALUE);
    assert_null (again);

    /* Fields out of range are refused by make and format.  */
    const char *bad_names[] = {" lead", "trail ", "tab\there", "new\nline", "caf\xc3\xa9", ""};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        s_golden_fields (&other);
        strcpy (other.name, bad_names[i]);
        assert_int_equal (dipx_card_make (identity, &other, &again, NULL), DIPX_E_VALUE);
    }
    s_golden_fields (&other);
    strcpy (other.org, "mps01");
    assert_int_equal (dipx_card_make (identity, &other, &again, NULL), DIPX_E_VALUE);
    s_golden_fields (&other);
    other.type = DIPX_AGENCY_COUNT;
    assert_int_equal (dipx_card_make (identity, &other, &again, NULL), DIPX_E_VALUE);
    s_golden_fields (&other);
    other.valid_until = other.valid_from;
    assert_int_equal (dipx_card_make (identity, &other, &again, NULL), DIPX_E_VALUE);
    s_golden_fields (&other);
    other.valid_until = DIPX_TIME_MAX + 1;
    assert_int_equal (dipx_card_make (identity, &other, &again, NULL), DIPX_E_VALUE);
    memset (&other, 'A', sizeof other); /* nothing NUL-terminated */
    assert_int_equal (dipx_card_format (&other, &again, NULL), DIPX_E_VALUE);

    free (text);
    dipx_identity_destroy (&identity);
}

static void
test_card_golden (void **state)
{
    (void) state;
    dipx_identity_t *identity = s_fixed_identity ("police.met.brixton", 1, 0x80);
    dipx_card_t card;
    s_golden_fields (&card);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal (dipx_card_make (identity, &card, &text, &len), 0);

    const char *src = getenv ("DIPX_SOURCE_DIR");
    assert_non_null (src);
    char path[1024];
    snprintf (path, sizeof path, "%s/tests/vectors/card.txt", src);
    const char *regen = getenv ("DIPX_REGEN_VECTORS");
    if (regen && strcmp (regen, "1") == 0) {
        FILE *f = fopen (path, "wb");
        assert_non_null (f);
        fwrite (text, 1, len, f);
        fclose (f);
    }
    size_t golden_len = 0;
    char *golden = s_read_file (path, &golden_len);
    assert_non_null (golden);
    assert_int_equal (golden_len, len);
    assert_memory_equal (golden, text, len);

    dipx_card_t parsed;
    assert_int_equal (dipx_card_parse (golden, golden_len, &parsed), 0);
    assert_string_equal (parsed.id, "police.met.brixton");
    assert_string_equal (parsed.name, "Metropolitan Police, Brixton custody suite");
    assert_int_equal (parsed.type, DIPX_AGENCY_POLICE);
    assert_string_equal (parsed.org, "MPS01");
    assert_string_equal (parsed.area, "LBLAM");
    assert_int_equal (parsed.valid_from, 1767225600);
    assert_int_equal (parsed.valid_until, 1830297600);
    free (golden);
    free (text);
    dipx_identity_destroy (&identity);
}

static void
test_card_mutations (void **state)
{
    (void) state;
    dipx_identity_t *identity = s_fixed_identity ("police.met.brixton", 1, 0x80);
    dipx_card_t card;
    s_golden_fields (&card);
    char *good = NULL;
    size_t len = 0;
    assert_int_equal (dipx_card_make (identity, &card, &good, &len), 0);

    /* Every truncation is a syntax error.  */
    for (size_t n = 0; n < len; n++)
        assert_int_equal (s_parse_card (good, n), DIPX_E_SYNTAX);

    /* Every single bit flipped anywhere is refused, one way or the other.  */
    char *copy = s_dup (good, len);
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            copy[i] ^= (char) (1 << bit);
            int rc = s_parse_card (copy, len);
            if (rc != DIPX_E_SYNTAX && rc != DIPX_E_CARD_SIG)
                fail_msg ("byte %zu bit %d: %d", i, bit, rc);
            copy[i] ^= (char) (1 << bit);
        }
    free (copy);

    /* Changes that keep the syntax break the signature.  */
    const struct {
        const char *from, *to;
        int rc;
    } cases[] = {
        {"Brixton custody", "Brixtom custody", DIPX_E_CARD_SIG},
        {"type: police", "type: cjit", DIPX_E_CARD_SIG},
        {"type: police", "type: broker", DIPX_E_CARD_SIG},
        {"org: MPS01", "org: MPS02", DIPX_E_CARD_SIG},
        {"valid-until: 2028", "valid-until: 2029", DIPX_E_CARD_SIG},
        {"id: police.met.brixton", "id: police.met.brixto", DIPX_E_CARD_SIG},
        /* and everything else is syntax */
        {"dipx-card 1", "dipx-card 2", DIPX_E_SYNTAX},
        {"dipx-card 1\n", "", DIPX_E_SYNTAX},
        {"id: ", "id:  ", DIPX_E_SYNTAX},
        {"id: police", "id: Police", DIPX_E_SYNTAX},
        {"name: Metropolitan", "name:  Metropolitan", DIPX_E_SYNTAX},
        {"custody suite\n", "custody suite \n", DIPX_E_SYNTAX},
        {"custody suite\n", "custody suite\r\n", DIPX_E_SYNTAX},
        {"custody suite", "custody\tsuite", DIPX_E_SYNTAX},
        {"type: police", "type: Police", DIPX_E_SYNTAX},
        {"type: police", "type: pol", DIPX_E_SYNTAX},
        {"type: police", "type: policepolicepolice", DIPX_E_SYNTAX},
        {"org: MPS01", "org: mps01", DIPX_E_SYNTAX},
        {"org: MPS01", "org: MPS-01", DIPX_E_SYNTAX},
        {"org: MPS01", "org: MPS01MPS01MPS01MP", DIPX_E_SYNTAX},
        {"org: MPS01\n", "", DIPX_E_SYNTAX},
        {"area: LBLAM", "area: ", DIPX_E_SYNTAX},
        {"enc-key: ", "enc-key:", DIPX_E_SYNTAX},
        {"sign-key: ", "sign-key: 0", DIPX_E_SYNTAX},
        {"2026-01-01T00:00:00Z", "2026-02-30T00:00:00Z", DIPX_E_SYNTAX},
        {"2026-01-01T00:00:00Z", "2026-01-01", DIPX_E_SYNTAX},
        {"2028-01-01T00:00:00Z", "2026-01-01T00:00:00Z", DIPX_E_SYNTAX},
        {"2028-01-01T00:00:00Z", "2025-01-01T00:00:00Z", DIPX_E_SYNTAX},
        {"self-sig: ", "self-sig:  ", DIPX_E_SYNTAX},
        {"self-sig: ", "signature: ", DIPX_E_SYNTAX},
        {"valid-from", "valid_from", DIPX_E_SYNTAX},
        {"\nself-sig", "\n\nself-sig", DIPX_E_SYNTAX},
        {"\nself-sig", "\nextra: 1\nself-sig", DIPX_E_SYNTAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *bad = s_replace (good, cases[i].from, cases[i].to);
        int rc = s_parse_card (bad, strlen (bad));
        if (rc != cases[i].rc)
            fail_msg ("\"%s\" -> \"%s\": %d, wanted %d", cases[i].from, cases[i].to, rc,
                      cases[i].rc);
        free (bad);
    }

    /* Two lines swapped: syntax, whichever pair.  */
    const char *org = strstr (good, "org: ");
    const char *area = strstr (good, "area: ");
    const char *enc = strstr (good, "enc-key: ");
    char swapped[DIPX_MAX_CARD_BYTES];
    int n = snprintf (swapped, sizeof swapped, "%.*s%.*s%.*s%s", (int) (org - good), good,
                      (int) (enc - area), area, (int) (area - org), org, enc);
    assert_int_equal (s_parse_card (swapped, (size_t) n), DIPX_E_SYNTAX);

    /* CRLF line endings, extra bytes at the end, no final newline.  */
    char crlf[DIPX_MAX_CARD_BYTES];
    size_t m = 0;
    for (size_t i = 0; i < len; i++) {
        if (good[i] == '\n')
            crlf[m++] = '\r';
        crlf[m++] = good[i];
    }
    assert_int_equal (s_parse_card (crlf, m), DIPX_E_SYNTAX);
    char longer[DIPX_MAX_CARD_BYTES + 16];
    memcpy (longer, good, len);
    const char *tails[] = {"\n", "x", " ", "\0"};
    for (size_t i = 0; i < 4; i++) {
        longer[len] = tails[i][0];
        assert_int_equal (s_parse_card (longer, len + 1), DIPX_E_SYNTAX);
    }
    memset (longer, '\n', sizeof longer);
    memcpy (longer, good, len);
    assert_int_equal (s_parse_card (longer, DIPX_MAX_CARD_BYTES + 1), DIPX_E_SYNTAX);

    /* On failure the output is zeroed.  */
    char *bad = s_replace (good, "Brixton custody", "Brixtom custody");
    dipx_card_t out;
    memset (&out, 0x55, sizeof out);
    assert_int_equal (dipx_card_parse (bad, strlen (bad), &out), DIPX_E_CARD_SIG);
    dipx_card_t zero;
    memset (&zero, 0, sizeof zero);
    assert_memory_equal (&out, &zero, sizeof out);
    free (bad);

    /* A longest-possible card still fits and parses.  */
    dipx_card_t big;
    s_golden_fields (&big);
    memset (big.name, 'N', DIPX_MAX_NAME);
    big.name[DIPX_MAX_NAME] = '\0';
    memset (big.org, 'O', DIPX_MAX_CODE);
    memset (big.area, 'A', DIPX_MAX_CODE);
    big.type = DIPX_AGENCY_MONITORING;
    char id[DIPX_MAX_AGENCY_ID + 1];
    memset (id, 'm', DIPX_MAX_AGENCY_ID);
    id[DIPX_MAX_AGENCY_ID] = '\0';
    dipx_identity_t *long_identity = dipx_identity_generate (id);
    char *big_text = NULL;
    size_t big_len = 0;
    assert_int_equal (dipx_card_make (long_identity, &big, &big_text, &big_len), 0);
    assert_true (big_len <= DIPX_CARD_TEXT_MAX);
    assert_int_equal (s_parse_card (big_text, big_len), 0);
    /* One more character in the name is too long.  */
    char *longer_name = s_replace (big_text, "name: N", "name: NN");
    assert_int_equal (s_parse_card (longer_name, strlen (longer_name)), DIPX_E_SYNTAX);
    free (longer_name);
    free (big_text);
    dipx_identity_destroy (&long_identity);

    free (good);
    dipx_identity_destroy (&identity);
}

static void
test_card_files (void **state)
{
    s_tmp_t *tmp = *state;
    dipx_card_t card, loaded;
    char *text = NULL;
    s_make_card ("probation.london", DIPX_AGENCY_PROBATION, NULL, &card, &text, NULL);
    mode_t old_umask = umask (077);
    assert_int_equal (dipx_card_save (&card, s_path (tmp, "probation.card")), 0);
    umask (old_umask);
    assert_int_equal (s_mode (tmp->path), 0644);
    assert_int_equal (dipx_card_load (tmp->path, &loaded), 0);
    assert_memory_equal (&loaded, &card, sizeof card);
    assert_int_equal (dipx_card_save (&card, tmp->path), DIPX_E_EXISTS);
    size_t len;
    char *saved = s_read_file (tmp->path, &len);
    assert_string_equal (saved, text);
    free (saved);
    assert_int_equal (dipx_card_load (s_path (tmp, "missing.card"), &loaded), DIPX_E_IO);
    assert_int_equal (dipx_card_load (tmp->dir, &loaded), DIPX_E_IO);
    char big[DIPX_MAX_CARD_BYTES + 1];
    memset (big, 'x', sizeof big);
    s_write_file (s_path (tmp, "big.card"), big, sizeof big, 0644);
    assert_int_equal (dipx_card_load (tmp->path, &loaded), DIPX_E_SYNTAX);
    free (text);
}

/*  Registry ---------------------------------------------------------------*/

static void
test_registry_add (void **state)
{
    (void) state;
    dipx_registry_t *reg = dipx_registry_new ();
    assert_non_null (reg);
    assert_int_equal (dipx_registry_size (reg), 0);

    dipx_card_t police, cjit, court;
    char *t1, *t2, *t3;
    dipx_identity_t *police_id;
    s_make_card ("police.met.brixton", DIPX_AGENCY_POLICE, &police_id, &police, &t1, NULL);
    s_make_card ("cjit.lambeth", DIPX_AGENCY_CJIT, NULL, &cjit, &t2, NULL);
    s_make_card ("court.camberwell", DIPX_AGENCY_COURT, NULL, &court, &t3, NULL);
    assert_int_equal (dipx_registry_add (reg, &police), 0);
    assert_int_equal (dipx_registry_add (reg, &cjit), 0);
    assert_int_equal (dipx_registry_add (reg, &court), 0);
    assert_int_equal (dipx_registry_size (reg), 3);
    assert_string_equal (dipx_registry_at (reg, 0)->card.id, "police.met.brixton");
    assert_string_equal (dipx_registry_at (reg, 2)->card.id, "court.camberwell");
    assert_null (dipx_registry_at (reg, 3));
    int64_t now = (int64_t) time (NULL);
    assert_in_range (dipx_registry_at (reg, 0)->changed, now - 60, now + 1);
    assert_int_equal (dipx_registry_at (reg, 0)->status, DIPX_STATUS_ACTIVE);

    /* Duplicates: the same card, the same id with other keys, and each key
       under another id.  */
    assert_int_equal (dipx_registry_add (reg, &cjit), DIPX_E_EXISTS);
    dipx_card_t dup;
    char *dup_text;
    s_make_card ("cjit.lambeth", DIPX_AGENCY_CJIT, NULL, &dup, &dup_text, NULL);
    assert_int_equal (dipx_registry_add (reg, &dup), DIPX_E_EXISTS);
    free (dup_text);

    char secret[512];
    char enc_z85[41], sign_z85[41];
    dipx_key_to_z85 (dipx_identity_enc_sk (police_id), enc_z85);
    dipx_key_to_z85 (dipx_identity_sign_sk (police_id), sign_z85); /* the seed: first 32 bytes */
    uint8_t fresh[32];
    randombytes_buf (fresh, sizeof fresh);
    char fresh_z85[41];
    dipx_key_to_z85 (fresh, fresh_z85);
    const char *pairs[2][2] = {{enc_z85, fresh_z85}, {fresh_z85, sign_z85}};
    for (int i = 0; i < 2; i++) {
        snprintf (secret, sizeof secret,
                  "dipx-secret 1\nid: police.met.other\nenc-secret: %s\nsign-secret: %s\n",
                  pairs[i][0], pairs[i][1]);
        dipx_identity_t *twin = NULL;
        assert_int_equal (dipx_identity_parse (secret, strlen (secret), &twin), 0);
        dipx_card_t twin_card;
        s_golden_fields (&twin_card);
        char *twin_text = NULL;
        assert_int_equal (dipx_card_make (twin, &twin_card, &twin_text, NULL), 0);
        assert_int_equal (dipx_registry_add (reg, &twin_card), DIPX_E_EXISTS);
        free (twin_text);
        dipx_identity_destroy (&twin);
    }
    sodium_memzero (secret, sizeof secret);
    sodium_memzero (enc_z85, sizeof enc_z85);
    sodium_memzero (sign_z85, sizeof sign_z85);

    /* Broker cards, bad signatures and bad fields are refused.  */
    dipx_card_t broker;
    char *broker_text;
    s_make_card ("broker.london", DIPX_AGENCY_BROKER, NULL, &broker, &broker_text, NULL);
    assert_int_equal (dipx_registry_add (reg, &broker), DIPX_E_VALUE);
    free (broker_text);
    dipx_card_t forged;
    char *forged_text;
    s_make_card ("prison.brixton", DIPX_AGENCY_PRISON, NULL, &forged, &forged_text, NULL);
    forged.sig[5] ^= 1;
    assert_int_equal (dipx_registry_add (reg, &forged), DIPX_E_CARD_SIG);
    forged.sig[5] ^= 1;
    strcpy (forged.name, "Renamed after signing");
    assert_int_equal (dipx_registry_add (reg, &forged), DIPX_E_CARD_SIG);
    strcpy (forged.org, "bad");
    assert_int_equal (dipx_registry_add (reg, &forged), DIPX_E_VALUE);
    free (forged_text);
    assert_int_equal (dipx_registry_size (reg), 3);

    /* Lookups.  */
    const dipx_entry_t *e = dipx_registry_by_id (reg, "cjit.lambeth");
    assert_non_null (e);
    assert_memory_equal (&e->card, &cjit, sizeof cjit);
    assert_ptr_equal (dipx_registry_by_enc_key (reg, court.enc_pk),
                      dipx_registry_by_id (reg, "court.camberwell"));
    assert_null (dipx_registry_by_id (reg, "cjit.lambet"));
    assert_null (dipx_registry_by_id (reg, ""));
    assert_null (dipx_registry_by_enc_key (reg, court.sign_pk));
    assert_null (dipx_registry_by_enc_key (reg, fresh));

    /* Status: suspend, reactivate, revoke; revocation is final.  */
    assert_int_equal (dipx_registry_set_status (reg, "cjit.lambeth", DIPX_STATUS_SUSPENDED), 0);
    assert_int_equal (dipx_registry_by_id (reg, "cjit.lambeth")->status, DIPX_STATUS_SUSPENDED);
    assert_int_equal (dipx_registry_set_status (reg, "cjit.lambeth", DIPX_STATUS_ACTIVE), 0);
    assert_int_equal (dipx_registry_set_status (reg, "cjit.lambeth", DIPX_STATUS_REVOKED), 0);
    assert_int_equal (dipx_registry_set_status (reg, "cjit.lambeth", DIPX_STATUS_ACTIVE),
                      DIPX_E_VALUE);
    assert_int_equal (dipx_registry_set_status (reg, "cjit.lambeth", DIPX_STATUS_SUSPENDED),
                      DIPX_E_VALUE);
    assert_int_equal (dipx_registry_set_status (reg, "cjit.lambeth", DIPX_STATUS_REVOKED), 0);
    assert_int_equal (dipx_registry_by_id (reg, "cjit.lambeth")->status, DIPX_STATUS_REVOKED);
    assert_int_equal (dipx_registry_set_status (reg, "nobody", DIPX_STATUS_ACTIVE),
                      DIPX_E_NOT_FOUND);
    assert_int_equal (dipx_registry_set_status (reg, "court.camberwell", DIPX_STATUS_COUNT),
                      DIPX_E_VALUE);
    assert_int_equal (dipx_registry_set_status (reg, "court.camberwell", -1), DIPX_E_VALUE);
    /* A revoked agency's keys stay taken.  */
    assert_int_equal (dipx_registry_add (reg, &cjit), DIPX_E_EXISTS);

    assert_string_equal (dipx_status_name (DIPX_STATUS_SUSPENDED), "suspended");
    assert_null (dipx_status_name (DIPX_STATUS_COUNT));
    assert_int_equal (dipx_status_parse ("revoked"), DIPX_STATUS_REVOKED);
    assert_int_equal (dipx_status_parse ("Revoked"), DIPX_E_VALUE);
    assert_int_equal (dipx_status_parse (NULL), DIPX_E_VALUE);

    free (t1);
    free (t2);
    free (t3);
    dipx_identity_destroy (&police_id);
    dipx_registry_destroy (&reg);
    assert_null (reg);
}

/*  A registry of three agencies, one suspended; its text in *text.  */
static dipx_registry_t *
s_three_agencies (char **text, size_t *len)
{
    dipx_registry_t *reg = dipx_registry_new ();
    const char *ids[3] = {"police.met.brixton", "cjit.lambeth", "treatment.lambeth"};
    const int types[3] = {DIPX_AGENCY_POLICE, DIPX_AGENCY_CJIT, DIPX_AGENCY_TREATMENT};
    for (int i = 0; i < 3; i++) {
        dipx_card_t card;
        char *card_text;
        s_make_card (ids[i], types[i], NULL, &card, &card_text, NULL);
        assert_int_equal (dipx_registry_add (reg, &card), 0);
        free (card_text);
    }
    assert_int_equal (dipx_registry_set_status (reg, "cjit.lambeth", DIPX_STATUS_SUSPENDED), 0);
    assert_int_equal (dipx_registry_format (reg, text, len), 0);
    return reg;
}

static void
test_registry_files (void **state)
{
    s_tmp_t *tmp = *state;
    char *text = NULL;
    size_t len = 0;
    dipx_registry_t *reg = s_three_agencies (&text, &len);
    char path[512];
    snprintf (path, sizeof path, "%s", s_path (tmp, "registry"));

    assert_int_equal (dipx_registry_create (reg, path), 0);
    assert_int_equal (s_mode (path), 0644);
    assert_int_equal (dipx_registry_create (reg, path), DIPX_E_EXISTS);
    assert_int_equal (chmod (path, 0640), 0);
    assert_int_equal (dipx_registry_set_status (reg, "police.met.brixton", DIPX_STATUS_REVOKED), 0);
    assert_int_equal (dipx_registry_save (reg, path), 0);
    assert_int_equal (s_mode (path), 0640); /* kept across the atomic replace */

    dipx_registry_t *loaded = NULL;
    int line = -1;
    assert_int_equal (dipx_registry_load (path, &loaded, &line), 0);
    assert_int_equal (line, 0);
    assert_int_equal (dipx_registry_size (loaded), 3);
    for (size_t i = 0; i < 3; i++)
        assert_memory_equal (dipx_registry_at (loaded, i), dipx_registry_at (reg, i),
                             sizeof (dipx_entry_t));
    char *again = NULL;
    size_t again_len = 0, file_len = 0;
    assert_int_equal (dipx_registry_format (loaded, &again, &again_len), 0);
    char *file = s_read_file (path, &file_len);
    assert_int_equal (file_len, again_len);
    assert_memory_equal (file, again, file_len);
    assert_int_equal (dipx_registry_by_id (loaded, "police.met.brixton")->status,
                      DIPX_STATUS_REVOKED);
    const dipx_entry_t *cjit = dipx_registry_by_id (loaded, "cjit.lambeth");
    assert_ptr_equal (dipx_registry_by_enc_key (loaded, cjit->card.enc_pk), cjit);

    /* No temporary file is left beside the registry.  */
    DIR *dir = opendir (tmp->dir);
    assert_non_null (dir);
    struct dirent *entry;
    while ((entry = readdir (dir)) != NULL)
        if (entry->d_name[0] != '.' && strcmp (entry->d_name, "registry") != 0)
            fail_msg ("left behind: %s", entry->d_name);
    closedir (dir);

    /* An unwritable place fails and leaves the old file alone.  */
    assert_int_equal (dipx_registry_save (reg, s_path (tmp, "no/such/registry")), DIPX_E_IO);
    dipx_registry_destroy (&loaded);
    assert_int_equal (dipx_registry_load (s_path (tmp, "missing"), &loaded, &line), DIPX_E_IO);
    assert_null (loaded);

    free (file);
    free (again);
    free (text);
    dipx_registry_destroy (&loaded);
    dipx_registry_destroy (&reg);
}

/*  Line n (1-based) of text starts at the returned offset.  */
static size_t
s_line_at (const char *text, int n)
{
    size_t off = 0;
    for (int i = 1; i < n; i++)
        off = (size_t) (strchr (text + off, '\n') - text) + 1;
    return off;
}

static void
test_registry_parse (void **state)
{
    (void) state;
    char *good = NULL;
    size_t len = 0;
    dipx_registry_t *reg = s_three_agencies (&good, &len);
    int line = -1;
    assert_int_equal (s_parse_registry (good, len, &line), 0);
    assert_int_equal (line, 0);
    assert_int_equal (s_parse_registry ("dipx-registry 1\n", 16, &line), 0);
    assert_int_equal (s_parse_registry ("", 0, &line), DIPX_E_SYNTAX);
    assert_int_equal (line, 1);

    /* Lines: 1 header; per entry i (0-based) a blank line at 2 + 14i, the
       card at 3 + 14i .. 13 + 14i, status and changed after it.  */
    const struct {
        int line;         /* line to change */
        const char *from; /* text in that line */
        const char *to;
        int rc;
        int at; /* line reported */
    } cases[] = {
        {1, "dipx-registry 1", "dipx-registry 2", DIPX_E_SYNTAX, 1},
        {2, "\n", "x\n", DIPX_E_SYNTAX, 2},
        {2, "\n", "", DIPX_E_SYNTAX, 2},
        {7, "org: ", "org: x", DIPX_E_SYNTAX, 7},
        {3 + 14, "dipx-card 1", "dipx-card 2", DIPX_E_SYNTAX, 17},
        {12 + 14, "valid-until: 20", "valid-until: 19", DIPX_E_SYNTAX, 26},
        {5 + 28, "name: ", "name: x", DIPX_E_CARD_SIG, 31},
        {14, "status: active", "status: paused", DIPX_E_SYNTAX, 14},
        {14, "status: active", "status:  active", DIPX_E_SYNTAX, 14},
        {14 + 14, "status: suspended", "state: suspended", DIPX_E_SYNTAX, 28},
        {15, "changed: ", "changed: 2026-02-30T00:00:00Z", DIPX_E_SYNTAX, 15},
        {15, "\n", "\r\n", DIPX_E_SYNTAX, 15},
        {16, "\n", "\n\n", DIPX_E_SYNTAX, 17},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t off = s_line_at (good, cases[i].line);
        const char *at = strstr (good + off, cases[i].from);
        assert_non_null (at);
        size_t head = (size_t) (at - good);
        char *bad = malloc (len + 64);
        memcpy (bad, good, head);
        size_t n = head;
        memcpy (bad + n, cases[i].to, strlen (cases[i].to));
        n += strlen (cases[i].to);
        size_t rest = head + strlen (cases[i].from);
        if (strcmp (cases[i].from, "changed: ") == 0)
            rest += 20; /* replace the time too */
        memcpy (bad + n, good + rest, len - rest);
        n += len - rest;
        line = -1;
        int rc = s_parse_registry (bad, n, &line);
        if (rc != cases[i].rc || line != cases[i].at)
            fail_msg ("case %zu: rc %d line %d, wanted %d at %d", i, rc, line, cases[i].rc,
                      cases[i].at);
        free (bad);
    }

    /* After the end: a blank line, junk, no final newline.  */
    char *longer = malloc (len + 2);
    memcpy (longer, good, len);
    longer[len] = '\n';
    assert_int_equal (s_parse_registry (longer, len + 1, &line), DIPX_E_SYNTAX);
    assert_int_equal (line, 45); /* the card the blank line 44 announces */
    assert_int_equal (s_parse_registry (longer, len - 1, &line), DIPX_E_SYNTAX);
    assert_int_equal (line, 43);
    free (longer);

    /* Only the prefixes that end between entries parse.  */
    size_t ends[3] = {16, s_line_at (good, 16), s_line_at (good, 30)};
    for (size_t n = 0; n < len; n++) {
        int rc = s_parse_registry (good, n, &line);
        bool boundary = n == ends[0] || n == ends[1] || n == ends[2];
        if ((rc == 0) != boundary)
            fail_msg ("prefix %zu: %d", n, rc);
    }

    /* A duplicate card and a broker card are reported at their first line.  */
    size_t second = s_line_at (good, 16), third = s_line_at (good, 30);
    char *dup = malloc (len + 1024);
    memcpy (dup, good, third);
    memcpy (dup + third, good + 16, second - 16); /* the first entry again */
    assert_int_equal (s_parse_registry (dup, third + second - 16, &line), DIPX_E_EXISTS);
    assert_int_equal (line, 31);
    dipx_card_t broker;
    char *broker_text;
    s_make_card ("broker.london", DIPX_AGENCY_BROKER, NULL, &broker, &broker_text, NULL);
    size_t n = third;
    n += (size_t) sprintf (dup + n, "\n%sstatus: active\nchanged: 2026-01-01T00:00:00Z\n",
                           broker_text);
    assert_int_equal (s_parse_registry (dup, n, &line), DIPX_E_VALUE);
    assert_int_equal (line, 31);
    free (broker_text);
    free (dup);

    int *no_line = NULL;
    dipx_registry_t *none = NULL;
    assert_int_equal (dipx_registry_parse (NULL, 3, &none, no_line), DIPX_E_INVAL);
    free (good);
    dipx_registry_destroy (&reg);
}

static void
test_registry_50k (void **state)
{
    (void) state;
    dipx_registry_t *reg = dipx_registry_new ();
    dipx_card_t card;
    s_golden_fields (&card);
    /* Synthetic cards: distinct ids and keys, no signatures (the insert hook
       takes verified cards; signing 50,000 would only test libsodium).  */
    for (uint32_t i = 0; i < DIPX_MAX_AGENCIES; i++) {
        snprintf (card.id, sizeof card.id, "agency-%05u", i);
        crypto_generichash (card.enc_pk, 32, (const uint8_t *) &i, sizeof i, NULL, 0);
        crypto_generichash (card.sign_pk, 32, card.enc_pk, 32, NULL, 0);
        card.type = (int) (i % DIPX_AGENCY_BROKER);
        int rc = dipx__registry_insert (reg, &card, (int) (i % 3), 1767225600);
        if (rc != 0)
            fail_msg ("insert %u: %d", i, rc);
    }
    assert_int_equal (dipx_registry_size (reg), DIPX_MAX_AGENCIES);
    snprintf (card.id, sizeof card.id, "agency-%05u", DIPX_MAX_AGENCIES);
    memset (card.enc_pk, 0xee, 32);
    memset (card.sign_pk, 0xef, 32);
    assert_int_equal (dipx__registry_insert (reg, &card, 0, 0), DIPX_E_COUNT);

    for (uint32_t i = 0; i < DIPX_MAX_AGENCIES; i++) {
        char id[32];
        uint8_t key[32];
        snprintf (id, sizeof id, "agency-%05u", i);
        crypto_generichash (key, 32, (const uint8_t *) &i, sizeof i, NULL, 0);
        const dipx_entry_t *by_id = dipx_registry_by_id (reg, id);
        const dipx_entry_t *by_key = dipx_registry_by_enc_key (reg, key);
        if (!by_id || by_id != by_key || by_id != dipx_registry_at (reg, i)
            || strcmp (by_id->card.id, id) != 0 || by_id->status != (int) (i % 3))
            fail_msg ("lookup %u", i);
        key[0] ^= 1;
        id[6] = '_';
        if (dipx_registry_by_enc_key (reg, key) || dipx_registry_by_id (reg, id))
            fail_msg ("false hit %u", i);
    }
    dipx_registry_destroy (&reg);

    /* And below the limit, a duplicate of entry 31337 by any key.  */
    reg = dipx_registry_new ();
    for (uint32_t i = 0; i < 40000; i++) {
        snprintf (card.id, sizeof card.id, "agency-%05u", i);
        crypto_generichash (card.enc_pk, 32, (const uint8_t *) &i, sizeof i, NULL, 0);
        crypto_generichash (card.sign_pk, 32, card.enc_pk, 32, NULL, 0);
        assert_int_equal (dipx__registry_insert (reg, &card, 0, 0), 0);
    }
    uint32_t k = 31337;
    dipx_card_t twin = card;
    snprintf (twin.id, sizeof twin.id, "agency-%05u", k);
    assert_int_equal (dipx__registry_insert (reg, &twin, 0, 0), DIPX_E_EXISTS);
    twin = card;
    strcpy (twin.id, "fresh");
    crypto_generichash (twin.enc_pk, 32, (const uint8_t *) &k, sizeof k, NULL, 0);
    assert_int_equal (dipx__registry_insert (reg, &twin, 0, 0), DIPX_E_EXISTS);
    twin = card;
    strcpy (twin.id, "fresh");
    memset (twin.enc_pk, 0xee, 32);
    assert_int_equal (dipx__registry_insert (reg, &twin, 0, 0), DIPX_E_EXISTS); /* sign key */
    memset (twin.sign_pk, 0xef, 32);
    assert_int_equal (dipx__registry_insert (reg, &twin, 0, 0), 0);
    assert_int_equal (dipx_registry_size (reg), 40001);
    dipx_registry_destroy (&reg);
}

int
main (void)
{
    if (sodium_init () < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_z85),
        cmocka_unit_test (test_fingerprint),
        cmocka_unit_test (test_time),
        cmocka_unit_test (test_identity_generate),
        cmocka_unit_test_setup_teardown (test_identity_save_load, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_identity_perm, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_identity_dir_sync_fails, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_identity_fixed, s_setup, s_teardown),
        cmocka_unit_test (test_identity_corrupt),
        cmocka_unit_test (test_card_round_trip),
        cmocka_unit_test (test_card_golden),
        cmocka_unit_test (test_card_mutations),
        cmocka_unit_test_setup_teardown (test_card_files, s_setup, s_teardown),
        cmocka_unit_test (test_registry_add),
        cmocka_unit_test_setup_teardown (test_registry_files, s_setup, s_teardown),
        cmocka_unit_test (test_registry_parse),
        cmocka_unit_test (test_registry_50k),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
