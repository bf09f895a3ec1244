/*  dipx_bench_audit.c - dipx-bench-audit: how fast an auditor can list every
    record about one subject (a subject access request) in a large audit log.

    It writes the log through the broker's own store code (dipx_store: the
    records and indexes dipxd writes, committed with fsync in batches), shaped
    like a programme's traffic over seven years: each message is accepted,
    delivered and acknowledged with a signature (three records, written
    apart from one another as the broker writes them), one send in 50 is
    refused, and there is a session record per 100 messages. Each message is
    about a subject drawn uniformly from S subjects (S = messages /
    --per-subject). Then it times dipx_store_audit_for_subject, which is
    what `dipxd audit --subject` runs:
      - warm: Q random subjects with the file in the page cache;
      - cold: C random subjects, each after closing the store and dropping
        the file's pages from the page cache (posix_fadvise DONTNEED), so
        every page the query touches is read from disk: as the command runs
        it (its pages read first on 4 threads), and with one thread;
      - the command: `dipxd audit --subject` as a process (start, open,
        query, JSON to /dev/null).
    Every query's record count is checked against the count the fill kept
    per subject: a wrong answer fails the run (exit 1), a slow one never.

        dipx-bench-audit [--entries N] [--per-subject M] [--queries Q]
                         [--cold C] [--data DIR] [--json FILE] [--quiet]

    --data DIR reuses (or keeps) the log in DIR: a log that already holds
    N entries is queried without refilling, and its counts are not checked.
*/
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "dipx_audit.h"
#include "dipx_envelope.h"
#include "dipx_error.h"
#include "dipx_store.h"

extern char **environ;

#define S_MSGS_PER_TXN 2000
#define S_SPAN_MS (7ull * 365 * 24 * 3600 * 1000) /* seven years of traffic */
#define S_T0 1577836800000ull                     /* 2020-01-01 */
#define S_CLI_RUNS 20
#define S_TTL_MS (30ull * 24 * 3600 * 1000)

typedef struct {
    uint64_t entries;     /* audit records to write */
    uint64_t per_subject; /* messages per subject, on average */
    uint64_t queries;     /* warm queries */
    uint64_t cold;        /* cold queries */
    const char *data;     /* store directory to reuse, or NULL */
    const char *json;     /* JSON output, or NULL */
    const char *dipxd;    /* for the command timing */
    bool quiet;
} s_opts_t;

/*  One query timing set.  */
typedef struct {
    uint64_t *ns;   /* per query */
    size_t n;       /* queries */
    double records; /* mean records per query */
} s_times_t;

typedef struct {
    uint64_t messages, subjects, entries;
    double fill_s;         /* fill wall time */
    uint64_t file_bytes;   /* data.mdb size */
    bool checked;          /* counts compared */
    s_times_t warm, cold, cold1, cli;
    double open_cold_ms;   /* mean store open time before a cold query */
} s_result_t;

/*  Subject k's reference: what an agency's keyed hash would give.  */
static void
s_subject (uint64_t k, uint8_t out[DIPX_SUBJ_BYTES])
{
    static const uint8_t key[crypto_generichash_KEYBYTES] = "dipx-bench-audit programme key";
    uint8_t in[8];
    for (int i = 0; i < 8; i++)
        in[i] = (uint8_t) (k >> (8 * i));
    crypto_generichash (out, DIPX_SUBJ_BYTES, in, sizeof in, key, sizeof key);
}

/* --- the fill ------------------------------------------------------------ */

/*  The envelope every message is stored with: a real sealed one (the store
    keeps its bytes until the ack), re-addressed per message by id and
    subject in its decoded header, which is what the store indexes.  */
typedef struct {
    uint8_t *raw;
    size_t len;
    dipx_envelope_t env;
    uint8_t digest[2 * DIPX_HASH_BYTES];
} s_env_t;

