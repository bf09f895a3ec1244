/*  dipx_names.h - name tables behind dipx_types.h, for schemas and parsers.  */
#ifndef DIPX_NAMES_H_INCLUDED
#define DIPX_NAMES_H_INCLUDED

#include "dipx_types.h"

extern const char *const dipx_agency_type_names[DIPX_AGENCY_COUNT];
extern const char *const dipx_basis_names[DIPX_BASIS_COUNT];
extern const char *const dipx_purpose_names[DIPX_PURPOSE_COUNT];
extern const char *const dipx_category_names[DIPX_CAT_COUNT];

#endif
