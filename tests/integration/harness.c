/*  harness.c - see harness.h.  */
#include "testutil.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "dipx_card.h"
#include "dipx_frame.h"
#include "dipx_envelope.h"
#include "dipx_registry.h"

static const char *
s_env (const char *name)
{
    const char *v = getenv (name);
    if (!v) {
        fprintf (stderr, "harness: %s is not set (run under ctest)\n", name);
        exit (1);
    }
    return v;
}

/*  The watchdog: a test case still running H_WATCHDOG_S after its
    harness_init (ctest would kill it at 300 s, with nothing to show why)
    prints the stacks of the test program and of its broker, kills the
    broker and aborts.
    DIPX_TEST_WATCHDOG_S sets the seconds, 0 turns it off (the 20-kill crash
    run). The command is built outside the handler, which only forks, runs
    it and waits.  */
#define H_WATCHDOG_S 240
static char s_watch_cmd[1600];

/*  Writes a shell command that shows process pid's threads on stdout: first
    what needs no attaching, each thread's state and wait channel (state D
    waits for storage, not for dipx, and gdb cannot attach to it either,
    hence its time limit), then their stacks (gdb). Returns snprintf's.  */
static int
s_threads_cmd (char *out, size_t size, int pid)
{
    return snprintf (out, size,
                     "for t in /proc/%d/task/*; do echo \"$t: $(grep State: $t/status) "
                     "wchan=$(cat $t/wchan)\"; done; timeout -s KILL 10 gdb -p %d -batch -ex "
                     "'thread apply all bt' 2>/dev/null || echo '(no stacks: gdb missing or "
                     "timed out)'",
                     pid, pid);
}

static void
s_watch_set (pid_t broker)
{
    char own[400], child[900] = "", cmd[sizeof s_watch_cmd];
    s_threads_cmd (own, sizeof own, (int) getpid ());
    if (broker > 0) {
        char threads[400];
        s_threads_cmd (threads, sizeof threads, (int) broker);
        snprintf (child, sizeof child, "; echo 'harness: its broker %d:'; %s; kill -KILL %d",
                  (int) broker, threads, (int) broker);
    }
    snprintf (cmd, sizeof cmd,
              "echo 'harness: test case still running after its watchdog; its threads:'; %s%s",
              own, child);
    /* The handler must not read it half-written.  */
    sigset_t alrm, old;
    sigemptyset (&alrm);
    sigaddset (&alrm, SIGALRM);
    sigprocmask (SIG_BLOCK, &alrm, &old);
    memcpy (s_watch_cmd, cmd, sizeof s_watch_cmd);
    sigprocmask (SIG_SETMASK, &old, NULL);
}

static void
s_watchdog (int sig)
{
    (void) sig;
    /* _Fork, not fork: fork takes malloc's locks, and the alarm may have
       interrupted a malloc on this thread.  */
    pid_t p = _Fork ();
    if (p == 0) {
        dup2 (STDERR_FILENO, STDOUT_FILENO);
        execl ("/bin/sh", "sh", "-c", s_watch_cmd, (char *) NULL);
        _exit (127);
    }
    if (p > 0)
        while (waitpid (p, NULL, 0) < 0 && errno == EINTR)
            ;
    abort ();
}

static void
s_watch_start (void)
{
    const char *v = getenv ("DIPX_TEST_WATCHDOG_S");
    unsigned secs = v ? (unsigned) strtoul (v, NULL, 10) : H_WATCHDOG_S;
    s_watch_set (0);
    /* gdb, started by this program, may attach to it (and to the broker,
       below) under Yama's ptrace_scope=1 too.  */
    prctl (PR_SET_PTRACER, PR_SET_PTRACER_ANY);
    signal (SIGALRM, secs ? s_watchdog : SIG_DFL);
    alarm (secs);
}

int
harness_init (harness_t *h, const char *extra)
{
    memset (h, 0, sizeof *h);
    h->port_hold = -1;
    s_watch_start ();
    if (dipx_test_mkdtemp (h->dir, sizeof h->dir, "dipx-test") != 0)
        return -1;
    snprintf (h->config, sizeof h->config, "%s/dipxd.conf", h->dir);
    snprintf (h->data, sizeof h->data, "%s/data", h->dir);
    snprintf (h->registry, sizeof h->registry, "%s/registry", h->dir);
    snprintf (h->log, sizeof h->log, "%s/dipxd.log", h->dir);
    size_t n = extra ? strlen (extra) : 0;
    if (n >= sizeof h->extra)
        return -1;
    memcpy (h->extra, extra ? extra : "", n + 1);
    h->broker = dipx_identity_generate ("broker.test");
    char path[600];
    snprintf (path, sizeof path, "%s/broker.secret", h->dir);
    if (!h->broker || dipx_identity_save (h->broker, path) != 0)
        return -1;
    dipx_key_to_z85 (dipx_identity_enc_pk (h->broker), h->broker_key);
    return 0;
}

