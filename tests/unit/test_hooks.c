/*
 * test_hooks.c — event names of src/core/hooks.c.
 *
 * Every name a module of modules/ hooks (or the core fires) is valid;
 * typos and names the core never fires are not, so that tern_hook can
 * refuse them when a module loads instead of hooking an event that never
 * comes.
 */
#include "check.h"
#include "core/hooks.h"

/* The names hooked in modules/ and fired in src/, namespaces spelt out. */
static const char *const valid[] = {
    /* KIND/DEST */
    "message/host", "message/bare", "message/full", "message/self", "presence/host",
    "presence/bare", "presence/full", "presence/self", "iq/host", "iq/bare", "iq/full", "iq/self",
    /* pre-KIND/DEST */
    "pre-message/host", "pre-message/bare", "pre-message/full", "pre-message/self",
    "pre-presence/host", "pre-presence/bare", "pre-presence/full", "pre-presence/self",
    "pre-iq/host", "pre-iq/bare", "pre-iq/full", "pre-iq/self",
    /* in-KIND/DEST */
    "in-message/bare", "in-message/full", "in-presence/bare", "in-presence/full", "in-iq/bare",
    "in-iq/full",
    /* non-stanza events */
    "message/offline", "session/bound", "session/closed", "session/detached", "session/resumed",
    "session/idle", "user/created", "user/deleted", "server/started", "server/stopping",
    "stream-features/unauth", "stream-features/auth",
    /* iq payloads: mod_disco, mod_ping, mod_version, mod_time, mod_uptime */
    "iq-get/host/http://jabber.org/protocol/disco#info:query",
    "iq-get/host/http://jabber.org/protocol/disco#items:query",
    "iq-get/bare/http://jabber.org/protocol/disco#info:query",
    "iq-get/bare/http://jabber.org/protocol/disco#items:query", "iq-get/host/urn:xmpp:ping:ping",
    "iq-get/self/urn:xmpp:ping:ping", "iq-get/host/jabber:iq:version:query",
    "iq-get/host/urn:xmpp:time:time", "iq-get/host/jabber:iq:last:query",
    /* mod_roster */
    "iq-get/self/jabber:iq:roster:query", "iq-set/self/jabber:iq:roster:query",
    "iq-get/bare/jabber:iq:last:query",
    /* mod_register, mod_invites */
    "iq-get/host/jabber:iq:register:query", "iq-set/host/jabber:iq:register:query",
    "iq-get/self/jabber:iq:register:query", "iq-set/self/jabber:iq:register:query",
    "iq-get/unauth/jabber:iq:register:query", "iq-set/unauth/jabber:iq:register:query",
    "iq-set/unauth/urn:xmpp:pars:0:preauth",
    /* mod_vcard, mod_search */
    "iq-get/host/vcard-temp:vCard", "iq-set/host/vcard-temp:vCard", "iq-get/self/vcard-temp:vCard",
    "iq-set/self/vcard-temp:vCard", "iq-get/bare/vcard-temp:vCard", "iq-set/bare/vcard-temp:vCard",
    "iq-get/host/jabber:iq:search:query", "iq-set/host/jabber:iq:search:query",
    /* mod_private, mod_bookmarks */
    "iq-get/self/jabber:iq:private:query", "iq-set/self/jabber:iq:private:query",
    "iq-get/bare/jabber:iq:private:query", "iq-set/bare/jabber:iq:private:query",
    /* mod_carbons, mod_blocking */
    "iq-set/self/urn:xmpp:carbons:2:enable", "iq-set/self/urn:xmpp:carbons:2:disable",
    "iq-get/self/urn:xmpp:blocking:blocklist", "iq-set/self/urn:xmpp:blocking:block",
    "iq-set/self/urn:xmpp:blocking:unblock",
    /* mod_mam */
    "iq-set/self/urn:xmpp:mam:2:query", "iq-get/self/urn:xmpp:mam:2:query",
    "iq-get/self/urn:xmpp:mam:2:metadata", "iq-set/host/urn:xmpp:mam:2:query",
    "iq-get/host/urn:xmpp:mam:2:query", "iq-get/host/urn:xmpp:mam:2:metadata",
    "iq-get/self/urn:xmpp:mam:2:prefs", "iq-set/self/urn:xmpp:mam:2:prefs",
    "iq-set/bare/urn:xmpp:mam:2:query", "iq-get/bare/urn:xmpp:mam:2:query",
    "iq-get/bare/urn:xmpp:mam:2:metadata", "iq-get/bare/urn:xmpp:mam:2:prefs",
    "iq-set/bare/urn:xmpp:mam:2:prefs",
    /* mod_pep */
    "iq-set/self/http://jabber.org/protocol/pubsub:pubsub",
    "iq-set/bare/http://jabber.org/protocol/pubsub:pubsub",
    "iq-get/self/http://jabber.org/protocol/pubsub:pubsub",
    "iq-get/bare/http://jabber.org/protocol/pubsub:pubsub",
    "iq-set/self/http://jabber.org/protocol/pubsub#owner:pubsub",
    "iq-get/bare/http://jabber.org/protocol/pubsub#owner:pubsub",
    "iq-get/self/http://jabber.org/protocol/disco#info:query",
    "iq-get/self/http://jabber.org/protocol/disco#items:query",
    /* one-letter parts are enough */
    "iq-get/full/a:b", NULL};

static const char *const invalid[] = {
    /* typos */
    "mesage/bare", "message/bar", "Message/bare", "message/bare ", "message//bare", "presense/full",
    "pre-mesage/full", "pre_message/full", "in-message/hst", "iq-gte/host/a:b",
    "iq-get/hots/urn:xmpp:ping:ping", "session/bind", "session/close", "user/create",
    "server/start", "stream-features/authed", "message/ofline", "stream-feature/auth",
    /* names the core never fires */
    "", "message", "message/", "/bare", "bare", "message/bare/x", "in-message/host",
    "in-message/self", "in-iq/host", "pre-/bare", "in-/bare", "pre-pre-message/bare",
    "pre-in-message/bare", "pre-message/offline", "in-message/offline", "pre-session/bound",
    "session/started", "presence/offline", "iq-get/host", "iq-get/host/", "iq-result/host/a:b",
    "iq-error/host/a:b", "iq-get/unauth", "pre-iq-get/host/a:b", "in-iq-get/bare/a:b",
    "message/unauth", "pre-message/unauth", "iq-get//a:b", "iq-get/host/a:b:",
    /* NS:NAME: both parts, no space, no '/' in NAME */
    "iq-get/host/ping", "iq-get/host/:ping", "iq-get/host/urn:xmpp:ping:", "iq-get/host/a:b/c",
    "iq-get/host/urn:xmpp:ping ping", "iq-get/host/urn:xmpp:ping: ping",
    "iq-get/host/urn:xmpp:ping:ping\n", "iq-get/host/urn:xmpp\tping:ping", NULL};

static void test_valid_names(void)
{
    for (size_t i = 0; valid[i]; i++) {
        int ok = hooks_event_valid(valid[i]);
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  refused: \"%s\"\n", valid[i]);
    }
}

static void test_invalid_names(void)
{
    for (size_t i = 0; invalid[i]; i++) {
        int ok = hooks_event_valid(invalid[i]);
        CHECK(!ok);
        if (ok)
            fprintf(stderr, "  accepted: \"%s\"\n", invalid[i]);
    }
    CHECK(!hooks_event_valid(NULL));
}

int main(void)
{
    test_valid_names();
    test_invalid_names();
    return check_summary();
}
