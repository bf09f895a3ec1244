/*  dipxd_main.c - the broker's entry point: arguments, configuration,
    signals. The service itself is dipx_server.c.

        dipxd --config FILE [--ready-fd N]   run the broker
        dipxd --config FILE --check          load everything, self-check, exit
        dipxd --print-config                 the config table with defaults
        dipxd audit --data DIR [--after N] [--subject REF | --id ID]
                    [--since T] [--until T] [--text]
                                             print the audit log as JSON lines,
                                             or what it says about one subject
                                             or message, in a period
        dipxd dead --data DIR                list dead letters (metadata only)

    --ready-fd N: once the broker is listening and has passed its self-check,
    it writes "READY <endpoint> <public key>\n" to file descriptor N and closes
    it, so that a supervisor or a test waits on an event rather than a sleep.
*/
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "dipx_audit.h"
#include "dipx_card.h"
#include "dipx_config.h"
#include "dipx_log.h"
#include "dipx_server.h"
#include "dipx_store.h"

static volatile sig_atomic_t s_stop, s_reload;

static void
s_on_stop (int sig)
{
    (void) sig;
    s_stop = 1;
}

static void
s_on_hup (int sig)
{
    (void) sig;
    s_reload = 1;
}

static int
s_usage (void)
{
    fprintf (stderr, "usage: dipxd --config FILE [--ready-fd N] [--check]\n"
                     "       dipxd --print-config\n"
                     "       dipxd audit --data DIR [--after SEQ] [--subject HEX | --id HEX]\n"
                     "                   [--since TIME] [--until TIME] [--text]\n"
                     "           (TIME: YYYY-MM-DDTHH:MM:SSZ or ms since the epoch)\n"
                     "       dipxd dead --data DIR [--redrive SEQ]\n");
    return 2;
}

/*  A decimal number, all of text: 0, or DIPX_E_SYNTAX.  */
static int
s_parse_u64 (const char *text, uint64_t *out)
{
    if (text[0] < '0' || text[0] > '9') /* strtoull would take " -5" */
        return DIPX_E_SYNTAX;
    char *end;
    errno = 0;
    unsigned long long v = strtoull (text, &end, 10);
    if (errno || *end)
        return DIPX_E_SYNTAX;
    *out = v;
    return 0;
}

/*  Exactly len bytes as hex.  */
static int
s_parse_hex (const char *text, uint8_t *out, size_t len)
{
    size_t got;
    const char *end;
    if (strlen (text) != 2 * len
        || sodium_hex2bin (out, len, text, strlen (text), NULL, &got, &end) != 0 || got != len)
        return DIPX_E_SYNTAX;
    return 0;
}

/*  What `dipxd audit` prints, and the filters on it.  */
typedef struct {
    uint64_t after;  /* audit seq above which to print */
    uint64_t since;  /* at >= since (ms) */
    uint64_t until;  /* at < until (ms) */
    bool text;       /* text for people, else JSON lines */
    uint64_t last;   /* last seq passed to s_audit_print */
    uint64_t n;      /* records passed */
} s_audit_out_t;

static int
s_audit_print (const dipx_audit_t *rec, void *arg)
{
    s_audit_out_t *o = arg;
    o->last = rec->seq;
    o->n++;
    if (rec->seq <= o->after || rec->at < o->since || rec->at >= o->until)
        return 0;
    return o->text ? dipx_audit_print_text (rec, stdout) : dipx_audit_print_json (rec, stdout);
}

/*  A time bound: "YYYY-MM-DDTHH:MM:SSZ" or milliseconds since the epoch.  */
static int
s_parse_when (const char *text, uint64_t *ms)
{
    int64_t secs;
    if (dipx_time_parse (text, strlen (text), &secs) == 0) {
        *ms = (uint64_t) secs * 1000;
        return 0;
    }
    return s_parse_u64 (text, ms);
}

