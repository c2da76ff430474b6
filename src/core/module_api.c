/*
 * module_api.c — what modules call: hooks, disco, options, sending,
 * tracked iqs, timers, storage, logging.  Everything a module registers is
 * tied to its context and released by module_unload().
 */
#include "autoconfig.h"

#include "core/module_api.h"

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "util/hashmap.h"
#include "util/log.h"
#include "core/account_jobs.h"
#include "core/store_jobs.h"
#include "store/accounts.h"
#include "store/account_names.h"
#include "core/modules.h"
#include "core/server.h"
#include "route/router.h"
#include "route/directory.h"
#include "route/domains.h"
#include "route/sessions.h"
#include "stream/c2s.h"
#include "xml/xml_stream.h"
#include "xmpp/stanza.h"

#include <tern/base64.h>
#include <tern/strlist.h>

/* Public helpers that only modules call.  The core is a static library
 * (libterncore), so the linker leaves out of ternd any of its files that
 * nothing in ternd refers to: this table refers to them so that modules
 * find them.  Add here every public function no core code calls. */
__attribute__((used)) static void (*const module_only_api[])(void) = {
    (void (*)(void))tern_base64_encode, (void (*)(void))tern_base64_decode,
    (void (*)(void))tern_strlist_add,   (void (*)(void))tern_strlist_add_unique,
    (void (*)(void))tern_strlist_has,   (void (*)(void))tern_strlist_remove,
    (void (*)(void))tern_strlist_sort,  (void (*)(void))tern_strlist_clear,
};

/* Timers and pending iqs are on doubly linked lists, so that cancelling
 * or answering one costs the same however many there are (the ping
 * module keeps one pending iq per idle session); only a module's unload
 * walks them. */
struct tern_timer {
    struct tern_timer *prev, *next; /* all timers */
    tern_module_ctx_t *owner;
    struct event *ev;
    tern_timer_cb cb;
    void *arg;
    int repeat;
};

typedef struct pending_iq {
    struct pending_iq *prev, *next; /* all pending, for release */
    char id[32];
    char *to; /* who must answer */
    tern_module_ctx_t *owner;
    tern_iq_cb cb;
    void *arg;
    struct event *timeout;
} pending_iq_t;

static tern_timer_t *timers;
static pending_iq_t *pendings;
static hashmap_t *pending_by_id;

void make_id(char *buf, size_t len)
{
    static unsigned long counter;
    unsigned char rnd[6];
    RAND_bytes(rnd, sizeof(rnd));
    snprintf(buf, len, "t%lx-%02x%02x%02x%02x%02x%02x", ++counter, rnd[0], rnd[1], rnd[2], rnd[3],
             rnd[4], rnd[5]);
}

int64_t tern_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

const char *tern_server_version(void)
{
    return PACKAGE_VERSION;
}

int64_t tern_server_started_us(void)
{
    return server.started_us;
}

/* Named counters of the modules (tern_counter_add), for `ternctl status`. */
#define MAX_COUNTERS 64
static struct {
    char *name;
    long long value;
} counters[MAX_COUNTERS];
static size_t n_counters;

void tern_counter_add(tern_module_ctx_t *m, const char *name, long long delta)
{
    (void)m;
    size_t i = 0;
    while (i < n_counters && strcmp(counters[i].name, name) != 0)
        i++;
    if (i == n_counters) {
        if (n_counters == MAX_COUNTERS || (counters[i].name = strdup(name)) == NULL)
            return;
        n_counters++;
    }
    counters[i].value += delta;
}

void module_counters_foreach(void (*fn)(void *ctx, const char *name, long long value), void *ctx)
{
    for (size_t i = 0; i < n_counters; i++)
        fn(ctx, counters[i].name, counters[i].value);
}

/* Hook fn on `event` for m's host.  A name the core never fires (a typo:
 * "mesage/bare") is refused with -1 and an error naming the module, the
 * host and the event, kept in m->error for the load failure to quote. */
