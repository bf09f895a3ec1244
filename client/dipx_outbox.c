/*  dipx_outbox.c - libdipx's durable outbox (see dipx_outbox.h).

    Design. One LMDB environment in a directory the agency system chooses,
    opened without MDB_NOSYNC: mdb_txn_commit returns only when the entry and
    the meta page are on disk, so a post that returned 0 survives a crash of
    the agency system or of its machine. Two databases: "entries", be64 key ->
    u8 format (1) || message id (16) || envelope; and "meta", which records the
    agency whose envelopes these are, so that an outbox opened by another
    agency's client (a misconfiguration) is refused instead of sent as that
    agency, refused by the broker and deleted.

    Keys are big-endian so that LMDB's byte order is numeric order; each put
    takes the key after the largest one present (MDB_APPEND), so key order is
    post order, and a restart continues after the last entry.

    Ownership. The directory is locked (flock, exclusive) while open: LMDB
    must not be opened twice in one process, and two clients draining one
    outbox would each resend and delete the other's sends. flock, unlike the
    fcntl locks LMDB uses, also excludes a second open in the same process.

    Size. The map starts at DIPX_OUTBOX_MAP_INITIAL and doubles, up to
    DIPX_MAX_OUTBOX_MAP, whenever a write transaction finds it full; the write
    is then retried. Only this process has the environment open and no
    transaction is open between calls, which is what mdb_env_set_mapsize asks.

    Every value read back is bounds-checked; a damaged one is skipped and left
    on disk, never read past. Nothing here logs an envelope byte: only keys,
    counts, paths and LMDB's error text.
*/
#include "dipx_outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dipx_bytes.h"
#include "dipx_log_cb.h"

/*  Entry value: format byte, message id, envelope.  */
#define S_FORMAT 1
#define S_HEAD (1 + DIPX_ID_BYTES)

/*  The meta key naming the owning agency.  */
#define S_AGENCY_KEY "agency"

struct dipx__outbox_t {
    MDB_env *env;      /* the environment */
    MDB_dbi entries;   /* be64 key -> entry */
    MDB_dbi meta;      /* "agency" -> agency id */
    int lockfd;        /* the directory, flock'd; -1 if not open */
    uint64_t map_size; /* current map size */
    uint64_t map_max;  /* growth ceiling */
    size_t count;      /* entries held */
    uint64_t end;      /* next key to use: above every key held */
    char *dir;         /* the directory, for the log */
    dipx_log_fn *log;  /* log callback, or NULL */
    void *log_arg;     /* its argument */
};

/*  Logs through the application's callback, if any.  */
#define s_log(self, level, ...) dipx__log_cb ((self)->log, (self)->log_arg, level, __VA_ARGS__)

/*  Translates an LMDB (or errno) result at the boundary.  */
static int
s_err (int rc)
{
    switch (rc) {
    case MDB_SUCCESS: return 0;
    case MDB_MAP_FULL:
    case ENOSPC:
    case EDQUOT: return DIPX_E_STORAGE_FULL;
    case ENOMEM: return DIPX_E_NOMEM;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH: return DIPX_E_CORRUPT;
    default: return DIPX_E_STORAGE;
    }
}

/*  Doubles the map, up to its ceiling. false when it is there already.  */
static bool
s_grow (dipx__outbox_t *self)
{
    if (self->map_size >= self->map_max)
        return false;
    uint64_t grown = self->map_size * 2 > self->map_max ? self->map_max : self->map_size * 2;
    int rc = mdb_env_set_mapsize (self->env, (size_t) grown);
    if (rc) {
        s_log (self, DIPX_LOG_ERROR, "outbox %s: cannot grow the map to %llu MiB: %s", self->dir,
               (unsigned long long) (grown >> 20), mdb_strerror (rc));
        return false;
    }
    s_log (self, DIPX_LOG_INFO, "outbox %s: map grown to %llu MiB", self->dir,
           (unsigned long long) (grown >> 20));
    self->map_size = grown;
    return true;
}

