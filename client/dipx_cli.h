/*  dipx_cli.h - subcommands of the `dipx` command-line tool. Each takes the
    arguments after its name (argv[0] is the subcommand) and returns the
    process exit status: 0 success, 1 refused/failed, 2 usage error, 3 any
    other failure of a messaging subcommand (timeout, key refused, I/O).  */
#ifndef DIPX_CLI_H_INCLUDED
#define DIPX_CLI_H_INCLUDED

int dipx_cli_keygen (int argc, char **argv);   /* client/dipx_cli_keys.c */
int dipx_cli_card (int argc, char **argv);     /* client/dipx_cli_keys.c */
int dipx_cli_registry (int argc, char **argv); /* client/dipx_cli_keys.c */
int dipx_cli_send (int argc, char **argv);     /* client/dipx_cli.c */
int dipx_cli_recv (int argc, char **argv);     /* client/dipx_cli.c */
int dipx_cli_track (int argc, char **argv);    /* client/dipx_cli.c */

#endif
