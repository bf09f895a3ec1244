/*  replay_main.c - runs a libFuzzer target over every file in its corpus
    directories (or named files), so that the normal test suite, and its
    ASan+UBSan build, replays every checked-in input without libFuzzer.
    Exits non-zero if a path cannot be read or no input was found.
*/
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int s_run_file (const char *path)
{
    FILE *f = fopen (path, "rb");
    if (!f) {
        fprintf (stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc (cap);
    size_t n;
    while (buf && (n = fread (buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *grown = realloc (buf, cap * 2);
            if (!grown) {
                free (buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    fclose (f);
    if (!buf)
        return -1;
    /* Hand the target an exact-size copy so ASan sees any overread.  */
    uint8_t *exact = malloc (len ? len : 1);
    if (!exact) {
        free (buf);
        return -1;
    }
    memcpy (exact, buf, len);
    free (buf);
    LLVMFuzzerTestOneInput (exact, len);
    free (exact);
    return 0;
}

int main (int argc, char **argv)
{
    int files = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat (argv[i], &st) != 0) {
            fprintf (stderr, "replay: cannot stat %s\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR (st.st_mode)) {
            if (s_run_file (argv[i]) != 0)
                return 1;
            files++;
            continue;
        }
        DIR *d = opendir (argv[i]);
        if (!d)
            return 1;
        struct dirent *e;
        while ((e = readdir (d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf (path, sizeof path, "%s/%s", argv[i], e->d_name);
            if (s_run_file (path) != 0) {
                closedir (d);
                return 1;
            }
            files++;
        }
        closedir (d);
    }
    printf ("replayed %d inputs\n", files);
    return files > 0 ? 0 : 1;
}
