/*  fuzz_config.c - libFuzzer target for dipx_config_parse (libinih under our
    line reader and key table).

    Beyond "no crash, no overread": every failure is DIPX_E_CONFIG with a
    "line N: " message (or the size/NUL message), and a config that parses
    prints (dipx_config_print) to text that parses back to the same struct,
    when the printed lines fit inih's line buffer (a `key=value` line of 198
    characters prints as `key = value`, two longer).
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dipx_config.h"
#include "dipx_error.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
s_lines_fit (const char *text, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++)
        if (i == len || text[i] == '\n') {
            if (i - start > 198)
                return 0;
            start = i + 1;
        }
    return 1;
}

/*  Zeroes the bytes after each string's NUL: a key set twice keeps the tail
    of its longer first value there, which is not part of the config.  */
static void
s_norm (dipx_config_t *cfg)
{
    char *strs[] = {cfg->endpoint, cfg->data_dir, cfg->identity, cfg->registry, cfg->policy};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        size_t n = strnlen (strs[i], DIPX_CONFIG_PATH_MAX);
        memset (strs[i] + n, 0, DIPX_CONFIG_PATH_MAX - n);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    dipx_config_t cfg;
    dipx_config_defaults (&cfg);
    char err[256];
    int rc = dipx_config_parse (&cfg, (const char *) data, size, err, sizeof err);
    if (rc != 0) {
        if (rc != DIPX_E_CONFIG)
            abort ();
        if (strncmp (err, "line ", 5) != 0 && strncmp (err, "file larger", 11) != 0)
            abort ();
        return 0;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream (&text, &len);
    if (!f)
        return 0;
    dipx_config_print (&cfg, f);
    fclose (f);
    if (text && s_lines_fit (text, len)) {
        dipx_config_t back;
        dipx_config_defaults (&back);
        if (dipx_config_parse (&back, text, len, err, sizeof err) != 0)
            abort ();
        s_norm (&back);
        s_norm (&cfg);
        if (memcmp (&back, &cfg, sizeof cfg) != 0)
            abort ();
    }
    free (text);
    dipx_config_t reloaded;
    dipx_config_defaults (&reloaded);
    dipx_config_reload_into (&reloaded, &cfg);
    return 0;
}
