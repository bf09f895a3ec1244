/*  dipx_config.c - the configuration table and its INI parser.

    Every key is a row: name, type, bounds, default, reloadable, and help text.
    Parsing, defaults, printing and reload all walk the same table, so a key
    cannot be documented without being parsed or parsed without a default.
    Unknown keys and sections are errors: a typo must not silently fall back
    to a default on a broker that holds health data.
*/
#include "dipx_config.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dipx_error.h"
#include "dipx_limits.h"
#include "dipx_log.h"

typedef enum { K_STR, K_UINT, K_LEVEL } s_kind_t;

typedef struct {
    const char *name;   /* key in [dipxd] */
    s_kind_t kind;      /* how the value is parsed */
    size_t off;         /* offset in dipx_config_t */
    uint64_t lo, hi;    /* K_UINT bounds */
    const char *def;    /* default, as text; NULL = required */
    bool reload;        /* applied on SIGHUP */
    const char *help;   /* one line for the example file */
} s_key_t;

#define KS(f, def, rl, help) {#f, K_STR, offsetof (dipx_config_t, f), 0, 0, def, rl, help}
#define KU(f, lo, hi, def, rl, help) {#f, K_UINT, offsetof (dipx_config_t, f), lo, hi, def, rl, help}

static const s_key_t s_keys[] = {
    KS (endpoint, "tcp://127.0.0.1:7710", false,
        "ZeroMQ endpoint to listen on; tcp://127.0.0.1:* picks a free port"),
    KS (data_dir, NULL, false, "directory of the LMDB store (created 0700 if absent)"),
    KS (identity, NULL, false, "broker's secret file (dipx keygen --type broker), mode 0600"),
    KS (registry, NULL, true, "registry of trusted agency cards (dipx registry)"),
    KS (policy, "/etc/dipx/policy.conf", true, "policy file: which flows are allowed"),
    KU (map_size_mb, 1, 1048576, "1024", false, "initial LMDB map size, MiB"),
    KU (map_max_mb, 1, 16777216, "65536", false, "largest the LMDB map may grow to, MiB"),
    KU (max_frame, 1024, DIPX_MAX_FRAME, "1053672", false,
        "largest frame accepted (ZMQ_MAXMSGSIZE), bytes"),
    KU (window, 1, DIPX_MAX_WINDOW, "256", true, "most deliveries in flight to one session"),
    KU (verify_threads, 0, 64, "1", false,
        "threads verifying signatures beside the main one (0 = main thread only)"),
    KU (io_threads, 1, 16, "2", false,
        "ZeroMQ I/O threads (CURVE, heartbeats); connections are spread over them"),
    KU (batch, 1, DIPX_MAX_BATCH, "256", false, "most frames handled in one fsync'd transaction"),
    KU (queue_max_messages, 1, 100000000, "100000", true,
        "messages queued for one recipient before sends to it are refused (queue_full)"),
    KU (queue_max_mb, 1, 1048576, "1024", true,
        "bytes (MiB) queued for one recipient before sends to it are refused"),
    KU (ack_timeout_ms, 100, 86400000, "60000", true,
        "a delivery not acknowledged in this time is delivered again"),
    KU (max_deliveries, 1, 1000, "5", true, "deliveries before a message is dead-lettered"),
    KU (unacked_max_mb, 1, 1048576, "64", true,
        "bytes (MiB) delivered to one session and not acknowledged, redeliveries included"),
    KU (auth_audit_per_sec, 1, 100000, "50", true,
        "refused connections and malformed frames audited per second (the rest are counted)"),
    KU (max_sessions, 1, DIPX_MAX_SESSIONS, "20000", false,
        "connected agencies with a session at once"),
    KU (handshake_timeout_ms, 1000, 600000, "5000", false,
        "a connection not authenticated (CURVE and ZAP) in this time is closed"),
    {"log_level", K_LEVEL, offsetof (dipx_config_t, log_level), 0, 0, "info", true,
     "error, warn, info or debug"},
};
#define S_NKEYS (sizeof s_keys / sizeof s_keys[0])
/* The max_frame default is the protocol's ceiling, so that the largest legal
   message (a worst-case header with a 1 MiB body) always fits.  */
_Static_assert (DIPX_MAX_FRAME == 1053672, "update the max_frame default");

/*  One parse. inih is driven through ini_parse_stream with s_reader, which
    hands it one line at a time: so the handler knows the line it is on, and
    a line too long for inih's fixed buffer (INI_MAX_LINE, 200 in Debian's
    build) is an error instead of being cut, with its tail parsed as a line
    of its own (which let a long value carry a second `key = value`).
    s_reader also drops each line's indentation: inih (INI_ALLOW_MULTILINE)
    takes an indented line as the continuation of the key above it and hands
    it over as a new value of that key, so an indented `identity = ...`
    under `data_dir = ...` silently became the data_dir.  */
