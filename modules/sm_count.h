/*
 * sm_count.h — the counter arithmetic of stream management (XEP-0198 §4):
 * 32-bit counts that wrap at 2^32, and the check of a peer's 'h'.
 * Header-only, for mod_smacks and its unit test.
 */
#ifndef TERN_SM_COUNT_H
#define TERN_SM_COUNT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Parse an 'h': decimal digits only, below 2^32.  0, or -1. */
static inline int sm_parse_h(const char *v, uint32_t *h_r)
{
    if (!v || !*v || strlen(v) > 10)
        return -1;
    uint64_t h = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        h = h * 10 + (uint64_t)(*p - '0');
    }
    if (h > UINT32_MAX)
        return -1;
    *h_r = (uint32_t)h;
    return 0;
}

/* The peer acknowledged up to `h`; `acked` is its previous 'h' and
 * `unacked` how many stanzas were sent since.  How many stanzas `h` newly
 * acknowledges (counting modulo 2^32), or -1 when it is more than were
 * sent ("handled-count-too-high"). */
static inline long long sm_newly_acked(uint32_t acked, size_t unacked, uint32_t h)
{
    uint32_t d = h - acked; /* wraps */
    return (size_t)d > unacked ? -1 : (long long)d;
}

#endif
