/*  dipx_bytes.h - big-endian integers in byte buffers, for stored records
    and keys (broker store, client outbox). Big-endian so that LMDB's byte
    order of keys is their numeric order, and records read the same on every
    machine.  */
#ifndef DIPX_BYTES_H_INCLUDED
#define DIPX_BYTES_H_INCLUDED

#include <stdint.h>

static inline void
dipx_put_be64 (uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t) v;
}

static inline uint64_t
dipx_get_be64 (const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static inline void
dipx_put_be32 (uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t) v;
}

static inline uint32_t
dipx_get_be32 (const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

#endif