typedef struct {
    dipx_config_t *cfg;  /* values are set here as they are parsed */
    const char *text;    /* the text, not NUL-terminated */
    size_t len;          /* its length */
    size_t pos;          /* start of the next line to hand to inih */
    int line;            /* number of the line last handed to inih */
    int err_line;        /* line of the first error found here, 0 if none */
    char why[192];       /* what that error was */
} s_ctx_t;

static char *
s_reader (char *str, int num, void *stream)
{
    s_ctx_t *ctx = stream;
    if (ctx->pos >= ctx->len || ctx->err_line)
        return NULL; /* end, or stop at our first error */
    const char *l = ctx->text + ctx->pos;
    const char *nl = memchr (l, '\n', ctx->len - ctx->pos);
    size_t n = nl ? (size_t) (nl - l) + 1 : ctx->len - ctx->pos;
    ctx->pos += n;
    ctx->line++;
    size_t lead = 0;
    while (lead < n && (l[lead] == ' ' || l[lead] == '\t'))
        lead++;
    l += lead;
    n -= lead;
    size_t chars = nl ? n - 1 : n;
    /* inih needs room for the text, its newline and a NUL.  */
    if (num < 3 || chars > (size_t) num - 2) {
        ctx->err_line = ctx->line;
        snprintf (ctx->why, sizeof ctx->why, "line longer than %d characters", num - 2);
        return NULL;
    }
    memcpy (str, l, n);
    str[n] = 0;
    return str;
}

static int
s_set (dipx_config_t *cfg, const s_key_t *k, const char *value, char *why, size_t why_size)
{
    void *dst = (char *) cfg + k->off;
    switch (k->kind) {
    case K_STR: {
        size_t n = strlen (value);
        if (n == 0 || n >= DIPX_CONFIG_PATH_MAX) {
            snprintf (why, why_size, "empty or longer than %d", DIPX_CONFIG_PATH_MAX - 1);
            return -1;
        }
        /* `key =;x` is the value ";x" to inih, but dipx_config_print would
           write `key = ;x`, an empty value and a comment: refuse it.  */
        if (value[0] == ';') {
            snprintf (why, why_size, "starts with ';'");
            return -1;
        }
        memcpy (dst, value, n + 1);
        return 0;
    }
    case K_UINT: {
        char *end;
        if (value[0] < '0' || value[0] > '9') {
            snprintf (why, why_size, "not a number");
            return -1;
        }
        errno = 0;
        unsigned long long v = strtoull (value, &end, 10);
        if (errno || *end || v < k->lo || v > k->hi) {
            snprintf (why, why_size, "not a number in %llu..%llu", (unsigned long long) k->lo,
                      (unsigned long long) k->hi);
            return -1;
        }
        *(uint64_t *) dst = v;
        return 0;
    }
    case K_LEVEL: {
        int lv = dipx_log_level_parse (value);
        if (lv < 0) {
            snprintf (why, why_size, "not one of error, warn, info, debug");
            return -1;
        }
        *(int *) dst = lv;
        return 0;
    }
    }
    return -1;
}

static int
s_handler (void *user, const char *section, const char *name, const char *value)
{
    s_ctx_t *ctx = user;
    char why[128];
    if (ctx->err_line)
        return 0; /* keep the first error */
    if (strcmp (section, "dipxd") != 0) {
        snprintf (ctx->why, sizeof ctx->why, "unknown section [%.64s]", section);
        ctx->err_line = ctx->line;
        return 0;
    }
    for (size_t i = 0; i < S_NKEYS; i++)
        if (strcmp (s_keys[i].name, name) == 0) {
            if (s_set (ctx->cfg, &s_keys[i], value, why, sizeof why) == 0)
                return 1;
            snprintf (ctx->why, sizeof ctx->why, "%s: %s", name, why);
            ctx->err_line = ctx->line;
            return 0;
        }
    snprintf (ctx->why, sizeof ctx->why, "unknown key '%.64s'", name);
    ctx->err_line = ctx->line;
    return 0;
}

void
dipx_config_defaults (dipx_config_t *cfg)
{
    memset (cfg, 0, sizeof *cfg);
    char why[128];
    for (size_t i = 0; i < S_NKEYS; i++)
        if (s_keys[i].def) {
            int rc = s_set (cfg, &s_keys[i], s_keys[i].def, why, sizeof why);
            (void) rc; /* defaults are within their own bounds (tested) */
        }
}

