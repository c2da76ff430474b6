/*
 * scen_presence.c — the `presence` scenario: contacts going online and
 * offline.
 *
 * Owns the contact graph, the roster setup and the presence churn.  The
 * users are cut into circles of K+1 (user i is in circle i/(K+1)) and
 * everyone in a circle is a contact of everyone else in it, with
 * subscription both; a last, smaller circle gives its users fewer
 * contacts.  The setup phase looks at the roster each session fetched
 * and, only for contacts not yet "both", sends subscribe and a
 * pre-approving subscribed (RFC 6121 §3.1, §3.4); it answers every
 * subscription request with subscribed, so it works on servers without
 * pre-approval too, and a second run finds nothing to do.  The setup
 * ends when every roster push shows "both".  The measured phase sends
 * --presence-rate changes per second (split over the workers), each one
 * a user going offline (unavailable presence) or back online (available
 * presence again, which is initial presence: RFC 6121 §4.2, with its
 * probes), and counts every presence stanza the clients receive.
 */
#include "bench.h"
#include "xmlscan.h"

#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_US      10000
#define MAX_PER_TICK 20000
#define NS_CLIENT    "jabber:client"
#define NS_ROSTER    "jabber:iq:roster"

enum { F_TO = 1, F_FROM = 2, F_ASK = 4 };

typedef struct {
    int done;
    unsigned char st[]; /* per position in the circle */
} pclient_t;

typedef struct {
    struct event *tick;
    pacer_t pace;
    int waiting; /* clients whose setup is not complete */
    int setup_running;
} pres_t;

static int circle_size(const bench_opts_t *o)
{
    return o->roster_k + 1;
}

static int check(bench_opts_t *o, const char **why)
{
    if (o->roster_k < 1 || o->roster_k >= o->users) {
        *why = "--roster K must be at least 1 and less than --users";
        return -1;
    }
    if (o->presence_rate <= 0) {
        *why = "--presence-rate must be above 0";
        return -1;
    }
    if (o->duration <= 0) {
        *why = "--duration must be above 0";
        return -1;
    }
    return 0;
}

static double measure_seconds(const bench_opts_t *o)
{
    return o->duration;
}

static pres_t *pres(worker_t *w)
{
    if (w->sdata == NULL)
        w->sdata = calloc(1, sizeof(pres_t));
    return w->sdata;
}

static pclient_t *pc(client_t *c)
{
    if (c->sdata == NULL)
        c->sdata = calloc(1, sizeof(pclient_t) + (size_t)circle_size(c->w->o));
    return c->sdata;
}

/* Position in c's circle of the user whose JID is `jid`, or -1. */
static int position_of(const client_t *c, const char *jid)
{
    int idx = bench_user_index(c->w->o, jid);
    int g = circle_size(c->w->o);
    if (idx < 0 || idx == c->idx || idx / g != c->idx / g)
        return -1;
    return idx % g;
}

static int circle_members(const client_t *c, int *first)
{
    int g = circle_size(c->w->o);
    *first = c->idx / g * g;
    int n = c->w->o->users - *first;
    return n < g ? n : g;
}

static void apply_item(client_t *c, const xnode_t *item)
{
    const char *jid = xn_attr(item, "jid");
    int pos = jid != NULL ? position_of(c, jid) : -1;
    pclient_t *p = pc(c);
    if (pos < 0 || p == NULL)
        return;
    const char *sub = xn_attr(item, "subscription");
    const char *ask = xn_attr(item, "ask");
    unsigned char f = 0;
    if (sub != NULL && (strcmp(sub, "to") == 0 || strcmp(sub, "both") == 0))
        f |= F_TO;
    if (sub != NULL && (strcmp(sub, "from") == 0 || strcmp(sub, "both") == 0))
        f |= F_FROM;
    if (ask != NULL && strcmp(ask, "subscribe") == 0)
        f |= F_ASK;
    p->st[pos] = f;
}

static void apply_query(client_t *c, const xnode_t *iq)
{
    const xnode_t *q = xn_child(iq, NS_ROSTER, "query");
    if (q == NULL)
        return;
    for (const xnode_t *it = q->child; it != NULL; it = it->next)
        if (xn_is(it, NS_ROSTER, "item"))
            apply_item(c, it);
}

static int complete(client_t *c)
{
    pclient_t *p = pc(c);
    int first, n = circle_members(c, &first);
    for (int i = 0; i < n; i++)
        if (first + i != c->idx && (p == NULL || (p->st[i] & (F_TO | F_FROM)) != (F_TO | F_FROM)))
            return 0;
    return 1;
}

static void check_complete(worker_t *w, client_t *c)
{
    pres_t *ps = pres(w);
    pclient_t *p = pc(c);
    if (ps == NULL || p == NULL || !ps->setup_running || p->done || !complete(c))
        return;
    p->done = 1;
    W_INC(w, C_SETUP_DONE);
    if (--ps->waiting == 0) {
        ps->setup_running = 0;
        worker_phase_complete(w);
    }
}

/* Send what c's roster still lacks. */
static void setup_client(worker_t *w, client_t *c)
{
    pclient_t *p = pc(c);
    int first, n = circle_members(c, &first);
    for (int i = 0; p != NULL && i < n; i++) {
        if (first + i == c->idx)
            continue;
        unsigned char f = p->st[i];
        if ((f & (F_TO | F_FROM)) == (F_TO | F_FROM))
            continue;
        char to[BENCH_NAME_MAX], eto[BENCH_NAME_MAX * 2];
        client_bare_jid(w->o, first + i, to, sizeof(to));
        xml_escape(to, eto, sizeof(eto));
        W_INC(w, C_SETUP_FIXED);
        if (!(f & F_TO) && !(f & F_ASK))
            client_sendf(c, "<presence to='%s' type='subscribe'/>", eto);
        if (!(f & F_FROM))
            client_sendf(c, "<presence to='%s' type='subscribed'/>", eto);
    }
}

