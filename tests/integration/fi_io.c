/*  fi_io.c - I/O-failure injection on the broker's LMDB data file, as an
    LD_PRELOAD shim (libdipx_fi_io.so). Writes and syncs of data.mdb fail with
    a real errno, as a failing disk (EIO) or a full one (ENOSPC) would make
    them, whichever thread makes them (the broker commits on a worker thread).

    It learns the data file's descriptors by watching open/openat for a path
    ending in "/data.mdb" (and close), and intercepts on those descriptors:

        data   pwrite/pwrite64/pwritev/write/writev at or past the third page
               (LMDB's page flush: one pwrite, or lseek + writev)
        meta   the same below the third page (LMDB's two meta pages)
        sync   fsync, fdatasync, sync_file_range

    DIPX_FI_IO, comma-separated: errno=EIO|ENOSPC, ops=data+meta+sync (any of
    them, joined by '+'), skip=S (let S matching calls pass once armed),
    count=C (then fail C calls and stop failing; 0 or absent = fail forever).
    DIPX_FI_IO_ARM names a file: nothing fails until it exists (checked with
    access() on matching calls only, a few per commit), so a test arms the
    fault at an event of its choosing (after the broker is READY and has
    accepted what it should keep) and never on a sleep.

    DIPX_FI_NO_SRCFD=1 (independent of the above): zmq_msg_get reports no
    ZMQ_SRCFD for any frame (EINVAL), as a libzmq without that deprecated
    property would; the broker then cannot tie a HELLO to its connection.

    DIPX_FI_FULL_GATE=FILE (independent too): while FILE exists, every
    two-part zmq_send on a ROUTER whose second part is longer than 400 bytes
    (a DELIVER: the broker's other frames are shorter) fails with EAGAIN, as
    a full send queue would make it ("fi-io: send queue full for a
    DELIVER"). While FILE exists the first part is held back until the
    second is seen, so a refused message sends nothing, as libzmq's own
    refusal would. With DIPX_FI_FULL_ERRNO=EHOSTUNREACH the DELIVER fails
    as if its connection had gone ("fi-io: connection gone for a DELIVER");
    the connection itself stays, so the test replaces its client.
    DIPX_FI_FULL_COUNT=N: only the first N DELIVERs are refused, gate or
    not, so a test need not remove the gate at a given moment.

    DIPX_FI_HOLD=SUFFIX with DIPX_FI_HOLD_GATE=FILE (independent too): an
    open of a path ending in SUFFIX waits while FILE exists, logging
    "fi-io: holding open of PATH" and then "fi-io: released PATH". A test
    holds a reload part-way (at the policy file, which is read after the
    registry) for as long as it needs, instead of counting on the reload
    taking longer than what it does meanwhile. DIPX_FI_HOLD=sync holds
    every fsync and fdatasync of data.mdb instead ("fi-io: holding a sync of
    data.mdb"), as a stalled disk would: the commit in progress waits.

    Each failure is logged to stderr ("fi-io: fail ..."): a test checks that
    its fault really fired. Built without sanitizers in every build: it sits
    below ASan's own interceptors (the executable's symbols come first, and
    their REAL() is found with RTLD_NEXT, i.e. here).
*/
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#define S_MAXFD 4096
#define S_META_LIMIT (2 * 4096) /* LMDB's meta pages: pages 0 and 1 (4 KiB pages) */

enum { OP_DATA = 1, OP_META = 2, OP_SYNC = 4 };

static atomic_bool s_is_data[S_MAXFD]; /* fd refers to data.mdb */
static struct {
    bool enabled;  /* DIPX_FI_IO set */
    int err;       /* errno to fail with */
    int ops;       /* OP_* mask */
    long skip;     /* matching calls let through once armed */
    long count;    /* failures, 0 = forever */
    char arm[512]; /* arm file */
} s_cfg;
static atomic_bool s_armed;
static atomic_long s_matched; /* matching calls since armed */

__attribute__ ((format (printf, 1, 2))) static void
s_say (const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (line, sizeof line - 1, fmt, ap);
    va_end (ap);
    if (n < 0)
        return;
    if ((size_t) n > sizeof line - 2)
        n = (int) sizeof line - 2;
    line[n++] = '\n';
    ssize_t (*real_write) (int, const void *, size_t) = dlsym (RTLD_NEXT, "write");
    if (real_write)
        real_write (STDERR_FILENO, line, (size_t) n);
}