h_agency_t *
harness_add (harness_t *h, const char *id, int type, int status)
{
    if (h->nagencies == H_MAX_AGENCIES)
        return NULL;
    h_agency_t *a = &h->agencies[h->nagencies];
    char path[sizeof a->secret];
    if (strlen (id) >= sizeof a->id
        || snprintf (path, sizeof path, "%s/%s.secret", h->dir, id) >= (int) sizeof path)
        return NULL;
    memcpy (a->id, id, strlen (id) + 1);
    memcpy (a->secret, path, sizeof path);
    a->type = type;
    a->status = status;
    a->identity = dipx_identity_generate (id);
    if (!a->identity || dipx_identity_save (a->identity, a->secret) != 0)
        return NULL;
    h->nagencies++;
    return a;
}

h_agency_t *
harness_agency (harness_t *h, const char *id)
{
    for (int i = 0; i < h->nagencies; i++)
        if (strcmp (h->agencies[i].id, id) == 0)
            return &h->agencies[i];
    return NULL;
}

/*  Writes the agencies' cards to path; with all, every agency as active.  */
static int
s_write_cards (harness_t *h, const char *path, bool all)
{
    dipx_registry_t *reg = dipx_registry_new ();
    int rc = reg ? 0 : -1;
    for (int i = 0; rc == 0 && i < h->nagencies; i++) {
        h_agency_t *a = &h->agencies[i];
        int status = all ? DIPX_STATUS_ACTIVE : a->status;
        if (status < 0)
            continue; /* an agency the broker has never heard of */
        dipx_card_t card;
        memset (&card, 0, sizeof card);
        snprintf (card.name, sizeof card.name, "Test agency %s", a->id);
        card.type = a->type;
        snprintf (card.org, sizeof card.org, "ORG%d", i);
        snprintf (card.area, sizeof card.area, "AREA1");
        card.valid_from = a->valid_from ? a->valid_from : 1700000000;
        card.valid_until = a->valid_until ? a->valid_until : 4000000000;
        char *text = NULL;
        size_t len;
        rc = dipx_card_make (a->identity, &card, &text, &len);
        free (text);
        if (rc == 0)
            rc = dipx_registry_add (reg, &card);
        if (rc == 0 && status != DIPX_STATUS_ACTIVE)
            rc = dipx_registry_set_status (reg, a->id, status);
    }
    if (rc == 0)
        rc = dipx_registry_save (reg, path);
    dipx_registry_destroy (&reg);
    return rc ? -1 : 0;
}

int
harness_write_registry (harness_t *h)
{
    return s_write_cards (h, h->registry, false);
}

int
harness_write_peers (harness_t *h)
{
    snprintf (h->peers, sizeof h->peers, "%s/peers", h->dir);
    return s_write_cards (h, h->peers, true);
}

static int
s_write_config (harness_t *h, const char *endpoint)
{
    FILE *f = fopen (h->config, "w");
    if (!f)
        return -1;
    fprintf (f,
             "[dipxd]\nendpoint = %s\ndata_dir = %s\nidentity = %s/broker.secret\n"
             "registry = %s\npolicy = %s/broker/policy.conf\nmap_size_mb = 64\n"
             "log_level = debug\n%s\n",
             endpoint, h->data, h->dir, h->registry, s_env ("DIPX_SOURCE_DIR"), h->extra);
    return fclose (f) == 0 ? 0 : -1;
}

/*  While its broker is down, the harness keeps the broker's TCP port bound,
    so that the restart can have it back: otherwise another test running
    meanwhile could take it with a bind to port 0 or as a connection's local
    port. The socket has SO_REUSEADDR and never listens. Linux never picks a
    port that any socket is bound to for either of those, and lets an
    explicit bind with SO_REUSEADDR (as libzmq's listener makes) share the
    port with it, so the broker binds and listens with it still held. Best
    effort: if the bind fails, the port is merely not held.  */
