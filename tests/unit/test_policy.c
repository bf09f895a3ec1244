/*  test_policy.c - unit tests of broker/dipx_policy: the shipped policy file
    against the flow table of DOMAIN.md, the `any` type list, and the parser's
    refusals with their line numbers.

    The flow table is written out here a second time, from DOMAIN.md, and not
    read from broker/policy.conf: the test is that the two agree. Every flow
    in it must be allowed on its basis and refused (DIPX_E_BASIS) on every
    other; every (sender type, message type, recipient type) triple not in it
    must be refused (DIPX_E_POLICY) on every basis.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "dipx_error.h"
#include "dipx_limits.h"
#include "dipx_policy.h"
#include "dipx_types.h"

#ifndef TEST_SOURCE_DIR
#define TEST_SOURCE_DIR "."
#endif

enum {
    POL = DIPX_AGENCY_POLICE,
    CJI = DIPX_AGENCY_CJIT,
    COU = DIPX_AGENCY_COURT,
    PRO = DIPX_AGENCY_PROBATION,
    TRE = DIPX_AGENCY_TREATMENT,
    PRI = DIPX_AGENCY_PRISON,
    MON = DIPX_AGENCY_MONITORING,
    END = -1
};

/*  One row of DOMAIN.md's flow table (rows with two directions are split).  */
typedef struct {
    const char *type; /* message type */
    int from[8];      /* sender types, END-terminated */
    int to[8];        /* recipient types, END-terminated */
    int basis;        /* the one basis the flow is allowed on */
} s_flow_t;

static const s_flow_t s_flows[] = {
    {"drug_test_result", {POL, END}, {CJI, END}, DIPX_BASIS_STATUTE},
    {"drug_test_result_prosecution", {POL, END}, {COU, END}, DIPX_BASIS_STATUTE},
    {"required_assessment", {POL, END}, {CJI, END}, DIPX_BASIS_STATUTE},
    {"assessment_non_attendance", {CJI, END}, {POL, END}, DIPX_BASIS_STATUTE},
    {"bail_assessment_status", {CJI, END}, {COU, END}, DIPX_BASIS_STATUTE},
    {"bail_compliance", {CJI, TRE, END}, {COU, POL, END}, DIPX_BASIS_ORDER},
    {"presentence_treatment_input", {CJI, TRE, END}, {PRO, END}, DIPX_BASIS_CONSENT},
    {"drr_order", {COU, END}, {PRO, TRE, END}, DIPX_BASIS_ORDER},
    {"drr_test_result", {TRE, END}, {PRO, END}, DIPX_BASIS_STATUTE},
    {"drr_progress_report", {PRO, END}, {COU, END}, DIPX_BASIS_STATUTE},
    {"treatment_compliance", {TRE, END}, {PRO, END}, DIPX_BASIS_ORDER},
    {"dir_transfer", {CJI, END}, {PRI, CJI, END}, DIPX_BASIS_CONSENT},
    {"dir_transfer", {PRI, END}, {CJI, END}, DIPX_BASIS_CONSENT},
    {"release_plan", {PRI, END}, {CJI, TRE, END}, DIPX_BASIS_CONSENT},
    {"monitoring_return", {CJI, PRI, END}, {MON, END}, DIPX_BASIS_CONSENT},
    {"safeguarding_disclosure", {POL, CJI, COU, PRO, TRE, PRI, MON, END}, {POL, END},
     DIPX_BASIS_PUBLIC_INTEREST},
};
#define S_NFLOWS (sizeof s_flows / sizeof s_flows[0])

/*  Message types that must never pass, whatever the agencies.  */
static const char *const s_unknown_types[] = {
    "consent_withdrawal_notice", /* the broker's own, never sent by an agency */
    "drug_test", "", "DRUG_TEST_RESULT", "drug_test_result ", "x",
};

static bool
s_in (const int *list, int v)
{
    for (; *list != END; list++)
        if (*list == v)
            return true;
    return false;
}

