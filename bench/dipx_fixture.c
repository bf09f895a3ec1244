/*  dipx_fixture.c - see dipx_fixture.h.

    Design. The fixture owns a private directory made with mkdtemp:

        broker.secret   the broker's identity
        <id>.secret     an agency's identity, only for DIPX_FIXTURE_SECRET ones
        registry        every agency's card (the broker's trust)
        peers           the DIPX_FIXTURE_PEER agencies' cards (for clients)
        dipxd.conf      the config, rewritten on every start
        dipxd.log       the broker's stderr, appended across restarts
        data/           the LMDB store

    Starting is event-driven: dipxd writes "READY <endpoint> <key>" on the
    pipe given with --ready-fd once it listens and has passed its self-check,
    and the fixture polls that pipe; it never sleeps to guess. The first
    start binds tcp://127.0.0.1:* and later starts bind the port it got, so
    connected clients find a restarted broker where they left it.

    The child closes every descriptor above 2 except the ready pipe before
    exec, so a broker never inherits a caller's sockets (a benchmark may hold
    thousands).
*/
#include "dipx_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dipx_card.h"
#include "dipx_error.h"
#include "dipx_registry.h"

#define S_PATH_MAX 512

typedef struct {
    char id[DIPX_MAX_AGENCY_ID + 1]; /* agency id */
    int type;                        /* dipx_agency_type_t */
    unsigned flags;                  /* DIPX_FIXTURE_* */
    char secret[S_PATH_MAX];         /* secret file, or "" */
    dipx_identity_t *identity;       /* its keys */
} s_agency_t;

struct dipx_fixture_t {
    char dipxd[S_PATH_MAX];                /* broker executable */
    char policy[S_PATH_MAX];               /* policy file */
    char *extra;                           /* extra config lines, malloc'd */
    bool keep;                             /* keep dir on destroy */
    char dir[S_PATH_MAX];                  /* private directory */
    char config[S_PATH_MAX + 16];          /* dipxd.conf */
    char data[S_PATH_MAX + 16];            /* LMDB directory */
    char registry[S_PATH_MAX + 16];        /* registry file */
    char peers[S_PATH_MAX + 16];           /* peers file */
    char log[S_PATH_MAX + 16];             /* broker stderr */
    char endpoint[256];                    /* bound endpoint after the first start */
    char broker_key[DIPX_Z85_KEY_LEN + 1]; /* broker CURVE public key */
    dipx_identity_t *broker;               /* broker identity */
    s_agency_t *agencies;                  /* agencies, grown by doubling */
    size_t nagencies, cap;                 /* used and allocated */
    pid_t pid;                             /* running broker, or 0 */
};

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int
s_copy (char *dst, size_t size, const char *src)
{
    if (!src || strlen (src) >= size)
        return DIPX_E_INVAL;
    memcpy (dst, src, strlen (src) + 1);
    return 0;
}

int
dipx_fixture_new (const dipx_fixture_options_t *o, dipx_fixture_t **out)
{
    if (!out)
        return DIPX_E_INVAL;
    *out = NULL;
    if (!o || !o->dipxd || !o->policy)
        return DIPX_E_INVAL;
    dipx_fixture_t *self = calloc (1, sizeof *self);
    if (!self)
        return DIPX_E_NOMEM;
    int rc = DIPX_E_INVAL;
    const char *tmp = o->tmpdir ? o->tmpdir : getenv ("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    if (s_copy (self->dipxd, sizeof self->dipxd, o->dipxd)
        || s_copy (self->policy, sizeof self->policy, o->policy)
        || snprintf (self->dir, sizeof self->dir, "%s/dipx-bench-XXXXXX", tmp)
               >= (int) sizeof self->dir)
        goto fail;
    self->keep = o->keep;
    rc = DIPX_E_NOMEM;
    if (!(self->extra = strdup (o->extra ? o->extra : "")))
        goto fail;
    rc = DIPX_E_IO;
    if (!mkdtemp (self->dir)) {
        self->dir[0] = 0;
        goto fail;
    }
    snprintf (self->config, sizeof self->config, "%s/dipxd.conf", self->dir);
    snprintf (self->data, sizeof self->data, "%s/data", self->dir);
    snprintf (self->registry, sizeof self->registry, "%s/registry", self->dir);
    snprintf (self->peers, sizeof self->peers, "%s/peers", self->dir);
    snprintf (self->log, sizeof self->log, "%s/dipxd.log", self->dir);
    char path[S_PATH_MAX + 32];
    snprintf (path, sizeof path, "%s/broker.secret", self->dir);
    self->broker = dipx_identity_generate ("broker.bench");
    if (!self->broker || dipx_identity_save (self->broker, path) != 0)
        goto fail;
    dipx_key_to_z85 (dipx_identity_enc_pk (self->broker), self->broker_key);
    *out = self;
    return 0;
fail:
    dipx_fixture_destroy (&self);
    return rc;
}

