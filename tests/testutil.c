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

int
dipx_test_tmp_new (void **state, const char *prefix)
{
    dipx_test_tmp_t *tmp = calloc (1, sizeof *tmp);
    if (!tmp)
        return -1;
    if (dipx_test_mkdtemp (tmp->dir, sizeof tmp->dir, prefix) != 0) {
        free (tmp);
        return -1;
    }
    *state = tmp;
    return 0;
}

int
dipx_test_tmp_free (void **state)
{
    dipx_test_tmp_t *tmp = *state;
    dipx_test_rmtree (tmp->dir);
    free (tmp);
    return 0;
}

const char *
dipx_test_path (dipx_test_tmp_t *tmp, const char *name)
{
    snprintf (tmp->path, sizeof tmp->path, "%s/%s", tmp->dir, name);
    return tmp->path;
}
