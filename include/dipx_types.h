/*  dipx_types.h - the closed vocabularies of the Drug Interventions Programme
    that dipx puts on the wire: agency types, lawful bases, purposes and data
    categories (see DOMAIN.md). Message types are open: the broker's policy
    file names them.

    Each enum has a stable lowercase wire name; the numbering is this header's
    own and never travels.
*/
#ifndef DIPX_TYPES_H_INCLUDED
#define DIPX_TYPES_H_INCLUDED

#include <stdint.h>

#include "dipx_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    DIPX_AGENCY_POLICE,     /* custody suites */
    DIPX_AGENCY_CJIT,       /* Criminal Justice Intervention Team */
    DIPX_AGENCY_COURT,      /* magistrates' and Crown courts, CPS */
    DIPX_AGENCY_PROBATION,  /* responsible officer */
    DIPX_AGENCY_TREATMENT,  /* treatment provider */
    DIPX_AGENCY_PRISON,     /* prison substance-misuse team */
    DIPX_AGENCY_MONITORING, /* national monitoring (NDTMS) */
    DIPX_AGENCY_BROKER,     /* a dipx broker's own identity; never registrable */
    DIPX_AGENCY_COUNT
} dipx_agency_type_t;

typedef enum {
    DIPX_BASIS_CONSENT,         /* the person's recorded consent; ref = consent id */
    DIPX_BASIS_STATUTE,         /* a statutory gateway; ref = citation */
    DIPX_BASIS_ORDER,           /* a court order or bail condition; ref = order reference */
    DIPX_BASIS_PUBLIC_INTEREST, /* safeguarding override; ref = decision reference */
    DIPX_BASIS_COUNT
} dipx_basis_t;

typedef enum {
    DIPX_PURPOSE_CONTINUITY_OF_CARE,
    DIPX_PURPOSE_CASE_MANAGEMENT,
    DIPX_PURPOSE_COURT_REPORTING,
    DIPX_PURPOSE_OFFENDER_MANAGEMENT,
    DIPX_PURPOSE_NATIONAL_MONITORING,
    DIPX_PURPOSE_RESEARCH,
    DIPX_PURPOSE_LAW_ENFORCEMENT, /* statutory police flows (DT1, RA1, non-attendance) */
    DIPX_PURPOSE_SAFEGUARDING,    /* public-interest disclosures */
    DIPX_PURPOSE_COUNT
} dipx_purpose_t;

/*  Data categories, used as bits: (1u << DIPX_CAT_TEST_RESULTS).  */
typedef enum {
    DIPX_CAT_IDENTIFIERS,
    DIPX_CAT_TEST_RESULTS,
    DIPX_CAT_ASSESSMENT,
    DIPX_CAT_CARE_PLAN,
    DIPX_CAT_TREATMENT_PROGRESS,
    DIPX_CAT_NOTES,
    DIPX_CAT_HEALTH,
    DIPX_CAT_RISK,
    DIPX_CAT_COUNT
} dipx_category_t;

/*  What happened to a message: receipt and history events (wire names
    "accepted", "delivered", ..., see dipx_receipt_event_name).  */
typedef enum {
    DIPX_EVENT_ACCEPTED,      /* stored by the broker */
    DIPX_EVENT_DELIVERED,     /* handed to the recipient's connection */
    DIPX_EVENT_ACKED,         /* recipient's signed acknowledgement */
    DIPX_EVENT_ACTIONED,      /* recipient's business outcome: acted on */
    DIPX_EVENT_REJECTED,      /* recipient's business outcome: rejected, with reason */
    DIPX_EVENT_EXPIRED,       /* expired before it was acknowledged */
    DIPX_EVENT_DEAD_LETTERED, /* moved to dead letters after failed deliveries */
    DIPX_EVENT_REDRIVEN,      /* put back in the queue by an operator */
    DIPX_EVENT_UNDELIVERABLE, /* handing to the recipient's connection failed */
    DIPX_EVENT_COUNT
} dipx_event_t;

/*  Wire names; NULL for out-of-range values.  */
DIPX_EXPORT const char *dipx_agency_type_name (int type);
DIPX_EXPORT const char *dipx_basis_name (int basis);
DIPX_EXPORT const char *dipx_purpose_name (int purpose);
DIPX_EXPORT const char *dipx_category_name (int category);

/*  Parses a wire name; returns the enum value or DIPX_E_VALUE.  */
DIPX_EXPORT int dipx_agency_type_parse (const char *name);
DIPX_EXPORT int dipx_basis_parse (const char *name);
DIPX_EXPORT int dipx_purpose_parse (const char *name);
DIPX_EXPORT int dipx_category_parse (const char *name);

/*  Parses a comma-separated list of category names into a bitmask. Returns 0
    and sets *mask, or DIPX_E_VALUE (unknown or repeated name, empty list).  */
DIPX_EXPORT int dipx_categories_parse (const char *list, uint32_t *mask);

#ifdef __cplusplus
}
#endif

#endif