int
dipx_config_parse (dipx_config_t *cfg, const char *text, size_t len, char *err, size_t err_size)
{
    if (err_size)
        err[0] = 0;
    if (len > DIPX_MAX_CONFIG_BYTES || (len && memchr (text, 0, len))) {
        snprintf (err, err_size, "file larger than %u bytes or holds a NUL byte",
                  DIPX_MAX_CONFIG_BYTES);
        return DIPX_E_CONFIG;
    }
    s_ctx_t ctx = {.cfg = cfg, .text = text, .len = len};
    /* inih returns the line of its first error: a syntax error of its own,
       or the first line where the handler said no; whichever came first.  */
    int line = ini_parse_stream (s_reader, &ctx, s_handler, &ctx);
    if (ctx.err_line && (line <= 0 || line >= ctx.err_line)) {
        snprintf (err, err_size, "line %d: %s", ctx.err_line, ctx.why);
        return DIPX_E_CONFIG;
    }
    if (line > 0) {
        snprintf (err, err_size, "line %d: not 'key = value', '[section]' or a comment", line);
        return DIPX_E_CONFIG;
    }
    if (line < 0) {
        snprintf (err, err_size, "cannot parse (inih error %d)", line);
        return line == -2 ? DIPX_E_NOMEM : DIPX_E_CONFIG;
    }
    return 0;
}

int
dipx_config_load (dipx_config_t *cfg, const char *path, char *err, size_t err_size)
{
    /* O_NONBLOCK and a regular file only: a FIFO or a device at the path
       must not block start-up, or a reload thread that SIGTERM waits for.  */
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        snprintf (err, err_size, "%s: %s", path, strerror (errno));
        return DIPX_E_IO;
    }
    struct stat st;
    if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)) {
        close (fd);
        snprintf (err, err_size, "%s: not a regular file", path);
        return DIPX_E_IO;
    }
    /* Static: one load at a time (start-up, then the one reload thread).  */
    static char buf[DIPX_MAX_CONFIG_BYTES + 1];
    size_t len = 0;
    ssize_t n = 0;
    while (len < sizeof buf && (n = read (fd, buf + len, sizeof buf - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        len += (size_t) n;
    }
    int read_errno = n < 0 ? errno : 0;
    close (fd);
    if (read_errno) {
        snprintf (err, err_size, "%s: %s", path, strerror (read_errno));
        return DIPX_E_IO;
    }
    if (len > DIPX_MAX_CONFIG_BYTES) {
        snprintf (err, err_size, "%s: larger than %u bytes", path, DIPX_MAX_CONFIG_BYTES);
        return DIPX_E_CONFIG;
    }
    int rc = dipx_config_parse (cfg, buf, len, err, err_size);
    if (rc)
        return rc;
    for (size_t i = 0; i < S_NKEYS; i++)
        if (!s_keys[i].def && s_keys[i].kind == K_STR
            && ((char *) cfg + s_keys[i].off)[0] == 0) {
            snprintf (err, err_size, "%s: required key '%s' is not set", path, s_keys[i].name);
            return DIPX_E_CONFIG;
        }
    if (cfg->map_max_mb < cfg->map_size_mb) {
        snprintf (err, err_size, "%s: map_max_mb is below map_size_mb", path);
        return DIPX_E_CONFIG;
    }
    return 0;
}

void
dipx_config_reload_into (dipx_config_t *dst, const dipx_config_t *src)
{
    for (size_t i = 0; i < S_NKEYS; i++) {
        if (!s_keys[i].reload)
            continue;
        size_t size = s_keys[i].kind == K_STR    ? DIPX_CONFIG_PATH_MAX
                      : s_keys[i].kind == K_UINT ? sizeof (uint64_t)
                                                 : sizeof (int);
        memcpy ((char *) dst + s_keys[i].off, (const char *) src + s_keys[i].off, size);
    }
}

void
dipx_config_print (const dipx_config_t *cfg, FILE *out)
{
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    fprintf (out, "[dipxd]\n");
    for (size_t i = 0; i < S_NKEYS; i++) {
        const s_key_t *k = &s_keys[i];
        const void *src = (const char *) cfg + k->off;
        fprintf (out, "\n# %s\n", k->help);
        if (k->kind == K_UINT)
            fprintf (out, "# %llu..%llu, ", (unsigned long long) k->lo, (unsigned long long) k->hi);
        else
            fprintf (out, "# ");
        fprintf (out, "default %s, %s\n", k->def ? k->def : "(required)",
                 k->reload ? "reloaded on SIGHUP" : "needs a restart");
        if (k->kind == K_STR && ((const char *) src)[0] == 0)
            /* An unset required key is printed commented out, so that the
               output still parses (an empty value is an error).  */
            fprintf (out, "# %s =\n", k->name);
        else if (k->kind == K_STR)
            fprintf (out, "%s = %s\n", k->name, (const char *) src);
        else if (k->kind == K_UINT)
            fprintf (out, "%s = %llu\n", k->name, (unsigned long long) *(const uint64_t *) src);
        else
            fprintf (out, "%s = %s\n", k->name, levels[*(const int *) src]);
    }
}