int tern_hook(tern_module_ctx_t *m, const char *event, tern_handler_fn fn, int priority)
{
    if (!hooks_event_valid(event)) {
        snprintf(m->error, sizeof(m->error), "unknown event '%.100s'", event ? event : "(null)");
        log_error("module '%s' on host %s: %s", m->desc->name, m->host->name, m->error);
        return -1;
    }
    return hooks_add(m->host->hooks, event, fn, priority, m);
}

static disco_item_t *disco_add(tern_module_ctx_t *m)
{
    disco_item_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->owner = m;
    disco_item_t **tail = &m->host->disco;
    while (*tail)
        tail = &(*tail)->next;
    *tail = d;
    return d;
}

void tern_add_feature(tern_module_ctx_t *m, const char *var)
{
    disco_item_t *d = disco_add(m);
    if (d)
        d->feature = var;
}

void tern_add_identity(tern_module_ctx_t *m, const char *category, const char *type,
                       const char *name)
{
    disco_item_t *d = disco_add(m);
    if (d) {
        d->category = category;
        d->type = type;
        d->name = name;
    }
}

void tern_add_disco_extension(tern_module_ctx_t *m, const tern_xml_t *form)
{
    disco_item_t *d = disco_add(m);
    if (d)
        d->form = tern_xml_copy(form);
}

void tern_remove_disco_extensions(tern_module_ctx_t *m)
{
    disco_item_t **p = &m->host->disco;
    while (*p) {
        disco_item_t *d = *p;
        if (d->owner == m && d->form) {
            *p = d->next;
            tern_xml_unref(d->form);
            free(d);
        } else {
            p = &d->next;
        }
    }
}

static void add_identity(tern_xml_t *query, const char *category, const char *type,
                         const char *name)
{
    tern_xml_t *id = tern_xml_add_child(query, "identity", NULL);
    tern_xml_set_attr(id, "category", category);
    tern_xml_set_attr(id, "type", type);
    if (name)
        tern_xml_set_attr(id, "name", name);
}

/* Identities, features (each once) and forms of the host or of its accounts. */
static void fill(host_t *h, tern_xml_t *query, int account)
{
    for (disco_item_t *d = h->disco; d; d = d->next)
        if (d->category && d->account == account)
            add_identity(query, d->category, d->type, d->name);
    for (disco_item_t *d = h->disco; d; d = d->next) {
        if (!d->feature || d->account != account)
            continue;
        int seen = 0;
        for (disco_item_t *e = h->disco; e != d && !seen; e = e->next)
            seen = e->feature && e->account == account && strcmp(e->feature, d->feature) == 0;
        if (!seen)
            tern_xml_set_attr(tern_xml_add_child(query, "feature", NULL), "var", d->feature);
    }
    for (disco_item_t *d = h->disco; d; d = d->next)
        if (d->form && d->account == account)
            tern_xml_copy_into(query, d->form);
}

/* The host is an IM server whatever else its modules make it (a user
 * directory...): server/im comes first, then the modules' identities.  A
 * service domain is only what its modules say it is. */
void tern_disco_fill(tern_module_ctx_t *m, tern_xml_t *query)
{
    if (!m->host->is_service)
        add_identity(query, "server", "im", "Tern");
    fill(m->host, query, 0);
}

void tern_add_account_feature(tern_module_ctx_t *m, const char *var)
{
    disco_item_t *d = disco_add(m);
    if (d) {
        d->feature = var;
        d->account = 1;
    }
}

void tern_add_account_identity(tern_module_ctx_t *m, const char *category, const char *type,
                               const char *name)
{
    disco_item_t *d = disco_add(m);
    if (d) {
        d->category = category;
        d->type = type;
        d->name = name;
        d->account = 1;
    }
}

void tern_disco_fill_account(tern_module_ctx_t *m, tern_xml_t *query)
{
    add_identity(query, "account", "registered", NULL);
    fill(m->host, query, 1);
}

const char *tern_host(tern_module_ctx_t *m)
{
    return m->host->name;
}

