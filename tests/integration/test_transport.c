/*  test_transport.c - hostile bytes at the broker's CURVE endpoint, and a
    connection flood, while a well-behaved agency keeps working.

    Transport fuzzing: each input is thrown at a fresh TCP connection at one
    stage of the ZMTP/CURVE handshake (before the greeting, after a valid
    greeting, as a malformed CURVE HELLO, with an absurd frame length, a
    truncated greeting, a wrong mechanism); after every input a real client
    must still complete a send and a receive. Inputs come from a seeded
    generator, so a failure is reproducible (the seed is printed).

    Flood: hundreds of idle connections plus junk greetings held open while
    the round trip is timed against a generous bound and the broker's memory
    growth is bounded. DIPX_TRANSPORT_INPUTS and DIPX_FLOOD_CONNECTIONS scale
    them up (defaults keep the normal suite quick; a run longer than 240 s
    also needs DIPX_TEST_WATCHDOG_S=0).
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "dipx_envelope.h"
#include "dipx_registry.h"
#include "harness.h"

#define WAIT_MS 15000

static harness_t s_h;
static dipx_client_t *s_police, *s_cjit;
static uint8_t s_seed[randombytes_SEEDBYTES];
static uint64_t s_counter;

static int
s_connect (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) harness_port (&s_h))};
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (fd < 0 || connect (fd, (struct sockaddr *) &a, sizeof a) != 0) {
        if (fd >= 0)
            close (fd);
        return -1;
    }
    return fd;
}

/*  Deterministic bytes: the seed plus a counter.  */
static void
s_random (uint8_t *buf, size_t len)
{
    uint8_t seed[randombytes_SEEDBYTES];
    crypto_generichash (seed, sizeof seed, (const uint8_t *) &s_counter, sizeof s_counter, s_seed,
                        sizeof s_seed);
    s_counter++;
    randombytes_buf_deterministic (buf, len, seed);
}

/*  Builds one hostile input of the given stage into buf; returns its size.  */
static size_t
s_input (int stage, uint8_t *buf, size_t cap)
{
    uint8_t r[4];
    s_random (r, sizeof r);
    size_t n = 1 + (r[0] | (size_t) r[1] << 8) % 1500, off = 0;
    switch (stage) {
    case 0: /* garbage instead of a greeting */
        break;
    case 1: /* valid greeting, then garbage */
        off = harness_zmtp_greeting (buf, "CURVE");
        break;
    case 2: /* greeting, then a CURVE HELLO command with random contents */
        off = harness_zmtp_greeting (buf, "CURVE");
        buf[off++] = 0x04;
        buf[off++] = 200;
        memcpy (buf + off, "\x05HELLO\x01\x00", 8);
        off += 8;
        n = 192;
        break;
    case 3: /* greeting, then a long frame claiming 2^62 bytes */
        off = harness_zmtp_greeting (buf, "CURVE");
        buf[off++] = 0x06;
        memcpy (buf + off, "\x40\x00\x00\x00\x00\x00\x00\x00", 8);
        off += 8;
        break;
    case 4: /* the wrong mechanism */
        off = harness_zmtp_greeting (buf, r[2] & 1 ? "NULL" : "PLAIN");
        break;
    case 5: /* a truncated greeting */
        harness_zmtp_greeting (buf, "CURVE");
        return 1 + r[2] % 63;
    }
    if (off + n > cap)
        n = cap - off;
    s_random (buf + off, n);
    return off + n;
}

/*  A real agency still completes a send and a receive.  */
static void
s_round_trip (void)
{
    assert_int_equal (harness_round_trip (s_police, s_cjit, "cjit.test", WAIT_MS), 0);
}

static int
s_setup (void **state)
{
    (void) state;
    assert_int_equal (harness_init (&s_h, NULL), 0);
    assert_int_equal (harness_start_pair (&s_h, &s_police, &s_cjit), 0);
    return 0;
}

static int
s_teardown (void **state)
{
    (void) state;
    dipx_client_destroy (&s_police);
    dipx_client_destroy (&s_cjit);
    harness_fini (&s_h);
    return 0;
}

static void
test_transport_fuzz (void **state)
{
    (void) state;
    const char *env = getenv ("DIPX_TRANSPORT_INPUTS");
    int inputs = env ? atoi (env) : 120;
    static uint8_t buf[4096];
    for (int i = 0; i < inputs; i++) {
        int fd = s_connect ();
        assert_true (fd >= 0);
        size_t n = s_input (i % 6, buf, sizeof buf);
        ssize_t w = send (fd, buf, n, MSG_NOSIGNAL);
        (void) w; /* the broker may already have closed it */
        close (fd);
        s_round_trip ();
        assert_true (kill (s_h.pid, 0) == 0);
    }
}

