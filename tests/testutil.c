/*  testutil.c - see testutil.h.  */
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

int
dipx_test_mkdtemp (char *dir, size_t size, const char *prefix)
{
    const char *base = getenv ("TMPDIR");
    int n = snprintf (dir, size, "%s/%s-XXXXXX", base && *base ? base : "/tmp", prefix);
    if (n < 0 || (size_t) n >= size)
        return -1;
    return mkdtemp (dir) ? 0 : -1;
}

static int
s_remove (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove (path);
}

void
dipx_test_rmtree (const char *dir)
{
    nftw (dir, s_remove, 16, FTW_DEPTH | FTW_PHYS);
}