static int
s_env_make (s_env_t *e)
{
    uint8_t sign_pk[crypto_sign_PUBLICKEYBYTES], sign_sk[crypto_sign_SECRETKEYBYTES];
    uint8_t shared[crypto_box_BEFORENMBYTES], body[512];
    crypto_sign_keypair (sign_pk, sign_sk);
    randombytes_buf (shared, sizeof shared);
    randombytes_buf (body, sizeof body);
    dipx_header_t h;
    memset (&h, 0, sizeof h);
    h.v = 1;
    randombytes_buf (h.id, sizeof h.id);
    strcpy (h.type, "drug_test_result");
    strcpy (h.from, "police.met.brixton");
    strcpy (h.to, "cjit.lambeth");
    h.basis = DIPX_BASIS_STATUTE;
    strcpy (h.ref, "PACE s.63B");
    h.purpose = DIPX_PURPOSE_LAW_ENFORCEMENT;
    h.cats = (1u << DIPX_CAT_IDENTIFIERS) | (1u << DIPX_CAT_TEST_RESULTS);
    h.created = S_T0;
    h.expires = S_T0 + S_TTL_MS;
    int rc = dipx_envelope_seal (&h, body, sizeof body, shared, sign_sk, &e->raw, &e->len);
    if (rc == 0)
        rc = dipx_envelope_decode (e->raw, e->len, &e->env);
    if (rc == 0)
        rc = dipx_envelope_verify (&e->env, sign_pk, e->digest);
    return rc;
}

/*  One batch's messages, as the broker would have them in flight.  */
typedef struct {
    uint64_t seq;               /* 0: refused, not stored */
    uint8_t id[DIPX_ID_BYTES];  /* message id */
    uint64_t subject;           /* subject index */
} s_inflight_t;

static int
s_audit_hdr (dipx_txn_t *txn, int event, const dipx_header_t *h, uint64_t seq, uint64_t now,
             uint64_t count)
{
    dipx_audit_t rec;
    dipx_audit_init (&rec, event, now);
    dipx_audit_set_header (&rec, h);
    if (seq) {
        rec.msg_seq = seq;
        rec.present |= DIPX_AU_MSG_SEQ;
    }
    if (count) {
        rec.count = count;
        rec.present |= DIPX_AU_COUNT;
    }
    if (event == DIPX_AUDIT_REFUSED) {
        rec.code = (uint64_t) -DIPX_E_POLICY;
        rec.present |= DIPX_AU_CODE;
        dipx_audit_set_reason (&rec, "no policy rule allows drug_test_result police -> court");
    }
    return dipx_store_audit (txn, &rec);
}

/*  One transaction: n messages accepted (or refused), then delivered, then
    acknowledged. counts[k] gains the records about subject k.  */
