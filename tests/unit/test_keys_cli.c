/*  test_keys_cli.c - the keygen, card and registry subcommands of `dipx`,
    called in-process with argument vectors, checked by exit status and by
    the files they leave (read back through keys/).
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "dipx_card.h"
#include "dipx_cli.h"
#include "dipx_registry.h"

static char s_dir[256];

/*  A path in the test directory; each call returns a fresh buffer slot.  */
static const char *
s_path (const char *name)
{
    static char paths[16][512];
    static int next;
    char *p = paths[next++ % 16];
    snprintf (p, 512, "%s/%s", s_dir, name);
    return p;
}

typedef int(s_cmd_fn) (int argc, char **argv);

/*  Runs a subcommand with a NULL-terminated list of arguments.  */
static int
s_run (s_cmd_fn *cmd, const char *name, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *) name;
    va_list ap;
    va_start (ap, name);
    const char *arg;
    while ((arg = va_arg (ap, const char *)) != NULL && argc < 31)
        argv[argc++] = (char *) arg;
    va_end (ap);
    argv[argc] = NULL;
    fflush (stdout);
    return cmd (argc, argv);
}

static mode_t
s_mode (const char *path)
{
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    return st.st_mode & 07777;
}

static void
test_keygen (void **state)
{
    (void) state;
    const char *secret = s_path ("police.secret");
    const char *card_path = s_path ("police.card");
    assert_int_equal (s_run (dipx_cli_keygen, "keygen", "--id", "police.met.brixton", "--out",
                             secret, "--card", card_path, "--name", "Brixton custody suite",
                             "--type", "police", "--org", "MPS01", "--area=LBLAM",
                             "--valid-days", "365", NULL),
                      0);
    assert_int_equal (s_mode (secret), 0600);
    assert_int_equal (s_mode (card_path), 0644);
    dipx_identity_t *identity = NULL;
    assert_int_equal (dipx_identity_load (secret, &identity), 0);
    dipx_card_t card;
    assert_int_equal (dipx_card_load (card_path, &card), 0);
    assert_string_equal (card.id, "police.met.brixton");
    assert_string_equal (card.name, "Brixton custody suite");
    assert_string_equal (card.area, "LBLAM");
    assert_int_equal (card.valid_until - card.valid_from, 365 * 86400);
    assert_memory_equal (card.enc_pk, dipx_identity_enc_pk (identity), 32);
    dipx_identity_destroy (&identity);

    /* Never overwrites; the failed run leaves the files as they were.  */
    assert_int_equal (s_run (dipx_cli_keygen, "keygen", "--id", "police.met.brixton", "--out",
                             secret, NULL),
                      1);
    /* A refused card file removes the secret it had just written.  */
    const char *other = s_path ("other.secret");
    assert_int_equal (s_run (dipx_cli_keygen, "keygen", "--id", "cjit.lambeth", "--out", other,
                             "--card", card_path, "--name", "CJIT", "--type", "cjit", "--org",
                             "LB01", "--area", "LBLAM", NULL),
                      1);
    assert_int_equal (access (other, F_OK), -1);

    /* Secret only; the broker's own card.  */
    assert_int_equal (s_run (dipx_cli_keygen, "keygen", "--out", other, "--id", "cjit.lambeth",
                             NULL),
                      0);
    assert_int_equal (s_run (dipx_cli_keygen, "keygen", "--id", "broker.london", "--out",
                             s_path ("broker.secret"), "--card", s_path ("broker.card"), "--name",
                             "London broker", "--type", "broker", "--org", "DIPX", "--area",
                             "LON", NULL),
                      0);

    /* Usage errors: exit 2, nothing written.  */
    const char *bad = s_path ("bad.secret");
    assert_int_equal (s_run (dipx_cli_keygen, "keygen", "--id", "x", NULL), 2);
    assert_int_equal (s_run (dipx_cli_keygen, "keygen", "--out", bad, NULL), 2);
    assert_int_equal (s_run (dipx_cli_keygen, "keygen", "--id", "Bad", "--out", bad, NULL), 2);
    assert_int_equal (s_run (dipx_cli_keygen, "keygen", "--id", "a", "--out", bad, "--bogus", "1",
                             NULL),
                      2);
    assert_int_equal (s_run (dipx_cli_keygen, "keygen", "--id", "a", "--out", bad, "extra", NULL),
                      2);
    assert_int_equal (s_run (dipx_cli_keygen, "keygen", "--id", "a", "--out", NULL), 2);
    assert_int_equal (s_run (dipx_cli_keygen, "keygen", "--id", "a", "--out", bad, "--name", "A",
                             NULL),
                      2);
    const char *card_args[][2] = {
        {"--type", "pirate"},   {"--org", "lower"},     {"--area", "TOO-LONG-AREA-CODE"},
        {"--name", " padded"},  {"--valid-days", "0"},  {"--valid-days", "12x"},
        {"--valid-days", "99999999"},
    };
    for (size_t i = 0; i < sizeof card_args / sizeof card_args[0]; i++) {
        const char *type = strcmp (card_args[i][0], "--type") ? "cjit" : card_args[i][1];
        const char *org = strcmp (card_args[i][0], "--org") ? "ORG" : card_args[i][1];
        const char *area = strcmp (card_args[i][0], "--area") ? "AREA" : card_args[i][1];
        const char *name = strcmp (card_args[i][0], "--name") ? "Name" : card_args[i][1];
        const char *days = strcmp (card_args[i][0], "--valid-days") ? "10" : card_args[i][1];
        int rc = s_run (dipx_cli_keygen, "keygen", "--id", "a", "--out", bad, "--card",
                        s_path ("bad.card"), "--name", name, "--type", type, "--org", org,
                        "--area", area, "--valid-days", days, NULL);
        if (rc != 2)
            fail_msg ("%s %s: exit %d", card_args[i][0], card_args[i][1], rc);
    }
    assert_int_equal (access (bad, F_OK), -1);
    assert_int_equal (access (s_path ("bad.card"), F_OK), -1);
    assert_int_equal (s_run (dipx_cli_keygen, "keygen", "--help", NULL), 0);
}

