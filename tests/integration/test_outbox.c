/*  test_outbox.c - libdipx's durable outbox against a real dipxd: sends
    posted while the broker is down survive a restart of the agency system
    and go out once each when the broker comes back; more of them than the
    in-memory pending table holds; sends leave the outbox when their answer
    (accepted or refused) is collected, not before; a crash between the
    broker's answer and the outbox's delete resends without storing twice;
    a damaged entry is answered, not sent; an outbox has one owner.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "dipx_bytes.h"
#include "dipx_client_internal.h"
#include "dipx_registry.h"
#include "harness.h"

#define WAIT_MS 15000

static uint8_t s_subject[DIPX_SUBJECT_BYTES];

static dipx_send_t
s_msg (void)
{
    return harness_dt1 ("cjit.test", s_subject);
}

static harness_t *
s_start (void)
{
    harness_t *h = calloc (1, sizeof *h);
    assert_non_null (h);
    assert_int_equal (harness_init (h, NULL), 0);
    assert_non_null (harness_add (h, "police.test", DIPX_AGENCY_POLICE, DIPX_STATUS_ACTIVE));
    assert_non_null (harness_add (h, "cjit.test", DIPX_AGENCY_CJIT, DIPX_STATUS_ACTIVE));
    assert_int_equal (harness_start (h), 0);
    return h;
}

static void
s_end (harness_t *h)
{
    harness_fini (h);
    free (h);
}

/*  The outbox directory of a test: inside the harness's directory, so that
    harness_fini removes it.  */
static void
s_box_path (harness_t *h, const char *name, char *out, size_t cap)
{
    assert_true ((size_t) snprintf (out, cap, "%s/%s", h->dir, name) < cap);
}

/*  Log lines that say the outbox map grew.  */
static int s_grown;

static void
s_log (int level, const char *line, void *arg)
{
    (void) level;
    (void) arg;
    if (strstr (line, "map grown"))
        s_grown++;
}

/*  A client with an outbox; does not wait for the broker.  */
static int
s_box_client (harness_t *h, const char *id, const char *box, uint32_t window,
              dipx_client_t **out)
{
    h_agency_t *a = harness_agency (h, id);
    assert_non_null (a);
    dipx_options_t o = {
        .endpoint = h->endpoint,
        .identity = a->secret,
        .broker_key = h->broker_key,
        .peers = h->registry,
        .window = window,
        .outbox = box,
        .log = s_log,
    };
    *out = NULL;
    return dipx_client_new (&o, out);
}

static dipx_client_t *
s_client (harness_t *h, const char *id, uint32_t window)
{
    dipx_client_t *c = harness_ready_client (h, id, window, WAIT_MS);
    assert_non_null (c);
    return c;
}

static dipx__client_stats_t
s_stats (const dipx_client_t *c)
{
    dipx__client_stats_t st;
    dipx__client_stats (c, &st);
    return st;
}

/*  A set of message ids: sorted once filled, each seen at most once.  */
typedef struct {
    uint8_t (*ids)[DIPX_MESSAGE_ID_BYTES]; /* the ids */
    uint64_t *seq;                         /* broker seq of each, from its result */
    bool *seen;                            /* taken by s_set_take */
    size_t n;                              /* how many */
} s_set_t;

static void
s_set_init (s_set_t *s, size_t cap)
{
    s->ids = calloc (cap, sizeof *s->ids);
    s->seq = calloc (cap, sizeof *s->seq);
    s->seen = calloc (cap, sizeof *s->seen);
    assert_true (s->ids && s->seq && s->seen);
    s->n = 0;
}

static void
s_set_fini (s_set_t *s)
{
    free (s->ids);
    free (s->seq);
    free (s->seen);
}

static int
s_cmp_id (const void *a, const void *b)
{
    return memcmp (a, b, DIPX_MESSAGE_ID_BYTES);
}