static int
s_audit (int argc, char **argv)
{
    const char *dir = NULL;
    s_audit_out_t out = {.until = UINT64_MAX};
    uint8_t subj[DIPX_SUBJ_BYTES], id[DIPX_ID_BYTES];
    bool by_subj = false, by_id = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (strcmp (a, "--text") == 0) {
            out.text = true;
            continue;
        }
        if (!v)
            return s_usage ();
        if (strcmp (a, "--data") == 0)
            dir = v;
        else if (strcmp (a, "--after") == 0)
            bad = s_parse_u64 (v, &out.after);
        else if (strcmp (a, "--since") == 0)
            bad = s_parse_when (v, &out.since);
        else if (strcmp (a, "--until") == 0)
            bad = s_parse_when (v, &out.until);
        else if (strcmp (a, "--subject") == 0 && !by_id && !by_subj) {
            bad = s_parse_hex (v, subj, sizeof subj);
            by_subj = true;
        } else if (strcmp (a, "--id") == 0 && !by_subj && !by_id) {
            bad = s_parse_hex (v, id, sizeof id);
            by_id = true;
        } else
            return s_usage ();
        if (bad) {
            fprintf (stderr, "dipxd audit: %s: bad value \"%s\"\n", a, v);
            return 2;
        }
        i++;
    }
    if (!dir)
        return s_usage ();
    if (out.since >= out.until) {
        fprintf (stderr, "dipxd audit: --since must be before --until\n");
        return 2;
    }
    dipx_store_t *store = NULL;
    dipx_txn_t *txn;
    /* A query's lookups are scattered over the log; the dump is a scan.  */
    unsigned flags = DIPX_STORE_READONLY | (by_subj || by_id ? DIPX_STORE_RANDOM : 0);
    int rc = dipx_store_open (dir, 1 << 20, 1 << 20, flags, &store);
    if (rc == 0 && by_subj) {
        /* The subject's pages first, read in parallel (a hint: failure is
           no error), before this thread holds a read transaction.  */
        dipx_pool_t *pool = dipx_pool_new (DIPX_AUDIT_PREFETCH_THREADS - 1);
        int prc = pool ? dipx_store_prefetch_subject (store, subj, pool) : DIPX_E_NOMEM;
        if (prc)
            fprintf (stderr, "dipxd audit: reading ahead: %s (the query goes on)\n",
                     dipx_strerror (prc));
        dipx_pool_destroy (&pool);
    }
    if (rc == 0 && (rc = dipx_store_begin_read (store, &txn)) != 0)
        dipx_store_destroy (&store);
    if (rc) {
        fprintf (stderr, "dipxd audit: %s: %s\n", dir, dipx_strerror (rc));
        return 1;
    }
    if (by_subj) {
        /* Page by page: a subject's history may be long. Each page reads
           the subject index again up to its end, so pages are large.  */
        out.last = out.after;
        uint64_t before;
        do {
            before = out.n;
            rc = dipx_store_audit_for_subject (txn, subj, out.last, DIPX_AUDIT_PAGE_MAX,
                                               s_audit_print, &out);
        } while (rc == 0 && out.n - before == DIPX_AUDIT_PAGE_MAX);
    } else if (by_id) {
        rc = dipx_store_audit_for_id (txn, id, SIZE_MAX, s_audit_print, &out);
    } else {
        uint64_t last = dipx_store_audit_last (txn);
        for (uint64_t seq = out.after + 1; out.after < last && seq <= last && rc == 0; seq++) {
            dipx_audit_t rec;
            rc = dipx_store_audit_get (txn, seq, &rec);
            if (rc == 0)
                rc = s_audit_print (&rec, &out);
            else
                fprintf (stderr, "dipxd audit: record %llu: %s\n", (unsigned long long) seq,
                         dipx_strerror (rc));
        }
    }
    if (rc && (by_subj || by_id))
        fprintf (stderr, "dipxd audit: %s\n", dipx_strerror (rc));
    dipx_store_abort (&txn);
    dipx_store_destroy (&store);
    return rc ? 1 : 0;
}

/*  Puts dead letter seq back in its queue, with an audit record. LMDB lets
    this process write beside a running broker (writers take turns); the
    broker notices the redrive epoch and rescans its queues.  */
static int
s_redrive (const char *dir, uint64_t seq)
{
    dipx_store_t *store = NULL;
    dipx_txn_t *txn = NULL;
    int rc = dipx_store_open (dir, 1 << 20, 1 << 20, 0, &store);
    if (rc == 0)
        rc = dipx_store_begin (store, &txn);
    dipx_msgrec_t m;
    if (rc == 0)
        rc = dipx_store_msg_get (txn, seq, &m);
    dipx_audit_t rec;
    dipx_audit_init (&rec, DIPX_AUDIT_REDRIVEN, dipx_now_ms ());
    if (rc == 0) {
        memcpy (rec.id, m.id, DIPX_ID_BYTES);
        memcpy (rec.from, m.from, sizeof rec.from);
        memcpy (rec.to, m.to, sizeof rec.to);
        snprintf (rec.by, sizeof rec.by, "operator");
        rec.msg_seq = seq;
        rec.count = m.count;
        rec.present |= DIPX_AU_ID | DIPX_AU_FROM | DIPX_AU_TO | DIPX_AU_BY | DIPX_AU_MSG_SEQ
                       | DIPX_AU_COUNT;
        rc = dipx_store_msg_redrive (txn, seq);
    }
    if (rc == 0)
        rc = dipx_store_audit (txn, &rec);
    if (rc == 0)
        rc = dipx_store_commit (&txn);
    dipx_store_abort (&txn);
    if (rc)
        fprintf (stderr, "dipxd dead: redrive %llu: %s\n", (unsigned long long) seq,
                 rc == DIPX_E_STATE ? "not a dead letter" : dipx_strerror (rc));
    else
        printf ("redriven %llu\n", (unsigned long long) seq);
    if (store)
        dipx_store_destroy (&store);
    return rc ? 1 : 0;
}