void *tern_get_data(tern_module_ctx_t *m)
{
    return m->data;
}

void tern_set_data(tern_module_ctx_t *m, void *data)
{
    m->data = data;
}

static const cfg_value_t *opt(tern_module_ctx_t *m, const char *name)
{
    const cfg_value_t *v = cfg_values_get(&m->values, name);
    if (!v)
        log_error("module %s asked for undeclared option '%s'", m->desc->name, name);
    return v;
}

long long tern_opt_int(tern_module_ctx_t *m, const char *name)
{
    const cfg_value_t *v = opt(m, name);
    return v ? v->num : 0;
}

const char *tern_opt_str(tern_module_ctx_t *m, const char *name)
{
    const cfg_value_t *v = opt(m, name);
    return v && v->str ? v->str : "";
}

const char *const *tern_opt_list(tern_module_ctx_t *m, const char *name)
{
    static const char *const empty[] = {NULL};
    const cfg_value_t *v = opt(m, name);
    return v && v->list ? (const char *const *)v->list : empty;
}

/* A stanza without 'from' comes from the host.  The stanza is frozen by
 * routing; a frozen one without 'from' is routed as a stamped copy. */
void tern_route(tern_module_ctx_t *m, tern_xml_t *stanza)
{
    if (!stanza)
        return;
    if (tern_xml_attr(stanza, "from")) {
        tern_xml_freeze(stanza);
        router_route(stanza, NULL);
        return;
    }
    tern_xml_t *st = tern_xml_frozen(stanza) ? tern_xml_copy(stanza) : tern_xml_ref(stanza);
    if (!st)
        return;
    tern_xml_set_attr(st, "from", m->host->name);
    tern_xml_freeze(st);
    router_route(st, NULL);
    tern_xml_unref(st);
}

tern_xml_t *tern_event_edit(tern_event_t *ev)
{
    return router_event_edit(ev);
}

/* One template serialized once (without 'to'); per recipient a frozen
 * view with its own root and 'to' that shares the template's children
 * and its bytes after the start tag (no tree is copied), routed like
 * tern_route (filters and events run per recipient). */
void tern_route_fanout(tern_module_ctx_t *m, tern_xml_t *stanza, const char *const *to, size_t n)
{
    if (!stanza || n == 0)
        return;
    int stamp = !tern_xml_attr(stanza, "from") || tern_xml_attr(stanza, "to");
    tern_xml_t *tmpl = stamp ? tern_xml_copy(stanza) : tern_xml_ref(stanza);
    if (!tmpl)
        return;
    if (stamp) {
        tern_xml_del_attr(tmpl, "to");
        if (!tern_xml_attr(tmpl, "from"))
            tern_xml_set_attr(tmpl, "from", m->host->name);
    }
    tern_xml_freeze(tmpl);
    xml_bytes_t *rest = xml_serialize_rest(tmpl);
    for (size_t i = 0; i < n; i++) {
        if (!to[i])
            continue;
        tern_xml_t *c = xml_fanout_view(tmpl, to[i]);
        if (!c)
            break;
        if (rest)
            xml_rest_set(c, rest);
        router_route(c, NULL);
        tern_xml_unref(c);
    }
    xml_bytes_unref(rest);
    tern_xml_unref(tmpl);
}

tern_xml_t *tern_iq_result(const tern_event_t *ev)
{
    tern_xml_t *r = tern_xml_new("iq", TERN_NS_CLIENT);
    if (!r)
        return NULL;
    tern_xml_set_attr(r, "type", "result");
    const char *id = tern_xml_attr(ev->stanza, "id");
    tern_xml_set_attr(r, "id", id ? id : "");
    tern_xml_set_attr(r, "to", ev->from->full);
    tern_xml_set_attr(r, "from", ev->to->full);
    return r;
}