/*  The body of a write transaction: a raw LMDB result.  */
typedef int (s_write_fn) (dipx__outbox_t *self, MDB_txn *txn, void *arg);

/*  Runs fn in a write transaction and commits it, growing the map and trying
    again while it is full. A raw LMDB result. fn must leave self unchanged
    unless the commit succeeds (it may be run more than once).  */
static int
s_write (dipx__outbox_t *self, s_write_fn *fn, void *arg)
{
    for (;;) {
        MDB_txn *txn = NULL;
        int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
        if (rc == 0) {
            rc = fn (self, txn, arg);
            if (rc == 0)
                rc = mdb_txn_commit (txn); /* frees txn on every path */
            else
                mdb_txn_abort (txn);
        }
        if (rc != MDB_MAP_FULL || !s_grow (self))
            return rc;
    }
}

/* ---------------------------------------------------------------------------
   Open and close */

/*  fsyncs the directory path, or the one that holds it (parent): LMDB syncs
    its files but never the directories their names are in, and a name lost
    to a power cut loses what the file holds. A file system that cannot sync
    a directory (EINVAL) has nothing to do; a parent this user may not read
    (EACCES: mkdir needs only write and search) cannot be synced, and is
    not.  */
static int
s_sync_dir (const char *path, bool parent)
{
    char buf[4096];
    if ((size_t) snprintf (buf, sizeof buf, "%s", path) >= sizeof buf)
        return -1;
    if (parent) {
        size_t n = strlen (buf);
        while (n > 1 && buf[n - 1] == '/') /* "a/b/" names b */
            buf[--n] = '\0';
        char *slash = strrchr (buf, '/');
        if (!slash)
            snprintf (buf, sizeof buf, ".");
        else
            slash[slash == buf] = '\0'; /* "/b" -> "/" */
    }
    int fd = open (buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return parent && errno == EACCES ? 0 : -1;
    int rc = fsync (fd) == 0 || errno == EINVAL ? 0 : -1;
    int err = errno;
    close (fd);
    errno = err;
    return rc;
}

/*  LMDB maps the data file and trusts it: pages past the end of a truncated
    file would raise SIGBUS when touched. A file shorter than the pages its
    meta page says are in use is refused (as the broker's store does).  */
static int
s_check_size (dipx__outbox_t *self)
{
    MDB_envinfo info;
    MDB_stat st;
    struct stat fs;
    char path[4096];
    if ((size_t) snprintf (path, sizeof path, "%s/data.mdb", self->dir) >= sizeof path)
        return ENAMETOOLONG;
    if (mdb_env_info (self->env, &info) != 0 || mdb_env_stat (self->env, &st) != 0
        || stat (path, &fs) != 0)
        return MDB_INVALID;
    if ((uint64_t) fs.st_size < ((uint64_t) info.me_last_pgno + 1) * st.ms_psize) {
        s_log (self, DIPX_LOG_ERROR,
               "outbox %s: data file is %lld bytes, shorter than its %llu pages in use "
               "(truncated?)",
               self->dir, (long long) fs.st_size, (unsigned long long) info.me_last_pgno + 1);
        return MDB_CORRUPTED;
    }
    return 0;
}

typedef struct {
    const char *agency;                /* the opening agency */
    bool foreign;                      /* the outbox is another agency's */
    char owner[DIPX_MAX_AGENCY_ID + 1]; /* that agency, for the log */
    size_t count;                      /* entries found */
    uint64_t end;                      /* key after the last one */
} s_open_t;

static int
s_open_txn (dipx__outbox_t *self, MDB_txn *txn, void *arg)
{
    s_open_t *o = (s_open_t *) arg;
    int rc = mdb_dbi_open (txn, "entries", MDB_CREATE, &self->entries);
    if (rc == 0)
        rc = mdb_dbi_open (txn, "meta", MDB_CREATE, &self->meta);
    if (rc)
        return rc;
    MDB_val k = {strlen (S_AGENCY_KEY), (void *) S_AGENCY_KEY};
    MDB_val v;
    size_t alen = strlen (o->agency);
    rc = mdb_get (txn, self->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        v = (MDB_val){alen, (void *) o->agency};
        rc = mdb_put (txn, self->meta, &k, &v, 0);
    }
    else if (rc == 0 && (v.mv_size != alen || memcmp (v.mv_data, o->agency, alen) != 0)) {
        o->foreign = true;
        size_t n = v.mv_size < DIPX_MAX_AGENCY_ID ? v.mv_size : DIPX_MAX_AGENCY_ID;
        memcpy (o->owner, v.mv_data, n);
        o->owner[n] = '\0';
        for (size_t i = 0; i < n; i++) /* it goes to a log line */
            if ((unsigned char) o->owner[i] < 0x20 || (unsigned char) o->owner[i] > 0x7e)
                o->owner[i] = '?';
    }
    if (rc)
        return rc;
    MDB_stat st;
    if ((rc = mdb_stat (txn, self->entries, &st)))
        return rc;
    o->count = st.ms_entries;
    o->end = 1;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open (txn, self->entries, &cur)))
        return rc;
    rc = mdb_cursor_get (cur, &k, &v, MDB_LAST);
    /* A put never takes UINT64_MAX (dipx__outbox_put), so the next key
       cannot wrap to 0, which MDB_APPEND would refuse for every post.  */
    if (rc == 0 && k.mv_size == 8 && dipx_get_be64 (k.mv_data) != UINT64_MAX)
        o->end = dipx_get_be64 (k.mv_data) + 1;
    else if (rc == 0)
        rc = MDB_CORRUPTED; /* not a key this module wrote */
    else if (rc == MDB_NOTFOUND)
        rc = 0;
    mdb_cursor_close (cur);
    return rc;
}

