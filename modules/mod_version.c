/*
 * mod_version — XEP-0092 Software Version of the server.
 *
 * Owns the answer to jabber:iq:version addressed to the host: name "Tern",
 * the server version, and the operating system unless `hide_os` is set
 * (XEP-0092 §5: an administrator must be able to withhold it).  Versions of
 * clients are their own business: iqs to user JIDs are not handled here.
 */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <tern/module.h>

#define NS_VERSION "jabber:iq:version"

static const tern_option_t options[] = {
    {.name = "hide_os",
     .type = TERN_OPT_BOOL,
     .def = "false",
     .doc = "Leave the operating system out of the version answer."},
    {.name = NULL},
};

/* Append <name>text</name> to `parent`; 0, or -1 when out of memory. */
static int add_text_child(tern_xml_t *parent, const char *name, const char *text)
{
    tern_xml_t *child = tern_xml_add_child(parent, name, NULL);
    if (child == NULL)
        return -1;
    tern_xml_add_text(child, text, strlen(text));
    return 0;
}

/* XEP-0092 §2: <query><name/><version/><os/></query>, os optional. */
static int on_version(tern_module_ctx_t *m, tern_event_t *ev)
{
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *query = reply != NULL ? tern_xml_add_child(reply, "query", NS_VERSION) : NULL;
    int ok = query != NULL && add_text_child(query, "name", "Tern") == 0 &&
             add_text_child(query, "version", tern_server_version()) == 0;
    struct utsname u;
    if (ok && !tern_opt_int(m, "hide_os") && uname(&u) == 0) {
        char os[sizeof u.sysname + sizeof u.release + 1];
        snprintf(os, sizeof os, "%s %s", u.sysname, u.release);
        ok = add_text_child(query, "os", os) == 0;
    }
    return tern_iq_answer(m, ev, reply, ok);
}

static int load(tern_module_ctx_t *m)
{
    tern_add_feature(m, NS_VERSION);
    return tern_hook(m, "iq-get/host/" NS_VERSION ":query", on_version, 0) != 0 ? -1 : 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "version",
    .description = "Software version of the server (XEP-0092)",
    .options = options,
    .load = load,
};
