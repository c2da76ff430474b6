/*
 * mod_mam — XEP-0313 Message Archive Management for the accounts of a host.
 *
 * Owns each user's message archive: what goes in (archive.c, with the
 * XEP-0359 stanza-id given to the recipient), how it is queried with
 * XEP-0059 paging (query.c), the XEP-0441 preferences (prefs.c) and the
 * retention limit (here).  It never delivers or stores messages for
 * delivery: every message hook passes, and the core or mod_offline
 * delivers.
 *
 * Advertised on the accounts' bare JIDs (XEP-0313 §7): urn:xmpp:mam:2,
 * urn:xmpp:mam:2#extended and urn:xmpp:sid:0.  urn:xmpp:mam:2 is also
 * advertised on the host's domain, where queries read the sender's own
 * archive: some clients (profanity) look for MAM there only, as ejabberd
 * offers it.
 */
#include <stdlib.h>
#include <string.h>

#include "mam.h"

static const tern_option_t options[] = {
    {.name = "default_page",
     .type = TERN_OPT_INT,
     .def = "50",
     .doc = "Results per page when a query has no RSM `<max/>`; not more than "
            "`max_page`.",
     .min = 1,
     .max = 10000},
    {.name = "max_page",
     .type = TERN_OPT_INT,
     .def = "250",
     .doc = "The most results one page returns, whatever `<max/>` asks. Also the most "
            "ids one `ids` field may name.",
     .min = 1,
     .max = 10000},
    {.name = "max_count",
     .type = TERN_OPT_INT,
     .def = "100000",
     .doc = "Result sets are counted up to this many items; bigger ones get no `<count/>` and no "
            "`index` (XEP-0059 §2.2 allows it).",
     .min = 1,
     .max = 100000000},
    {.name = "default_policy",
     .type = TERN_OPT_STRING,
     .def = "always",
     .doc = "What users who set no preferences archive: `always`, `never` or `roster`. Anything "
            "else refuses to load."},
    {.name = "expire_after",
     .type = TERN_OPT_DURATION,
     .def = "0",
     .doc = "Delete archived messages older than this; `0` keeps them forever."},
    {.name = "expire_interval",
     .type = TERN_OPT_DURATION,
     .def = "1h",
     .doc = "How often old messages are deleted when `expire_after` is set (more than 0)."},
    {.name = "max_items",
     .type = TERN_OPT_INT,
     .def = "0",
     .doc = "The most messages one user's archive keeps; past it the oldest go. `0`: no limit.",
     .min = 0,
     .max = 1000000000},
    {.name = NULL},
};

/* One batch of a round of expiry: the oldest MAM_EXPIRE_BATCH items
 * before the round's cut-off.  A full batch means more may be left: the
 * next runs MAM_EXPIRE_PAUSE ms later, so that the loop serves everyone
 * else in between (one DELETE of a year of messages took seconds). */
static void expire_batch(tern_module_ctx_t *m, void *arg)
{
    (void)arg;
    mam_state_t *st = tern_get_data(m);
    if (st == NULL)
        return;
    long n = tern_archive_expire_some(st->archive, st->expire_before_us, MAM_EXPIRE_BATCH);
    if (n > 0)
        st->expired += n;
    if (n == MAM_EXPIRE_BATCH) {
        if (st->expiring == NULL &&
            (st->expiring = tern_timer_add(m, MAM_EXPIRE_PAUSE, 1, expire_batch, NULL)) == NULL)
            tern_log(m, TERN_LOG_WARN, "could not schedule the rest of the expiry");
        return;
    }
    if (n < 0)
        tern_log(m, TERN_LOG_WARN, "could not expire old archived messages");
    if (st->expired > 0)
        tern_log(m, TERN_LOG_DEBUG, "expired %ld archived messages", st->expired);
    tern_timer_cancel(&st->expiring); /* the round is over */
}

/* Delete what is older than expire_after, for every user of the host
 * (XEP-0313 §3.2: only the oldest messages go, so no gaps appear), in
 * batches.  A round still going on when the next is due just goes on. */
static void on_expire(tern_module_ctx_t *m, void *arg)
{
    (void)arg;
    mam_state_t *st = tern_get_data(m);
    if (st == NULL || st->expire_after_us <= 0 || st->expiring != NULL)
        return;
    st->expire_before_us = tern_now_us() - st->expire_after_us;
    st->expired = 0;
    expire_batch(m, NULL);
}

/* "user/deleted": the storage is gone, so is what we kept of it. */
static int on_user_deleted(tern_module_ctx_t *m, tern_event_t *ev)
{
    mam_state_t *st = tern_get_data(m);
    if (ev->user != NULL)
        mam_prefs_forget(m, ev->user);
    if (ev->user != NULL && st != NULL)
        mam_quota_forget(st, ev->user);
    return TERN_PASS;
}