void tern_reply_error(tern_module_ctx_t *m, const tern_event_t *ev, const char *type,
                      const char *condition, const char *text)
{
    tern_xml_t *err = stanza_error_reply(ev->stanza, type, condition, text);
    if (!err)
        return;
    tern_xml_set_attr(err, "to", ev->from->full);
    tern_xml_set_attr(err, "from", ev->to->full);
    router_route(err, NULL);
    tern_xml_unref(err);
}

int tern_iq_answer(tern_module_ctx_t *m, const tern_event_t *ev, tern_xml_t *result, int complete)
{
    if (result && complete)
        tern_route(m, result);
    else
        tern_reply_error(m, ev, "wait", "resource-constraint", NULL); /* RFC 6120 §8.3.3.18 */
    if (result)
        tern_xml_unref(result);
    return TERN_HANDLED;
}

/* Unlink and free `p`, in constant time. */
static void pending_free(pending_iq_t *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        pendings = p->next;
    if (p->next)
        p->next->prev = p->prev;
    hashmap_remove(pending_by_id, p->id);
    event_free(p->timeout);
    free(p->to);
    free(p);
}

static void pending_timeout(evutil_socket_t fd, short what, void *arg)
{
    pending_iq_t *p = arg;
    tern_module_ctx_t *m = p->owner;
    tern_iq_cb cb = p->cb;
    void *cb_arg = p->arg;
    pending_free(p);
    cb(m, NULL, cb_arg);
}

int tern_send_iq(tern_module_ctx_t *m, tern_xml_t *iq, long long timeout_ms, tern_iq_cb cb,
                 void *arg)
{
    const char *to = tern_xml_attr(iq, "to");
    if (!to || !server.base)
        return -1;
    if (!pending_by_id && !(pending_by_id = hashmap_new()))
        return -1;
    pending_iq_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->to = strdup(to))) {
        free(p);
        return -1;
    }
    make_id(p->id, sizeof(p->id));
    p->owner = m;
    p->cb = cb;
    p->arg = arg;
    p->timeout = evtimer_new(server.base, pending_timeout, p);
    if (!p->timeout || hashmap_put(pending_by_id, p->id, p) < 0) {
        if (p->timeout)
            event_free(p->timeout);
        free(p->to);
        free(p);
        return -1;
    }
    p->prev = NULL;
    p->next = pendings;
    if (pendings)
        pendings->prev = p;
    pendings = p;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    evtimer_add(p->timeout, &tv);
    tern_xml_set_attr(iq, "id", p->id);
    tern_route(m, iq);
    return 0;
}

int module_api_iq_reply(host_t *h, tern_xml_t *iq, const tern_jid_t *from)
{
    const char *id = tern_xml_attr(iq, "id");
    pending_iq_t *p = id && pending_by_id ? hashmap_get(pending_by_id, id) : NULL;
    if (!p || p->owner->host != h)
        return 0;
    /* Only the entity we asked may answer (RFC 6120 §8.2.3). */
    tern_jid_t *asked = tern_jid_new(p->to, NULL);
    int same = asked && tern_jid_equal(asked, from);
    tern_jid_free(&asked);
    if (!same)
        return 0;
    tern_module_ctx_t *m = p->owner;
    tern_iq_cb cb = p->cb;
    void *arg = p->arg;
    pending_free(p);
    cb(m, iq, arg);
    return 1;
}

const tern_jid_t *tern_session_jid(const tern_session_t *s)
{
    return s->jid;
}

tern_session_t *tern_session_find(tern_module_ctx_t *m, const char *full_jid)
{
    dir_location_t loc;
    return directory_find_full(full_jid, &loc) == DIR_LOCAL ? loc.session : NULL;
}

uint64_t tern_session_serial(const tern_session_t *s)
{
    return s->serial;
}

void tern_session_close(tern_session_t *s, const char *stream_error)
{
    sessions_close(s, stream_error);
}

int tern_user_exists(tern_module_ctx_t *m, const char *local)
{
    return server.db && account_names_exists(server.db, m->host->name, local) == 1;
}

