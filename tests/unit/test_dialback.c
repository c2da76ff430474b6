/*
 * test_dialback.c — src/stream/dialback.c: dialback keys (XEP-0185).
 */
#include "stream/dialback.h"

#include <string.h>

#include "check.h"

static void test_keys(void)
{
    char key[DIALBACK_KEY_LEN];
    /* The example of XEP-0185 §3. */
    CHECK(dialback_key("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F", key) ==
          0);
    CHECK_STR(key, "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643");
    /* Computed with: echo -n 'b.test a.test abc123' | openssl dgst -sha256 -hmac
     * "$(echo -n 'another secret here' | openssl dgst -sha256 -hex | cut -d' ' -f2)" */
    CHECK(dialback_key("another secret here", "b.test", "a.test", "abc123", key) == 0);
    CHECK_STR(key, "85a1261d459806f6b17674f5376da7c4c97d24ade1a2b68a43a10af22403a5e8");
    CHECK(dialback_key(NULL, "b.test", "a.test", "abc123", key) < 0);
    CHECK(dialback_key("s", "b.test", NULL, "abc123", key) < 0);
}

static void test_check(void)
{
    const char *good = "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643";
    const char *upper = "37C69B1CF07A3F67C04A5EF5902FA5114F2C76FE4A2686482BA5B89323075643";
    CHECK(dialback_check("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F",
                         good) == 1);
    CHECK(dialback_check("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F",
                         upper) == 1);
    /* Any other secret, domain, direction or stream id: refused. */
    CHECK(dialback_check("s3cr3tf0rd14lb4cK", "xmpp.example.com", "example.org", "D60000229F",
                         good) == 0);
    CHECK(dialback_check("s3cr3tf0rd14lb4ck", "example.org", "xmpp.example.com", "D60000229F",
                         good) == 0);
    CHECK(dialback_check("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229E",
                         good) == 0);
    CHECK(dialback_check("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F",
                         "37c69b") == 0);
    CHECK(dialback_check("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F",
                         NULL) == 0);
    CHECK(dialback_check("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F",
                         "") == 0);
}

int main(void)
{
    test_keys();
    test_check();
    return check_summary();
}