static void online(worker_t *w, client_t *c, xnode_t *roster)
{
    (void)w;
    if (pc(c) != NULL)
        apply_query(c, roster);
}

/* One presence change: online clients go away, away ones come back. */
static void toggle(worker_t *w, client_t *c)
{
    if (c->available)
        client_sendf(c, "<presence type='unavailable'/>");
    else
        client_sendf(c, "<presence/>");
    c->available = !c->available;
    W_INC(w, C_PRES_SENT);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_t *w = arg;
    pres_t *ps = w->sdata;
    pacer_run(w, &ps->pace, MAX_PER_TICK, NULL, toggle);
}

static void phase(worker_t *w, phase_t ph)
{
    pres_t *ps = pres(w);
    if (ps == NULL)
        return;
    if (ph == PH_SETUP) {
        ps->setup_running = 1;
        ps->waiting = 1; /* held until every client has been looked at */
        for (int i = 0; i < w->count; i++) {
            client_t *c = &w->clients[i];
            if (c->st != CS_ONLINE || c->dead) {
                W_INC(w, C_SETUP_FAIL);
                continue;
            }
            ps->waiting++;
            setup_client(w, c);
        }
        for (int i = 0; i < w->count; i++)
            if (w->clients[i].st == CS_ONLINE)
                check_complete(w, &w->clients[i]);
        if (ps->setup_running && --ps->waiting == 0) {
            ps->setup_running = 0;
            worker_phase_complete(w);
        }
    } else if (ph == PH_MEASURE) {
        ps->setup_running = 0;
        ps->pace.rate = w->o->presence_rate * (double)w->count / (double)w->o->users;
        ps->pace.t0 = now_s();
        if (w->count == 0)
            return;
        ps->tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
        struct timeval tv = {0, TICK_US};
        event_add(ps->tick, &tv);
    } else if (ph >= PH_DRAIN && ps->tick != NULL) {
        event_free(ps->tick);
        ps->tick = NULL;
    }
}

static void stanza(worker_t *w, client_t *c, xnode_t *st)
{
    if (xn_is(st, NS_CLIENT, "presence")) {
        const char *type = xn_attr(st, "type");
        if (type == NULL || strcmp(type, "unavailable") == 0) {
            W_INC(w, C_PRES_RECV);
        } else if (strcmp(type, "subscribe") == 0) {
            /* Approve whoever asks: the benchmark's own users. */
            const char *from = xn_attr(st, "from");
            char efrom[BENCH_NAME_MAX * 2];
            if (from != NULL) {
                xml_escape(from, efrom, sizeof(efrom));
                client_sendf(c, "<presence to='%s' type='subscribed'/>", efrom);
            }
        }
        return;
    }
    if (xn_is(st, NS_CLIENT, "iq")) { /* a roster push */
        apply_query(c, st);
        check_complete(w, c);
    }
}

static void pres_client_free(client_t *c)
{
    free(c->sdata);
    c->sdata = NULL;
}

static void worker_free(worker_t *w)
{
    pres_t *ps = w->sdata;
    if (ps == NULL)
        return;
    if (ps->tick != NULL)
        event_free(ps->tick);
    free(ps);
    w->sdata = NULL;
}

static void report(report_t *r, const result_t *res)
{
    const bench_opts_t *o = res->o;
    double window = res_window(res, PH_MEASURE, PH_DRAIN);
    uint64_t changes = res_delta(res, C_PRES_SENT, PH_MEASURE, PH_DRAIN);
    uint64_t in = res_delta(res, C_PRES_RECV, PH_MEASURE, PH_DRAIN);
    double srv_cpu = res->srv_measure1.cpu_s - res->srv_measure0.cpu_s;
    report_num(r, "roster_k", "contacts per user", o->roster_k, 0, NULL);
    report_num(r, "contacts_subscribed", "subscriptions made by the setup",
               (double)res->final.c[C_SETUP_FIXED], 0, NULL);
    report_bool(r, "setup_complete", "rosters complete",
                res->have_done[PH_SETUP] && !res->setup_failed && res->final.c[C_SETUP_FAIL] == 0);
    report_num(r, "setup_s", "setup time",
               res->t_done[PH_SETUP] > 0 ? res->t_done[PH_SETUP] - res->t_start[PH_SETUP] : NAN, 2,
               "s");
    if (o->setup_only)
        return;
    report_num(r, "duration_s", "measured for", window, 2, "s");
    report_num(r, "presence_rate_target", "presence changes asked", o->presence_rate, 1, "/s");
    report_num(r, "presence_changes", "presence changes sent", (double)changes, 0, NULL);
    report_num(r, "presence_in", "presence stanzas received", (double)in, 0, NULL);
    report_num(r, "presence_in_per_s", "presence stanzas received/s",
               window > 0 ? (double)in / window : NAN, 1, NULL);
    report_num(r, "presence_per_change", "presence stanzas per change",
               changes > 0 ? (double)in / (double)changes : NAN, 2, NULL);
    report_srv(r, res, "server_cpu_pct", "server CPU while measured",
               window > 0 ? 100.0 * srv_cpu / window : NAN, 1, "%");
}

const scenario_t scen_presence = {
    .name = "presence",
    .summary = "users with K contacts go offline and online: presence stanzas/s",
    .check = check,
    .measure_seconds = measure_seconds,
    .has_setup = 1,
    .bound_phase = PH_MEASURE,
    .phase = phase,
    .online = online,
    .stanza = stanza,
    .client_free = pres_client_free,
    .worker_free = worker_free,
    .report = report,
};
