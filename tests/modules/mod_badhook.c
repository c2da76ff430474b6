/*
 * mod_badhook.c — a module built only for the tests (never installed): it
 * hooks "mesage/bare", a misspelt event the core never fires, so that its
 * load fails and ternd refuses to start (or to reload) with an error
 * naming the module, the host and the event (tests/integration/
 * test_module_events.py).
 */
#include <tern/module.h>

static int on_message(tern_module_ctx_t *m, tern_event_t *ev)
{
    (void)m;
    (void)ev;
    return TERN_PASS;
}

static int load(tern_module_ctx_t *m)
{
    return tern_hook(m, "mesage/bare", on_message, 0);
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "badhook",
    .description = "test only: hooks a misspelt event",
    .load = load,
};
