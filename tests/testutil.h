/*  testutil.h - what every test needs around the filesystem: a private
    temporary directory under $TMPDIR (or /tmp), and its removal.  */
#ifndef DIPX_TESTUTIL_H_INCLUDED
#define DIPX_TESTUTIL_H_INCLUDED

#include <stddef.h>

/*  Creates "$TMPDIR/<prefix>-XXXXXX" into dir (size bytes). 0 or -1.  */
int dipx_test_mkdtemp (char *dir, size_t size, const char *prefix);

/*  Removes dir and everything under it (no symlinks are followed).  */
void dipx_test_rmtree (const char *dir);

#endif
