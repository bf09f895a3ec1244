/*  dipx_policy.h - which agency types may send which message types to which
    agency types, on which lawful bases. Deny by default: a flow is allowed
    only if a rule says so.

    Policy file format (text, one rule per line, '#' starts a comment):

        allow <sender-types> <message-type> <recipient-types> <bases>

    Types and bases are comma-separated lists without spaces; `any` in a type
    list means every agency type. Example:

        allow cjit,treatment bail_compliance court,police order
*/
#ifndef DIPX_POLICY_H_INCLUDED
#define DIPX_POLICY_H_INCLUDED

#include <stddef.h>

typedef struct dipx_policy_t dipx_policy_t;

/*  Parses policy text (at most DIPX_MAX_POLICY_BYTES, DIPX_MAX_POLICY_RULES
    rules). Returns 0 and *out (caller owns), or DIPX_E_SYNTAX with the line
    number in *line, DIPX_E_COUNT, DIPX_E_NOMEM.  */
int dipx_policy_parse (const char *text, size_t len, dipx_policy_t **out, int *line);

/*  Reads and parses a policy file; DIPX_E_IO if it cannot be read.  */
int dipx_policy_load (const char *path, dipx_policy_t **out, int *line);

void dipx_policy_destroy (dipx_policy_t **self_p);

/*  Number of rules.  */
size_t dipx_policy_size (const dipx_policy_t *self);

/*  Checks one flow. Returns 0 if allowed; DIPX_E_BASIS if the flow is
    allowed but not on this basis; DIPX_E_POLICY if no rule allows it.  */
int dipx_policy_check (const dipx_policy_t *self, int from_type, const char *msg_type,
                       int to_type, int basis);

#endif