static void
s_port_hold (harness_t *h)
{
    int port;
    if (sscanf (h->endpoint, "tcp://127.0.0.1:%d", &port) != 1 || port <= 0 || port > 65535)
        return;
    if (h->port_hold >= 0 && h->port_held == port)
        return;
    if (h->port_hold >= 0)
        close (h->port_hold);
    h->port_hold = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) port)};
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (h->port_hold >= 0
        && (setsockopt (h->port_hold, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0
            || bind (h->port_hold, (struct sockaddr *) &a, sizeof a) != 0)) {
        close (h->port_hold);
        h->port_hold = -1;
    }
    h->port_held = port;
}

int
harness_start (harness_t *h)
{
    if (harness_write_registry (h) != 0)
        return -1;
    if (s_write_config (h, h->endpoint[0] ? h->endpoint : "tcp://127.0.0.1:*") != 0)
        return -1;
    int fds[2];
    if (pipe (fds) != 0)
        return -1;
    char exe[600], fdarg[16];
    if (h->exe && h->exe[0] == '/')
        snprintf (exe, sizeof exe, "%s", h->exe);
    else
        snprintf (exe, sizeof exe, "%s/%s", s_env ("DIPX_BUILD_DIR"),
                  h->exe ? h->exe : "broker/dipxd");
    snprintf (fdarg, sizeof fdarg, "%d", fds[1]);
    /* The child's environment, built before fork: only async-signal-safe
       calls between fork and exec (a test may have threads).  */
    char *envp[1024];
    size_t ne = 0;
    for (int i = 0; i < H_MAX_ENV && h->env[i]; i++)
        envp[ne++] = (char *) h->env[i];
    for (char **e = environ; *e && ne < sizeof envp / sizeof *envp - 1; e++) {
        bool replaced = false;
        for (int i = 0; i < H_MAX_ENV && h->env[i]; i++) {
            size_t n = strcspn (h->env[i], "=");
            replaced |= strncmp (*e, h->env[i], n + 1) == 0;
        }
        if (!replaced)
            envp[ne++] = *e;
    }
    envp[ne] = NULL;
    pid_t pid = fork ();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close (fds[0]);
        /* The broker dies with the test (a failed assertion never leaves
           it running), and holds none of the test's output pipes.  */
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        prctl (PR_SET_PTRACER, PR_SET_PTRACER_ANY);
        int log = open (h->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (log >= 0) {
            dup2 (log, 1);
            dup2 (log, 2);
        }
        if (h->fsize_limit > 0) { /* a disk that fills up at this size */
            struct rlimit rl = {(rlim_t) h->fsize_limit, RLIM_INFINITY};
            setrlimit (RLIMIT_FSIZE, &rl);
        }
        char *argv[] = {(char *) "dipxd", (char *) "--config", h->config, (char *) "--ready-fd",
                        fdarg, NULL};
        execve (exe, argv, envp);
        _exit (127);
    }
    close (fds[1]);
    h->pid = pid;
    s_watch_set (pid);
    char line[600];
    size_t len = 0;
    struct pollfd p = {fds[0], POLLIN, 0};
    while (len < sizeof line - 1 && poll (&p, 1, 20000) > 0) {
        ssize_t n = read (fds[0], line + len, sizeof line - 1 - len);
        if (n <= 0)
            break;
        len += (size_t) n;
        if (memchr (line, '\n', len))
            break;
    }
    close (fds[0]);
    line[len] = 0;
    char ep[256], key[64];
    if (sscanf (line, "READY %255s %63s", ep, key) != 2) {
        fprintf (stderr, "harness: dipxd did not become ready (see %s)\n", h->log);
        harness_stop (h, SIGKILL);
        return -1;
    }
    snprintf (h->endpoint, sizeof h->endpoint, "%s", ep);
    if (strcmp (key, h->broker_key) != 0)
        return -1;
    return 0;
}

#define H_STOP_MS 60000 /* a broker stops in well under a second */

