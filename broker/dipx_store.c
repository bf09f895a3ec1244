/*  dipx_store.c - LMDB storage of messages, queues, ids, dead letters and
    the audit log.

    Design. One environment, opened without MDB_NOSYNC: mdb_txn_commit
    returns only after the data and the meta page are on disk, which is what
    makes ACCEPTED mean "durable". The service holds at most one write
    transaction at a time, on its own thread; readers (dipxd audit, a running
    `dipx audit`) use read-only transactions and never block it.

    Immutable and mutable parts of a message are kept apart: `msgs` holds the
    envelope and what never changes, `mstate` the 13 bytes that change on each
    delivery, so a delivery rewrites 13 bytes rather than the envelope.

    Every integer is stored big-endian, so that LMDB's byte-wise key order is
    numeric order and records are the same on every machine. Every record read
    back is bounds-checked before use (DIPX_E_CORRUPT): a damaged data file
    must produce an error, never an overread.
*/
#include "dipx_store.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "dipx_bytes.h"
#include "dipx_log.h"

#define S_NDBS 12

enum { DB_META, DB_MSGS, DB_MSTATE, DB_QUEUE, DB_QSTAT, DB_IDS, DB_EXPIRY, DB_DEAD, DB_AUDIT,
       DB_AUD_ID, DB_AUD_SUB, DB_AUD_SEQ };
static const char *const s_db_names[S_NDBS] = {"meta",   "msgs", "mstate", "queue",
                                               "qstat",  "ids",  "expiry", "dead",
                                               "audit",  "aud_id", "aud_sub", "aud_seq"};

struct dipx_txn_t {
    dipx_store_t *store; /* owner */
    MDB_txn *txn;        /* the LMDB transaction */
    uint64_t redrive;    /* redrive epoch */
    uint64_t seq;        /* last message seq (as of this txn) */
    uint64_t aseq;       /* last audit seq */
    bool dirty_meta;     /* seq or aseq changed */
    bool write;          /* a write transaction */
};

struct dipx_store_t {
    MDB_env *env;          /* the environment */
    MDB_dbi dbi[S_NDBS];   /* open databases */
    uint64_t map_size;     /* current map size */
    uint64_t map_max;      /* growth ceiling */
    bool readonly;         /* opened read-only */
    bool has_aud_seq;      /* aud_seq exists (a read-only open of a store no
                              broker of this version has written lacks it) */
    bool ran_out;          /* a write hit MDB_MAP_FULL: grow at the next begin */
    bool failed;           /* LMDB panicked: the environment is unusable */
    dipx_txn_t *write_txn; /* the open write transaction, if any */
    dipx_txn_t wtxn;       /* what write_txn points to: beginning a write
                              transaction allocates nothing (LMDB reuses its
                              own write txn too), so a broker out of memory
                              can still look up what it stored */
};

#define S_MSG_FIXED 40
#define S_ID_FIXED 84
#define S_STATE_LEN 13

/* --- byte helpers -------------------------------------------------------- */

/*  Translates an LMDB result at the boundary.  */
static int
s_err (int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return DIPX_E_NOT_FOUND;
    case MDB_MAP_FULL:
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return DIPX_E_STORAGE_FULL;
    case ENOMEM:
        return DIPX_E_NOMEM;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
        return DIPX_E_CORRUPT;
    default:
        return DIPX_E_STORAGE;
    }
}

/*  s_err for the writes of transaction t: a full map is remembered, so that
    the next transaction begins with a larger map. Growing only when the map
    is 3/4 used would never help a transaction bigger than the last quarter:
    it would fail the same way each time it is retried.  */
static int
s_werr (dipx_txn_t *t, int rc)
{
    if (rc == MDB_MAP_FULL)
        t->store->ran_out = true;
    return s_err (rc);
}

/*  LMDB reports a short write as EIO, and a disk that fills during a write
    gives a short write: so after an EIO, look at the space left (and at the
    file size limit) to tell a full disk from a failing one.  */
#define S_SPACE_MARGIN (64ull << 20)
static bool
s_out_of_space (const dipx_store_t *self)
{
    int fd;
    struct stat st;
    struct statvfs vfs;
    struct rlimit rl;
    if (mdb_env_get_fd (self->env, &fd) != 0 || fstat (fd, &st) != 0)
        return false;
    if (getrlimit (RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
        && (uint64_t) st.st_size + S_SPACE_MARGIN >= (uint64_t) rl.rlim_cur)
        return true;
    return fstatvfs (fd, &vfs) == 0 && (uint64_t) vfs.f_bavail * vfs.f_frsize < S_SPACE_MARGIN;
}

static int
s_copy_agency (const uint8_t *p, size_t len, char *out)
{
    if (len == 0 || len > DIPX_MAX_AGENCY_ID || !dipx_text_is_agency_id ((const char *) p, len))
        return DIPX_E_CORRUPT;
    memcpy (out, p, len);
    out[len] = 0;
    return 0;
}

/* --- record codecs ------------------------------------------------------- */

/*  msgs value: u8 version, u8 from_len, u8 to_len, u8 pad, be64 accepted_at,
    be64 expires, be32 env_len, id[16], from, to, envelope.  */
int
dipx_store_decode_msg (const uint8_t *buf, size_t len, dipx_msgrec_t *out)
{
    memset (out, 0, sizeof *out);
    if (len < S_MSG_FIXED || buf[0] != 1)
        return DIPX_E_CORRUPT;
    size_t fl = buf[1], tl = buf[2], el = dipx_get_be32 (buf + 20);
    if (el == 0 || el > DIPX_MAX_ENV || len != S_MSG_FIXED + fl + tl + el)
        return DIPX_E_CORRUPT;
    out->accepted_at = dipx_get_be64 (buf + 4);
    out->expires = dipx_get_be64 (buf + 12);
    memcpy (out->id, buf + 24, DIPX_ID_BYTES);
    if (s_copy_agency (buf + S_MSG_FIXED, fl, out->from)
        || s_copy_agency (buf + S_MSG_FIXED + fl, tl, out->to))
        return DIPX_E_CORRUPT;
    out->env = buf + S_MSG_FIXED + fl + tl;
    out->env_len = el;
    return 0;
}

static int
s_decode_state (const MDB_val *v, dipx_msgrec_t *out)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size != S_STATE_LEN || p[0] < DIPX_MSG_QUEUED || p[0] > DIPX_MSG_DEAD)
        return DIPX_E_CORRUPT;
    out->state = p[0];
    out->count = dipx_get_be32 (p + 1);
    out->delivered_at = dipx_get_be64 (p + 5);
    return 0;
}

