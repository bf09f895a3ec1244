/*  test_crash.c - the crash harness: two senders keep posting while the
    broker is killed with SIGKILL at random moments and restarted; then, per
    message id: every ACCEPTED message was delivered, nothing unknown was
    delivered, a duplicate is only ever a redelivery (a higher delivery count
    of the same id), and every delivery has its audit record.

    DIPX_CRASH_KILLS sets the number of kills (3 in the normal suite; the
    `crash20` target runs 20).
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dipx_envelope.h"
#include "dipx_registry.h"
#include "harness.h"

#define MAX_IDS 200000
#define INFLIGHT 32

typedef struct {
    uint8_t id[DIPX_MESSAGE_ID_BYTES]; /* message id */
    bool accepted;                     /* ACCEPTED seen */
    uint32_t seen;                     /* deliveries received */
    uint64_t counts;                   /* bitmask of delivery counts seen (1..63) */
} s_rec_t;

static s_rec_t s_recs[MAX_IDS];
static atomic_int s_nrecs;
static atomic_int s_stop_sending, s_stop_receiving;
static atomic_int s_errors, s_refused, s_unknown, s_bad_dup;
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static harness_t s_h;

static int
s_find (const uint8_t *id)
{
    int n = atomic_load (&s_nrecs);
    for (int i = 0; i < n; i++)
        if (memcmp (s_recs[i].id, id, DIPX_MESSAGE_ID_BYTES) == 0)
            return i;
    return -1;
}

static void *
s_sender (void *arg)
{
    const char *who = arg;
    dipx_client_t *c = NULL;
    if (harness_client (&s_h, who, 0, &c) != 0) {
        atomic_fetch_add (&s_errors, 1);
        return NULL;
    }
    uint8_t subject[DIPX_SUBJECT_BYTES] = {7};
    dipx_send_t m = harness_dt1 ("cjit.test", subject);
    int outstanding = 0;
    uint64_t deadline = 0;
    for (;;) {
        bool stopping = atomic_load (&s_stop_sending);
        if (stopping && !deadline)
            deadline = dipx_mono_ms () + 120000;
        if (stopping && (outstanding == 0 || dipx_mono_ms () > deadline))
            break;
        if (!stopping && outstanding < INFLIGHT && atomic_load (&s_nrecs) < MAX_IDS - 1) {
            uint8_t id[DIPX_MESSAGE_ID_BYTES];
            randombytes_buf (id, sizeof id);
            m.id = id;
            pthread_mutex_lock (&s_lock);
            int i = atomic_load (&s_nrecs);
            memcpy (s_recs[i].id, id, sizeof id);
            atomic_store (&s_nrecs, i + 1);
            pthread_mutex_unlock (&s_lock);
            if (dipx_client_post (c, &m, "crash-test", 10, id) == 0)
                outstanding++;
            else
                atomic_fetch_add (&s_errors, 1);
            continue;
        }
        dipx_result_t r;
        if (dipx_client_result (c, 200, &r) != 0)
            continue;
        outstanding--;
        pthread_mutex_lock (&s_lock);
        int i = s_find (r.id);
        if (i >= 0 && r.code == 0)
            s_recs[i].accepted = true;
        pthread_mutex_unlock (&s_lock);
        if (r.code != 0)
            atomic_fetch_add (&s_refused, 1);
    }
    if (outstanding)
        atomic_fetch_add (&s_errors, 1);
    dipx_client_destroy (&c);
    return NULL;
}

static void *
s_receiver (void *arg)
{
    (void) arg;
    dipx_client_t *c = NULL;
    if (harness_client (&s_h, "cjit.test", 64, &c) != 0) {
        atomic_fetch_add (&s_errors, 1);
        return NULL;
    }
    while (!atomic_load (&s_stop_receiving)) {
        dipx_message_t *msg = NULL;
        if (dipx_client_recv (c, 200, &msg) != 0)
            continue;
        uint64_t count = dipx_message_delivery_count (msg);
        pthread_mutex_lock (&s_lock);
        int i = s_find (dipx_message_id (msg));
        if (i < 0)
            atomic_fetch_add (&s_unknown, 1);
        else {
            s_rec_t *r = &s_recs[i];
            uint64_t bit = count < 64 ? 1ull << count : 1ull << 63;
            /* A second delivery must be a redelivery: a new, higher count.  */
            if (r->seen > 0 && (count <= 1 || (r->counts & bit)))
                atomic_fetch_add (&s_bad_dup, 1);
            r->counts |= bit;
            r->seen++;
        }
        pthread_mutex_unlock (&s_lock);
        dipx_client_ack (c, msg); /* may be lost in a crash: then redelivered */
        dipx_message_destroy (&msg);
    }
    dipx_client_destroy (&c);
    return NULL;
}

