/*  harness.h - integration test harness: a real dipxd on loopback in a
    private temporary directory, with generated identities, a registry and
    the DIP policy. Hermetic (its own dir, an ephemeral port) so tests run in
    parallel; synchronised on events (the broker's --ready-fd line, socket
    events), never on sleeps.  */
#ifndef DIPX_HARNESS_H_INCLUDED
#define DIPX_HARNESS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dipx.h"
#include "dipx_frame.h"
#include "dipx_identity.h"

/*  HARNESS_ASAN: built with AddressSanitizer, as the broker under test then
    is. Its quarantine keeps freed memory resident (up to 256 MiB), so
    memory bounds need room under it.  */
#if defined(__SANITIZE_ADDRESS__)
#define HARNESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HARNESS_ASAN 1
#endif
#endif

#define H_MAX_AGENCIES 16
#define H_MAX_ENV 8

typedef struct {
    char id[DIPX_MAX_AGENCY_ID + 1]; /* agency id */
    int type;                        /* dipx_agency_type_t */
    int status;                      /* dipx_status_t in the registry; -1 = not in it */
    char secret[512];                /* path of its secret file */
    dipx_identity_t *identity;       /* its keys, for raw tests */
    int64_t valid_from, valid_until; /* its card's validity, seconds; 0 = the default
                                        (2023-11-14 to 2096-10-02) */
} h_agency_t;

typedef struct {
    char dir[256];                   /* private temp dir */
    char config[512];                /* dipxd.conf */
    char data[512];                  /* LMDB dir */
    char registry[512];              /* registry (also the agencies' peers file) */
    char peers[512];                 /* the clients' peers file instead, if set */
    char extra[1024];                /* extra config lines */
    char endpoint[256];              /* bound endpoint, after start */
    char broker_key[DIPX_Z85_KEY_LEN + 1]; /* broker CURVE key (Z85) */
    dipx_identity_t *broker;         /* broker identity */
    h_agency_t agencies[H_MAX_AGENCIES];
    int nagencies;
    pid_t pid;                       /* running dipxd, or 0 */
    int port_hold;                   /* socket keeping the broker's port, or -1 */
    int port_held;                   /* that port */
    int last_status;                 /* wait status of the last dipxd reaped */
    long fsize_limit;                /* if > 0: RLIMIT_FSIZE soft limit for dipxd */
    char log[512];                   /* broker's stderr */
    const char *exe;                 /* broker executable: a path relative to the build
                                        dir or absolute; NULL = broker/dipxd */
    const char *env[H_MAX_ENV + 1];  /* extra "NAME=value" for the broker's environment
                                        (NULL-terminated; replaces a variable of the same
                                        name); strings kept by the caller */
    char shim_env[2][1280];          /* harness_shim's entries */
} harness_t;

/*  Creates the temp dir and broker identity. extra: config lines appended
    to [dipxd] (or NULL). Returns 0 or -1. Also starts the test case's
    watchdog: still running 240 s later (ctest stops it at 300), the program
    prints its own and its broker's stacks and aborts; harness_fini stops
    the watchdog. DIPX_TEST_WATCHDOG_S sets the seconds (ctest sets it a
    minute under each test's timeout), 0 = none (for long runs: scaled-up
    DIPX_TRANSPORT_INPUTS, DIPX_FLOOD_N; the crash20 target sets it).  */
int harness_init (harness_t *h, const char *extra);

/*  Adds an agency with a fresh identity; written to the registry by
    harness_write_registry (harness_start calls it).  */
h_agency_t *harness_add (harness_t *h, const char *id, int type, int status);

int harness_write_registry (harness_t *h);

/*  Writes every agency added, as active, to a peers file of its own, which
    clients use from now on instead of the registry (for a registry too large
    or too broken for a client to load). 0 or -1.  */
int harness_write_peers (harness_t *h);

/*  Starts dipxd and waits (up to 20 s) for its READY line. A restart binds
    the port of the first start, so clients reconnect. 0 or -1.  */
int harness_start (harness_t *h);

/*  Sends sig and reaps the broker. Returns its wait status. A broker still
    running a minute later has its threads' stacks printed (gdb) and is
    killed, and the test program aborts: a hang on shutdown fails the test
    with its cause instead of stalling it.  */
int harness_stop (harness_t *h, int sig);

/*  Waits up to timeout_ms for the broker to exit by itself (an event: its
    pidfd, not a polling sleep). Returns 1 and reaps it (status in
    last_status, pid 0) if it exited, 0 if it is still running.  */