/*  The basis the table allows for this triple, or -1 if it does not.  */
static int
s_table_basis (int from, const char *type, int to)
{
    for (size_t i = 0; i < S_NFLOWS; i++)
        if (strcmp (s_flows[i].type, type) == 0 && s_in (s_flows[i].from, from)
            && s_in (s_flows[i].to, to))
            return s_flows[i].basis;
    return -1;
}

static char *
s_read_file (const char *path, size_t *len)
{
    FILE *f = fopen (path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc (DIPX_MAX_POLICY_BYTES + 1);
    size_t n = buf ? fread (buf, 1, DIPX_MAX_POLICY_BYTES + 1, f) : 0;
    fclose (f);
    *len = n;
    return buf;
}

static void
s_shipped_path (char *path, size_t size)
{
    const char *src = getenv ("DIPX_SOURCE_DIR");
    snprintf (path, size, "%s/broker/policy.conf", src && *src ? src : TEST_SOURCE_DIR);
}

static dipx_policy_t *
s_parse_ok (const char *text)
{
    dipx_policy_t *p = NULL;
    int line = -1;
    int rc = dipx_policy_parse (text, strlen (text), &p, &line);
    if (rc)
        print_error ("policy did not parse: %s at line %d:\n%s\n", dipx_strerror (rc), line, text);
    assert_int_equal (rc, 0);
    assert_int_equal (line, 0);
    assert_non_null (p);
    return p;
}

static void
s_parse_fails (const char *text, size_t len, int want_rc, int want_line)
{
    dipx_policy_t *p = (dipx_policy_t *) 1;
    int line = -1;
    int rc = dipx_policy_parse (text, len, &p, &line);
    if (rc != want_rc || line != want_line)
        print_error ("got %s line %d, want %s line %d for:\n%.*s\n", dipx_strerror (rc), line,
                     dipx_strerror (want_rc), want_line, (int) (len > 200 ? 200 : len), text);
    assert_int_equal (rc, want_rc);
    assert_int_equal (line, want_line);
    assert_null (p);
}

/*  Tests ------------------------------------------------------------------*/

/*  The shipped file loads (through dipx_policy_load, as dipxd does) and parses
    from memory to the same rules.  */
static void
test_shipped_parses (void **state)
{
    (void) state;
    char path[1024];
    s_shipped_path (path, sizeof path);
    dipx_policy_t *loaded = NULL;
    int line = -1;
    int rc = dipx_policy_load (path, &loaded, &line);
    if (rc)
        print_error ("%s: %s at line %d\n", path, dipx_strerror (rc), line);
    assert_int_equal (rc, 0);
    assert_int_equal (line, 0);
    size_t len = 0;
    char *text = s_read_file (path, &len);
    assert_non_null (text);
    dipx_policy_t *parsed = NULL;
    assert_int_equal (dipx_policy_parse (text, len, &parsed, &line), 0);
    assert_int_equal (dipx_policy_size (parsed), dipx_policy_size (loaded));
    /* One rule line per table row, and no more.  */
    assert_int_equal (dipx_policy_size (loaded), S_NFLOWS);
    dipx_policy_destroy (&parsed);
    dipx_policy_destroy (&loaded);
    assert_null (loaded);
    dipx_policy_destroy (&loaded); /* accepts NULL */
    dipx_policy_destroy (NULL);
    free (text);
}

/*  Every flow of the table: allowed on its basis, DIPX_E_BASIS on the others.  */
static void
test_shipped_allows_table (void **state)
{
    (void) state;
    char path[1024];
    s_shipped_path (path, sizeof path);
    dipx_policy_t *p = NULL;
    assert_int_equal (dipx_policy_load (path, &p, NULL), 0);
    int checked = 0;
    for (size_t i = 0; i < S_NFLOWS; i++) {
        const s_flow_t *f = &s_flows[i];
        for (const int *from = f->from; *from != END; from++)
            for (const int *to = f->to; *to != END; to++)
                for (int b = 0; b < DIPX_BASIS_COUNT; b++) {
                    int rc = dipx_policy_check (p, *from, f->type, *to, b);
                    int want = b == f->basis ? 0 : DIPX_E_BASIS;
                    if (rc != want)
                        print_error ("%s %s -> %s on %s: got %s\n", f->type,
                                     dipx_agency_type_name (*from), dipx_agency_type_name (*to),
                                     dipx_basis_name (b), dipx_strerror (rc));
                    assert_int_equal (rc, want);
                    checked++;
                }
    }
    /* 30 sender/recipient pairs in the table, 4 bases each.  */
    assert_int_equal (checked, 30 * DIPX_BASIS_COUNT);
    /* A basis out of range is never allowed.  */
    assert_int_equal (dipx_policy_check (p, POL, "drug_test_result", CJI, -1), DIPX_E_BASIS);
    assert_int_equal (dipx_policy_check (p, POL, "drug_test_result", CJI, DIPX_BASIS_COUNT),
                      DIPX_E_BASIS);
    assert_int_equal (dipx_policy_check (p, POL, "drug_test_result", CJI, 31), DIPX_E_BASIS);
    assert_int_equal (dipx_policy_check (p, POL, "drug_test_result", CJI, 1000), DIPX_E_BASIS);
    dipx_policy_destroy (&p);
}

/*  Every triple of (sender type, message type, recipient type) not in the
    table, the broker's own type included, is refused on every basis.  */
static void
test_shipped_refuses_rest (void **state)
{
    (void) state;
    char path[1024];
    s_shipped_path (path, sizeof path);
    dipx_policy_t *p = NULL;
    assert_int_equal (dipx_policy_load (path, &p, NULL), 0);
    for (size_t i = 0; i < S_NFLOWS; i++)
        for (int from = 0; from < DIPX_AGENCY_COUNT; from++)
            for (int to = 0; to < DIPX_AGENCY_COUNT; to++) {
                if (s_table_basis (from, s_flows[i].type, to) >= 0)
                    continue;
                for (int b = 0; b < DIPX_BASIS_COUNT; b++) {
                    int rc = dipx_policy_check (p, from, s_flows[i].type, to, b);
                    if (rc != DIPX_E_POLICY)
                        print_error ("%s %s -> %s on %s: got %s\n", s_flows[i].type,
                                     dipx_agency_type_name (from), dipx_agency_type_name (to),
                                     dipx_basis_name (b), dipx_strerror (rc));
                    assert_int_equal (rc, DIPX_E_POLICY);
                }
            }
    /* The examples the brief names.  */
    assert_int_equal (dipx_policy_check (p, CJI, "drug_test_result", COU, DIPX_BASIS_STATUTE),
                      DIPX_E_POLICY);
    assert_int_equal (dipx_policy_check (p, TRE, "drr_test_result", POL, DIPX_BASIS_STATUTE),
                      DIPX_E_POLICY);
    assert_int_equal (dipx_policy_check (p, POL, "drug_test_result", COU, DIPX_BASIS_STATUTE),
                      DIPX_E_POLICY);
    assert_int_equal (dipx_policy_check (p, CJI, "dir_transfer", TRE, DIPX_BASIS_CONSENT),
                      DIPX_E_POLICY);
    assert_int_equal (dipx_policy_check (p, PRI, "dir_transfer", PRI, DIPX_BASIS_CONSENT),
                      DIPX_E_POLICY);
    /* Monitoring sends nothing to anyone (it may only ever raise safeguarding
       with the police).  */
    for (size_t i = 0; i < S_NFLOWS; i++)
        for (int to = 0; to < DIPX_AGENCY_COUNT; to++)
            for (int b = 0; b < DIPX_BASIS_COUNT; b++) {
                bool pi = strcmp (s_flows[i].type, "safeguarding_disclosure") == 0 && to == POL
                          && b == DIPX_BASIS_PUBLIC_INTEREST;
                int rc = dipx_policy_check (p, MON, s_flows[i].type, to, b);
                if (pi)
                    assert_int_equal (rc, 0);
                else
                    assert_true (rc == DIPX_E_POLICY || rc == DIPX_E_BASIS);
                if (!pi && to != POL)
                    assert_int_equal (rc, DIPX_E_POLICY);
            }
    /* Unknown message types, whoever sends them.  */
    for (size_t i = 0; i < sizeof s_unknown_types / sizeof s_unknown_types[0]; i++)
        for (int from = 0; from < DIPX_AGENCY_COUNT; from++)
            for (int to = 0; to < DIPX_AGENCY_COUNT; to++)
                for (int b = 0; b < DIPX_BASIS_COUNT; b++)
                    assert_int_equal (dipx_policy_check (p, from, s_unknown_types[i], to, b),
                                      DIPX_E_POLICY);
    /* The broker's own type is not covered by `any`.  */
    assert_int_equal (dipx_policy_check (p, DIPX_AGENCY_BROKER, "safeguarding_disclosure", POL,
                                         DIPX_BASIS_PUBLIC_INTEREST),
                      DIPX_E_POLICY);
    /* Agency types out of range.  */
    int bad[] = {-1, DIPX_AGENCY_COUNT, 31, 32, 33, 1000, -1000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal (dipx_policy_check (p, bad[i], "safeguarding_disclosure", POL,
                                             DIPX_BASIS_PUBLIC_INTEREST),
                          DIPX_E_POLICY);
        assert_int_equal (dipx_policy_check (p, POL, "drug_test_result", bad[i],
                                             DIPX_BASIS_STATUTE),
                          DIPX_E_POLICY);
    }
    dipx_policy_destroy (&p);
}

static void
test_any (void **state)
{
    (void) state;
    dipx_policy_t *p = s_parse_ok ("allow any note any consent,order\n"
                                   "allow police alert any statute\n"
                                   "allow any report\tcourt\tstatute\n");
    assert_int_equal (dipx_policy_size (p), 3);
    for (int from = 0; from < DIPX_AGENCY_COUNT; from++)
        for (int to = 0; to < DIPX_AGENCY_COUNT; to++) {
            bool agencies = from != DIPX_AGENCY_BROKER && to != DIPX_AGENCY_BROKER;
            int want = agencies ? 0 : DIPX_E_POLICY;
            assert_int_equal (dipx_policy_check (p, from, "note", to, DIPX_BASIS_CONSENT), want);
            assert_int_equal (dipx_policy_check (p, from, "note", to, DIPX_BASIS_ORDER), want);
            assert_int_equal (dipx_policy_check (p, from, "note", to, DIPX_BASIS_STATUTE),
                              agencies ? DIPX_E_BASIS : DIPX_E_POLICY);
            want = from == POL && to != DIPX_AGENCY_BROKER ? 0 : DIPX_E_POLICY;
            assert_int_equal (dipx_policy_check (p, from, "alert", to, DIPX_BASIS_STATUTE), want);
            want = from != DIPX_AGENCY_BROKER && to == COU ? 0 : DIPX_E_POLICY;
            assert_int_equal (dipx_policy_check (p, from, "report", to, DIPX_BASIS_STATUTE), want);
        }
    dipx_policy_destroy (&p);
}

/*  Several rules for one flow: the bases add up, whatever the order.  */
static void
test_rules_combine (void **state)
{
    (void) state;
    dipx_policy_t *p = s_parse_ok ("  # leading comment\n"
                                   "\n"
                                   "allow police x cjit statute   # trailing comment\r\n"
                                   "\t\r\n"
                                   "allow police,court x cjit consent\n"
                                   "allow court x cjit order");
    assert_int_equal (dipx_policy_size (p), 3);
    assert_int_equal (dipx_policy_check (p, POL, "x", CJI, DIPX_BASIS_STATUTE), 0);
    assert_int_equal (dipx_policy_check (p, POL, "x", CJI, DIPX_BASIS_CONSENT), 0);
    assert_int_equal (dipx_policy_check (p, POL, "x", CJI, DIPX_BASIS_ORDER), DIPX_E_BASIS);
    assert_int_equal (dipx_policy_check (p, COU, "x", CJI, DIPX_BASIS_ORDER), 0);
    assert_int_equal (dipx_policy_check (p, COU, "x", CJI, DIPX_BASIS_STATUTE), DIPX_E_BASIS);
    assert_int_equal (dipx_policy_check (p, CJI, "x", POL, DIPX_BASIS_STATUTE), DIPX_E_POLICY);
    dipx_policy_destroy (&p);
}

/*  An empty file, or one of comments only, denies everything.  */
static void
test_empty_denies (void **state)
{
    (void) state;
    const char *texts[] = {"", "\n\n", "# nothing allowed\n   # at all\n", "   \t  "};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        dipx_policy_t *p = s_parse_ok (texts[i]);
        assert_int_equal (dipx_policy_size (p), 0);
        for (size_t f = 0; f < S_NFLOWS; f++)
            for (int from = 0; from < DIPX_AGENCY_COUNT; from++)
                for (int to = 0; to < DIPX_AGENCY_COUNT; to++)
                    for (int b = 0; b < DIPX_BASIS_COUNT; b++)
                        assert_int_equal (dipx_policy_check (p, from, s_flows[f].type, to, b),
                                          DIPX_E_POLICY);
        dipx_policy_destroy (&p);
    }
    /* And a NULL text of length 0.  */
    dipx_policy_t *p = NULL;
    int line = -1;
    assert_int_equal (dipx_policy_parse (NULL, 0, &p, &line), 0);
    assert_int_equal (line, 0);
    assert_int_equal (dipx_policy_size (p), 0);
    dipx_policy_destroy (&p);
}

