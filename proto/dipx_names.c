/*  dipx_names.c - wire names of the closed vocabularies and error codes.

    The tables here are the single source of these names: schemas in
    dipx_frame.c and dipx_envelope.c point at them, and so do the card, policy
    and CLI parsers.
*/
#include "dipx_names.h"

#include <limits.h>
#include <string.h>

#include "dipx_error.h"
#include "dipx_types.h"

const char *const dipx_agency_type_names[DIPX_AGENCY_COUNT] = {
    "police", "cjit", "court", "probation", "treatment", "prison", "monitoring", "broker",
};

const char *const dipx_basis_names[DIPX_BASIS_COUNT] = {
    "consent", "statute", "order", "public_interest",
};

const char *const dipx_purpose_names[DIPX_PURPOSE_COUNT] = {
    "continuity_of_care",  "case_management", "court_reporting", "offender_management",
    "national_monitoring", "research",        "law_enforcement", "safeguarding",
};

const char *const dipx_category_names[DIPX_CAT_COUNT] = {
    "identifiers", "test_results", "assessment", "care_plan",
    "treatment_progress", "notes", "health", "risk",
};

static const char *
s_name (const char *const *table, int count, int v)
{
    return v >= 0 && v < count ? table[v] : NULL;
}

static int
s_parse (const char *const *table, int count, const char *name, size_t len)
{
    for (int i = 0; i < count; i++)
        if (strlen (table[i]) == len && memcmp (table[i], name, len) == 0)
            return i;
    return DIPX_E_VALUE;
}

const char *
dipx_agency_type_name (int type)
{
    return s_name (dipx_agency_type_names, DIPX_AGENCY_COUNT, type);
}

const char *
dipx_basis_name (int basis)
{
    return s_name (dipx_basis_names, DIPX_BASIS_COUNT, basis);
}

const char *
dipx_purpose_name (int purpose)
{
    return s_name (dipx_purpose_names, DIPX_PURPOSE_COUNT, purpose);
}

const char *
dipx_category_name (int category)
{
    return s_name (dipx_category_names, DIPX_CAT_COUNT, category);
}

int
dipx_agency_type_parse (const char *name)
{
    return name ? s_parse (dipx_agency_type_names, DIPX_AGENCY_COUNT, name, strlen (name))
                : DIPX_E_VALUE;
}

int
dipx_basis_parse (const char *name)
{
    return name ? s_parse (dipx_basis_names, DIPX_BASIS_COUNT, name, strlen (name)) : DIPX_E_VALUE;
}

int
dipx_purpose_parse (const char *name)
{
    return name ? s_parse (dipx_purpose_names, DIPX_PURPOSE_COUNT, name, strlen (name))
                : DIPX_E_VALUE;
}

int
dipx_category_parse (const char *name)
{
    return name ? s_parse (dipx_category_names, DIPX_CAT_COUNT, name, strlen (name))
                : DIPX_E_VALUE;
}

int
dipx_categories_parse (const char *list, uint32_t *mask)
{
    if (!list || !*list)
        return DIPX_E_VALUE;
    uint32_t m = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr (p, ',');
        size_t len = comma ? (size_t) (comma - p) : strlen (p);
        int c = s_parse (dipx_category_names, DIPX_CAT_COUNT, p, len);
        if (c < 0 || (m & (1u << c)))
            return DIPX_E_VALUE;
        m |= 1u << c;
        if (!comma)
            break;
        p = comma + 1;
    }
    *mask = m;
    return 0;
}

#define DIPX_X_TEXT(name, num, wire, text)                                                         \
    case num: return text;
#define DIPX_X_WIRE(name, num, wire, text)                                                         \
    case num: return wire;

const char *
dipx_strerror (int code)
{
    if (code == INT_MIN) /* -INT_MIN overflows */
        return "unknown error";
    if (code < 0)
        code = -code;
    switch (code) {
    case 0: return "success";
        DIPX_ERROR_TABLE (DIPX_X_TEXT)
    default: return "unknown error";
    }
}

const char *
dipx_error_name (int code)
{
    if (code == INT_MIN)
        return "unknown";
    if (code < 0)
        code = -code;
    switch (code) {
    case 0: return "ok";
        DIPX_ERROR_TABLE (DIPX_X_WIRE)
    default: return "unknown";
    }
}

int
dipx_error_is_wire (int code)
{
    if (code >= 0 || code == INT_MIN)
        return 0;
    return -code < DIPX_E_LOCAL_FIRST && strcmp (dipx_error_name (code), "unknown") != 0;
}
