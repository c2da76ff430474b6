/*
 * test_limits.c — src/stream/limits.c: connection counts per address and the
 * per-account stanza token bucket.
 */
#include "stream/limits.h"

#include "check.h"
#include "route/sessions.h"

static void test_per_ip(void)
{
    /* No limit: nothing counted, always allowed. */
    CHECK(limits_ip_take("192.0.2.1", 0) == 0);
    /* Two allowed, the third refused, room again once one goes. */
    CHECK(limits_ip_take("192.0.2.1", 2) == 0);
    CHECK(limits_ip_take("192.0.2.1", 2) == 0);
    CHECK(limits_ip_take("192.0.2.1", 2) < 0);
    CHECK(limits_ip_take("2001:db8::1", 2) == 0); /* another address */
    limits_ip_release("192.0.2.1");
    CHECK(limits_ip_take("192.0.2.1", 2) == 0);
    CHECK(limits_ip_take("192.0.2.1", 2) < 0);
    /* A lower limit applies to what is already open. */
    CHECK(limits_ip_take("192.0.2.1", 1) < 0);
    limits_ip_release("192.0.2.1");
    limits_ip_release("192.0.2.1");
    limits_ip_release("2001:db8::1");
    limits_ip_release("198.51.100.7"); /* never counted: no effect */
    CHECK(limits_ip_take("192.0.2.1", 1) == 0);
    limits_ip_release("192.0.2.1"); /* the table is freed with its last count */
}

static void test_stanza_bucket(void)
{
    user_sessions_t u = {0};
    /* No limit. */
    CHECK(limits_stanza_take(&u, 0, 10, 1000) == 0);
    CHECK(limits_stanza_take(NULL, 10, 10, 1000) == 0);
    /* A burst of 5 at 10/s: five pass, the sixth waits 100 ms for a token
     * plus 100 ms to pay back its own. */
    for (int i = 0; i < 5; i++)
        CHECK(limits_stanza_take(&u, 10, 5, 1000) == 0);
    CHECK(limits_stanza_take(&u, 10, 5, 1000) == 200);
    /* 200 ms later one token is back. */
    CHECK(limits_stanza_take(&u, 10, 5, 1200) == 0);
    /* Quiet for long: the bucket holds the burst, no more. */
    for (int i = 0; i < 5; i++)
        CHECK(limits_stanza_take(&u, 10, 5, 60000) == 0);
    CHECK(limits_stanza_take(&u, 10, 5, 60000) > 0);
    /* A clock that went back starts a full bucket, never a huge wait. */
    CHECK(limits_stanza_take(&u, 10, 5, 500) == 0);
}

int main(void)
{
    test_per_ip();
    test_stanza_bucket();
    return check_summary();
}