typedef struct {
    const char *text; /* policy text (a NUL can be spelled \0 with len) */
    size_t len;       /* 0: strlen (text) */
    int line;         /* line the error is reported on */
} s_bad_t;

#define OK1 "allow police x cjit statute\n"
#define BAD(t, l) {t, sizeof (t) - 1, l}

static const s_bad_t s_bad[] = {
    /* keyword */
    BAD ("allw police x cjit statute\n", 1),
    BAD (OK1 "Allow police x cjit statute\n", 2),
    BAD (OK1 OK1 "deny police x cjit statute\n", 3),
    BAD ("allowed police x cjit statute\n", 1),
    BAD ("\n# c\n[allow] police x cjit statute\n", 3),
    /* unknown agency type, or the broker's, or `any` mixed into a list */
    BAD ("allow policee x cjit statute\n", 1),
    BAD (OK1 "allow police x cjits statute\n", 2),
    BAD ("allow broker x cjit statute\n", 1),
    BAD ("allow police x broker statute\n", 1),
    BAD ("allow any,police x cjit statute\n", 1),
    BAD ("allow police x police,any statute\n", 1),
    BAD ("allow all x cjit statute\n", 1),
    /* uppercase */
    BAD ("allow Police x cjit statute\n", 1),
    BAD ("allow police x CJIT statute\n", 1),
    BAD ("allow police Drug_test_result cjit statute\n", 1),
    BAD ("allow police drug_test_resulT cjit statute\n", 1),
    BAD ("allow police x cjit Statute\n", 1),
    BAD ("allow ANY x cjit statute\n", 1),
    /* message type: not an identifier, too long (49) */
    BAD ("allow police 1x cjit statute\n", 1),
    BAD ("allow police _x cjit statute\n", 1),
    BAD ("allow police x-y cjit statute\n", 1),
    BAD ("allow police x.y cjit statute\n", 1),
    BAD ("allow police x,y cjit statute\n", 1),
    BAD ("allow police aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa cjit statute\n", 1),
    /* unknown basis, `any` as a basis */
    BAD ("allow police x cjit statutory\n", 1),
    BAD ("allow police x cjit any\n", 1),
    BAD ("allow police x cjit pi\n", 1),
    BAD ("allow police x cjit consent,orders\n", 1),
    /* repeated names in a list */
    BAD ("allow police,police x cjit statute\n", 1),
    BAD ("allow police x cjit,court,cjit statute\n", 1),
    BAD ("allow police x cjit statute,statute\n", 1),
    BAD ("allow cjit,treatment,cjit x court order\n", 1),
    /* empty list elements */
    BAD ("allow police, x cjit statute\n", 1),
    BAD ("allow ,police x cjit statute\n", 1),
    BAD ("allow police,,court x cjit statute\n", 1),
    BAD ("allow police x cjit statute,\n", 1),
    BAD ("allow police x , statute\n", 1),
    /* too few, too many words */
    BAD ("allow\n", 1),
    BAD ("allow police\n", 1),
    BAD ("allow police x\n", 1),
    BAD (OK1 "allow police x cjit\n", 2),
    BAD ("allow police x cjit statute extra\n", 1),
    BAD ("allow police x cjit statute order\n", 1),
    BAD ("allow police x cjit statute # ok\nallow police x cjit statute , \n", 2),
    BAD ("police x cjit statute\n", 1),
    /* control bytes: in a rule, in a comment, alone; CR inside a line */
    BAD ("allow police x\001 cjit statute\n", 1),
    BAD (OK1 "allow police x cjit statute\033[2K\n", 2),
    BAD ("allow police x cjit statute # \033[1A hidden\n", 1),
    BAD ("# a comment\001\n", 1),
    BAD ("\001\n", 1),
    BAD ("allow police x cjit statute\r# looks like a comment\n", 1),
    BAD ("allow police x cjit statute\r\r\n", 1),
    BAD ("allow police x cjit \177statute\n", 1),
    BAD ("allow police x\vcjit statute\n", 1),
    BAD ("allow police x\fcjit statute\n", 1),
    /* NUL bytes */
    BAD ("allow police x\0 cjit statute\n", 1),
    BAD (OK1 OK1 "# \0 in a comment\n", 3),
    BAD (OK1 "\0", 2),
    BAD ("allow police x cjit statute\0\n", 1),
    /* bytes above ASCII in a rule */
    BAD ("allow police caf\303\251 cjit statute\n", 1),
    BAD ("allow police x cjit statute\302\240\n", 1),
    /* a valid rule after an invalid one does not change the line */
    BAD ("\n\n\nallow police x\n" OK1, 4),
};

