/*  dipx_cli.c - main of the `dipx` command-line tool, and its messaging
    subcommands: send, recv, track (keygen, card and registry are in
    dipx_cli_keys.c).

    Design. The tool is for people and for scripts. Arguments follow the same
    rules as the key subcommands: "--name VALUE" or "--name=VALUE", before or
    after the positional words, parsed from a table (no getopt, no global
    state). Results go to stdout as one line each, in a fixed form a script can
    split on spaces; diagnostics go to stderr as "dipx <command>: ...". Exit
    status: 0 done, 1 refused (by the broker, or locally: unknown recipient),
    2 usage, 3 any other failure (timeout, refused key, I/O).

    The connection options --broker, --broker-key (or --broker-card),
    --identity and --peers may come from the environment instead: DIPX_BROKER,
    DIPX_BROKER_KEY (or DIPX_BROKER_CARD), DIPX_IDENTITY, DIPX_PEERS.

    Personal data: message bodies are read into memory that is wiped before it
    is freed; `recv` writes each body completely and fsyncs it before it
    acknowledges the message, so a crash never loses one (it comes again).
*/
#include "dipx_cli.h"
#include "dipx_cli_args.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "dipx.h"
#include "dipx_card.h"
#include "dipx_identity.h"
#include "dipx_limits.h"

enum { S_DONE = 0, S_REFUSED = 1, S_USAGE = 2, S_ERROR = 3 };

#define S_MAX_WORDS 4
#define S_SEND_TIMEOUT_MS 30000
#define S_TRACK_TIMEOUT_MS 10000

/* ---------------------------------------------------------------------------
   Arguments */

