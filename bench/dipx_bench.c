/*  dipx_bench.c - dipx-bench: drives a real dipxd through libdipx and reports
    throughput, latency, CPU per message, disk per message and memory.

        dipx-bench [options]            start a private broker and measure
        dipx-bench --endpoint EP --broker-key KEY --identity-dir DIR [...]
                                        measure an existing broker
        dipx-bench --make-identities DIR [--senders S --receivers R]
                                        write the identities and registry that
                                        --identity-dir expects

    Run `dipx-bench --help` for the options; bench/run.sh runs the standard set.

    Design. One thread per sender and per receiver, each with its own client
    (a client is single-threaded). The main thread owns the broker fixture,
    samples the broker's CPU (/proc/<pid>/stat) and memory (/proc/<pid>/status)
    and the client process's CPU (getrusage) around the measured window, which
    opens when every thread has passed a start barrier and closes when they
    have all been joined.

    A sender keeps at most --inflight posts unanswered (dipx_client_post, or
    dipx_client_post_sealed of envelopes sealed before the window in replay
    mode) and collects the ACCEPTEDs with dipx_client_result. With --rate it
    paces open-loop: post k of a sender is due at start + k / (rate / senders)
    and is posted at once when late, so a slow broker shows as latency rather
    than as a lower offered load.

    Latency is end to end, post to receive, on one machine's CLOCK_MONOTONIC.
    In live mode the sender writes the post time into the first 8 bytes of
    the body before sealing it. A replayed envelope was sealed before the
    window, so it cannot carry its post time: its body carries its sender and
    index instead, and the receiver looks the post time up in the sender's
    table (post_ns), written just before the post.

    With --receive ack (replay only) the receivers are bench_ackonly
    connections: they acknowledge each delivery (signed ACKs, batched as
    libdipx batches them) without verifying or opening it, so they cannot
    read the body; they find the post time by the message id instead, in a
    table (ids) filled as the envelopes are sealed.

    Body layout (little-endian): [0,8) post time ns or 0, [8,16) run nonce,
    [16,20) sender index, [20,28) message index, then random filler. The nonce
    lets a run against a shared broker ignore stale messages from another.

    Idle connections (--idle-agencies N) come from helper processes forked
    before any ZeroMQ context or thread exists in this one; each holds up to
    --idle-per-helper raw CURVE DEALER sockets (two descriptors each: the TCP
    connection and the socket's mailbox), sends HELLO on each and waits for
    the WELCOMEs, connecting in waves so the broker's ZAP handler and its
    5 s handshake timeout are not swamped. A libdipx client per agency would
    cost two threads each (its private context), so raw sockets stand in for
    them, with libdipx's heartbeat settings (--idle-heartbeat), because
    heartbeats are most of what an idle connection costs the broker. With
    them connected, the broker's CPU is sampled for S_IDLE_HOLD_NS while
    nothing else happens, then S_ROUNDTRIPS send-receive-ack round trips are
    timed.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <zmq.h>

#include "bench_ackonly.h"
#include "bench_util.h"
#include "dipx.h"
#include "dipx_card.h"
#include "dipx_envelope.h"
#include "dipx_fixture.h"
#include "dipx_frame.h"
#include "dipx_identity.h"
#include "dipx_registry.h"

#ifndef DIPX_BENCH_DIPXD
#define DIPX_BENCH_DIPXD "dipxd"
#endif
#ifndef DIPX_BENCH_POLICY
#define DIPX_BENCH_POLICY "/etc/dipx/policy.conf"
#endif

#define S_BODY_HEAD 28           /* bytes of the body layout above */
#define S_STALL_S 30.0           /* no progress for this long: the run failed */
#define S_READY_MS 20000         /* client and broker start-up deadline */
#define S_IDLE_PER_HELPER 4000   /* most sockets per helper: 8,000 descriptors */
#define S_IDLE_HELPERS 64        /* most helper processes */
#define S_IDLE_WAVE_MS 20000     /* a wave's deadline */
#define S_IDLE_HOLD_NS 5000000000ull /* broker CPU is sampled over this, idle */
#define S_ROUNDTRIPS 200         /* round trips measured beside idle connections */
#define S_MAX_THREADS 64         /* senders + receivers */

typedef enum { S_LIVE, S_REPLAY } s_mode_t;

typedef struct {
    int senders;              /* sender agencies (threads) */
    int receivers;            /* receiver agencies (threads) */
    size_t payload;           /* body bytes */
    uint64_t messages;        /* total to send; 0 with --seconds = unbounded */
    double seconds;           /* run length; 0 = until messages are sent */
    double rate;              /* msg/s total; 0 = as fast as possible */
    int mode;                 /* s_mode_t */
    bool ack_only;            /* --receive ack: receivers neither verify nor open */
    int inflight;             /* unanswered posts per sender */
    int window;               /* receiver window */
    int verify_threads;       /* broker config */
    int batch;                /* broker config */
    uint64_t prequeue;        /* messages queued to an idle agency first */
    uint64_t subjects;        /* distinct subjects drawn from; 0 = new each message */
    bool restart;             /* measure restart times after the run */
    bool drain;               /* after restart, drain the prequeued messages */
    int idle;                 /* idle agencies to connect */
    int idle_window;          /* window in their HELLO */
    int idle_wave;            /* handshakes in flight per helper process */
    int idle_per_helper;      /* sockets per helper process */
    int idle_heartbeat;       /* their ZMTP heartbeat, ms (libdipx: 10000); 0 = none */
    bool micro;               /* measure per-operation costs */
    const char *json;         /* JSON output file, or NULL */
    const char *endpoint;     /* external broker, or NULL */
    const char *broker_key;   /* its key */
    const char *identity_dir; /* its agencies' secret files and peers */
    int broker_pid;           /* its pid, for CPU and memory; 0 = unknown */
    const char *data_dir;     /* its LMDB directory, for disk figures */
    const char *make_ids;     /* --make-identities DIR */
    const char *dipxd;        /* broker executable */
    const char *policy;       /* policy file */
    const char *tmpdir;       /* where the private broker lives */
    bool keep;                /* keep its directory */
    bool quiet;               /* no progress lines */
} s_opts_t;

/*  With --receive ack: message id -> (sender, index), for a receiver that
    does not open a message to find its post time. Open addressing, filled
    before the run and read-only during it.  */
typedef struct {
    uint8_t id[DIPX_ID_BYTES];
    uint32_t sender; /* sender index + 1; 0 = empty slot */
    uint64_t k;      /* message index */
} s_idslot_t;

typedef struct {
    s_idslot_t *slots;
    size_t mask; /* slots - 1, a power of two minus one */
} s_idmap_t;

/*  What every sender and receiver thread shares.  */
typedef struct {
    const s_opts_t *o;               /* options */
    pthread_barrier_t start;         /* opens the measured window */
    uint8_t nonce[8];                /* this run's body marker */
    uint64_t deadline_ns;            /* --seconds: senders stop posting, or 0 */
    _Atomic uint64_t accepted;       /* ACCEPTED, all senders */
    _Atomic uint64_t received;       /* received with this run's nonce */
    _Atomic int senders_left;        /* senders still running */
    _Atomic int abort;               /* a thread failed: everyone stops */
    _Atomic uint64_t **post_ns;      /* replay: post time per sender and index */
    s_idmap_t ids;                   /* --receive ack: where each id's post time is */
} s_run_t;

typedef struct {
    s_run_t *run;          /* shared state */
    int index;             /* sender index */
    dipx_client_t *client; /* its connection */
    uint64_t n;            /* messages to send; UINT64_MAX = until the deadline */
    const char **to;       /* receiver ids, round robin */
    int nto;               /* their number */
    uint8_t **envs;        /* replay: sealed envelopes */
    size_t *env_lens;      /* their lengths */
    /* results */
    uint64_t posted, accepted, refused, receipts;
    uint64_t first_post_ns, last_accept_ns;
    char err[300];         /* first failure */
} s_sender_t;

typedef struct {
    s_run_t *run;           /* shared state, NULL when draining */
    dipx_client_t *client;  /* its connection, or NULL and ... */
    bench_ackonly_t *raw;   /* ... this one (--receive ack) */
    uint64_t expect;        /* stop after this many (drain), or 0 */
    /* results */
    uint64_t received, foreign, redelivered;
    uint64_t last_recv_ns;
    uint64_t *lat_ns;       /* latency samples */
    size_t nlat, lat_cap;
    char err[300];
} s_receiver_t;

/* --- small helpers -------------------------------------------------------- */

static double
s_now_s (void)
{
    return (double) bench_now_ns () / 1e9;
}

