/*
 * mod_oldabi.c — a module built only for the tests (never installed): its
 * descriptor claims the module ABI before this one (2), as a module
 * built against an older server's headers would, so that ternd refuses
 * it with an error naming the module and both ABIs
 * (tests/integration/test_module_events.py).
 */
#include <tern/module.h>

static int load(tern_module_ctx_t *m)
{
    (void)m;
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI - 1,
    .name = "oldabi",
    .description = "test only: built for the previous module ABI",
    .load = load,
};
