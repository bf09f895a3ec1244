/*  dipx_cli_keys.c - the key-management subcommands of `dipx`: keygen, card
    and registry (declared in dipx_cli.h; main lives in dipx_cli.c).

    Design. Each subcommand parses its own arguments with a small table-driven
    parser (no getopt: no global state, so main may run several subcommands
    in one process, and the tests call these functions directly). Options are
    "--name VALUE" or "--name=VALUE" and may come before or after the
    positional words. Output for people goes to stdout; errors go to stderr as
    "dipx <command>: <what>: <dipx_strerror text>". Exit status: 0 done,
    1 refused or failed, 2 usage (unknown option, missing or bad argument).

    Files are never overwritten by keygen, card files included; the registry
    is rewritten atomically by the library, so an interrupted command leaves
    the old registry in place.
*/
#include "dipx_cli.h"
#include "dipx_cli_args.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dipx_card.h"
#include "dipx_mp.h"
#include "dipx_registry.h"
#include "dipx_types.h"

enum { S_DONE = 0, S_FAILED = 1, S_USAGE = 2 };

#define S_MAX_POSITIONAL 4
#define S_DEFAULT_VALID_DAYS 730
#define S_MAX_VALID_DAYS 36600 /* a century: anything longer is a typo */

/*  Copies a NUL-terminated value into a fixed field if it fits and passes
    check; prints why not otherwise.  */
static bool
s_set_text (const char *cmd, const char *what, const char *value, char *field, size_t size,
            dipx_text_check_fn *check, const char *rule)
{
    size_t len = strlen (value);
    if (len >= size || !check (value, len)) {
        fprintf (stderr, "dipx %s: bad %s \"%s\": %s, at most %zu characters\n", cmd, what, value,
                 rule, size - 1);
        return false;
    }
    memcpy (field, value, len + 1);
    return true;
}

/*  dipx_strerror (rc), with the system's reason for an I/O error when the
    call left one in errno (callers clear errno before it). Uses buf.  */
static const char *
s_why (int rc, int err, char *buf, size_t size)
{
    if (rc == DIPX_E_IO && err != 0)
        snprintf (buf, size, "%s (%s)", dipx_strerror (rc), strerror (err));
    else
        snprintf (buf, size, "%s", dipx_strerror (rc));
    return buf;
}

static void
s_print_types (FILE *out)
{
    for (int t = 0; t < DIPX_AGENCY_COUNT; t++)
        fprintf (out, "%s%s", t ? ", " : "", dipx_agency_type_name (t));
    fputc ('\n', out);
}

/*  keygen -----------------------------------------------------------------*/

static const char s_keygen_usage[] =
    "usage: dipx keygen --id ID --out SECRETFILE\n"
    "                   [--card CARDFILE --name NAME --type TYPE --org ORG --area AREA\n"
    "                    [--valid-days N]]\n"
    "Creates a new identity in SECRETFILE (mode 0600; never overwritten) and,\n"
    "with --card, its self-signed card (valid from now for N days, default 730).\n";

/*  The card keygen was asked to write, from its options.  */
typedef struct {
    const char *path;       /* --card */
    const char *name;       /* --name */
    const char *type;       /* --type */
    const char *org;        /* --org */
    const char *area;       /* --area */
    const char *valid_days; /* --valid-days */
} s_card_args_t;

/*  Fills card from the options; S_DONE or S_USAGE after printing why.  */
static int
s_card_from_args (const s_card_args_t *a, dipx_card_t *card)
{
    if (!a->path || !a->name || !a->type || !a->org || !a->area) {
        fprintf (stderr, "dipx keygen: a card needs --card, --name, --type, --org and --area\n");
        return S_USAGE;
    }
    memset (card, 0, sizeof *card);
    card->type = dipx_agency_type_parse (a->type);
    if (card->type < 0) {
        fprintf (stderr, "dipx keygen: unknown type \"%s\"; one of: ", a->type);
        s_print_types (stderr);
        return S_USAGE;
    }
    if (!s_set_text ("keygen", "name", a->name, card->name, sizeof card->name,
                     dipx_text_is_printable, "printable ASCII without edge spaces")
        || !s_set_text ("keygen", "org", a->org, card->org, sizeof card->org, dipx_text_is_code,
                        "A-Z and 0-9")
        || !s_set_text ("keygen", "area", a->area, card->area, sizeof card->area,
                        dipx_text_is_code, "A-Z and 0-9"))
        return S_USAGE;
    long days = S_DEFAULT_VALID_DAYS;
    if (a->valid_days) {
        char *end = NULL;
        days = strtol (a->valid_days, &end, 10);
        if (end == a->valid_days || *end != '\0' || days < 1 || days > S_MAX_VALID_DAYS) {
            fprintf (stderr, "dipx keygen: --valid-days wants a number of days, 1 to %d\n",
                     S_MAX_VALID_DAYS);
            return S_USAGE;
        }
    }
    card->valid_from = (int64_t) time (NULL);
    card->valid_until = card->valid_from + (int64_t) days * 86400;
    return S_DONE;
}