static void
test_syntax_errors (void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++)
        s_parse_fails (s_bad[i].text, s_bad[i].len, DIPX_E_SYNTAX, s_bad[i].line);
    /* Edge cases that are fine: a 48-character type, tabs, CRLF, a comment
       glued to the last word, UTF-8 in a comment.  */
    dipx_policy_t *p = s_parse_ok (
        "allow police aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa cjit statute\r\n"
        "\tallow\tpolice\ty\tcjit\tstatute\t\n"
        "allow police z cjit statute# glued\n"
        "# caf\303\251 \342\206\224 \n");
    assert_int_equal (dipx_policy_size (p), 3);
    assert_int_equal (dipx_policy_check (p, POL, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                         CJI, DIPX_BASIS_STATUTE),
                      0);
    assert_int_equal (dipx_policy_check (p, POL, "z", CJI, DIPX_BASIS_STATUTE), 0);
    dipx_policy_destroy (&p);
}

/*  Lines are at most DIPX_MAX_LINE bytes (without the newline), comments too.  */
static void
test_line_length (void **state)
{
    (void) state;
    size_t size = 3 * DIPX_MAX_LINE;
    char *text = malloc (size);
    assert_non_null (text);
    /* A comment line of exactly the limit, then one over it on line 3.  */
    size_t n = 0;
    n += (size_t) snprintf (text + n, size - n, OK1);
    text[n++] = '#';
    memset (text + n, 'c', DIPX_MAX_LINE - 1);
    n += DIPX_MAX_LINE - 1;
    text[n++] = '\n';
    dipx_policy_t *p = NULL;
    int line = -1;
    assert_int_equal (dipx_policy_parse (text, n, &p, &line), 0);
    assert_int_equal (dipx_policy_size (p), 1);
    dipx_policy_destroy (&p);
    text[n++] = '#';
    memset (text + n, 'c', DIPX_MAX_LINE);
    n += DIPX_MAX_LINE;
    s_parse_fails (text, n, DIPX_E_SYNTAX, 3);
    text[n++] = '\n';
    s_parse_fails (text, n, DIPX_E_SYNTAX, 3);
    /* A rule padded with spaces past the limit.  */
    n = (size_t) snprintf (text, size, "allow police x cjit statute");
    memset (text + n, ' ', DIPX_MAX_LINE);
    n += DIPX_MAX_LINE - n + 1;
    s_parse_fails (text, n, DIPX_E_SYNTAX, 1);
    free (text);
}

