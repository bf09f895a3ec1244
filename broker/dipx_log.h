/*  dipx_log.h - the broker's one logging module: levels, printf-checked
    formats, one line per event to stderr (journald adds the time). Never pass
    keys or payload bytes to it.  */
#ifndef DIPX_LOG_H_INCLUDED
#define DIPX_LOG_H_INCLUDED

enum { DIPX_LOG_LEVEL_ERROR, DIPX_LOG_LEVEL_WARN, DIPX_LOG_LEVEL_INFO, DIPX_LOG_LEVEL_DEBUG };

/*  Sets the most verbose level printed (default INFO).  */
void dipx_log_set_level (int level);

/*  Parses "error", "warn", "info" or "debug"; returns the level or -1.  */
int dipx_log_level_parse (const char *name);

void dipx_log (int level, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

#define dipx_log_error(...) dipx_log (DIPX_LOG_LEVEL_ERROR, __VA_ARGS__)
#define dipx_log_warn(...) dipx_log (DIPX_LOG_LEVEL_WARN, __VA_ARGS__)
#define dipx_log_info(...) dipx_log (DIPX_LOG_LEVEL_INFO, __VA_ARGS__)
#define dipx_log_debug(...) dipx_log (DIPX_LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