int
dipx_cli_keygen (int argc, char **argv)
{
    if (dipx_cli_wants_help (argc, argv)) {
        fputs (s_keygen_usage, stdout);
        return S_DONE;
    }
    const char *id = NULL, *out = NULL;
    s_card_args_t a = {0};
    const dipx_cli_opt_t opts[] = {
        {"id", &id, NULL},       {"out", &out, NULL},    {"card", &a.path, NULL},
        {"name", &a.name, NULL}, {"type", &a.type, NULL}, {"org", &a.org, NULL},
        {"area", &a.area, NULL}, {"valid-days", &a.valid_days, NULL}, {NULL, NULL, NULL},
    };
    const char *words[S_MAX_POSITIONAL];
    int nwords = dipx_cli_parse_args ("keygen", argc, argv, opts, words, S_MAX_POSITIONAL);
    if (nwords != 0 || !id || !out) {
        if (nwords > 0)
            fprintf (stderr, "dipx keygen: unexpected argument \"%s\"\n", words[0]);
        else if (nwords == 0)
            fprintf (stderr, "dipx keygen: --id and --out are required\n");
        fputs (s_keygen_usage, stderr);
        return S_USAGE;
    }
    if (strlen (id) > DIPX_MAX_AGENCY_ID || !dipx_text_is_agency_id (id, strlen (id))) {
        fprintf (stderr, "dipx keygen: bad id \"%s\": [a-z0-9][a-z0-9._-]*, at most %d characters\n",
                 id, DIPX_MAX_AGENCY_ID);
        return S_USAGE;
    }
    bool want_card = a.path || a.name || a.type || a.org || a.area || a.valid_days;
    dipx_card_t card;
    if (want_card) {
        int usage = s_card_from_args (&a, &card);
        if (usage != S_DONE)
            return usage;
    }

    int status = S_FAILED;
    bool saved = false;
    char *text = NULL;
    char why[160];
    dipx_identity_t *identity = dipx_identity_generate (id);
    if (!identity) {
        fprintf (stderr, "dipx keygen: %s\n", dipx_strerror (DIPX_E_NOMEM));
        goto cleanup;
    }
    /* Make the card before writing anything, so a refused card leaves no file.  */
    int rc = want_card ? dipx_card_make (identity, &card, &text, NULL) : 0;
    if (rc != 0) {
        fprintf (stderr, "dipx keygen: cannot make the card: %s\n", dipx_strerror (rc));
        goto cleanup;
    }
    errno = 0;
    rc = dipx_identity_save (identity, out);
    if (rc != 0) {
        fprintf (stderr, "dipx keygen: %s: %s%s\n", out, s_why (rc, errno, why, sizeof why),
                 rc == DIPX_E_EXISTS ? " (refusing to overwrite)" : "");
        goto cleanup;
    }
    saved = true;
    if (want_card) {
        errno = 0;
        rc = dipx_card_save (&card, a.path);
        if (rc != 0) {
            fprintf (stderr, "dipx keygen: %s: %s%s; %s not kept\n", a.path,
                     s_why (rc, errno, why, sizeof why),
                     rc == DIPX_E_EXISTS ? " (refusing to overwrite)" : "", out);
            goto cleanup;
        }
    }
    char enc[DIPX_Z85_KEY_LEN + 1], sign[DIPX_Z85_KEY_LEN + 1], fp[17];
    dipx_key_to_z85 (dipx_identity_enc_pk (identity), enc);
    dipx_key_to_z85 (dipx_identity_sign_pk (identity), sign);
    dipx_key_fingerprint (dipx_identity_enc_pk (identity), fp);
    printf ("id:          %s\n", id);
    printf ("enc-key:     %s\n", enc);
    printf ("sign-key:    %s\n", sign);
    printf ("fingerprint: %s\n", fp);
    printf ("secret:      %s\n", out);
    if (want_card)
        printf ("card:        %s\n", a.path);
    status = S_DONE;
cleanup:
    /* The secret without the card the operator asked for is half a job.  */
    if (status != S_DONE && saved)
        unlink (out);
    free (text);
    dipx_identity_destroy (&identity);
    return status;
}

/*  card -------------------------------------------------------------------*/

static const char s_card_usage[] = "usage: dipx card show FILE\n"
                                   "       dipx card verify FILE\n"
                                   "show prints a card's fields; verify checks its syntax and\n"
                                   "self-signature (exit 0 if good, 1 if not).\n";