static void
s_set_sort (s_set_t *s)
{
    qsort (s->ids, s->n, sizeof *s->ids, s_cmp_id);
    for (size_t i = 1; i < s->n; i++) /* distinct */
        assert_true (memcmp (s->ids[i - 1], s->ids[i], DIPX_MESSAGE_ID_BYTES) < 0);
}

static size_t
s_set_find (const s_set_t *s, const uint8_t *id)
{
    const uint8_t (*p)[DIPX_MESSAGE_ID_BYTES] = bsearch (id, s->ids, s->n, sizeof *s->ids,
                                                         s_cmp_id);
    assert_non_null (p); /* one of the ids posted */
    return (size_t) (p - s->ids);
}

/*  Marks id seen; fails if it is not in the set or was seen before.  */
static size_t
s_set_take (s_set_t *s, const uint8_t *id)
{
    size_t i = s_set_find (s, id);
    assert_false (s->seen[i]);
    s->seen[i] = true;
    return i;
}

static void
s_set_clear_seen (s_set_t *s)
{
    memset (s->seen, 0, s->n * sizeof *s->seen);
}

/*  Collects n results, each accepted, each for a different id of the set;
    records their seqs (or checks them against those recorded, if check).  */
static void
s_results_accepted (dipx_client_t *c, s_set_t *s, size_t n, bool check)
{
    for (size_t k = 0; k < n; k++) {
        dipx_result_t r;
        assert_int_equal (dipx_client_result (c, WAIT_MS, &r), 0);
        assert_int_equal (r.code, 0);
        size_t i = s_set_take (s, r.id);
        assert_true (r.seq > 0);
        if (check)
            assert_int_equal (r.seq, s->seq[i]); /* the broker's first answer again */
        else
            s->seq[i] = r.seq;
    }
    s_set_clear_seen (s);
}

/*  Receives n messages, each for a different id of the set, and acks them.  */
static void
s_recv_all (dipx_client_t *c, s_set_t *s, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        dipx_message_t *msg = NULL;
        assert_int_equal (dipx_client_recv (c, WAIT_MS, &msg), 0);
        s_set_take (s, dipx_message_id (msg));
        assert_int_equal (dipx_client_ack (c, msg), 0);
        dipx_message_destroy (&msg);
    }
    s_set_clear_seen (s);
}

/*  Sends a marker from sender and checks it is what recipient gets next:
    nothing else (no duplicate) is queued before it.  */
static void
s_marker (dipx_client_t *sender, dipx_client_t *recipient)
{
    dipx_send_t m = s_msg ();
    dipx_result_t r;
    assert_int_equal (dipx_client_send (sender, &m, "marker", 6, WAIT_MS, &r), 0);
    dipx_message_t *msg = NULL;
    assert_int_equal (dipx_client_recv (recipient, WAIT_MS, &msg), 0);
    assert_memory_equal (dipx_message_id (msg), r.id, DIPX_MESSAGE_ID_BYTES);
    assert_int_equal (dipx_client_ack (recipient, msg), 0);
    dipx_message_destroy (&msg);
}