int tern_is_admin(tern_module_ctx_t *m, const char *bare_jid)
{
    (void)m;
    if (!bare_jid || !server.cfg || !server.cfg->admins)
        return 0;
    for (const char *const *a = server.cfg->admins; *a; a++)
        if (strcmp(*a, bare_jid) == 0)
            return 1;
    return 0;
}

int tern_is_local_host(tern_module_ctx_t *m, const char *domain)
{
    (void)m;
    return domain && domains_kind(domain) == DOMAIN_HOST;
}

tern_store_t *tern_store(tern_module_ctx_t *m, const char *name, tern_store_kind_t kind)
{
    return server.db ? store_get(server.db, m->host->name, name, (store_kind_t)kind) : NULL;
}

tern_session_t *tern_user_first_session(tern_module_ctx_t *m, const char *local)
{
    char bare[2048];
    snprintf(bare, sizeof(bare), "%s@%s", local, m->host->name);
    user_sessions_t *u = sessions_find_bare(bare);
    return u ? u->first : NULL;
}

tern_session_t *tern_session_next(const tern_session_t *s)
{
    return s->next_of_user;
}

int tern_session_available(const tern_session_t *s)
{
    return s->available;
}

int tern_session_priority(const tern_session_t *s)
{
    return s->priority;
}

const char *tern_session_peer_ip(const tern_session_t *s)
{
    return s->peer_ip;
}

void tern_session_send(tern_session_t *s, tern_xml_t *stanza)
{
    tern_xml_freeze(stanza);
    sessions_send(s, stanza);
}

void tern_stream_send(tern_session_t *s, tern_xml_t *el)
{
    if (s->link.write)
        s->link.write(s, el);
    else
        sessions_deliver(s, el);
}

void tern_session_set_resumable(tern_session_t *s, int on)
{
    s->resumable = on != 0;
}

int tern_session_detached(const tern_session_t *s)
{
    return s->detached;
}

void tern_session_undelivered(tern_session_t *s, tern_xml_t *stanza)
{
    sessions_undelivered(s, stanza);
}

void tern_session_queue_limits(size_t max_stanzas, size_t max_bytes)
{
    sessions_set_queue_limits(max_stanzas, max_bytes);
}

int tern_session_resume(tern_session_t *stream, tern_session_t *s)
{
    return c2s_resume(stream, s);
}

/* The session/out handlers below m's, then the stream. */
void tern_session_release(tern_module_ctx_t *m, tern_session_t *s, tern_xml_t *stanza)
{
    tern_event_t ev = {
        .stanza = stanza, .to = s->jid, .session = s, .user = s->jid ? s->jid->local : NULL};
    if (hooks_fire_after(s->host->hooks, "session/out", m, &ev) != TERN_HANDLED)
        tern_stream_send(s, stanza);
}

void *tern_session_get(const tern_session_t *s, tern_module_ctx_t *m)
{
    return sessions_slot_get(s, m);
}

void tern_session_set(tern_session_t *s, tern_module_ctx_t *m, void *data, void (*free_fn)(void *))
{
    if (sessions_slot_set(s, m, data, free_fn) < 0 && free_fn && data)
        free_fn(data);
}

int tern_account_create(tern_module_ctx_t *m, const char *local, const char *password,
                        const char **error_r)
{
    const char *why = "storage error";
    int rc = server.db ? accounts_add(server.db, m->host->name, local, password,
                                      (unsigned)server.cfg->scram_iterations, &why)
                       : -1;
    if (rc < 0) {
        if (error_r)
            *error_r = why;
        return -1;
    }
    char *user = tern_jid_prep_local(local);
    tern_event_t ev = {.user = user};
    if (user)
        hooks_fire(m->host->hooks, "user/created", &ev);
    free(user);
    return 0;
}

int tern_account_passwd(tern_module_ctx_t *m, const char *local, const char *password,
                        const char **error_r)
{
    const char *why = "storage error";
    if (!server.db || accounts_passwd(server.db, m->host->name, local, password,
                                      (unsigned)server.cfg->scram_iterations, &why) < 0) {
        if (error_r)
            *error_r = why;
        return -1;
    }
    return 0;
}