/*  ids value: u8 version, u8 state, u8 from_len, u8 to_len, be64 seq, be64 at,
    digest[64], from, to.  */
int
dipx_store_decode_id (const uint8_t *buf, size_t len, dipx_idrec_t *out)
{
    memset (out, 0, sizeof *out);
    if (len < S_ID_FIXED || buf[0] != 1 || buf[1] < DIPX_MSG_QUEUED || buf[1] > DIPX_MSG_DEAD)
        return DIPX_E_CORRUPT;
    size_t fl = buf[2], tl = buf[3];
    if (len != S_ID_FIXED + fl + tl)
        return DIPX_E_CORRUPT;
    out->state = buf[1];
    out->seq = dipx_get_be64 (buf + 4);
    out->at = dipx_get_be64 (buf + 12);
    memcpy (out->digest, buf + 20, sizeof out->digest);
    if (s_copy_agency (buf + S_ID_FIXED, fl, out->from)
        || s_copy_agency (buf + S_ID_FIXED + fl, tl, out->to))
        return DIPX_E_CORRUPT;
    return 0;
}

static int
s_put_id (dipx_txn_t *t, const uint8_t id[DIPX_ID_BYTES], const dipx_idrec_t *r)
{
    size_t fl = strlen (r->from), tl = strlen (r->to);
    uint8_t buf[S_ID_FIXED + 2 * DIPX_MAX_AGENCY_ID];
    buf[0] = 1;
    buf[1] = (uint8_t) r->state;
    buf[2] = (uint8_t) fl;
    buf[3] = (uint8_t) tl;
    dipx_put_be64 (buf + 4, r->seq);
    dipx_put_be64 (buf + 12, r->at);
    memcpy (buf + 20, r->digest, sizeof r->digest);
    memcpy (buf + S_ID_FIXED, r->from, fl);
    memcpy (buf + S_ID_FIXED + fl, r->to, tl);
    MDB_val k = {DIPX_ID_BYTES, (void *) id}, v = {S_ID_FIXED + fl + tl, buf};
    return s_werr (t, mdb_put (t->txn, t->store->dbi[DB_IDS], &k, &v, 0));
}

static int
s_put_state (dipx_txn_t *t, uint64_t seq, int state, uint32_t count, uint64_t delivered_at)
{
    uint8_t kb[8], vb[S_STATE_LEN];
    dipx_put_be64 (kb, seq);
    vb[0] = (uint8_t) state;
    dipx_put_be32 (vb + 1, count);
    dipx_put_be64 (vb + 5, delivered_at);
    MDB_val k = {8, kb}, v = {S_STATE_LEN, vb};
    return s_werr (t, mdb_put (t->txn, t->store->dbi[DB_MSTATE], &k, &v, 0));
}

/*  queue key: agency id, NUL, be64 seq. NUL sorts below every id character,
    so one agency's entries are contiguous and in seq order.  */
static size_t
s_queue_key (uint8_t *buf, const char *agency, uint64_t seq)
{
    size_t n = strlen (agency);
    memcpy (buf, agency, n);
    buf[n] = 0;
    dipx_put_be64 (buf + n + 1, seq);
    return n + 9;
}

static int
s_qstat_add (dipx_txn_t *t, const char *agency, int64_t dcount, int64_t dbytes)
{
    uint64_t count = 0, bytes = 0;
    int rc = dipx_store_queue_stat (t, agency, &count, &bytes);
    if (rc && rc != DIPX_E_NOT_FOUND)
        return rc;
    count = (uint64_t) ((int64_t) count + dcount);
    bytes = (uint64_t) ((int64_t) bytes + dbytes);
    uint8_t vb[16];
    dipx_put_be64 (vb, count);
    dipx_put_be64 (vb + 8, bytes);
    MDB_val k = {strlen (agency), (void *) agency}, v = {16, vb};
    return s_werr (t, mdb_put (t->txn, t->store->dbi[DB_QSTAT], &k, &v, 0));
}

/* --- environment and transactions --------------------------------------- */

/*  LMDB maps the data file and trusts it: pages past the end of a truncated
    file would raise SIGBUS when touched. Refuse a file shorter than the
    pages its meta page says are in use.  */
static int
s_check_size (MDB_env *env, const char *dir)
{
    MDB_envinfo info;
    MDB_stat st;
    char path[4096];
    struct stat fs;
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    if (mdb_env_info (env, &info) != 0 || mdb_env_stat (env, &st) != 0 || stat (path, &fs) != 0)
        return MDB_INVALID;
    if ((uint64_t) fs.st_size < ((uint64_t) info.me_last_pgno + 1) * st.ms_psize) {
        dipx_log_error ("store %s: data file is %lld bytes, shorter than its %llu pages in use "
                        "(truncated?)", dir, (long long) fs.st_size,
                        (unsigned long long) info.me_last_pgno + 1);
        return MDB_CORRUPTED;
    }
    return 0;
}