/*  At most DIPX_MAX_POLICY_RULES rules, and DIPX_MAX_POLICY_BYTES bytes.  */
static void
test_limits (void **state)
{
    (void) state;
    size_t size = (DIPX_MAX_POLICY_RULES + 2) * 64;
    char *text = malloc (size);
    assert_non_null (text);
    size_t n = 0;
    for (int i = 0; i < DIPX_MAX_POLICY_RULES; i++)
        n += (size_t) snprintf (text + n, size - n, "allow any t%d any consent\n", i);
    dipx_policy_t *p = NULL;
    int line = -1;
    assert_int_equal (dipx_policy_parse (text, n, &p, &line), 0);
    assert_int_equal (dipx_policy_size (p), DIPX_MAX_POLICY_RULES);
    assert_int_equal (dipx_policy_check (p, POL, "t1023", CJI, DIPX_BASIS_CONSENT), 0);
    dipx_policy_destroy (&p);
    /* Comments and blank lines do not count; the next rule does.  */
    n += (size_t) snprintf (text + n, size - n, "# still fine\n\n");
    assert_int_equal (dipx_policy_parse (text, n, &p, &line), 0);
    dipx_policy_destroy (&p);
    n += (size_t) snprintf (text + n, size - n, "allow any one_too_many any consent\n");
    s_parse_fails (text, n, DIPX_E_COUNT, DIPX_MAX_POLICY_RULES + 3);
    free (text);

    /* A file over the byte limit, even of comments, is refused before parsing. */
    size = DIPX_MAX_POLICY_BYTES + 1;
    text = malloc (size);
    assert_non_null (text);
    memset (text, '\n', size);
    line = -1;
    p = (dipx_policy_t *) 1;
    assert_int_equal (dipx_policy_parse (text, size, &p, &line), DIPX_E_COUNT);
    assert_int_equal (line, 0);
    assert_null (p);
    assert_int_equal (dipx_policy_parse (text, size - 1, &p, &line), 0);
    assert_int_equal (dipx_policy_size (p), 0);
    dipx_policy_destroy (&p);
    free (text);
}

