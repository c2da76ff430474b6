/*
 * api.c — the "pep" service (modules/pep_api.h): other modules act on a
 * user's nodes as the account owner would, through the same code paths as
 * the iq protocol (storage, notifications, observers).
 */
#include <stdlib.h>
#include <string.h>

#include "pep.h"

static pep_state_t *state_for(tern_module_ctx_t *caller)
{
    return caller != NULL ? pep_state_of_host(tern_host(caller)) : NULL;
}

static int api_node_config(tern_module_ctx_t *caller, const char *user, const char *node,
                           tern_pep_config_t *cfg)
{
    pep_state_t *st = state_for(caller);
    pep_node_t *n = NULL;
    int rc = st != NULL ? pep_node_load(st, user, node, &n) : -1;
    if (rc == 1 && cfg != NULL)
        *cfg = n->cfg;
    pep_node_free(&n);
    return rc;
}

static int api_items(tern_module_ctx_t *caller, const char *user, const char *node, unsigned max,
                     tern_pep_item_fn fn, void *ctx)
{
    pep_state_t *st = state_for(caller);
    pep_node_t *n = NULL;
    int rc = st != NULL ? pep_node_load(st, user, node, &n) : -1;
    if (rc <= 0)
        return rc;
    size_t count = pep_item_count(n), skip = max > 0 && max < count ? count - max : 0;
    int passed = 0;
    for (tern_xml_t *it = tern_xml_first_element(n->doc); it != NULL;
         it = tern_xml_next_element(it)) {
        if (!tern_xml_is(it, "item", NS_PEP_STORE))
            continue;
        if (skip > 0) {
            skip--;
            continue;
        }
        passed++;
        if (fn(ctx, tern_xml_attr(it, "id"), tern_xml_first_element(it)) != 0)
            break;
    }
    pep_node_free(&n);
    return passed;
}

static int api_publish(tern_module_ctx_t *caller, const char *user, const char *node,
                       const char *id, const tern_xml_t *payload, const tern_pep_config_t *options,
                       const char **error_r)
{
    pep_state_t *st = state_for(caller);
    const char *err = "internal-server-error";
    if (st != NULL && (payload == NULL || payload->name == NULL))
        err = "bad-request";
    else if (st != NULL) {
        tern_pep_config_t opts;
        if (options != NULL) {
            opts = *options;
            if (opts.max_items < 1 || opts.max_items > st->max_items_limit)
                opts.max_items = st->max_items_limit;
        }
        err = pep_publish(st, caller, user, node, id, payload, options != NULL ? &opts : NULL,
                          PEP_F_ACCESS | PEP_F_PERSIST | PEP_F_MAX | PEP_F_SEND_LAST |
                              PEP_F_NOTIFY_RETRACT,
                          NULL, NULL);
    }
    if (err != NULL && error_r != NULL)
        *error_r = err;
    return err != NULL ? -1 : 0;
}

static int api_retract(tern_module_ctx_t *caller, const char *user, const char *node,
                       const char *id, int notify)
{
    pep_state_t *st = state_for(caller);
    return st != NULL ? pep_retract(st, caller, user, node, id, notify) : -1;
}

static int api_delete(tern_module_ctx_t *caller, const char *user, const char *node)
{
    pep_state_t *st = state_for(caller);
    return st != NULL ? pep_delete(st, caller, user, node) : -1;
}

static int api_observe(tern_module_ctx_t *observer, const char *node, tern_pep_observer_fn fn,
                       void *arg)
{
    pep_state_t *st = state_for(observer);
    pep_observer_t *o = st != NULL && fn != NULL ? calloc(1, sizeof *o) : NULL;
    if (o == NULL)
        return -1;
    if (node != NULL && (o->node = strdup(node)) == NULL) {
        free(o);
        return -1;
    }
    o->owner = observer;
    o->fn = fn;
    o->arg = arg;
    pep_observer_t **tail = &st->observers;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = o;
    return 0;
}

static void api_unobserve(tern_module_ctx_t *observer)
{
    pep_state_t *st = state_for(observer);
    pep_observer_t **p = st != NULL ? &st->observers : NULL;
    while (p != NULL && *p != NULL) {
        if ((*p)->owner == observer) {
            pep_observer_t *dead = *p;
            *p = dead->next;
            free(dead->node);
            free(dead);
        } else {
            p = &(*p)->next;
        }
    }
}

const tern_pep_api_t pep_api = {
    .abi = TERN_PEP_ABI,
    .node_config = api_node_config,
    .items = api_items,
    .publish = api_publish,
    .retract = api_retract,
    .delete_node = api_delete,
    .observe = api_observe,
    .unobserve = api_unobserve,
};
