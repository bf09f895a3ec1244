/*  dipx_cli_args.c - see dipx_cli_args.h.  */
#include "dipx_cli_args.h"

#include <stdio.h>
#include <string.h>

int
dipx_cli_parse_args (const char *cmd, int argc, char **argv, const dipx_cli_opt_t *opts,
                     const char **words, int max_words)
{
    int count = 0;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (options_done || strncmp (arg, "--", 2) != 0 || arg[2] == '\0') {
            if (!options_done && strcmp (arg, "--") == 0) {
                options_done = true;
                continue;
            }
            if (count == max_words) {
                fprintf (stderr, "dipx %s: too many arguments\n", cmd);
                return -1;
            }
            words[count++] = arg;
            continue;
        }
        const char *name = arg + 2;
        const char *eq = strchr (name, '=');
        size_t name_len = eq ? (size_t) (eq - name) : strlen (name);
        const dipx_cli_opt_t *opt = opts;
        while (opt->name && (strlen (opt->name) != name_len || strncmp (opt->name, name, name_len)))
            opt++;
        if (!opt->name) {
            fprintf (stderr, "dipx %s: unknown option %s\n", cmd, arg);
            return -1;
        }
        if (opt->flag) {
            if (eq) {
                fprintf (stderr, "dipx %s: option --%s takes no value\n", cmd, opt->name);
                return -1;
            }
            *opt->flag = true;
        }
        else if (eq)
            *opt->value = eq + 1;
        else if (i + 1 < argc)
            *opt->value = argv[++i];
        else {
            fprintf (stderr, "dipx %s: option --%s needs a value\n", cmd, opt->name);
            return -1;
        }
    }
    return count;
}

bool
dipx_cli_wants_help (int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--") == 0)
            return false;
        if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0)
            return true;
    }
    return false;
}