static void
test_load_errors (void **state)
{
    (void) state;
    dipx_policy_t *p = (dipx_policy_t *) 1;
    int line = -1;
    assert_int_equal (dipx_policy_load ("/nonexistent/dipx/policy.conf", &p, &line), DIPX_E_IO);
    assert_null (p);
    assert_int_equal (line, 0);
    /* A directory opens but cannot be read.  */
    p = (dipx_policy_t *) 1;
    assert_int_equal (dipx_policy_load ("/", &p, &line), DIPX_E_IO);
    assert_null (p);
    /* A FIFO with no writer is refused at once, not waited on.  */
    char dir[256], fifo[300];
    assert_int_equal (dipx_test_mkdtemp (dir, sizeof dir, "dipx-policy"), 0);
    snprintf (fifo, sizeof fifo, "%s/policy.conf", dir);
    assert_int_equal (mkfifo (fifo, 0600), 0);
    p = (dipx_policy_t *) 1;
    assert_int_equal (dipx_policy_load (fifo, &p, &line), DIPX_E_IO);
    assert_null (p);
    dipx_test_rmtree (dir);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_shipped_parses),
        cmocka_unit_test (test_shipped_allows_table),
        cmocka_unit_test (test_shipped_refuses_rest),
        cmocka_unit_test (test_any),
        cmocka_unit_test (test_rules_combine),
        cmocka_unit_test (test_empty_denies),
        cmocka_unit_test (test_syntax_errors),
        cmocka_unit_test (test_line_length),
        cmocka_unit_test (test_limits),
        cmocka_unit_test (test_load_errors),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