int
dipx_store_open (const char *dir, uint64_t map_size, uint64_t map_max, unsigned flags,
                 dipx_store_t **out)
{
    *out = NULL;
    bool readonly = flags & DIPX_STORE_READONLY;
    if (!readonly && mkdir (dir, 0700) != 0 && errno != EEXIST)
        return DIPX_E_IO;
    dipx_store_t *self = calloc (1, sizeof *self);
    if (!self)
        return DIPX_E_NOMEM;
    self->map_size = map_size;
    self->map_max = map_max;
    self->readonly = readonly;
    MDB_txn *txn = NULL;
    int rc = mdb_env_create (&self->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs (self->env, S_NDBS);
    if (rc == 0)
        rc = mdb_env_set_mapsize (self->env, (size_t) map_size);
    if (rc == 0)
        /* MDB_NORDAHEAD: LMDB maps the whole file, and on a fault the
           kernel reads up to 128 KiB around the page, which lookups
           scattered over a large log mostly throw away (a subject query on
           a cold 10 M-entry log read for 0.4 s with readahead, 18 ms
           without); a scan wants the readahead.  */
        rc = mdb_env_open (self->env, dir,
                           (readonly ? MDB_RDONLY : 0)
                               | (flags & DIPX_STORE_RANDOM ? MDB_NORDAHEAD : 0),
                           0600);
    if (rc == 0) {
        /* Another process may have grown the map: adopt its size.  */
        MDB_envinfo info;
        mdb_env_info (self->env, &info);
        if (info.me_mapsize > self->map_size)
            self->map_size = info.me_mapsize;
        rc = s_check_size (self->env, dir);
        if (rc == 0)
            rc = mdb_txn_begin (self->env, NULL, readonly ? MDB_RDONLY : 0, &txn);
    }
    for (int i = 0; rc == 0 && i < S_NDBS; i++) {
        rc = mdb_dbi_open (txn, s_db_names[i], readonly ? 0 : MDB_CREATE, &self->dbi[i]);
        if (i == DB_AUD_SEQ) {
            self->has_aud_seq = rc == 0;
            if (rc == MDB_NOTFOUND && readonly)
                rc = 0;
        }
    }
    /* Commit even a read-only transaction: LMDB closes the handles opened
       in a transaction that is aborted.  */
    if (rc == 0)
        rc = mdb_txn_commit (txn);
    else if (txn)
        mdb_txn_abort (txn);
    if (rc) {
        dipx_log_error ("store %s: %s", dir, mdb_strerror (rc));
        dipx_store_destroy (&self);
        return rc == ENOENT ? DIPX_E_IO : s_err (rc);
    }
    *out = self;
    return 0;
}

void
dipx_store_destroy (dipx_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dipx_store_t *self = *self_p;
    if (self->env)
        mdb_env_close (self->env);
    free (self);
    *self_p = NULL;
}

static uint64_t
s_meta_get (MDB_txn *txn, MDB_dbi dbi, const char *key)
{
    MDB_val k = {strlen (key), (void *) key}, v;
    if (mdb_get (txn, dbi, &k, &v) != 0 || v.mv_size != 8)
        return 0;
    return dipx_get_be64 (v.mv_data);
}

static void
s_txn_free (dipx_txn_t *t)
{
    if (t != &t->store->wtxn)
        free (t);
}

static int
s_begin (dipx_store_t *self, bool write, dipx_txn_t **out)
{
    *out = NULL;
    if (write) {
        if (self->readonly || self->write_txn)
            return DIPX_E_STATE;
        MDB_envinfo info;
        MDB_stat st;
        if (mdb_env_info (self->env, &info) == 0 && mdb_env_stat (self->env, &st) == 0) {
            uint64_t used = ((uint64_t) info.me_last_pgno + 1) * st.ms_psize;
            if ((used > self->map_size / 4 * 3 || self->ran_out)
                && self->map_size < self->map_max) {
                uint64_t grown = self->map_size * 2;
                if (grown > self->map_max)
                    grown = self->map_max;
                if (mdb_env_set_mapsize (self->env, (size_t) grown) == 0) {
                    dipx_log_info ("store: map grown to %llu MiB",
                                   (unsigned long long) (grown >> 20));
                    self->map_size = grown;
                }
            }
        }
        self->ran_out = false;
    }
    dipx_txn_t *t = write ? &self->wtxn : malloc (sizeof *t);
    if (!t)
        return DIPX_E_NOMEM;
    memset (t, 0, sizeof *t);
    t->store = self;
    t->write = write;
    int rc = mdb_txn_begin (self->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    if (rc) {
        if (rc == MDB_PANIC && !self->failed) {
            self->failed = true;
            dipx_log_error ("store: LMDB refuses every transaction after a failed write of "
                            "its meta page; the data file must be reopened");
        }
        s_txn_free (t);
        return s_err (rc);
    }
    t->seq = s_meta_get (t->txn, self->dbi[DB_META], "seq");
    t->aseq = s_meta_get (t->txn, self->dbi[DB_META], "aseq");
    t->redrive = s_meta_get (t->txn, self->dbi[DB_META], "redrive");
    if (write)
        self->write_txn = t;
    *out = t;
    return 0;
}

bool
dipx_store_failed (const dipx_store_t *self)
{
    return self->failed;
}

int
dipx_store_begin (dipx_store_t *self, dipx_txn_t **out)
{
    return s_begin (self, true, out);
}

int
dipx_store_begin_read (dipx_store_t *self, dipx_txn_t **out)
{
    return s_begin (self, false, out);
}

static int
s_meta_put (dipx_txn_t *t, const char *key, uint64_t value)
{
    uint8_t vb[8];
    dipx_put_be64 (vb, value);
    MDB_val k = {strlen (key), (void *) key}, v = {8, vb};
    return s_werr (t, mdb_put (t->txn, t->store->dbi[DB_META], &k, &v, 0));
}

int
dipx_store_commit (dipx_txn_t **txn_p)
{
    dipx_txn_t *t = *txn_p;
    *txn_p = NULL;
    int rc = 0;
    if (t->write && t->dirty_meta) {
        rc = s_meta_put (t, "seq", t->seq);
        if (rc == 0)
            rc = s_meta_put (t, "aseq", t->aseq);
        if (rc == 0)
            rc = s_meta_put (t, "redrive", t->redrive);
    }
    if (rc == 0) {
        int mrc = mdb_txn_commit (t->txn); /* frees the txn on every path */
        rc = t->write ? s_werr (t, mrc) : s_err (mrc);
        if (mrc)
            dipx_log_error ("store: commit failed: %s", mdb_strerror (mrc));
        if (mrc == EIO && s_out_of_space (t->store))
            rc = DIPX_E_STORAGE_FULL;
    } else
        mdb_txn_abort (t->txn);
    if (t->write)
        t->store->write_txn = NULL;
    s_txn_free (t);
    return rc;
}

void
dipx_store_abort (dipx_txn_t **txn_p)
{
    if (!txn_p || !*txn_p)
        return;
    dipx_txn_t *t = *txn_p;
    mdb_txn_abort (t->txn);
    if (t->write)
        t->store->write_txn = NULL;
    s_txn_free (t);
    *txn_p = NULL;
}

/* --- messages ------------------------------------------------------------ */

/*  The ids record is written once, when the message is accepted, and never
    rewritten: its keys are random (client-chosen message ids), so every
    write to it dirties a leaf page of its own, and the tree holds one entry
    per message ever accepted. A message's current state lives in mstate
    (keyed by seq, so its writes stay on a few pages), which an ack now
    keeps, as 13 bytes, instead of deleting. A record without an mstate
    entry was acknowledged by an older broker, which rewrote the state in
    the ids record: that state is used.  */
int
dipx_store_id_get (dipx_txn_t *t, const uint8_t id[DIPX_ID_BYTES], dipx_idrec_t *out)
{
    MDB_val k = {DIPX_ID_BYTES, (void *) id}, v;
    int rc = s_err (mdb_get (t->txn, t->store->dbi[DB_IDS], &k, &v));
    if (rc == 0)
        rc = dipx_store_decode_id (v.mv_data, v.mv_size, out);
    if (rc)
        return rc;
    uint8_t kb[8];
    dipx_put_be64 (kb, out->seq);
    MDB_val sk = {8, kb}, sv;
    rc = mdb_get (t->txn, t->store->dbi[DB_MSTATE], &sk, &sv);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return s_err (rc);
    dipx_msgrec_t m;
    if (s_decode_state (&sv, &m))
        return DIPX_E_CORRUPT;
    out->state = m.state;
    return 0;
}

int
dipx_store_queue_stat (dipx_txn_t *t, const char *agency, uint64_t *count, uint64_t *bytes)
{
    *count = *bytes = 0;
    MDB_val k = {strlen (agency), (void *) agency}, v;
    int rc = s_err (mdb_get (t->txn, t->store->dbi[DB_QSTAT], &k, &v));
    if (rc)
        return rc;
    if (v.mv_size != 16)
        return DIPX_E_CORRUPT;
    *count = dipx_get_be64 (v.mv_data);
    *bytes = dipx_get_be64 ((const uint8_t *) v.mv_data + 8);
    return 0;
}

static int
s_expiry_key (uint8_t kb[16], uint64_t expires, uint64_t seq)
{
    dipx_put_be64 (kb, expires);
    dipx_put_be64 (kb + 8, seq);
    return 16;
}

int
dipx_store_enqueue (dipx_txn_t *t, const dipx_envelope_t *env, const uint8_t *raw,
                    size_t raw_len, const uint8_t digest[2 * DIPX_HASH_BYTES], uint64_t now,
                    uint64_t *seq)
{
    const dipx_header_t *h = &env->h;
    size_t fl = strlen (h->from), tl = strlen (h->to);
    if (raw_len == 0 || raw_len > DIPX_MAX_ENV)
        return DIPX_E_INVAL;
    uint64_t s = t->seq + 1;
    uint8_t kb[DIPX_MAX_AGENCY_ID + 9];
    dipx_put_be64 (kb, s);
    MDB_val k = {8, kb}, v = {S_MSG_FIXED + fl + tl + raw_len, NULL};
    /* MDB_RESERVE: LMDB gives us the space and we write the record in place,
       saving a copy of the envelope.  */
    int rc = s_werr (t, mdb_put (t->txn, t->store->dbi[DB_MSGS], &k, &v, MDB_RESERVE));
    if (rc)
        return rc;
    uint8_t *p = v.mv_data;
    p[0] = 1;
    p[1] = (uint8_t) fl;
    p[2] = (uint8_t) tl;
    p[3] = 0;
    dipx_put_be64 (p + 4, now);
    dipx_put_be64 (p + 12, h->expires);
    dipx_put_be32 (p + 20, (uint32_t) raw_len);
    memcpy (p + 24, h->id, DIPX_ID_BYTES);
    memcpy (p + S_MSG_FIXED, h->from, fl);
    memcpy (p + S_MSG_FIXED + fl, h->to, tl);
    memcpy (p + S_MSG_FIXED + fl + tl, raw, raw_len);
    if ((rc = s_put_state (t, s, DIPX_MSG_QUEUED, 0, 0)))
        return rc;

    uint8_t qb[4];
    dipx_put_be32 (qb, (uint32_t) raw_len);
    MDB_val qk = {s_queue_key (kb, h->to, s), kb}, qv = {4, qb};
    if ((rc = s_werr (t, mdb_put (t->txn, t->store->dbi[DB_QUEUE], &qk, &qv, 0))))
        return rc;
    if ((rc = s_qstat_add (t, h->to, 1, (int64_t) raw_len)))
        return rc;

    uint8_t eb[16];
    MDB_val ek = {s_expiry_key (eb, h->expires, s), eb}, ev = {0, NULL};
    if ((rc = s_werr (t, mdb_put (t->txn, t->store->dbi[DB_EXPIRY], &ek, &ev, 0))))
        return rc;

    dipx_idrec_t ir = {.seq = s, .state = DIPX_MSG_QUEUED, .at = now};
    memcpy (ir.digest, digest, sizeof ir.digest);
    memcpy (ir.from, h->from, fl + 1);
    memcpy (ir.to, h->to, tl + 1);
    if ((rc = s_put_id (t, h->id, &ir)))
        return rc;
    t->seq = s;
    t->dirty_meta = true;
    *seq = s;
    return 0;
}

int
dipx_store_msg_get (dipx_txn_t *t, uint64_t seq, dipx_msgrec_t *out)
{
    uint8_t kb[8];
    dipx_put_be64 (kb, seq);
    MDB_val k = {8, kb}, v, sv;
    memset (out, 0, sizeof *out); /* out->env tells "found" below */
    int rc = s_err (mdb_get (t->txn, t->store->dbi[DB_MSGS], &k, &v));
    if (rc == 0)
        rc = dipx_store_decode_msg (v.mv_data, v.mv_size, out);
    if (rc == 0)
        rc = s_err (mdb_get (t->txn, t->store->dbi[DB_MSTATE], &k, &sv));
    if (rc == DIPX_E_NOT_FOUND && out->env)
        rc = DIPX_E_CORRUPT; /* a message without its state */
    if (rc == 0)
        rc = s_decode_state (&sv, out);
    out->seq = seq;
    return rc;
}

int
dipx_store_queue_next (dipx_txn_t *t, const char *agency, uint64_t after, dipx_msgrec_t *out)
{
    uint8_t kb[DIPX_MAX_AGENCY_ID + 9];
    size_t n = strlen (agency);
    if (after == UINT64_MAX)
        return DIPX_E_NOT_FOUND;
    MDB_val k = {s_queue_key (kb, agency, after + 1), kb}, v;
    MDB_cursor *cur;
    int rc = s_err (mdb_cursor_open (t->txn, t->store->dbi[DB_QUEUE], &cur));
    if (rc)
        return rc;
    rc = s_err (mdb_cursor_get (cur, &k, &v, MDB_SET_RANGE));
    uint64_t seq = 0;
    if (rc == 0) {
        if (k.mv_size != n + 9 || memcmp (k.mv_data, agency, n) != 0
            || ((const uint8_t *) k.mv_data)[n] != 0)
            rc = DIPX_E_NOT_FOUND;
        else
            seq = dipx_get_be64 ((const uint8_t *) k.mv_data + n + 1);
    }
    mdb_cursor_close (cur);
    if (rc)
        return rc;
    rc = dipx_store_msg_get (t, seq, out);
    if (rc == 0 && (out->state != DIPX_MSG_QUEUED || strcmp (out->to, agency) != 0))
        rc = DIPX_E_CORRUPT;
    return rc == DIPX_E_NOT_FOUND ? DIPX_E_CORRUPT : rc;
}

int
dipx_store_msg_delivered (dipx_txn_t *t, uint64_t seq, uint64_t now, uint32_t *count)
{
    dipx_msgrec_t m;
    int rc = dipx_store_msg_get (t, seq, &m);
    if (rc)
        return rc;
    if (m.state != DIPX_MSG_QUEUED)
        return DIPX_E_STATE;
    *count = m.count + 1;
    return s_put_state (t, seq, DIPX_MSG_QUEUED, *count, now);
}

int
dipx_store_msg_undelivered (dipx_txn_t *t, uint64_t seq, uint32_t count)
{
    dipx_msgrec_t m;
    int rc = dipx_store_msg_get (t, seq, &m);
    /* Gone, or a record that does not decode (its delivery dead-letters it):
       nothing to take back, and no reason to fail the transaction.  */
    if (rc == DIPX_E_NOT_FOUND || rc == DIPX_E_CORRUPT)
        return 0;
    if (rc || m.state != DIPX_MSG_QUEUED || count == 0 || m.count != count)
        return rc;
    /* delivered_at stays that of the attempt taken back when one sent
       remains: the time of the one before is not kept.  */
    return s_put_state (t, seq, DIPX_MSG_QUEUED, count - 1, count > 1 ? m.delivered_at : 0);
}

/*  Takes a queued message out of its queue, counters and expiry index.  */
static int
s_dequeue (dipx_txn_t *t, const dipx_msgrec_t *m)
{
    uint8_t kb[DIPX_MAX_AGENCY_ID + 9], eb[16];
    MDB_val qk = {s_queue_key (kb, m->to, m->seq), kb};
    int rc = s_werr (t, mdb_del (t->txn, t->store->dbi[DB_QUEUE], &qk, NULL));
    if (rc == 0)
        rc = s_qstat_add (t, m->to, -1, -(int64_t) m->env_len);
    MDB_val ek = {s_expiry_key (eb, m->expires, m->seq), eb};
    if (rc == 0)
        rc = s_werr (t, mdb_del (t->txn, t->store->dbi[DB_EXPIRY], &ek, NULL));
    return rc == DIPX_E_NOT_FOUND ? DIPX_E_CORRUPT : rc;
}

/*  A state change is written to mstate (see dipx_store_id_get); the ids
    record only has to exist. A lookup, no write: the ids page stays clean.  */
static int
s_id_exists (dipx_txn_t *t, const uint8_t id[DIPX_ID_BYTES])
{
    MDB_val k = {DIPX_ID_BYTES, (void *) id}, v;
    int rc = s_err (mdb_get (t->txn, t->store->dbi[DB_IDS], &k, &v));
    return rc == DIPX_E_NOT_FOUND ? DIPX_E_CORRUPT : rc;
}

/*  Takes queued message seq out of its queue (for an ack or a dead letter):
    fills *m (its scalar fields stay valid) and id.  */
static int
s_take_queued (dipx_txn_t *t, uint64_t seq, dipx_msgrec_t *m, uint8_t id[DIPX_ID_BYTES])
{
    int rc = dipx_store_msg_get (t, seq, m);
    if (rc)
        return rc;
    if (m->state != DIPX_MSG_QUEUED)
        return DIPX_E_STATE;
    memcpy (id, m->id, DIPX_ID_BYTES);
    return s_dequeue (t, m);
}

int
dipx_store_msg_acked (dipx_txn_t *t, uint64_t seq)
{
    dipx_msgrec_t m;
    uint8_t id[DIPX_ID_BYTES];
    int rc = s_take_queued (t, seq, &m, id);
    if (rc)
        return rc;
    uint8_t kb[8];
    dipx_put_be64 (kb, seq);
    MDB_val k = {8, kb};
    if ((rc = s_werr (t, mdb_del (t->txn, t->store->dbi[DB_MSGS], &k, NULL)))
        || (rc = s_put_state (t, seq, DIPX_MSG_ACKED, m.count, m.delivered_at)))
        return rc;
    return s_id_exists (t, id);
}

int
dipx_store_msg_dead (dipx_txn_t *t, uint64_t seq, uint64_t now, int code, const char *reason)
{
    dipx_msgrec_t m;
    uint8_t id[DIPX_ID_BYTES];
    int rc = s_take_queued (t, seq, &m, id);
    if (rc || (rc = s_put_state (t, seq, DIPX_MSG_DEAD, m.count, m.delivered_at)))
        return rc;
    size_t rl = strnlen (reason, DIPX_MAX_REASON);
    uint8_t kb[8], vb[17 + DIPX_MAX_REASON];
    dipx_put_be64 (kb, seq);
    dipx_put_be64 (vb, now);
    dipx_put_be64 (vb + 8, (uint64_t) (code < 0 ? -code : code)); /* the wire code, positive */
    vb[16] = (uint8_t) (rl > 255 ? 255 : rl);
    memcpy (vb + 17, reason, vb[16]);
    MDB_val k = {8, kb}, v = {17u + vb[16], vb};
    if ((rc = s_werr (t, mdb_put (t->txn, t->store->dbi[DB_DEAD], &k, &v, 0))))
        return rc;
    return s_id_exists (t, id);
}

int
dipx_store_msg_redrive (dipx_txn_t *t, uint64_t seq)
{
    dipx_msgrec_t m;
    int rc = dipx_store_msg_get (t, seq, &m);
    if (rc)
        return rc;
    if (m.state != DIPX_MSG_DEAD)
        return DIPX_E_STATE;
    uint8_t kb[DIPX_MAX_AGENCY_ID + 9], eb[16], qb[4];
    dipx_put_be64 (kb, seq);
    MDB_val k = {8, kb};
    if ((rc = s_werr (t, mdb_del (t->txn, t->store->dbi[DB_DEAD], &k, NULL))))
        return rc == DIPX_E_NOT_FOUND ? DIPX_E_CORRUPT : rc;
    if ((rc = s_put_state (t, seq, DIPX_MSG_QUEUED, 0, 0)))
        return rc;
    dipx_put_be32 (qb, (uint32_t) m.env_len);
    MDB_val qk = {s_queue_key (kb, m.to, seq), kb}, qv = {4, qb};
    if ((rc = s_werr (t, mdb_put (t->txn, t->store->dbi[DB_QUEUE], &qk, &qv, 0)))
        || (rc = s_qstat_add (t, m.to, 1, (int64_t) m.env_len)))
        return rc;
    MDB_val ek = {s_expiry_key (eb, m.expires, seq), eb}, ev = {0, NULL};
    if ((rc = s_werr (t, mdb_put (t->txn, t->store->dbi[DB_EXPIRY], &ek, &ev, 0))))
        return rc;
    t->redrive++;
    t->dirty_meta = true;
    return s_id_exists (t, m.id);
}

int
dipx_store_dead_next (dipx_txn_t *t, uint64_t after, dipx_msgrec_t *msg, uint64_t *at,
                      uint64_t *code, char reason[DIPX_MAX_REASON + 1])
{
    uint8_t kb[8];
    if (after == UINT64_MAX)
        return DIPX_E_NOT_FOUND;
    dipx_put_be64 (kb, after + 1);
    MDB_val k = {8, kb}, v;
    MDB_cursor *cur;
    int rc = s_err (mdb_cursor_open (t->txn, t->store->dbi[DB_DEAD], &cur));
    if (rc)
        return rc;
    rc = s_err (mdb_cursor_get (cur, &k, &v, MDB_SET_RANGE));
    uint64_t seq = 0;
    if (rc == 0) {
        const uint8_t *p = v.mv_data;
        if (k.mv_size != 8 || v.mv_size < 17 || v.mv_size != 17u + p[16])
            rc = DIPX_E_CORRUPT;
        else {
            seq = dipx_get_be64 (k.mv_data);
            *at = dipx_get_be64 (p);
            *code = dipx_get_be64 (p + 8);
            memcpy (reason, p + 17, p[16]);
            reason[p[16]] = 0;
        }
    }
    mdb_cursor_close (cur);
    if (rc == 0)
        rc = dipx_store_msg_get (t, seq, msg);
    return rc;
}

int
dipx_store_expired_next (dipx_txn_t *t, uint64_t now, dipx_msgrec_t *out)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = s_err (mdb_cursor_open (t->txn, t->store->dbi[DB_EXPIRY], &cur));
    if (rc)
        return rc;
    rc = s_err (mdb_cursor_get (cur, &k, &v, MDB_FIRST));
    uint64_t seq = 0;
    if (rc == 0) {
        if (k.mv_size != 16)
            rc = DIPX_E_CORRUPT;
        else if (dipx_get_be64 (k.mv_data) > now)
            rc = DIPX_E_NOT_FOUND;
        else
            seq = dipx_get_be64 ((const uint8_t *) k.mv_data + 8);
    }
    mdb_cursor_close (cur);
    if (rc == 0)
        rc = dipx_store_msg_get (t, seq, out);
    return rc;
}

/* --- audit ---------------------------------------------------------------- */

int
dipx_store_audit (dipx_txn_t *t, dipx_audit_t *rec)
{
    rec->seq = t->aseq + 1;
    uint8_t *buf;
    size_t len;
    int rc = dipx_audit_encode (rec, &buf, &len);
    if (rc)
        return rc;
    uint8_t kb[DIPX_SUBJ_BYTES + 8];
    dipx_put_be64 (kb, rec->seq);
    MDB_val k = {8, kb}, v = {len, buf};
    rc = s_werr (t, mdb_put (t->txn, t->store->dbi[DB_AUDIT], &k, &v, MDB_APPEND));
    free (buf);
    MDB_val e = {0, NULL};
    /* A record about a stored message is indexed by its sequence number:
       keys near the newest, so a commit's index writes share a few pages
       however long the history. Only records about a message id that was
       never stored (refusals) are indexed by that random id.  */
    bool by_seq = false;
    if (rc == 0 && (rec->present & DIPX_AU_ID) && (rec->present & DIPX_AU_MSG_SEQ)) {
        /* Only when the id's stored message is that seq (a read: the ids
           page is not dirtied), so that dipx_store_audit_for_id, which finds
           the seq through ids, finds every record.  */
        MDB_val k2 = {DIPX_ID_BYTES, rec->id}, v2;
        dipx_idrec_t ir;
        by_seq = mdb_get (t->txn, t->store->dbi[DB_IDS], &k2, &v2) == 0
                 && dipx_store_decode_id (v2.mv_data, v2.mv_size, &ir) == 0
                 && ir.seq == rec->msg_seq;
    }
    if (rc == 0 && (rec->present & DIPX_AU_ID) && by_seq) {
        dipx_put_be64 (kb, rec->msg_seq);
        dipx_put_be64 (kb + 8, rec->seq);
        MDB_val sk = {16, kb};
        rc = s_werr (t, mdb_put (t->txn, t->store->dbi[DB_AUD_SEQ], &sk, &e, 0));
    } else if (rc == 0 && (rec->present & DIPX_AU_ID)) {
        memcpy (kb, rec->id, DIPX_ID_BYTES);
        dipx_put_be64 (kb + DIPX_ID_BYTES, rec->seq);
        MDB_val ik = {DIPX_ID_BYTES + 8, kb};
        rc = s_werr (t, mdb_put (t->txn, t->store->dbi[DB_AUD_ID], &ik, &e, 0));
    }
    /* The subject index is random-keyed too: it gets one entry per message
       (its ACCEPTED record), from which aud_seq gives every later event, and
       one per record not about a stored message.  */
    if (rc == 0 && (rec->present & DIPX_AU_SUBJ)
        && (rec->event == DIPX_AUDIT_ACCEPTED || !by_seq)) {
        memcpy (kb, rec->subj, DIPX_SUBJ_BYTES);
        dipx_put_be64 (kb + DIPX_SUBJ_BYTES, rec->seq);
        MDB_val sk = {DIPX_SUBJ_BYTES + 8, kb};
        rc = s_werr (t, mdb_put (t->txn, t->store->dbi[DB_AUD_SUB], &sk, &e, 0));
    }
    if (rc == 0) {
        t->aseq = rec->seq;
        t->dirty_meta = true;
    }
    return rc;
}

int
dipx_store_audit_get (dipx_txn_t *t, uint64_t seq, dipx_audit_t *rec)
{
    uint8_t kb[8];
    dipx_put_be64 (kb, seq);
    MDB_val k = {8, kb}, v;
    int rc = s_err (mdb_get (t->txn, t->store->dbi[DB_AUDIT], &k, &v));
    if (rc)
        return rc;
    if (dipx_audit_decode (v.mv_data, v.mv_size, rec) != 0 || rec->seq != seq)
        return DIPX_E_CORRUPT;
    return 0;
}

/*  One index stream of audit sequence numbers under a key prefix.  */
typedef struct {
    MDB_cursor *cur;
    const uint8_t *prefix;
    size_t plen;
    uint64_t aseq; /* current entry's audit seq, 0 = exhausted */
} s_aud_stream_t;

static int
s_aud_stream_step (s_aud_stream_t *st, MDB_cursor_op op, MDB_val *k)
{
    MDB_val v;
    int rc = st->cur ? mdb_cursor_get (st->cur, k, &v, op) : MDB_NOTFOUND;
    st->aseq = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return s_err (rc);
    if (k->mv_size == st->plen + 8 && memcmp (k->mv_data, st->prefix, st->plen) == 0)
        st->aseq = dipx_get_be64 ((const uint8_t *) k->mv_data + st->plen);
    return 0;
}

int
dipx_store_audit_for_id (dipx_txn_t *t, const uint8_t id[DIPX_ID_BYTES], size_t max,
                         dipx_audit_fn *fn, void *arg)
{
    /* Records about the stored message (aud_seq, by its seq) and any about
       the id alone (aud_id: refusals, and everything written by a broker
       before aud_seq existed), merged in audit order.  */
    uint8_t ib[DIPX_ID_BYTES + 8], sb[16];
    s_aud_stream_t st[2] = {{.prefix = ib, .plen = DIPX_ID_BYTES}, {.prefix = sb, .plen = 8}};
    memcpy (ib, id, DIPX_ID_BYTES);
    memset (ib + DIPX_ID_BYTES, 0, 8);
    dipx_idrec_t ir;
    int rc = dipx_store_id_get (t, id, &ir);
    if (rc && rc != DIPX_E_NOT_FOUND)
        return rc;
    bool stored = rc == 0 && t->store->has_aud_seq;
    dipx_put_be64 (sb, stored ? ir.seq : 0);
    memset (sb + 8, 0, 8);
    rc = s_err (mdb_cursor_open (t->txn, t->store->dbi[DB_AUD_ID], &st[0].cur));
    if (rc == 0 && stored)
        rc = s_err (mdb_cursor_open (t->txn, t->store->dbi[DB_AUD_SEQ], &st[1].cur));
    MDB_val k0 = {sizeof ib, ib}, k1 = {sizeof sb, sb};
    if (rc == 0)
        rc = s_aud_stream_step (&st[0], MDB_SET_RANGE, &k0);
    if (rc == 0)
        rc = s_aud_stream_step (&st[1], MDB_SET_RANGE, &k1);
    size_t n = 0;
    while (rc == 0 && n < max && (st[0].aseq || st[1].aseq)) {
        int w = !st[0].aseq || (st[1].aseq && st[1].aseq < st[0].aseq);
        dipx_audit_t rec;
        rc = dipx_store_audit_get (t, st[w].aseq, &rec);
        if (rc == 0)
            rc = fn (&rec, arg);
        if (rc)
            break;
        n++;
        MDB_val k;
        rc = s_aud_stream_step (&st[w], MDB_NEXT, &k);
    }
    for (int i = 0; i < 2; i++)
        if (st[i].cur)
            mdb_cursor_close (st[i].cur);
    return rc == DIPX_E_NOT_FOUND ? 0 : rc;
}

/*  The n smallest audit seqs offered, as a max-heap (root = the largest
    kept), so that a query of a subject with any number of records needs
    memory for one page of them only.  */
typedef struct {
    uint64_t *v; /* heap array */
    size_t n;    /* entries kept */
    size_t cap;  /* the page size */
} s_seqheap_t;

static void
s_seqheap_offer (s_seqheap_t *h, uint64_t x)
{
    size_t i;
    if (h->n < h->cap) {
        i = h->n++;
        while (i > 0 && h->v[(i - 1) / 2] < x) {
            h->v[i] = h->v[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h->v[i] = x;
        return;
    }
    if (x >= h->v[0])
        return;
    i = 0; /* x replaces the root and sinks */
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1] > h->v[c])
            c++;
        if (h->v[c] <= x)
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    h->v[i] = x;
}

static int
s_seq_cmp (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return (x > y) - (x < y);
}

/*  Reads a record an index points at: a missing one is damage.  */
static int
s_audit_indexed (dipx_txn_t *t, uint64_t seq, dipx_audit_t *rec)
{
    int rc = dipx_store_audit_get (t, seq, rec);
    return rc == DIPX_E_NOT_FOUND ? DIPX_E_CORRUPT : rc;
}

/*  Offers the records above after of the stored message whose ACCEPTED
    record is acc (the subject index gave that one): its history by sequence
    number (aud_seq), and, for a message accepted before aud_seq existed
    (its ACCEPTED is not the first of that history), also its records under
    its id (aud_id) that carry no subject (those that do are in the subject
    index themselves) and are about this message. Each record is in one of
    aud_seq and aud_id only, so none is offered twice.  */
static int
s_offer_message (dipx_txn_t *t, MDB_cursor *hist, MDB_cursor *ids, const dipx_audit_t *acc,
                 uint64_t after, s_seqheap_t *h)
{
    uint8_t kb[DIPX_ID_BYTES + 8];
    dipx_put_be64 (kb, acc->msg_seq);
    dipx_put_be64 (kb + 8, 0);
    s_aud_stream_t st = {.cur = hist, .prefix = kb, .plen = 8};
    MDB_val k = {16, kb};
    int rc = s_aud_stream_step (&st, MDB_SET_RANGE, &k);
    /* A history written since aud_seq exists starts with the ACCEPTED.  */
    bool by_seq = rc == 0 && st.aseq == acc->seq;
    while (rc == 0 && st.aseq) {
        /* Past a full page's largest, nothing later in this stream fits.  */
        if (h->n == h->cap && st.aseq >= h->v[0])
            break;
        if (st.aseq > after && st.aseq != acc->seq)
            s_seqheap_offer (h, st.aseq);
        rc = s_aud_stream_step (&st, MDB_NEXT, &k);
    }
    if (rc || by_seq)
        return rc;
    memcpy (kb, acc->id, DIPX_ID_BYTES);
    dipx_put_be64 (kb + DIPX_ID_BYTES, after + 1);
    st = (s_aud_stream_t) {.cur = ids, .prefix = kb, .plen = DIPX_ID_BYTES};
    k = (MDB_val) {sizeof kb, kb};
    rc = s_aud_stream_step (&st, MDB_SET_RANGE, &k);
    while (rc == 0 && st.aseq) {
        if (h->n == h->cap && st.aseq >= h->v[0])
            break;
        dipx_audit_t rec;
        if (st.aseq > after && st.aseq != acc->seq
            && (rc = s_audit_indexed (t, st.aseq, &rec)) == 0 && !(rec.present & DIPX_AU_SUBJ)
            && (rec.present & DIPX_AU_MSG_SEQ) && rec.msg_seq == acc->msg_seq)
            s_seqheap_offer (h, st.aseq);
        if (rc == 0)
            rc = s_aud_stream_step (&st, MDB_NEXT, &k);
    }
    return rc;
}

int
dipx_store_audit_for_subject (dipx_txn_t *t, const uint8_t subj[DIPX_SUBJ_BYTES], uint64_t after,
                              size_t max, dipx_audit_fn *fn, void *arg)
{
    if (max > DIPX_AUDIT_PAGE_MAX)
        return DIPX_E_INVAL;
    if (max == 0 || after == UINT64_MAX) /* nothing can come after the last seq */
        return 0;
    s_seqheap_t h = {.v = malloc (max * sizeof (uint64_t)), .cap = max};
    if (!h.v)
        return DIPX_E_NOMEM;
    /* Every subject index entry is a candidate; an ACCEPTED record brings its
       message's whole history, which may reach past after even when the
       ACCEPTED record itself does not.  */
    uint8_t kb[DIPX_SUBJ_BYTES + 8];
    memcpy (kb, subj, DIPX_SUBJ_BYTES);
    memset (kb + DIPX_SUBJ_BYTES, 0, 8);
    s_aud_stream_t st = {.prefix = kb, .plen = DIPX_SUBJ_BYTES};
    MDB_cursor *hist = NULL, *ids = NULL;
    int rc = s_err (mdb_cursor_open (t->txn, t->store->dbi[DB_AUD_SUB], &st.cur));
    if (rc == 0)
        rc = s_err (mdb_cursor_open (t->txn, t->store->dbi[DB_AUD_ID], &ids));
    if (rc == 0 && t->store->has_aud_seq)
        rc = s_err (mdb_cursor_open (t->txn, t->store->dbi[DB_AUD_SEQ], &hist));
    MDB_val k = {sizeof kb, kb};
    if (rc == 0)
        rc = s_aud_stream_step (&st, MDB_SET_RANGE, &k);
    while (rc == 0 && st.aseq) {
        /* Later entries, and the histories they bring, are later still.  */
        if (h.n == h.cap && st.aseq >= h.v[0])
            break;
        if (st.aseq > after)
            s_seqheap_offer (&h, st.aseq);
        dipx_audit_t rec;
        if ((rc = s_audit_indexed (t, st.aseq, &rec)) == 0 && rec.event == DIPX_AUDIT_ACCEPTED
            && (rec.present & DIPX_AU_MSG_SEQ) && (rec.present & DIPX_AU_ID))
            rc = s_offer_message (t, hist, ids, &rec, after, &h);
        if (rc == 0)
            rc = s_aud_stream_step (&st, MDB_NEXT, &k);
    }
    if (hist)
        mdb_cursor_close (hist);
    if (ids)
        mdb_cursor_close (ids);
    if (st.cur)
        mdb_cursor_close (st.cur);
    /* No seq is offered twice (the ACCEPTED is skipped in its history, and
       aud_id gives only records the subject index lacks), so a full page
       means there may be more.  */
    qsort (h.v, h.n, sizeof h.v[0], s_seq_cmp);
    for (size_t i = 0; rc == 0 && i < h.n; i++) {
        dipx_audit_t rec;
        rc = s_audit_indexed (t, h.v[i], &rec);
        if (rc == 0)
            rc = fn (&rec, arg);
    }
    free (h.v);
    return rc;
}

/*  One message's pages, read so that they are in the page cache.  */
typedef struct {
    dipx_store_t *store; /* read through its own transaction */
    uint64_t aseq;       /* a subject index entry */
    int rc;              /* its transaction could not begin */
} s_prefetch_t;

static void
s_prefetch_one (void *arg)
{
    s_prefetch_t *job = arg;
    dipx_txn_t *t;
    if ((job->rc = dipx_store_begin_read (job->store, &t)) != 0)
        return;
    dipx_audit_t rec;
    MDB_cursor *cur;
    if (dipx_store_audit_get (t, job->aseq, &rec) == 0 && rec.event == DIPX_AUDIT_ACCEPTED
        && (rec.present & DIPX_AU_MSG_SEQ) && job->store->has_aud_seq
        && mdb_cursor_open (t->txn, job->store->dbi[DB_AUD_SEQ], &cur) == 0) {
        uint8_t sb[16];
        dipx_put_be64 (sb, rec.msg_seq);
        dipx_put_be64 (sb + 8, job->aseq + 1);
        s_aud_stream_t st = {.cur = cur, .prefix = sb, .plen = 8};
        MDB_val k = {sizeof sb, sb};
        int rc = s_aud_stream_step (&st, MDB_SET_RANGE, &k);
        for (int n = 0; rc == 0 && st.aseq && n < 64; n++) {
            dipx_audit_t later;
            (void) dipx_store_audit_get (t, st.aseq, &later);
            rc = s_aud_stream_step (&st, MDB_NEXT, &k);
        }
        mdb_cursor_close (cur);
    }
    dipx_store_abort (&t);
}

int
dipx_store_prefetch_subject (dipx_store_t *self, const uint8_t subj[DIPX_SUBJ_BYTES],
                             dipx_pool_t *pool)
{
    enum { MAX_JOBS = 65536 };
    dipx_txn_t *t;
    int rc = dipx_store_begin_read (self, &t);
    if (rc)
        return rc;
    s_prefetch_t *jobs = NULL;
    size_t n = 0, cap = 0;
    uint8_t kb[DIPX_SUBJ_BYTES + 8];
    memcpy (kb, subj, DIPX_SUBJ_BYTES);
    memset (kb + DIPX_SUBJ_BYTES, 0, 8);
    s_aud_stream_t st = {.prefix = kb, .plen = DIPX_SUBJ_BYTES};
    MDB_val k = {sizeof kb, kb};
    rc = s_err (mdb_cursor_open (t->txn, self->dbi[DB_AUD_SUB], &st.cur));
    if (rc == 0)
        rc = s_aud_stream_step (&st, MDB_SET_RANGE, &k);
    while (rc == 0 && st.aseq && n < MAX_JOBS) {
        if (n == cap) {
            size_t c = cap ? 2 * cap : 64;
            s_prefetch_t *grown = realloc (jobs, c * sizeof *grown);
            if (!grown) {
                rc = DIPX_E_NOMEM;
                break;
            }
            jobs = grown;
            cap = c;
        }
        jobs[n++] = (s_prefetch_t) {.store = self, .aseq = st.aseq};
        rc = s_aud_stream_step (&st, MDB_NEXT, &k);
    }
    if (st.cur)
        mdb_cursor_close (st.cur);
    dipx_store_abort (&t);
    if (rc == 0 && n)
        dipx_pool_run (pool, s_prefetch_one, jobs, n, sizeof *jobs);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = jobs[i].rc;
    free (jobs);
    return rc;
}

uint64_t
dipx_store_redrive_epoch (dipx_txn_t *t)
{
    return t->redrive;
}

uint64_t
dipx_store_audit_last (dipx_txn_t *t)
{
    return t->aseq;
}
