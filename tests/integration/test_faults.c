/*  test_faults.c - hostile or damaged files: the broker refuses to start
    with a clear error, and never crashes, when its key file is exposed or
    corrupt or its data file is truncated or garbage; the audit dump reports
    damage instead of reading past it.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "dipx_envelope.h"
#include "dipx_registry.h"
#include "harness.h"

#define WAIT_MS 15000

static harness_t *
s_new (void)
{
    harness_t *h = calloc (1, sizeof *h);
    assert_non_null (h);
    assert_int_equal (harness_init (h, NULL), 0);
    assert_non_null (harness_add (h, "police.test", DIPX_AGENCY_POLICE, DIPX_STATUS_ACTIVE));
    assert_non_null (harness_add (h, "cjit.test", DIPX_AGENCY_CJIT, DIPX_STATUS_ACTIVE));
    return h;
}

/*  The broker must not start, and must exit with status 1, not a signal.  */
static void
s_refuses_to_start (harness_t *h, const char *log_needle)
{
    assert_int_equal (harness_start (h), -1);
    assert_true (WIFEXITED (h->last_status));
    assert_int_equal (WEXITSTATUS (h->last_status), 1);
    FILE *f = fopen (h->log, "r");
    assert_non_null (f);
    char line[1024];
    int found = 0;
    while (fgets (line, sizeof line, f))
        found += strstr (line, log_needle) != NULL;
    fclose (f);
    if (!found)
        fail_msg ("broker log lacks '%s'", log_needle);
}

static void
s_send_one (harness_t *h)
{
    dipx_client_t *c = NULL;
    assert_int_equal (harness_client (h, "police.test", 0, &c), 0);
    uint8_t subject[DIPX_SUBJECT_BYTES] = {3};
    dipx_send_t m = harness_dt1 ("cjit.test", subject);
    static uint8_t body[8192];
    for (int i = 0; i < 20; i++)
        assert_int_equal (dipx_client_send (c, &m, body, sizeof body, WAIT_MS, NULL), 0);
    dipx_client_destroy (&c);
}

static void
test_exposed_key_file (void **state)
{
    (void) state;
    harness_t *h = s_new ();
    char path[600];
    snprintf (path, sizeof path, "%s/broker.secret", h->dir);
    assert_int_equal (chmod (path, 0644), 0);
    s_refuses_to_start (h, "broker.secret");
    harness_fini (h);
    free (h);
}

static void
test_corrupt_key_file (void **state)
{
    (void) state;
    harness_t *h = s_new ();
    char path[600];
    snprintf (path, sizeof path, "%s/broker.secret", h->dir);
    FILE *f = fopen (path, "r+");
    assert_non_null (f);
    fseek (f, 30, SEEK_SET);
    fputs ("#####", f);
    fclose (f);
    s_refuses_to_start (h, "broker.secret");
    harness_fini (h);
    free (h);
}

static void
test_truncated_data_file (void **state)
{
    (void) state;
    harness_t *h = s_new ();
    assert_int_equal (harness_start (h), 0);
    s_send_one (h);
    harness_stop (h, SIGTERM);
    char path[600];
    snprintf (path, sizeof path, "%s/data.mdb", h->data);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (truncate (path, st.st_size / 3), 0);
    s_refuses_to_start (h, "store");
    /* The audit dump says so too, without crashing.  */
    char cmd[1400];
    snprintf (cmd, sizeof cmd, "%s/broker/dipxd audit --data %s >/dev/null 2>&1",
              getenv ("DIPX_BUILD_DIR"), h->data);
    int status = system (cmd);
    assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 1);
    harness_fini (h);
    free (h);
}

static void
test_garbage_data_file (void **state)
{
    (void) state;
    harness_t *h = s_new ();
    assert_int_equal (mkdir (h->data, 0700), 0);
    char path[600];
    snprintf (path, sizeof path, "%s/data.mdb", h->data);
    int fd = open (path, O_WRONLY | O_CREAT, 0600);
    assert_true (fd >= 0);
    static uint8_t junk[65536];
    randombytes_buf (junk, sizeof junk);
    assert_int_equal (write (fd, junk, sizeof junk), (ssize_t) sizeof junk);
    close (fd);
    s_refuses_to_start (h, "store");
    harness_fini (h);
    free (h);
}

/*  An authenticated agency sending junk gets an ERROR for every frame, but
    cannot fill the audit log (and with it the store): protocol records are
    rate-limited like refused connections.  */
static void
test_junk_frames_rate_limited (void **state)
{
    (void) state;
    harness_t *h = calloc (1, sizeof *h);
    assert_non_null (h);
    assert_int_equal (harness_init (h, "auth_audit_per_sec = 5"), 0);
    assert_non_null (harness_add (h, "police.test", DIPX_AGENCY_POLICE, DIPX_STATUS_ACTIVE));
    assert_int_equal (harness_start (h), 0);
    void *ctx = zmq_ctx_new ();
    void *raw = harness_raw (h, ctx, "police.test");
    assert_non_null (raw);
    enum { N = 200 };
    for (int i = 0; i < N; i++)
        assert_int_equal (zmq_send (raw, "\xc1", 1, 0), 1);
    uint8_t buf[1024];
    uint64_t t0 = dipx_now_ms ();
    for (int i = 0; i < N; i++)
        assert_true (harness_raw_recv (raw, buf, sizeof buf, WAIT_MS) > 0);
    uint64_t secs = (dipx_now_ms () - t0) / 1000 + 2;
    zmq_close (raw);
    zmq_ctx_term (ctx);
    harness_stop (h, SIGTERM);
    int audited = harness_audit_count (h, "\"ev\":\"protocol\"", NULL);
    printf ("junk: %d frames answered, %d audited\n", N, audited);
    assert_true (audited >= 1);
    assert_true (audited <= (int) (5 * secs));
    harness_fini (h);
    free (h);
}

int
main (void)
{
    if (sodium_init () < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_exposed_key_file),
        cmocka_unit_test (test_corrupt_key_file),
        cmocka_unit_test (test_truncated_data_file),
        cmocka_unit_test (test_garbage_data_file),
        cmocka_unit_test (test_junk_frames_rate_limited),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