static bool s_no_srcfd; /* DIPX_FI_NO_SRCFD set */
static char s_full_gate[512]; /* DIPX_FI_FULL_GATE */
static char s_hold[256];      /* DIPX_FI_HOLD: suffix of the paths held */
static int s_full_errno = EAGAIN; /* DIPX_FI_FULL_ERRNO */
static long s_full_count;         /* DIPX_FI_FULL_COUNT; 0 = no limit */
static long s_full_done;          /* DELIVERs refused so far */
static char s_hold_gate[512]; /* DIPX_FI_HOLD_GATE: held while this exists */

__attribute__ ((constructor)) static void
s_init (void)
{
    const char *nofd = getenv ("DIPX_FI_NO_SRCFD");
    if (nofd && strcmp (nofd, "1") == 0) {
        s_no_srcfd = true;
        s_say ("fi-io: frames without ZMQ_SRCFD");
    }
    const char *full = getenv ("DIPX_FI_FULL_GATE");
    const char *full_errno = getenv ("DIPX_FI_FULL_ERRNO");
    if (full_errno && strcmp (full_errno, "EHOSTUNREACH") == 0)
        s_full_errno = EHOSTUNREACH;
    const char *full_count = getenv ("DIPX_FI_FULL_COUNT");
    s_full_count = full_count ? atol (full_count) : 0;
    if (full && *full) {
        snprintf (s_full_gate, sizeof s_full_gate, "%s", full);
        s_say ("fi-io: DELIVERs refused (%s) while %s exists",
               s_full_errno == EAGAIN ? "EAGAIN" : "EHOSTUNREACH", s_full_gate);
    }
    const char *hold = getenv ("DIPX_FI_HOLD"), *gate = getenv ("DIPX_FI_HOLD_GATE");
    if (hold && *hold && gate && *gate) {
        snprintf (s_hold, sizeof s_hold, "%s", hold);
        snprintf (s_hold_gate, sizeof s_hold_gate, "%s", gate);
        s_say ("fi-io: opens of *%s held while %s exists", s_hold, s_hold_gate);
    }
    const char *spec = getenv ("DIPX_FI_IO");
    const char *arm = getenv ("DIPX_FI_IO_ARM");
    if (!spec || !*spec)
        return;
    s_cfg.enabled = true;
    s_cfg.err = strstr (spec, "errno=ENOSPC") ? ENOSPC : EIO;
    const char *ops = strstr (spec, "ops=");
    if (ops) {
        size_t n = strcspn (ops, ",");
        char word[64];
        snprintf (word, sizeof word, "%.*s", (int) n, ops);
        s_cfg.ops = (strstr (word, "data") ? OP_DATA : 0) | (strstr (word, "meta") ? OP_META : 0)
                    | (strstr (word, "sync") ? OP_SYNC : 0);
    } else
        s_cfg.ops = OP_DATA | OP_META | OP_SYNC;
    const char *p;
    s_cfg.skip = (p = strstr (spec, "skip=")) ? atol (p + 5) : 0;
    s_cfg.count = (p = strstr (spec, "count=")) ? atol (p + 6) : 0;
    snprintf (s_cfg.arm, sizeof s_cfg.arm, "%s", arm ? arm : "");
    atomic_store (&s_armed, !arm || !*arm);
    s_say ("fi-io: '%s'%s", spec, arm ? ", armed by a file" : "");
}

/*  true if this call must fail (errno is then set).  */
static bool
s_fail (int fd, int op, const char *what)
{
    if (!s_cfg.enabled || fd < 0 || fd >= S_MAXFD || !atomic_load (&s_is_data[fd])
        || !(s_cfg.ops & op))
        return false;
    if (!atomic_load (&s_armed)) {
        if (access (s_cfg.arm, F_OK) != 0)
            return false;
        atomic_store (&s_armed, true);
        s_say ("fi-io: armed");
    }
    long n = atomic_fetch_add (&s_matched, 1) + 1;
    if (n <= s_cfg.skip || (s_cfg.count && n > s_cfg.skip + s_cfg.count))
        return false;
    s_say ("fi-io: fail %s(fd %d) with %s (%ld)", what, fd, strerror (s_cfg.err), n - s_cfg.skip);
    errno = s_cfg.err;
    return true;
}