static int
s_fill_batch (dipx_store_t *store, s_env_t *e, s_inflight_t *b, size_t n, uint64_t *msg_no,
              uint64_t total_msgs, uint64_t nsubj, uint32_t *counts)
{
    dipx_txn_t *txn;
    int rc = dipx_store_begin (store, &txn);
    dipx_header_t *h = &e->env.h;
    for (size_t i = 0; rc == 0 && i < n; i++, (*msg_no)++) {
        uint64_t now = S_T0 + *msg_no * (S_SPAN_MS / total_msgs);
        b[i].subject = randombytes_uniform ((uint32_t) nsubj);
        /* Ids as libdipx makes them: 48-bit creation time, then random.  */
        for (int j = 0; j < 6; j++)
            b[i].id[j] = (uint8_t) (now >> (8 * (5 - j)));
        randombytes_buf (b[i].id + 6, DIPX_ID_BYTES - 6);
        memcpy (h->id, b[i].id, DIPX_ID_BYTES);
        s_subject (b[i].subject, h->subj);
        h->created = now;
        h->expires = now + S_TTL_MS;
        counts[b[i].subject]++;
        b[i].seq = 0;
        if (*msg_no % 50 == 49) {
            rc = s_audit_hdr (txn, DIPX_AUDIT_REFUSED, h, 0, now, 0);
            continue;
        }
        rc = dipx_store_enqueue (txn, &e->env, e->raw, e->len, e->digest, now, &b[i].seq);
        if (rc == 0)
            rc = s_audit_hdr (txn, DIPX_AUDIT_ACCEPTED, h, b[i].seq, now, 0);
        if (rc == 0 && *msg_no % 100 == 0) {
            dipx_audit_t rec;
            dipx_audit_init (&rec, DIPX_AUDIT_SESSION, now);
            strcpy (rec.by, "cjit.lambeth");
            rec.count = 64;
            rec.present |= DIPX_AU_BY | DIPX_AU_COUNT;
            rc = dipx_store_audit (txn, &rec);
        }
    }
    uint64_t now = S_T0 + *msg_no * (S_SPAN_MS / total_msgs);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!b[i].seq)
            continue;
        uint32_t count;
        memcpy (h->id, b[i].id, DIPX_ID_BYTES);
        s_subject (b[i].subject, h->subj);
        rc = dipx_store_msg_delivered (txn, b[i].seq, now, &count);
        if (rc == 0)
            rc = s_audit_hdr (txn, DIPX_AUDIT_DELIVERED, h, b[i].seq, now, count);
        counts[b[i].subject]++;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!b[i].seq)
            continue;
        rc = dipx_store_msg_acked (txn, b[i].seq);
        dipx_audit_t rec; /* as the broker writes a signed acknowledgement */
        dipx_audit_init (&rec, DIPX_AUDIT_ACKED, now + 1);
        memcpy (rec.id, b[i].id, DIPX_ID_BYTES);
        strcpy (rec.from, h->from);
        strcpy (rec.to, h->to);
        strcpy (rec.by, h->to);
        randombytes_buf (rec.sig, sizeof rec.sig);
        rec.sig_at = now;
        rec.msg_seq = b[i].seq;
        rec.count = 1;
        rec.present |= DIPX_AU_ID | DIPX_AU_FROM | DIPX_AU_TO | DIPX_AU_BY | DIPX_AU_SIG
                       | DIPX_AU_SIG_AT | DIPX_AU_MSG_SEQ | DIPX_AU_COUNT;
        if (rc == 0)
            rc = dipx_store_audit (txn, &rec);
        counts[b[i].subject]++;
    }
    if (rc == 0)
        return dipx_store_commit (&txn);
    dipx_store_abort (&txn);
    return rc;
}

static int
s_fill (dipx_store_t *store, uint64_t entries, uint64_t nsubj, uint64_t total_msgs,
        uint32_t *counts, uint64_t *messages)
{
    s_env_t e;
    int rc = s_env_make (&e);
    if (rc)
        return rc;
    static s_inflight_t batch[S_MSGS_PER_TXN];
    uint64_t msg_no = 0, last = 0, t0 = bench_now_ns (), said = t0;
    while (rc == 0 && last < entries) {
        rc = s_fill_batch (store, &e, batch, S_MSGS_PER_TXN, &msg_no, total_msgs, nsubj, counts);
        dipx_txn_t *txn;
        if (rc == 0 && (rc = dipx_store_begin_read (store, &txn)) == 0) {
            last = dipx_store_audit_last (txn);
            dipx_store_abort (&txn);
        }
        uint64_t t = bench_now_ns ();
        if (t - said > 5000000000ull) {
            said = t;
            bench_say ("filled %" PRIu64 " of %" PRIu64 " entries (%.0f/s)", last, entries,
                   (double) last / ((double) (t - t0) / 1e9));
        }
    }
    *messages = msg_no;
    free (e.raw);
    return rc;
}

/* --- queries ------------------------------------------------------------- */

typedef struct {
    uint64_t n;    /* records seen */
    uint64_t last; /* the last one's seq */
} s_seen_t;

static int
s_count (const dipx_audit_t *rec, void *arg)
{
    s_seen_t *seen = arg;
    seen->n++;
    seen->last = rec->seq;
    return 0;
}

/*  Every record about subject k, page by page as `dipxd audit` reads them;
    with a pool, its pages are read on the pool's threads first, as the
    command does.  */
static int
s_query (dipx_store_t *store, dipx_pool_t *pool, uint64_t k, uint64_t *records, uint64_t *ns)
{
    enum { PAGE = 4096 };
    uint8_t subj[DIPX_SUBJ_BYTES];
    s_subject (k, subj);
    dipx_txn_t *txn;
    uint64_t t0 = bench_now_ns ();
    int rc = pool ? dipx_store_prefetch_subject (store, subj, pool) : 0;
    if (rc == 0)
        rc = dipx_store_begin_read (store, &txn);
    if (rc)
        return rc;
    s_seen_t seen = {0, 0};
    uint64_t before;
    do {
        before = seen.n;
        rc = dipx_store_audit_for_subject (txn, subj, seen.last, PAGE, s_count, &seen);
    } while (rc == 0 && seen.n - before == PAGE);
    dipx_store_abort (&txn);
    *ns = bench_now_ns () - t0;
    *records = seen.n;
    return rc;
}