int
dipx__outbox_open (const char *dir, const char *agency, dipx_log_fn *log, void *log_arg,
                   dipx__outbox_t **out)
{
    *out = NULL;
    if (!dir || !*dir || !agency || !*agency)
        return DIPX_E_INVAL;
    dipx__outbox_t *self = (dipx__outbox_t *) calloc (1, sizeof *self);
    if (!self)
        return DIPX_E_NOMEM;
    s_open_t o = {.agency = agency};
    int rc = 0, mrc = 0;
    self->lockfd = -1;
    self->log = log;
    self->log_arg = log_arg;
    self->map_size = DIPX_OUTBOX_MAP_INITIAL;
    self->map_max = DIPX_MAX_OUTBOX_MAP;
    if ((size_t) -1 / 2 < self->map_max) /* a 32-bit address space */
        self->map_max = self->map_size;
    self->dir = strdup (dir);
    if (!self->dir) {
        rc = DIPX_E_NOMEM;
        goto fail;
    }
    if (mkdir (dir, 0700) != 0 && errno != EEXIST) {
        s_log (self, DIPX_LOG_ERROR, "outbox %s: cannot create it: %s", dir, strerror (errno));
        rc = DIPX_E_IO;
        goto fail;
    }
    self->lockfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->lockfd < 0) {
        s_log (self, DIPX_LOG_ERROR, "outbox %s: %s", dir, strerror (errno));
        rc = DIPX_E_IO;
        goto fail;
    }
    /* A directory someone else may write to (another owner, or group or
       others with write permission) could have its files replaced or
       removed under the client: the sends it holds are not safe there.  */
    struct stat st;
    if (fstat (self->lockfd, &st) != 0 || st.st_uid != geteuid () || (st.st_mode & 022)) {
        s_log (self, DIPX_LOG_ERROR,
               "outbox %s: owned by another user or writable by group or others; refused", dir);
        rc = DIPX_E_PERM;
        goto fail;
    }
    if (flock (self->lockfd, LOCK_EX | LOCK_NB) != 0) {
        bool held = errno == EWOULDBLOCK;
        s_log (self, DIPX_LOG_ERROR, "outbox %s: %s", dir,
               held ? "in use by another client" : strerror (errno));
        rc = held ? DIPX_E_BUSY : DIPX_E_IO;
        goto fail;
    }
    mrc = mdb_env_create (&self->env);
    if (mrc == 0)
        mrc = mdb_env_set_maxdbs (self->env, 2);
    if (mrc == 0)
        mrc = mdb_env_set_mapsize (self->env, (size_t) self->map_size);
    /* MDB_NOTLS: a client may be used from one thread, then another.  */
    if (mrc == 0)
        mrc = mdb_env_open (self->env, dir, MDB_NOTLS, 0600);
    if (mrc == 0) {
        /* An outbox that grew before may be larger than the initial map.  */
        MDB_envinfo info;
        if (mdb_env_info (self->env, &info) == 0 && info.me_mapsize > self->map_size)
            self->map_size = info.me_mapsize;
        mrc = s_check_size (self);
    }
    if (mrc == 0)
        mrc = s_write (self, s_open_txn, &o);
    /* The files' names and the directory's made durable: posts are promised
       to survive a machine crash from the first. The parent every time, not
       only when mkdir made the directory here: an open that failed after
       making it leaves it for the next.  */
    if (mrc == 0 && (s_sync_dir (dir, false) != 0 || s_sync_dir (dir, true) != 0)) {
        s_log (self, DIPX_LOG_ERROR, "outbox %s: cannot sync its directory: %s", dir,
               strerror (errno));
        rc = DIPX_E_IO;
        goto fail;
    }
    if (mrc) {
        s_log (self, DIPX_LOG_ERROR, "outbox %s: %s", dir, mdb_strerror (mrc));
        rc = mrc == ENOENT || mrc == EACCES || mrc == ENOTDIR ? DIPX_E_IO : s_err (mrc);
        goto fail;
    }
    if (o.foreign) {
        s_log (self, DIPX_LOG_ERROR, "outbox %s holds the sends of agency %s, not of %s", dir,
               o.owner, agency);
        rc = DIPX_E_INVAL;
        goto fail;
    }
    self->count = o.count;
    self->end = o.end;
    *out = self;
    return 0;