int harness_wait_exit (harness_t *h, int timeout_ms);

/*  Loads the fault-injection shim (libdipx_fi_io.so, fi_io.c) into the
    broker harness_start starts: sets env[0] (LD_PRELOAD) and env[1]
    (ASAN_OPTIONS, telling clang's static ASan runtime not to object to a
    library loaded ahead of it). The shim's own variables go in env[2...].  */
void harness_shim (harness_t *h);

/*  Stops the broker and removes the directory.  */
void harness_fini (harness_t *h);

/*  A libdipx client for agency id with the given receive window.  */
int harness_client (harness_t *h, const char *id, uint32_t window, dipx_client_t **out);

/*  A raw CURVE DEALER socket for agency id (its keys), connected. For
    malformed-frame tests. ctx is a zmq context.  */
void *harness_raw (harness_t *h, void *ctx, const char *id);

/*  harness_raw with a receive high-water mark and kernel receive buffer
    (set before connecting; 0 = libzmq's default): a connection that reads
    slowly, or not at all.  */
void *harness_raw_buffered (harness_t *h, void *ctx, const char *id, int rcvhwm, int rcvbuf);

/*  harness_raw with its send queue bounded at sndhwm frames, for a test that
    writes faster than the broker reads and must not queue it all itself.  */
void *harness_raw_sender (harness_t *h, void *ctx, const char *id, int sndhwm);

/*  Says HELLO with window on a raw socket and decodes the broker's answer
    into answer (a WELCOME or an ERROR). 0, or -1 if nothing decodable came
    within timeout_ms.  */
int harness_raw_hello (void *sock, uint32_t window, dipx_frame_t *answer, int timeout_ms);

/*  Receives one frame from a raw socket within timeout_ms into buf.
    Returns its length, or -1.  */
int harness_raw_recv (void *sock, uint8_t *buf, size_t cap, int timeout_ms);

/*  Runs the broker's audit dump and returns how many lines contain every
    one of the NULL-terminated needles.  */
int harness_audit_count (harness_t *h, ...);

/*  The same, also giving the "at" (ms, broker's clock) of the first max of
    those lines, in the log's order.  */
int harness_audit_times (harness_t *h, uint64_t *at, int max, ...);

h_agency_t *harness_agency (harness_t *h, const char *id);

/*  The message most tests send: a drug test result on its statutory basis
    (PACE s.63B) to agency `to`, about subject (DIPX_SUBJECT_BYTES, kept by
    the caller).  */
dipx_send_t harness_dt1 (const char *to, const uint8_t *subject);

/*  A client for agency id that the broker has welcomed within timeout_ms,
    or NULL (refused, timed out, or not created).  */
dipx_client_t *harness_ready_client (harness_t *h, const char *id, uint32_t window,
                                     int timeout_ms);

/*  The broker's TCP port (from its endpoint), or -1.  */
int harness_port (const harness_t *h);

/*  A field of the broker's /proc/<pid>/status ("VmRSS", "VmHWM", ...), in
    KiB, or -1.  */
long harness_broker_kb (const harness_t *h, const char *field);

/*  Writes a 64-byte ZMTP 3.0 greeting offering mechanism into g (for tests
    that speak raw TCP to the broker). Returns 64.  */
size_t harness_zmtp_greeting (uint8_t g[64], const char *mechanism);

/*  The size of the broker's log now: an offset for the two below.  */
long harness_log_size (const harness_t *h);

/*  How many lines of the broker's log, from offset from, contain needle.  */
int harness_log_count (const harness_t *h, long from, const char *needle);

/*  Waits up to timeout_ms for a line containing needle in the broker's log
    from offset from: woken by inotify when the log is written, not by a
    polling sleep. 0 once it is there, -1 on timeout.  */
int harness_log_wait (const harness_t *h, long from, const char *needle, int timeout_ms);

/*  The usual pair: adds police.test and cjit.test to the agencies already
    added, starts the broker, and returns a ready send-only police client
    and a cjit client with window 16. 0 or -1.  */
int harness_start_pair (harness_t *h, dipx_client_t **police, dipx_client_t **cjit);

/*  One round trip: from sends a random 64-byte drug_test_result to to_id,
    whose client to receives it (same id, same body) and acknowledges it.
    0, or -1 with the failed step on stderr.  */
int harness_round_trip (dipx_client_t *from, dipx_client_t *to, const char *to_id,
                        int timeout_ms);

#endif