static int
s_times_alloc (s_times_t *t, size_t n)
{
    t->ns = calloc (n ? n : 1, sizeof *t->ns);
    t->n = 0;
    t->records = 0;
    return t->ns ? 0 : DIPX_E_NOMEM;
}

static void
s_times_add (s_times_t *t, uint64_t ns, uint64_t records)
{
    t->records += ((double) records - t->records) / (double) (t->n + 1);
    t->ns[t->n++] = ns;
}

/*  A query's count against the fill's: a wrong answer fails the run.  */
static int
s_check (const uint32_t *counts, uint64_t k, uint64_t got)
{
    if (!counts || counts[k] == got)
        return 0;
    fprintf (stderr, "dipx-bench-audit: subject %" PRIu64 ": %" PRIu64 " records, expected %u\n",
             k, got, counts[k]);
    return DIPX_E_CORRUPT;
}

/*  The log's file, opened for reading: a descriptor or -1.  */
static int
s_open_log (const char *dir)
{
    char path[1200];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    return open (path, O_RDONLY | O_CLOEXEC);
}

/*  Drops data.mdb's pages from the page cache (the store must be closed:
    mapped pages stay).  */
static int
s_drop_cache (const char *dir)
{
    int fd = s_open_log (dir);
    if (fd < 0)
        return DIPX_E_IO;
    int rc = posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED);
    close (fd);
    return rc ? DIPX_E_IO : 0;
}

/*  Reads data.mdb through once, so that "warm" means the whole log is in
    the page cache, as on a broker whose machine has the memory for it.  */
