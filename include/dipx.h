/*  dipx.h - the public API of libdipx, the dipx client library.

    Include this one header. Link with pkg-config's `dipx`, or CMake's
    find_package(dipx) and target dipx::dipx.
*/
#ifndef DIPX_H_INCLUDED
#define DIPX_H_INCLUDED

#define DIPX_VERSION_MAJOR 0
#define DIPX_VERSION_MINOR 1
#define DIPX_VERSION_PATCH 0
#define DIPX_VERSION_STRING "0.1.0"
#define DIPX_MAKE_VERSION(major, minor, patch) ((major) * 10000 + (minor) * 100 + (patch))
#define DIPX_VERSION DIPX_MAKE_VERSION (DIPX_VERSION_MAJOR, DIPX_VERSION_MINOR, DIPX_VERSION_PATCH)

#include "dipx_error.h"
#include "dipx_types.h"
#include "dipx_client.h"

#ifdef __cplusplus
extern "C" {
#endif

/*  Version of the library actually linked, as DIPX_VERSION.  */
DIPX_EXPORT int dipx_version (void);

#ifdef __cplusplus
}
#endif

#endif
