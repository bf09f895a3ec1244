/*  dipx_config.h - the broker's configuration: one table of every key with
    its type, bounds, default and whether SIGHUP reloads it (Redis's
    static_configs[] idea). The file is INI, section [dipxd], parsed by
    libinih; broker/dipxd.conf.example documents every key.  */
#ifndef DIPX_CONFIG_H_INCLUDED
#define DIPX_CONFIG_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DIPX_CONFIG_PATH_MAX 1024

typedef struct {
    char endpoint[DIPX_CONFIG_PATH_MAX];  /* where to listen (tcp:// or ipc://) */
    char data_dir[DIPX_CONFIG_PATH_MAX];  /* LMDB environment directory */
    char identity[DIPX_CONFIG_PATH_MAX];  /* broker's secret file */
    char registry[DIPX_CONFIG_PATH_MAX];  /* registry file (reloadable) */
    char policy[DIPX_CONFIG_PATH_MAX];    /* policy file (reloadable) */
    uint64_t map_size_mb;                 /* initial LMDB map size */
    uint64_t map_max_mb;                  /* the map grows up to this */
    uint64_t max_frame;                   /* ZMQ_MAXMSGSIZE and frame limit */
    uint64_t window;                      /* most deliveries in flight per session */
    uint64_t verify_threads;              /* extra signature-verifying threads */
    uint64_t io_threads;                  /* ZeroMQ I/O threads */
    uint64_t batch;                       /* frames taken into one transaction */
    uint64_t queue_max_messages;          /* per-recipient queue cap, messages */
    uint64_t queue_max_mb;                /* per-recipient queue cap, megabytes */
    uint64_t ack_timeout_ms;              /* redeliver when unacknowledged this long */
    uint64_t max_deliveries;              /* dead-letter after this many deliveries */
    uint64_t unacked_max_mb;              /* DELIVER bytes unacknowledged per session */
    uint64_t auth_audit_per_sec;          /* auth refusals audited per second, at most */
    uint64_t max_sessions;                /* connected agencies tracked at once */
    uint64_t handshake_timeout_ms;        /* ZMQ_HANDSHAKE_IVL */
    int log_level;                        /* DIPX_LOG_LEVEL_* */
} dipx_config_t;

/*  Fills every key with its default.  */
void dipx_config_defaults (dipx_config_t *cfg);

/*  Parses INI text over the current values. Returns 0, or DIPX_E_CONFIG with
    a message (line number of the first error, key, why) in err. A line longer
    than libinih's buffer allows (198 characters in Debian's build) is an
    error, never cut.  */
int dipx_config_parse (dipx_config_t *cfg, const char *text, size_t len, char *err,
                       size_t err_size);

/*  Reads (at most DIPX_MAX_CONFIG_BYTES) and parses a file. DIPX_E_IO or
    DIPX_E_CONFIG; checks required keys are set.  */
int dipx_config_load (dipx_config_t *cfg, const char *path, char *err, size_t err_size);

/*  Copies the reloadable keys of src into dst (SIGHUP).  */
void dipx_config_reload_into (dipx_config_t *dst, const dipx_config_t *src);

/*  Writes every key with its value, type, bounds and reloadability, as a
    commented INI file (`dipxd --print-config`).  */
void dipx_config_print (const dipx_config_t *cfg, FILE *out);

#endif