static int
s_write_op (int fd, off_t off)
{
    if (off < 0) { /* write/writev: LMDB positioned the file with lseek */
        off_t (*real_lseek) (int, off_t, int) = dlsym (RTLD_NEXT, "lseek");
        off = real_lseek ? real_lseek (fd, 0, SEEK_CUR) : S_META_LIMIT;
    }
    return off < S_META_LIMIT ? OP_META : OP_DATA;
}

#define REAL(name, ret, ...)                                                                       \
    static ret (*real) (__VA_ARGS__);                                                              \
    if (!real)                                                                                     \
        real = (ret (*) (__VA_ARGS__)) dlsym (RTLD_NEXT, name);

static void
s_opened (int fd, const char *path)
{
    size_t n = path ? strlen (path) : 0;
    if (fd >= 0 && fd < S_MAXFD && n >= 9 && strcmp (path + n - 9, "/data.mdb") == 0)
        atomic_store (&s_is_data[fd], true);
}

/*  Waits while the hold gate exists (the broker is held; the test is not
    polling).  */
static void
s_hold_wait (const char *what)
{
    s_say ("fi-io: holding %s", what);
    const struct timespec tick = {0, 2 * 1000 * 1000};
    while (access (s_hold_gate, F_OK) == 0)
        nanosleep (&tick, NULL);
    s_say ("fi-io: released %s", what);
}

/*  DIPX_FI_HOLD: waits before an open of a held path while the gate exists.  */
static void
s_hold_open (const char *path)
{
    size_t n = path ? strlen (path) : 0, sn = strlen (s_hold);
    if (!sn || n < sn || strcmp (path + n - sn, s_hold) != 0 || access (s_hold_gate, F_OK) != 0)
        return;
    char what[600];
    snprintf (what, sizeof what, "open of %s", path);
    s_hold_wait (what);
}

/*  DIPX_FI_HOLD=sync: waits before a sync of data.mdb while the gate exists.  */
static void
s_hold_sync (int fd)
{
    if (strcmp (s_hold, "sync") != 0 || fd < 0 || fd >= S_MAXFD || !atomic_load (&s_is_data[fd])
        || access (s_hold_gate, F_OK) != 0)
        return;
    s_hold_wait ("a sync of data.mdb");
}

static mode_t
s_mode (int flags, va_list ap)
{
    bool has_mode = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
    return has_mode ? (mode_t) va_arg (ap, int) : 0;
}

int
open (const char *path, int flags, ...)
{
    REAL ("open", int, const char *, int, ...);
    s_hold_open (path);
    va_list ap;
    va_start (ap, flags);
    mode_t mode = s_mode (flags, ap);
    va_end (ap);
    int fd = real (path, flags, mode);
    s_opened (fd, path);
    return fd;
}

int
open64 (const char *path, int flags, ...)
{
    REAL ("open64", int, const char *, int, ...);
    s_hold_open (path);
    va_list ap;
    va_start (ap, flags);
    mode_t mode = s_mode (flags, ap);
    va_end (ap);
    int fd = real (path, flags, mode);
    s_opened (fd, path);
    return fd;
}

int
openat (int dirfd, const char *path, int flags, ...)
{
    REAL ("openat", int, int, const char *, int, ...);
    s_hold_open (path);
    va_list ap;
    va_start (ap, flags);
    mode_t mode = s_mode (flags, ap);
    va_end (ap);
    int fd = real (dirfd, path, flags, mode);
    s_opened (fd, path);
    return fd;
}

int
openat64 (int dirfd, const char *path, int flags, ...)
{
    REAL ("openat64", int, int, const char *, int, ...);
    s_hold_open (path);
    va_list ap;
    va_start (ap, flags);
    mode_t mode = s_mode (flags, ap);
    va_end (ap);
    int fd = real (dirfd, path, flags, mode);
    s_opened (fd, path);
    return fd;
}

int
close (int fd)
{
    REAL ("close", int, int);
    if (fd >= 0 && fd < S_MAXFD)
        atomic_store (&s_is_data[fd], false);
    return real (fd);
}

ssize_t
pwrite (int fd, const void *buf, size_t n, off_t off)
{
    REAL ("pwrite", ssize_t, int, const void *, size_t, off_t);
    return s_fail (fd, s_write_op (fd, off), "pwrite") ? -1 : real (fd, buf, n, off);
}