static void
s_show_card (const dipx_card_t *card)
{
    char z85[DIPX_Z85_KEY_LEN + 1], fp[17], from[21], until[21];
    dipx_time_format (card->valid_from, from);
    dipx_time_format (card->valid_until, until);
    int64_t now = (int64_t) time (NULL);
    const char *validity = now < card->valid_from    ? "not yet valid"
                           : now >= card->valid_until ? "expired"
                                                      : "current";
    printf ("id:          %s\n", card->id);
    printf ("name:        %s\n", card->name);
    printf ("type:        %s\n", dipx_agency_type_name (card->type));
    printf ("org:         %s\n", card->org);
    printf ("area:        %s\n", card->area);
    dipx_key_to_z85 (card->enc_pk, z85);
    dipx_key_fingerprint (card->enc_pk, fp);
    printf ("enc-key:     %s (fingerprint %s)\n", z85, fp);
    dipx_key_to_z85 (card->sign_pk, z85);
    dipx_key_fingerprint (card->sign_pk, fp);
    printf ("sign-key:    %s (fingerprint %s)\n", z85, fp);
    printf ("valid-from:  %s\n", from);
    printf ("valid-until: %s (%s)\n", until, validity);
    printf ("self-sig:    verifies\n");
}

int
dipx_cli_card (int argc, char **argv)
{
    if (dipx_cli_wants_help (argc, argv)) {
        fputs (s_card_usage, stdout);
        return S_DONE;
    }
    const dipx_cli_opt_t opts[] = {{NULL, NULL, NULL}};
    const char *words[S_MAX_POSITIONAL];
    int nwords = dipx_cli_parse_args ("card", argc, argv, opts, words, S_MAX_POSITIONAL);
    bool show = nwords == 2 && strcmp (words[0], "show") == 0;
    bool verify = nwords == 2 && strcmp (words[0], "verify") == 0;
    if (!show && !verify) {
        fputs (s_card_usage, stderr);
        return S_USAGE;
    }
    dipx_card_t card;
    char why[160];
    errno = 0;
    int rc = dipx_card_load (words[1], &card);
    if (rc != 0) {
        fprintf (stderr, "dipx card: %s: %s\n", words[1], s_why (rc, errno, why, sizeof why));
        return S_FAILED;
    }
    if (show)
        s_show_card (&card);
    else
        printf ("%s: ok (%s, self-signature verifies)\n", words[1], card.id);
    return S_DONE;
}

/*  registry ---------------------------------------------------------------*/

static const char s_registry_usage[] =
    "usage: dipx registry --file REG init\n"
    "       dipx registry --file REG add CARDFILE\n"
    "       dipx registry --file REG list\n"
    "       dipx registry --file REG suspend|revoke|activate ID\n"
    "init creates an empty registry; add registers a card as active; revoke\n"
    "is final.\n";

/*  Loads REG, printing why not.  */
static int
s_registry_load (const char *path, dipx_registry_t **reg)
{
    int line = 0;
    char why[160];
    errno = 0;
    int rc = dipx_registry_load (path, reg, &line);
    if (rc == 0)
        return S_DONE;
    s_why (rc, errno, why, sizeof why);
    if (line > 0)
        fprintf (stderr, "dipx registry: %s:%d: %s\n", path, line, why);
    else
        fprintf (stderr, "dipx registry: %s: %s\n", path, why);
    return S_FAILED;
}

static int
s_registry_save (const char *path, const dipx_registry_t *reg)
{
    char why[160];
    errno = 0;
    int rc = dipx_registry_save (reg, path);
    if (rc == 0)
        return S_DONE;
    fprintf (stderr, "dipx registry: %s: %s; unchanged\n", path, s_why (rc, errno, why, sizeof why));
    return S_FAILED;
}

static int
s_registry_init (const char *path)
{
    char why[160];
    dipx_registry_t *reg = dipx_registry_new ();
    errno = 0;
    int rc = reg ? dipx_registry_create (reg, path) : DIPX_E_NOMEM;
    int err = errno;
    dipx_registry_destroy (&reg);
    if (rc != 0) {
        fprintf (stderr, "dipx registry: %s: %s%s\n", path, s_why (rc, err, why, sizeof why),
                 rc == DIPX_E_EXISTS ? " (refusing to overwrite)" : "");
        return S_FAILED;
    }
    printf ("%s: empty registry created\n", path);
    return S_DONE;
}

