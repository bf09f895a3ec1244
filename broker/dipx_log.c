/*  dipx_log.c - leveled logging to stderr, one write per line so lines from
    the verifier threads never interleave mid-line.  */
#include "dipx_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int s_level = DIPX_LOG_LEVEL_INFO;
static const char *const s_names[] = {"error", "warn", "info", "debug"};

void
dipx_log_set_level (int level)
{
    s_level = level;
}

int
dipx_log_level_parse (const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp (name, s_names[i]) == 0)
            return i;
    return -1;
}

void
dipx_log (int level, const char *fmt, ...)
{
    if (level > s_level)
        return;
    char line[1024];
    int n = snprintf (line, sizeof line, "dipxd %s: ", s_names[level]);
    va_list ap;
    va_start (ap, fmt);
    int m = vsnprintf (line + n, sizeof line - (size_t) n - 1, fmt, ap);
    va_end (ap);
    size_t len = (size_t) n + (m < 0 ? 0 : (size_t) m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t rc = write (STDERR_FILENO, line, len);
    (void) rc;
}