static void
s_shell (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static void
s_shell (const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (cmd, sizeof cmd, fmt, ap);
    va_end (ap);
    assert_true (n > 0 && (size_t) n < sizeof cmd);
    assert_int_equal (system (cmd), 0);
}

/*  The broker is down: posts succeed, kept on disk. The agency system
    restarts; when the broker is back, the new client sends them, each is
    accepted and delivered once, and the outbox is empty. Then the outbox as
    a crash would have left it (after the broker's answers, before the
    deletes) is restored: the resends are answered as the first time and
    nothing is delivered twice.  */
static void
test_broker_down_then_back (void **state)
{
    (void) state;
    harness_t *h = s_start ();
    harness_stop (h, SIGTERM); /* h->endpoint is kept: the restart binds it */
    char box[600], copy[600];
    s_box_path (h, "outbox", box, sizeof box);
    s_box_path (h, "outbox-copy", copy, sizeof copy);

    dipx_client_t *police = NULL;
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    assert_int_equal (s_stats (police).outbox_reloaded, 0);
    s_set_t ids;
    s_set_init (&ids, 5);
    dipx_send_t m = s_msg ();
    for (int i = 0; i < 5; i++) {
        char body[16];
        int len = snprintf (body, sizeof body, "queued %d", i);
        assert_int_equal (dipx_client_post (police, &m, body, (size_t) len, ids.ids[ids.n++]), 0);
    }
    assert_int_equal (s_stats (police).outbox, 5);
    dipx_result_t r;
    assert_int_equal (dipx_client_result (police, 0, &r), DIPX_E_TIMEOUT);
    dipx_client_destroy (&police); /* the agency system stops */
    s_set_sort (&ids);
    s_shell ("cp -a '%s' '%s'", box, copy);

    assert_int_equal (harness_start (h), 0);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    assert_int_equal (s_stats (police).outbox_reloaded, 5);
    s_results_accepted (police, &ids, 5, false);
    assert_int_equal (s_stats (police).outbox, 0); /* deleted before the results were seen */

    dipx_client_t *cjit = s_client (h, "cjit.test", 8);
    s_recv_all (cjit, &ids, 5);
    s_marker (police, cjit); /* sent through the outbox too */
    assert_int_equal (s_stats (police).outbox, 0);

    /* Reopened: nothing left to send.  */
    dipx_client_destroy (&police);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    assert_int_equal (s_stats (police).outbox_reloaded, 0);
    assert_int_equal (s_stats (police).outbox, 0);
    assert_int_equal (dipx_client_wait_ready (police, WAIT_MS), 0);
    assert_int_equal (dipx_client_result (police, 0, &r), DIPX_E_TIMEOUT);
    dipx_client_destroy (&police);

    /* A crash after the answers, before the deletes: all five are resent,
       the broker answers each with its first seq, and stores none again.  */
    s_shell ("rm -rf '%s' && mv '%s' '%s'", box, copy, box);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    assert_int_equal (s_stats (police).outbox_reloaded, 5);
    s_results_accepted (police, &ids, 5, true);
    assert_int_equal (s_stats (police).outbox, 0);
    s_marker (police, cjit);

    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_set_fini (&ids);
    s_end (h);
}

/*  More sends than the pending table holds (DIPX_MAX_PENDING) while the
    broker is down: every post succeeds; a dipx_client_send behind them is
    kept too and returns DIPX_E_TIMEOUT at once; all go out when it is back,
    as results are collected.  */
static void
test_more_than_pending (void **state)
{
    (void) state;
    const size_t n = 1500;
    _Static_assert (1500 > DIPX_MAX_PENDING, "the test must overflow the pending table");
    harness_t *h = s_start ();
    harness_stop (h, SIGTERM);
    char box[600];
    s_box_path (h, "outbox", box, sizeof box);
    dipx_client_t *police = NULL;
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    s_set_t ids;
    s_set_init (&ids, n + 1);
    dipx_send_t m = s_msg ();
    for (size_t i = 0; i < n; i++)
        assert_int_equal (dipx_client_post (police, &m, "x", 1, ids.ids[ids.n++]), 0);
    dipx_result_t r;
    assert_int_equal (dipx_client_send (police, &m, "sync", 4, WAIT_MS, &r), DIPX_E_TIMEOUT);
    memcpy (ids.ids[ids.n++], r.id, DIPX_MESSAGE_ID_BYTES);
    assert_int_equal (s_stats (police).outbox, n + 1);
    s_set_sort (&ids);

    assert_int_equal (harness_start (h), 0);
    s_results_accepted (police, &ids, n + 1, false);
    assert_int_equal (s_stats (police).outbox, 0);
    assert_int_equal (s_stats (police).outbox_reloaded, 0);
    dipx_client_t *cjit = s_client (h, "cjit.test", 256);
    s_recv_all (cjit, &ids, n + 1);
    s_marker (police, cjit);

    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_set_fini (&ids);
    s_end (h);
}

/*  Posts a message the policy refuses (cjit -> police only) and one it
    allows, in that order.  */
static void
s_post_bad_good (dipx_client_t *c, uint8_t bad_id[DIPX_MESSAGE_ID_BYTES],
                 uint8_t good_id[DIPX_MESSAGE_ID_BYTES])
{
    dipx_send_t bad = s_msg ();
    bad.type = "assessment_non_attendance";
    dipx_send_t good = s_msg ();
    assert_int_equal (dipx_client_post (c, &bad, "x", 1, bad_id), 0);
    assert_int_equal (dipx_client_post (c, &good, "y", 1, good_id), 0);
}

/*  Collects the two answers to s_post_bad_good's posts: the refusal, with
    its reason, and the acceptance.  */
static void
s_results_bad_good (dipx_client_t *c, const uint8_t *bad_id, const uint8_t *good_id)
{
    for (int k = 0; k < 2; k++) {
        dipx_result_t r;
        assert_int_equal (dipx_client_result (c, WAIT_MS, &r), 0);
        if (memcmp (r.id, bad_id, DIPX_MESSAGE_ID_BYTES) == 0) {
            assert_int_equal (r.code, DIPX_E_POLICY);
            assert_true (r.reason[0] != '\0');
        }
        else {
            assert_memory_equal (r.id, good_id, DIPX_MESSAGE_ID_BYTES);
            assert_int_equal (r.code, 0);
        }
    }
}

/*  Checks that id is the one message cjit gets from police before a marker:
    delivered once, and nothing else.  */
static void
s_delivered_only (dipx_client_t *police, dipx_client_t *cjit, const uint8_t *id)
{
    s_set_t ids;
    s_set_init (&ids, 1);
    memcpy (ids.ids[ids.n++], id, DIPX_MESSAGE_ID_BYTES);
    s_recv_all (cjit, &ids, 1);
    s_marker (police, cjit);
    s_set_fini (&ids);
}

/*  A refused send leaves the outbox as an accepted one does: reopening does
    not send it again. Once with the broker up, once posted while it is down
    and answered after a restart of the agency system.  */
static void
test_refused_leaves_outbox (void **state)
{
    (void) state;
    harness_t *h = s_start ();
    char box[600];
    s_box_path (h, "outbox", box, sizeof box);
    dipx_client_t *police = NULL;
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    uint8_t bad_id[DIPX_MESSAGE_ID_BYTES], good_id[DIPX_MESSAGE_ID_BYTES];
    s_post_bad_good (police, bad_id, good_id);
    s_results_bad_good (police, bad_id, good_id);
    assert_int_equal (s_stats (police).outbox, 0);
    dipx_client_destroy (&police);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    assert_int_equal (s_stats (police).outbox_reloaded, 0);
    dipx_client_destroy (&police);

    /* Posted while the broker is down, refused after the restart.  */
    harness_stop (h, SIGTERM);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    dipx_send_t bad = s_msg ();
    bad.type = "assessment_non_attendance"; /* cjit -> police only */
    assert_int_equal (dipx_client_post (police, &bad, "z", 1, bad_id), 0);
    dipx_client_destroy (&police);
    assert_int_equal (harness_start (h), 0);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    assert_int_equal (s_stats (police).outbox_reloaded, 1);
    dipx_result_t r;
    assert_int_equal (dipx_client_result (police, WAIT_MS, &r), 0);
    assert_memory_equal (r.id, bad_id, sizeof bad_id);
    assert_int_equal (r.code, DIPX_E_POLICY);
    assert_int_equal (s_stats (police).outbox, 0);
    dipx_client_destroy (&police);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    assert_int_equal (s_stats (police).outbox_reloaded, 0);
    assert_int_equal (dipx_client_wait_ready (police, WAIT_MS), 0);
    assert_int_equal (dipx_client_result (police, 0, &r), DIPX_E_TIMEOUT);
    dipx_client_destroy (&police);
    s_end (h);
}

/*  An outbox has one owner: a second client cannot open it while the first
    has it, and another agency's client never can. Its files are private.  */
static void
test_outbox_owner (void **state)
{
    (void) state;
    harness_t *h = s_start ();
    char box[600], path[700];
    s_box_path (h, "outbox", box, sizeof box);
    dipx_client_t *first = NULL, *second = NULL;
    assert_int_equal (s_box_client (h, "police.test", box, 0, &first), 0);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &second), DIPX_E_BUSY);
    assert_null (second);
    dipx_client_destroy (&first);
    assert_int_equal (s_box_client (h, "cjit.test", box, 0, &second), DIPX_E_INVAL);
    assert_null (second);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &first), 0);
    dipx_client_destroy (&first);

    struct stat st;
    assert_int_equal (stat (box, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0700);
    snprintf (path, sizeof path, "%s/data.mdb", box);
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 0077, 0);
    /* A directory others could write to, or another user's.  */
    assert_int_equal (chmod (box, 0770), 0);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &first), DIPX_E_PERM);
    assert_int_equal (chmod (box, 0702), 0);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &first), DIPX_E_PERM);
    assert_int_equal (chmod (box, 0700), 0);
    if (geteuid () == 0) {
        assert_int_equal (chown (box, 65534, (gid_t) -1), 0);
        assert_int_equal (s_box_client (h, "police.test", box, 0, &first), DIPX_E_PERM);
        assert_int_equal (chown (box, 0, (gid_t) -1), 0);
    }
    assert_int_equal (s_box_client (h, "police.test", box, 0, &first), 0);
    dipx_client_destroy (&first);
    /* A directory that cannot be made.  */
    snprintf (path, sizeof path, "%s/missing/outbox", h->dir);
    assert_int_equal (s_box_client (h, "police.test", path, 0, &first), DIPX_E_IO);
    s_end (h);
}

