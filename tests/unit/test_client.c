/*  test_client.c - unit tests of libdipx (client/).

    Without a broker: option checks, local refusals (unknown or suspended
    recipient, a full pending table), sealing checked by opening with proto/,
    the subject reference vector (tests/vectors/subject.hex), message id hex.

    With a fake broker: a raw ZMQ_ROUTER, CURVE server, in this process. It
    speaks proto/ frames directly, so each test states the exact exchange a
    real broker must have with the client: HELLO on every connection, the
    WELCOME that makes the client ready, ACCEPTED/REFUSED matched to sends,
    DELIVER opened and acknowledged with a signature that verifies, a tampered
    or misaddressed DELIVER rejected with a signed OUTCOME and never returned,
    and a broker restart after which the client sends HELLO again and resends
    the unanswered SEND byte for byte. A ZAP handler in the fake broker's
    context refuses keys for the authentication tests.

    Everything synchronises on events: the fake broker waits on its socket and
    on dipx_client_fd together (zmq_poll with a deadline), and runs the
    client's loop when that descriptor fires. Nothing sleeps.
*/
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <zmq.h>

#include "testutil.h"
#include "dipx.h"
#include "dipx_card.h"
#include "dipx_client_internal.h"
#include "dipx_envelope.h"
#include "dipx_frame.h"
#include "dipx_identity.h"
#include "dipx_registry.h"

#define ME "cjit.lambeth"           /* the agency under test */
#define PEER "police.met.brixton"   /* an active peer */
#define SUSPENDED "court.southwark" /* a suspended peer */
#define STRANGER "treatment.unknown" /* not in the peers file */
#define LAPSED "probation.lapsed"    /* active, its card expired an hour ago */
#define WAIT_MS 15000               /* every wait's deadline: liveness, not speed */

/* ---------------------------------------------------------------------------
   Fixture: identities, files, a client */

typedef struct {
    char dir[64];                 /* temporary directory */
    char secret[128];             /* ME's secret file */
    char peers[128];              /* peers registry file */
    dipx_identity_t *me;          /* agency under test */
    dipx_identity_t *peer;        /* active peer */
    dipx_identity_t *suspended;   /* suspended peer */
    dipx_identity_t *stranger;    /* unknown agency */
    dipx_identity_t *lapsed;      /* peer whose card has expired */
    uint64_t created;             /* s_envelope's created, ms; 0 = now */
    uint8_t broker_pk[32];        /* fake broker's CURVE keys */
    uint8_t broker_sk[32];
    char broker_z85[41];          /* broker_pk in Z85 */
    char log[16384];              /* the warnings and errors logged, one per line
                                     (the most recent, when they do not fit) */
    int nlog;                     /* warnings and errors logged */
} fx_t;

static void
s_log (int level, const char *line, void *arg)
{
    fx_t *fx = (fx_t *) arg;
    if (getenv ("DIPX_TEST_VERBOSE"))
        fprintf (stderr, "  [client %d] %s\n", level, line);
    if (level <= DIPX_LOG_WARN) {
        /* All of them, not only the last: a test looks for its line even
           when another warning came after it.  */
        size_t len = strlen (fx->log), add = strnlen (line, sizeof fx->log / 4) + 1;
        if (len + add >= sizeof fx->log) {
            size_t keep = len / 2;
            memmove (fx->log, fx->log + len - keep, keep + 1);
            len = keep;
        }
        snprintf (fx->log + len, sizeof fx->log - len, "%.*s\n", (int) (add - 1), line);
        fx->nlog++;
    }
}

static void
s_add_card_valid (dipx_registry_t *reg, const dipx_identity_t *id, int type, int status,
                  int64_t valid_until)
{
    dipx_card_t card;
    memset (&card, 0, sizeof card);
    snprintf (card.id, sizeof card.id, "%s", dipx_identity_id (id));
    snprintf (card.name, sizeof card.name, "Test agency %s", dipx_identity_id (id));
    card.type = type;
    snprintf (card.org, sizeof card.org, "ORG01");
    snprintf (card.area, sizeof card.area, "LBLAM");
    card.valid_from = 1767225600; /* 2026-01-01 */
    card.valid_until = valid_until;
    char *text = NULL;
    size_t len = 0;
    assert_int_equal (dipx_card_make (id, &card, &text, &len), 0);
    free (text);
    assert_int_equal (dipx_registry_add (reg, &card), 0);
    if (status != DIPX_STATUS_ACTIVE)
        assert_int_equal (dipx_registry_set_status (reg, card.id, status), 0);
}

static void
s_add_card (dipx_registry_t *reg, const dipx_identity_t *id, int type, int status)
{
    s_add_card_valid (reg, id, type, status, 4000000000); /* 2096 */
}

static int
s_setup (void **state)
{
    fx_t *fx = (fx_t *) calloc (1, sizeof *fx);
    assert_non_null (fx);
    assert_int_equal (dipx_test_mkdtemp (fx->dir, sizeof fx->dir, "dipx-test-client"), 0);
    snprintf (fx->secret, sizeof fx->secret, "%s/me.secret", fx->dir);
    snprintf (fx->peers, sizeof fx->peers, "%s/peers", fx->dir);
    fx->me = dipx_identity_generate (ME);
    fx->peer = dipx_identity_generate (PEER);
    fx->suspended = dipx_identity_generate (SUSPENDED);
    fx->stranger = dipx_identity_generate (STRANGER);
    fx->lapsed = dipx_identity_generate (LAPSED);
    assert_true (fx->me && fx->peer && fx->suspended && fx->stranger && fx->lapsed);
    assert_int_equal (dipx_identity_save (fx->me, fx->secret), 0);
    dipx_registry_t *reg = dipx_registry_new ();
    assert_non_null (reg);
    s_add_card (reg, fx->peer, DIPX_AGENCY_POLICE, DIPX_STATUS_ACTIVE);
    s_add_card (reg, fx->suspended, DIPX_AGENCY_COURT, DIPX_STATUS_SUSPENDED);
    s_add_card_valid (reg, fx->lapsed, DIPX_AGENCY_PROBATION, DIPX_STATUS_ACTIVE,
                      (int64_t) time (NULL) - 3600);
    assert_int_equal (dipx_registry_save (reg, fx->peers), 0);
    dipx_registry_destroy (&reg);
    crypto_box_keypair (fx->broker_pk, fx->broker_sk);
    dipx_key_to_z85 (fx->broker_pk, fx->broker_z85);
    *state = fx;
    return 0;
}

static int
s_teardown (void **state)
{
    fx_t *fx = (fx_t *) *state;
    dipx_test_rmtree (fx->dir);
    dipx_identity_destroy (&fx->me);
    dipx_identity_destroy (&fx->peer);
    dipx_identity_destroy (&fx->suspended);
    dipx_identity_destroy (&fx->lapsed);
    dipx_identity_destroy (&fx->stranger);
    free (fx);
    return 0;
}

static dipx_options_t
s_options (fx_t *fx, const char *endpoint, uint32_t window)
{
    dipx_options_t o = {0};
    o.endpoint = endpoint;
    o.identity = fx->secret;
    o.broker_key = fx->broker_z85;
    o.peers = fx->peers;
    o.window = window;
    o.log = s_log;
    o.log_arg = fx;
    return o;
}

/*  A message from ME to `to`.  */
static dipx_send_t
s_message (const char *to)
{
    static const uint8_t subject[32] = {1, 2, 3};
    dipx_send_t m = {0};
    m.to = to;
    m.type = "assessment_non_attendance";
    m.subject = subject;
    m.basis = DIPX_BASIS_STATUTE;
    m.ref = "Drugs Act 2005 s.12";
    m.purpose = DIPX_PURPOSE_LAW_ENFORCEMENT;
    m.categories = 1u << DIPX_CAT_IDENTIFIERS;
    return m;
}

/* ---------------------------------------------------------------------------
   The fake broker */

typedef struct {
    fx_t *fx;           /* keys */
    void *ctx;          /* its own context */
    void *router;       /* ROUTER, CURVE server; NULL while "down" */
    void *zap;          /* ZAP handler (REP), or NULL: admit everyone */
    int zap_status;     /* status code the ZAP handler answers */
    char endpoint[64];  /* where it listens */
    uint8_t rid[256];   /* routing id of the last client heard */
    size_t rid_len;     /* its length */
    void *mon;          /* with fb_watch: its handshakes, from the next fb_bind */
} fb_t;

static void
fb_bind (fb_t *fb)
{
    fb->router = zmq_socket (fb->ctx, ZMQ_ROUTER);
    assert_non_null (fb->router);
    int one = 1, zero = 0;
    assert_int_equal (zmq_setsockopt (fb->router, ZMQ_LINGER, &zero, sizeof zero), 0);
    assert_int_equal (zmq_setsockopt (fb->router, ZMQ_CURVE_SERVER, &one, sizeof one), 0);
    /* After a ZAP 300 the server only stalls the handshake until this timer
       (libzmq's default is 30 s); keep test_auth_silent short. Only there:
       elsewhere a machine stalled that long would fail a handshake.  */
    int handshake_ms = 300;
    if (fb->zap_status == 300)
        assert_int_equal (
            zmq_setsockopt (fb->router, ZMQ_HANDSHAKE_IVL, &handshake_ms, sizeof handshake_ms), 0);
    assert_int_equal (zmq_setsockopt (fb->router, ZMQ_CURVE_SECRETKEY, fb->fx->broker_sk, 32), 0);
    if (fb->mon) {
        /* Before the bind: no handshake can be missed.  */
        static int seq;
        char ep[64];
        snprintf (ep, sizeof ep, "inproc://fb-watch-%d", ++seq);
        assert_int_equal (zmq_socket_monitor (fb->router, ep, ZMQ_EVENT_HANDSHAKE_SUCCEEDED), 0);
        assert_int_equal (zmq_connect (fb->mon, ep), 0);
    }
    if (fb->endpoint[0])
        assert_int_equal (zmq_bind (fb->router, fb->endpoint), 0);
    else {
        assert_int_equal (zmq_bind (fb->router, "tcp://127.0.0.1:*"), 0);
        size_t len = sizeof fb->endpoint;
        assert_int_equal (zmq_getsockopt (fb->router, ZMQ_LAST_ENDPOINT, fb->endpoint, &len), 0);
    }
}

/*  Stops a listener and closes its socket. libzmq closes a listener in its
    I/O thread, after zmq_unbind returns: waiting for ZMQ_EVENT_CLOSED makes
    the port free for the next bind.  */