static int
s_registry_add (const char *path, const char *card_path)
{
    dipx_card_t card;
    char why[160];
    errno = 0;
    int rc = dipx_card_load (card_path, &card);
    if (rc != 0) {
        fprintf (stderr, "dipx registry: %s: %s\n", card_path, s_why (rc, errno, why, sizeof why));
        return S_FAILED;
    }
    if (card.type == DIPX_AGENCY_BROKER) {
        fprintf (stderr, "dipx registry: %s: a broker's card cannot be registered\n", card_path);
        return S_FAILED;
    }
    dipx_registry_t *reg = NULL;
    int status = s_registry_load (path, &reg);
    if (status != S_DONE)
        return status;
    rc = dipx_registry_add (reg, &card);
    if (rc != 0) {
        fprintf (stderr, "dipx registry: %s: %s%s\n", card_path, dipx_strerror (rc),
                 rc == DIPX_E_EXISTS ? " (its id or a key is already registered)" : "");
        status = S_FAILED;
    }
    else
        status = s_registry_save (path, reg);
    if (status == S_DONE) {
        char fp[17];
        dipx_key_fingerprint (card.enc_pk, fp);
        printf ("%s: added %s (%s, enc key %s), active\n", path, card.id,
                dipx_agency_type_name (card.type), fp);
        if ((int64_t) time (NULL) >= card.valid_until)
            fprintf (stderr, "dipx registry: warning: the card of %s has expired\n", card.id);
    }
    dipx_registry_destroy (&reg);
    return status;
}

static int
s_registry_list (const char *path)
{
    dipx_registry_t *reg = NULL;
    int status = s_registry_load (path, &reg);
    if (status != S_DONE)
        return status;
    size_t n = dipx_registry_size (reg);
    int id_width = 2;
    for (size_t i = 0; i < n; i++) {
        int len = (int) strlen (dipx_registry_at (reg, i)->card.id);
        if (len > id_width)
            id_width = len;
    }
    printf ("%-*s  %-10s  %-16s  %-16s  %-9s  %s\n", id_width, "ID", "TYPE", "ORG", "AREA",
            "STATUS", "ENC-KEY-FP");
    for (size_t i = 0; i < n; i++) {
        const dipx_entry_t *e = dipx_registry_at (reg, i);
        char fp[17];
        dipx_key_fingerprint (e->card.enc_pk, fp);
        printf ("%-*s  %-10s  %-16s  %-16s  %-9s  %s\n", id_width, e->card.id,
                dipx_agency_type_name (e->card.type), e->card.org, e->card.area,
                dipx_status_name (e->status), fp);
    }
    dipx_registry_destroy (&reg);
    return S_DONE;
}

static int
s_registry_set (const char *path, const char *id, int to)
{
    dipx_registry_t *reg = NULL;
    int status = s_registry_load (path, &reg);
    if (status != S_DONE)
        return status;
    int rc = dipx_registry_set_status (reg, id, to);
    if (rc == DIPX_E_NOT_FOUND)
        fprintf (stderr, "dipx registry: %s: no agency \"%s\"\n", path, id);
    else if (rc == DIPX_E_VALUE)
        fprintf (stderr, "dipx registry: %s is revoked; revocation is final\n", id);
    else if (rc != 0)
        fprintf (stderr, "dipx registry: %s: %s\n", id, dipx_strerror (rc));
    status = rc == 0 ? s_registry_save (path, reg) : S_FAILED;
    if (status == S_DONE)
        printf ("%s: %s\n", id, dipx_status_name (to));
    dipx_registry_destroy (&reg);
    return status;
}

int
dipx_cli_registry (int argc, char **argv)
{
    if (dipx_cli_wants_help (argc, argv)) {
        fputs (s_registry_usage, stdout);
        return S_DONE;
    }
    const char *file = NULL;
    const dipx_cli_opt_t opts[] = {{"file", &file, NULL}, {NULL, NULL, NULL}};
    const char *words[S_MAX_POSITIONAL];
    int nwords = dipx_cli_parse_args ("registry", argc, argv, opts, words, S_MAX_POSITIONAL);
    if (nwords < 1 || !file) {
        fputs (s_registry_usage, stderr);
        return S_USAGE;
    }
    const char *verb = words[0];
    if (strcmp (verb, "init") == 0 && nwords == 1)
        return s_registry_init (file);
    if (strcmp (verb, "list") == 0 && nwords == 1)
        return s_registry_list (file);
    if (strcmp (verb, "add") == 0 && nwords == 2)
        return s_registry_add (file, words[1]);
    static const struct {
        const char *verb; /* command word */
        int status;       /* status it sets */
    } changes[] = {
        {"suspend", DIPX_STATUS_SUSPENDED},
        {"revoke", DIPX_STATUS_REVOKED},
        {"activate", DIPX_STATUS_ACTIVE},
    };
    for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++)
        if (strcmp (verb, changes[i].verb) == 0 && nwords == 2)
            return s_registry_set (file, words[1], changes[i].status);
    fputs (s_registry_usage, stderr);
    return S_USAGE;
}
