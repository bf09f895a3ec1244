/*  dipx_policy.c - policy rules: parsed strictly (an unreadable rule is an
    error, never skipped), held as bitmasks so a check is a scan of the rules
    for the message type with three mask tests. The DIP table has ~30 rules;
    DIPX_MAX_POLICY_RULES bounds the scan.  */
#include "dipx_policy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dipx_error.h"
#include "dipx_limits.h"
#include "dipx_mp.h"
#include "dipx_types.h"

typedef struct {
    char type[DIPX_MAX_TYPE + 1]; /* message type */
    uint32_t from;                /* bitmask of sender agency types */
    uint32_t to;                  /* bitmask of recipient agency types */
    uint32_t bases;               /* bitmask of dipx_basis_t */
} s_rule_t;

struct dipx_policy_t {
    s_rule_t *rules; /* in file order */
    size_t count;    /* rules in use */
};

/*  Parses "a,b,c" of names with parse() into a mask; `any` if allow_any.  */
static int
s_list (const char *s, size_t len, int (*parse) (const char *), bool allow_any, uint32_t *mask)
{
    *mask = 0;
    if (allow_any && len == 3 && memcmp (s, "any", 3) == 0) {
        /* every agency type an agency can have: not the broker's own */
        *mask = (1u << DIPX_AGENCY_BROKER) - 1;
        return 0;
    }
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && s[j] != ',')
            j++;
        char name[32];
        if (j == i || j - i >= sizeof name)
            return DIPX_E_SYNTAX;
        memcpy (name, s + i, j - i);
        name[j - i] = 0;
        int v = parse (name);
        if (v < 0 || (*mask & (1u << v)))
            return DIPX_E_SYNTAX;
        *mask |= 1u << v;
        i = j + 1;
    }
    return 0;
}

static int
s_agency_parse (const char *name)
{
    int v = dipx_agency_type_parse (name);
    return v == DIPX_AGENCY_BROKER ? -1 : v;
}

/*  Splits a line into at most 5 space-separated words.  */
static int
s_words (const char *line, size_t len, const char *w[5], size_t wl[5])
{
    int n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == len)
            break;
        if (n == 5)
            return -1;
        w[n] = line + i;
        while (i < len && line[i] != ' ' && line[i] != '\t')
            i++;
        wl[n] = (size_t) (line + i - w[n]);
        n++;
    }
    return n;
}

/*  True if a raw line holds a control byte other than tab (or one CR at its
    end, for CRLF files). Checked before comments are cut off: a CR or an
    escape sequence in a comment could make `cat policy.conf` show an operator
    something other than the rule that is in force.  */
static bool
s_has_control (const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return true;
    }
    return false;
}

static int
s_parse_line (const char *line, size_t len, s_rule_t *rule)
{
    const char *w[5];
    size_t wl[5];
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) line[i] < 0x20 && line[i] != '\t')
            return DIPX_E_SYNTAX;
    if (s_words (line, len, w, wl) != 5 || wl[0] != 5 || memcmp (w[0], "allow", 5) != 0)
        return DIPX_E_SYNTAX;
    if (wl[2] > DIPX_MAX_TYPE || !dipx_text_is_ident (w[2], wl[2]))
        return DIPX_E_SYNTAX;
    memcpy (rule->type, w[2], wl[2]);
    rule->type[wl[2]] = 0;
    if (s_list (w[1], wl[1], s_agency_parse, true, &rule->from)
        || s_list (w[3], wl[3], s_agency_parse, true, &rule->to)
        || s_list (w[4], wl[4], dipx_basis_parse, false, &rule->bases))
        return DIPX_E_SYNTAX;
    return 0;
}

int
dipx_policy_parse (const char *text, size_t len, dipx_policy_t **out, int *line)
{
    int rc = 0, lineno = 0;
    *out = NULL;
    if (line)
        *line = 0;
    if (len > DIPX_MAX_POLICY_BYTES)
        return DIPX_E_COUNT;
    dipx_policy_t *self = calloc (1, sizeof *self);
    if (!self)
        return DIPX_E_NOMEM;
    size_t pos = 0, cap = 0;
    while (pos < len) {
        const char *nl = memchr (text + pos, '\n', len - pos);
        size_t end = nl ? (size_t) (nl - text) : len;
        size_t n = end - pos;
        const char *l = text + pos;
        lineno++;
        pos = end + 1;
        if (n > DIPX_MAX_LINE || s_has_control (l, n)) {
            rc = DIPX_E_SYNTAX;
            goto done;
        }
        const char *hash = memchr (l, '#', n);
        if (hash)
            n = (size_t) (hash - l);
        while (n > 0 && (l[n - 1] == ' ' || l[n - 1] == '\t' || l[n - 1] == '\r'))
            n--;
        size_t lead = 0;
        while (lead < n && (l[lead] == ' ' || l[lead] == '\t'))
            lead++;
        if (lead == n)
            continue;
        if (self->count == DIPX_MAX_POLICY_RULES) {
            rc = DIPX_E_COUNT;
            goto done;
        }
        if (self->count == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            s_rule_t *grown = realloc (self->rules, ncap * sizeof *grown);
            if (!grown) {
                rc = DIPX_E_NOMEM;
                goto done;
            }
            self->rules = grown;
            cap = ncap;
        }
        if ((rc = s_parse_line (l + lead, n - lead, &self->rules[self->count])))
            goto done;
        self->count++;
    }
done:
    if (line)
        *line = rc ? lineno : 0;
    if (rc)
        dipx_policy_destroy (&self);
    *out = self;
    return rc;
}

int
dipx_policy_load (const char *path, dipx_policy_t **out, int *line)
{
    *out = NULL;
    if (line)
        *line = 0;
    /* As the config: never block on a FIFO or a device.  */
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return DIPX_E_IO;
    struct stat st;
    if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)) {
        close (fd);
        return DIPX_E_IO;
    }
    char *buf = malloc (DIPX_MAX_POLICY_BYTES + 1);
    if (!buf) {
        close (fd);
        return DIPX_E_NOMEM;
    }
    size_t len = 0;
    ssize_t n;
    while (len <= DIPX_MAX_POLICY_BYTES
           && ((n = read (fd, buf + len, DIPX_MAX_POLICY_BYTES + 1 - len)) > 0
               || (n < 0 && errno == EINTR)))
        len += n > 0 ? (size_t) n : 0;
    int err = n < 0 ? errno : 0;
    close (fd);
    int rc = err ? DIPX_E_IO : dipx_policy_parse (buf, len, out, line);
    free (buf);
    return rc;
}

void
dipx_policy_destroy (dipx_policy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->rules);
    free (*self_p);
    *self_p = NULL;
}

size_t
dipx_policy_size (const dipx_policy_t *self)
{
    return self->count;
}

int
dipx_policy_check (const dipx_policy_t *self, int from_type, const char *msg_type, int to_type,
                   int basis)
{
    int rc = DIPX_E_POLICY;
    if (from_type < 0 || from_type >= 32 || to_type < 0 || to_type >= 32)
        return rc;
    for (size_t i = 0; i < self->count; i++) {
        const s_rule_t *r = &self->rules[i];
        if (!(r->from & (1u << from_type)) || !(r->to & (1u << to_type))
            || strcmp (r->type, msg_type) != 0)
            continue;
        if (basis >= 0 && basis < 32 && (r->bases & (1u << basis)))
            return 0;
        rc = DIPX_E_BASIS;
    }
    return rc;
}