ssize_t
pwrite64 (int fd, const void *buf, size_t n, off_t off)
{
    REAL ("pwrite64", ssize_t, int, const void *, size_t, off_t);
    return s_fail (fd, s_write_op (fd, off), "pwrite64") ? -1 : real (fd, buf, n, off);
}

ssize_t
pwritev (int fd, const struct iovec *iov, int n, off_t off)
{
    REAL ("pwritev", ssize_t, int, const struct iovec *, int, off_t);
    return s_fail (fd, s_write_op (fd, off), "pwritev") ? -1 : real (fd, iov, n, off);
}

ssize_t
pwritev64 (int fd, const struct iovec *iov, int n, off_t off)
{
    REAL ("pwritev64", ssize_t, int, const struct iovec *, int, off_t);
    return s_fail (fd, s_write_op (fd, off), "pwritev64") ? -1 : real (fd, iov, n, off);
}

ssize_t
write (int fd, const void *buf, size_t n)
{
    REAL ("write", ssize_t, int, const void *, size_t);
    if (fd >= 0 && fd < S_MAXFD && atomic_load (&s_is_data[fd])
        && s_fail (fd, s_write_op (fd, -1), "write"))
        return -1;
    return real (fd, buf, n);
}

ssize_t
writev (int fd, const struct iovec *iov, int n)
{
    REAL ("writev", ssize_t, int, const struct iovec *, int);
    if (fd >= 0 && fd < S_MAXFD && atomic_load (&s_is_data[fd])
        && s_fail (fd, s_write_op (fd, -1), "writev"))
        return -1;
    return real (fd, iov, n);
}

int
fsync (int fd)
{
    REAL ("fsync", int, int);
    s_hold_sync (fd);
    return s_fail (fd, OP_SYNC, "fsync") ? -1 : real (fd);
}

int
fdatasync (int fd)
{
    REAL ("fdatasync", int, int);
    s_hold_sync (fd);
    return s_fail (fd, OP_SYNC, "fdatasync") ? -1 : real (fd);
}

int
sync_file_range (int fd, off_t off, off_t n, unsigned int flags)
{
    REAL ("sync_file_range", int, int, off_t, off_t, unsigned int);
    return s_fail (fd, OP_SYNC, "sync_file_range") ? -1 : real (fd, off, n, flags);
}

int
zmq_msg_get (const zmq_msg_t *msg, int property)
{
    if (s_no_srcfd && property == ZMQ_SRCFD) {
        static atomic_bool said;
        if (!atomic_exchange (&said, true))
            s_say ("fi-io: hid a frame's ZMQ_SRCFD");
        errno = EINVAL;
        return -1;
    }
    REAL ("zmq_msg_get", int, const zmq_msg_t *, int);
    return real (msg, property);
}

/*  DIPX_FI_FULL_GATE, on the broker's ROUTER only. It sends (routing id,
    frame) pairs with zmq_send from its loop thread only, so one held first
    part is enough.  */
int
zmq_send (void *sock, const void *buf, size_t len, int flags)
{
    REAL ("zmq_send", int, void *, const void *, size_t, int);
    static unsigned char rid[256];
    static size_t rid_len;
    static bool held;
    int type = 0;
    size_t tl = sizeof type;
    if (!s_full_gate[0] || zmq_getsockopt (sock, ZMQ_TYPE, &type, &tl) != 0 || type != ZMQ_ROUTER)
        return real (sock, buf, len, flags); /* the ZAP handler mixes zmq_msg_send in */
    bool refusing = (!s_full_count || s_full_done < s_full_count) && access (s_full_gate, F_OK) == 0;
    if ((flags & ZMQ_SNDMORE) && !held && len <= sizeof rid && refusing) {
        memcpy (rid, buf, len);
        rid_len = len;
        held = true;
        return (int) len;
    }
    if (!held)
        return real (sock, buf, len, flags);
    held = false;
    if (len > 400 && refusing) {
        s_full_done++;
        s_say (s_full_errno == EAGAIN ? "fi-io: send queue full for a DELIVER"
                                      : "fi-io: connection gone for a DELIVER");
        errno = s_full_errno;
        return -1;
    }
    int rc = real (sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    return rc < 0 ? rc : real (sock, buf, len, flags);
}
