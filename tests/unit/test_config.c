/*  test_config.c - unit tests of broker/dipx_config: the key table's
    defaults, the printed form (`dipxd --print-config`) and the checked-in
    example broker/dipxd.conf.example, and every way a config file is refused.

    The example file is the printed defaults, with the three required paths
    set, under a header of comments. test_example_file checks it byte for byte
    so that a key added to the table without updating the example fails here.
    After a deliberate change to the table, rewrite the example with
        DIPX_REGEN_EXAMPLE=1 ./test_config
    (run from the build directory; the header is kept).
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "dipx_config.h"
#include "dipx_error.h"
#include "dipx_limits.h"
#include "dipx_log.h"

#ifndef TEST_SOURCE_DIR
#define TEST_SOURCE_DIR "."
#endif

/*  Helpers ----------------------------------------------------------------*/

/*  The printed form of cfg, as a malloc'd string.  */
static char *
s_print (const dipx_config_t *cfg, size_t *len)
{
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream (&text, &n);
    assert_non_null (f);
    dipx_config_print (cfg, f);
    assert_int_equal (fclose (f), 0);
    if (len)
        *len = n;
    return text;
}

static char *
s_read (const char *path, size_t *len)
{
    FILE *f = fopen (path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc (cap + 1);
    while (buf && (got = fread (buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *grown = realloc (buf, 2 * cap + 1);
            if (!grown) {
                free (buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    fclose (f);
    if (buf)
        buf[n] = 0;
    *len = n;
    return buf;
}

static void
s_write (const char *path, const char *text, size_t len)
{
    FILE *f = fopen (path, "wb");
    assert_non_null (f);
    assert_int_equal (fwrite (text, 1, len, f), len);
    assert_int_equal (fclose (f), 0);
}

static int
s_parse (dipx_config_t *cfg, const char *text, char *err, size_t err_size)
{
    return dipx_config_parse (cfg, text, strlen (text), err, err_size);
}

/*  Parses text over the defaults and expects DIPX_E_CONFIG with a message
    holding each of the NULL-terminated fragments.  */
static void
s_refused (const char *text, size_t len, ...)
{
    dipx_config_t cfg;
    dipx_config_defaults (&cfg);
    char err[512] = "unset";
    int rc = dipx_config_parse (&cfg, text, len, err, sizeof err);
    if (rc != DIPX_E_CONFIG)
        print_error ("accepted (%s):\n%.*s\n", dipx_strerror (rc), (int) len, text);
    assert_int_equal (rc, DIPX_E_CONFIG);
    va_list ap;
    va_start (ap, len);
    const char *want;
    while ((want = va_arg (ap, const char *)) != NULL) {
        if (!strstr (err, want))
            print_error ("error '%s' does not say '%s'\n", err, want);
        assert_non_null (strstr (err, want));
    }
    va_end (ap);
}
#define REFUSED(text, ...) s_refused (text, sizeof (text) - 1, __VA_ARGS__, NULL)

typedef dipx_test_tmp_t s_tmp_t;

static int
s_setup (void **state)
{
    return dipx_test_tmp_new (state, "dipx-config");
}

#define s_teardown dipx_test_tmp_free
#define s_path dipx_test_path

#define REQUIRED "data_dir = /tmp/d\nidentity = /tmp/i\nregistry = /tmp/r\n"

/*  Tests ------------------------------------------------------------------*/

/*  The defaults are what the table says, inside their bounds (the parser
    checks bounds), and their printed form parses back to the same struct.  */
static void
test_defaults_roundtrip (void **state)
{
    (void) state;
    dipx_config_t def, back;
    dipx_config_defaults (&def);
    assert_string_equal (def.endpoint, "tcp://127.0.0.1:7710");
    assert_string_equal (def.policy, "/etc/dipx/policy.conf");
    assert_string_equal (def.data_dir, ""); /* required: no default */
    assert_string_equal (def.identity, "");
    assert_string_equal (def.registry, "");
    assert_true (def.map_size_mb <= def.map_max_mb);
    assert_true (def.max_frame <= DIPX_MAX_FRAME);
    assert_true (def.window >= 1 && def.window <= DIPX_MAX_WINDOW);
    assert_true (def.batch >= 1 && def.batch <= DIPX_MAX_BATCH);
    assert_true (def.max_sessions >= 1 && def.max_sessions <= DIPX_MAX_SESSIONS);
    assert_int_equal (def.log_level, DIPX_LOG_LEVEL_INFO);

    size_t len;
    char *text = s_print (&def, &len);
    char err[256];
    memset (&back, 0, sizeof back);
    int rc = dipx_config_parse (&back, text, len, err, sizeof err);
    if (rc)
        print_error ("printed defaults do not parse: %s\n%s\n", err, text);
    assert_int_equal (rc, 0);
    assert_memory_equal (&def, &back, sizeof def);
    /* The required keys are printed commented out, so the printed defaults
       are a valid file; every other key is printed with its value.  */
    assert_non_null (strstr (text, "\n# data_dir =\n"));
    assert_non_null (strstr (text, "\n# identity =\n"));
    assert_non_null (strstr (text, "\n# registry =\n"));
    assert_non_null (strstr (text, "\nwindow = "));
    free (text);

    /* Every value changed, printed and parsed back over the defaults.  */
    dipx_config_t cfg;
    dipx_config_defaults (&cfg);
    strcpy (cfg.endpoint, "ipc:///run/dipx/dipxd.sock");
    strcpy (cfg.data_dir, "/var/lib/dipx");
    strcpy (cfg.identity, "/etc/dipx/broker.secret");
    strcpy (cfg.registry, "/etc/dipx/registry");
    strcpy (cfg.policy, "/etc/dipx/other.conf");
    cfg.map_size_mb = 1;
    cfg.map_max_mb = 16777216;
    cfg.max_frame = 1024;
    cfg.window = DIPX_MAX_WINDOW;
    cfg.verify_threads = 0;
    cfg.batch = DIPX_MAX_BATCH;
    cfg.queue_max_messages = 1;
    cfg.queue_max_mb = 1048576;
    cfg.ack_timeout_ms = 100;
    cfg.max_deliveries = 1000;
    cfg.unacked_max_mb = 1048576;
    cfg.auth_audit_per_sec = 1;
    cfg.max_sessions = DIPX_MAX_SESSIONS;
    cfg.log_level = DIPX_LOG_LEVEL_DEBUG;
    text = s_print (&cfg, &len);
    dipx_config_defaults (&back);
    rc = dipx_config_parse (&back, text, len, err, sizeof err);
    if (rc)
        print_error ("printed config does not parse: %s\n%s\n", err, text);
    assert_int_equal (rc, 0);
    assert_memory_equal (&cfg, &back, sizeof cfg);
    free (text);
}

/*  broker/dipxd.conf.example: a header of comments, then exactly what
    dipx_config_print writes for the defaults with the three required paths
    set to the example's values. So it parses, loads, and covers every key.  */
static void
test_example_file (void **state)
{
    (void) state;
    const char *src = getenv ("DIPX_SOURCE_DIR");
    char path[1024];
    snprintf (path, sizeof path, "%s/broker/dipxd.conf.example",
              src && *src ? src : TEST_SOURCE_DIR);
    size_t len;
    char *text = s_read (path, &len);
    if (!text)
        print_error ("cannot read %s\n", path);
    assert_non_null (text);
    char *body = strstr (text, "[dipxd]\n");
    assert_non_null (body);
    assert_true (body == text || body[-1] == '\n');
    /* The header is comments and blank lines only.  */
    for (const char *l = text; l < body; l = strchr (l, '\n') + 1)
        assert_true (*l == '#' || *l == '\n');

    dipx_config_t ex;
    dipx_config_defaults (&ex);
    char err[512];
    int rc = dipx_config_load (&ex, path, err, sizeof err);
    if (rc)
        print_error ("%s\n", err);
    assert_int_equal (rc, 0);

    dipx_config_t cfg;
    dipx_config_defaults (&cfg);
    memcpy (cfg.data_dir, ex.data_dir, sizeof cfg.data_dir);
    memcpy (cfg.identity, ex.identity, sizeof cfg.identity);
    memcpy (cfg.registry, ex.registry, sizeof cfg.registry);
    assert_memory_equal (&cfg, &ex, sizeof cfg); /* every other key at its default */
    size_t plen;
    char *printed = s_print (&cfg, &plen);

    const char *regen = getenv ("DIPX_REGEN_EXAMPLE");
    if (regen && strcmp (regen, "1") == 0) {
        FILE *f = fopen (path, "wb");
        assert_non_null (f);
        fwrite (text, 1, (size_t) (body - text), f);
        fwrite (printed, 1, plen, f);
        assert_int_equal (fclose (f), 0);
        print_message ("rewrote %s\n", path);
    } else {
        if (strlen (body) != plen || memcmp (body, printed, plen) != 0)
            print_error ("%s differs from dipx_config_print; if the table changed on purpose, "
                         "rerun with DIPX_REGEN_EXAMPLE=1. Expected:\n%s\n",
                         path, printed);
        assert_string_equal (body, printed);
    }
    /* Every key is set in the example (not commented out).  */
    for (const char *l = printed; *l; l = strchr (l, '\n') + 1) {
        if (*l != '#' && *l != '\n' && *l != '[') {
            const char *eq = strstr (l, " = ");
            assert_non_null (eq);
            char key[64];
            snprintf (key, sizeof key, "\n%.*s = ", (int) (eq - l), l);
            assert_non_null (strstr (body - 1, key));
        }
    }
    free (printed);
    free (text);
}

static void
test_accepts (void **state)
{
    (void) state;
    dipx_config_t cfg;
    char err[256];
    dipx_config_defaults (&cfg);
    assert_int_equal (s_parse (&cfg, "", err, sizeof err), 0);
    assert_int_equal (s_parse (&cfg, "\n\n# only comments\n; and these\n", err, sizeof err), 0);
    assert_int_equal (s_parse (&cfg, "[dipxd]\n", err, sizeof err), 0);
    assert_int_equal (s_parse (&cfg,
                               "\xef\xbb\xbf[dipxd]\r\n"
                               "  window=7\r\n"
                               "batch   =   9   ; an inline comment\n"
                               "log_level = debug\n"
                               "endpoint = tcp://0.0.0.0:7710\n"
                               "map_max_mb = 000000000000000000000000000016\n"
                               "[dipxd]\n"
                               "window = 8",
                               err, sizeof err),
                      0);
    assert_int_equal (cfg.window, 8); /* the last one wins */
    /* Indentation means nothing: not a continuation of the key above (which
       inih would hand over as a new value of that key).  */
    assert_int_equal (s_parse (&cfg,
                               "[dipxd]\n"
                               "    data_dir = /var/lib/dipx\n"
                               "    identity = /etc/dipx/broker.secret\n"
                               "\t\tregistry = /etc/dipx/registry\n"
                               "  # an indented comment\n"
                               "  [dipxd]\n"
                               "\t window = 3\n",
                               err, sizeof err),
                      0);
    assert_string_equal (cfg.data_dir, "/var/lib/dipx");
    assert_string_equal (cfg.identity, "/etc/dipx/broker.secret");
    assert_string_equal (cfg.registry, "/etc/dipx/registry");
    assert_int_equal (cfg.window, 3);
    assert_int_equal (cfg.batch, 9);
    assert_int_equal (cfg.map_max_mb, 16);
    assert_int_equal (cfg.log_level, DIPX_LOG_LEVEL_DEBUG);
    assert_string_equal (cfg.endpoint, "tcp://0.0.0.0:7710");
    /* The bounds themselves are in range.  */
    assert_int_equal (s_parse (&cfg, "[dipxd]\nwindow = 1\nmax_frame = 1024\nverify_threads = 0",
                               err, sizeof err),
                      0);
    char text[128];
    snprintf (text, sizeof text, "[dipxd]\nwindow = %d\nmax_frame = %llu\n", DIPX_MAX_WINDOW,
              (unsigned long long) DIPX_MAX_FRAME);
    assert_int_equal (s_parse (&cfg, text, err, sizeof err), 0);
    assert_int_equal (cfg.max_frame, DIPX_MAX_FRAME);
    /* A line of exactly 198 characters (inih's buffer) is fine.  */
    char line[300];
    int n = snprintf (line, sizeof line, "[dipxd]\ndata_dir = /");
    memset (line + n, 'a', 198 - 12);
    line[n + 198 - 12] = 0;
    assert_int_equal (s_parse (&cfg, line, err, sizeof err), 0);
    assert_int_equal (strlen (cfg.data_dir), 198 - 11);
}

static void
test_unknown_key (void **state)
{
    (void) state;
    REFUSED ("[dipxd]\nwindow = 5\n\nbogus = 1\n", "line 4", "unknown key 'bogus'");
    /* The first error is the one reported, with its own line.  */
    REFUSED ("[dipxd]\nwindw = 5\nbatch = 3\nbogus2 = 1\n", "line 2", "'windw'");
    REFUSED ("[dipxd]\nWindow = 5\n", "line 2", "'Window'");
    REFUSED ("[dipxd]\n= 5\n", "line 2", "unknown key ''");
    REFUSED ("[dipxd]\n# ok\n;ok\nmap_size = 5\n", "line 4", "map_size");
    /* A syntax error before a handler error is reported as the first...  */
    REFUSED ("[dipxd]\nwindow 5\nbogus = 1\n", "line 2", "not 'key = value'");
    /* ...and after one, the handler error is.  */
    REFUSED ("[dipxd]\nbogus = 1\nwindow 5\n", "line 2", "unknown key 'bogus'");
    REFUSED ("[dipxd]\nwindow\n", "line 2", "not 'key = value'");
    REFUSED ("[dipxd\nwindow = 1\n", "line 1", "not 'key = value'");
}

static void
test_unknown_section (void **state)
{
    (void) state;
    REFUSED ("window = 5\n", "line 1", "unknown section []");
    REFUSED ("[dipxd]\nwindow = 5\n[server]\nbatch = 3\n", "line 4", "unknown section [server]");
    REFUSED ("[DIPXD]\nwindow = 5\n", "line 2", "unknown section [DIPXD]");
    REFUSED ("[dipxd ]\nwindow = 5\n", "line 2", "unknown section");
}

static void
test_bad_values (void **state)
{
    (void) state;
    /* out of range */
    REFUSED ("[dipxd]\nwindow = 0\n", "line 2", "window", "1..1024");
    REFUSED ("[dipxd]\nwindow = 1025\n", "line 2", "window");
    REFUSED ("[dipxd]\nmax_frame = 1023\n", "max_frame");
    REFUSED ("[dipxd]\nmax_frame = 99999999\n", "max_frame");
    REFUSED ("[dipxd]\nverify_threads = 65\n", "verify_threads");
    REFUSED ("[dipxd]\nack_timeout_ms = 99\n", "ack_timeout_ms");
    REFUSED ("[dipxd]\nbatch = 513\n", "batch");
    REFUSED ("[dipxd]\nmax_sessions = 65537\n", "max_sessions");
    REFUSED ("[dipxd]\nmap_size_mb = 0\n", "map_size_mb");
    REFUSED ("[dipxd]\nmap_size_mb = 18446744073709551615\n", "map_size_mb");
    REFUSED ("[dipxd]\nmap_size_mb = 18446744073709551616\n", "map_size_mb");
    REFUSED ("[dipxd]\nmap_size_mb = 99999999999999999999999999999\n", "map_size_mb");
    /* not numbers */
    REFUSED ("[dipxd]\nwindow = five\n", "line 2", "window", "not a number");
    REFUSED ("[dipxd]\nwindow = -1\n", "window", "not a number");
    REFUSED ("[dipxd]\nwindow = +5\n", "window");
    REFUSED ("[dipxd]\nwindow = 5x\n", "window");
    REFUSED ("[dipxd]\nwindow = 0x10\n", "window");
    REFUSED ("[dipxd]\nwindow = 1e3\n", "window");
    REFUSED ("[dipxd]\nwindow = 5 5\n", "window");
    REFUSED ("[dipxd]\nwindow = 5.0\n", "window");
    REFUSED ("[dipxd]\nwindow =\n", "line 2", "window");
    REFUSED ("[dipxd]\nwindow = 5 # '#' starts no inline comment\n", "window");
    REFUSED ("[dipxd]\nwindow = \" 5\"\n", "window");
    /* strings and levels */
    REFUSED ("[dipxd]\nendpoint =\n", "endpoint", "empty");
    REFUSED ("[dipxd]\ndata_dir = ;comment only\n", "data_dir", "empty");
    REFUSED ("[dipxd]\ndata_dir =;x\n", "data_dir", "';'"); /* would print as a comment */
    REFUSED ("[dipxd]\nlog_level = verbose\n", "log_level");
    REFUSED ("[dipxd]\nlog_level = INFO\n", "log_level");
    REFUSED ("[dipxd]\nlog_level = 3\n", "log_level");
    /* an indented line is not the continuation of the key above */
    REFUSED ("[dipxd]\nwindow = 5\n    6\n", "line 3", "not 'key = value'");
}

/*  A line longer than inih's buffer is an error, never cut in two. (Cut, the
    tail of a long value was parsed as a line of its own: here it would set
    window.)  */
static void
test_long_line (void **state)
{
    (void) state;
    char text[512];
    int n = snprintf (text, sizeof text, "[dipxd]\ndata_dir = /");
    memset (text + n, 'a', 187);
    n += 187;
    n += snprintf (text + n, sizeof text - (size_t) n, "window = 7\n");
    s_refused (text, (size_t) n, "line 2", "longer than 198", NULL);
    /* As the last line, without a newline, and after a comment.  */
    n = snprintf (text, sizeof text, "[dipxd]\n#\n");
    memset (text + n, '#', 199);
    n += 199;
    s_refused (text, (size_t) n, "line 3", "longer", NULL);
    n = snprintf (text, sizeof text, "[dipxd]\ndata_dir = /");
    memset (text + n, 'b', 300);
    n += 300;
    s_refused (text, (size_t) n, "line 2", "longer", NULL);
}

static void
test_size_and_nul (void **state)
{
    (void) state;
    REFUSED ("[dipxd]\nwindow = 5\0\n", "NUL");
    REFUSED ("\0", "NUL");
    REFUSED ("[dipxd]\n# \0 in a comment\n", "NUL");
    size_t size = DIPX_MAX_CONFIG_BYTES + 1;
    char *text = malloc (size);
    assert_non_null (text);
    memset (text, '\n', size);
    s_refused (text, size, "larger than", NULL);
    dipx_config_t cfg;
    dipx_config_defaults (&cfg);
    char err[128];
    assert_int_equal (dipx_config_parse (&cfg, text, size - 1, err, sizeof err), 0);
    free (text);
    /* A short or absent error buffer is never overrun.  */
    assert_int_equal (dipx_config_parse (&cfg, "x", 1, err, 4), DIPX_E_CONFIG);
    assert_int_equal (strlen (err), 3);
    assert_int_equal (dipx_config_parse (&cfg, "[dipxd]\nbogus = 1", 17, NULL, 0),
                      DIPX_E_CONFIG);
    assert_int_equal (dipx_config_parse (&cfg, "\0", 1, NULL, 0), DIPX_E_CONFIG);
}

static void
test_load (void **state)
{
    s_tmp_t *tmp = *state;
    dipx_config_t cfg;
    char err[512];

    dipx_config_defaults (&cfg);
    assert_int_equal (dipx_config_load (&cfg, s_path (tmp, "absent.conf"), err, sizeof err),
                      DIPX_E_IO);
    assert_non_null (strstr (err, "absent.conf"));
    dipx_config_defaults (&cfg);
    assert_int_equal (dipx_config_load (&cfg, tmp->dir, err, sizeof err), DIPX_E_IO);
    /* A FIFO with no writer: refused at once, not waited on (a reload
       thread stuck here would hold up SIGTERM).  */
    assert_int_equal (mkfifo (s_path (tmp, "fifo.conf"), 0600), 0);
    assert_int_equal (dipx_config_load (&cfg, tmp->path, err, sizeof err), DIPX_E_IO);
    assert_non_null (strstr (err, "not a regular file"));

    /* The three required keys, one missing at a time.  */
    static const char *const missing[][2] = {
        {"identity = /i\nregistry = /r\n", "data_dir"},
        {"data_dir = /d\nregistry = /r\n", "identity"},
        {"data_dir = /d\nidentity = /i\n", "registry"},
        {"", "data_dir"},
    };
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        char text[256];
        snprintf (text, sizeof text, "[dipxd]\n%s", missing[i][0]);
        s_write (s_path (tmp, "c.conf"), text, strlen (text));
        dipx_config_defaults (&cfg);
        assert_int_equal (dipx_config_load (&cfg, tmp->path, err, sizeof err), DIPX_E_CONFIG);
        assert_non_null (strstr (err, "required"));
        assert_non_null (strstr (err, missing[i][1]));
    }
    /* All three: loads, the rest at their defaults.  */
    const char *ok = "[dipxd]\n" REQUIRED;
    s_write (s_path (tmp, "c.conf"), ok, strlen (ok));
    dipx_config_defaults (&cfg);
    assert_int_equal (dipx_config_load (&cfg, tmp->path, err, sizeof err), 0);
    dipx_config_t want;
    dipx_config_defaults (&want);
    strcpy (want.data_dir, "/tmp/d");
    strcpy (want.identity, "/tmp/i");
    strcpy (want.registry, "/tmp/r");
    assert_memory_equal (&cfg, &want, sizeof cfg);

    /* Errors carry the line number through load too.  */
    const char *bad = "[dipxd]\n" REQUIRED "window = 0\n";
    s_write (s_path (tmp, "c.conf"), bad, strlen (bad));
    assert_int_equal (dipx_config_load (&cfg, tmp->path, err, sizeof err), DIPX_E_CONFIG);
    assert_non_null (strstr (err, "line 5"));

    /* The map may not be allowed to grow below its initial size.  */
    const char *map = "[dipxd]\n" REQUIRED "map_size_mb = 2048\nmap_max_mb = 1024\n";
    s_write (s_path (tmp, "c.conf"), map, strlen (map));
    dipx_config_defaults (&cfg);
    assert_int_equal (dipx_config_load (&cfg, tmp->path, err, sizeof err), DIPX_E_CONFIG);
    assert_non_null (strstr (err, "map_max_mb"));

    /* Size: exactly the limit loads, one byte more does not.  */
    size_t size = DIPX_MAX_CONFIG_BYTES + 1;
    char *big = malloc (size);
    assert_non_null (big);
    memset (big, '\n', size);
    memcpy (big, ok, strlen (ok));
    s_write (s_path (tmp, "big.conf"), big, size - 1);
    dipx_config_defaults (&cfg);
    assert_int_equal (dipx_config_load (&cfg, tmp->path, err, sizeof err), 0);
    s_write (tmp->path, big, size);
    assert_int_equal (dipx_config_load (&cfg, tmp->path, err, sizeof err), DIPX_E_CONFIG);
    assert_non_null (strstr (err, "larger"));
    free (big);

    /* An embedded NUL in a file.  */
    const char nul[] = "[dipxd]\n" REQUIRED "# \0\n";
    s_write (s_path (tmp, "nul.conf"), nul, sizeof nul - 1);
    assert_int_equal (dipx_config_load (&cfg, tmp->path, err, sizeof err), DIPX_E_CONFIG);
    assert_non_null (strstr (err, "NUL"));
}

/*  SIGHUP copies the reloadable keys and only those.  */
static void
test_reload_into (void **state)
{
    (void) state;
    dipx_config_t dst, src;
    char err[256];
    dipx_config_defaults (&dst);
    strcpy (dst.data_dir, "/d");
    strcpy (dst.identity, "/i");
    strcpy (dst.registry, "/r");
    dipx_config_defaults (&src);
    const char *text = "[dipxd]\n"
                       "endpoint = tcp://127.0.0.1:9999\ndata_dir = /d2\nidentity = /i2\n"
                       "registry = /r2\npolicy = /p2\nmap_size_mb = 2\nmap_max_mb = 3\n"
                       "max_frame = 2048\nwindow = 2\nverify_threads = 3\nbatch = 4\n"
                       "queue_max_messages = 5\nqueue_max_mb = 6\nack_timeout_ms = 7000\n"
                       "max_deliveries = 8\nunacked_max_mb = 9\nauth_audit_per_sec = 10\n"
                       "max_sessions = 11\nlog_level = error\n";
    assert_int_equal (s_parse (&src, text, err, sizeof err), 0);
    dipx_config_t before = dst;
    dipx_config_reload_into (&dst, &src);
    /* needs a restart: unchanged */
    assert_string_equal (dst.endpoint, before.endpoint);
    assert_string_equal (dst.data_dir, "/d");
    assert_string_equal (dst.identity, "/i");
    assert_int_equal (dst.map_size_mb, before.map_size_mb);
    assert_int_equal (dst.map_max_mb, before.map_max_mb);
    assert_int_equal (dst.max_frame, before.max_frame);
    assert_int_equal (dst.verify_threads, before.verify_threads);
    assert_int_equal (dst.max_sessions, before.max_sessions);
    assert_int_equal (dst.batch, before.batch); /* sizes the frame array */
    /* reloaded */
    assert_string_equal (dst.registry, "/r2");
    assert_string_equal (dst.policy, "/p2");
    assert_int_equal (dst.window, 2);
    assert_int_equal (dst.queue_max_messages, 5);
    assert_int_equal (dst.queue_max_mb, 6);
    assert_int_equal (dst.ack_timeout_ms, 7000);
    assert_int_equal (dst.max_deliveries, 8);
    assert_int_equal (dst.unacked_max_mb, 9);
    assert_int_equal (dst.auth_audit_per_sec, 10);
    assert_int_equal (dst.log_level, DIPX_LOG_LEVEL_ERROR);

    /* And the printed help says the same about each key.  */
    char *printed = s_print (&src, NULL);
    static const char *const restart[] = {"endpoint", "data_dir", "identity", "map_size_mb",
                                          "map_max_mb", "max_frame", "verify_threads",
                                          "max_sessions", "batch"};
    for (size_t i = 0; i < sizeof restart / sizeof restart[0]; i++) {
        char key[64];
        snprintf (key, sizeof key, "needs a restart\n%s = ", restart[i]);
        assert_non_null (strstr (printed, key));
    }
    static const char *const reload[] = {"registry", "policy", "window",
                                         "queue_max_messages", "queue_max_mb", "ack_timeout_ms",
                                         "max_deliveries", "unacked_max_mb",
                                         "auth_audit_per_sec", "log_level"};
    for (size_t i = 0; i < sizeof reload / sizeof reload[0]; i++) {
        char key[64];
        snprintf (key, sizeof key, "reloaded on SIGHUP\n%s = ", reload[i]);
        assert_non_null (strstr (printed, key));
    }
    free (printed);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_defaults_roundtrip),
        cmocka_unit_test (test_example_file),
        cmocka_unit_test (test_accepts),
        cmocka_unit_test (test_unknown_key),
        cmocka_unit_test (test_unknown_section),
        cmocka_unit_test (test_bad_values),
        cmocka_unit_test (test_long_line),
        cmocka_unit_test (test_size_and_nul),
        cmocka_unit_test_setup_teardown (test_load, s_setup, s_teardown),
        cmocka_unit_test (test_reload_into),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