typedef struct foreach_ctx {
    int (*fn)(void *ctx, const char *local);
    void *ctx;
} foreach_ctx_t;

static int account_visit(void *ctx, const char *host, const char *user)
{
    foreach_ctx_t *f = ctx;
    return f->fn(f->ctx, user);
}

int tern_account_foreach(tern_module_ctx_t *m, int (*fn)(void *ctx, const char *local), void *ctx)
{
    foreach_ctx_t f = {.fn = fn, .ctx = ctx};
    return server.db ? store_account_foreach(server.db, m->host->name, account_visit, &f) : -1;
}

int tern_account_delete(tern_module_ctx_t *m, const char *local, const char **error_r)
{
    char *user = tern_jid_prep_local(local);
    if (!user) {
        if (error_r)
            *error_r = "invalid username";
        return -1;
    }
    const char *why = "storage error";
    int rc = server_delete_user(m->host->name, user, &why);
    if (rc < 0 && error_r)
        *error_r = why;
    free(user);
    return rc;
}

int tern_account_check_password(tern_module_ctx_t *m, const char *local, const char *password)
{
    char *user = tern_jid_prep_local(local);
    int ok = user && server.db && accounts_check_password(server.db, m->host->name, user, password);
    free(user);
    return ok;
}

int tern_provide(tern_module_ctx_t *m, const char *name, const void *api)
{
    service_t *sv = calloc(1, sizeof(*sv));
    if (!sv)
        return -1;
    sv->owner = m;
    sv->name = name;
    sv->api = api;
    sv->next = m->host->services;
    m->host->services = sv;
    return 0;
}

const void *tern_require(tern_module_ctx_t *m, const char *name)
{
    for (service_t *sv = m->host->services; sv; sv = sv->next)
        if (strcmp(sv->name, name) == 0)
            return sv->api;
    return NULL;
}

static void timer_fire(evutil_socket_t fd, short what, void *arg)
{
    tern_timer_t *t = arg;
    t->cb(t->owner, t->arg); /* a one-shot timer stays allocated until cancelled or unload */
}

tern_timer_t *tern_timer_add(tern_module_ctx_t *m, long long ms, int repeat, tern_timer_cb cb,
                             void *arg)
{
    if (!server.base)
        return NULL;
    tern_timer_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ev = event_new(server.base, -1, repeat ? EV_PERSIST : 0, timer_fire, t);
    if (!t->ev) {
        free(t);
        return NULL;
    }
    t->owner = m;
    t->cb = cb;
    t->arg = arg;
    t->repeat = repeat;
    t->prev = NULL;
    t->next = timers;
    if (timers)
        timers->prev = t;
    timers = t;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    event_add(t->ev, &tv);
    return t;
}

void tern_timer_cancel(tern_timer_t **tp)
{
    tern_timer_t *t = *tp;
    if (!t)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    event_free(t->ev);
    free(t);
    *tp = NULL;
}

void module_api_release(tern_module_ctx_t *m)
{
    account_jobs_release(m);
    store_jobs_release(m);
    tern_timer_t *t = timers, *tnext;
    for (; t; t = tnext) {
        tnext = t->next;
        if (t->owner == m) {
            tern_timer_t *dead = t;
            tern_timer_cancel(&dead);
        }
    }
    pending_iq_t *p = pendings, *pnext;
    for (; p; p = pnext) {
        pnext = p->next;
        if (p->owner == m)
            pending_free(p);
    }
    if (!pendings)
        hashmap_free(&pending_by_id);
}

void tern_log(tern_module_ctx_t *m, tern_log_level_t level, const char *fmt, ...)
{
    char prefix[300];
    snprintf(prefix, sizeof(prefix), "mod_%s@%s", m->desc->name, m->host->name);
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, prefix, fmt, ap);
    va_end(ap);
}