/*  More than the initial map (DIPX_OUTBOX_MAP_INITIAL) of the largest
    bodies: the map grows, every post succeeds, and all are there after a
    restart (the grown file is opened whole).  */
static void
test_outbox_grows (void **state)
{
    (void) state;
    size_t n = (size_t) (DIPX_OUTBOX_MAP_INITIAL / DIPX_MAX_BODY) + 16;
    harness_t *h = s_start ();
    harness_stop (h, SIGTERM);
    char box[600];
    s_box_path (h, "outbox", box, sizeof box);
    uint8_t *body = malloc (DIPX_MAX_BODY);
    assert_non_null (body);
    memset (body, 0x5a, DIPX_MAX_BODY);
    dipx_client_t *police = NULL;
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    s_grown = 0;
    dipx_send_t m = s_msg ();
    for (size_t i = 0; i < n; i++)
        assert_int_equal (dipx_client_post (police, &m, body, DIPX_MAX_BODY, NULL), 0);
    assert_true (s_grown >= 1);
    assert_int_equal (s_stats (police).outbox, n);
    dipx_client_destroy (&police);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    assert_int_equal (s_stats (police).outbox_reloaded, n);
    dipx_client_destroy (&police);
    free (body);
    s_end (h);
}

/*  A damaged outbox is refused with DIPX_E_CORRUPT, never read past its
    end (a truncated file would raise SIGBUS) nor taken for an empty one.  */