fail:
    dipx__outbox_destroy (&self);
    return rc;
}

void
dipx__outbox_destroy (dipx__outbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dipx__outbox_t *self = *self_p;
    if (self->env)
        mdb_env_close (self->env);
    if (self->lockfd >= 0)
        close (self->lockfd); /* releases the lock */
    free (self->dir);
    free (self);
    *self_p = NULL;
}

/* ---------------------------------------------------------------------------
   Put, delete, scan */

typedef struct {
    const uint8_t *id;  /* message id */
    const uint8_t *env; /* envelope */
    size_t env_len;     /* its length */
} s_put_t;

static int
s_put_txn (dipx__outbox_t *self, MDB_txn *txn, void *arg)
{
    const s_put_t *p = (const s_put_t *) arg;
    uint8_t kb[8];
    dipx_put_be64 (kb, self->end);
    MDB_val k = {8, kb}, v = {S_HEAD + p->env_len, NULL};
    /* MDB_RESERVE: the entry is written in place, not copied twice.  */
    int rc = mdb_put (txn, self->entries, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc == 0) {
        uint8_t *d = (uint8_t *) v.mv_data;
        d[0] = S_FORMAT;
        memcpy (d + 1, p->id, DIPX_ID_BYTES);
        memcpy (d + S_HEAD, p->env, p->env_len);
    }
    return rc;
}