static int
s_warm_up (const char *dir)
{
    int fd = s_open_log (dir);
    if (fd < 0)
        return DIPX_E_IO;
    posix_fadvise (fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    static char buf[1 << 20];
    ssize_t n;
    while ((n = read (fd, buf, sizeof buf)) > 0)
        ;
    close (fd);
    return n < 0 ? DIPX_E_IO : 0;
}

static int
s_cold (const char *dir, dipx_store_t **store, uint64_t nsubj, const uint32_t *counts,
        uint64_t runs, s_result_t *r)
{
    dipx_pool_t *pool = dipx_pool_new (DIPX_AUDIT_PREFETCH_THREADS - 1);
    if (!pool)
        return DIPX_E_NOMEM;
    int rc = s_times_alloc (&r->cold, runs);
    if (rc == 0)
        rc = s_times_alloc (&r->cold1, runs);
    double open_ms = 0;
    /* Alternately with the pool and with one thread.  */
    for (uint64_t i = 0; rc == 0 && i < 2 * runs; i++) {
        dipx_store_destroy (store);
        if ((rc = s_drop_cache (dir)))
            break;
        uint64_t t0 = bench_now_ns ();
        rc = dipx_store_open (dir, 1 << 20, 1 << 20, DIPX_STORE_READONLY | DIPX_STORE_RANDOM,
                              store);
        if (rc)
            break;
        open_ms += (double) (bench_now_ns () - t0) / 1e6;
        uint64_t k = randombytes_uniform ((uint32_t) nsubj), n, ns;
        rc = s_query (*store, i % 2 ? NULL : pool, k, &n, &ns);
        if (rc == 0)
            rc = s_check (counts, k, n);
        if (rc == 0)
            s_times_add (i % 2 ? &r->cold1 : &r->cold, ns, n);
    }
    r->open_cold_ms = runs ? open_ms / (double) (2 * runs) : NAN;
    dipx_pool_destroy (&pool);
    return rc;
}

/*  `dipxd audit --data dir --subject HEX` as an auditor runs it.  */
static int
s_cli (const char *dipxd, const char *dir, uint64_t nsubj, s_result_t *r)
{
    int rc = s_times_alloc (&r->cli, S_CLI_RUNS);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_addopen (&fa, 1, "/dev/null", O_WRONLY, 0);
    for (int i = 0; rc == 0 && i < S_CLI_RUNS; i++) {
        uint8_t subj[DIPX_SUBJ_BYTES];
        char hex[2 * DIPX_SUBJ_BYTES + 1];
        s_subject (randombytes_uniform ((uint32_t) nsubj), subj);
        sodium_bin2hex (hex, sizeof hex, subj, sizeof subj);
        char *argv[] = {(char *) dipxd, "audit", "--data", (char *) dir, "--subject", hex, NULL};
        uint64_t t0 = bench_now_ns ();
        pid_t pid;
        int st;
        if (posix_spawn (&pid, dipxd, &fa, NULL, argv, environ) != 0
            || waitpid (pid, &st, 0) != pid || !WIFEXITED (st) || WEXITSTATUS (st) != 0) {
            fprintf (stderr, "dipx-bench-audit: %s audit --subject failed\n", dipxd);
            rc = DIPX_E_IO;
            break;
        }
        s_times_add (&r->cli, bench_now_ns () - t0, 0);
    }
    posix_spawn_file_actions_destroy (&fa);
    return rc;
}

/* --- report ---------------------------------------------------------------- */

static void
s_sort (s_times_t *t)
{
    qsort (t->ns, t->n, sizeof t->ns[0], bench_cmp_u64);
}

static json_t *
s_num (double v)
{
    return isnan (v) ? json_null () : json_real (v);
}

static json_t *
s_times_json (const s_times_t *t)
{
    json_t *o = json_object ();
    json_object_set_new (o, "queries", json_integer ((json_int_t) t->n));
    json_object_set_new (o, "p50_ms", s_num (bench_pct_ms (t->ns, t->n, 0.50)));
    json_object_set_new (o, "p99_ms", s_num (bench_pct_ms (t->ns, t->n, 0.99)));
    json_object_set_new (o, "max_ms", s_num (bench_pct_ms (t->ns, t->n, 1.0)));
    json_object_set_new (o, "records_mean", s_num (t->records));
    return o;
}

static int
s_write_json (const char *path, const s_opts_t *o, const s_result_t *r)
{
    json_t *root = json_object (), *cfg = json_object ();
    json_object_set_new (cfg, "entries", json_integer ((json_int_t) o->entries));
    json_object_set_new (cfg, "per_subject", json_integer ((json_int_t) o->per_subject));
    json_object_set_new (root, "config", cfg);
    json_t *log = json_object ();
    json_object_set_new (log, "entries", json_integer ((json_int_t) r->entries));
    json_object_set_new (log, "messages",
                         r->checked ? json_integer ((json_int_t) r->messages) : json_null ());
    json_object_set_new (log, "subjects", json_integer ((json_int_t) r->subjects));
    json_object_set_new (log, "fill_s", s_num (r->fill_s));
    json_object_set_new (log, "file_bytes", json_integer ((json_int_t) r->file_bytes));
    json_object_set_new (log, "counts_checked", json_boolean (r->checked));
    json_object_set_new (root, "log", log);
    json_object_set_new (root, "query_warm", s_times_json (&r->warm));
    json_t *cold = s_times_json (&r->cold);
    json_object_set_new (cold, "open_ms", s_num (r->open_cold_ms));
    json_object_set_new (root, "query_cold", cold);
    json_object_set_new (root, "query_cold_one_thread", s_times_json (&r->cold1));
    json_object_set_new (root, "command", s_times_json (&r->cli));
    int rc = json_dump_file (root, path, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
    json_decref (root);
    return rc ? DIPX_E_IO : 0;
}

static void
s_print_times (const char *what, const s_times_t *t)
{
    printf ("  %-26s p50 %.3f / p99 %.3f / max %.3f ms  (%zu queries, %.1f records each)\n", what,
            bench_pct_ms (t->ns, t->n, 0.50), bench_pct_ms (t->ns, t->n, 0.99),
            bench_pct_ms (t->ns, t->n, 1.0), t->n, t->records);
}

static void
s_print (const s_result_t *r)
{
    if (r->checked)
        printf ("dipx-bench-audit: %" PRIu64 " audit entries, %" PRIu64 " messages, %" PRIu64
                " subjects\n",
                r->entries, r->messages, r->subjects);
    else
        printf ("dipx-bench-audit: %" PRIu64 " audit entries (a log reused from --data)\n",
                r->entries);
    if (!isnan (r->fill_s))
        printf ("  fill                       %.1f s (%.0f entries/s)\n", r->fill_s,
                (double) r->entries / r->fill_s);
    printf ("  data.mdb                   %.2f GiB (%.0f bytes per entry)\n",
            (double) r->file_bytes / (1024.0 * 1024 * 1024),
            r->entries ? (double) r->file_bytes / (double) r->entries : 0.0);
    s_print_times ("subject query, warm", &r->warm);
    s_print_times ("subject query, cold", &r->cold);
    s_print_times ("cold, one thread", &r->cold1);
    printf ("  %-26s %.3f ms mean (before each cold query)\n", "store open, cold", r->open_cold_ms);
    printf ("  %-26s p50 %.3f / max %.3f ms  (%zu runs: start, open, query, JSON)\n",
            "dipxd audit --subject", bench_pct_ms (r->cli.ns, r->cli.n, 0.50),
            bench_pct_ms (r->cli.ns, r->cli.n, 1.0), r->cli.n);
    printf ("  counts %s\n", r->checked ? "checked against the fill: all equal"
                                        : "not checked (a log reused from --data)");
}

/* --- main ------------------------------------------------------------------ */

static int
s_usage (void)
{
    fprintf (stderr,
             "usage: dipx-bench-audit [options]\n"
             "  --entries N       audit entries in the log (10000000)\n"
             "  --per-subject M   messages per subject, on average (20)\n"
             "  --queries Q       warm subject queries (1000)\n"
             "  --cold C          cold subject queries (20)\n"
             "  --data DIR        keep the log in DIR, or reuse the one there\n"
             "  --json FILE       write the figures as JSON\n"
             "  --dipxd PATH      for the command timing (%s)\n"
             "  --quiet           no progress lines\n",
             DIPX_BENCH_DIPXD);
    return 2;
}

static int
s_uint (const char *name, uint64_t lo, uint64_t hi, uint64_t *out)
{
    return bench_parse_uint ("dipx-bench-audit", name, optarg, lo, hi, out);
}

static int
s_parse (int argc, char **argv, s_opts_t *o)
{
    static const struct option opts[] = {
        {"entries", required_argument, NULL, 'n'}, {"per-subject", required_argument, NULL, 'm'},
        {"queries", required_argument, NULL, 'q'}, {"cold", required_argument, NULL, 'c'},
        {"data", required_argument, NULL, 'd'},    {"json", required_argument, NULL, 'j'},
        {"dipxd", required_argument, NULL, 'x'},   {"quiet", no_argument, NULL, 'Q'},
        {NULL, 0, NULL, 0},
    };
    int c, idx;
    while ((c = getopt_long (argc, argv, "", opts, &idx)) != -1) {
        const char *name = c == '?' ? "" : opts[idx].name;
        int rc = 0;
        switch (c) {
        case 'n': rc = s_uint (name, 1000, 1000000000, &o->entries); break;
        case 'm': rc = s_uint (name, 1, 100000, &o->per_subject); break;
        case 'q': rc = s_uint (name, 1, 10000000, &o->queries); break;
        case 'c': rc = s_uint (name, 0, 100000, &o->cold); break;
        case 'd': o->data = optarg; break;
        case 'j': o->json = optarg; break;
        case 'x': o->dipxd = optarg; break;
        case 'Q': o->quiet = true; break;
        default: return -1;
        }
        if (rc)
            return -1;
    }
    return optind == argc ? 0 : -1;
}

int
main (int argc, char **argv)
{
    s_opts_t o = {.entries = 10000000, .per_subject = 20, .queries = 1000, .cold = 20,
                  .dipxd = DIPX_BENCH_DIPXD};
    if (s_parse (argc, argv, &o) != 0)
        return s_usage ();
    if (sodium_init () < 0)
        return 1;
    bench_prog = "dipx-bench-audit";
    bench_quiet = o.quiet;
    const char *tmpdir = getenv ("TMPDIR");
    char tmp[600];
    snprintf (tmp, sizeof tmp, "%s/dipx-bench-audit.XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    const char *dir = o.data;
    if (!dir && !(dir = mkdtemp (tmp))) {
        perror ("dipx-bench-audit: mkdtemp");
        return 1;
    }
    if (o.data)
        mkdir (o.data, 0700);

    s_result_t r = {.fill_s = NAN};
    /* About 3.0 entries per message (accepted, delivered, acked; refusals
       and sessions are the rest).  */
    uint64_t msgs_est = o.entries / 3 + 1;
    r.subjects = msgs_est / o.per_subject + 1;
    if (r.subjects > UINT32_MAX) {
        fprintf (stderr, "dipx-bench-audit: too many subjects\n");
        return 2;
    }
    dipx_store_t *store = NULL;
    int rc = dipx_store_open (dir, 1ull << 30, 1ull << 38, 0, &store);
    dipx_txn_t *txn;
    uint64_t have = 0;
    if (rc == 0 && (rc = dipx_store_begin_read (store, &txn)) == 0) {
        have = dipx_store_audit_last (txn);
        dipx_store_abort (&txn);
    }
    uint32_t *counts = NULL;
    if (rc == 0 && have == 0) {
        counts = calloc (r.subjects, sizeof *counts);
        if (!counts)
            rc = DIPX_E_NOMEM;
        bench_say ("filling %" PRIu64 " entries about %" PRIu64 " subjects in %s", o.entries,
               r.subjects, dir);
        uint64_t t0 = bench_now_ns ();
        if (rc == 0)
            rc = s_fill (store, o.entries, r.subjects, msgs_est, counts, &r.messages);
        r.fill_s = (double) (bench_now_ns () - t0) / 1e9;
        r.checked = rc == 0;
    } else if (rc == 0 && have < o.entries) {
        fprintf (stderr, "dipx-bench-audit: %s holds %" PRIu64 " entries, fewer than %" PRIu64 "\n",
                 dir, have, o.entries);
        rc = DIPX_E_INVAL;
    }
    if (rc == 0 && (rc = dipx_store_begin_read (store, &txn)) == 0) {
        r.entries = dipx_store_audit_last (txn);
        dipx_store_abort (&txn);
    }
    if (rc == 0) {
        char path[1200];
        struct stat st;
        snprintf (path, sizeof path, "%s/data.mdb", dir);
        r.file_bytes = stat (path, &st) == 0 ? (uint64_t) st.st_size : 0;
        bench_say ("%" PRIu64 " entries; reading the log into the page cache", r.entries);
        rc = s_warm_up (dir);
    }
    if (rc == 0) {
        bench_say ("querying");
        rc = s_times_alloc (&r.warm, o.queries);
    }
    for (uint64_t i = 0; rc == 0 && i < o.queries; i++) {
        uint64_t k = randombytes_uniform ((uint32_t) r.subjects), n, ns;
        rc = s_query (store, NULL, k, &n, &ns);
        if (rc == 0)
            rc = s_check (counts, k, n);
        if (rc == 0)
            s_times_add (&r.warm, ns, n);
    }
    if (rc == 0)
        rc = s_cli (o.dipxd, dir, r.subjects, &r);
    if (rc == 0)
        rc = s_cold (dir, &store, r.subjects, counts, o.cold, &r);
    if (store)
        dipx_store_destroy (&store);
    if (rc == 0) {
        s_sort (&r.warm);
        s_sort (&r.cold);
        s_sort (&r.cold1);
        s_sort (&r.cli);
        s_print (&r);
        if (o.json && s_write_json (o.json, &o, &r) != 0) {
            fprintf (stderr, "dipx-bench-audit: cannot write %s\n", o.json);
            rc = DIPX_E_IO;
        }
    } else {
        fprintf (stderr, "dipx-bench-audit: %s\n", dipx_strerror (rc));
    }
    if (!o.data) {
        char cmd[1300];
        snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system (cmd) != 0)
            fprintf (stderr, "dipx-bench-audit: could not remove %s\n", dir);
    }
    free (counts);
    free (r.warm.ns);
    free (r.cold.ns);
    free (r.cold1.ns);
    free (r.cli.ns);
    return rc ? 1 : 0;
}