static int hook_all(tern_module_ctx_t *m)
{
    static const struct {
        const char *event;
        tern_handler_fn fn;
        int priority;
    } hooks[] = {
        {"pre-message/bare", mam_on_outgoing, 100},
        {"pre-message/full", mam_on_outgoing, 100},
        {"message/bare", mam_on_incoming, 100},
        {"message/full", mam_on_incoming, 100},
        {"iq-set/self/" NS_MAM ":query", mam_on_query, 0},
        {"iq-get/self/" NS_MAM ":query", mam_on_form, 0},
        {"iq-get/self/" NS_MAM ":metadata", mam_on_metadata, 0},
        {"iq-set/host/" NS_MAM ":query", mam_on_host_query, 0},
        {"iq-get/host/" NS_MAM ":query", mam_on_host_form, 0},
        {"iq-get/host/" NS_MAM ":metadata", mam_on_host_metadata, 0},
        {"iq-get/self/" NS_MAM ":prefs", mam_on_prefs_get, 0},
        {"iq-set/self/" NS_MAM ":prefs", mam_on_prefs_set, 0},
        {"iq-set/bare/" NS_MAM ":query", mam_on_foreign, 0},
        {"iq-get/bare/" NS_MAM ":query", mam_on_foreign, 0},
        {"iq-get/bare/" NS_MAM ":metadata", mam_on_foreign, 0},
        {"iq-get/bare/" NS_MAM ":prefs", mam_on_foreign, 0},
        {"iq-set/bare/" NS_MAM ":prefs", mam_on_foreign, 0},
        {"user/deleted", on_user_deleted, 0},
    };
    for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++)
        if (tern_hook(m, hooks[i].event, hooks[i].fn, hooks[i].priority) != 0)
            return -1;
    return 0;
}

/* Read and check the options into `st`; 0, or -1 (logged). */
static int read_options(tern_module_ctx_t *m, mam_state_t *st)
{
    st->default_page = (unsigned)tern_opt_int(m, "default_page");
    st->max_page = (unsigned)tern_opt_int(m, "max_page");
    st->max_count = (long)tern_opt_int(m, "max_count");
    if (st->default_page > st->max_page) {
        tern_log(m, TERN_LOG_ERROR, "default_page (%u) must not exceed max_page (%u)",
                 st->default_page, st->max_page);
        return -1;
    }
    const char *policy = tern_opt_str(m, "default_policy");
    if (mam_policy_parse(policy, &st->default_policy) < 0) {
        tern_log(m, TERN_LOG_ERROR, "default_policy must be always, never or roster, not \"%s\"",
                 policy != NULL ? policy : "");
        return -1;
    }
    long long expire_ms = tern_opt_int(m, "expire_after");
    if (expire_ms < 0) {
        tern_log(m, TERN_LOG_ERROR, "expire_after must not be negative");
        return -1;
    }
    st->expire_after_us = (int64_t)expire_ms * 1000;
    st->max_items = (long)tern_opt_int(m, "max_items");
    if (expire_ms > 0 && tern_opt_int(m, "expire_interval") <= 0) {
        tern_log(m, TERN_LOG_ERROR, "expire_interval must be more than 0");
        return -1;
    }
    return 0;
}

static int load(tern_module_ctx_t *m)
{
    mam_state_t *st = calloc(1, sizeof *st);
    if (st == NULL) {
        tern_log(m, TERN_LOG_ERROR, "out of memory");
        return -1;
    }
    if (read_options(m, st) < 0)
        goto fail;
    st->archive = tern_store(m, MAM_ARCHIVE_STORE, TERN_STORE_ARCHIVE);
    st->prefs = tern_store(m, MAM_PREFS_STORE, TERN_STORE_KV);
    if (st->archive == NULL || st->prefs == NULL) {
        tern_log(m, TERN_LOG_ERROR, "no storage for the archive");
        goto fail;
    }
    if (hook_all(m) < 0)
        goto fail;
    tern_add_account_feature(m, NS_MAM);
    tern_add_account_feature(m, NS_MAM_EXT);
    tern_add_account_feature(m, NS_SID);
    st->expire_interval = tern_opt_int(m, "expire_interval");
    tern_add_feature(m, NS_MAM); /* on the domain, for clients that look there */
    if (st->expire_after_us > 0 &&
        (st->expire_timer = tern_timer_add(m, st->expire_interval, 1, on_expire, NULL)) == NULL) {
        tern_log(m, TERN_LOG_ERROR, "could not start the expiry timer");
        goto fail;
    }
    tern_set_data(m, st);
    on_expire(m, NULL); /* at once, then every expire_interval */
    return 0;
fail:
    free(st);
    return -1;
}

static void unload(tern_module_ctx_t *m)
{
    mam_prefs_forget(m, NULL);
    mam_state_t *st = tern_get_data(m);
    if (st != NULL)
        mam_quota_forget(st, NULL);
    free(st);
    tern_set_data(m, NULL);
}

/* A reload changed the options: checked as in load(), then the paging and
 * policy apply to the next requests and the expiry timer follows the new
 * expire_after and expire_interval. */
static int reconfigure(tern_module_ctx_t *m)
{
    mam_state_t *st = tern_get_data(m);
    mam_state_t next = *st;
    if (read_options(m, &next) < 0)
        return -1;
    long long interval = tern_opt_int(m, "expire_interval");
    int want_timer = next.expire_after_us > 0;
    if (want_timer && (st->expire_timer == NULL || interval != st->expire_interval)) {
        tern_timer_t *t = tern_timer_add(m, interval, 1, on_expire, NULL);
        if (t == NULL) {
            tern_log(m, TERN_LOG_ERROR, "could not start the expiry timer");
            return -1;
        }
        tern_timer_cancel(&st->expire_timer);
        next.expire_timer = t;
    } else if (!want_timer) {
        tern_timer_cancel(&st->expire_timer);
        next.expire_timer = NULL;
    }
    next.expire_interval = interval;
    *st = next;
    if (want_timer)
        on_expire(m, NULL);
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "mam",
    .description = "Message Archive Management with stanza-ids (XEP-0313, XEP-0359, XEP-0441)",
    .options = options,
    .load = load,
    .unload = unload,
    .reconfigure = reconfigure,
};
