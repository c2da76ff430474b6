/*
 * mod_echo_service.c — a module built only for the tests (never installed),
 * loaded on a service domain (`services:` in the configuration): a message
 * to the domain or to any JID at it comes back to its sender as
 * "echo: BODY", from the address it was sent to.  It advertises the disco
 * identity component/generic and the feature urn:tern:test:echo, so that
 * tests/integration/test_service_domains.py can check that stanzas reach
 * the modules of a service domain and that its disco lists what they add.
 */
#include <string.h>
#include <tern/module.h>

#define NS_ECHO "urn:tern:test:echo"

static int on_message(tern_module_ctx_t *m, tern_event_t *ev)
{
    const char *type = tern_xml_attr(ev->stanza, "type");
    if (type && strcmp(type, "error") == 0)
        return TERN_HANDLED; /* never answer an error */
    tern_xml_t *body = tern_xml_child(ev->stanza, "body", TERN_NS_CLIENT);
    const char *text = body ? tern_xml_text(body) : NULL;
    tern_xml_t *reply = tern_xml_new("message", TERN_NS_CLIENT);
    if (!reply)
        return TERN_HANDLED;
    tern_xml_set_attr(reply, "type", type ? type : "normal");
    tern_xml_set_attr(reply, "to", ev->from->full);
    tern_xml_set_attr(reply, "from", ev->to->full);
    tern_xml_t *b = tern_xml_add_child(reply, "body", NULL);
    if (b) {
        tern_xml_add_text(b, "echo: ", 6);
        if (text)
            tern_xml_add_text(b, text, strlen(text));
    }
    tern_route(m, reply);
    tern_xml_unref(reply);
    return TERN_HANDLED;
}

static int load(tern_module_ctx_t *m)
{
    tern_add_identity(m, "component", "generic", "Echo");
    tern_add_feature(m, NS_ECHO);
    if (tern_hook(m, "message/host", on_message, 0) != 0 ||
        tern_hook(m, "message/bare", on_message, 0) != 0 ||
        tern_hook(m, "message/full", on_message, 0) != 0)
        return -1;
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "echo_service",
    .description = "test only: echoes messages sent to its service domain",
    .load = load,
};