static void
test_connection_flood (void **state)
{
    (void) state;
    const char *env = getenv ("DIPX_FLOOD_CONNECTIONS");
    int want = env ? atoi (env) : 400;
    struct rlimit rl;
    getrlimit (RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit (RLIMIT_NOFILE, &rl);
    if ((rlim_t) want + 64 > rl.rlim_cur)
        want = (int) rl.rlim_cur - 64;
    s_round_trip ();
    long before = harness_broker_kb (&s_h, "VmRSS");
    int *fds = calloc ((size_t) want, sizeof *fds);
    assert_non_null (fds);
    static uint8_t buf[4096];
    int open_fds = 0;
    for (int i = 0; i < want; i++) {
        fds[i] = s_connect ();
        if (fds[i] < 0)
            break;
        open_fds++;
        if (i % 2) { /* half idle, half junk greetings held open */
            size_t n = s_input (i % 4 == 1 ? 1 : 5, buf, 256);
            ssize_t w = send (fds[i], buf, n, MSG_NOSIGNAL);
            (void) w;
        }
    }
    uint64_t t0 = dipx_mono_ms ();
    for (int i = 0; i < 5; i++)
        s_round_trip ();
    uint64_t took = dipx_mono_ms () - t0;
    long during = harness_broker_kb (&s_h, "VmRSS");
    printf ("flood: %d connections held, 5 round trips in %llu ms, broker RSS %ld -> %ld KiB\n",
            open_fds, (unsigned long long) took, before, during);
    /* Generous bounds: they catch a broker that stalls or balloons, not speed. */
    assert_true (took < 10000);
    assert_true (during - before < 200 * 1024);
    for (int i = 0; i < open_fds; i++)
        close (fds[i]);
    free (fds);
    s_round_trip ();
}

/*  An agency's connection that sends and never reads. Its replies wait in
    the broker's send queue to that connection, which is bounded (the
    ROUTER's ZMQ_SNDHWM): past it they are dropped, as they are for a
    connection that is gone, and the broker's memory stays bounded. Each
    junk frame costs the broker one ERROR reply.  */
static void
test_deaf_connection_bounded (void **state)
{
    (void) state;
    enum { N = 150000 };
    void *ctx = zmq_ctx_new ();
    void *raw = harness_raw_buffered (&s_h, ctx, "deaf.test", 1, 4096);
    assert_non_null (raw);
    dipx_frame_t f;
    assert_int_equal (harness_raw_hello (raw, 0, &f, WAIT_MS), 0);
    assert_int_equal (f.cmd, DIPX_CMD_WELCOME);
    s_round_trip ();
    long before = harness_broker_kb (&s_h, "VmRSS");
    static uint8_t junk[64];
    memset (junk, 0xc1, sizeof junk); /* never used in msgpack */
    for (int i = 0; i < N; i++)
        assert_int_equal (zmq_send (raw, junk, sizeof junk, 0), (int) sizeof junk);
    /* A HELLO after them: once its session record is in the audit log, the
       broker has answered every junk frame before it.  */
    f = (dipx_frame_t) {.cmd = DIPX_CMD_HELLO};
    uint8_t *out;
    size_t out_len;
    assert_int_equal (dipx_frame_encode (&f, &out, &out_len), 0);
    assert_int_equal (zmq_send (raw, out, out_len, 0), (int) out_len);
    free (out);
    uint64_t t0 = dipx_mono_ms ();
    while (harness_audit_count (&s_h, "\"ev\":\"session\"", "deaf.test", NULL) < 2) {
        assert_true (dipx_mono_ms () - t0 < 60000);
        usleep (50000);
    }
    long during = harness_broker_kb (&s_h, "VmRSS");
    printf ("deaf connection: %d junk frames, broker RSS %ld -> %ld KiB\n", N, before, during);
    /* About 200 bytes per frame queued: 26 MiB with queues of 100,000
       frames, 5 MiB with 10,000 out and 1,024 in. Under ASan its quarantine
       holds every frame freed: 60 MiB.  */
#ifdef HARNESS_ASAN
    assert_true (during - before < 128 * 1024);
#else
    assert_true (during - before < 8 * 1024);
#endif
    s_round_trip ();
    zmq_close (raw);
    zmq_ctx_term (ctx);
}

static int
s_setup_deaf (void **state)
{
    (void) state;
    assert_int_equal (harness_init (&s_h, NULL), 0);
    assert_non_null (harness_add (&s_h, "deaf.test", DIPX_AGENCY_POLICE, DIPX_STATUS_ACTIVE));
    assert_int_equal (harness_start_pair (&s_h, &s_police, &s_cjit), 0);
    return 0;
}

int
main (void)
{
    if (sodium_init () < 0)
        return 1;
    const char *seed = getenv ("DIPX_TRANSPORT_SEED");
    uint32_t v = seed ? (uint32_t) strtoul (seed, NULL, 10) : randombytes_random ();
    printf ("transport fuzz seed: DIPX_TRANSPORT_SEED=%u\n", v);
    memset (s_seed, 0, sizeof s_seed);
    memcpy (s_seed, &v, sizeof v);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_transport_fuzz, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_connection_flood, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_deaf_connection_bounded, s_setup_deaf, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