static void
test_outbox_damaged (void **state)
{
    (void) state;
    harness_t *h = s_start ();
    harness_stop (h, SIGTERM);
    char box[600];
    s_box_path (h, "outbox", box, sizeof box);
    dipx_client_t *police = NULL;
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    dipx_send_t m = s_msg ();
    for (int i = 0; i < 200; i++)
        assert_int_equal (dipx_client_post (police, &m, "x", 1, NULL), 0);
    dipx_client_destroy (&police);
    s_shell ("truncate -s 8192 '%s/data.mdb'", box);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), DIPX_E_CORRUPT);
    assert_null (police);
    s_shell ("head -c 65536 /dev/urandom > '%s/data.mdb'", box);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), DIPX_E_CORRUPT);
    s_end (h);
}

/*  fsync is wrapped (-Wl,--wrap=fsync, outbox.cmake) so that a test can see
    which directories libdipx makes durable (LMDB's own syncs are not
    seen: they are in liblmdb).  */
int __real_fsync (int fd);
int __wrap_fsync (int fd);
static char s_synced[8][PATH_MAX];
static int s_nsynced;

int
__wrap_fsync (int fd)
{
    char link[64];
    snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink (link, s_synced[s_nsynced % 8], PATH_MAX - 1);
    if (n > 0)
        s_synced[s_nsynced++ % 8][n] = '\0';
    return __real_fsync (fd);
}