int
harness_stop (harness_t *h, int sig)
{
    if (h->pid <= 0)
        return 0;
    kill (h->pid, sig);
    if (!harness_wait_exit (h, H_STOP_MS)) {
        /* A broker that does not stop would hang the test until ctest kills
           it, with nothing to show why: show its threads, then kill it.  */
        fprintf (stderr, "harness: broker %d still running %d s after signal %d; its threads:\n",
                 (int) h->pid, H_STOP_MS / 1000, sig);
        char cmd[600] = "{ ";
        int n = s_threads_cmd (cmd + 2, sizeof cmd - 2, (int) h->pid);
        if (n > 0 && (size_t) n + 2 < sizeof cmd - 8) {
            strcat (cmd, "; } 1>&2");
            if (system (cmd) != 0)
                fprintf (stderr, "harness: (could not show them)\n");
        }
        fprintf (stderr, "harness: its log: %s\n", h->log);
        kill (h->pid, SIGKILL);
        while (waitpid (h->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        /* No status to return could fail every caller (WEXITSTATUS of a
           signal's status is 0): end the test program.  */
        abort ();
    }
    return h->last_status;
}

int
harness_wait_exit (harness_t *h, int timeout_ms)
{
    if (h->pid <= 0)
        return 1;
    int status = 0;
    pid_t r = waitpid (h->pid, &status, WNOHANG);
#ifdef SYS_pidfd_open
    int pfd = r == 0 ? (int) syscall (SYS_pidfd_open, h->pid, 0) : -1;
#else
    int pfd = -1;
#endif
    if (pfd >= 0) {
        struct pollfd p = {pfd, POLLIN, 0};
        while (poll (&p, 1, timeout_ms) < 0 && errno == EINTR)
            ;
        close (pfd);
        r = waitpid (h->pid, &status, WNOHANG);
    } else if (r == 0) {
        /* No pidfd (kernel < 5.3): look every 10 ms.  */
        for (int waited = 0; r == 0 && waited < timeout_ms; waited += 10) {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep (&ts, NULL);
            r = waitpid (h->pid, &status, WNOHANG);
        }
    }
    if (r != h->pid)
        return 0;
    h->pid = 0;
    h->last_status = status;
    s_watch_set (0); /* its pid may be another process's soon */
    s_port_hold (h);
    return 1;
}

void
harness_fini (harness_t *h)
{
    harness_stop (h, SIGTERM);
    if (getenv ("DIPX_KEEP_TEST_DIR"))
        fprintf (stderr, "harness: kept %s\n", h->dir);
    else if (h->dir[0])
        dipx_test_rmtree (h->dir);
    for (int i = 0; i < h->nagencies; i++)
        dipx_identity_destroy (&h->agencies[i].identity);
    dipx_identity_destroy (&h->broker);
    if (h->port_hold >= 0)
        close (h->port_hold);
    h->port_hold = -1;
    alarm (0);
}

int
harness_client (harness_t *h, const char *id, uint32_t window, dipx_client_t **out)
{
    h_agency_t *a = harness_agency (h, id);
    if (!a)
        return DIPX_E_INVAL;
    dipx_options_t o = {
        .endpoint = h->endpoint,
        .identity = a->secret,
        .broker_key = h->broker_key,
        .peers = h->peers[0] ? h->peers : h->registry,
        .window = window,
    };
    return dipx_client_new (&o, out);
}

void *
harness_raw (harness_t *h, void *ctx, const char *id)
{
    return harness_raw_buffered (h, ctx, id, 0, 0);
}

static void *
s_raw (harness_t *h, void *ctx, const char *id, int rcvhwm, int rcvbuf, int sndhwm)
{
    h_agency_t *a = harness_agency (h, id);
    void *s = zmq_socket (ctx, ZMQ_DEALER);
    int linger = 0;
    if (!a || !s)
        return NULL;
    zmq_setsockopt (s, ZMQ_LINGER, &linger, sizeof linger);
    if (rcvhwm)
        zmq_setsockopt (s, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    if (rcvbuf)
        zmq_setsockopt (s, ZMQ_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (sndhwm)
        zmq_setsockopt (s, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
    zmq_setsockopt (s, ZMQ_CURVE_SERVERKEY, h->broker_key, 40);
    zmq_setsockopt (s, ZMQ_CURVE_PUBLICKEY, dipx_identity_enc_pk (a->identity), 32);
    zmq_setsockopt (s, ZMQ_CURVE_SECRETKEY, dipx_identity_enc_sk (a->identity), 32);
    if (zmq_connect (s, h->endpoint) != 0) {
        zmq_close (s);
        return NULL;
    }
    return s;
}

void *
harness_raw_buffered (harness_t *h, void *ctx, const char *id, int rcvhwm, int rcvbuf)
{
    return s_raw (h, ctx, id, rcvhwm, rcvbuf, 0);
}

void *
harness_raw_sender (harness_t *h, void *ctx, const char *id, int sndhwm)
{
    return s_raw (h, ctx, id, 0, 0, sndhwm);
}

void
harness_shim (harness_t *h)
{
    snprintf (h->shim_env[0], sizeof h->shim_env[0], "LD_PRELOAD=%s/tests/libdipx_fi_io.so",
              s_env ("DIPX_BUILD_DIR"));
    const char *asan = getenv ("ASAN_OPTIONS");
    snprintf (h->shim_env[1], sizeof h->shim_env[1], "ASAN_OPTIONS=%s%sverify_asan_link_order=0",
              asan ? asan : "", asan && *asan ? ":" : "");
    h->env[0] = h->shim_env[0];
    h->env[1] = h->shim_env[1];
}

int
harness_raw_hello (void *sock, uint32_t window, dipx_frame_t *answer, int timeout_ms)
{
    dipx_frame_t f = {.cmd = DIPX_CMD_HELLO};
    f.u.hello.window = window;
    uint8_t *out, buf[512];
    size_t out_len;
    if (dipx_frame_encode (&f, &out, &out_len) != 0)
        return -1;
    int sent = zmq_send (sock, out, out_len, 0);
    free (out);
    if (sent != (int) out_len)
        return -1;
    int n = harness_raw_recv (sock, buf, sizeof buf, timeout_ms);
    return n > 0 && dipx_frame_decode (buf, (size_t) n, answer) == 0 ? 0 : -1;
}

int
harness_raw_recv (void *sock, uint8_t *buf, size_t cap, int timeout_ms)
{
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll (&it, 1, timeout_ms) <= 0)
        return -1;
    int n = zmq_recv (sock, buf, cap, 0);
    return n < 0 || (size_t) n > cap ? -1 : n;
}

/*  Runs the broker's audit dump and counts the lines that contain every
    needle of ap; the first max of their "at" values go to at (may be NULL).  */
static int
s_audit_scan (harness_t *h, uint64_t *at, int max, va_list ap)
{
    char cmd[1400];
    snprintf (cmd, sizeof cmd, "%s/broker/dipxd audit --data %s", s_env ("DIPX_BUILD_DIR"),
              h->data);
    FILE *p = popen (cmd, "r");
    if (!p)
        return -1;
    char line[8192];
    int count = 0;
    while (fgets (line, sizeof line, p)) {
        va_list aq;
        va_copy (aq, ap);
        bool all = true;
        const char *needle;
        while ((needle = va_arg (aq, const char *)) != NULL)
            if (!strstr (line, needle))
                all = false;
        va_end (aq);
        if (!all)
            continue;
        const char *a = strstr (line, "\"at\":");
        if (at && count < max)
            at[count] = a ? strtoull (a + 5, NULL, 10) : 0;
        count++;
    }
    pclose (p);
    return count;
}

int
harness_audit_count (harness_t *h, ...)
{
    va_list ap;
    va_start (ap, h);
    int n = s_audit_scan (h, NULL, 0, ap);
    va_end (ap);
    return n;
}

int
harness_audit_times (harness_t *h, uint64_t *at, int max, ...)
{
    va_list ap;
    va_start (ap, max);
    int n = s_audit_scan (h, at, max, ap);
    va_end (ap);
    return n;
}

dipx_send_t
harness_dt1 (const char *to, const uint8_t *subject)
{
    dipx_send_t m = {
        .to = to,
        .type = "drug_test_result",
        .subject = subject,
        .basis = DIPX_BASIS_STATUTE,
        .ref = "PACE s.63B",
        .purpose = DIPX_PURPOSE_LAW_ENFORCEMENT,
        .categories = (1u << DIPX_CAT_IDENTIFIERS) | (1u << DIPX_CAT_TEST_RESULTS),
    };
    return m;
}

dipx_client_t *
harness_ready_client (harness_t *h, const char *id, uint32_t window, int timeout_ms)
{
    dipx_client_t *c = NULL;
    if (harness_client (h, id, window, &c) != 0)
        return NULL;
    if (dipx_client_wait_ready (c, timeout_ms) != 0)
        dipx_client_destroy (&c);
    return c;
}

int
harness_round_trip (dipx_client_t *from, dipx_client_t *to, const char *to_id, int timeout_ms)
{
    uint8_t subject[DIPX_SUBJECT_BYTES] = {1}, body[64];
    randombytes_buf (body, sizeof body);
    dipx_send_t m = harness_dt1 (to_id, subject);
    dipx_result_t r;
    dipx_message_t *msg = NULL;
    const char *failed = NULL;
    if (dipx_client_send (from, &m, body, sizeof body, timeout_ms, &r) != 0)
        failed = "send";
    else if (dipx_client_recv (to, timeout_ms, &msg) != 0)
        failed = "receive";
    else if (memcmp (dipx_message_id (msg), r.id, DIPX_MESSAGE_ID_BYTES) != 0
             || dipx_message_body_len (msg) != sizeof body
             || memcmp (dipx_message_body (msg), body, sizeof body) != 0)
        failed = "the message received";
    else if (dipx_client_ack (to, msg) != 0)
        failed = "ack";
    dipx_message_destroy (&msg);
    if (failed)
        fprintf (stderr, "harness: round trip to %s: %s failed\n", to_id, failed);
    return failed ? -1 : 0;
}

int
harness_start_pair (harness_t *h, dipx_client_t **police, dipx_client_t **cjit)
{
    *police = *cjit = NULL;
    if (!harness_add (h, "police.test", DIPX_AGENCY_POLICE, DIPX_STATUS_ACTIVE)
        || !harness_add (h, "cjit.test", DIPX_AGENCY_CJIT, DIPX_STATUS_ACTIVE)
        || harness_start (h) != 0)
        return -1;
    *police = harness_ready_client (h, "police.test", 0, 20000);
    *cjit = harness_ready_client (h, "cjit.test", 16, 20000);
    if (*police && *cjit)
        return 0;
    dipx_client_destroy (police);
    dipx_client_destroy (cjit);
    return -1;
}

int
harness_port (const harness_t *h)
{
    const char *colon = strrchr (h->endpoint, ':');
    return colon ? atoi (colon + 1) : -1;
}

long
harness_broker_kb (const harness_t *h, const char *field)
{
    char path[64], line[256];
    snprintf (path, sizeof path, "/proc/%d/status", (int) h->pid);
    FILE *f = fopen (path, "r");
    long kb = -1;
    size_t len = strlen (field);
    while (f && fgets (line, sizeof line, f))
        if (strncmp (line, field, len) == 0 && line[len] == ':')
            kb = atol (line + len + 1);
    if (f)
        fclose (f);
    return kb;
}

size_t
harness_zmtp_greeting (uint8_t g[64], const char *mechanism)
{
    memset (g, 0, 64);
    g[0] = 0xff; /* signature: 0xff, 8 bytes, 0x7f */
    g[9] = 0x7f;
    g[10] = 3; /* version 3.0 */
    g[11] = 0;
    memcpy (g + 12, mechanism, strlen (mechanism));
    return 64;
}

long
harness_log_size (const harness_t *h)
{
    struct stat st;
    return stat (h->log, &st) == 0 ? (long) st.st_size : 0;
}

int
harness_log_count (const harness_t *h, long from, const char *needle)
{
    FILE *f = fopen (h->log, "r");
    if (!f)
        return 0;
    int count = 0;
    char line[4096];
    if (fseek (f, from, SEEK_SET) == 0)
        while (fgets (line, sizeof line, f))
            count += strstr (line, needle) != NULL;
    fclose (f);
    return count;
}

int
harness_log_wait (const harness_t *h, long from, const char *needle, int timeout_ms)
{
    /* Watch first, then look: a line written in between still wakes us.
       Without inotify (its per-user instances are shared by every
       container of a host), look every 20 ms instead.  */
    int in = inotify_init1 (IN_CLOEXEC | IN_NONBLOCK);
    if (in >= 0 && inotify_add_watch (in, h->log, IN_MODIFY) < 0) {
        close (in);
        in = -1;
    }
    if (in < 0) {
        static bool said;
        if (!said)
            fprintf (stderr, "harness: no inotify (%s): the log is read every 20 ms\n",
                     strerror (errno));
        said = true;
    }
    uint64_t deadline = dipx_mono_ms () + (uint64_t) timeout_ms;
    int rc = -1;
    for (;;) {
        if (harness_log_count (h, from, needle) > 0) {
            rc = 0;
            break;
        }
        uint64_t now = dipx_mono_ms ();
        int wait = (int) (deadline - now);
        struct pollfd p = {in, POLLIN, 0}; /* fd -1: poll only sleeps */
        if (now >= deadline
            || (poll (&p, 1, in < 0 && wait > 20 ? 20 : wait) < 0 && errno != EINTR))
            break;
        char buf[4096];
        while (in >= 0 && read (in, buf, sizeof buf) > 0)
            ;
    }
    if (in >= 0)
        close (in);
    return rc;
}