static void
s_sleep_ns (uint64_t ns)
{
    struct timespec ts = {(time_t) (ns / 1000000000u), (long) (ns % 1000000000u)};
    while (nanosleep (&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void
s_put_le (uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t) v;
}

static uint64_t
s_get_le (const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/*  A DIP custody flow: police -> cjit, drug test on arrest, statute.  */
static dipx_send_t
s_message (const char *to, const uint8_t *subject)
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

/* --- /proc and rusage ------------------------------------------------------ */

/*  utime + stime of a process, seconds; NAN if unknown.  */
static double
s_proc_cpu (pid_t pid)
{
    if (pid <= 0)
        return NAN;
    char path[64], buf[2048];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen (path, "r");
    if (!f)
        return NAN;
    size_t n = fread (buf, 1, sizeof buf - 1, f);
    fclose (f);
    buf[n] = 0;
    /* The command name may hold spaces: fields are counted after its ')'.  */
    char *p = strrchr (buf, ')');
    if (!p)
        return NAN;
    unsigned long ut = 0, st = 0;
    /* fields 3..15: state ppid pgrp session tty tpgid flags minflt cminflt
       majflt cmajflt utime stime */
    if (sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return NAN;
    return (double) (ut + st) / (double) sysconf (_SC_CLK_TCK);
}

/*  A "Name:   123 kB" line of /proc/<pid>/status, in KiB; -1 if unknown.  */
static long
s_proc_kb (pid_t pid, const char *name)
{
    if (pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *f = fopen (path, "r");
    if (!f)
        return -1;
    long kb = -1;
    size_t len = strlen (name);
    while (fgets (line, sizeof line, f))
        if (strncmp (line, name, len) == 0 && line[len] == ':') {
            kb = strtol (line + len + 1, NULL, 10);
            break;
        }
    fclose (f);
    return kb;
}

/*  Seconds a process's threads ran and waited on a run queue, summed over
    its threads (/proc/<pid>/task/<tid>/schedstat). A large wait means the
    machine was busy: the figures then measure contention, not dipx.  */
static void
s_proc_sched (pid_t pid, double *run, double *wait)
{
    *run = *wait = NAN;
    if (pid <= 0)
        return;
    char path[64];
    snprintf (path, sizeof path, "/proc/%d/task", (int) pid);
    DIR *d = opendir (path);
    if (!d)
        return;
    unsigned long long r = 0, w = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[128];
        snprintf (p, sizeof p, "/proc/%d/task/%.20s/schedstat", (int) pid, e->d_name);
        FILE *f = fopen (p, "r");
        unsigned long long tr, tw;
        if (f && fscanf (f, "%llu %llu", &tr, &tw) == 2) {
            r += tr;
            w += tw;
        }
        if (f)
            fclose (f);
    }
    closedir (d);
    *run = (double) r / 1e9;
    *wait = (double) w / 1e9;
}

static double
s_loadavg (void)
{
    FILE *f = fopen ("/proc/loadavg", "r");
    double l = NAN;
    if (f) {
        if (fscanf (f, "%lf", &l) != 1)
            l = NAN;
        fclose (f);
    }
    return l;
}

static double
s_self_cpu (void)
{
    struct rusage ru;
    getrusage (RUSAGE_SELF, &ru);
    return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6
           + (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

/*  Size of <dir>/data.mdb in bytes; -1 if unknown.  */
static long long
s_mdb_size (const char *dir)
{
    if (!dir)
        return -1;
    char path[600];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    struct stat st;
    return stat (path, &st) == 0 ? (long long) st.st_size : -1;
}

/*  Bytes written to the block device that holds dir (sectors written, field
    7 of /sys/dev/block/MAJ:MIN/stat), or -1 if unknown. The device's count
    is what the disk was asked to write: the pages of each commit, the meta
    pages and the file system's journal. (A process's own write_bytes in
    /proc/<pid>/io counts page-cache dirtying and, on ext4 here, read nine
    times the device's figure.) The count covers every process on the
    device, so it is only meaningful on an otherwise quiet machine.  */
static long long
s_dev_written (const char *dir)
{
    struct stat st;
    if (!dir || stat (dir, &st) != 0)
        return -1;
    char path[96];
    snprintf (path, sizeof path, "/sys/dev/block/%u:%u/stat", major (st.st_dev), minor (st.st_dev));
    FILE *f = fopen (path, "r");
    if (!f)
        return -1;
    unsigned long long sectors;
    int n = fscanf (f, "%*u %*u %*u %*u %*u %*u %llu", &sectors);
    fclose (f);
    return n == 1 ? (long long) (sectors * 512) : -1;
}

/*  The subject of message k: a new random one each time, or with
    --subjects N one of N fixed references (hashes of k mod N, spread over the
    key space as real references are).  */
static void
s_subject (const s_opts_t *o, uint64_t k, uint8_t subject[DIPX_SUBJECT_BYTES])
{
    if (!o->subjects) {
        randombytes_buf (subject, DIPX_SUBJECT_BYTES);
        return;
    }
    uint8_t j[8];
    s_put_le (j, k % o->subjects, 8);
    crypto_generichash (subject, DIPX_SUBJECT_BYTES, j, sizeof j, NULL, 0);
}

/* --- the sender ------------------------------------------------------------ */

static void
s_fill_body (uint8_t *body, size_t len, const s_run_t *run, int sender, uint64_t k, uint64_t ts)
{
    (void) len;
    s_put_le (body, ts, 8);
    memcpy (body + 8, run->nonce, 8);
    s_put_le (body + 16, (uint64_t) sender, 4);
    s_put_le (body + 20, k, 8);
}

static void
s_sender_fail (s_sender_t *s, const char *what, int rc, const char *reason)
{
    if (!s->err[0])
        snprintf (s->err, sizeof s->err, "sender %d: %s: %s%s%s", s->index, what,
                  dipx_strerror (rc), reason && *reason ? ": " : "", reason ? reason : "");
    atomic_store (&s->run->abort, 1);
}

static void
s_sender_answer (s_sender_t *s, const dipx_result_t *r)
{
    if (r->code == 0) {
        s->accepted++;
        s->last_accept_ns = bench_now_ns ();
        atomic_fetch_add (&s->run->accepted, 1);
    } else {
        s->refused++;
        if (!s->err[0])
            snprintf (s->err, sizeof s->err, "sender %d: refused: %s: %s", s->index,
                      dipx_strerror (r->code), r->reason);
    }
}

static void
s_sender_receipts (s_sender_t *s)
{
    dipx_receipt_t r;
    while (dipx_client_receipt (s->client, 0, &r) == 0)
        s->receipts++;
}

static void *
s_sender_main (void *arg)
{
    s_sender_t *s = arg;
    s_run_t *run = s->run;
    const s_opts_t *o = run->o;
    uint8_t *body = malloc (o->payload);
    uint8_t subject[DIPX_SUBJECT_BYTES];
    if (!body) {
        s_sender_fail (s, "body", DIPX_E_NOMEM, NULL);
        pthread_barrier_wait (&run->start);
        goto done;
    }
    randombytes_buf (body, o->payload);
    uint64_t interval = o->rate > 0 ? (uint64_t) (1e9 * o->senders / o->rate) : 0;
    uint64_t outstanding = 0, k = 0, last_progress;
    pthread_barrier_wait (&run->start);
    uint64_t t0 = bench_now_ns ();
    last_progress = t0;
    for (;;) {
        if (atomic_load (&run->abort))
            break;
        dipx_result_t r;
        while (outstanding && dipx_client_result (s->client, 0, &r) == 0) {
            outstanding--;
            s_sender_answer (s, &r);
            last_progress = bench_now_ns ();
        }
        uint64_t now = bench_now_ns ();
        bool more = k < s->n && (!run->deadline_ns || now < run->deadline_ns);
        if (!more && outstanding == 0)
            break;
        if (more && outstanding < (uint64_t) o->inflight) {
            uint64_t due = t0 + k * interval;
            if (interval && now < due) {
                /* Early: wait for answers, or sleep, until the post is due.  */
                uint64_t wait = due - now;
                if (outstanding && wait >= 2000000u) {
                    int rc = dipx_client_result (s->client, (int) (wait / 1000000u) - 1, &r);
                    if (rc == 0) {
                        outstanding--;
                        s_sender_answer (s, &r);
                        last_progress = bench_now_ns ();
                    }
                } else
                    s_sleep_ns (wait);
                continue;
            }
            int rc;
            if (o->mode == S_REPLAY) {
                atomic_store_explicit (&run->post_ns[s->index][k], bench_now_ns (),
                                       memory_order_release);
                rc = dipx_client_post_sealed (s->client, s->envs[k], s->env_lens[k]);
            } else {
                s_subject (o, k, subject);
                dipx_send_t m = s_message (s->to[k % (uint64_t) s->nto], subject);
                s_fill_body (body, o->payload, run, s->index, k, bench_now_ns ());
                rc = dipx_client_post (s->client, &m, body, o->payload, NULL);
            }
            if (rc) {
                s_sender_fail (s, "post", rc, NULL);
                break;
            }
            if (k == 0)
                s->first_post_ns = now;
            k++;
            s->posted++;
            outstanding++;
            continue;
        }
        /* The window is full, or everything is posted: wait for an answer.  */
        int rc = dipx_client_result (s->client, 500, &r);
        if (rc == 0) {
            outstanding--;
            s_sender_answer (s, &r);
            last_progress = bench_now_ns ();
            s_sender_receipts (s);
        } else if (rc != DIPX_E_TIMEOUT) {
            s_sender_fail (s, "result", rc, NULL);
            break;
        } else if ((double) (bench_now_ns () - last_progress) / 1e9 > S_STALL_S) {
            s_sender_fail (s, "no answer", DIPX_E_TIMEOUT, "stalled");
            break;
        }
    }
    s_sender_receipts (s);
done:
    free (body);
    atomic_fetch_sub (&run->senders_left, 1);
    return NULL;
}

/* --- the receiver ---------------------------------------------------------- */

static size_t
s_id_slot (const s_idmap_t *m, const uint8_t id[DIPX_ID_BYTES])
{
    static const uint8_t key[crypto_shorthash_KEYBYTES];
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash (h, id, DIPX_ID_BYTES, key);
    return (size_t) s_get_le (h, 8) & m->mask;
}

static int
s_idmap_init (s_idmap_t *m, uint64_t n)
{
    if (n > SIZE_MAX / sizeof *m->slots / 4)
        return DIPX_E_NOMEM; /* and the doubling below would overflow */
    size_t cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    m->slots = calloc (cap, sizeof *m->slots);
    m->mask = cap - 1;
    return m->slots ? 0 : DIPX_E_NOMEM;
}

static void
s_idmap_put (s_idmap_t *m, const uint8_t id[DIPX_ID_BYTES], int sender, uint64_t k)
{
    size_t i = s_id_slot (m, id);
    while (m->slots[i].sender)
        i = (i + 1) & m->mask;
    memcpy (m->slots[i].id, id, DIPX_ID_BYTES);
    m->slots[i].sender = (uint32_t) sender + 1;
    m->slots[i].k = k;
}

static const s_idslot_t *
s_idmap_get (const s_idmap_t *m, const uint8_t id[DIPX_ID_BYTES])
{
    for (size_t i = s_id_slot (m, id); m->slots[i].sender; i = (i + 1) & m->mask)
        if (memcmp (m->slots[i].id, id, DIPX_ID_BYTES) == 0)
            return &m->slots[i];
    return NULL;
}

/*  Replay: the post time of sender's message k, or 0 if not posted yet.  */
static uint64_t
s_posted_at (const s_run_t *run, uint64_t sender, uint64_t k)
{
    if (sender >= (uint64_t) run->o->senders || !run->post_ns[sender])
        return 0;
    return atomic_load_explicit (&run->post_ns[sender][k], memory_order_acquire);
}

/*  Is a received message one of this run's? Sets *ts to its post time (0 if
    unknown). An opened message says so in its body; an unopened one
    (--receive ack) by its id.  */
static bool
s_ours (const s_run_t *run, const dipx_message_t *msg, const uint8_t *id, uint64_t *ts)
{
    *ts = 0;
    if (!msg) {
        const s_idslot_t *e = s_idmap_get (&run->ids, id);
        if (e)
            *ts = s_posted_at (run, e->sender - 1, e->k);
        return e != NULL;
    }
    const uint8_t *b = dipx_message_body (msg);
    if (dipx_message_body_len (msg) < S_BODY_HEAD || memcmp (b + 8, run->nonce, 8) != 0)
        return false;
    *ts = s_get_le (b, 8);
    if (*ts == 0)
        *ts = s_posted_at (run, s_get_le (b + 16, 4), s_get_le (b + 20, 8));
    return true;
}

static void
s_receiver_sample (s_receiver_t *r, uint64_t lat)
{
    if (r->nlat == r->lat_cap) {
        size_t cap = r->lat_cap ? r->lat_cap * 2 : 4096;
        uint64_t *grown = realloc (r->lat_ns, cap * sizeof *grown);
        if (!grown)
            return;
        r->lat_ns = grown;
        r->lat_cap = cap;
    }
    r->lat_ns[r->nlat++] = lat;
}

/*  Is the run over for this receiver? Drain: when expect messages came.
    A run: when every sender is done and every accepted message arrived.  */
static bool
s_receiver_done (const s_receiver_t *r)
{
    if (!r->run)
        return r->received >= r->expect;
    return atomic_load (&r->run->abort)
           || (atomic_load (&r->run->senders_left) == 0
               && atomic_load (&r->run->received) >= atomic_load (&r->run->accepted));
}

static void *
s_receiver_main (void *arg)
{
    s_receiver_t *r = arg;
    s_run_t *run = r->run;
    if (run)
        pthread_barrier_wait (&run->start);
    uint64_t last_progress = bench_now_ns ();
    while (!s_receiver_done (r)) {
        dipx_message_t *msg = NULL;
        uint8_t id[DIPX_ID_BYTES];
        uint64_t count = 0;
        int rc = r->raw ? bench_ackonly_recv (r->raw, 100, id, &count)
                        : dipx_client_recv (r->client, 100, &msg);
        const char *who = r->raw ? bench_ackonly_id (r->raw) : dipx_client_id (r->client);
        uint64_t now = bench_now_ns ();
        if (rc == DIPX_E_TIMEOUT) {
            if ((double) (now - last_progress) / 1e9 > S_STALL_S) {
                snprintf (r->err, sizeof r->err, "receiver %s: nothing for %.0f s", who,
                          S_STALL_S);
                if (run)
                    atomic_store (&run->abort, 1);
                break;
            }
            continue;
        }
        if (rc) {
            snprintf (r->err, sizeof r->err, "receiver %s: recv: %s", who, dipx_strerror (rc));
            if (run)
                atomic_store (&run->abort, 1);
            break;
        }
        last_progress = now;
        r->last_recv_ns = now;
        if (msg ? dipx_message_is_redelivered (msg) : count > 1)
            r->redelivered++;
        uint64_t ts;
        if (run && s_ours (run, msg, id, &ts)) {
            if (ts && ts <= now)
                s_receiver_sample (r, now - ts);
            r->received++;
            atomic_fetch_add (&run->received, 1);
        } else if (run)
            r->foreign++;
        else
            r->received++;
        if (!msg)
            continue; /* bench_ackonly_recv has queued its ACK */
        rc = dipx_client_ack (r->client, msg);
        dipx_message_destroy (&msg);
        if (rc) {
            snprintf (r->err, sizeof r->err, "receiver %s: ack: %s", who, dipx_strerror (rc));
            if (run)
                atomic_store (&run->abort, 1);
            break;
        }
    }
    int rc = r->raw ? bench_ackonly_flush (r->raw, S_READY_MS) : 0; /* the last ACK, applied */
    if (rc && !r->err[0])
        snprintf (r->err, sizeof r->err, "receiver %s: ack: %s", bench_ackonly_id (r->raw),
                  dipx_strerror (rc));
    return NULL;
}

/* --- clients --------------------------------------------------------------- */

typedef struct {
    const char *endpoint;   /* broker endpoint */
    const char *broker_key; /* its key */
    const char *peers;      /* peers file */
    char dir[512];          /* where <id>.secret files are */
} s_where_t;

static int
s_client (const s_where_t *w, const char *id, uint32_t window, dipx_client_t **out)
{
    char secret[700];
    snprintf (secret, sizeof secret, "%s/%s.secret", w->dir, id);
    dipx_options_t o = {
        .endpoint = w->endpoint,
        .identity = secret,
        .broker_key = w->broker_key,
        .peers = w->peers,
        .window = window,
    };
    int rc = dipx_client_new (&o, out);
    if (rc == 0 && (rc = dipx_client_wait_ready (*out, S_READY_MS)) != 0)
        dipx_client_destroy (out);
    if (rc)
        fprintf (stderr, "dipx-bench: client %s: %s\n", id, dipx_strerror (rc));
    return rc;
}

static void
s_sender_id (int i, char *out, size_t size)
{
    snprintf (out, size, "police.bench.%d", i + 1);
}

static void
s_receiver_id (int i, char *out, size_t size)
{
    snprintf (out, size, "cjit.bench.%d", i + 1);
}

#define S_FILL_ID "police.bench.fill"
#define S_SINK_ID "cjit.bench.sink"

/* --- idle connections -------------------------------------------------------- */

typedef struct {
    int connected; /* WELCOMEs received */
    int failed;    /* sockets that got none in time */
    double secs;   /* time to connect them all */
} s_idle_report_t;

/*  In a helper process: connects count raw CURVE DEALERs as the fixture's
    agencies first.., sends HELLO on each and waits for WELCOME, reports on
    fd, then holds the connections until fd's peer closes cmd. Never
    returns.  */
static void __attribute__ ((noreturn))
s_idle_helper (const dipx_fixture_t *fx, size_t first, int count, int window, int wave,
               int heartbeat, int report_fd, int cmd_fd)
{
    s_idle_report_t rep = {0, 0, 0};
    double t0 = s_now_s ();
    void *ctx = zmq_ctx_new ();
    void **socks = calloc ((size_t) count, sizeof *socks);
    zmq_pollitem_t *items = calloc ((size_t) wave, sizeof *items);
    dipx_frame_t hello = {.cmd = DIPX_CMD_HELLO};
    hello.u.hello.window = (uint64_t) window;
    uint8_t *hbuf = NULL;
    size_t hlen = 0;
    if (!ctx || !socks || !items || dipx_frame_encode (&hello, &hbuf, &hlen) != 0) {
        rep.failed = count;
        goto report;
    }
    zmq_ctx_set (ctx, ZMQ_MAX_SOCKETS, count + 16);
    uint8_t server_key[32];
    if (dipx_key_from_z85 (dipx_fixture_broker_key (fx), DIPX_Z85_KEY_LEN, server_key) != 0) {
        rep.failed = count;
        goto report;
    }
    for (int base = 0; base < count; base += wave) {
        int n = count - base < wave ? count - base : wave;
        /* libdipx's heartbeat: a PING every heartbeat ms carrying a TTL of
           three times that, so the broker's engine arms a TTL timer.  */
        int linger = 0, ivl = heartbeat, ttl = 3 * heartbeat, backoff = 2000;
        for (int i = 0; i < n; i++) {
            const dipx_identity_t *id = dipx_fixture_agency_identity (fx, first + (size_t) (base + i));
            void *s = zmq_socket (ctx, ZMQ_DEALER);
            if (!s || zmq_setsockopt (s, ZMQ_LINGER, &linger, sizeof linger)
                || zmq_setsockopt (s, ZMQ_RECONNECT_IVL_MAX, &backoff, sizeof backoff)
                || (heartbeat
                    && (zmq_setsockopt (s, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl)
                        || zmq_setsockopt (s, ZMQ_HEARTBEAT_TTL, &ttl, sizeof ttl)
                        || zmq_setsockopt (s, ZMQ_HEARTBEAT_TIMEOUT, &ttl, sizeof ttl)))
                || zmq_setsockopt (s, ZMQ_CURVE_SERVERKEY, server_key, 32)
                || zmq_setsockopt (s, ZMQ_CURVE_PUBLICKEY, dipx_identity_enc_pk (id), 32)
                || zmq_setsockopt (s, ZMQ_CURVE_SECRETKEY, dipx_identity_enc_sk (id), 32)
                || zmq_connect (s, dipx_fixture_endpoint (fx))
                || zmq_send (s, hbuf, hlen, ZMQ_DONTWAIT) < 0) {
                if (s)
                    zmq_close (s);
                s = NULL;
            }
            socks[base + i] = s;
            items[i] = (zmq_pollitem_t){s, -1, s ? ZMQ_POLLIN : 0, 0};
        }
        int waiting = 0;
        for (int i = 0; i < n; i++)
            waiting += socks[base + i] != NULL;
        rep.failed += n - waiting;
        double deadline = s_now_s () + S_IDLE_WAVE_MS / 1000.0;
        while (waiting > 0 && s_now_s () < deadline) {
            if (zmq_poll (items, n, 200) < 0 && zmq_errno () != EINTR)
                break;
            for (int i = 0; i < n; i++) {
                if (!(items[i].revents & ZMQ_POLLIN))
                    continue;
                uint8_t buf[1024];
                int got = zmq_recv (items[i].socket, buf, sizeof buf, ZMQ_DONTWAIT);
                if (got <= 0)
                    continue;
                dipx_frame_t *f = malloc (sizeof *f);
                bool welcome = f && (size_t) got <= sizeof buf
                               && dipx_frame_decode (buf, (size_t) got, f) == 0
                               && f->cmd == DIPX_CMD_WELCOME;
                free (f);
                if (welcome) {
                    rep.connected++;
                    items[i].events = 0; /* done with this one */
                    waiting--;
                }
            }
        }
        rep.failed += waiting;
        if (getenv ("DIPX_BENCH_DEBUG"))
            fprintf (stderr, "idle helper: wave %d..%d done at %.3f s\n", base, base + n,
                     s_now_s () - t0);
    }
report:
    rep.secs = s_now_s () - t0;
    if (write (report_fd, &rep, sizeof rep) != (ssize_t) sizeof rep)
        _exit (1);
    close (report_fd);
    char c;
    while (read (cmd_fd, &c, 1) < 0 && errno == EINTR)
        ; /* held until the parent closes its end */
    /* Leaving without closing: the kernel drops every connection at once,
       which is what the broker sees when a site's network goes down.  */
    _exit (0);
}

typedef struct {
    pid_t pids[S_IDLE_HELPERS]; /* helper processes */
    int nhelpers;    /* their number */
    int cmd_fd;      /* closing it releases every helper */
} s_idle_t;

/*  Forks the helpers for agencies first..first+count-1 and waits for their
    reports. Must run before this process has any thread or ZeroMQ context.  */
static int
s_idle_start (const dipx_fixture_t *fx, size_t first, int count, int window, int wave,
              int per, int heartbeat, s_idle_t *idle, s_idle_report_t *total)
{
    memset (total, 0, sizeof *total);
    memset (idle, 0, sizeof *idle);
    int cmd[2];
    if (pipe (cmd) != 0)
        return -1;
    idle->cmd_fd = cmd[1];
    int nh = (count + per - 1) / per;
    if (nh > S_IDLE_HELPERS)
        return -1;
    int reports[S_IDLE_HELPERS];
    double t0 = s_now_s ();
    for (int h = 0; h < nh; h++) {
        int rp[2];
        if (pipe (rp) != 0)
            return -1;
        int n = count - h * per;
        if (n > per)
            n = per;
        fflush (NULL);
        pid_t pid = fork ();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            close (rp[0]);
            close (cmd[1]);
            s_idle_helper (fx, first + (size_t) h * (size_t) per, n, window, wave, heartbeat,
                           rp[1], cmd[0]);
        }
        close (rp[1]);
        reports[h] = rp[0];
        idle->pids[idle->nhelpers++] = pid;
    }
    close (cmd[0]);
    for (int h = 0; h < nh; h++) {
        s_idle_report_t rep;
        ssize_t got;
        while ((got = read (reports[h], &rep, sizeof rep)) < 0 && errno == EINTR)
            ;
        close (reports[h]);
        if (got != (ssize_t) sizeof rep)
            rep = (s_idle_report_t){0, h < nh - 1 ? per : count - h * per, 0};
        total->connected += rep.connected;
        total->failed += rep.failed;
    }
    total->secs = s_now_s () - t0;
    return 0;
}

static void
s_idle_stop (s_idle_t *idle)
{
    if (idle->cmd_fd > 0)
        close (idle->cmd_fd);
    idle->cmd_fd = -1;
    for (int h = 0; h < idle->nhelpers; h++)
        while (waitpid (idle->pids[h], NULL, 0) < 0 && errno == EINTR)
            ;
    idle->nhelpers = 0;
}

/* --- per-operation costs ----------------------------------------------------- */

typedef struct {
    double sign_us, verify_us, box_us, seal_us, open_us, fsync_ms;
    /* S_PROBE_PAGES pages and a meta page made durable as an LMDB commit
       does: at scattered places, and in one contiguous run  */
    double scat_ms, scat_cpu_us, run_ms, run_cpu_us;
} s_micro_t;

#define S_PROBE_PAGES 32      /* about what one commit writes at 1,000 msg/s */
#define S_PROBE_REGION 4096   /* pages: a 16 MiB written file, like a young store */
#define S_PROBE_COMMITS 40

/*  This thread's CPU time: per-operation costs are CPU costs, and on a busy
    machine wall time would count the time others held the CPU.  */
static double
s_cpu_s (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/*  The disk work of one LMDB commit without the B-trees: S_PROBE_PAGES 4 KiB
    pages, each its own pwrite (LMDB merges only adjacent pages), an
    fdatasync, then the meta page through an O_DSYNC descriptor. A commit's
    copied pages lie scattered in the data file, so each is its own disk
    request; `scattered` puts them at distinct random places in the region,
    otherwise they are one run, written by the same calls, so that the
    difference is what the disk requests cost. Wall ms and this thread's CPU (user and
    system) us per commit, or NAN if a call failed. fd and mfd are open on a
    file of S_PROBE_REGION written pages.  */
static void
s_commit_probe (int fd, int mfd, bool scattered, double *wall_ms, double *cpu_us)
{
    uint8_t page[4096];
    memset (page, 5, sizeof page);
    *wall_ms = *cpu_us = NAN;
    double w0 = s_now_s (), c0 = s_cpu_s ();
    for (int i = 0; i < S_PROBE_COMMITS; i++) {
        uint8_t used[S_PROBE_REGION / 8] = {0};
        uint32_t first =
            scattered ? 0 : 1 + randombytes_uniform (S_PROBE_REGION - 1 - S_PROBE_PAGES);
        for (int k = 0; k < S_PROBE_PAGES; k++) {
            uint32_t pg = first + (uint32_t) k;
            if (scattered) {
                do /* page 0 is the meta page */
                    pg = 1 + randombytes_uniform (S_PROBE_REGION - 1);
                while (used[pg / 8] & (1u << (pg % 8)));
                used[pg / 8] |= (uint8_t) (1u << (pg % 8));
            }
            if (pwrite (fd, page, sizeof page, (off_t) pg * 4096) != (ssize_t) sizeof page)
                return;
        }
        if (fdatasync (fd) != 0 || pwrite (mfd, page, sizeof page, 0) != (ssize_t) sizeof page)
            return;
    }
    *wall_ms = (s_now_s () - w0) * 1e3 / S_PROBE_COMMITS;
    *cpu_us = (s_cpu_s () - c0) * 1e6 / S_PROBE_COMMITS;
}

static void
s_commit_probes (const char *path, s_micro_t *m)
{
    m->scat_ms = m->scat_cpu_us = m->run_ms = m->run_cpu_us = NAN;
    int fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    int mfd = open (path, O_WRONLY | O_DSYNC | O_CLOEXEC);
    static uint8_t chunk[65536];
    memset (chunk, 3, sizeof chunk);
    bool ok = mfd >= 0;
    for (off_t off = 0; ok && off < (off_t) S_PROBE_REGION * 4096; off += (off_t) sizeof chunk)
        ok = pwrite (fd, chunk, sizeof chunk, off) == (ssize_t) sizeof chunk;
    if (ok && fdatasync (fd) == 0) {
        s_commit_probe (fd, mfd, true, &m->scat_ms, &m->scat_cpu_us);
        s_commit_probe (fd, mfd, false, &m->run_ms, &m->run_cpu_us);
    }
    if (mfd >= 0)
        close (mfd);
    close (fd);
    unlink (path);
}

static void
s_micro (dipx_client_t *sender, const char *to, size_t payload, const char *dir, s_micro_t *m)
{
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    uint8_t msg[256], sig[crypto_sign_BYTES];
    crypto_sign_keypair (pk, sk);
    randombytes_buf (msg, sizeof msg);
    int n = 2000;
    double t0 = s_cpu_s ();
    for (int i = 0; i < n; i++)
        crypto_sign_detached (sig, NULL, msg, sizeof msg, sk);
    m->sign_us = (s_cpu_s () - t0) * 1e6 / n;
    t0 = s_cpu_s ();
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad += crypto_sign_verify_detached (sig, msg, sizeof msg, pk) != 0;
    m->verify_us = (s_cpu_s () - t0) * 1e6 / n;
    if (bad)
        m->verify_us = NAN;
    sodium_memzero (sk, sizeof sk);

    /* CURVE encrypts every frame with crypto_box_afternm: the cost of one
       payload-sized frame in one direction.  */
    size_t len = payload + 200;
    uint8_t *p = malloc (len), *c = malloc (len + crypto_box_MACBYTES);
    uint8_t key[crypto_box_BEFORENMBYTES], nonce[crypto_box_NONCEBYTES];
    randombytes_buf (key, sizeof key);
    randombytes_buf (nonce, sizeof nonce);
    m->box_us = NAN;
    if (p && c) {
        memset (p, 7, len);
        t0 = s_cpu_s ();
        for (int i = 0; i < n; i++)
            crypto_box_easy_afternm (c, p, len, nonce, key);
        m->box_us = (s_cpu_s () - t0) * 1e6 / n;
    }
    free (p);
    free (c);

    /* A whole envelope: header, seal, sign (what dipx_client_post adds).  */
    m->seal_us = NAN;
    uint8_t *body = calloc (1, payload), subject[DIPX_SUBJECT_BYTES] = {0};
    if (body && sender) {
        dipx_send_t ms = s_message (to, subject);
        int ns = 500, ok = 0;
        t0 = s_cpu_s ();
        for (int i = 0; i < ns; i++) {
            uint8_t *env = NULL;
            size_t env_len;
            ok += dipx_client_seal (sender, &ms, body, payload, &env, &env_len) == 0;
            free (env);
        }
        if (ok == ns)
            m->seal_us = (s_cpu_s () - t0) * 1e6 / ns;
    }
    free (body);

    /* One 4 KiB write made durable with fdatasync, as LMDB does for data and
       then for the meta page of every commit (so a commit is about two).  */
    m->fsync_ms = NAN;
    char path[600];
    snprintf (path, sizeof path, "%s/fsync.probe", dir ? dir : "/tmp");
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        uint8_t page[4096];
        memset (page, 1, sizeof page);
        int nf = 50, ok = 0;
        t0 = s_now_s ();
        for (int i = 0; i < nf; i++)
            ok += pwrite (fd, page, sizeof page, (off_t) (i % 4) * 4096) == (ssize_t) sizeof page
                  && fdatasync (fd) == 0;
        if (ok == nf)
            m->fsync_ms = (s_now_s () - t0) * 1e3 / nf;
        close (fd);
        unlink (path);
    }
    s_commit_probes (path, m);
}

/* --- the figures --------------------------------------------------------------- */

typedef struct {
    uint64_t posted, accepted, refused, received, foreign, redelivered, receipts;
    double accepted_per_s, e2e_per_s, accept_s, e2e_s;
    size_t lat_n;
    double lat_p50, lat_p99, lat_p999, lat_max, lat_mean;
    double broker_cpu_s, client_cpu_s, wall_s;
    double broker_run_s, broker_wait_s; /* schedstat: on CPU, waiting for one */
    double load_before;                 /* 1-minute load average at the start */
    long long mdb_before, mdb_after;
    long long written_before, written_after; /* device's bytes written */
    long rss_kb, hwm_kb;    /* VmRSS, VmHWM */
    long anon_kb, file_kb;  /* RssAnon (heap, stacks), RssFile (LMDB's mapped pages) */
} s_figures_t;

typedef struct {
    bool done;
    uint64_t count;
    double secs, per_s;
    long long mdb_before, mdb_after;
    long rss_kb;
    bool based;      /* base holds the same run made before the prequeue */
    s_figures_t base;
} s_prequeue_t;

typedef struct {
    bool done;
    double term_stop_s, term_ready_s, kill_ready_s;
    bool drained;
    uint64_t drain_count;
    double drain_s, drain_per_s;
} s_restart_t;

typedef struct {
    bool done;
    int requested, connected, failed;
    double connect_s;
    long rss_before_kb, rss_after_kb, hwm_kb, anon_after_kb;
    double hold_cpu_cores;  /* broker CPU while only holding them (heartbeats) */
    int roundtrips;
    double rt_p50, rt_p99, rt_max;
    char err[200];
} s_idle_fig_t;

static json_t *
s_num (double v)
{
    return isnan (v) ? json_null () : json_real (v);
}

static json_t *
s_int (long long v)
{
    return v < 0 ? json_null () : json_integer (v);
}

static double
s_per_msg (double total, uint64_t n, double scale)
{
    return n ? total * scale / (double) n : NAN;
}

static double
s_written_per_msg (const s_figures_t *f)
{
    return f->written_before >= 0 && f->written_after >= 0
               ? s_per_msg ((double) (f->written_after - f->written_before), f->accepted, 1)
               : NAN;
}

static int
s_write_json (const char *path, const s_opts_t *o, const s_figures_t *f, bool ran,
              const s_prequeue_t *pq, const s_restart_t *rs, const s_idle_fig_t *id,
              const s_micro_t *mc, bool micro_done)
{
    json_t *root = json_object ();
    json_t *cfg = json_object ();
    json_object_set_new (cfg, "mode", json_string (o->mode == S_REPLAY ? "replay" : "live"));
    json_object_set_new (cfg, "receive", json_string (o->ack_only ? "ack" : "open"));
    json_object_set_new (cfg, "senders", json_integer (o->senders));
    json_object_set_new (cfg, "receivers", json_integer (o->receivers));
    json_object_set_new (cfg, "payload", json_integer ((json_int_t) o->payload));
    json_object_set_new (cfg, "messages", json_integer ((json_int_t) o->messages));
    json_object_set_new (cfg, "seconds", json_real (o->seconds));
    json_object_set_new (cfg, "rate", json_real (o->rate));
    json_object_set_new (cfg, "inflight", json_integer (o->inflight));
    json_object_set_new (cfg, "window", json_integer (o->window));
    json_object_set_new (cfg, "verify_threads",
                         o->endpoint ? json_null () : json_integer (o->verify_threads));
    json_object_set_new (cfg, "batch", o->endpoint ? json_null () : json_integer (o->batch));
    json_object_set_new (cfg, "prequeue", json_integer ((json_int_t) o->prequeue));
    json_object_set_new (cfg, "subjects",
                         o->subjects ? json_integer ((json_int_t) o->subjects) : json_null ());
    json_object_set_new (cfg, "idle_agencies", json_integer (o->idle));
    json_object_set_new (cfg, "idle_heartbeat_ms", json_integer (o->idle_heartbeat));
    json_object_set_new (cfg, "external", json_boolean (o->endpoint != NULL));
    json_object_set_new (root, "config", cfg);

    uint64_t n = f->accepted;
    json_object_set_new (root, "posted", json_integer ((json_int_t) f->posted));
    json_object_set_new (root, "accepted", json_integer ((json_int_t) f->accepted));
    json_object_set_new (root, "refused", json_integer ((json_int_t) f->refused));
    json_object_set_new (root, "received", json_integer ((json_int_t) f->received));
    json_object_set_new (root, "redelivered", json_integer ((json_int_t) f->redelivered));
    json_object_set_new (root, "receipts", json_integer ((json_int_t) f->receipts));
    json_object_set_new (root, "accepted_per_s", s_num (ran ? f->accepted_per_s : NAN));
    json_object_set_new (root, "e2e_per_s", s_num (ran ? f->e2e_per_s : NAN));
    json_object_set_new (root, "wall_s", s_num (ran ? f->wall_s : NAN));
    json_t *lat = json_object ();
    json_object_set_new (lat, "samples", json_integer ((json_int_t) f->lat_n));
    json_object_set_new (lat, "p50", s_num (ran ? f->lat_p50 : NAN));
    json_object_set_new (lat, "p99", s_num (ran ? f->lat_p99 : NAN));
    json_object_set_new (lat, "p999", s_num (ran ? f->lat_p999 : NAN));
    json_object_set_new (lat, "max", s_num (ran ? f->lat_max : NAN));
    json_object_set_new (lat, "mean", s_num (ran ? f->lat_mean : NAN));
    json_object_set_new (root, "latency_ms", lat);
    json_object_set_new (root, "broker_cpu_us_per_msg", s_num (s_per_msg (f->broker_cpu_s, n, 1e6)));
    json_object_set_new (root, "broker_cpu_cores",
                         s_num (ran && f->wall_s > 0 ? f->broker_cpu_s / f->wall_s : NAN));
    json_object_set_new (root, "client_cpu_us_per_msg", s_num (s_per_msg (f->client_cpu_s, n, 1e6)));
    json_object_set_new (root, "client_cpu_cores",
                         s_num (ran && f->wall_s > 0 ? f->client_cpu_s / f->wall_s : NAN));
    json_object_set_new (root, "data_mdb_bytes_before", s_int (f->mdb_before));
    json_object_set_new (root, "data_mdb_bytes_after", s_int (f->mdb_after));
    json_object_set_new (root, "disk_bytes_per_msg",
                         s_num (f->mdb_before >= 0 && f->mdb_after >= 0
                                    ? s_per_msg ((double) (f->mdb_after - f->mdb_before), n, 1)
                                    : NAN));
    json_object_set_new (root, "device_written_bytes_per_msg", s_num (s_written_per_msg (f)));
    json_object_set_new (root, "broker_runqueue_wait_s", s_num (ran ? f->broker_wait_s : NAN));
    json_object_set_new (root, "broker_on_cpu_s", s_num (ran ? f->broker_run_s : NAN));
    json_object_set_new (root, "loadavg_1m_before", s_num (ran ? f->load_before : NAN));
    json_object_set_new (root, "broker_rss_kb", s_int (f->rss_kb));
    json_object_set_new (root, "broker_hwm_kb", s_int (f->hwm_kb));
    json_object_set_new (root, "broker_rss_anon_kb", s_int (f->anon_kb));
    json_object_set_new (root, "broker_rss_file_kb", s_int (f->file_kb));

    if (pq->done) {
        json_t *p = json_object ();
        json_object_set_new (p, "count", json_integer ((json_int_t) pq->count));
        json_object_set_new (p, "fill_s", json_real (pq->secs));
        json_object_set_new (p, "fill_per_s", s_num (pq->per_s));
        json_object_set_new (p, "data_mdb_bytes_before", s_int (pq->mdb_before));
        json_object_set_new (p, "data_mdb_bytes_queued", s_int (pq->mdb_after));
        json_object_set_new (p, "queued_bytes_per_msg",
                             s_num (pq->mdb_after >= 0 && pq->mdb_before >= 0
                                        ? s_per_msg ((double) (pq->mdb_after - pq->mdb_before),
                                                     pq->count, 1)
                                        : NAN));
        json_object_set_new (p, "broker_rss_kb", s_int (pq->rss_kb));
        if (pq->based) {
            const s_figures_t *b = &pq->base;
            json_t *j = json_object ();
            json_object_set_new (j, "accepted_per_s", s_num (b->accepted_per_s));
            json_object_set_new (j, "e2e_per_s", s_num (b->e2e_per_s));
            json_object_set_new (j, "broker_cpu_us_per_msg",
                                 s_num (s_per_msg (b->broker_cpu_s, b->accepted, 1e6)));
            json_object_set_new (j, "device_written_bytes_per_msg", s_num (s_written_per_msg (b)));
            json_object_set_new (p, "before", j);
            json_object_set_new (p, "e2e_ratio",
                                 s_num (ran && b->e2e_per_s > 0 ? f->e2e_per_s / b->e2e_per_s
                                                                : NAN));
        }
        json_object_set_new (root, "prequeue", p);
    }
    if (rs->done) {
        json_t *r = json_object ();
        json_object_set_new (r, "term_stop_s", s_num (rs->term_stop_s));
        json_object_set_new (r, "term_ready_s", s_num (rs->term_ready_s));
        json_object_set_new (r, "kill_ready_s", s_num (rs->kill_ready_s));
        if (rs->drained) {
            json_object_set_new (r, "drain_count", json_integer ((json_int_t) rs->drain_count));
            json_object_set_new (r, "drain_s", s_num (rs->drain_s));
            json_object_set_new (r, "drain_per_s", s_num (rs->drain_per_s));
        }
        json_object_set_new (root, "restart", r);
    }
    if (id->done) {
        json_t *i = json_object ();
        json_object_set_new (i, "requested", json_integer (id->requested));
        json_object_set_new (i, "connected", json_integer (id->connected));
        json_object_set_new (i, "failed", json_integer (id->failed));
        json_object_set_new (i, "connect_s", s_num (id->connect_s));
        json_object_set_new (i, "broker_rss_kb_before", s_int (id->rss_before_kb));
        json_object_set_new (i, "broker_rss_kb_after", s_int (id->rss_after_kb));
        json_object_set_new (i, "broker_hwm_kb", s_int (id->hwm_kb));
        json_object_set_new (i, "broker_rss_anon_kb_after", s_int (id->anon_after_kb));
        json_object_set_new (i, "kb_per_connection",
                             s_num (id->connected && id->rss_before_kb >= 0 && id->rss_after_kb >= 0
                                        ? (double) (id->rss_after_kb - id->rss_before_kb)
                                              / id->connected
                                        : NAN));
        json_object_set_new (i, "broker_cpu_cores_holding", s_num (id->hold_cpu_cores));
        json_object_set_new (i, "roundtrips", json_integer (id->roundtrips));
        json_object_set_new (i, "roundtrip_ms_p50", s_num (id->rt_p50));
        json_object_set_new (i, "roundtrip_ms_p99", s_num (id->rt_p99));
        json_object_set_new (i, "roundtrip_ms_max", s_num (id->rt_max));
        json_object_set_new (root, "idle", i);
    }
    if (micro_done) {
        json_t *m = json_object ();
        json_object_set_new (m, "ed25519_sign_us", s_num (mc->sign_us));
        json_object_set_new (m, "ed25519_verify_us", s_num (mc->verify_us));
        json_object_set_new (m, "curve_box_payload_us", s_num (mc->box_us));
        json_object_set_new (m, "seal_envelope_us", s_num (mc->seal_us));
        json_object_set_new (m, "fdatasync_4k_ms", s_num (mc->fsync_ms));
        json_object_set_new (m, "commit_pages", json_integer (S_PROBE_PAGES));
        json_object_set_new (m, "commit_scattered_ms", s_num (mc->scat_ms));
        json_object_set_new (m, "commit_scattered_cpu_us", s_num (mc->scat_cpu_us));
        json_object_set_new (m, "commit_contiguous_ms", s_num (mc->run_ms));
        json_object_set_new (m, "commit_contiguous_cpu_us", s_num (mc->run_cpu_us));
        json_object_set_new (root, "micro", m);
    }
    int rc = json_dump_file (root, path, JSON_INDENT (2) | JSON_REAL_PRECISION (6));
    json_decref (root);
    return rc;
}

static void
s_print (const s_opts_t *o, const s_figures_t *f, bool ran, const s_prequeue_t *pq,
         const s_restart_t *rs, const s_idle_fig_t *id, const s_micro_t *mc, bool micro_done)
{
    char vt[32];
    snprintf (vt, sizeof vt, o->endpoint ? "external broker" : "verify_threads %d",
              o->verify_threads);
    printf ("dipx-bench: %s, %d sender(s), %d receiver(s)%s, %zu-byte payload, inflight %d, "
            "window %d, %s, rate %s\n",
            o->mode == S_REPLAY ? "replay" : "live", o->senders, o->receivers,
            o->ack_only ? " (acknowledge only)" : "", o->payload,
            o->inflight, o->window, vt, o->rate > 0 ? "fixed" : "max");
    if (o->rate > 0)
        printf ("  offered rate                 %10.0f msg/s\n", o->rate);
    if (o->subjects)
        printf ("  subjects                     %10" PRIu64 " (each message about one of them)\n",
                o->subjects);
    if (ran) {
        uint64_t n = f->accepted;
        printf ("  messages accepted/received   %10" PRIu64 " / %" PRIu64 "  (refused %" PRIu64
                ", redelivered %" PRIu64 ")\n",
                f->accepted, f->received, f->refused, f->redelivered);
        printf ("  accepted throughput          %10.0f msg/s  (%.2f s)\n", f->accepted_per_s,
                f->accept_s);
        printf ("  end-to-end throughput        %10.0f msg/s  (%.2f s)\n", f->e2e_per_s, f->e2e_s);
        printf ("  latency p50 / p99 / p99.9    %10.2f / %.2f / %.2f ms  (max %.2f, %zu samples)\n",
                f->lat_p50, f->lat_p99, f->lat_p999, f->lat_max, f->lat_n);
        printf ("  broker CPU per message       %10.1f us  (%.2f cores)\n",
                s_per_msg (f->broker_cpu_s, n, 1e6), f->broker_cpu_s / f->wall_s);
        printf ("  client CPU per message       %10.1f us  (%.2f cores, senders + receivers)\n",
                s_per_msg (f->client_cpu_s, n, 1e6), f->client_cpu_s / f->wall_s);
        if (!isnan (f->broker_wait_s))
            printf ("  broker threads: on CPU / waiting for a CPU %.2f / %.2f s  (load avg %.2f "
                    "before)\n",
                    f->broker_run_s, f->broker_wait_s, f->load_before);
        if (f->mdb_before >= 0)
            printf ("  data.mdb growth per message  %10.1f bytes  (%.1f -> %.1f MiB)\n",
                    s_per_msg ((double) (f->mdb_after - f->mdb_before), n, 1),
                    (double) f->mdb_before / 1048576, (double) f->mdb_after / 1048576);
        if (!isnan (s_written_per_msg (f)))
            printf ("  device writes per message    %10.1f bytes  (the data directory's disk, "
                    "journal included)\n",
                    s_written_per_msg (f));
        if (f->rss_kb >= 0)
            printf ("  broker RSS / peak            %10.1f / %.1f MiB  (anonymous %.1f, mapped "
                    "files %.1f)\n",
                    f->rss_kb / 1024.0, f->hwm_kb / 1024.0, f->anon_kb / 1024.0,
                    f->file_kb / 1024.0);
    }
    if (pq->done) {
        printf ("  prequeued                    %10" PRIu64 " msgs in %.1f s (%.0f msg/s)\n",
                pq->count, pq->secs, pq->per_s);
        if (pq->mdb_after >= 0)
            printf ("  data.mdb with them queued    %10.1f MiB  (%.0f bytes per queued msg)\n",
                    (double) pq->mdb_after / 1048576,
                    s_per_msg ((double) (pq->mdb_after - pq->mdb_before), pq->count, 1));
        if (pq->based) {
            const s_figures_t *b = &pq->base;
            printf ("  the same run before them     %10.0f msg/s end to end (%.0f accepted), "
                    "%.1f us broker CPU, %.0f bytes device writes per message\n",
                    b->e2e_per_s, b->accepted_per_s, s_per_msg (b->broker_cpu_s, b->accepted, 1e6),
                    s_written_per_msg (b));
            if (ran && b->e2e_per_s > 0)
                printf ("  end to end, queued / before  %10.3f\n", f->e2e_per_s / b->e2e_per_s);
        }
    }
    if (rs->done) {
        printf ("  restart: SIGTERM stop        %10.3f s\n", rs->term_stop_s);
        printf ("  restart: spawn to READY      %10.3f s (after SIGTERM), %.3f s (after SIGKILL)\n",
                rs->term_ready_s, rs->kill_ready_s);
        if (rs->drained)
            printf ("  drain after restart          %10" PRIu64 " msgs in %.1f s (%.0f msg/s)\n",
                    rs->drain_count, rs->drain_s, rs->drain_per_s);
    }
    if (id->done) {
        printf ("  idle agencies connected      %10d of %d in %.1f s (%d failed)\n", id->connected,
                id->requested, id->connect_s, id->failed);
        printf ("  broker RSS idle: before/after%10.1f / %.1f MiB (%.1f KiB per connection)\n",
                id->rss_before_kb / 1024.0, id->rss_after_kb / 1024.0,
                id->connected ? (double) (id->rss_after_kb - id->rss_before_kb) / id->connected
                              : NAN);
        printf ("  broker CPU just holding them %10.3f cores\n", id->hold_cpu_cores);
        printf ("  round trip beside them       %10.2f ms p50, %.2f p99, %.2f max (%d)\n",
                id->rt_p50, id->rt_p99, id->rt_max, id->roundtrips);
        if (id->err[0])
            printf ("  idle: %s\n", id->err);
    }
    if (micro_done)
        printf ("  per-op: sign %.1f us, verify %.1f us, CURVE box of payload %.1f us, "
                "seal+sign envelope %.1f us, 4 KiB write+fdatasync %.3f ms\n",
                mc->sign_us, mc->verify_us, mc->box_us, mc->seal_us, mc->fsync_ms);
    if (micro_done)
        printf ("  disk: %d pages + meta made durable as a commit does: scattered %.2f ms "
                "(%.0f us CPU), contiguous %.2f ms (%.0f us CPU)\n",
                S_PROBE_PAGES, mc->scat_ms, mc->scat_cpu_us, mc->run_ms, mc->run_cpu_us);
}

/* --- options -------------------------------------------------------------------- */

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: dipx-bench [options]\n"
        "  --senders S          sender agencies, one thread each (1)\n"
        "  --receivers R        receiver agencies, one thread each (1)\n"
        "  --payload P          body bytes, at least 32 (2048)\n"
        "  --messages N         messages in total (20000)\n"
        "  --seconds T          stop posting after T s (with --messages: whichever first)\n"
        "  --rate M             offered msg/s in total, paced open-loop; 0 = max (0)\n"
        "  --mode live|replay   live: seal+sign each post; replay: seal all first (live)\n"
        "  --receive open|ack   open: receivers verify, open and acknowledge each message\n"
        "                       (libdipx); ack: they only acknowledge it, signed, as a\n"
        "                       consumer that does no crypto would (replay only) (open)\n"
        "  --inflight K         unanswered posts per sender, 1..1024 (256)\n"
        "  --window W           receiver window, 1..1024 (256)\n"
        "  --verify-threads V   broker verify_threads (1)\n"
        "  --batch B            broker batch (256)\n"
        "  --prequeue Q         queue Q messages to an idle agency before the run (which\n"
        "                       is also made once before them, for a baseline)\n"
        "  --subjects N         draw each message's subject from N fixed ones (default:\n"
        "                       a new random subject per message)\n"
        "  --restart            after the run, restart the broker (SIGTERM, SIGKILL), time READY\n"
        "  --drain              after --restart, drain the prequeued messages and time it\n"
        "  --idle-agencies N    connect N idle agencies (raw CURVE sockets) and measure\n"
        "  --idle-window W      window in their HELLO (16)\n"
        "  --idle-wave H        handshakes in flight per helper process (64)\n"
        "  --idle-per-helper C  sockets per helper process, at most 4000 (1000)\n"
        "  --idle-heartbeat MS  their ZMTP heartbeat as libdipx sets it; 0 = none (10000)\n"
        "  --no-micro           skip the per-operation cost measurements\n"
        "  --json FILE          write the figures as JSON\n"
        "  --dipxd PATH         broker executable (" DIPX_BENCH_DIPXD ")\n"
        "  --policy PATH        policy file (" DIPX_BENCH_POLICY ")\n"
        "  --tmpdir DIR         where the private broker's directory goes ($TMPDIR, /tmp)\n"
        "  --keep               keep that directory\n"
        "  --quiet              no progress lines on stderr\n"
        "external broker:\n"
        "  --endpoint EP --broker-key Z85 --identity-dir DIR [--broker-pid PID] [--data-dir D]\n"
        "  --make-identities DIR   write DIR/<id>.secret, DIR/peers and DIR/registry for\n"
        "                          --senders/--receivers (add DIR/registry's cards to the broker)\n");
}

static int
s_parse_uint (const char *name, const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull (v, &end, 10);
    if (errno || *end || v[0] == '-' || x < lo || x > hi) {
        fprintf (stderr, "dipx-bench: --%s: expected a number in %" PRIu64 "..%" PRIu64 "\n",
                 name, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int
s_parse_double (const char *name, const char *v, double *out)
{
    char *end;
    double x = strtod (v, &end);
    if (*end || !(x >= 0) || isinf (x)) {
        fprintf (stderr, "dipx-bench: --%s: expected a number >= 0\n", name);
        return -1;
    }
    *out = x;
    return 0;
}

enum {
    O_SENDERS = 256, O_RECEIVERS, O_PAYLOAD, O_MESSAGES, O_SECONDS, O_RATE, O_MODE, O_RECEIVE,
    O_INFLIGHT,
    O_WINDOW, O_VERIFY, O_BATCH, O_PREQUEUE, O_SUBJECTS, O_RESTART, O_DRAIN, O_IDLE, O_IDLE_WINDOW,
    O_IDLE_WAVE, O_IDLE_PER_HELPER, O_IDLE_HEARTBEAT, O_NO_MICRO, O_JSON, O_ENDPOINT, O_BROKER_KEY, O_IDENTITY_DIR, O_BROKER_PID, O_DATA_DIR,
    O_MAKE_IDS, O_DIPXD, O_POLICY, O_TMPDIR, O_KEEP, O_QUIET, O_HELP
};

static int
s_parse (int argc, char **argv, s_opts_t *o)
{
    static const struct option opts[] = {
        {"senders", required_argument, NULL, O_SENDERS},
        {"receivers", required_argument, NULL, O_RECEIVERS},
        {"payload", required_argument, NULL, O_PAYLOAD},
        {"messages", required_argument, NULL, O_MESSAGES},
        {"seconds", required_argument, NULL, O_SECONDS},
        {"rate", required_argument, NULL, O_RATE},
        {"mode", required_argument, NULL, O_MODE},
        {"receive", required_argument, NULL, O_RECEIVE},
        {"inflight", required_argument, NULL, O_INFLIGHT},
        {"window", required_argument, NULL, O_WINDOW},
        {"verify-threads", required_argument, NULL, O_VERIFY},
        {"batch", required_argument, NULL, O_BATCH},
        {"prequeue", required_argument, NULL, O_PREQUEUE},
        {"subjects", required_argument, NULL, O_SUBJECTS},
        {"restart", no_argument, NULL, O_RESTART},
        {"drain", no_argument, NULL, O_DRAIN},
        {"idle-agencies", required_argument, NULL, O_IDLE},
        {"idle-window", required_argument, NULL, O_IDLE_WINDOW},
        {"idle-wave", required_argument, NULL, O_IDLE_WAVE},
        {"idle-per-helper", required_argument, NULL, O_IDLE_PER_HELPER},
        {"idle-heartbeat", required_argument, NULL, O_IDLE_HEARTBEAT},
        {"no-micro", no_argument, NULL, O_NO_MICRO},
        {"json", required_argument, NULL, O_JSON},
        {"endpoint", required_argument, NULL, O_ENDPOINT},
        {"broker-key", required_argument, NULL, O_BROKER_KEY},
        {"identity-dir", required_argument, NULL, O_IDENTITY_DIR},
        {"broker-pid", required_argument, NULL, O_BROKER_PID},
        {"data-dir", required_argument, NULL, O_DATA_DIR},
        {"make-identities", required_argument, NULL, O_MAKE_IDS},
        {"dipxd", required_argument, NULL, O_DIPXD},
        {"policy", required_argument, NULL, O_POLICY},
        {"tmpdir", required_argument, NULL, O_TMPDIR},
        {"keep", no_argument, NULL, O_KEEP},
        {"quiet", no_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    *o = (s_opts_t){.senders = 1, .receivers = 1, .payload = 2048, .messages = 20000,
                    .mode = S_LIVE, .inflight = 256, .window = 256, .verify_threads = 1,
                    .batch = 256, .idle_window = 16, .idle_wave = 64,
                    .idle_per_helper = 1000, .idle_heartbeat = 10000, .micro = true,
                    .dipxd = DIPX_BENCH_DIPXD, .policy = DIPX_BENCH_POLICY};
    bool messages_set = false;
    int c;
    uint64_t v;
    while ((c = getopt_long (argc, argv, "", opts, NULL)) != -1) {
        const char *name = c >= O_SENDERS && c <= O_HELP ? opts[c - O_SENDERS].name : "?";
        int rc = 0;
        switch (c) {
        case O_SENDERS:
            rc = s_parse_uint (name, optarg, 1, S_MAX_THREADS / 2, &v);
            o->senders = (int) v;
            break;
        case O_RECEIVERS:
            rc = s_parse_uint (name, optarg, 1, S_MAX_THREADS / 2, &v);
            o->receivers = (int) v;
            break;
        case O_PAYLOAD:
            rc = s_parse_uint (name, optarg, 32, DIPX_MAX_BODY, &v);
            o->payload = (size_t) v;
            break;
        case O_MESSAGES:
            rc = s_parse_uint (name, optarg, 0, UINT64_MAX / 2, &o->messages);
            messages_set = true;
            break;
        case O_SECONDS: rc = s_parse_double (name, optarg, &o->seconds); break;
        case O_RATE: rc = s_parse_double (name, optarg, &o->rate); break;
        case O_MODE:
            if (strcmp (optarg, "live") == 0)
                o->mode = S_LIVE;
            else if (strcmp (optarg, "replay") == 0)
                o->mode = S_REPLAY;
            else {
                fprintf (stderr, "dipx-bench: --mode: live or replay\n");
                rc = -1;
            }
            break;
        case O_RECEIVE:
            if (strcmp (optarg, "open") == 0 || strcmp (optarg, "ack") == 0)
                o->ack_only = optarg[0] == 'a';
            else {
                fprintf (stderr, "dipx-bench: --receive: open or ack\n");
                rc = -1;
            }
            break;
        case O_INFLIGHT:
            rc = s_parse_uint (name, optarg, 1, 1024, &v);
            o->inflight = (int) v;
            break;
        case O_WINDOW:
            rc = s_parse_uint (name, optarg, 1, 1024, &v);
            o->window = (int) v;
            break;
        case O_VERIFY:
            rc = s_parse_uint (name, optarg, 0, 64, &v);
            o->verify_threads = (int) v;
            break;
        case O_BATCH:
            rc = s_parse_uint (name, optarg, 1, 512, &v);
            o->batch = (int) v;
            break;
        case O_PREQUEUE: rc = s_parse_uint (name, optarg, 0, 100000000, &o->prequeue); break;
        case O_SUBJECTS: rc = s_parse_uint (name, optarg, 1, UINT64_MAX, &o->subjects); break;
        case O_RESTART: o->restart = true; break;
        case O_DRAIN: o->drain = true; break;
        case O_IDLE:
            rc = s_parse_uint (name, optarg, 0, S_IDLE_HELPERS * S_IDLE_PER_HELPER, &v);
            o->idle = (int) v;
            break;
        case O_IDLE_WINDOW:
            rc = s_parse_uint (name, optarg, 0, 1024, &v);
            o->idle_window = (int) v;
            break;
        case O_IDLE_WAVE:
            rc = s_parse_uint (name, optarg, 1, 4096, &v);
            o->idle_wave = (int) v;
            break;
        case O_IDLE_PER_HELPER:
            rc = s_parse_uint (name, optarg, 1, S_IDLE_PER_HELPER, &v);
            o->idle_per_helper = (int) v;
            break;
        case O_IDLE_HEARTBEAT:
            rc = s_parse_uint (name, optarg, 0, 600000, &v);
            o->idle_heartbeat = (int) v;
            break;
        case O_NO_MICRO: o->micro = false; break;
        case O_JSON: o->json = optarg; break;
        case O_ENDPOINT: o->endpoint = optarg; break;
        case O_BROKER_KEY: o->broker_key = optarg; break;
        case O_IDENTITY_DIR: o->identity_dir = optarg; break;
        case O_BROKER_PID:
            rc = s_parse_uint (name, optarg, 1, INT32_MAX, &v);
            o->broker_pid = (int) v;
            break;
        case O_DATA_DIR: o->data_dir = optarg; break;
        case O_MAKE_IDS: o->make_ids = optarg; break;
        case O_DIPXD: o->dipxd = optarg; break;
        case O_POLICY: o->policy = optarg; break;
        case O_TMPDIR: o->tmpdir = optarg; break;
        case O_KEEP: o->keep = true; break;
        case O_QUIET: o->quiet = true; break;
        case O_HELP: s_usage (stdout); exit (0);
        default: s_usage (stderr); return -1;
        }
        if (rc)
            return -1;
    }
    if (optind < argc) {
        s_usage (stderr);
        return -1;
    }
    /* --seconds alone: a fixed rate sends rate * seconds; live at full
       speed runs until the deadline; replay keeps its sealed --messages.  */
    if (o->seconds > 0 && !messages_set) {
        if (o->rate > 0)
            o->messages = (uint64_t) ceil (o->rate * o->seconds);
        else if (o->mode == S_LIVE)
            o->messages = 0;
    }
    if (o->ack_only && o->mode != S_REPLAY) {
        /* A live message's post time is inside its sealed body.  */
        fprintf (stderr, "dipx-bench: --receive ack needs --mode replay\n");
        return -1;
    }
    if (o->mode == S_REPLAY && o->messages == 0 && o->seconds > 0) {
        fprintf (stderr, "dipx-bench: replay needs --messages (envelopes are sealed first)\n");
        return -1;
    }
    if (o->endpoint && (!o->broker_key || !o->identity_dir)) {
        fprintf (stderr, "dipx-bench: --endpoint needs --broker-key and --identity-dir\n");
        return -1;
    }
    if (o->idle > S_IDLE_HELPERS * o->idle_per_helper) {
        fprintf (stderr, "dipx-bench: --idle-agencies: at most %d helpers of --idle-per-helper\n",
                 S_IDLE_HELPERS);
        return -1;
    }
    if (o->endpoint && (o->idle || o->restart)) {
        fprintf (stderr, "dipx-bench: --idle-agencies and --restart need a private broker\n");
        return -1;
    }
    if (o->drain && (!o->restart || !o->prequeue)) {
        fprintf (stderr, "dipx-bench: --drain needs --restart and --prequeue\n");
        return -1;
    }
    return 0;
}

/* --- --make-identities ------------------------------------------------------------ */

static int
s_make_identities (const s_opts_t *o)
{
    const char *dir = o->make_ids;
    if (mkdir (dir, 0700) != 0 && errno != EEXIST) {
        fprintf (stderr, "dipx-bench: %s: %s\n", dir, strerror (errno));
        return 1;
    }
    dipx_registry_t *reg = dipx_registry_new ();
    int total = o->senders + o->receivers + 2, rc = reg ? 0 : DIPX_E_NOMEM;
    for (int i = 0; rc == 0 && i < total; i++) {
        char id[DIPX_MAX_AGENCY_ID + 1], path[800];
        int type = DIPX_AGENCY_POLICE;
        if (i < o->senders)
            s_sender_id (i, id, sizeof id);
        else if (i < o->senders + o->receivers) {
            s_receiver_id (i - o->senders, id, sizeof id);
            type = DIPX_AGENCY_CJIT;
        } else if (i == total - 2)
            snprintf (id, sizeof id, "%s", S_FILL_ID);
        else {
            snprintf (id, sizeof id, "%s", S_SINK_ID);
            type = DIPX_AGENCY_CJIT;
        }
        dipx_identity_t *ident = dipx_identity_generate (id);
        snprintf (path, sizeof path, "%s/%s.secret", dir, id);
        rc = ident ? dipx_identity_save (ident, path) : DIPX_E_NOMEM;
        dipx_card_t card;
        memset (&card, 0, sizeof card);
        snprintf (card.name, sizeof card.name, "Bench agency %s", id);
        card.type = type;
        snprintf (card.org, sizeof card.org, "BENCH");
        snprintf (card.area, sizeof card.area, "AREA1");
        card.valid_from = 1700000000;
        card.valid_until = 4000000000;
        char *text = NULL;
        size_t len;
        if (rc == 0)
            rc = dipx_card_make (ident, &card, &text, &len);
        free (text);
        if (rc == 0)
            rc = dipx_registry_add (reg, &card);
        dipx_identity_destroy (&ident);
    }
    char path[800];
    snprintf (path, sizeof path, "%s/peers", dir);
    if (rc == 0)
        rc = dipx_registry_save (reg, path);
    snprintf (path, sizeof path, "%s/registry", dir);
    if (rc == 0)
        rc = dipx_registry_save (reg, path);
    dipx_registry_destroy (&reg);
    if (rc) {
        fprintf (stderr, "dipx-bench: --make-identities: %s\n", dipx_strerror (rc));
        return 1;
    }
    printf ("wrote %d identities, %s/peers and %s/registry\n", total, dir, dir);
    return 0;
}

/* --- the phases -------------------------------------------------------------------- */

/*  Queues count messages for the sink, which never connects, from the fill
    agency, as fast as the broker takes them.  */
static int
s_prequeue (const s_opts_t *o, const s_where_t *w, s_prequeue_t *pq)
{
    const uint64_t count = o->prequeue;
    const size_t payload = o->payload;
    dipx_client_t *c = NULL;
    int rc = s_client (w, S_FILL_ID, 0, &c);
    if (rc)
        return rc;
    uint8_t *body = malloc (payload), subject[DIPX_SUBJECT_BYTES];
    if (!body) {
        dipx_client_destroy (&c);
        return DIPX_E_NOMEM;
    }
    randombytes_buf (body, payload);
    memset (body, 0, S_BODY_HEAD);
    uint64_t posted = 0, answered = 0, refused = 0;
    double t0 = s_now_s ();
    double last = t0;
    while (answered < count && rc == 0) {
        dipx_result_t r;
        if (posted < count && posted - answered < 1024) {
            s_subject (o, posted, subject);
            dipx_send_t m = s_message (S_SINK_ID, subject);
            rc = dipx_client_post (c, &m, body, payload, NULL);
            posted++;
            while (rc == 0 && dipx_client_result (c, 0, &r) == 0) {
                answered++;
                refused += r.code != 0;
            }
            continue;
        }
        rc = dipx_client_result (c, 1000, &r);
        if (rc == 0) {
            answered++;
            if (r.code && !refused++)
                fprintf (stderr, "dipx-bench: prequeue refused: %s: %s\n",
                         dipx_strerror (r.code), r.reason);
        } else if (rc == DIPX_E_TIMEOUT && s_now_s () - t0 < 600)
            rc = 0;
        if (s_now_s () - last > 5) {
            last = s_now_s ();
            bench_say ("prequeue: %" PRIu64 " of %" PRIu64, answered, count);
        }
    }
    pq->secs = s_now_s () - t0;
    pq->count = answered - refused;
    pq->per_s = pq->secs > 0 ? (double) pq->count / pq->secs : NAN;
    free (body);
    dipx_client_destroy (&c);
    if (rc == 0 && refused)
        rc = DIPX_E_QUEUE_FULL;
    return rc;
}

/*  Sequential send -> receive -> ack round trips, each timed.  */
static int
s_roundtrips (const s_where_t *w, const char *from, const char *to, int n, size_t payload,
              s_idle_fig_t *id)
{
    dipx_client_t *snd = NULL, *rcv = NULL;
    int rc = s_client (w, from, 0, &snd);
    if (rc == 0)
        rc = s_client (w, to, 16, &rcv);
    uint64_t *lat = calloc ((size_t) n, sizeof *lat);
    uint8_t *body = calloc (1, payload), subject[DIPX_SUBJECT_BYTES] = {0};
    int done = 0;
    if (!lat || !body)
        rc = DIPX_E_NOMEM;
    for (int i = 0; rc == 0 && i < n; i++) {
        dipx_send_t m = s_message (to, subject);
        dipx_result_t r;
        uint64_t t0 = bench_now_ns ();
        rc = dipx_client_send (snd, &m, body, payload, S_READY_MS, &r);
        dipx_message_t *msg = NULL;
        if (rc == 0)
            rc = dipx_client_recv (rcv, S_READY_MS, &msg);
        if (rc == 0) {
            lat[done++] = bench_now_ns () - t0;
            rc = dipx_client_ack (rcv, msg);
            dipx_message_destroy (&msg);
        }
    }
    if (rc)
        snprintf (id->err, sizeof id->err, "round trip %d: %s", done + 1, dipx_strerror (rc));
    qsort (lat, (size_t) done, sizeof *lat, bench_cmp_u64);
    id->roundtrips = done;
    id->rt_p50 = bench_pct_ms (lat, (size_t) done, 0.5);
    id->rt_p99 = bench_pct_ms (lat, (size_t) done, 0.99);
    id->rt_max = done ? (double) lat[done - 1] / 1e6 : NAN;
    free (lat);
    free (body);
    dipx_client_destroy (&snd);
    dipx_client_destroy (&rcv);
    return rc;
}

/*  The measured run.  */
static int
s_run (const s_opts_t *o, const s_where_t *w, pid_t broker, const char *data_dir, s_figures_t *f)
{
    int rc = 0;
    s_run_t *run = calloc (1, sizeof *run);
    s_sender_t *snd = calloc ((size_t) o->senders, sizeof *snd);
    s_receiver_t *rcv = calloc ((size_t) o->receivers, sizeof *rcv);
    const char **to = calloc ((size_t) o->receivers, sizeof *to);
    char (*rid)[DIPX_MAX_AGENCY_ID + 1] = calloc ((size_t) o->receivers, sizeof *rid);
    pthread_t *threads = calloc ((size_t) (o->senders + o->receivers), sizeof *threads);
    int started = 0;
    void *zctx = o->ack_only ? zmq_ctx_new () : NULL; /* the ack-only receivers' */
    if (!run || !snd || !rcv || !to || !rid || !threads || (o->ack_only && !zctx)) {
        rc = DIPX_E_NOMEM;
        goto done;
    }
    run->o = o;
    randombytes_buf (run->nonce, sizeof run->nonce);
    run->post_ns = calloc ((size_t) o->senders, sizeof *run->post_ns);
    if (!run->post_ns) {
        rc = DIPX_E_NOMEM;
        goto done;
    }
    atomic_init (&run->senders_left, o->senders);
    for (int j = 0; j < o->receivers; j++) {
        s_receiver_id (j, rid[j], sizeof rid[j]);
        to[j] = rid[j];
        rcv[j].run = run;
        if (o->ack_only) {
            char secret[700];
            snprintf (secret, sizeof secret, "%s/%s.secret", w->dir, rid[j]);
            rc = bench_ackonly_open (zctx, w->endpoint, w->broker_key, secret,
                                     (uint32_t) o->window, S_READY_MS, &rcv[j].raw);
            if (rc) {
                fprintf (stderr, "dipx-bench: receiver %s: %s\n", rid[j], dipx_strerror (rc));
                goto done;
            }
        } else if ((rc = s_client (w, rid[j], (uint32_t) o->window, &rcv[j].client)))
            goto done;
    }
    if (o->ack_only && (rc = s_idmap_init (&run->ids, o->messages)))
        goto done;
    for (int i = 0; i < o->senders; i++) {
        char id[DIPX_MAX_AGENCY_ID + 1];
        s_sender_id (i, id, sizeof id);
        s_sender_t *s = &snd[i];
        s->run = run;
        s->index = i;
        s->to = to;
        s->nto = o->receivers;
        s->n = o->messages ? o->messages / (uint64_t) o->senders
                                 + ((uint64_t) i < o->messages % (uint64_t) o->senders)
                           : UINT64_MAX;
        if ((rc = s_client (w, id, 0, &s->client)))
            goto done;
        if (o->mode != S_REPLAY)
            continue;
        /* Seal everything now, outside the measured window.  */
        s->envs = calloc (s->n, sizeof *s->envs);
        s->env_lens = calloc (s->n, sizeof *s->env_lens);
        run->post_ns[i] = calloc (s->n, sizeof *run->post_ns[i]);
        uint8_t *body = malloc (o->payload), subject[DIPX_SUBJECT_BYTES];
        if (!s->envs || !s->env_lens || !run->post_ns[i] || !body) {
            free (body);
            rc = DIPX_E_NOMEM;
            goto done;
        }
        randombytes_buf (body, o->payload);
        for (uint64_t k = 0; k < s->n && rc == 0; k++) {
            s_subject (o, k, subject);
            dipx_send_t m = s_message (to[k % (uint64_t) o->receivers], subject);
            s_fill_body (body, o->payload, run, i, k, 0);
            rc = dipx_client_seal (s->client, &m, body, o->payload, &s->envs[k], &s->env_lens[k]);
            dipx_envelope_t env;
            if (rc == 0 && o->ack_only
                && (rc = dipx_envelope_decode (s->envs[k], s->env_lens[k], &env)) == 0)
                s_idmap_put (&run->ids, env.h.id, i, k);
        }
        free (body);
        if (rc)
            goto done;
    }
    if (pthread_barrier_init (&run->start, NULL, (unsigned) (o->senders + o->receivers + 1))) {
        rc = DIPX_E_NOMEM;
        goto done;
    }
    for (int j = 0; j < o->receivers; j++)
        if (pthread_create (&threads[started], NULL, s_receiver_main, &rcv[j]) == 0)
            started++;
    for (int i = 0; i < o->senders; i++)
        if (pthread_create (&threads[started], NULL, s_sender_main, &snd[i]) == 0)
            started++;
    if (started != o->senders + o->receivers) {
        /* Cannot open the barrier: leave the started threads blocked.  */
        fprintf (stderr, "dipx-bench: cannot start threads\n");
        exit (1);
    }
    f->mdb_before = s_mdb_size (data_dir);
    f->written_before = s_dev_written (data_dir);
    f->load_before = s_loadavg ();
    double bcpu0 = s_proc_cpu (broker), ccpu0 = s_self_cpu (), brun0, bwait0;
    s_proc_sched (broker, &brun0, &bwait0);
    uint64_t t0 = bench_now_ns ();
    if (o->seconds > 0)
        run->deadline_ns = t0 + (uint64_t) (o->seconds * 1e9);
    pthread_barrier_wait (&run->start);
    for (int t = 0; t < started; t++)
        pthread_join (threads[t], NULL);
    uint64_t t1 = bench_now_ns ();
    f->broker_cpu_s = s_proc_cpu (broker) - bcpu0;
    s_proc_sched (broker, &f->broker_run_s, &f->broker_wait_s);
    f->broker_run_s -= brun0;
    f->broker_wait_s -= bwait0;
    f->client_cpu_s = s_self_cpu () - ccpu0;
    f->wall_s = (double) (t1 - t0) / 1e9;
    f->mdb_after = s_mdb_size (data_dir);
    f->written_after = s_dev_written (data_dir);
    f->rss_kb = s_proc_kb (broker, "VmRSS");
    f->hwm_kb = s_proc_kb (broker, "VmHWM");
    f->anon_kb = s_proc_kb (broker, "RssAnon");
    f->file_kb = s_proc_kb (broker, "RssFile");
    pthread_barrier_destroy (&run->start);

    uint64_t first = UINT64_MAX, last_acc = 0, last_recv = 0;
    for (int i = 0; i < o->senders; i++) {
        s_sender_t *s = &snd[i];
        f->posted += s->posted;
        f->accepted += s->accepted;
        f->refused += s->refused;
        f->receipts += s->receipts;
        if (s->posted && s->first_post_ns < first)
            first = s->first_post_ns;
        if (s->last_accept_ns > last_acc)
            last_acc = s->last_accept_ns;
        if (s->err[0]) {
            fprintf (stderr, "dipx-bench: %s\n", s->err);
            if (!s->refused || s->accepted + s->refused < s->posted)
                rc = rc ? rc : DIPX_E_IO;
        }
    }
    size_t nlat = 0;
    for (int j = 0; j < o->receivers; j++) {
        f->received += rcv[j].received;
        f->foreign += rcv[j].foreign;
        f->redelivered += rcv[j].redelivered;
        nlat += rcv[j].nlat;
        if (rcv[j].last_recv_ns > last_recv)
            last_recv = rcv[j].last_recv_ns;
        if (rcv[j].err[0]) {
            fprintf (stderr, "dipx-bench: %s\n", rcv[j].err);
            rc = rc ? rc : DIPX_E_IO;
        }
    }
    if (f->refused)
        rc = rc ? rc : DIPX_E_IO;
    uint64_t *lat = malloc ((nlat ? nlat : 1) * sizeof *lat);
    size_t at = 0;
    double sum = 0;
    for (int j = 0; lat && j < o->receivers; j++) {
        for (size_t k = 0; k < rcv[j].nlat; k++)
            sum += (double) rcv[j].lat_ns[k];
        memcpy (lat + at, rcv[j].lat_ns, rcv[j].nlat * sizeof *lat);
        at += rcv[j].nlat;
    }
    if (lat) {
        qsort (lat, at, sizeof *lat, bench_cmp_u64);
        f->lat_n = at;
        f->lat_p50 = bench_pct_ms (lat, at, 0.50);
        f->lat_p99 = bench_pct_ms (lat, at, 0.99);
        f->lat_p999 = bench_pct_ms (lat, at, 0.999);
        f->lat_max = at ? (double) lat[at - 1] / 1e6 : NAN;
        f->lat_mean = at ? sum / (double) at / 1e6 : NAN;
    }
    free (lat);
    f->accept_s = first != UINT64_MAX && last_acc > first ? (double) (last_acc - first) / 1e9 : NAN;
    f->e2e_s = first != UINT64_MAX && last_recv > first ? (double) (last_recv - first) / 1e9 : NAN;
    f->accepted_per_s = (double) f->accepted / f->accept_s;
    f->e2e_per_s = (double) f->received / f->e2e_s;
done:
    for (int i = 0; snd && i < o->senders; i++) {
        dipx_client_destroy (&snd[i].client);
        for (uint64_t k = 0; snd[i].envs && k < snd[i].n; k++)
            free (snd[i].envs[k]);
        free (snd[i].envs);
        free (snd[i].env_lens);
    }
    for (int j = 0; rcv && j < o->receivers; j++) {
        dipx_client_destroy (&rcv[j].client);
        bench_ackonly_close (&rcv[j].raw);
        free (rcv[j].lat_ns);
    }
    if (zctx)
        zmq_ctx_term (zctx);
    if (run && run->post_ns) {
        for (int i = 0; i < o->senders; i++)
            free ((void *) run->post_ns[i]);
        free ((void *) run->post_ns);
    }
    if (run)
        free (run->ids.slots);
    free (run);
    free (snd);
    free (rcv);
    free (to);
    free (rid);
    free (threads);
    return rc;
}

/*  Restarts the broker twice (SIGTERM, then SIGKILL) and times READY; then
    drains the prequeued messages if asked.  */
static int
s_restart (const s_opts_t *o, dipx_fixture_t *fx, const s_where_t *w, uint64_t queued,
           s_restart_t *rs)
{
    int status = dipx_fixture_stop (fx, SIGTERM, 30000, &rs->term_stop_s);
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
        fprintf (stderr, "dipx-bench: broker exit status after SIGTERM: 0x%x\n", status);
    int rc = dipx_fixture_start (fx, 120000, &rs->term_ready_s);
    if (rc == 0) {
        dipx_fixture_stop (fx, SIGKILL, 1000, NULL);
        rc = dipx_fixture_start (fx, 120000, &rs->kill_ready_s);
    }
    rs->done = rc == 0;
    if (rc || !o->drain)
        return rc;
    s_receiver_t r = {.expect = queued};
    if ((rc = s_client (w, S_SINK_ID, (uint32_t) o->window, &r.client)))
        return rc;
    double t0 = s_now_s ();
    s_receiver_main (&r);
    rs->drain_s = s_now_s () - t0;
    rs->drain_count = r.received;
    rs->drain_per_s = (double) r.received / rs->drain_s;
    rs->drained = true;
    dipx_client_destroy (&r.client);
    free (r.lat_ns);
    if (r.err[0]) {
        fprintf (stderr, "dipx-bench: drain: %s\n", r.err);
        rc = DIPX_E_IO;
    }
    return rc;
}

static void
s_raise_nofile (void)
{
    struct rlimit rl;
    if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit (RLIMIT_NOFILE, &rl);
    }
}

int
main (int argc, char **argv)
{
    s_opts_t o;
    if (s_parse (argc, argv, &o) != 0)
        return 2;
    bench_prog = "dipx-bench";
    bench_quiet = o.quiet;
    if (sodium_init () < 0)
        return 1;
    if (o.make_ids)
        return s_make_identities (&o);
    s_raise_nofile ();
    signal (SIGPIPE, SIG_IGN);

    dipx_fixture_t *fx = NULL;
    s_where_t w = {0};
    const char *data_dir = o.data_dir;
    pid_t broker = o.broker_pid;
    s_figures_t f = {.mdb_before = -1, .mdb_after = -1, .written_before = -1,
                     .written_after = -1, .rss_kb = -1, .hwm_kb = -1,
                     .anon_kb = -1, .file_kb = -1};
    s_prequeue_t pq = {0};
    s_restart_t rs = {0};
    s_idle_fig_t idf = {0};
    s_micro_t mc = {0};
    s_idle_t idle = {.cmd_fd = -1};
    bool ran = false, micro_done = false;
    int rc = 0;

    if (o.endpoint) {
        w.endpoint = o.endpoint;
        w.broker_key = o.broker_key;
        snprintf (w.dir, sizeof w.dir, "%s", o.identity_dir);
        static char peers[600];
        snprintf (peers, sizeof peers, "%s/peers", o.identity_dir);
        w.peers = peers;
    } else {
        char extra[512];
        snprintf (extra, sizeof extra,
                  "verify_threads = %d\nbatch = %d\nwindow = %d\nqueue_max_messages = 100000000\n"
                  "queue_max_mb = 1048576\nmap_size_mb = 1024\nmax_sessions = 65536\n"
                  "log_level = warn",
                  o.verify_threads, o.batch, o.window);
        dipx_fixture_options_t fo = {.dipxd = o.dipxd, .policy = o.policy, .tmpdir = o.tmpdir,
                                     .extra = extra, .keep = o.keep};
        if ((rc = dipx_fixture_new (&fo, &fx))) {
            fprintf (stderr, "dipx-bench: fixture: %s\n", dipx_strerror (rc));
            return 1;
        }
        unsigned both = DIPX_FIXTURE_SECRET | DIPX_FIXTURE_PEER;
        char id[DIPX_MAX_AGENCY_ID + 1];
        for (int i = 0; rc >= 0 && i < o.senders; i++) {
            s_sender_id (i, id, sizeof id);
            rc = dipx_fixture_add (fx, id, DIPX_AGENCY_POLICE, both);
        }
        for (int j = 0; rc >= 0 && j < o.receivers; j++) {
            s_receiver_id (j, id, sizeof id);
            rc = dipx_fixture_add (fx, id, DIPX_AGENCY_CJIT, both);
        }
        if (rc >= 0)
            rc = dipx_fixture_add (fx, S_FILL_ID, DIPX_AGENCY_POLICE, both);
        if (rc >= 0)
            rc = dipx_fixture_add (fx, S_SINK_ID, DIPX_AGENCY_CJIT, both);
        size_t idle_first = dipx_fixture_size (fx);
        if (o.idle)
            bench_say ("generating %d idle agencies", o.idle);
        for (int k = 0; rc >= 0 && k < o.idle; k++) {
            snprintf (id, sizeof id, "cjit.idle.%d", k + 1);
            rc = dipx_fixture_add (fx, id, DIPX_AGENCY_CJIT, 0);
        }
        double ready_s = 0;
        if (rc >= 0)
            rc = dipx_fixture_start (fx, 120000, &ready_s);
        if (rc < 0) {
            fprintf (stderr, "dipx-bench: broker set-up: %s\n", dipx_strerror (rc));
            dipx_fixture_destroy (&fx);
            return 1;
        }
        rc = 0;
        bench_say ("broker %d ready in %.3f s at %s (dir %s)", (int) dipx_fixture_pid (fx), ready_s,
               dipx_fixture_endpoint (fx), dipx_fixture_dir (fx));
        w.endpoint = dipx_fixture_endpoint (fx);
        w.broker_key = dipx_fixture_broker_key (fx);
        w.peers = dipx_fixture_peers (fx);
        snprintf (w.dir, sizeof w.dir, "%s", dipx_fixture_dir (fx));
        data_dir = dipx_fixture_data_dir (fx);
        broker = dipx_fixture_pid (fx);
        if (o.idle) {
            /* Before any client: the helpers are forked from a process that
               has no thread and no ZeroMQ context yet.  */
            idf.requested = o.idle;
            idf.rss_before_kb = s_proc_kb (broker, "VmRSS");
            s_idle_report_t rep;
            bench_say ("connecting %d idle agencies", o.idle);
            if (s_idle_start (fx, idle_first, o.idle, o.idle_window, o.idle_wave, o.idle_per_helper,
                              o.idle_heartbeat, &idle, &rep) != 0)
                fprintf (stderr, "dipx-bench: cannot start the idle helpers\n");
            idf.connected = rep.connected;
            idf.failed = rep.failed;
            idf.connect_s = rep.secs;
            idf.rss_after_kb = s_proc_kb (broker, "VmRSS");
            idf.hwm_kb = s_proc_kb (broker, "VmHWM");
            idf.anon_after_kb = s_proc_kb (broker, "RssAnon");
            /* What merely holding them costs: heartbeats and timers.  */
            double c0 = s_proc_cpu (broker), h0 = s_now_s ();
            s_sleep_ns (S_IDLE_HOLD_NS);
            idf.hold_cpu_cores = (s_proc_cpu (broker) - c0) / (s_now_s () - h0);
            bench_say ("%d idle agencies connected in %.1f s (%d failed)", rep.connected, rep.secs,
                   rep.failed);
            char from[DIPX_MAX_AGENCY_ID + 1], to[DIPX_MAX_AGENCY_ID + 1];
            s_sender_id (0, from, sizeof from);
            s_receiver_id (0, to, sizeof to);
            if (s_roundtrips (&w, from, to, S_ROUNDTRIPS, o.payload, &idf) != 0) {
                fprintf (stderr, "dipx-bench: idle: %s\n", idf.err);
                rc = 1;
            }
            idf.done = true;
        }
    }
    if (rc == 0 && o.micro) {
        dipx_client_t *c = NULL;
        char from[DIPX_MAX_AGENCY_ID + 1], to[DIPX_MAX_AGENCY_ID + 1];
        s_sender_id (0, from, sizeof from);
        s_receiver_id (0, to, sizeof to);
        if (s_client (&w, from, 0, &c) == 0) {
            s_micro (c, to, o.payload, fx ? dipx_fixture_dir (fx) : o.tmpdir, &mc);
            micro_done = true;
        }
        dipx_client_destroy (&c);
    }
    if (rc == 0 && o.prequeue && (o.messages || o.seconds > 0)) {
        /* The same run first, on the same broker, so that the deep-queue
           figure has a baseline measured under the same conditions.  */
        bench_say ("running before the prequeue: %s, %" PRIu64 " messages",
                   o.mode == S_REPLAY ? "replay" : "live", o.messages);
        pq.base = f;
        rc = s_run (&o, &w, broker, data_dir, &pq.base);
        pq.based = rc == 0 && pq.base.accepted > 0;
        if (rc)
            fprintf (stderr, "dipx-bench: run before the prequeue failed\n");
    }
    if (rc == 0 && o.prequeue) {
        bench_say ("prequeueing %" PRIu64 " messages to %s", o.prequeue, S_SINK_ID);
        pq.mdb_before = s_mdb_size (data_dir);
        rc = s_prequeue (&o, &w, &pq);
        pq.mdb_after = s_mdb_size (data_dir);
        pq.rss_kb = s_proc_kb (broker, "VmRSS");
        pq.done = true;
        if (rc)
            fprintf (stderr, "dipx-bench: prequeue: %s\n", dipx_strerror (rc));
    }
    if (rc == 0 && (o.messages || o.seconds > 0)) {
        bench_say ("running: %s, %" PRIu64 " messages%s", o.mode == S_REPLAY ? "replay" : "live",
               o.messages, o.seconds > 0 ? " or until the deadline" : "");
        rc = s_run (&o, &w, broker, data_dir, &f);
        ran = f.accepted > 0;
        if (rc)
            fprintf (stderr, "dipx-bench: run failed\n");
    }
    s_idle_stop (&idle);
    if (rc == 0 && o.restart && fx) {
        bench_say ("restarting the broker");
        rc = s_restart (&o, fx, &w, pq.count, &rs);
        if (rc)
            fprintf (stderr, "dipx-bench: restart: %s\n", dipx_strerror (rc));
    }
    s_print (&o, &f, ran, &pq, &rs, &idf, &mc, micro_done);
    if (o.json && s_write_json (o.json, &o, &f, ran, &pq, &rs, &idf, &mc, micro_done) != 0) {
        fprintf (stderr, "dipx-bench: cannot write %s\n", o.json);
        rc = rc ? rc : 1;
    }
    dipx_fixture_destroy (&fx);
    return rc ? 1 : 0;
}
