/*  dipx_log_cb.h - the client library's only way to log: a line handed to
    the application's callback, if it gave one. Private to client/.  */
#ifndef DIPX_LOG_CB_H_INCLUDED
#define DIPX_LOG_CB_H_INCLUDED

#include <stdarg.h>
#include <stdio.h>

#include "dipx_client.h"

static inline void dipx__log_cb (dipx_log_fn *log, void *arg, int level, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

/*  Formats one line (cut at 511 bytes) and passes it to log, if set.  */
static inline void
dipx__log_cb (dipx_log_fn *log, void *arg, int level, const char *fmt, ...)
{
    if (!log)
        return;
    char line[512];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (line, sizeof line, fmt, ap);
    va_end (ap);
    log (level, line, arg);
}

#endif
