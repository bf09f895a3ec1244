/*  testutil.h - what every test needs around the filesystem: a private
    temporary directory under $TMPDIR (or /tmp), and its removal.  */
#ifndef DIPX_TESTUTIL_H_INCLUDED
#define DIPX_TESTUTIL_H_INCLUDED

#include <stddef.h>

/*  Creates "$TMPDIR/<prefix>-XXXXXX" into dir (size bytes). 0 or -1.  */
int dipx_test_mkdtemp (char *dir, size_t size, const char *prefix);

/*  Removes dir and everything under it (no symlinks are followed).  */
void dipx_test_rmtree (const char *dir);

/*  A test's temporary directory, as cmocka state.  */
typedef struct {
    char dir[256];  /* this test's temporary directory */
    char path[512]; /* scratch path inside it */
} dipx_test_tmp_t;

/*  Creates one ("<prefix>-XXXXXX") into *state: the body of a cmocka setup.
    0 or -1.  */
int dipx_test_tmp_new (void **state, const char *prefix);

/*  Removes it and frees *state: a cmocka teardown.  */
int dipx_test_tmp_free (void **state);

/*  A path in the directory (overwrites the previous one).  */
const char *dipx_test_path (dipx_test_tmp_t *tmp, const char *name);

#endif