static int
s_rm (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove (path);
}

void
dipx_fixture_destroy (dipx_fixture_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dipx_fixture_t *self = *self_p;
    dipx_fixture_stop (self, SIGTERM, 5000, NULL);
    if (self->dir[0]) {
        if (self->keep)
            fprintf (stderr, "dipx_fixture: kept %s\n", self->dir);
        else
            nftw (self->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    }
    for (size_t i = 0; i < self->nagencies; i++)
        dipx_identity_destroy (&self->agencies[i].identity);
    free (self->agencies);
    dipx_identity_destroy (&self->broker);
    free (self->extra);
    free (self);
    *self_p = NULL;
}

int
dipx_fixture_add (dipx_fixture_t *self, const char *id, int type, unsigned flags)
{
    if (!self || !id || strlen (id) > DIPX_MAX_AGENCY_ID || self->nagencies >= DIPX_MAX_AGENCIES)
        return DIPX_E_INVAL;
    if (self->nagencies == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        s_agency_t *grown = realloc (self->agencies, cap * sizeof *grown);
        if (!grown)
            return DIPX_E_NOMEM;
        self->agencies = grown;
        self->cap = cap;
    }
    s_agency_t *a = &self->agencies[self->nagencies];
    memset (a, 0, sizeof *a);
    memcpy (a->id, id, strlen (id) + 1);
    a->type = type;
    a->flags = flags;
    a->identity = dipx_identity_generate (id);
    if (!a->identity)
        return DIPX_E_INVAL;
    if (flags & DIPX_FIXTURE_SECRET) {
        snprintf (a->secret, sizeof a->secret, "%s/%s.secret", self->dir, id);
        int rc = dipx_identity_save (a->identity, a->secret);
        if (rc) {
            dipx_identity_destroy (&a->identity);
            return rc;
        }
    }
    return (int) self->nagencies++;
}

/*  Writes the registry of the agencies whose flags include want (0 = all).  */
static int
s_write_registry (dipx_fixture_t *self, const char *path, unsigned want)
{
    dipx_registry_t *reg = dipx_registry_new ();
    int rc = reg ? 0 : DIPX_E_NOMEM;
    for (size_t i = 0; rc == 0 && i < self->nagencies; i++) {
        s_agency_t *a = &self->agencies[i];
        if (want && !(a->flags & want))
            continue;
        dipx_card_t card;
        memset (&card, 0, sizeof card);
        snprintf (card.name, sizeof card.name, "Bench agency %s", a->id);
        card.type = a->type;
        snprintf (card.org, sizeof card.org, "ORG%zu", i % 1000);
        snprintf (card.area, sizeof card.area, "AREA1");
        card.valid_from = 1700000000;
        card.valid_until = 4000000000;
        char *text = NULL;
        size_t len;
        rc = dipx_card_make (a->identity, &card, &text, &len);
        free (text);
        if (rc == 0)
            rc = dipx_registry_add (reg, &card);
    }
    if (rc == 0)
        rc = dipx_registry_save (reg, path);
    dipx_registry_destroy (&reg);
    return rc;
}

int
dipx_fixture_write (dipx_fixture_t *self)
{
    if (!self)
        return DIPX_E_INVAL;
    int rc = s_write_registry (self, self->registry, 0);
    if (rc == 0)
        rc = s_write_registry (self, self->peers, DIPX_FIXTURE_PEER);
    if (rc)
        return rc;
    FILE *f = fopen (self->config, "w");
    if (!f)
        return DIPX_E_IO;
    fprintf (f,
             "[dipxd]\nendpoint = %s\ndata_dir = %s\nidentity = %s/broker.secret\n"
             "registry = %s\npolicy = %s\n%s\n",
             self->endpoint[0] ? self->endpoint : "tcp://127.0.0.1:*", self->data, self->dir,
             self->registry, self->policy, self->extra);
    return fclose (f) == 0 ? 0 : DIPX_E_IO;
}

/*  In the child: closes every descriptor above 2 but keep (keep > 2).  */
static void
s_close_from_3 (int keep)
{
    if ((keep == 3 || close_range (3, (unsigned) keep - 1, 0) == 0)
        && close_range ((unsigned) keep + 1, ~0u, 0) == 0)
        return;
    struct rlimit rl; /* a kernel before 5.9: one by one */
    int max = getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                  ? (int) rl.rlim_cur
                  : 65536;
    for (int fd = 3; fd < max; fd++)
        if (fd != keep)
            close (fd);
}

int
dipx_fixture_start (dipx_fixture_t *self, int timeout_ms, double *ready_s)
{
    if (!self || self->pid > 0)
        return DIPX_E_INVAL;
    int rc = dipx_fixture_write (self);
    if (rc)
        return rc;
    int fds[2];
    if (pipe2 (fds, O_CLOEXEC) != 0)
        return DIPX_E_IO;
    char fdarg[16];
    snprintf (fdarg, sizeof fdarg, "%d", fds[1]);
    double t0 = s_now ();
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid < 0) {
        close (fds[0]);
        close (fds[1]);
        return DIPX_E_IO;
    }
    if (pid == 0) {
        /* The broker dies with the bench, even one that crashed (the
           fixture is started from the bench's main thread, whose exit is
           what the signal follows).  */
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        if (getppid () != parent)
            _exit (127);
        /* The write end must survive exec: take it off close-on-exec.  */
        fcntl (fds[1], F_SETFD, 0);
        s_close_from_3 (fds[1]);
        int log = open (self->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (log >= 0)
            dup2 (log, 2);
        execl (self->dipxd, "dipxd", "--config", self->config, "--ready-fd", fdarg,
               (char *) NULL);
        _exit (127);
    }
    close (fds[1]);
    self->pid = pid;
    char line[600];
    size_t len = 0;
    struct pollfd p = {fds[0], POLLIN, 0};
    double deadline = t0 + timeout_ms / 1000.0;
    rc = DIPX_E_TIMEOUT;
    while (len < sizeof line - 1) {
        int left = (int) ((deadline - s_now ()) * 1000);
        if (left <= 0)
            break;
        int n = poll (&p, 1, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        ssize_t got = read (fds[0], line + len, sizeof line - 1 - len);
        if (got <= 0) {
            rc = DIPX_E_IO; /* the broker exited without READY */
            break;
        }
        len += (size_t) got;
        if (memchr (line, '\n', len)) {
            rc = 0;
            break;
        }
    }
    double t1 = s_now ();
    close (fds[0]);
    line[len] = 0;
    char ep[256], key[64];
    if (rc == 0 && (sscanf (line, "READY %255s %63s", ep, key) != 2
                    || strcmp (key, self->broker_key) != 0))
        rc = DIPX_E_IO;
    if (rc) {
        fprintf (stderr, "dipx_fixture: dipxd did not become ready: %s (see %s)\n",
                 dipx_strerror (rc), self->log);
        dipx_fixture_stop (self, SIGKILL, 1000, NULL);
        return rc;
    }
    snprintf (self->endpoint, sizeof self->endpoint, "%s", ep);
    if (ready_s)
        *ready_s = t1 - t0;
    return 0;
}

int
dipx_fixture_stop (dipx_fixture_t *self, int sig, int timeout_ms, double *exit_s)
{
    if (!self || self->pid <= 0)
        return -1;
    double t0 = s_now ();
    int status = 0;
    kill (self->pid, sig);
    bool killed = sig == SIGKILL;
    for (;;) {
        pid_t r = waitpid (self->pid, &status, WNOHANG);
        if (r == self->pid || (r < 0 && errno != EINTR))
            break;
        if (!killed && (s_now () - t0) * 1000 > timeout_ms) {
            kill (self->pid, SIGKILL);
            killed = true;
        }
        struct timespec ts = {0, 200000}; /* 0.2 ms: exit is not an event we can poll */
        nanosleep (&ts, NULL);
    }
    if (exit_s)
        *exit_s = s_now () - t0;
    self->pid = 0;
    return status;
}

const char *
dipx_fixture_dir (const dipx_fixture_t *self)
{
    return self->dir;
}

const char *
dipx_fixture_data_dir (const dipx_fixture_t *self)
{
    return self->data;
}

const char *
dipx_fixture_registry (const dipx_fixture_t *self)
{
    return self->registry;
}

const char *
dipx_fixture_peers (const dipx_fixture_t *self)
{
    return self->peers;
}

const char *
dipx_fixture_log (const dipx_fixture_t *self)
{
    return self->log;
}

const char *
dipx_fixture_endpoint (const dipx_fixture_t *self)
{
    return self->endpoint;
}

const char *
dipx_fixture_broker_key (const dipx_fixture_t *self)
{
    return self->broker_key;
}

pid_t
dipx_fixture_pid (const dipx_fixture_t *self)
{
    return self->pid;
}

size_t
dipx_fixture_size (const dipx_fixture_t *self)
{
    return self->nagencies;
}

const char *
dipx_fixture_agency_id (const dipx_fixture_t *self, size_t i)
{
    return i < self->nagencies ? self->agencies[i].id : NULL;
}

const char *
dipx_fixture_agency_secret (const dipx_fixture_t *self, size_t i)
{
    return i < self->nagencies ? self->agencies[i].secret : NULL;
}

const dipx_identity_t *
dipx_fixture_agency_identity (const dipx_fixture_t *self, size_t i)
{
    return i < self->nagencies ? self->agencies[i].identity : NULL;
}
