/*
 * mod_uptime — XEP-0012 Last Activity of the server: its uptime.
 *
 * Owns the answer to jabber:iq:last addressed to the host (XEP-0012 §5):
 * the whole seconds since the server started.  The last activity of
 * accounts and resources (§3, §4) belongs to another module; iqs to user
 * JIDs are not handled here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>
#include <tern/module.h>

#define NS_LAST "jabber:iq:last"

/* XEP-0012 §5: <query seconds='UPTIME'/>, with no character data. */
static int on_last(tern_module_ctx_t *m, tern_event_t *ev)
{
    struct timespec ts;
    int64_t up_s = 0;
    char seconds[24];
    /* Wall clock, as tern_server_started_us() is; never negative if it steps back. */
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0) {
        int64_t now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
        int64_t up_us = now_us - tern_server_started_us();
        up_s = up_us > 0 ? up_us / 1000000 : 0;
    }
    snprintf(seconds, sizeof seconds, "%" PRId64, up_s);

    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *query = reply != NULL ? tern_xml_add_child(reply, "query", NS_LAST) : NULL;
    if (query != NULL)
        tern_xml_set_attr(query, "seconds", seconds);
    return tern_iq_answer(m, ev, reply, query != NULL);
}

static int load(tern_module_ctx_t *m)
{
    tern_add_feature(m, NS_LAST);
    return tern_hook(m, "iq-get/host/" NS_LAST ":query", on_last, 0) != 0 ? -1 : 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "uptime",
    .description = "Uptime of the server as its last activity (XEP-0012)",
    .load = load,
};