int
dipx__outbox_put (dipx__outbox_t *self, const uint8_t id[DIPX_ID_BYTES], const uint8_t *env,
                  size_t env_len, uint64_t *key)
{
    if (!self || !id || !env || env_len == 0 || env_len > DIPX_MAX_ENV || !key)
        return DIPX_E_INVAL;
    if (self->count >= DIPX_MAX_OUTBOX)
        return DIPX_E_BUSY;
    if (self->end == UINT64_MAX)
        return DIPX_E_STORAGE_FULL; /* 2^64 puts: never, but never wrap */
    s_put_t p = {id, env, env_len};
    int rc = s_write (self, s_put_txn, &p);
    if (rc) {
        s_log (self, rc == MDB_MAP_FULL ? DIPX_LOG_WARN : DIPX_LOG_ERROR,
               "outbox %s: cannot store a send (%zu held): %s", self->dir, self->count,
               mdb_strerror (rc));
        return s_err (rc);
    }
    *key = self->end++;
    self->count++;
    return 0;
}

typedef struct {
    const uint64_t *keys; /* keys to delete */
    size_t n;             /* their number */
    size_t deleted;       /* how many were there */
} s_del_t;

static int
s_del_txn (dipx__outbox_t *self, MDB_txn *txn, void *arg)
{
    s_del_t *d = (s_del_t *) arg;
    d->deleted = 0;
    for (size_t i = 0; i < d->n; i++) {
        uint8_t kb[8];
        dipx_put_be64 (kb, d->keys[i]);
        MDB_val k = {8, kb};
        int rc = mdb_del (txn, self->entries, &k, NULL);
        if (rc == 0)
            d->deleted++;
        else if (rc != MDB_NOTFOUND)
            return rc;
    }
    return 0;
}

int
dipx__outbox_delete (dipx__outbox_t *self, const uint64_t *keys, size_t n)
{
    if (!self || (n && !keys))
        return DIPX_E_INVAL;
    if (n == 0)
        return 0;
    s_del_t d = {keys, n, 0};
    int rc = s_write (self, s_del_txn, &d);
    if (rc) {
        s_log (self, DIPX_LOG_ERROR, "outbox %s: cannot delete %zu answered send(s): %s",
               self->dir, n, mdb_strerror (rc));
        return s_err (rc);
    }
    self->count = d.deleted > self->count ? 0 : self->count - d.deleted;
    return 0;
}

int
dipx__outbox_scan (dipx__outbox_t *self, uint64_t *from, dipx__outbox_entry_fn *fn, void *arg,
                   size_t *skipped)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_cursor_open (txn, self->entries, &cur);
    uint8_t kb[8];
    dipx_put_be64 (kb, *from);
    MDB_val k = {8, kb}, v;
    if (rc == 0)
        rc = mdb_cursor_get (cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (k.mv_size != 8) {
            rc = MDB_CORRUPTED; /* no key of ours: the order is lost */
            break;
        }
        uint64_t key = dipx_get_be64 (k.mv_data);
        const uint8_t *d = (const uint8_t *) v.mv_data;
        if (v.mv_size <= S_HEAD || v.mv_size > S_HEAD + DIPX_MAX_ENV || d[0] != S_FORMAT) {
            s_log (self, DIPX_LOG_ERROR,
                   "outbox %s: entry %llu is not well-formed (%zu bytes); skipped, left on disk",
                   self->dir, (unsigned long long) key, v.mv_size);
            if (skipped)
                (*skipped)++;
        }
        else if (!fn (key, d + 1, d + S_HEAD, v.mv_size - S_HEAD, arg))
            break;
        *from = key + 1;
        rc = mdb_cursor_get (cur, &k, &v, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (rc)
        s_log (self, DIPX_LOG_ERROR, "outbox %s: cannot read: %s", self->dir, mdb_strerror (rc));
    if (cur)
        mdb_cursor_close (cur);
    if (txn)
        mdb_txn_abort (txn);
    return s_err (rc);
}

size_t
dipx__outbox_count (const dipx__outbox_t *self)
{
    return self ? self->count : 0;
}

uint64_t
dipx__outbox_end (const dipx__outbox_t *self)
{
    return self ? self->end : 0;
}
