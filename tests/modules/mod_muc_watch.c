/*
 * mod_muc_watch.c — a module built only for the tests (never installed),
 * loaded on a group chat service domain beside mod_muc: it watches the
 * rooms' groupchat messages through the "muc" service (modules/muc_api.h)
 * and adds <stanza-id xmlns='urn:xmpp:sid:0' id='watch-N' by='ROOM'/> to
 * each, so that tests/integration/test_muc.py can check that what a
 * watcher adds reaches every occupant and the history, the way an archive
 * of rooms will add its ids.
 */
#include <stdio.h>
#include <tern/module.h>

#include "../../modules/muc_api.h"

static unsigned long counter;

static void on_groupchat(tern_module_ctx_t *m, const char *room, const char *nick, const char *real,
                         tern_xml_t *msg, void *arg)
{
    (void)m;
    (void)nick;
    (void)real;
    (void)arg;
    char id[32];
    snprintf(id, sizeof(id), "watch-%lu", ++counter);
    tern_xml_t *sid = tern_xml_add_child(msg, "stanza-id", "urn:xmpp:sid:0");
    if (sid) {
        tern_xml_set_attr(sid, "id", id);
        tern_xml_set_attr(sid, "by", room);
    }
}

/* The table is asked for after load: modules load in any order. */
static void attach(tern_module_ctx_t *m, void *arg)
{
    (void)arg;
    const tern_muc_api_t *muc = tern_require(m, TERN_MUC_SERVICE);
    if (!muc || muc->abi != TERN_MUC_ABI || muc->watch(muc, m, on_groupchat, NULL) != 0)
        tern_log(m, TERN_LOG_ERROR, "muc_watch: no muc service to watch");
}

static int load(tern_module_ctx_t *m)
{
    return tern_timer_add(m, 0, 0, attach, NULL) ? 0 : -1;
}

static void unload(tern_module_ctx_t *m)
{
    const tern_muc_api_t *muc = tern_require(m, TERN_MUC_SERVICE);
    if (muc && muc->abi == TERN_MUC_ABI)
        muc->unwatch(muc, m);
}

static const char *const depends[] = {"muc", NULL};

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "muc_watch",
    .description = "test only: adds a stanza-id to group chat messages through the muc service",
    .depends = depends,
    .load = load,
    .unload = unload,
};
