/*
 * test_domains.c — the domain registry (route/domains.c): hosts, service
 * domains, components attached and away, removal, and remote by default.
 */
#include "check.h"
#include "route/domains.h"

static int delivered;

static void deliver(void *ctx, tern_xml_t *stanza)
{
    (void)stanza;
    delivered += *(int *)ctx;
}

int main(void)
{
    int host_a, host_b, one = 1, two = 2;
    struct host *ha = (struct host *)&host_a, *hb = (struct host *)&host_b;

    CHECK(domains_find("example.com") == NULL);
    CHECK(domains_kind("example.com") == DOMAIN_REMOTE);
    CHECK(!domains_is_ours("example.com"));

    CHECK(domains_set_host("example.com", ha, 0) == 0);
    CHECK(domains_set_host("rooms.example.com", hb, 1) == 0);
    CHECK(domains_kind("example.com") == DOMAIN_HOST);
    CHECK(domains_find("example.com")->host == ha);
    CHECK(domains_kind("rooms.example.com") == DOMAIN_SERVICE);
    CHECK(domains_find("rooms.example.com")->host == hb);
    CHECK(domains_is_ours("rooms.example.com"));
    CHECK(domains_kind("other.example.com") == DOMAIN_REMOTE);
    CHECK(domains_kind("Example.com") == DOMAIN_REMOTE); /* keys are prepared domains */

    /* A host can become a service (reload) and back. */
    CHECK(domains_set_host("rooms.example.com", hb, 0) == 0);
    CHECK(domains_kind("rooms.example.com") == DOMAIN_HOST);
    CHECK(domains_set_host("rooms.example.com", hb, 1) == 0);
    CHECK(domains_kind("rooms.example.com") == DOMAIN_SERVICE);

    /* Components: declared away, attached once, detached by their owner. */
    CHECK(domains_declare_component("bots.example.com") == 0);
    CHECK(domains_declare_component("bots.example.com") == 0);
    CHECK(domains_declare_component("example.com") < 0); /* a host stays a host */
    CHECK(domains_kind("example.com") == DOMAIN_HOST);
    CHECK(domains_kind("bots.example.com") == DOMAIN_COMPONENT);
    CHECK(domains_find("bots.example.com")->ctx == NULL);
    CHECK(domains_attach_component("nope.example.com", deliver, &one) < 0);
    CHECK(domains_attach_component("example.com", deliver, &one) < 0);
    CHECK(domains_attach_component("bots.example.com", deliver, &one) == 0);
    CHECK(domains_attach_component("bots.example.com", deliver, &two) < 0);
    const domain_entry_t *e = domains_find("bots.example.com");
    e->fn(e->ctx, NULL);
    CHECK(delivered == 1);
    domains_detach_component("bots.example.com", &two); /* not the one attached */
    CHECK(domains_find("bots.example.com")->ctx == &one);
    domains_detach_component("bots.example.com", &one);
    CHECK(domains_find("bots.example.com")->ctx == NULL);
    CHECK(domains_attach_component("bots.example.com", deliver, &two) == 0);

    /* Removal makes a domain remote again. */
    domains_remove("rooms.example.com");
    CHECK(domains_kind("rooms.example.com") == DOMAIN_REMOTE);
    domains_remove("rooms.example.com");
    CHECK(domains_kind("example.com") == DOMAIN_HOST);

    /* Many domains: lookups stay exact. */
    char name[64];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "d%d.example.net", i);
        CHECK(domains_set_host(name, (i & 1) ? ha : hb, i & 1) == 0);
    }
    int right = 1;
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "d%d.example.net", i);
        const domain_entry_t *d = domains_find(name);
        right &= d && d->host == ((i & 1) ? ha : hb) &&
                 d->kind == ((i & 1) ? DOMAIN_SERVICE : DOMAIN_HOST);
    }
    CHECK(right);
    domains_free();
    CHECK(domains_find("example.com") == NULL);
    domains_free();
    return check_summary();
}
