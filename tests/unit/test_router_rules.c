/*
 * test_router_rules.c — the from/to rules of route/router.c per origin
 * (router_rule, a pure function): client, component, remote server (peer)
 * and internal, with the stream error each refusal maps to.
 */
#include <string.h>

#include "check.h"
#include "route/router.h"

/* Our domains for these tests: a host, a service domain and a component. */
static int ours(const char *domain)
{
    return strcmp(domain, "example.com") == 0 || strcmp(domain, "rooms.example.com") == 0 ||
           strcmp(domain, "bots.example.com") == 0;
}

#define CLIENT_RULE(from, to)                                                                      \
    router_rule(ROUTE_CLIENT, "juliet@example.com/balcony", from, to, ours)
#define COMP_RULE(from, to) router_rule(ROUTE_COMPONENT, "bots.example.com", from, to, ours)
#define PEER_RULE(from, to) router_rule(ROUTE_PEER, "remote.example", from, to, ours)

static void test_client(void)
{
    /* RFC 6120 §8.1.2.1: stamped when absent, own full JID as is, own bare
     * JID replaced by the full JID, anything else is invalid-from. */
    CHECK(CLIENT_RULE(NULL, "romeo@example.com") == RULE_STAMP);
    CHECK(CLIENT_RULE(NULL, NULL) == RULE_STAMP);
    CHECK(CLIENT_RULE("juliet@example.com/balcony", "romeo@example.com") == RULE_OK);
    CHECK(CLIENT_RULE("juliet@example.com", "romeo@example.com") == RULE_STAMP);
    CHECK(CLIENT_RULE("Juliet@Example.COM", "romeo@example.com") == RULE_STAMP);
    CHECK(CLIENT_RULE("juliet@example.com/Balcony", NULL) == RULE_INVALID_FROM);
    CHECK(CLIENT_RULE("juliet@example.com/garden", NULL) == RULE_INVALID_FROM);
    CHECK(CLIENT_RULE("romeo@example.com", "juliet@example.com") == RULE_INVALID_FROM);
    CHECK(CLIENT_RULE("romeo@example.com/balcony", NULL) == RULE_INVALID_FROM);
    CHECK(CLIENT_RULE("example.com", NULL) == RULE_INVALID_FROM);
    CHECK(CLIENT_RULE("juliet@example.co", NULL) == RULE_INVALID_FROM);
    CHECK(CLIENT_RULE("juliet@example.comm", NULL) == RULE_INVALID_FROM);
    CHECK(CLIENT_RULE("@@bad", NULL) == RULE_INVALID_FROM);
    CHECK(CLIENT_RULE("", NULL) == RULE_INVALID_FROM);
    /* The client may address anyone, remote domains included. */
    CHECK(CLIENT_RULE(NULL, "someone@elsewhere.example") == RULE_STAMP);
    CHECK(router_rule(ROUTE_CLIENT, NULL, "a@example.com", NULL, ours) == RULE_INVALID_FROM);
}

static void test_component(void)
{
    /* XEP-0114: its domain, JIDs at it, and subdomains of it. */
    CHECK(COMP_RULE("bots.example.com", "juliet@example.com") == RULE_OK);
    CHECK(COMP_RULE("echo@bots.example.com/x", "juliet@example.com") == RULE_OK);
    CHECK(COMP_RULE("irc.bots.example.com", "juliet@example.com") == RULE_OK);
    CHECK(COMP_RULE("chan@irc.bots.example.com", "a@remote.example") == RULE_OK);
    CHECK(COMP_RULE("juliet@example.com", "romeo@example.com") == RULE_INVALID_FROM);
    CHECK(COMP_RULE("example.com", "romeo@example.com") == RULE_INVALID_FROM);
    CHECK(COMP_RULE("xbots.example.com", "romeo@example.com") == RULE_INVALID_FROM);
    CHECK(COMP_RULE("bots.example.com.evil", "romeo@example.com") == RULE_INVALID_FROM);
    CHECK(COMP_RULE(NULL, "romeo@example.com") == RULE_INVALID_FROM);
    CHECK(COMP_RULE("@@bad", "romeo@example.com") == RULE_INVALID_FROM);
    CHECK(COMP_RULE("echo@bots.example.com", NULL) == RULE_IMPROPER_ADDRESSING);
}

static void test_peer(void)
{
    /* RFC 6120 §8.1.2.2: from its authenticated domain only, to our
     * domains only (no relaying), both addresses required (§4.9.3.7). */
    CHECK(PEER_RULE("romeo@remote.example/phone", "juliet@example.com") == RULE_OK);
    CHECK(PEER_RULE("remote.example", "example.com") == RULE_OK);
    CHECK(PEER_RULE("romeo@remote.example", "room@rooms.example.com") == RULE_OK);
    CHECK(PEER_RULE("romeo@remote.example", "bot@bots.example.com") == RULE_OK);
    CHECK(PEER_RULE("romeo@other.example", "juliet@example.com") == RULE_INVALID_FROM);
    CHECK(PEER_RULE("romeo@sub.remote.example", "juliet@example.com") == RULE_INVALID_FROM);
    CHECK(PEER_RULE("juliet@example.com", "romeo@example.com") == RULE_INVALID_FROM);
    CHECK(PEER_RULE("romeo@remote.example", "someone@third.example") == RULE_HOST_UNKNOWN);
    CHECK(PEER_RULE("romeo@remote.example", "remote.example") == RULE_HOST_UNKNOWN);
    CHECK(PEER_RULE(NULL, "juliet@example.com") == RULE_IMPROPER_ADDRESSING);
    CHECK(PEER_RULE("romeo@remote.example", NULL) == RULE_IMPROPER_ADDRESSING);
    CHECK(PEER_RULE("@@bad", "juliet@example.com") == RULE_IMPROPER_ADDRESSING);
    CHECK(PEER_RULE("romeo@remote.example", "@@bad") == RULE_IMPROPER_ADDRESSING);
    CHECK(router_rule(ROUTE_PEER, "remote.example", "romeo@remote.example", "juliet@example.com",
                      NULL) == RULE_HOST_UNKNOWN);
}

static void test_internal(void)
{
    CHECK(router_rule(ROUTE_INTERNAL, NULL, "example.com", "juliet@example.com", ours) == RULE_OK);
    CHECK(router_rule(ROUTE_INTERNAL, NULL, "anyone@anywhere.example", "x@remote.example", ours) ==
          RULE_OK);
    CHECK(router_rule(ROUTE_INTERNAL, NULL, NULL, "juliet@example.com", ours) == RULE_DROP);
}

static void test_conditions(void)
{
    CHECK_STR(router_rule_condition(RULE_INVALID_FROM), "invalid-from");
    CHECK_STR(router_rule_condition(RULE_IMPROPER_ADDRESSING), "improper-addressing");
    CHECK_STR(router_rule_condition(RULE_HOST_UNKNOWN), "host-unknown");
    CHECK(router_rule_condition(RULE_OK) == NULL);
    CHECK(router_rule_condition(RULE_STAMP) == NULL);
    CHECK(router_rule_condition(RULE_DROP) == NULL);
}

int main(void)
{
    test_client();
    test_component();
    test_peer();
    test_internal();
    test_conditions();
    return check_summary();
}
