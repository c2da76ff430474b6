/*
 * limits.c — per-address connection counts and per-user stanza rates.
 *
 * Connections per IP: a hash table from the address text to a count, so
 * that accepting a connection is O(1) whatever the number of clients.
 * Stanzas per account: a token bucket kept on the account's session list
 * (user_sessions_t), shared by all its resources; a stanza is never
 * dropped: the caller stops reading the connection until the bucket holds
 * a token again, as a sender held by flow control is.
 * Must not: block, or scan sessions.
 */
#include "stream/limits.h"

#include <stdint.h>

#include "util/hashmap.h"
#include "route/sessions.h"

static hashmap_t *per_ip; /* "192.0.2.1" -> count, as a pointer-sized integer */

int limits_ip_take(const char *ip, long long max)
{
    if (max <= 0)
        return 0;
    if (!per_ip && !(per_ip = hashmap_new()))
        return -1;
    uintptr_t n = (uintptr_t)hashmap_get(per_ip, ip);
    if ((long long)n >= max)
        return -1;
    return hashmap_put(per_ip, ip, (void *)(n + 1));
}

void limits_ip_release(const char *ip)
{
    if (!per_ip)
        return;
    uintptr_t n = (uintptr_t)hashmap_get(per_ip, ip);
    if (n <= 1)
        hashmap_remove(per_ip, ip);
    else
        hashmap_put(per_ip, ip, (void *)(n - 1)); /* replaces: no allocation */
    if (hashmap_count(per_ip) == 0)
        hashmap_free(&per_ip);
}

long long limits_bucket_take(long long *tokens, long long *at_ms, long long rate, long long burst,
                             long long now_ms)
{
    if (rate <= 0)
        return 0;
    if (burst < 1)
        burst = 1;
    /* Tokens in thousandths, so that slow rates refill smoothly. */
    if (!*at_ms || now_ms < *at_ms) {
        *tokens = burst * 1000;
        *at_ms = now_ms;
    }
    long long gained = (now_ms - *at_ms) * rate;
    if (gained > 0) {
        *tokens += gained;
        if (*tokens > burst * 1000)
            *tokens = burst * 1000;
        *at_ms = now_ms;
    }
    *tokens -= 1000;
    if (*tokens >= 0)
        return 0;
    /* In debt: wait until the bucket is back to one token. */
    return (-*tokens + 1000 + rate - 1) / rate;
}

long long limits_stanza_take(struct user_sessions *u, long long rate, long long burst,
                             long long now_ms)
{
    if (rate <= 0 || !u)
        return 0;
    return limits_bucket_take(&u->rate_tokens, &u->rate_at_ms, rate, burst, now_ms);
}