static void
test_card (void **state)
{
    (void) state;
    const char *card_path = s_path ("police.card");
    assert_int_equal (s_run (dipx_cli_card, "card", "show", card_path, NULL), 0);
    assert_int_equal (s_run (dipx_cli_card, "card", "verify", card_path, NULL), 0);
    assert_int_equal (s_run (dipx_cli_card, "card", "verify", s_path ("missing.card"), NULL), 1);

    /* A tampered copy fails both.  */
    FILE *in = fopen (card_path, "rb");
    assert_non_null (in);
    char text[4096];
    size_t len = fread (text, 1, sizeof text, in);
    fclose (in);
    char *name = strstr (text, "Brixton");
    assert_non_null (name);
    name[0] = 'b';
    const char *tampered = s_path ("tampered.card");
    FILE *out = fopen (tampered, "wb");
    fwrite (text, 1, len, out);
    fclose (out);
    assert_int_equal (s_run (dipx_cli_card, "card", "verify", tampered, NULL), 1);
    assert_int_equal (s_run (dipx_cli_card, "card", "show", tampered, NULL), 1);

    assert_int_equal (s_run (dipx_cli_card, "card", NULL), 2);
    assert_int_equal (s_run (dipx_cli_card, "card", "show", NULL), 2);
    assert_int_equal (s_run (dipx_cli_card, "card", "burn", card_path, NULL), 2);
    assert_int_equal (s_run (dipx_cli_card, "card", "show", card_path, "more", NULL), 2);
}

static void
test_registry (void **state)
{
    (void) state;
    const char *reg_path = s_path ("registry");
    const char *card_path = s_path ("police.card");
    assert_int_equal (s_run (dipx_cli_registry, "registry", "--file", reg_path, "list", NULL), 1);
    assert_int_equal (s_run (dipx_cli_registry, "registry", "--file", reg_path, "init", NULL), 0);
    assert_int_equal (s_run (dipx_cli_registry, "registry", "init", "--file", reg_path, NULL), 1);
    assert_int_equal (
        s_run (dipx_cli_registry, "registry", "--file", reg_path, "add", card_path, NULL), 0);
    assert_int_equal (
        s_run (dipx_cli_registry, "registry", "--file", reg_path, "add", card_path, NULL), 1);
    assert_int_equal (s_run (dipx_cli_registry, "registry", "--file", reg_path, "add",
                             s_path ("broker.card"), NULL),
                      1);
    assert_int_equal (s_run (dipx_cli_registry, "registry", "--file", reg_path, "add",
                             s_path ("tampered.card"), NULL),
                      1);
    assert_int_equal (s_run (dipx_cli_registry, "registry", "--file", reg_path, "list", NULL), 0);

    assert_int_equal (s_run (dipx_cli_registry, "registry", "--file", reg_path, "suspend",
                             "police.met.brixton", NULL),
                      0);
    dipx_registry_t *reg = NULL;
    assert_int_equal (dipx_registry_load (reg_path, &reg, NULL), 0);
    assert_int_equal (dipx_registry_size (reg), 1);
    assert_int_equal (dipx_registry_by_id (reg, "police.met.brixton")->status,
                      DIPX_STATUS_SUSPENDED);
    dipx_registry_destroy (&reg);
    assert_int_equal (s_run (dipx_cli_registry, "registry", "--file", reg_path, "activate",
                             "police.met.brixton", NULL),
                      0);
    assert_int_equal (s_run (dipx_cli_registry, "registry", "--file", reg_path, "revoke",
                             "police.met.brixton", NULL),
                      0);
    assert_int_equal (s_run (dipx_cli_registry, "registry", "--file", reg_path, "activate",
                             "police.met.brixton", NULL),
                      1);
    assert_int_equal (s_run (dipx_cli_registry, "registry", "--file", reg_path, "suspend",
                             "nobody", NULL),
                      1);
    assert_int_equal (dipx_registry_load (reg_path, &reg, NULL), 0);
    assert_int_equal (dipx_registry_by_id (reg, "police.met.brixton")->status,
                      DIPX_STATUS_REVOKED);
    dipx_registry_destroy (&reg);

    /* A damaged registry is reported with its line, and left alone.  */
    FILE *f = fopen (reg_path, "ab");
    fputs ("junk\n", f);
    fclose (f);
    assert_int_equal (s_run (dipx_cli_registry, "registry", "--file", reg_path, "list", NULL), 1);

    assert_int_equal (s_run (dipx_cli_registry, "registry", "list", NULL), 2);
    assert_int_equal (s_run (dipx_cli_registry, "registry", "--file", reg_path, NULL), 2);
    assert_int_equal (s_run (dipx_cli_registry, "registry", "--file", reg_path, "add", NULL), 2);
    assert_int_equal (
        s_run (dipx_cli_registry, "registry", "--file", reg_path, "destroy", "x", NULL), 2);
    assert_int_equal (s_run (dipx_cli_registry, "registry", "--help", NULL), 0);
}

int
main (void)
{
    if (dipx_test_mkdtemp (s_dir, sizeof s_dir, "dipx-cli") != 0)
        return 1;
    /* The tests run in order and share the directory's files.  */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_keygen),
        cmocka_unit_test (test_card),
        cmocka_unit_test (test_registry),
    };
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    dipx_test_rmtree (s_dir);
    return failed;
}
