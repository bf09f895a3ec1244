/*  dipx_cli_args.h - the `dipx` tool's argument rules, shared by every
    subcommand: "--name VALUE" or "--name=VALUE", options and positional
    words in any order, "--" ends the options, "-h"/"--help" asks for help.  */
#ifndef DIPX_CLI_ARGS_H_INCLUDED
#define DIPX_CLI_ARGS_H_INCLUDED

#include <stdbool.h>

/*  One option a subcommand accepts: a value (--name VALUE) or, when flag is
    set, a switch.  */
typedef struct {
    const char *name;   /* without the leading "--" */
    const char **value; /* where the value goes, for valued options */
    bool *flag;         /* set to true, for switches */
} dipx_cli_opt_t;

/*  Splits argv[1..argc) into options from opts (ended by a NULL name) and at
    most max_words positional words. Returns the number of words, or -1 after
    printing what is wrong, prefixed "dipx <cmd>: ".  */
int dipx_cli_parse_args (const char *cmd, int argc, char **argv, const dipx_cli_opt_t *opts,
                         const char **words, int max_words);

/*  True if -h or --help comes before any "--".  */
bool dipx_cli_wants_help (int argc, char **argv);

#endif