static int
s_all_received (void)
{
    int missing = 0;
    pthread_mutex_lock (&s_lock);
    for (int i = 0; i < atomic_load (&s_nrecs); i++)
        if (s_recs[i].accepted && s_recs[i].seen == 0)
            missing++;
    pthread_mutex_unlock (&s_lock);
    return missing;
}

static void
test_crash_under_load (void **state)
{
    (void) state;
    const char *env = getenv ("DIPX_CRASH_KILLS");
    int kills = env ? atoi (env) : 3;
    assert_int_equal (harness_init (&s_h, "ack_timeout_ms = 2000\nmax_deliveries = 1000"), 0);
    assert_non_null (harness_add (&s_h, "police.a", DIPX_AGENCY_POLICE, DIPX_STATUS_ACTIVE));
    assert_non_null (harness_add (&s_h, "police.b", DIPX_AGENCY_POLICE, DIPX_STATUS_ACTIVE));
    assert_non_null (harness_add (&s_h, "cjit.test", DIPX_AGENCY_CJIT, DIPX_STATUS_ACTIVE));
    assert_int_equal (harness_start (&s_h), 0);
    pthread_t senders[2], receiver;
    pthread_create (&receiver, NULL, s_receiver, NULL);
    pthread_create (&senders[0], NULL, s_sender, "police.a");
    pthread_create (&senders[1], NULL, s_sender, "police.b");
    for (int k = 0; k < kills; k++) {
        /* A random moment: 50..550 ms of load between kills. This paces the
           load; nothing waits on it for correctness.  */
        struct timespec ts = {0, (long) (50 + randombytes_uniform (500)) * 1000000L};
        nanosleep (&ts, NULL);
        harness_stop (&s_h, SIGKILL);
        assert_int_equal (harness_start (&s_h), 0);
    }
    atomic_store (&s_stop_sending, 1);
    pthread_join (senders[0], NULL);
    pthread_join (senders[1], NULL);
    uint64_t deadline = dipx_mono_ms () + 120000;
    while (s_all_received () > 0 && dipx_mono_ms () < deadline) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep (&ts, NULL);
    }
    atomic_store (&s_stop_receiving, 1);
    pthread_join (receiver, NULL);

    int accepted = 0, delivered = 0;
    for (int i = 0; i < atomic_load (&s_nrecs); i++) {
        accepted += s_recs[i].accepted;
        delivered += s_recs[i].seen;
    }
    printf ("crash harness: %d kills, %d posted, %d accepted, %d deliveries, %d refused\n", kills,
            atomic_load (&s_nrecs), accepted, delivered, atomic_load (&s_refused));
    assert_true (accepted > 0);
    assert_int_equal (s_all_received (), 0);          /* no ACCEPTED message lost */
    assert_int_equal (atomic_load (&s_unknown), 0);   /* nothing invented */
    assert_int_equal (atomic_load (&s_bad_dup), 0);   /* duplicates only as redeliveries */
    assert_int_equal (atomic_load (&s_errors), 0);
    assert_int_equal (atomic_load (&s_refused), 0);

    /* Every delivery received has its audit record (same id and count).  */
    harness_stop (&s_h, SIGTERM);
    char cmd[1400];
    snprintf (cmd, sizeof cmd, "%s/broker/dipxd audit --data %s", getenv ("DIPX_BUILD_DIR"),
              s_h.data);
    FILE *p = popen (cmd, "r");
    assert_non_null (p);
    static char line[8192];
    while (fgets (line, sizeof line, p)) {
        if (!strstr (line, "\"ev\":\"delivered\""))
            continue;
        char *idp = strstr (line, "\"id\":\""), *cp = strstr (line, "\"count\":");
        assert_non_null (idp);
        assert_non_null (cp);
        uint8_t id[DIPX_MESSAGE_ID_BYTES];
        char hex[33];
        memcpy (hex, idp + 6, 32);
        hex[32] = 0;
        assert_int_equal (dipx_id_from_hex (hex, id), 0);
        uint64_t count = strtoull (cp + 8, NULL, 10);
        int i = s_find (id);
        assert_true (i >= 0);
        if (count < 64)
            s_recs[i].counts &= ~(1ull << count); /* received and audited */
    }
    pclose (p);
    int unaudited = 0;
    for (int i = 0; i < atomic_load (&s_nrecs); i++)
        unaudited += s_recs[i].counts != 0;
    assert_int_equal (unaudited, 0);
    harness_fini (&s_h);
}

int
main (void)
{
    if (sodium_init () < 0)
        return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test (test_crash_under_load)};
    return cmocka_run_group_tests (tests, NULL, NULL);
}