static bool
s_was_synced (const char *path)
{
    char real[PATH_MAX];
    assert_non_null (realpath (path, real));
    for (int i = 0; i < s_nsynced && i < 8; i++)
        if (strcmp (s_synced[i], real) == 0)
            return true;
    return false;
}

/*  A new outbox's directory and the one it is in are synced once its files
    are made: without that a power cut could lose their names, and with them
    every send posted since.  */
static void
test_outbox_dirs_synced (void **state)
{
    (void) state;
    harness_t *h = s_start ();
    char box[600];
    s_box_path (h, "outbox", box, sizeof box);
    s_nsynced = 0;
    dipx_client_t *police = NULL;
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    assert_true (s_was_synced (box));
    assert_true (s_was_synced (h->dir));
    dipx_client_destroy (&police);
    s_end (h);
}

/*  Answers that arrived but were not collected leave their sends in the
    outbox: a client destroyed first (as when the agency system stops)
    leaves them to the next client, which sends them again and returns the
    broker's answers, a refusal included. Collected, they are gone, and the
    accepted message was stored and delivered once.  */
static void
test_uncollected_answers_kept (void **state)
{
    (void) state;
    harness_t *h = s_start ();
    char box[600];
    s_box_path (h, "outbox", box, sizeof box);
    dipx_client_t *police = NULL;
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    uint8_t bad_id[DIPX_MESSAGE_ID_BYTES], good_id[DIPX_MESSAGE_ID_BYTES];
    s_post_bad_good (police, bad_id, good_id);
    uint64_t deadline = dipx_mono_ms () + WAIT_MS;
    while (s_stats (police).uncollected < 2 && dipx_mono_ms () < deadline)
        assert_int_equal (dipx__client_pump (police, 100), 0);
    assert_int_equal (s_stats (police).uncollected, 2);
    assert_int_equal (s_stats (police).outbox, 2);
    dipx_client_destroy (&police);

    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    assert_int_equal (s_stats (police).outbox_reloaded, 2);
    s_results_bad_good (police, bad_id, good_id);
    assert_int_equal (s_stats (police).outbox, 0);
    dipx_client_t *cjit = s_client (h, "cjit.test", 256);
    s_delivered_only (police, cjit, good_id);
    dipx_client_destroy (&police);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    assert_int_equal (s_stats (police).outbox_reloaded, 0);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);
    s_end (h);
}

/*  Opens the outbox's LMDB environment and its entries database, as the
    client does, for a test to damage it.  */
static void
s_box_open (const char *box, MDB_env **env, MDB_txn **txn, MDB_dbi *dbi)
{
    assert_int_equal (mdb_env_create (env), 0);
    assert_int_equal (mdb_env_set_maxdbs (*env, 2), 0);
    assert_int_equal (mdb_env_open (*env, box, MDB_NOTLS, 0600), 0);
    assert_int_equal (mdb_txn_begin (*env, NULL, 0, txn), 0);
    assert_int_equal (mdb_dbi_open (*txn, "entries", 0, dbi), 0);
}

static void
s_box_commit (MDB_env *env, MDB_txn *txn)
{
    assert_int_equal (mdb_txn_commit (txn), 0);
    mdb_env_close (env);
}