static void
s_unbind_close (void *ctx, void *sock, const char *endpoint)
{
    static int seq;
    char mon_ep[64];
    snprintf (mon_ep, sizeof mon_ep, "inproc://fb-monitor-%d", ++seq);
    assert_int_equal (zmq_socket_monitor (sock, mon_ep, ZMQ_EVENT_CLOSED), 0);
    void *mon = zmq_socket (ctx, ZMQ_PAIR);
    assert_int_equal (zmq_connect (mon, mon_ep), 0);
    assert_int_equal (zmq_unbind (sock, endpoint), 0);
    zmq_pollitem_t item = {mon, 0, ZMQ_POLLIN, 0};
    assert_int_equal (zmq_poll (&item, 1, WAIT_MS), 1);
    zmq_socket_monitor (sock, NULL, 0);
    int zero = 0;
    zmq_setsockopt (mon, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close (mon);
    zmq_close (sock);
}

static void
fb_unbind (fb_t *fb)
{
    s_unbind_close (fb->ctx, fb->router, fb->endpoint);
    fb->router = NULL;
}

static void
fb_new (fb_t *fb, fx_t *fx, int zap_status)
{
    memset (fb, 0, sizeof *fb);
    fb->fx = fx;
    fb->ctx = zmq_ctx_new ();
    assert_non_null (fb->ctx);
    if (zap_status) {
        fb->zap_status = zap_status;
        fb->zap = zmq_socket (fb->ctx, ZMQ_REP);
        int zero = 0;
        zmq_setsockopt (fb->zap, ZMQ_LINGER, &zero, sizeof zero);
        assert_int_equal (zmq_bind (fb->zap, "inproc://zeromq.zap.01"), 0);
    }
    fb_bind (fb);
}

static void
fb_destroy (fb_t *fb)
{
    if (fb->router)
        fb_unbind (fb);
    if (fb->zap)
        zmq_close (fb->zap);
    zmq_ctx_term (fb->ctx);
}

/*  Answers one ZAP request with fb->zap_status.  */
static void
fb_zap (fb_t *fb)
{
    char parts[8][64];
    size_t lens[8];
    int n = 0, more = 1;
    while (more && n < 8) {
        int len = zmq_recv (fb->zap, parts[n], sizeof parts[n], ZMQ_DONTWAIT);
        if (len < 0)
            return;
        lens[n] = (size_t) len < sizeof parts[n] ? (size_t) len : sizeof parts[n];
        n++;
        size_t sz = sizeof more;
        zmq_getsockopt (fb->zap, ZMQ_RCVMORE, &more, &sz);
    }
    char status[8];
    snprintf (status, sizeof status, "%d", fb->zap_status);
    zmq_send (fb->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send (fb->zap, parts[1], lens[1], ZMQ_SNDMORE); /* request id */
    zmq_send (fb->zap, status, strlen (status), ZMQ_SNDMORE);
    zmq_send (fb->zap, "refused", 7, ZMQ_SNDMORE);
    zmq_send (fb->zap, "", 0, ZMQ_SNDMORE);
    zmq_send (fb->zap, "", 0, 0);
}

/*  One turn: waits up to timeout_ms for the broker socket, the ZAP handler or
    the client's descriptor; answers ZAP and runs the client's loop. True if a
    frame is waiting on the broker socket.  */
static bool
fb_turn (fb_t *fb, dipx_client_t *c, int timeout_ms)
{
    int fd = -1;
    assert_int_equal (dipx_client_fd (c, &fd), 0);
    zmq_pollitem_t items[3] = {
        {NULL, fd, ZMQ_POLLIN, 0},
        {fb->router, 0, ZMQ_POLLIN, 0},
        {fb->zap, 0, ZMQ_POLLIN, 0},
    };
    int n = fb->zap ? 3 : 2;
    if (!fb->router) {
        items[1] = items[2];
        n--;
    }
    assert_true (zmq_poll (items, n, timeout_ms) >= 0);
    if (fb->zap && (items[n - 1].revents & ZMQ_POLLIN))
        fb_zap (fb);
    assert_int_equal (dipx__client_pump (c, 0), 0);
    if (!fb->router)
        return false;
    int events = 0;
    size_t sz = sizeof events;
    zmq_getsockopt (fb->router, ZMQ_EVENTS, &events, &sz);
    return (events & ZMQ_POLLIN) != 0;
}

/*  Waits for the next frame from the client, running the client meanwhile.
    Returns its bytes (malloc'd) and decodes it into *f (which points into
    them).  */
static uint8_t *
fb_recv (fb_t *fb, dipx_client_t *c, dipx_frame_t *f, size_t *len_out)
{
    uint64_t deadline = dipx_mono_ms () + WAIT_MS;
    assert_int_equal (dipx__client_pump (c, 0), 0);
    for (;;) {
        uint64_t now = dipx_mono_ms ();
        assert_true (now < deadline); /* no frame in time */
        if (fb_turn (fb, c, (int) (deadline - now)))
            break;
    }
    zmq_msg_t rid, msg;
    zmq_msg_init (&rid);
    zmq_msg_init (&msg);
    assert_true (zmq_msg_recv (&rid, fb->router, 0) >= 0);
    assert_true (zmq_msg_more (&rid));
    assert_true (zmq_msg_recv (&msg, fb->router, 0) >= 0);
    assert_false (zmq_msg_more (&msg));
    fb->rid_len = zmq_msg_size (&rid);
    memcpy (fb->rid, zmq_msg_data (&rid), fb->rid_len);
    size_t len = zmq_msg_size (&msg);
    uint8_t *buf = (uint8_t *) malloc (len);
    memcpy (buf, zmq_msg_data (&msg), len);
    zmq_msg_close (&rid);
    zmq_msg_close (&msg);
    assert_int_equal (dipx_frame_decode (buf, len, f), 0);
    if (len_out)
        *len_out = len;
    return buf;
}

/*  As fb_recv, and checks the command; frees the bytes.  */
static void
fb_expect (fb_t *fb, dipx_client_t *c, int cmd, dipx_frame_t *f)
{
    uint8_t *buf = fb_recv (fb, c, f, NULL);
    assert_string_equal (dipx_cmd_name (f->cmd), dipx_cmd_name (cmd));
    /* Slices point into buf: tests that need them use fb_recv.  */
    if (cmd == DIPX_CMD_SEND || cmd == DIPX_CMD_DELIVER)
        f->u.send.env = (dipx_slice_t){NULL, 0};
    free (buf);
}

static void
fb_send_raw (fb_t *fb, const uint8_t *buf, size_t len)
{
    assert_true (zmq_send (fb->router, fb->rid, fb->rid_len, ZMQ_SNDMORE) >= 0);
    assert_true (zmq_send (fb->router, buf, len, 0) >= 0);
}

static void
fb_send (fb_t *fb, const dipx_frame_t *f)
{
    uint8_t *buf;
    size_t len;
    assert_int_equal (dipx_frame_encode (f, &buf, &len), 0);
    fb_send_raw (fb, buf, len);
    free (buf);
}

static void
fb_welcome (fb_t *fb, uint64_t window)
{
    dipx_frame_t f = {.cmd = DIPX_CMD_WELCOME};
    snprintf (f.u.welcome.broker, sizeof f.u.welcome.broker, "dipx.broker");
    f.u.welcome.max_frame = DIPX_MAX_FRAME;
    f.u.welcome.window = window;
    fb_send (fb, &f);
}

/*  A client connected to fb and welcomed.  */
static dipx_client_t *
s_ready_client (fx_t *fx, fb_t *fb, uint32_t window)
{
    dipx_options_t o = s_options (fx, fb->endpoint, window);
    dipx_client_t *c = NULL;
    assert_int_equal (dipx_client_new (&o, &c), 0);
    dipx_frame_t f;
    fb_expect (fb, c, DIPX_CMD_HELLO, &f);
    assert_int_equal (f.u.hello.window, window);
    assert_int_equal (dipx_client_wait_ready (c, 0), DIPX_E_TIMEOUT);
    fb_welcome (fb, window);
    assert_int_equal (dipx_client_wait_ready (c, WAIT_MS), 0);
    return c;
}

/*  An envelope from `from` to ME's id in the header, sealed with the box of
    (seal_to's public key, from's secret key) and signed by signer.  */
static void
s_envelope (fx_t *fx, const dipx_identity_t *from, const char *to, const dipx_identity_t *seal_to,
            const dipx_identity_t *signer, const uint8_t id[16], const char *body, uint8_t **env,
            size_t *env_len)
{
    dipx_header_t h;
    memset (&h, 0, sizeof h);
    h.v = 1;
    memcpy (h.id, id, 16);
    snprintf (h.type, sizeof h.type, "drug_test_result");
    snprintf (h.from, sizeof h.from, "%s", dipx_identity_id (from));
    snprintf (h.to, sizeof h.to, "%s", to);
    memset (h.subj, 0x5a, sizeof h.subj);
    h.basis = DIPX_BASIS_STATUTE;
    snprintf (h.ref, sizeof h.ref, "PACE s.63B");
    h.purpose = DIPX_PURPOSE_LAW_ENFORCEMENT;
    h.cats = (1u << DIPX_CAT_IDENTIFIERS) | (1u << DIPX_CAT_TEST_RESULTS);
    h.created = fx->created ? fx->created : dipx_now_ms ();
    h.expires = h.created + 86400000u;
    uint8_t shared[32];
    assert_int_equal (
        crypto_box_beforenm (shared, dipx_identity_enc_pk (seal_to), dipx_identity_enc_sk (from)),
        0);
    assert_int_equal (dipx_envelope_seal (&h, (const uint8_t *) body, strlen (body), shared,
                                          dipx_identity_sign_sk (signer), env, env_len),
                      0);
    (void) fx;
}

static void
fb_deliver (fb_t *fb, uint64_t seq, uint64_t count, const uint8_t *env, size_t env_len)
{
    dipx_frame_t f = {.cmd = DIPX_CMD_DELIVER};
    f.u.deliver.seq = seq;
    f.u.deliver.count = count;
    f.u.deliver.env = (dipx_slice_t){env, env_len};
    fb_send (fb, &f);
}

/*  Delivers a new message (its id into id) from PEER to ME, sealed and
    signed as PEER's libdipx would.  */
static void
fb_deliver_new (fx_t *fx, fb_t *fb, uint64_t seq, uint64_t count, const char *body, uint8_t id[16])
{
    uint8_t *env;
    size_t env_len;
    randombytes_buf (id, 16);
    s_envelope (fx, fx->peer, ME, fx->me, fx->peer, id, body, &env, &env_len);
    fb_deliver (fb, seq, count, env, env_len);
    free (env);
}

/* ---------------------------------------------------------------------------
   Without a broker */

static void
test_options (void **state)
{
    fx_t *fx = (fx_t *) *state;
    dipx_client_t *c = (dipx_client_t *) 1;
    dipx_options_t o = s_options (fx, "tcp://127.0.0.1:1", 1);
    assert_int_equal (dipx_client_new (NULL, &c), DIPX_E_INVAL);
    assert_null (c);
    assert_int_equal (dipx_client_new (&o, NULL), DIPX_E_INVAL);

    dipx_options_t bad = o;
    bad.endpoint = NULL;
    assert_int_equal (dipx_client_new (&bad, &c), DIPX_E_INVAL);
    bad = o;
    bad.window = DIPX_MAX_WINDOW + 1;
    assert_int_equal (dipx_client_new (&bad, &c), DIPX_E_INVAL);
    bad = o;
    bad.outbox = "";
    assert_int_equal (dipx_client_new (&bad, &c), DIPX_E_INVAL);
    bad.outbox = fx->secret; /* a file, not a directory */
    assert_int_equal (dipx_client_new (&bad, &c), DIPX_E_IO);
    bad = o;
    bad.broker_key = "not a key";
    assert_int_equal (dipx_client_new (&bad, &c), DIPX_E_BROKER_KEY);
    bad.broker_key = "~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~";
    assert_int_equal (dipx_client_new (&bad, &c), DIPX_E_BROKER_KEY);
    bad = o;
    bad.identity = "/nonexistent/me.secret";
    assert_int_equal (dipx_client_new (&bad, &c), DIPX_E_IO);
    bad = o;
    bad.peers = "/nonexistent/peers";
    assert_int_equal (dipx_client_new (&bad, &c), DIPX_E_IO);
    bad = o;
    bad.endpoint = "nonsense://x";
    assert_int_equal (dipx_client_new (&bad, &c), DIPX_E_INVAL);
    assert_null (c);

    /* A secret file that group or others can read is refused.  */
    assert_int_equal (chmod (fx->secret, 0640), 0);
    assert_int_equal (dipx_client_new (&o, &c), DIPX_E_PERM);
    assert_int_equal (chmod (fx->secret, 0600), 0);

    assert_int_equal (dipx_client_new (&o, &c), 0);
    assert_string_equal (dipx_client_id (c), ME);
    int fd = -1;
    assert_int_equal (dipx_client_fd (c, &fd), 0);
    assert_true (fd >= 0);
    /* Nothing listens: nothing is ready, nothing arrives.  */
    assert_int_equal (dipx_client_wait_ready (c, 0), DIPX_E_TIMEOUT);
    dipx_message_t *m = (dipx_message_t *) 1;
    assert_int_equal (dipx_client_recv (c, 0, &m), DIPX_E_TIMEOUT);
    assert_null (m);
    dipx_result_t r;
    assert_int_equal (dipx_client_result (c, 0, &r), DIPX_E_TIMEOUT);
    dipx_receipt_t rc;
    assert_int_equal (dipx_client_receipt (c, 10, &rc), DIPX_E_TIMEOUT);
    dipx_client_destroy (&c);
    assert_null (c);
    dipx_client_destroy (&c); /* NULL is fine */
    dipx_client_destroy (NULL);
}

static void
test_local_refusals (void **state)
{
    fx_t *fx = (fx_t *) *state;
    dipx_options_t o = s_options (fx, "tcp://127.0.0.1:1", 0);
    dipx_client_t *c = NULL;
    assert_int_equal (dipx_client_new (&o, &c), 0);
    uint8_t id[16];

    dipx_send_t m = s_message (STRANGER);
    assert_int_equal (dipx_client_post (c, &m, "x", 1, id), DIPX_E_UNKNOWN_RECIPIENT);
    dipx_result_t r;
    assert_int_equal (dipx_client_send (c, &m, "x", 1, 0, &r), DIPX_E_UNKNOWN_RECIPIENT);
    assert_int_equal (r.code, DIPX_E_UNKNOWN_RECIPIENT);
    assert_string_equal (r.reason, "recipient " STRANGER ": not in this agency's peers");
    m = s_message (SUSPENDED);
    assert_int_equal (dipx_client_post (c, &m, "x", 1, id), DIPX_E_RECIPIENT_INACTIVE);
    m = s_message (LAPSED); /* its card has expired */
    assert_int_equal (dipx_client_post (c, &m, "x", 1, id), DIPX_E_RECIPIENT_INACTIVE);
    assert_int_equal (dipx_client_send (c, &m, "x", 1, 0, &r), DIPX_E_RECIPIENT_INACTIVE);
    assert_string_equal (r.reason, "recipient " LAPSED ": card expired");

    /* Invalid fields.  */
    m = s_message (ME);
    assert_int_equal (dipx_client_post (c, &m, "x", 1, id), DIPX_E_INVAL); /* to itself */
    m = s_message (PEER);
    m.type = "Bad Type";
    assert_int_equal (dipx_client_post (c, &m, "x", 1, id), DIPX_E_INVAL);
    m = s_message (PEER);
    m.subject = NULL;
    assert_int_equal (dipx_client_post (c, &m, "x", 1, id), DIPX_E_INVAL);
    m = s_message (PEER);
    m.categories = 0;
    assert_int_equal (dipx_client_post (c, &m, "x", 1, id), DIPX_E_INVAL);
    m = s_message (PEER);
    m.categories = 1u << DIPX_CAT_COUNT;
    assert_int_equal (dipx_client_post (c, &m, "x", 1, id), DIPX_E_INVAL);
    m = s_message (PEER);
    m.basis = DIPX_BASIS_COUNT;
    assert_int_equal (dipx_client_post (c, &m, "x", 1, id), DIPX_E_INVAL);
    m = s_message (PEER);
    m.ttl_ms = DIPX_MAX_TTL_MS + 1;
    assert_int_equal (dipx_client_post (c, &m, "x", 1, id), DIPX_E_INVAL);
    m = s_message (PEER);
    m.pi_by = "someone"; /* public-interest fields on a statute basis */
    assert_int_equal (dipx_client_post (c, &m, "x", 1, id), DIPX_E_INVAL);
    m = s_message (PEER);
    m.basis = DIPX_BASIS_PUBLIC_INTEREST; /* without its three fields */
    assert_int_equal (dipx_client_post (c, &m, "x", 1, id), DIPX_E_INVAL);
    m.pi_by = "J. Smith";
    m.pi_approver = "A. Jones";
    m.pi_why = "Serious risk of harm";
    assert_int_equal (dipx_client_post (c, &m, "x", 1, id), 0);
    m = s_message (PEER);
    assert_int_equal (dipx_client_post (c, &m, NULL, 1, id), DIPX_E_INVAL);
    assert_int_equal (dipx_client_post (c, &m, "x", DIPX_MAX_BODY + 1, id), DIPX_E_INVAL);

    /* A reused id that is still pending.  */
    m.id = id;
    assert_int_equal (dipx_client_post (c, &m, "x", 1, NULL), DIPX_E_EXISTS);

    /* post_sealed: only well-formed envelopes from this agency.  */
    assert_int_equal (dipx_client_post_sealed (c, (const uint8_t *) "junk", 4), DIPX_E_INVAL);
    uint8_t *env;
    size_t env_len;
    uint8_t other[16] = {9};
    s_envelope (fx, fx->peer, ME, fx->me, fx->peer, other, "hi", &env, &env_len);
    assert_int_equal (dipx_client_post_sealed (c, env, env_len), DIPX_E_INVAL);
    free (env);

    /* The pending table holds DIPX_MAX_PENDING, answered or not.  */
    m = s_message (PEER);
    size_t posted = 1; /* the public-interest post above */
    while (posted < DIPX_MAX_PENDING) {
        assert_int_equal (dipx_client_post (c, &m, "x", 1, NULL), 0);
        posted++;
    }
    assert_int_equal (dipx_client_post (c, &m, "x", 1, NULL), DIPX_E_BUSY);
    dipx_client_destroy (&c);
}

static void
test_seal_opens (void **state)
{
    fx_t *fx = (fx_t *) *state;
    dipx_options_t o = s_options (fx, "tcp://127.0.0.1:1", 0);
    dipx_client_t *c = NULL;
    assert_int_equal (dipx_client_new (&o, &c), 0);
    dipx_send_t m = s_message (PEER);
    static const char body[] = "{\"attended\":false,\"appointment\":\"2026-02-03T10:00\"}";
    uint8_t *env = NULL;
    size_t env_len = 0;
    uint64_t before = dipx_now_ms ();
    assert_int_equal (dipx_client_seal (c, &m, body, sizeof body - 1, &env, &env_len), 0);
    uint64_t after = dipx_now_ms ();

    dipx_envelope_t e;
    assert_int_equal (dipx_envelope_decode (env, env_len, &e), 0);
    assert_int_equal (e.h.v, 1);
    assert_string_equal (e.h.from, ME);
    assert_string_equal (e.h.to, PEER);
    assert_string_equal (e.h.type, m.type);
    assert_memory_equal (e.h.subj, m.subject, 32);
    assert_int_equal (e.h.basis, DIPX_BASIS_STATUTE);
    assert_string_equal (e.h.ref, m.ref);
    assert_int_equal (e.h.purpose, DIPX_PURPOSE_LAW_ENFORCEMENT);
    assert_int_equal (e.h.cats, m.categories);
    assert_true (e.h.created >= before && e.h.created <= after);
    assert_int_equal (e.h.expires - e.h.created, 30ull * 24 * 3600 * 1000);
    assert_int_equal (dipx_envelope_verify (&e, dipx_identity_sign_pk (fx->me), NULL), 0);
    assert_int_equal (dipx_envelope_verify (&e, dipx_identity_sign_pk (fx->peer), NULL),
                      DIPX_E_BAD_SIGNATURE);
    /* The recipient opens it with its secret key and the sender's public key.  */
    uint8_t shared[32], *plain = NULL;
    size_t plain_len = 0;
    assert_int_equal (
        crypto_box_beforenm (shared, dipx_identity_enc_pk (fx->me), dipx_identity_enc_sk (fx->peer)),
        0);
    assert_int_equal (dipx_envelope_open (&e, shared, &plain, &plain_len), 0);
    assert_int_equal (plain_len, sizeof body - 1);
    assert_memory_equal (plain, body, plain_len);
    free (plain);
    uint8_t first_id[16];
    memcpy (first_id, e.h.id, 16);
    free (env);

    /* Ids are the creation time (48-bit ms, big-endian) and 80 random bits
       unless given; a given id and TTL are used.  */
    assert_int_equal (dipx_client_seal (c, &m, body, 3, &env, &env_len), 0);
    assert_int_equal (dipx_envelope_decode (env, env_len, &e), 0);
    assert_memory_not_equal (e.h.id, first_id, 16);
    assert_memory_not_equal (e.h.id + 6, first_id + 6, 10);
    uint64_t stamp = 0;
    for (int i = 0; i < 6; i++)
        stamp = stamp << 8 | e.h.id[i];
    assert_int_equal (stamp, e.h.created);
    free (env);
    m.id = first_id;
    m.ttl_ms = 3600000;
    assert_int_equal (dipx_client_seal (c, &m, NULL, 0, &env, &env_len), 0); /* empty body */
    assert_int_equal (dipx_envelope_decode (env, env_len, &e), 0);
    assert_memory_equal (e.h.id, first_id, 16);
    assert_int_equal (e.h.expires - e.h.created, 3600000);
    assert_int_equal (dipx_envelope_open (&e, shared, &plain, &plain_len), 0);
    assert_int_equal (plain_len, 0);
    free (plain);
    free (env);
    dipx_client_destroy (&c);
}

static void
test_subject_ref (void **state)
{
    (void) state;
    /* tests/vectors/subject.hex  */
    static const uint8_t expect[32] = {
        0xbb, 0x88, 0x66, 0xd6, 0x47, 0x3d, 0x62, 0x85, 0xad, 0x3c, 0x7a, 0x25, 0xb6, 0x0d, 0xce, 0x79,
        0x70, 0xaa, 0x07, 0x3f, 0xbc, 0x51, 0x60, 0xec, 0x1c, 0x62, 0x4a, 0x81, 0xf7, 0x17, 0x5c, 0x95,
    };
    uint8_t key[32], out[32];
    memset (key, 0x70, sizeof key);
    assert_int_equal (dipx_subject_ref (key, "pnc", "2001/0012345H", out), 0);
    assert_memory_equal (out, expect, 32);
    /* The kind is part of what is hashed.  */
    assert_int_equal (dipx_subject_ref (key, "nhs", "2001/0012345H", out), 0);
    assert_memory_not_equal (out, expect, 32);
    assert_int_equal (dipx_subject_ref (key, "", "x", out), DIPX_E_INVAL);
    assert_int_equal (dipx_subject_ref (key, "Bad", "x", out), DIPX_E_INVAL);
    assert_int_equal (dipx_subject_ref (key, "pnc", "", out), DIPX_E_INVAL);
    assert_int_equal (dipx_subject_ref (NULL, "pnc", "x", out), DIPX_E_INVAL);
}

static void
test_id_hex (void **state)
{
    (void) state;
    uint8_t id[16], back[16];
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t) (i * 17 + 3);
    char hex[33];
    dipx_id_to_hex (id, hex);
    assert_string_equal (hex, "031425364758697a8b9cadbecfe0f102");
    assert_int_equal (dipx_id_from_hex (hex, back), 0);
    assert_memory_equal (id, back, 16);
    assert_int_equal (dipx_id_from_hex ("031425364758697A8B9CADBECFE0F102", back), 0);
    assert_memory_equal (id, back, 16);
    assert_int_equal (dipx_id_from_hex ("03142536475869708192a3b4c5d6e7f", back), DIPX_E_INVAL);
    assert_int_equal (dipx_id_from_hex ("03142536475869708192a3b4c5d6e7f80", back), DIPX_E_INVAL);
    assert_int_equal (dipx_id_from_hex ("0314253647586970819 a3b4c5d6e7f8", back), DIPX_E_INVAL);
    assert_int_equal (dipx_id_from_hex ("g3142536475869708192a3b4c5d6e7f8", back), DIPX_E_INVAL);
    assert_int_equal (dipx_id_from_hex (NULL, back), DIPX_E_INVAL);
    assert_string_equal (dipx_receipt_event_name (2), "acked");
    assert_null (dipx_receipt_event_name (99));
    assert_int_equal (dipx_version (), DIPX_VERSION);
}

/* ---------------------------------------------------------------------------
   With the fake broker */

static void
test_session_and_send (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    dipx_options_t o = s_options (fx, fb.endpoint, 8);
    dipx_client_t *c = NULL;
    assert_int_equal (dipx_client_new (&o, &c), 0);

    /* Posted before the connection exists: kept. On connection the client
       writes HELLO and nothing else until WELCOME; then the send.  */
    dipx_send_t m = s_message (PEER);
    uint8_t id1[16];
    assert_int_equal (dipx_client_post (c, &m, "early", 5, id1), 0);
    dipx_frame_t f;
    fb_expect (&fb, c, DIPX_CMD_HELLO, &f);
    assert_int_equal (f.u.hello.window, 8);
    assert_false (fb_turn (&fb, c, 100));
    assert_int_equal (dipx_client_wait_ready (c, 0), DIPX_E_TIMEOUT);
    fb_welcome (&fb, 8);
    assert_int_equal (dipx_client_wait_ready (c, WAIT_MS), 0);
    uint8_t *buf = fb_recv (&fb, c, &f, NULL);
    assert_int_equal (f.cmd, DIPX_CMD_SEND);
    dipx_envelope_t e;
    assert_int_equal (dipx_envelope_decode (f.u.send.env.ptr, f.u.send.env.len, &e), 0);
    assert_memory_equal (e.h.id, id1, 16);
    free (buf);

    /* ACCEPTED answers the post.  */
    dipx_frame_t a = {.cmd = DIPX_CMD_ACCEPTED};
    memcpy (a.u.accepted.id, id1, 16);
    a.u.accepted.seq = 41;
    fb_send (&fb, &a);
    dipx_result_t r;
    assert_int_equal (dipx_client_result (c, WAIT_MS, &r), 0);
    assert_memory_equal (r.id, id1, 16);
    assert_int_equal (r.code, 0);
    assert_int_equal (r.seq, 41);

    /* dipx_client_send waits for the answer to its own id. The broker's
       answer is written first (the id is chosen here), so the client finds
       it while it waits; an answer to an unknown id is ignored.  */
    uint8_t id2[16], unknown[16];
    randombytes_buf (id2, 16);
    randombytes_buf (unknown, 16);
    memcpy (a.u.accepted.id, unknown, 16);
    fb_send (&fb, &a);
    memcpy (a.u.accepted.id, id2, 16);
    a.u.accepted.seq = 42;
    fb_send (&fb, &a);
    m.id = id2;
    assert_int_equal (dipx_client_send (c, &m, "second", 6, WAIT_MS, &r), 0);
    assert_memory_equal (r.id, id2, 16);
    assert_int_equal (r.seq, 42);
    fb_expect (&fb, c, DIPX_CMD_SEND, &f);
    dipx__client_stats_t st;
    dipx__client_stats (c, &st);
    assert_int_equal (st.unmatched, 1);

    /* REFUSED: the negative code with the broker's reason.  */
    uint8_t id3[16];
    randombytes_buf (id3, 16);
    dipx_frame_t rf = {.cmd = DIPX_CMD_REFUSED};
    memcpy (rf.u.refused.id, id3, 16);
    rf.u.refused.code = -DIPX_E_POLICY;
    snprintf (rf.u.refused.reason, sizeof rf.u.refused.reason, "cjit may not send this to police");
    fb_send (&fb, &rf);
    m.id = id3;
    assert_int_equal (dipx_client_send (c, &m, "third", 5, WAIT_MS, &r), DIPX_E_POLICY);
    assert_int_equal (r.code, DIPX_E_POLICY);
    assert_string_equal (r.reason, "cjit may not send this to police");
    fb_expect (&fb, c, DIPX_CMD_SEND, &f);

    /* No answer in time: DIPX_E_TIMEOUT, the send stays pending, and its
       late answer goes to dipx_client_result.  */
    uint8_t id4[16];
    randombytes_buf (id4, 16);
    m.id = id4;
    assert_int_equal (dipx_client_send (c, &m, "fourth", 6, 50, &r), DIPX_E_TIMEOUT);
    assert_memory_equal (r.id, id4, 16);
    fb_expect (&fb, c, DIPX_CMD_SEND, &f);
    memcpy (a.u.accepted.id, id4, 16);
    a.u.accepted.seq = 44;
    fb_send (&fb, &a);
    assert_int_equal (dipx_client_result (c, WAIT_MS, &r), 0);
    assert_memory_equal (r.id, id4, 16);
    assert_int_equal (r.seq, 44);

    /* Receipts are queued for dipx_client_receipt.  */
    dipx_frame_t rc = {.cmd = DIPX_CMD_RECEIPT};
    memcpy (rc.u.receipt.id, id1, 16);
    rc.u.receipt.event = DIPX_EVENT_DELIVERED;
    rc.u.receipt.at = 1767225600123ull;
    snprintf (rc.u.receipt.by, sizeof rc.u.receipt.by, PEER);
    rc.u.receipt.count = 2;
    rc.present = DIPX_RECEIPT_HAS_COUNT;
    fb_send (&fb, &rc);
    dipx_receipt_t rcpt;
    assert_int_equal (dipx_client_receipt (c, WAIT_MS, &rcpt), 0);
    assert_memory_equal (rcpt.id, id1, 16);
    assert_int_equal (rcpt.event, DIPX_EVENT_DELIVERED);
    assert_int_equal (rcpt.at, 1767225600123ull);
    assert_string_equal (rcpt.by, PEER);
    assert_int_equal (rcpt.count, 2);
    assert_int_equal (rcpt.code, 0);

    /* Garbage and broker-bound commands are ignored, counted, logged.  */
    fb_send_raw (&fb, (const uint8_t *) "\x93\x01\x63\x80", 4);
    fb_send_raw (&fb, (const uint8_t *) "\xc1", 1);
    dipx_frame_t hello = {.cmd = DIPX_CMD_HELLO};
    fb_send (&fb, &hello);
    uint64_t deadline = dipx_mono_ms () + WAIT_MS;
    do {
        assert_true (dipx_mono_ms () < deadline);
        assert_int_equal (dipx_client_receipt (c, 50, &rcpt), DIPX_E_TIMEOUT);
        dipx__client_stats (c, &st);
    } while (st.bad_frames < 3);
    assert_int_equal (st.bad_frames, 3);

    /* TRACK: the HISTORY frames, in any order, make the answer.  */
    dipx_frame_t h = {.cmd = DIPX_CMD_HISTORY};
    memcpy (h.u.history.id, id1, 16);
    snprintf (h.u.history.by, sizeof h.u.history.by, "dipx.broker");
    h.u.history.total = 3;
    for (int i = 2; i >= 0; i--) {
        h.u.history.index = (uint64_t) i;
        h.u.history.event = i;
        h.u.history.at = 1000u + (uint64_t) i;
        fb_send (&fb, &h);
    }
    dipx_receipt_t hist[4];
    size_t n = 0;
    assert_int_equal (dipx_client_track (c, id1, WAIT_MS, hist, 4, &n), 0);
    assert_int_equal (n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal (hist[i].event, i);
        assert_int_equal (hist[i].at, 1000 + i);
    }
    fb_expect (&fb, c, DIPX_CMD_TRACK, &f);
    assert_memory_equal (f.u.track.id, id1, 16);
    dipx_frame_t err = {.cmd = DIPX_CMD_ERROR};
    err.u.error.code = -DIPX_E_NOT_RECIPIENT;
    err.u.error.cmd = DIPX_CMD_TRACK;
    snprintf (err.u.error.reason, sizeof err.u.error.reason, "not yours");
    fb_send (&fb, &err);
    assert_int_equal (dipx_client_track (c, id2, WAIT_MS, hist, 4, &n), DIPX_E_NOT_RECIPIENT);
    fb_expect (&fb, c, DIPX_CMD_TRACK, &f);

    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

/*  Posts one message and returns the SEND frame the client writes for it
    (malloc'd, *len its length).  */
static uint8_t *
s_post_written (fb_t *fb, dipx_client_t *c, const char *body, uint8_t id[16], size_t *len)
{
    dipx_send_t m = s_message (PEER);
    assert_int_equal (dipx_client_post (c, &m, body, strlen (body), id), 0);
    dipx_frame_t f;
    uint8_t *buf = fb_recv (fb, c, &f, len);
    assert_int_equal (f.cmd, DIPX_CMD_SEND);
    return buf;
}

static void
s_accept (fb_t *fb, const uint8_t id[16], uint64_t seq)
{
    dipx_frame_t a = {.cmd = DIPX_CMD_ACCEPTED};
    memcpy (a.u.accepted.id, id, 16);
    a.u.accepted.seq = seq;
    fb_send (fb, &a);
}

/*  Runs the client, with no frame from it, until it has counted n answers
    that matched no send; returns its counters.  */
static dipx__client_stats_t
s_wait_unmatched (fb_t *fb, dipx_client_t *c, uint64_t n)
{
    dipx__client_stats_t st;
    uint64_t deadline = dipx_mono_ms () + WAIT_MS;
    for (dipx__client_stats (c, &st); st.unmatched < n; dipx__client_stats (c, &st)) {
        assert_true (dipx_mono_ms () < deadline);
        assert_false (fb_turn (fb, c, 50));
    }
    return st;
}

/*  No frame from the client for ms (it is run meanwhile).  */
static void
s_quiet (fb_t *fb, dipx_client_t *c, int ms)
{
    uint64_t end = dipx_mono_ms () + (uint64_t) ms;
    while (dipx_mono_ms () < end)
        assert_false (fb_turn (fb, c, 50));
}

/*  The broker answers a connection's SENDs in the order it got them, and
    drops replies to a connection whose send queue is full. So when the
    answer to a later SEND comes and an earlier one has none, its answer was
    lost: the client writes it again at once, the same bytes, on the same
    connection, and the next answer is the post's. Answers in order resend
    nothing; a lost answer with no later send waits for the next one.  */
static void
test_lost_answer_resent (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    dipx_options_t o = s_options (fx, fb.endpoint, 0);
    dipx_client_t *c = NULL;
    assert_int_equal (dipx_client_new (&o, &c), 0);
    dipx_frame_t f;
    fb_expect (&fb, c, DIPX_CMD_HELLO, &f);
    fb_welcome (&fb, 0);
    assert_int_equal (dipx_client_wait_ready (c, WAIT_MS), 0);

    /* A's answer lost, B's comes: A again.  */
    uint8_t a[16], b[16];
    size_t alen, blen, len;
    uint8_t *afr = s_post_written (&fb, c, "a", a, &alen);
    free (s_post_written (&fb, c, "b", b, &blen));
    s_accept (&fb, b, 2);
    dipx_result_t r;
    assert_int_equal (dipx_client_result (c, WAIT_MS, &r), 0);
    assert_memory_equal (r.id, b, 16);
    uint8_t *again = fb_recv (&fb, c, &f, &len);
    assert_int_equal (len, alen);
    assert_memory_equal (again, afr, alen);
    free (again);
    free (afr);
    s_accept (&fb, a, 1);
    assert_int_equal (dipx_client_result (c, WAIT_MS, &r), 0);
    assert_memory_equal (r.id, a, 16);
    assert_int_equal (r.seq, 1);
    dipx__client_stats_t st;
    dipx__client_stats (c, &st);
    assert_int_equal (st.resent, 1);
    assert_int_equal (st.sessions, 1);

    /* Answers in order: nothing written again.  */
    uint8_t c1[16], c2[16];
    free (s_post_written (&fb, c, "c1", c1, &len));
    free (s_post_written (&fb, c, "c2", c2, &len));
    s_accept (&fb, c1, 3);
    s_accept (&fb, c2, 4);
    assert_int_equal (dipx_client_result (c, WAIT_MS, &r), 0);
    assert_int_equal (dipx_client_result (c, WAIT_MS, &r), 0);
    assert_memory_equal (r.id, c2, 16);

    /* The newest send's answer lost: it waits (no answer, nothing
       written), until a later send's answer shows it was lost.  */
    uint8_t d[16], e[16];
    uint8_t *dfr = s_post_written (&fb, c, "d", d, &len);
    free (dfr);
    s_quiet (&fb, c, 300);
    assert_int_equal (dipx_client_result (c, 0, &r), DIPX_E_TIMEOUT);
    free (s_post_written (&fb, c, "e", e, &len));
    s_accept (&fb, e, 6);
    assert_int_equal (dipx_client_result (c, WAIT_MS, &r), 0);
    assert_memory_equal (r.id, e, 16);
    free (fb_recv (&fb, c, &f, &len));
    assert_int_equal (f.cmd, DIPX_CMD_SEND);
    /* Answered twice (a late duplicate is ignored): the first is the post's.  */
    s_accept (&fb, d, 5);
    s_accept (&fb, d, 5);
    assert_int_equal (dipx_client_result (c, WAIT_MS, &r), 0);
    assert_memory_equal (r.id, d, 16);
    s_quiet (&fb, c, 300);
    st = s_wait_unmatched (&fb, c, 1);
    assert_int_equal (st.resent, 2);
    assert_int_equal (st.unmatched, 1);
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

/*  An answer for a send that was never written (posted before WELCOME, so
    held) answers nothing: it is ignored, and the send's answer is the one
    the broker gives after it is written.  */
static void
test_answer_before_write_ignored (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    dipx_options_t o = s_options (fx, fb.endpoint, 0);
    dipx_client_t *c = NULL;
    assert_int_equal (dipx_client_new (&o, &c), 0);
    dipx_send_t m = s_message (PEER);
    uint8_t id[16];
    assert_int_equal (dipx_client_post (c, &m, "held", 4, id), 0);
    dipx_frame_t f;
    fb_expect (&fb, c, DIPX_CMD_HELLO, &f);
    s_accept (&fb, id, 77); /* no WELCOME yet: the SEND is still held */
    s_wait_unmatched (&fb, c, 1);
    dipx_result_t r;
    assert_int_equal (dipx_client_result (c, 0, &r), DIPX_E_TIMEOUT);
    fb_welcome (&fb, 0);
    fb_expect (&fb, c, DIPX_CMD_SEND, &f);
    s_accept (&fb, id, 78);
    assert_int_equal (dipx_client_result (c, WAIT_MS, &r), 0);
    assert_memory_equal (r.id, id, 16);
    assert_int_equal (r.seq, 78);
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

/*  A broker that answers newest-first: each answer shows every older send
    as lost. A send is written again at most 3 times on one connection, so
    20 sends cost at most 57 copies more; before, 190 (N(N-1)/2).  */
static void
test_lost_answers_bounded (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    dipx_client_t *c = s_ready_client (fx, &fb, 0);
    enum { N = 20 };
    uint8_t ids[N][16];
    size_t len;
    for (int i = 0; i < N; i++)
        free (s_post_written (&fb, c, "newest first", ids[i], &len));
    int copies = 0;
    for (int i = N - 1; i >= 0; i--) {
        s_accept (&fb, ids[i], (uint64_t) i + 1);
        /* Take what the client writes again until it has answered this one.  */
        dipx_result_t r;
        assert_int_equal (dipx_client_result (c, WAIT_MS, &r), 0);
        assert_memory_equal (r.id, ids[i], 16);
        while (fb_turn (&fb, c, 100)) {
            dipx_frame_t f;
            free (fb_recv (&fb, c, &f, &len));
            assert_int_equal (f.cmd, DIPX_CMD_SEND);
            copies++;
        }
    }
    dipx__client_stats_t st;
    dipx__client_stats (c, &st);
    print_message ("%d sends answered newest-first: %d copies written again\n", N, copies);
    assert_true (copies > 0 && copies <= (int) st.resent);
    assert_true (st.resent <= 3 * (N - 1));
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

static void
test_deliver_ack (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    dipx_client_t *c = s_ready_client (fx, &fb, 4);

    uint8_t id[16];
    static const char body[] = "{\"form\":\"DT1\",\"result\":\"positive\"}";
    fb_deliver_new (fx, &fb, 77, 2, body, id);

    dipx_message_t *m = NULL;
    assert_int_equal (dipx_client_recv (c, WAIT_MS, &m), 0);
    assert_memory_equal (dipx_message_id (m), id, 16);
    assert_string_equal (dipx_message_from (m), PEER);
    assert_string_equal (dipx_message_to (m), ME);
    assert_string_equal (dipx_message_type (m), "drug_test_result");
    assert_int_equal (dipx_message_subject (m)[0], 0x5a);
    assert_int_equal (dipx_message_basis (m), DIPX_BASIS_STATUTE);
    assert_string_equal (dipx_message_ref (m), "PACE s.63B");
    assert_int_equal (dipx_message_purpose (m), DIPX_PURPOSE_LAW_ENFORCEMENT);
    assert_int_equal (dipx_message_categories (m),
                      (1u << DIPX_CAT_IDENTIFIERS) | (1u << DIPX_CAT_TEST_RESULTS));
    assert_int_equal (dipx_message_expires (m) - dipx_message_created (m), 86400000u);
    assert_int_equal (dipx_message_seq (m), 77);
    assert_int_equal (dipx_message_delivery_count (m), 2);
    assert_true (dipx_message_is_redelivered (m));
    assert_int_equal (dipx_message_body_len (m), sizeof body - 1);
    assert_memory_equal (dipx_message_body (m), body, sizeof body - 1);

    /* ACK: Ed25519 by this agency over dipx_ack_statement.  */
    uint64_t before = dipx_now_ms ();
    assert_int_equal (dipx_client_ack (c, m), 0);
    dipx_frame_t *f = (dipx_frame_t *) malloc (sizeof *f);
    fb_expect (&fb, c, DIPX_CMD_ACK, f);
    assert_int_equal (f->u.ack.ids.count, 1);
    assert_memory_equal (f->u.ack.ids.ids[0], id, 16);
    assert_true (f->u.ack.at >= before && f->u.ack.at <= dipx_now_ms ());
    uint8_t stmt[DIPX_ACK_STMT_MAX];
    size_t n = dipx_ack_statement (ME, f->u.ack.at, &f->u.ack.ids, stmt);
    assert_int_equal (crypto_sign_verify_detached (f->u.ack.sig, stmt, n,
                                                   dipx_identity_sign_pk (fx->me)),
                      0);

    /* OUTCOME actioned, signed likewise; rejected needs a reason.  */
    assert_int_equal (dipx_client_outcome (c, m, false, NULL), DIPX_E_INVAL);
    assert_int_equal (dipx_client_outcome (c, m, true, "Assessment booked"), 0);
    fb_expect (&fb, c, DIPX_CMD_OUTCOME, f);
    assert_int_equal (f->u.outcome.event, DIPX_EVENT_ACTIONED);
    assert_string_equal (f->u.outcome.reason, "Assessment booked");
    assert_memory_equal (f->u.outcome.id, id, 16);
    uint8_t ostmt[DIPX_OUTCOME_STMT_MAX];
    n = dipx_outcome_statement (ME, &f->u.outcome, ostmt);
    assert_int_equal (crypto_sign_verify_detached (f->u.outcome.sig, ostmt, n,
                                                   dipx_identity_sign_pk (fx->me)),
                      0);
    free (f);
    dipx_message_destroy (&m);
    assert_null (m);
    dipx_message_destroy (&m);
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

/*  Delivers env and checks that recv never returns it and that the client
    answers with a signed OUTCOME rejected whose reason starts with `name:`.  */
static void
s_expect_rejected (fx_t *fx, fb_t *fb, dipx_client_t *c, uint8_t *env, size_t env_len,
                   const uint8_t id[16], const char *name)
{
    fb_deliver (fb, 5, 1, env, env_len);
    dipx_message_t *m = NULL;
    assert_int_equal (dipx_client_recv (c, 100, &m), DIPX_E_TIMEOUT);
    assert_null (m);
    dipx_frame_t *f = (dipx_frame_t *) malloc (sizeof *f);
    fb_expect (fb, c, DIPX_CMD_OUTCOME, f);
    assert_int_equal (f->u.outcome.event, DIPX_EVENT_REJECTED);
    assert_memory_equal (f->u.outcome.id, id, 16);
    assert_true (f->present & DIPX_OUTCOME_HAS_REASON);
    char prefix[64];
    snprintf (prefix, sizeof prefix, "%s: ", name);
    if (strncmp (f->u.outcome.reason, prefix, strlen (prefix)) != 0)
        fail_msg ("reason '%s' does not start with '%s'", f->u.outcome.reason, prefix);
    uint8_t stmt[DIPX_OUTCOME_STMT_MAX];
    size_t n = dipx_outcome_statement (ME, &f->u.outcome, stmt);
    assert_int_equal (
        crypto_sign_verify_detached (f->u.outcome.sig, stmt, n, dipx_identity_sign_pk (fx->me)), 0);
    assert_non_null (strstr (fx->log, "rejected message"));
    free (f);
}

static void
test_deliver_rejected (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    dipx_client_t *c = s_ready_client (fx, &fb, 4);
    uint8_t id[16], *env;
    size_t env_len;
    dipx_envelope_t e;

    /* A ciphertext byte flipped in transit: the signature fails.  */
    randombytes_buf (id, 16);
    s_envelope (fx, fx->peer, ME, fx->me, fx->peer, id, "tampered", &env, &env_len);
    assert_int_equal (dipx_envelope_decode (env, env_len, &e), 0);
    env[(size_t) (e.ct.ptr - env) + e.ct.len / 2] ^= 0x01;
    s_expect_rejected (fx, &fb, c, env, env_len, id, "bad_signature");
    free (env);

    /* Signed by someone else than the named sender.  */
    randombytes_buf (id, 16);
    s_envelope (fx, fx->peer, ME, fx->me, fx->stranger, id, "forged", &env, &env_len);
    s_expect_rejected (fx, &fb, c, env, env_len, id, "bad_signature");
    free (env);

    /* From an agency that is not in the peers file.  */
    randombytes_buf (id, 16);
    s_envelope (fx, fx->stranger, ME, fx->me, fx->stranger, id, "who?", &env, &env_len);
    s_expect_rejected (fx, &fb, c, env, env_len, id, "unknown_sender");
    free (env);

    /* From a suspended peer.  */
    randombytes_buf (id, 16);
    s_envelope (fx, fx->suspended, ME, fx->me, fx->suspended, id, "late", &env, &env_len);
    s_expect_rejected (fx, &fb, c, env, env_len, id, "unknown_sender");
    free (env);

    /* From a peer whose card had expired when the message was made.  */
    randombytes_buf (id, 16);
    s_envelope (fx, fx->lapsed, ME, fx->me, fx->lapsed, id, "too late", &env, &env_len);
    s_expect_rejected (fx, &fb, c, env, env_len, id, "unknown_sender");
    free (env);

    /* Addressed (in the clear header) to another agency.  */
    randombytes_buf (id, 16);
    s_envelope (fx, fx->peer, SUSPENDED, fx->suspended, fx->peer, id, "misrouted", &env, &env_len);
    s_expect_rejected (fx, &fb, c, env, env_len, id, "readdressed");
    free (env);

    /* Header names this agency, but sealed for another: does not open.  */
    randombytes_buf (id, 16);
    s_envelope (fx, fx->peer, ME, fx->stranger, fx->peer, id, "sealed elsewhere", &env, &env_len);
    s_expect_rejected (fx, &fb, c, env, env_len, id, "crypto");
    free (env);

    dipx__client_stats_t st;
    dipx__client_stats (c, &st);
    assert_int_equal (st.rejected, 7);

    /* From the same peer, made while its card was valid (two hours ago)
       and delivered now: returned.  */
    randombytes_buf (id, 16);
    fx->created = dipx_now_ms () - 2 * 3600 * 1000;
    s_envelope (fx, fx->lapsed, ME, fx->me, fx->lapsed, id, "made in time", &env, &env_len);
    fx->created = 0;
    fb_deliver (&fb, 6, 1, env, env_len);
    free (env);
    dipx_message_t *m = NULL;
    assert_int_equal (dipx_client_recv (c, WAIT_MS, &m), 0);
    assert_memory_equal (dipx_message_id (m), id, 16);
    dipx_message_destroy (&m);

    /* A good one after all that is returned.  */
    fb_deliver_new (fx, &fb, 7, 1, "fine", id);
    assert_int_equal (dipx_client_recv (c, WAIT_MS, &m), 0);
    assert_memory_equal (dipx_message_id (m), id, 16);
    assert_false (dipx_message_is_redelivered (m));
    dipx_message_destroy (&m);
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

static void
test_broker_restart (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    dipx_client_t *c = s_ready_client (fx, &fb, 0);

    dipx_send_t m = s_message (PEER);
    uint8_t id[16];
    assert_int_equal (dipx_client_post (c, &m, "keep me", 7, id), 0);
    dipx_frame_t f;
    size_t len1 = 0, len2 = 0;
    uint8_t *first = fb_recv (&fb, c, &f, &len1);
    assert_int_equal (f.cmd, DIPX_CMD_SEND);

    /* The broker dies before answering, and comes back on the same port.  */
    fb_unbind (&fb);
    fb_bind (&fb);
    fb_expect (&fb, c, DIPX_CMD_HELLO, &f);
    assert_int_equal (dipx_client_wait_ready (c, 0), DIPX_E_TIMEOUT);
    fb_welcome (&fb, 0);
    assert_int_equal (dipx_client_wait_ready (c, WAIT_MS), 0);
    uint8_t *again = fb_recv (&fb, c, &f, &len2);
    assert_int_equal (f.cmd, DIPX_CMD_SEND);
    assert_int_equal (len1, len2);
    assert_memory_equal (first, again, len1); /* same bytes: same id, same envelope */
    free (first);
    free (again);
    dipx__client_stats_t st;
    dipx__client_stats (c, &st);
    assert_int_equal (st.sessions, 2);

    dipx_frame_t a = {.cmd = DIPX_CMD_ACCEPTED};
    memcpy (a.u.accepted.id, id, 16);
    a.u.accepted.seq = 9;
    fb_send (&fb, &a);
    dipx_result_t r;
    assert_int_equal (dipx_client_result (c, WAIT_MS, &r), 0);
    assert_memory_equal (r.id, id, 16);
    assert_int_equal (r.seq, 9);
    /* Answered: not resent after the next restart.  */
    fb_unbind (&fb);
    fb_bind (&fb);
    fb_expect (&fb, c, DIPX_CMD_HELLO, &f);
    assert_false (fb_turn (&fb, c, 100));
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

/*  A broker whose max_frame is below a send's frame: the send fails locally
    with DIPX_E_FRAME_SIZE and is never written (the broker would drop the
    connection on it, and the client would resend it on every reconnection).  */
static void
test_max_frame (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    dipx_options_t o = s_options (fx, fb.endpoint, 0);
    dipx_client_t *c = NULL;
    assert_int_equal (dipx_client_new (&o, &c), 0);
    static char big[4000];
    memset (big, 'x', sizeof big);
    dipx_send_t m = s_message (PEER);
    uint8_t id_big[16], id_small[16];
    assert_int_equal (dipx_client_post (c, &m, big, sizeof big, id_big), 0); /* before WELCOME */
    dipx_frame_t f;
    fb_expect (&fb, c, DIPX_CMD_HELLO, &f);
    dipx_frame_t w = {.cmd = DIPX_CMD_WELCOME};
    snprintf (w.u.welcome.broker, sizeof w.u.welcome.broker, "dipx.broker");
    w.u.welcome.max_frame = 2048;
    fb_send (&fb, &w);
    dipx_result_t r;
    assert_int_equal (dipx_client_result (c, WAIT_MS, &r), 0);
    assert_memory_equal (r.id, id_big, 16);
    assert_int_equal (r.code, DIPX_E_FRAME_SIZE);
    /* After WELCOME: refused at once by dipx_client_send.  */
    assert_int_equal (dipx_client_send (c, &m, big, sizeof big, WAIT_MS, &r), DIPX_E_FRAME_SIZE);
    assert_int_equal (dipx_client_result (c, 0, &r), DIPX_E_TIMEOUT);
    /* A small one goes through; nothing else was written.  */
    assert_int_equal (dipx_client_post (c, &m, "small", 5, id_small), 0);
    uint8_t *buf = fb_recv (&fb, c, &f, NULL);
    assert_int_equal (f.cmd, DIPX_CMD_SEND);
    dipx_envelope_t e;
    assert_int_equal (dipx_envelope_decode (f.u.send.env.ptr, f.u.send.env.len, &e), 0);
    assert_memory_equal (e.h.id, id_small, 16);
    free (buf);
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

static void
s_auth (void **state, int zap_status, int expect)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, zap_status);
    dipx_options_t o = s_options (fx, fb.endpoint, 0);
    dipx_client_t *c = NULL;
    assert_int_equal (dipx_client_new (&o, &c), 0);
    dipx_send_t m = s_message (PEER);
    uint8_t id[16];
    assert_int_equal (dipx_client_post (c, &m, "x", 1, id), 0);
    uint64_t deadline = dipx_mono_ms () + WAIT_MS;
    int rc;
    while ((rc = dipx_client_wait_ready (c, 0)) == DIPX_E_TIMEOUT) {
        assert_true (dipx_mono_ms () < deadline);
        fb_turn (&fb, c, 50);
    }
    assert_int_equal (rc, expect);
    /* Every blocking call reports it; the send stays pending.  */
    dipx_result_t r;
    assert_int_equal (dipx_client_result (c, 0, &r), expect);
    assert_int_equal (dipx_client_send (c, &m, "y", 1, 1000, &r), expect);
    assert_non_null (strstr (fx->log, "refused this agency's key"));
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

static void
test_auth_refused (void **state)
{
    s_auth (state, 400, DIPX_E_AUTH);
}

static void
test_auth_temporary (void **state)
{
    s_auth (state, 500, DIPX_E_AUTH_TEMP);
}

/*  ZAP 300: libzmq's CURVE server drops the client without telling it why,
    so the client only sees failed handshakes and keeps trying.  */
static void
test_auth_silent (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 300);
    dipx_options_t o = s_options (fx, fb.endpoint, 0);
    dipx_client_t *c = NULL;
    assert_int_equal (dipx_client_new (&o, &c), 0);
    uint64_t deadline = dipx_mono_ms () + WAIT_MS;
    while (fx->nlog == 0) {
        assert_true (dipx_mono_ms () < deadline);
        assert_int_equal (dipx_client_wait_ready (c, 0), DIPX_E_TIMEOUT);
        fb_turn (&fb, c, 50);
    }
    assert_non_null (strstr (fx->log, "handshake with the broker failed"));
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

/*  A broker that does not keep to the window: libdipx holds at most
    `window` deliveries, dropping the rest (the broker delivers them again).
    Before, it held up to 1,024 whatever the window, each up to 1 MiB.  */
static void
test_deliveries_held_by_window (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    dipx_client_t *c = s_ready_client (fx, &fb, 2);
    for (int i = 0; i < 10; i++) {
        uint8_t id[16];
        fb_deliver_new (fx, &fb, (uint64_t) (100 + i), 1, "over the window", id);
    }
    /* Every frame read before one is taken.  */
    dipx__client_stats_t st;
    uint64_t deadline = dipx_mono_ms () + WAIT_MS;
    do {
        assert_true (dipx_mono_ms () < deadline);
        assert_int_equal (dipx__client_pump (c, 50), 0);
        dipx__client_stats (c, &st);
    } while (st.deliveries_dropped < 8);
    int got = 0;
    dipx_message_t *m = NULL;
    while (dipx_client_recv (c, 0, &m) == 0) {
        got++;
        dipx_message_destroy (&m);
    }
    assert_int_equal (got, 2);
    dipx__client_stats (c, &st);
    assert_int_equal (st.deliveries_dropped, 8);
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

typedef struct {
    fb_t *fb;
    const uint8_t *frame; /* an encoded DELIVER */
    size_t len;
    int ms;
    int sent;
    atomic_bool stop;     /* set to end it early */
} s_stream_t;

/*  Sends a->frame for a->ms milliseconds (or until stopped), as fast as the
    socket takes it.  */
static void *
s_stream (void *arg)
{
    s_stream_t *a = (s_stream_t *) arg;
    uint64_t end = dipx_mono_ms () + (uint64_t) a->ms;
    while (dipx_mono_ms () < end && !atomic_load (&a->stop))
        if (zmq_send (a->fb->router, a->fb->rid, a->fb->rid_len, ZMQ_SNDMORE) >= 0
            && zmq_send (a->fb->router, a->frame, a->len, 0) >= 0)
            a->sent++;
    return NULL;
}

/*  dipx_client_recv keeps its timeout while deliveries that fail their
    checks keep arriving. Before, it went on taking them for as long as they
    came (a broker streaming bad DELIVERs held the call, and an application
    polling with timeout 0, indefinitely).  */
static void
test_recv_timeout_under_bad_deliveries (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    /* The largest window, so that each turn takes longer than the stream
       needs to bring more.  */
    dipx_client_t *c = s_ready_client (fx, &fb, DIPX_MAX_WINDOW);
    /* Signed by this agency, not by the sender it names: each costs the
       client a signature check, more than the broker's send.  */
    uint8_t id[16], *env, *frame;
    size_t env_len, len;
    randombytes_buf (id, 16);
    s_envelope (fx, fx->peer, ME, fx->me, fx->me, id, "forged", &env, &env_len);
    dipx_frame_t f = {.cmd = DIPX_CMD_DELIVER};
    f.u.deliver.seq = 1;
    f.u.deliver.count = 1;
    f.u.deliver.env = (dipx_slice_t){env, env_len};
    assert_int_equal (dipx_frame_encode (&f, &frame, &len), 0);
    s_stream_t a = {&fb, frame, len, 30000, 0, false};
    pthread_t t;
    assert_int_equal (pthread_create (&t, NULL, s_stream, &a), 0);
    usleep (100 * 1000); /* the stream is flowing */
    uint64_t t0 = dipx_mono_ms ();
    dipx_message_t *m = NULL;
    int rc = dipx_client_recv (c, 200, &m);
    uint64_t took = dipx_mono_ms () - t0;
    atomic_store (&a.stop, true);
    assert_int_equal (pthread_join (t, NULL), 0);
    free (frame);
    free (env);
    dipx__client_stats_t st;
    dipx__client_stats (c, &st);
    print_message ("recv(200 ms) returned after %llu ms; %d forged DELIVERs written, %llu "
                   "rejected, %llu dropped\n",
                   (unsigned long long) took, a.sent, (unsigned long long) st.rejected,
                   (unsigned long long) st.deliveries_dropped);
    assert_int_equal (rc, DIPX_E_TIMEOUT);
    /* About 0.3 s here, 2 s with four ASan copies at once, 2.3 s beside
       two busy loops; the stream lasts 30 s unless the call returns.  */
    assert_true (took < 15000);
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

/*  The broker restarts while the application makes no call, and libzmq
    connects again underneath: the application's next post must not put its
    SEND on the new connection before HELLO (PROTOCOL.md 5.1). Before, libdipx
    knew of the new connection only from its next read, and wrote the SEND
    first.  */
static void
test_no_send_before_hello (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    dipx_client_t *c = s_ready_client (fx, &fb, 0);
    fb_unbind (&fb);
    fb.mon = zmq_socket (fb.ctx, ZMQ_PAIR);
    assert_non_null (fb.mon);
    fb_bind (&fb);
    /* The new connection's handshake, done by libzmq alone.  */
    zmq_pollitem_t item = {fb.mon, 0, ZMQ_POLLIN, 0};
    assert_int_equal (zmq_poll (&item, 1, WAIT_MS), 1);
    dipx_send_t m = s_message (PEER);
    uint8_t id[16];
    assert_int_equal (dipx_client_post (c, &m, "after the restart", 17, id), 0);
    dipx_frame_t f;
    fb_expect (&fb, c, DIPX_CMD_HELLO, &f);
    fb_welcome (&fb, 0);
    uint8_t *buf = fb_recv (&fb, c, &f, NULL);
    assert_int_equal (f.cmd, DIPX_CMD_SEND);
    free (buf);
    int zero = 0;
    zmq_setsockopt (fb.mon, ZMQ_LINGER, &zero, sizeof zero);
    zmq_socket_monitor (fb.router, NULL, 0);
    zmq_close (fb.mon);
    fb.mon = NULL;
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

/*  Serves the fake broker without running the client: answers ZAP, and a
    HELLO with WELCOME (window 0, or fb_serve_window). The client runs only
    inside its own public calls. Returns the command of the frame read, or
    -1.  */
static uint64_t fb_serve_window;
static int
fb_serve (fb_t *fb, int timeout_ms)
{
    zmq_pollitem_t items[2] = {{fb->router, 0, ZMQ_POLLIN, 0}, {fb->zap, 0, ZMQ_POLLIN, 0}};
    assert_true (zmq_poll (items, fb->zap ? 2 : 1, timeout_ms) >= 0);
    if (fb->zap && (items[1].revents & ZMQ_POLLIN))
        fb_zap (fb);
    if (!(items[0].revents & ZMQ_POLLIN))
        return -1;
    static uint8_t buf[70000];
    int rl = zmq_recv (fb->router, fb->rid, sizeof fb->rid, 0);
    assert_true (rl > 0 && (size_t) rl <= sizeof fb->rid);
    fb->rid_len = (size_t) rl;
    int n = zmq_recv (fb->router, buf, sizeof buf, 0);
    dipx_frame_t f;
    if (n <= 0 || (size_t) n > sizeof buf || dipx_frame_decode (buf, (size_t) n, &f) != 0)
        return -1;
    if (f.cmd == DIPX_CMD_HELLO)
        fb_welcome (fb, fb_serve_window);
    return f.cmd;
}

typedef struct {
    fb_t *fb;
    atomic_int acks, outcomes; /* frames the broker got */
    atomic_bool stop;
    atomic_int want;           /* if > 0: stop once an ACK and this many OUTCOMEs came */
} s_served_t;

/*  Serves fb (fb_serve) until stopped, counting ACKs and OUTCOMEs.  */
static void *
s_serve_thread (void *arg)
{
    s_served_t *sv = (s_served_t *) arg;
    while (!atomic_load (&sv->stop)
           && !(atomic_load (&sv->want) > 0 && atomic_load (&sv->acks) > 0
                && atomic_load (&sv->outcomes) >= atomic_load (&sv->want))) {
        int cmd = fb_serve (sv->fb, 10);
        sv->acks += cmd == DIPX_CMD_ACK;
        sv->outcomes += cmd == DIPX_CMD_OUTCOME;
    }
    return NULL;
}

/*  The control queue fills while the broker is away (2,048 outcomes): once
    the broker is back, the client's own calls start the session and write
    them out, and the acknowledgement listed meanwhile too. Before, every
    waiting call returned busy at once, reading nothing, and the client never
    came back; and then, the acknowledgement waited for the next call.  */
static void
test_control_queue_full_recovers (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    dipx_client_t *c = s_ready_client (fx, &fb, 4);
    uint8_t id[16];
    fb_deliver_new (fx, &fb, 1, 1, "to act on", id);
    dipx_message_t *m = NULL, *none = NULL;
    assert_int_equal (dipx_client_recv (c, WAIT_MS, &m), 0);
    fb_unbind (&fb);
    int rc, queued = 0;
    while ((rc = dipx_client_outcome (c, m, true, NULL)) == 0)
        queued++;
    assert_int_equal (rc, DIPX_E_BUSY);
    assert_int_equal (dipx_client_ack (c, m), 0); /* listed: it goes later */
    fb_bind (&fb);
    /* One waiting call, the broker served meanwhile by another thread: the
       call starts the session, writes the queue out, and then the
       acknowledgement.  */
    s_served_t sv = {&fb, 0, 0, false, 0};
    pthread_t t;
    assert_int_equal (pthread_create (&t, NULL, s_serve_thread, &sv), 0);
    /* libzmq connects again on its own schedule (100 ms doubling to 2 s
       after the loss, and a little more at random): the call lasts longer
       than its longest interval.  */
    assert_int_equal (dipx_client_recv (c, 3000, &none), DIPX_E_TIMEOUT);
    /* The server stops once it has read them all, or is stopped.  */
    sv.want = DIPX_MAX_CONTROL;
    struct timespec until;
    clock_gettime (CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    if (pthread_timedjoin_np (t, NULL, &until) != 0) {
        atomic_store (&sv.stop, true);
        assert_int_equal (pthread_join (t, NULL), 0);
    }
    int acks = sv.acks, outcomes = sv.outcomes;
    assert_int_equal (acks, 1);
    /* Those that filled the queue; a few went first to the connection that
       was closing, unnoticed yet.  */
    print_message ("%d outcomes posted while the broker was away; %d written after\n", queued,
                   outcomes);
    assert_int_equal (outcomes, DIPX_MAX_CONTROL);
    dipx_message_destroy (&m);
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

/*  Driven through dipx_client_fd alone, the client keeps both of its own
    timers: a HELLO asked again after busy (800 ms away after four), and a
    new connection after its key was refused meanwhile (1 s). Before, the
    timer was armed for the earlier one only, and once it had fired nothing
    woke the client for the other: libzmq does not connect again after a
    refused key, so no socket event ever came.  */
static void
test_fd_timers (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 200);
    dipx_options_t o = s_options (fx, fb.endpoint, 0);
    dipx_client_t *c = NULL;
    assert_int_equal (dipx_client_new (&o, &c), 0);
    int fd = -1;
    assert_int_equal (dipx_client_fd (c, &fd), 0);
    dipx_frame_t f, err = {.cmd = DIPX_CMD_ERROR};
    err.u.error.code = -DIPX_E_BUSY;
    err.u.error.cmd = DIPX_CMD_HELLO;
    snprintf (err.u.error.reason, sizeof err.u.error.reason, "too many sessions");
    for (int i = 0; i < 4; i++) {
        fb_expect (&fb, c, DIPX_CMD_HELLO, &f);
        fb_send (&fb, &err);
    }
    uint64_t deadline = dipx_mono_ms () + WAIT_MS;
    while (!fx->nlog || !strstr (fx->log, "broker refused HELLO")) {
        assert_true (dipx_mono_ms () < deadline);
        assert_int_equal (dipx__client_pump (c, 50), 0);
    }
    /* The broker comes back refusing the key; then an operator fixes it.  */
    fb.zap_status = 400;
    fb_unbind (&fb);
    fb_bind (&fb);
    bool refused = false;
    int rc = DIPX_E_TIMEOUT;
    deadline = dipx_mono_ms () + 3 * WAIT_MS;
    while (rc != 0) {
        assert_true (dipx_mono_ms () < deadline);
        struct pollfd p = {fd, POLLIN, 0};
        if (poll (&p, 1, 10) == 1)
            rc = dipx_client_wait_ready (c, 0); /* the only call into the client */
        fb_serve (&fb, 0);
        if (!refused && strstr (fx->log, "refused this agency's key")) {
            refused = true;
            fb.zap_status = 200;
        }
    }
    assert_true (refused);
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

/*  An ERROR for HELLO on a session already welcomed answers nothing (this
    connection's HELLO had its WELCOME): it is ignored, and the session goes
    on. Before, it set a refusal that every call returned until the next
    connection.  */
static void
test_stray_hello_error (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    dipx_client_t *c = s_ready_client (fx, &fb, 0);
    dipx_frame_t f, err = {.cmd = DIPX_CMD_ERROR};
    err.u.error.code = -DIPX_E_SENDER_INACTIVE;
    err.u.error.cmd = DIPX_CMD_HELLO;
    snprintf (err.u.error.reason, sizeof err.u.error.reason, "stray");
    fb_send (&fb, &err);
    uint64_t deadline = dipx_mono_ms () + WAIT_MS;
    while (!fx->nlog || !strstr (fx->log, "ERROR for HELLO on a welcomed session")) {
        assert_true (dipx_mono_ms () < deadline);
        assert_int_equal (dipx__client_pump (c, 50), 0);
    }
    assert_int_equal (dipx_client_wait_ready (c, 0), 0);
    dipx_send_t m = s_message (PEER);
    uint8_t id[16];
    assert_int_equal (dipx_client_post (c, &m, "still in session", 16, id), 0);
    fb_expect (&fb, c, DIPX_CMD_SEND, &f);
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

/*  A handshake that fails on the protocol (here a broker without CURVE)
    ends the connection for good in libzmq: libdipx connects again, and the
    session starts once the broker is put right.  */
static void
test_protocol_failure_retried (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    /* The same endpoint, served first by a ROUTER without CURVE.  */
    fb_unbind (&fb);
    void *plain = zmq_socket (fb.ctx, ZMQ_ROUTER);
    assert_non_null (plain);
    int zero = 0;
    zmq_setsockopt (plain, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal (zmq_bind (plain, fb.endpoint), 0);
    dipx_options_t o = s_options (fx, fb.endpoint, 0);
    dipx_client_t *c = NULL;
    assert_int_equal (dipx_client_new (&o, &c), 0);
    uint64_t deadline = dipx_mono_ms () + WAIT_MS;
    while (!fx->nlog || !strstr (fx->log, "protocol error")) {
        assert_true (dipx_mono_ms () < deadline);
        assert_int_equal (dipx__client_pump (c, 50), 0);
    }
    s_unbind_close (fb.ctx, plain, fb.endpoint);
    fb_bind (&fb);
    dipx_frame_t f;
    fb_expect (&fb, c, DIPX_CMD_HELLO, &f); /* within WAIT_MS: the retry is after 1 s */
    fb_welcome (&fb, 0);
    assert_int_equal (dipx_client_wait_ready (c, WAIT_MS), 0);
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

/*  A client whose key the broker refuses for now (ZAP 500), until it sees
    the refusal; then the key is admitted and the client's own calls
    (wait_ready, here) must take the new handshake that follows and start
    the session, within deadline_ms. Returns the client (fb's to destroy).  */
static dipx_client_t *
s_refused_then_admitted (fx_t *fx, fb_t *fb, void (*admitting) (void), int deadline_ms)
{
    fb_new (fb, fx, 500);
    dipx_options_t o = s_options (fx, fb->endpoint, 0);
    dipx_client_t *c = NULL;
    assert_int_equal (dipx_client_new (&o, &c), 0);
    uint64_t deadline = dipx_mono_ms () + WAIT_MS;
    int rc;
    while ((rc = dipx_client_wait_ready (c, 0)) == DIPX_E_TIMEOUT) {
        assert_true (dipx_mono_ms () < deadline);
        fb_serve (fb, 20);
    }
    assert_int_equal (rc, DIPX_E_AUTH_TEMP);
    if (admitting)
        admitting ();
    fb->zap_status = 200;
    deadline = dipx_mono_ms () + (uint64_t) deadline_ms;
    while ((rc = dipx_client_wait_ready (c, 20)) != 0) {
        assert_true (rc == DIPX_E_AUTH_TEMP || rc == DIPX_E_TIMEOUT);
        assert_true (dipx_mono_ms () < deadline);
        fb_serve (fb, 20);
    }
    return c;
}

/*  A key refused for now is admitted later. Before, once refused, every
    call returned the refusal without reading anything, and the client
    stayed refused until it was destroyed.  */
static void
test_auth_recovers (void **state)
{
    fb_t fb;
    dipx_client_t *c = s_refused_then_admitted ((fx_t *) *state, &fb, NULL, WAIT_MS);
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

/*  zmq_connect is wrapped (-Wl,--wrap=zmq_connect, client.cmake) so that a
    test can make libdipx's next connects to a tcp:// endpoint fail.  */
int __real_zmq_connect (void *sock, const char *endpoint);
int __wrap_zmq_connect (void *sock, const char *endpoint);
static atomic_int s_connect_fail; /* tcp:// connects still to fail */

int
__wrap_zmq_connect (void *sock, const char *endpoint)
{
    if (strncmp (endpoint, "tcp://", 6) == 0 && atomic_load (&s_connect_fail) > 0) {
        atomic_fetch_sub (&s_connect_fail, 1);
        errno = EMFILE;
        return -1;
    }
    return __real_zmq_connect (sock, endpoint);
}

/*  After a refused key libdipx connects again by itself; if that connect
    fails (out of descriptors, say), it tries again later rather than give
    up for good: one failed connect 1 s after the refusal, then the key is
    admitted and the connect 2 s later reaches the broker.  */
static void
s_fail_next_connect (void)
{
    atomic_store (&s_connect_fail, 1);
}

static void
test_failed_connect_retried (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    dipx_client_t *c = s_refused_then_admitted (fx, &fb, s_fail_next_connect, 2 * WAIT_MS);
    assert_int_equal (atomic_load (&s_connect_fail), 0);
    assert_non_null (strstr (fx->log, "cannot connect to"));
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

/*  zmq_msg_recv is wrapped too: armed, the read after an ACCEPTED on the
    same socket fails, as a broken connection's would.  */
int __real_zmq_msg_recv (zmq_msg_t *msg, void *sock, int flags);
int __wrap_zmq_msg_recv (zmq_msg_t *msg, void *sock, int flags);
static atomic_bool s_recv_fail_armed;
static void *s_recv_fail_sock; /* the socket whose next read fails */

int
__wrap_zmq_msg_recv (zmq_msg_t *msg, void *sock, int flags)
{
    if (s_recv_fail_sock && sock == s_recv_fail_sock) {
        s_recv_fail_sock = NULL;
        errno = ENOTSOCK;
        return -1;
    }
    int rc = __real_zmq_msg_recv (msg, sock, flags);
    dipx_frame_t f;
    if (rc > 0 && atomic_load (&s_recv_fail_armed)
        && dipx_frame_decode ((const uint8_t *) zmq_msg_data (msg), zmq_msg_size (msg), &f) == 0
        && f.cmd == DIPX_CMD_ACCEPTED) {
        atomic_store (&s_recv_fail_armed, false);
        s_recv_fail_sock = sock;
    }
    return rc;
}

/*  dipx_client_send returns its answer when the wait fails after the
    answer came: the wait reads the ACCEPTED and then fails on the next
    read. Before, it returned the wait's error and the answer was lost:
    kept for this call, it never reached dipx_client_result either.  */
static void
test_send_answered_then_wait_failed (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    dipx_client_t *c = s_ready_client (fx, &fb, 0);
    uint8_t id[16];
    randombytes_buf (id, sizeof id);
    dipx_frame_t a = {.cmd = DIPX_CMD_ACCEPTED};
    memcpy (a.u.accepted.id, id, sizeof id);
    a.u.accepted.seq = 7;
    fb_send (&fb, &a); /* written first: the id is the caller's */
    dipx_send_t m = s_message (PEER);
    m.id = id;
    dipx_result_t r;
    atomic_store (&s_recv_fail_armed, true);
    assert_int_equal (dipx_client_send (c, &m, "answered", 8, WAIT_MS, &r), 0);
    assert_null (s_recv_fail_sock); /* the read did fail */
    assert_non_null (strstr (fx->log, "cannot read the broker connection"));
    assert_memory_equal (r.id, id, sizeof id);
    assert_int_equal (r.seq, 7);
    /* Returned once: not again through dipx_client_result.  */
    assert_int_equal (dipx_client_result (c, 100, &r), DIPX_E_TIMEOUT);
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

/*  A broker that admits a suspended agency's key and refuses its HELLO.  */
static void
test_hello_refused (void **state)
{
    fx_t *fx = (fx_t *) *state;
    fb_t fb;
    fb_new (&fb, fx, 0);
    dipx_options_t o = s_options (fx, fb.endpoint, 0);
    dipx_client_t *c = NULL;
    assert_int_equal (dipx_client_new (&o, &c), 0);
    dipx_frame_t f;
    fb_expect (&fb, c, DIPX_CMD_HELLO, &f);
    dipx_frame_t err = {.cmd = DIPX_CMD_ERROR};
    err.u.error.code = -DIPX_E_SENDER_INACTIVE;
    err.u.error.cmd = DIPX_CMD_HELLO;
    snprintf (err.u.error.reason, sizeof err.u.error.reason, "agency suspended");
    fb_send (&fb, &err);
    assert_int_equal (dipx_client_wait_ready (c, WAIT_MS), DIPX_E_AUTH_TEMP);
    /* HELLO is asked again on the same connection, backing off: refused
       while the agency stays suspended, then welcomed once an operator has
       lifted the suspension, without a new connection.  */
    fb_expect (&fb, c, DIPX_CMD_HELLO, &f);
    fb_send (&fb, &err);
    uint64_t t0 = dipx_mono_ms ();
    fb_expect (&fb, c, DIPX_CMD_HELLO, &f);
    assert_true (dipx_mono_ms () - t0 >= 150); /* 200 ms: the back-off doubled */
    fb_welcome (&fb, 0);
    /* wait_ready reports the standing refusal until the WELCOME is read.  */
    int rc;
    while ((rc = dipx_client_wait_ready (c, 10)) == DIPX_E_AUTH_TEMP)
        assert_true (dipx_mono_ms () - t0 < WAIT_MS);
    assert_int_equal (rc, 0);
    /* Any other refusal of HELLO is returned by wait_ready as it is.  */
    err.u.error.code = -DIPX_E_VERSION;
    fb_send (&fb, &err);
    fb_unbind (&fb); /* a new connection clears the first error */
    fb_bind (&fb);
    fb_expect (&fb, c, DIPX_CMD_HELLO, &f);
    fb_send (&fb, &err);
    assert_int_equal (dipx_client_wait_ready (c, WAIT_MS), DIPX_E_VERSION);
    dipx_client_destroy (&c);
    fb_destroy (&fb);
}

int
main (void)
{
    if (sodium_init () < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_options, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_local_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_seal_opens, s_setup, s_teardown),
        cmocka_unit_test (test_subject_ref),
        cmocka_unit_test (test_id_hex),
        cmocka_unit_test_setup_teardown (test_session_and_send, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lost_answer_resent, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_answer_before_write_ignored, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lost_answers_bounded, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_deliver_ack, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_deliver_rejected, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_deliveries_held_by_window, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_recv_timeout_under_bad_deliveries, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_broker_restart, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_no_send_before_hello, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_max_frame, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_auth_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_auth_temporary, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_auth_silent, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_auth_recovers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stray_hello_error, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_protocol_failure_retried, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_failed_connect_retried, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_send_answered_then_wait_failed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_control_queue_full_recovers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_fd_timers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_hello_refused, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