static int
s_dead (int argc, char **argv)
{
    const char *dir = NULL;
    uint64_t redrive = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--data") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp (argv[i], "--redrive") == 0 && i + 1 < argc) {
            if (s_parse_u64 (argv[++i], &redrive) != 0 || redrive == 0)
                return s_usage ();
        } else
            return s_usage ();
    }
    if (!dir)
        return s_usage ();
    if (redrive)
        return s_redrive (dir, redrive);
    dipx_store_t *store = NULL;
    dipx_txn_t *txn;
    int rc = dipx_store_open (dir, 1 << 20, 1 << 20, DIPX_STORE_READONLY, &store);
    if (rc == 0 && (rc = dipx_store_begin_read (store, &txn)) != 0)
        dipx_store_destroy (&store);
    if (rc) {
        fprintf (stderr, "dipxd dead: %s: %s\n", dir, dipx_strerror (rc));
        return 1;
    }
    uint64_t after = 0, at, code;
    dipx_msgrec_t m;
    char reason[DIPX_MAX_REASON + 1];
    while ((rc = dipx_store_dead_next (txn, after, &m, &at, &code, reason)) == 0) {
        char id[2 * DIPX_ID_BYTES + 1];
        sodium_bin2hex (id, sizeof id, m.id, DIPX_ID_BYTES);
        printf ("%llu %s from=%s to=%s deliveries=%u at=%llu code=%s reason=\"%s\"\n",
                (unsigned long long) m.seq, id, m.from, m.to, m.count, (unsigned long long) at,
                code < 1000 ? dipx_error_name ((int) code) : "?", reason);
        after = m.seq;
    }
    dipx_store_abort (&txn);
    dipx_store_destroy (&store);
    return rc == DIPX_E_NOT_FOUND ? 0 : 1;
}

/*  Every connection is a descriptor, and a service manager's soft limit is
    often 1024: take the hard limit. libzmq's listener cannot back off from
    EMFILE (the listening socket stays readable, and its I/O thread spins on
    accept), so running out of descriptors must not happen below
    max_sessions; say so if the hard limit allows no more.  */
static void
s_raise_nofile (const dipx_config_t *cfg)
{
    struct rlimit rl;
    if (getrlimit (RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit (RLIMIT_NOFILE, &rl) != 0)
            getrlimit (RLIMIT_NOFILE, &rl);
    }
    /* Headroom beside the agencies: LMDB, ZeroMQ's mailboxes, the log.  */
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < cfg->max_sessions + 256)
        dipx_log_warn ("open files limited to %llu: fewer than max_sessions (%llu) agencies can "
                       "connect; raise LimitNOFILE / ulimit -n",
                       (unsigned long long) rl.rlim_cur, (unsigned long long) cfg->max_sessions);
}

int
main (int argc, char **argv)
{
    const char *cfg_path = NULL;
    int ready_fd = -1;
    bool check = false;
    if (argc > 1 && strcmp (argv[1], "audit") == 0)
        return s_audit (argc - 1, argv + 1);
    if (argc > 1 && strcmp (argv[1], "dead") == 0)
        return s_dead (argc - 1, argv + 1);
    dipx_config_t cfg;
    dipx_config_defaults (&cfg);
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--config") == 0 && i + 1 < argc)
            cfg_path = argv[++i];
        else if (strcmp (argv[i], "--ready-fd") == 0 && i + 1 < argc)
            ready_fd = atoi (argv[++i]);
        else if (strcmp (argv[i], "--check") == 0)
            check = true;
        else if (strcmp (argv[i], "--print-config") == 0) {
            dipx_config_print (&cfg, stdout);
            return 0;
        } else
            return s_usage ();
    }
    if (!cfg_path)
        return s_usage ();
    char err[512];
    if (dipx_config_load (&cfg, cfg_path, err, sizeof err) != 0) {
        dipx_log_error ("config: %s", err);
        return 1;
    }
    dipx_log_set_level (cfg.log_level);

    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_stop; /* no SA_RESTART: zmq_poll returns EINTR */
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    sa.sa_handler = s_on_hup;
    sigaction (SIGHUP, &sa, NULL);
    signal (SIGPIPE, SIG_IGN);
    /* A file-size limit must fail a write (EFBIG, refused as storage_full),
       not kill the broker.  */
    signal (SIGXFSZ, SIG_IGN);

    s_raise_nofile (&cfg);
    dipx_server_t *server;
    int rc = dipx_server_new (&cfg, &server);
    if (rc) {
        /* Some failures (out of memory, a ZeroMQ context) are not logged
           where they happen: a refusal to start always says why.  */
        dipx_log_error ("not started: %s", dipx_strerror (rc));
        return 1;
    }
    if (check) {
        printf ("ok: %s %s\n", dipx_server_endpoint (server), dipx_server_public_key (server));
        dipx_server_destroy (&server);
        return 0;
    }
    if (ready_fd >= 0) {
        char line[DIPX_CONFIG_PATH_MAX + 64];
        int n = snprintf (line, sizeof line, "READY %s %s\n", dipx_server_endpoint (server),
                          dipx_server_public_key (server));
        if (write (ready_fd, line, (size_t) n) != n)
            dipx_log_warn ("ready-fd %d: %s", ready_fd, strerror (errno));
        close (ready_fd);
    }
    rc = dipx_server_run (server, &s_stop, &s_reload, cfg_path);
    dipx_server_destroy (&server);
    return rc ? 1 : 0;
}