/*  Parses a decimal number in [lo, hi]. false if it is not one.  */
static bool
s_number (const char *text, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!text || *text < '0' || *text > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull (text, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/*  A millisecond timeout option: -1 (forever) or 0..INT_MAX.  */
static bool
s_timeout (const char *cmd, const char *text, int *out)
{
    uint64_t v;
    if (strcmp (text, "-1") == 0)
        *out = -1;
    else if (s_number (text, 0, INT_MAX, &v))
        *out = (int) v;
    else {
        fprintf (stderr, "dipx %s: --timeout-ms must be -1 or 0..%d\n", cmd, INT_MAX);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------------------
   Connecting */

typedef struct {
    const char *broker;      /* --broker */
    const char *broker_key;  /* --broker-key */
    const char *broker_card; /* --broker-card */
    const char *identity;    /* --identity */
    const char *peers;       /* --peers */
    bool verbose;            /* --verbose */
} s_conn_t;

#define S_CONN_OPTS(c)                                                                             \
    {"broker", &(c).broker, NULL}, {"broker-key", &(c).broker_key, NULL},                          \
        {"broker-card", &(c).broker_card, NULL}, {"identity", &(c).identity, NULL},                \
        {"peers", &(c).peers, NULL}, {"verbose", NULL, &(c).verbose}

#define S_CONN_USAGE                                                                               \
    "  --broker ENDPOINT       broker endpoint, e.g. tcp://broker.example:7710 [DIPX_BROKER]\n"    \
    "  --broker-key Z85       broker's public key [DIPX_BROKER_KEY]\n"                             \
    "  --broker-card FILE     or the broker's card file [DIPX_BROKER_CARD]\n"                      \
    "  --identity FILE        this agency's secret file [DIPX_IDENTITY]\n"                         \
    "  --peers FILE           registry file of the agencies it exchanges with [DIPX_PEERS]\n"      \
    "  --verbose              also log the library's progress to stderr\n"

typedef struct {
    const char *cmd; /* subcommand, for messages */
    bool verbose;    /* log INFO and DEBUG too */
} s_log_ctx_t;

static void
s_log (int level, const char *line, void *arg)
{
    const s_log_ctx_t *ctx = (const s_log_ctx_t *) arg;
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (level <= DIPX_LOG_WARN || ctx->verbose)
        fprintf (stderr, "dipx %s: %s: %s\n", ctx->cmd,
                 level >= 0 && level <= DIPX_LOG_DEBUG ? names[level] : "log", line);
}

static const char *
s_or_env (const char *value, const char *name)
{
    return value ? value : getenv (name);
}

/*  Creates the client from the connection options. Returns S_DONE or the
    exit status to give up with.  */
static int
s_connect (s_conn_t *c, s_log_ctx_t *log, uint32_t window, dipx_client_t **client)
{
    const char *cmd = log->cmd;
    log->verbose = c->verbose;
    dipx_options_t o = {0};
    o.endpoint = s_or_env (c->broker, "DIPX_BROKER");
    o.identity = s_or_env (c->identity, "DIPX_IDENTITY");
    o.peers = s_or_env (c->peers, "DIPX_PEERS");
    const char *key = c->broker_key, *card_path = c->broker_card;
    if (!key && !card_path) {
        key = getenv ("DIPX_BROKER_KEY");
        card_path = key ? NULL : getenv ("DIPX_BROKER_CARD");
    }
    const char *missing = !o.endpoint ? "--broker"
                          : !o.identity ? "--identity"
                          : !o.peers    ? "--peers"
                          : !key && !card_path ? "--broker-key or --broker-card"
                                                 : NULL;
    if (missing) {
        fprintf (stderr, "dipx %s: %s is required (or its environment variable)\n", cmd, missing);
        return S_USAGE;
    }
    if (key && card_path) {
        fprintf (stderr, "dipx %s: give --broker-key or --broker-card, not both\n", cmd);
        return S_USAGE;
    }
    char z85[DIPX_Z85_KEY_LEN + 1];
    if (card_path) {
        dipx_card_t card;
        int rc = dipx_card_load (card_path, &card);
        if (rc) {
            fprintf (stderr, "dipx %s: broker card %s: %s\n", cmd, card_path, dipx_strerror (rc));
            return S_ERROR;
        }
        if (card.type != DIPX_AGENCY_BROKER) {
            fprintf (stderr, "dipx %s: %s is the card of a %s, not of a broker\n", cmd, card_path,
                     dipx_agency_type_name (card.type));
            return S_USAGE;
        }
        dipx_key_to_z85 (card.enc_pk, z85);
        key = z85;
    }
    o.broker_key = key;
    o.window = window;
    o.log = s_log;
    o.log_arg = log;
    int rc = dipx_client_new (&o, client);
    if (rc) {
        fprintf (stderr, "dipx %s: cannot start the client: %s\n", cmd, dipx_strerror (rc));
        return rc == DIPX_E_INVAL || rc == DIPX_E_BROKER_KEY ? S_USAGE : S_ERROR;
    }
    return S_DONE;
}

/* ---------------------------------------------------------------------------
   Files */

/*  Reads a whole file ("-" = stdin) of at most max bytes into a malloc'd
    buffer that the caller wipes and frees. 0, DIPX_E_IO, DIPX_E_FIELD_LENGTH
    (too long), DIPX_E_PERM (secret set and the file is group/other
    accessible), DIPX_E_NOMEM.  */
static int
s_read_file (const char *path, size_t max, bool secret, uint8_t **out, size_t *out_len)
{
    int fd = strcmp (path, "-") == 0 ? STDIN_FILENO : open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return DIPX_E_IO;
    int rc = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    struct stat st;
    if (secret) {
        rc = fstat (fd, &st) != 0 ? DIPX_E_IO : (st.st_mode & 077) ? DIPX_E_PERM : 0;
        if (rc)
            goto done;
    }
    buf = (uint8_t *) malloc (max + 1);
    if (!buf) {
        rc = DIPX_E_NOMEM;
        goto done;
    }
    for (;;) {
        ssize_t n = read (fd, buf + len, max + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = DIPX_E_IO;
            break;
        }
        if (n == 0)
            break;
        len += (size_t) n;
        if (len > max) {
            rc = DIPX_E_FIELD_LENGTH;
            break;
        }
    }
done:
    if (fd != STDIN_FILENO)
        close (fd);
    if (rc) {
        if (buf) {
            sodium_memzero (buf, len);
            free (buf);
        }
        return rc;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

static void
s_wipe_free (uint8_t *buf, size_t len)
{
    if (buf) {
        sodium_memzero (buf, len);
        free (buf);
    }
}

/*  Reads a programme key: 32 raw bytes, or 64 hex characters and an optional
    newline. The file must be private to its owner, as a secret file is.  */
static int
s_programme_key (const char *cmd, const char *path, uint8_t key[32])
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = s_read_file (path, 130, true, &buf, &len);
    if (rc) {
        fprintf (stderr, "dipx %s: programme key %s: %s\n", cmd, path, dipx_strerror (rc));
        return rc == DIPX_E_PERM ? S_ERROR : rc == DIPX_E_FIELD_LENGTH ? S_USAGE : S_ERROR;
    }
    int status = S_DONE;
    size_t bin_len = 0, text_len = len;
    while (text_len && (buf[text_len - 1] == '\n' || buf[text_len - 1] == '\r'))
        text_len--;
    if (len == 32)
        memcpy (key, buf, 32);
    else if (text_len != 64
             || sodium_hex2bin (key, 32, (const char *) buf, 64, NULL, &bin_len, NULL) != 0
             || bin_len != 32) {
        fprintf (stderr, "dipx %s: programme key %s: not 32 bytes nor 64 hex characters\n", cmd,
                 path);
        status = S_USAGE;
    }
    s_wipe_free (buf, len);
    return status;
}

/*  Writes data to dir/name: a temporary file (0600) written fully and
    fsync'd, renamed into place, then the directory fsync'd. An earlier file
    of that name (the same message, delivered again) is replaced.  */
static int
s_write_msg_file (const char *dir, const char *name, const uint8_t *data, size_t len)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if ((size_t) snprintf (path, sizeof path, "%s/%s", dir, name) >= sizeof path
        || (size_t) snprintf (tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= sizeof tmp)
        return DIPX_E_INVAL;
    unlink (tmp); /* left by a run that died half-way */
    int fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return DIPX_E_IO;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write (fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t) n;
    }
    bool ok = done == len && fsync (fd) == 0;
    ok = close (fd) == 0 && ok;
    ok = ok && rename (tmp, path) == 0;
    if (!ok) {
        unlink (tmp);
        return DIPX_E_IO;
    }
    int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return DIPX_E_IO;
    ok = fsync (dfd) == 0;
    close (dfd);
    return ok ? 0 : DIPX_E_IO;
}

/*  Writes a body to stdout completely.  */
static int
s_write_stdout (const uint8_t *data, size_t len)
{
    if (len && fwrite (data, 1, len, stdout) != len)
        return DIPX_E_IO;
    if (fflush (stdout) != 0)
        return DIPX_E_IO;
    /* A file or a pipe: make it durable where that means anything.  */
    if (fsync (STDOUT_FILENO) != 0 && errno != EINVAL && errno != EROFS && errno != ENOTSUP)
        return DIPX_E_IO;
    return 0;
}

/* ---------------------------------------------------------------------------
   send */

static void
s_send_usage (FILE *out)
{
    fputs ("usage: dipx send --to ID --type TYPE (--subject HEX64 | --subject-id KIND:IDENT\n"
           "                 --programme-key FILE) --basis BASIS --ref REF --purpose PURPOSE\n"
           "                 --categories CAT[,CAT...] [--ttl-hours N] [--pi-by NAME\n"
           "                 --pi-approver NAME --pi-why TEXT] [--id HEX32] [--timeout-ms N]\n"
           "                 [connection options] [FILE | -]\n"
           "Seals FILE (or stdin) for agency ID, sends it and waits for the broker's answer:\n"
           "  ACCEPTED <id> seq=<n>             exit 0\n"
           "  REFUSED <id> <code>: <reason>     exit 1 (also for an unknown recipient)\n"
           "A timeout (default 30000 ms) exits 3 and names the message id: sending again\n"
           "with --id <id> cannot store the message twice (a retry of a message that was\n"
           "stored is refused as id_conflict).\n"
           "  --subject-id KIND:IDENT   subject reference computed from an identifier, e.g.\n"
           "                            nhs:9434765919, with the programme key (32 raw bytes\n"
           "                            or 64 hex characters, file mode 0600)\n"
           "  basis: consent statute order public_interest (public_interest needs --pi-*)\n"
           "  purpose: continuity_of_care case_management court_reporting offender_management\n"
           "           national_monitoring research law_enforcement safeguarding\n"
           "  categories: identifiers test_results assessment care_plan treatment_progress\n"
           "              notes health risk\n" S_CONN_USAGE,
           out);
}

typedef struct {
    const char *to, *type, *subject, *subject_id, *programme_key, *basis, *ref, *purpose;
    const char *categories, *ttl_hours, *pi_by, *pi_approver, *pi_why, *id, *timeout;
} s_send_args_t;

/*  Turns the arguments into *m. Returns S_DONE or S_USAGE (said why).  */
static int
s_send_message (const s_send_args_t *a, dipx_send_t *m, uint8_t subject[32], uint8_t id[16])
{
    const char *cmd = "send";
    const char *missing = !a->to           ? "--to"
                          : !a->type       ? "--type"
                          : !a->basis      ? "--basis"
                          : !a->ref        ? "--ref"
                          : !a->purpose    ? "--purpose"
                          : !a->categories ? "--categories"
                                           : NULL;
    if (missing) {
        fprintf (stderr, "dipx send: %s is required\n", missing);
        return S_USAGE;
    }
    m->to = a->to;
    m->type = a->type;
    m->ref = a->ref;
    if ((m->basis = dipx_basis_parse (a->basis)) < 0) {
        fprintf (stderr, "dipx send: unknown basis '%s'\n", a->basis);
        return S_USAGE;
    }
    if ((m->purpose = dipx_purpose_parse (a->purpose)) < 0) {
        fprintf (stderr, "dipx send: unknown purpose '%s'\n", a->purpose);
        return S_USAGE;
    }
    if (dipx_categories_parse (a->categories, &m->categories) != 0) {
        fprintf (stderr, "dipx send: bad --categories '%s' (unknown or repeated name)\n",
                 a->categories);
        return S_USAGE;
    }
    if (a->ttl_hours) {
        uint64_t hours;
        if (!s_number (a->ttl_hours, 1, DIPX_MAX_TTL_MS / 3600000u, &hours)) {
            fprintf (stderr, "dipx send: --ttl-hours must be 1..%llu\n",
                     (unsigned long long) (DIPX_MAX_TTL_MS / 3600000u));
            return S_USAGE;
        }
        m->ttl_ms = hours * 3600000u;
    }
    m->pi_by = a->pi_by;
    m->pi_approver = a->pi_approver;
    m->pi_why = a->pi_why;
    if (a->id) {
        if (dipx_id_from_hex (a->id, id) != 0) {
            fprintf (stderr, "dipx send: --id must be 32 hex characters\n");
            return S_USAGE;
        }
        m->id = id;
    }
    if (!a->subject == !a->subject_id) {
        fprintf (stderr, "dipx send: give --subject or --subject-id (exactly one)\n");
        return S_USAGE;
    }
    if (a->subject) {
        size_t bin_len = 0;
        if (strlen (a->subject) != 64
            || sodium_hex2bin (subject, 32, a->subject, 64, NULL, &bin_len, NULL) != 0
            || bin_len != 32) {
            fprintf (stderr, "dipx send: --subject must be 64 hex characters\n");
            return S_USAGE;
        }
    }
    else {
        const char *colon = strchr (a->subject_id, ':');
        if (!colon || colon == a->subject_id || !colon[1]) {
            fprintf (stderr, "dipx send: --subject-id must be KIND:IDENTIFIER\n");
            return S_USAGE;
        }
        if (!a->programme_key) {
            fprintf (stderr, "dipx send: --subject-id needs --programme-key\n");
            return S_USAGE;
        }
        char kind[33];
        size_t klen = (size_t) (colon - a->subject_id);
        if (klen >= sizeof kind) {
            fprintf (stderr, "dipx send: identifier kind too long\n");
            return S_USAGE;
        }
        memcpy (kind, a->subject_id, klen);
        kind[klen] = '\0';
        uint8_t *pkey = (uint8_t *) sodium_malloc (32);
        if (!pkey)
            return S_ERROR;
        int status = s_programme_key (cmd, a->programme_key, pkey);
        if (status == S_DONE && dipx_subject_ref (pkey, kind, colon + 1, subject) != 0) {
            fprintf (stderr, "dipx send: bad --subject-id (kind is [a-z][a-z0-9_]*)\n");
            status = S_USAGE;
        }
        sodium_free (pkey);
        if (status != S_DONE)
            return status;
    }
    m->subject = subject;
    return S_DONE;
}

int
dipx_cli_send (int argc, char **argv)
{
    if (dipx_cli_wants_help (argc, argv)) {
        s_send_usage (stdout);
        return S_DONE;
    }
    s_send_args_t a = {0};
    s_conn_t c = {0};
    const dipx_cli_opt_t opts[] = {
        {"to", &a.to, NULL},
        {"type", &a.type, NULL},
        {"subject", &a.subject, NULL},
        {"subject-id", &a.subject_id, NULL},
        {"programme-key", &a.programme_key, NULL},
        {"basis", &a.basis, NULL},
        {"ref", &a.ref, NULL},
        {"purpose", &a.purpose, NULL},
        {"categories", &a.categories, NULL},
        {"ttl-hours", &a.ttl_hours, NULL},
        {"pi-by", &a.pi_by, NULL},
        {"pi-approver", &a.pi_approver, NULL},
        {"pi-why", &a.pi_why, NULL},
        {"id", &a.id, NULL},
        {"timeout-ms", &a.timeout, NULL},
        S_CONN_OPTS (c),
        {NULL, NULL, NULL},
    };
    const char *words[S_MAX_WORDS];
    int nwords = dipx_cli_parse_args ("send", argc, argv, opts, words, S_MAX_WORDS);
    if (nwords < 0 || nwords > 1) {
        if (nwords > 1)
            fprintf (stderr, "dipx send: at most one input file\n");
        s_send_usage (stderr);
        return S_USAGE;
    }
    int timeout = S_SEND_TIMEOUT_MS;
    if (a.timeout && !s_timeout ("send", a.timeout, &timeout))
        return S_USAGE;
    dipx_send_t m = {0};
    uint8_t subject[32], id[16];
    int status = s_send_message (&a, &m, subject, id);
    if (status != S_DONE)
        return status;

    const char *input = nwords ? words[0] : "-";
    uint8_t *body = NULL;
    size_t body_len = 0;
    int rc = s_read_file (input, DIPX_MAX_BODY, false, &body, &body_len);
    if (rc) {
        fprintf (stderr, "dipx send: %s: %s\n", strcmp (input, "-") ? input : "stdin",
                 rc == DIPX_E_FIELD_LENGTH ? "larger than the 1 MiB a message may carry"
                                           : dipx_strerror (rc));
        return rc == DIPX_E_FIELD_LENGTH ? S_USAGE : S_ERROR;
    }

    s_log_ctx_t log = {"send", false};
    dipx_client_t *client = NULL;
    status = s_connect (&c, &log, 0, &client);
    if (status == S_DONE) {
        dipx_result_t r;
        char hex[33];
        rc = dipx_client_send (client, &m, body, body_len, timeout, &r);
        dipx_id_to_hex (r.id, hex);
        if (rc == 0) {
            printf ("ACCEPTED %s seq=%" PRIu64 "\n", hex, r.seq);
            status = S_DONE;
        }
        else if (rc == DIPX_E_UNKNOWN_RECIPIENT || rc == DIPX_E_RECIPIENT_INACTIVE) {
            fprintf (stderr, "dipx send: recipient %s: %s (in this agency's peers file)\n", a.to,
                     dipx_strerror (rc));
            status = S_REFUSED;
        }
        else if (rc == DIPX_E_INVAL) {
            fprintf (stderr, "dipx send: the message is not valid (run with --verbose for the "
                             "field)\n");
            status = S_USAGE;
        }
        else if (rc == DIPX_E_TIMEOUT) {
            fprintf (stderr,
                     "dipx send: no answer from the broker within %d ms; message id %s "
                     "(to retry, send again with --id %s: if the first one was stored the "
                     "broker refuses the retry as id_conflict, so it is never stored twice)\n",
                     timeout, hex, hex);
            status = S_ERROR;
        }
        else if (dipx_error_is_wire (rc)) {
            printf ("REFUSED %s %s: %s\n", hex, dipx_error_name (rc),
                    r.reason[0] ? r.reason : dipx_strerror (rc));
            status = S_REFUSED;
        }
        else {
            fprintf (stderr, "dipx send: %s\n", dipx_strerror (rc));
            status = S_ERROR;
        }
        if (fflush (stdout) != 0)
            status = S_ERROR;
    }
    dipx_client_destroy (&client);
    s_wipe_free (body, body_len);
    return status;
}

/* ---------------------------------------------------------------------------
   recv */

static void
s_recv_usage (FILE *out)
{
    fputs ("usage: dipx recv [--count N] [--timeout-ms N] [--out-dir DIR] [--quiet]\n"
           "                 [connection options]\n"
           "Waits for N messages (default 1), writes each body to DIR/<id>.msg (mode 0600)\n"
           "or to stdout, then acknowledges it. For each message prints\n"
           "  RECEIVED <id> from=<agency> type=<type> basis=<basis> purpose=<purpose> "
           "count=<n>\n"
           "to stdout with --out-dir, else to stderr (--quiet: not at all). A message\n"
           "delivered again in the same run is acknowledged again and not counted twice.\n"
           "Exits 0 after N messages, 3 on timeout (default: wait forever) with fewer.\n" S_CONN_USAGE,
           out);
}

int
dipx_cli_recv (int argc, char **argv)
{
    if (dipx_cli_wants_help (argc, argv)) {
        s_recv_usage (stdout);
        return S_DONE;
    }
    const char *count_s = NULL, *timeout_s = NULL, *out_dir = NULL;
    bool quiet = false;
    s_conn_t c = {0};
    const dipx_cli_opt_t opts[] = {
        {"count", &count_s, NULL}, {"timeout-ms", &timeout_s, NULL}, {"out-dir", &out_dir, NULL},
        {"quiet", NULL, &quiet},   S_CONN_OPTS (c),                  {NULL, NULL, NULL},
    };
    const char *words[S_MAX_WORDS];
    int nwords = dipx_cli_parse_args ("recv", argc, argv, opts, words, S_MAX_WORDS);
    if (nwords != 0) {
        if (nwords > 0)
            fprintf (stderr, "dipx recv: unexpected argument %s\n", words[0]);
        s_recv_usage (stderr);
        return S_USAGE;
    }
    uint64_t count = 1;
    if (count_s && !s_number (count_s, 1, 1000000000u, &count)) {
        fprintf (stderr, "dipx recv: --count must be 1..1000000000\n");
        return S_USAGE;
    }
    int timeout = -1;
    if (timeout_s && !s_timeout ("recv", timeout_s, &timeout))
        return S_USAGE;
    struct stat st;
    if (out_dir && (stat (out_dir, &st) != 0 || !S_ISDIR (st.st_mode))) {
        fprintf (stderr, "dipx recv: --out-dir %s is not a directory\n", out_dir);
        return S_USAGE;
    }
    /* Ask for no more in flight than this run will take: a delivery held but
       not acknowledged comes again later with a higher delivery count.  */
    uint32_t window = count < DIPX_MAX_WINDOW ? (uint32_t) count : DIPX_MAX_WINDOW;
    s_log_ctx_t log = {"recv", false};
    dipx_client_t *client = NULL;
    int status = s_connect (&c, &log, window, &client);
    if (status != S_DONE)
        return status;

    uint8_t (*seen)[16] = (uint8_t (*)[16]) calloc (count < 65536 ? count : 65536, 16);
    size_t nseen = 0, seen_cap = count < 65536 ? count : 65536;
    uint64_t got = 0;
    struct timespec t0;
    clock_gettime (CLOCK_MONOTONIC, &t0);
    FILE *lines = out_dir ? stdout : stderr;
    while (got < count && seen) {
        int left = timeout;
        if (timeout > 0) {
            struct timespec t;
            clock_gettime (CLOCK_MONOTONIC, &t);
            int64_t spent = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
            left = spent >= timeout ? 0 : timeout - (int) spent;
        }
        dipx_message_t *m = NULL;
        int rc = dipx_client_recv (client, left, &m);
        if (rc) {
            if (rc == DIPX_E_TIMEOUT)
                fprintf (stderr, "dipx recv: timed out after %" PRIu64 " of %" PRIu64
                                 " message(s)\n", got, count);
            else
                fprintf (stderr, "dipx recv: %s\n", dipx_strerror (rc));
            status = S_ERROR;
            break;
        }
        char hex[33], name[40];
        dipx_id_to_hex (dipx_message_id (m), hex);
        bool again = false;
        for (size_t i = 0; i < nseen && !again; i++)
            again = memcmp (seen[i], dipx_message_id (m), 16) == 0;
        if (!again) {
            snprintf (name, sizeof name, "%s.msg", hex);
            rc = out_dir ? s_write_msg_file (out_dir, name, dipx_message_body (m),
                                             dipx_message_body_len (m))
                         : s_write_stdout (dipx_message_body (m), dipx_message_body_len (m));
            if (rc) {
                fprintf (stderr, "dipx recv: cannot write message %s: %s (not acknowledged)\n",
                         hex, rc == DIPX_E_IO ? strerror (errno) : dipx_strerror (rc));
                dipx_message_destroy (&m);
                status = S_ERROR;
                break;
            }
            if (!quiet) {
                fprintf (lines,
                         "RECEIVED %s from=%s type=%s basis=%s purpose=%s count=%" PRIu64 "\n",
                         hex, dipx_message_from (m), dipx_message_type (m),
                         dipx_basis_name (dipx_message_basis (m)),
                         dipx_purpose_name (dipx_message_purpose (m)),
                         dipx_message_delivery_count (m));
                fflush (lines);
            }
            if (nseen < seen_cap)
                memcpy (seen[nseen++], dipx_message_id (m), 16);
            got++;
        }
        rc = dipx_client_ack (client, m);
        dipx_message_destroy (&m);
        if (rc) {
            fprintf (stderr, "dipx recv: cannot acknowledge %s: %s\n", hex, dipx_strerror (rc));
            status = S_ERROR;
            break;
        }
    }
    if (!seen) {
        fprintf (stderr, "dipx recv: out of memory\n");
        status = S_ERROR;
    }
    free (seen);
    dipx_client_destroy (&client); /* lingers briefly so the last ACKs go out */
    return status;
}

/* ---------------------------------------------------------------------------
   track */

static void
s_track_usage (FILE *out)
{
    fputs ("usage: dipx track ID [--timeout-ms N] [connection options]\n"
           "Prints the history of message ID (32 hex characters), sent or received by this\n"
           "agency, oldest first, one event a line:\n"
           "  <time> <event> by=<agency> [count=<n>] [code=<code>] [reason=<text>]\n"
           "Exits 0, 1 if the broker refuses (not this agency's message), 3 on other\n"
           "failures (timeout: default 10000 ms).\n" S_CONN_USAGE,
           out);
}

/*  RFC 3339 UTC with milliseconds.  */
static void
s_format_ms (uint64_t ms, char out[32])
{
    time_t secs = (time_t) (ms / 1000);
    struct tm tm;
    if (!gmtime_r (&secs, &tm)) {
        snprintf (out, 32, "%" PRIu64, ms);
        return;
    }
    char base[24];
    strftime (base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (out, 32, "%s.%03uZ", base, (unsigned) (ms % 1000));
}

int
dipx_cli_track (int argc, char **argv)
{
    if (dipx_cli_wants_help (argc, argv)) {
        s_track_usage (stdout);
        return S_DONE;
    }
    const char *timeout_s = NULL;
    s_conn_t c = {0};
    const dipx_cli_opt_t opts[] = {
        {"timeout-ms", &timeout_s, NULL},
        S_CONN_OPTS (c),
        {NULL, NULL, NULL},
    };
    const char *words[S_MAX_WORDS];
    int nwords = dipx_cli_parse_args ("track", argc, argv, opts, words, S_MAX_WORDS);
    uint8_t id[16];
    if (nwords != 1 || dipx_id_from_hex (words[0], id) != 0) {
        if (nwords == 1)
            fprintf (stderr, "dipx track: message id must be 32 hex characters\n");
        s_track_usage (stderr);
        return S_USAGE;
    }
    int timeout = S_TRACK_TIMEOUT_MS;
    if (timeout_s && !s_timeout ("track", timeout_s, &timeout))
        return S_USAGE;
    s_log_ctx_t log = {"track", false};
    dipx_client_t *client = NULL;
    int status = s_connect (&c, &log, 0, &client);
    if (status != S_DONE)
        return status;
    dipx_receipt_t *events = (dipx_receipt_t *) calloc (DIPX_MAX_HISTORY, sizeof *events);
    size_t n = 0;
    int rc = events ? dipx_client_track (client, id, timeout, events, DIPX_MAX_HISTORY, &n)
                    : DIPX_E_NOMEM;
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            const dipx_receipt_t *e = &events[i];
            char when[32];
            s_format_ms (e->at, when);
            const char *name = dipx_receipt_event_name (e->event);
            printf ("%s %s by=%s", when, name ? name : "?", e->by);
            if (e->count)
                printf (" count=%" PRIu64, e->count);
            if (e->code)
                printf (" code=%s", dipx_error_name (e->code));
            if (e->reason[0])
                printf (" reason=%s", e->reason);
            putchar ('\n');
        }
        status = fflush (stdout) == 0 ? S_DONE : S_ERROR;
    }
    else {
        fprintf (stderr, "dipx track: %s\n", dipx_strerror (rc));
        status = dipx_error_is_wire (rc) ? S_REFUSED : S_ERROR;
    }
    free (events);
    dipx_client_destroy (&client);
    return status;
}

/* ---------------------------------------------------------------------------
   main */

static void
s_usage (FILE *out)
{
    fputs ("usage: dipx COMMAND [ARGS...]   (dipx COMMAND --help for its options)\n"
           "Messaging:\n"
           "  send       seal a message for an agency and send it through the broker\n"
           "  recv       receive messages, store them, acknowledge them\n"
           "  track      show the history of a message\n"
           "Keys:\n"
           "  keygen     make an agency's secret file and card\n"
           "  card       show or check a card\n"
           "  registry   manage a registry (or peers) file of cards\n"
           "Other:\n"
           "  version    print the version\n"
           "  help       print this text\n"
           "Exit status: 0 done, 1 refused, 2 usage, 3 other failure.\n",
           out);
}

static int
s_version (void)
{
    int v = dipx_version ();
    printf ("dipx %s (libdipx %d.%d.%d)\n", DIPX_VERSION_STRING, v / 10000, v / 100 % 100,
            v % 100);
    return fflush (stdout) == 0 ? S_DONE : S_ERROR;
}

int
main (int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run) (int argc, char **argv);
    } commands[] = {
        {"send", dipx_cli_send},     {"recv", dipx_cli_recv},   {"track", dipx_cli_track},
        {"keygen", dipx_cli_keygen}, {"card", dipx_cli_card},   {"registry", dipx_cli_registry},
    };
    if (argc < 2) {
        s_usage (stderr);
        return S_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp (cmd, "help") == 0 || strcmp (cmd, "--help") == 0 || strcmp (cmd, "-h") == 0) {
        s_usage (stdout);
        return S_DONE;
    }
    if (strcmp (cmd, "version") == 0 || strcmp (cmd, "--version") == 0)
        return s_version ();
    if (sodium_init () < 0) {
        fprintf (stderr, "dipx: cannot initialise libsodium\n");
        return S_ERROR;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp (cmd, commands[i].name) == 0)
            return commands[i].run (argc - 1, argv + 1);
    fprintf (stderr, "dipx: unknown command '%s'\n", cmd);
    s_usage (stderr);
    return S_USAGE;
}