/*  An entry whose stored id no longer matches its envelope (one bit of it
    flipped on disk) is answered DIPX_E_CORRUPT under the stored id and never
    sent; the entries after it go out as usual. A last key that would wrap
    the next one to 0 makes the outbox refused.  */
static void
test_outbox_entry_damaged (void **state)
{
    (void) state;
    harness_t *h = s_start ();
    harness_stop (h, SIGTERM);
    char box[600];
    s_box_path (h, "outbox", box, sizeof box);
    dipx_client_t *police = NULL;
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    dipx_send_t m = s_msg ();
    uint8_t first[DIPX_MESSAGE_ID_BYTES], second[DIPX_MESSAGE_ID_BYTES];
    assert_int_equal (dipx_client_post (police, &m, "x", 1, first), 0);
    assert_int_equal (dipx_client_post (police, &m, "y", 1, second), 0);
    dipx_client_destroy (&police);

    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    s_box_open (box, &env, &txn, &dbi);
    MDB_cursor *cur;
    MDB_val k, v;
    assert_int_equal (mdb_cursor_open (txn, dbi, &cur), 0);
    assert_int_equal (mdb_cursor_get (cur, &k, &v, MDB_FIRST), 0);
    uint8_t *copy = malloc (v.mv_size);
    assert_non_null (copy);
    memcpy (copy, v.mv_data, v.mv_size);
    assert_memory_equal (copy + 1, first, sizeof first); /* format byte, id, envelope */
    copy[1] ^= 0x01;
    uint8_t damaged[DIPX_MESSAGE_ID_BYTES];
    memcpy (damaged, copy + 1, sizeof damaged);
    MDB_val nv = {v.mv_size, copy};
    assert_int_equal (mdb_cursor_put (cur, &k, &nv, MDB_CURRENT), 0);
    mdb_cursor_close (cur);
    s_box_commit (env, txn);
    free (copy);

    assert_int_equal (harness_start (h), 0);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), 0);
    dipx_result_t r;
    assert_int_equal (dipx_client_result (police, WAIT_MS, &r), 0);
    assert_memory_equal (r.id, damaged, sizeof damaged);
    assert_int_equal (r.code, DIPX_E_CORRUPT);
    assert_true (r.reason[0] != '\0');
    assert_int_equal (dipx_client_result (police, WAIT_MS, &r), 0);
    assert_memory_equal (r.id, second, sizeof second);
    assert_int_equal (r.code, 0);
    assert_int_equal (s_stats (police).outbox, 0);
    assert_int_equal (s_stats (police).unmatched, 0);
    /* Only the second reached the broker.  */
    dipx_client_t *cjit = s_client (h, "cjit.test", 256);
    s_delivered_only (police, cjit, second);
    dipx_client_destroy (&police);
    dipx_client_destroy (&cjit);

    /* The largest key: the next would wrap to 0.  */
    s_box_open (box, &env, &txn, &dbi);
    uint8_t kb[8];
    dipx_put_be64 (kb, UINT64_MAX);
    k = (MDB_val){sizeof kb, kb};
    v = (MDB_val){sizeof second, second};
    assert_int_equal (mdb_put (txn, dbi, &k, &v, 0), 0);
    s_box_commit (env, txn);
    assert_int_equal (s_box_client (h, "police.test", box, 0, &police), DIPX_E_CORRUPT);
    assert_null (police);
    s_end (h);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_broker_down_then_back),
        cmocka_unit_test (test_more_than_pending),
        cmocka_unit_test (test_refused_leaves_outbox),
        cmocka_unit_test (test_outbox_owner),
        cmocka_unit_test (test_outbox_grows),
        cmocka_unit_test (test_outbox_damaged),
        cmocka_unit_test (test_uncollected_answers_kept),
        cmocka_unit_test (test_outbox_entry_damaged),
        cmocka_unit_test (test_outbox_dirs_synced),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
