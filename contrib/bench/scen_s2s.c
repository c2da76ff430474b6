/*
 * scen_s2s.c — the `s2s` scenario: users of two servers chat through
 * their federated link.
 *
 * Owns the second server's part of a run: --users N accounts u1..uN on
 * --domain (server A, --server) and the same N on --domain2 (server B,
 * --server2), 2N connections in all; client 2k is uK@A and client 2k+1
 * uK@B (K = k + first_user), so each pair is one user of A and the user of
 * the same name on B, and they send to each other: every message crosses
 * the link, half of them A to B, half B to A.  Sending, the body, the
 * latency and the order check are the chat scenario's (its hooks are
 * called as they are); this file adds the latency of each sender's first
 * message (H_FIRST: with one pair on freshly started servers, the first
 * message of a link that does not exist yet, so DNS, TCP, TLS and the
 * servers' authentication of each other are in it) and the figures of
 * the second server, sampled in /proc at the same marks as the first:
 * CPU per delivered message of each and of both together, and what the
 * links and their traffic added to each server's memory while measured
 * (divided by the connections open, which the kernel knows and the tool
 * does not, it is the memory per s2s connection: compare.sh).  With
 * --links N, user 1 of A also asks N other domains of B (l1..lN.DOMAIN2)
 * for disco#info at the start of the measured phase: N links more, their
 * answers' round trip in H_LINK.
 */
#include "bench.h"
#include "xmlscan.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define NS_CLIENT "jabber:client"
#define NS_DISCO  "http://jabber.org/protocol/disco#info"

static int check(bench_opts_t *o, const char **why)
{
    if (o->server2 == NULL || o->domain2 == NULL) {
        *why = "s2s needs --server2 and --domain2 (the second server and its domain)";
        return -1;
    }
    if (strcmp(o->domain, o->domain2) == 0) {
        *why = "--domain and --domain2 must differ";
        return -1;
    }
    if (o->users > 5000000) {
        *why = "--users: at most 5000000 per server";
        return -1;
    }
    if (o->port2 == 0)
        o->port2 = o->port;
    o->sites = 2;
    o->users *= 2;
    if (o->processes > o->users)
        o->processes = o->users;
    return scen_chat.check(o, why);
}

/* The send time of one of this run's messages, or 0 if it is not one. */
static uint64_t sent_at(const bench_opts_t *o, xnode_t *st, uint64_t *seq)
{
    const xnode_t *body = xn_child(st, NS_CLIENT, "body");
    unsigned long run;
    uint64_t t;
    long len;
    if (body == NULL)
        return 0;
    if (o->body_max > 0) {
        const char *id = xn_attr(st, "id");
        if (id == NULL ||
            sscanf(id, "bench-%lu-%" SCNu64 "-%" SCNu64 "-%ld", &run, &t, seq, &len) != 4)
            return 0;
    } else if (body->text == NULL ||
               sscanf(body->text, "bench r=%lu t=%" SCNu64 " s=%" SCNu64, &run, &t, seq) != 3) {
        return 0;
    }
    return run == o->run_id ? t : 0;
}

static void stanza(worker_t *w, client_t *c, xnode_t *st)
{
    if (xn_is(st, NS_CLIENT, "iq")) {
        const char *id = xn_attr(st, "id");
        unsigned long run;
        int k;
        uint64_t t;
        if (id != NULL && sscanf(id, "s2slink-%lu-%d-%" SCNu64, &run, &k, &t) == 3 &&
            run == w->o->run_id) {
            uint64_t now = now_ns();
            hist_add(&w->hist[H_LINK], now > t ? now - t : 0);
            W_INC(w, C_LINK_ANSWERS);
        }
        return;
    }
    uint64_t before = w->snap.c[C_MSG_RECV], seq = 0;
    scen_chat.stanza(w, c, st);
    if (w->snap.c[C_MSG_RECV] == before || !xn_is(st, NS_CLIENT, "message"))
        return; /* not counted by the chat hook: not ours, an error, delayed */
    uint64_t t = sent_at(w->o, st, &seq);
    if (t != 0 && seq == 1) {
        uint64_t now = now_ns();
        hist_add(&w->hist[H_FIRST], now > t ? now - t : 0);
    }
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* A figure of the second server: null without its pid. */
static void srv2(report_t *r, const result_t *res, const char *key, const char *label, double v,
                 int decimals, const char *unit)
{
    int have = res->server2_pid > 0 && res->srv2_before.ok;
    report_num(r, key, label, have ? v : NAN, decimals, unit);
}

/* --links N: user 1 of A (client 0) asks each of l1..lN.DOMAIN2, domains
 * of server B, for disco#info: A opens a link to each and B one back for
 * the answer (unless one carries both ways): N links more on each server. */
static void ask_links(worker_t *w)
{
    if (w->o->links <= 0 || w->first != 0 || w->count == 0 || w->clients[0].st != CS_ONLINE)
        return;
    char to[BENCH_NAME_MAX * 2];
    for (int k = 1; k <= w->o->links; k++) {
        char dom[BENCH_NAME_MAX];
        snprintf(dom, sizeof(dom), "l%d.%s", k, w->o->domain2);
        xml_escape(dom, to, sizeof(to));
        client_sendf(&w->clients[0],
                     "<iq type='get' to='%s' id='s2slink-%lu-%d-%" PRIu64
                     "'><query xmlns='" NS_DISCO "'/></iq>",
                     to, w->o->run_id, k, now_ns());
    }
}

static void phase(worker_t *w, phase_t ph)
{
    scen_chat.phase(w, ph);
    if (ph == PH_MEASURE)
        ask_links(w);
}

static double measure_seconds(const bench_opts_t *o)
{
    return scen_chat.measure_seconds(o);
}

static void worker_free(worker_t *w)
{
    scen_chat.worker_free(w);
}

static void report(report_t *r, const result_t *res)
{
    scen_chat.report(r, res);
    const bench_opts_t *o = res->o;
    report_str(r, "domain", "server A's domain", o->domain);
    report_str(r, "domain2", "server B's domain", o->domain2);
    report_num(r, "users_per_server", "users on each server", o->users / 2, 0, NULL);
    const hist_t *f = &res->hist[H_FIRST];
    report_num(r, "first_msg_count", "first messages of a sender", (double)f->count, 0, NULL);
    report_num(r, "first_msg_ms_p50", "first message latency p50",
               f->count > 0 ? ms(hist_quantile(f, 0.5)) : NAN, 3, "ms");
    report_num(r, "first_msg_ms_max", "first message latency max", f->count > 0 ? ms(f->max) : NAN,
               3, "ms");

    const hist_t *l = &res->hist[H_LINK];
    report_num(r, "links", "link domains asked", o->links, 0, NULL);
    report_num(r, "link_answers", "link domains that answered",
               (double)res->final.c[C_LINK_ANSWERS], 0, NULL);
    report_num(r, "link_rtt_ms_p50", "link domain answer p50",
               l->count > 0 ? ms(hist_quantile(l, 0.5)) : NAN, 3, "ms");
    report_num(r, "link_rtt_ms_max", "link domain answer max", l->count > 0 ? ms(l->max) : NAN, 3,
               "ms");

    double window = res_window(res, PH_MEASURE, PH_DRAIN);
    uint64_t recv_window = res_delta(res, C_MSG_RECV, PH_MEASURE, PH_DRAIN);
    double cpu1 = res->srv_measure1.cpu_s - res->srv_measure0.cpu_s;
    double cpu2 = res->srv2_measure1.cpu_s - res->srv2_measure0.cpu_s;
    int have1 = res->server_pid > 0 && res->srv_before.ok;
    int have2 = res->server2_pid > 0 && res->srv2_before.ok;
    report_srv(r, res, "server_rss_link_kib", "server A RSS added while measured",
               (double)(res->srv_end.rss_kib - res->srv_measure0.rss_kib), 0, "KiB");
    if (res->server2_pid > 0)
        report_num(r, "server2_pid", "server B pid", res->server2_pid, 0, NULL);
    else
        srv2(r, res, "server2_pid", "server B pid", 0, 0, NULL);
    srv2(r, res, "server2_rss_before_kib", "server B RSS before", (double)res->srv2_before.rss_kib,
         0, "KiB");
    srv2(r, res, "server2_rss_after_kib", "server B RSS at the end", (double)res->srv2_end.rss_kib,
         0, "KiB");
    srv2(r, res, "server2_rss_link_kib", "server B RSS added while measured",
         (double)(res->srv2_end.rss_kib - res->srv2_measure0.rss_kib), 0, "KiB");
    srv2(r, res, "server2_cpu_s", "server B CPU", res->srv2_end.cpu_s - res->srv2_before.cpu_s, 2,
         "s");
    srv2(r, res, "server2_cpu_pct", "server B CPU while measured",
         window > 0 ? 100.0 * cpu2 / window : NAN, 1, "%");
    srv2(r, res, "server2_cpu_us_per_msg", "server B CPU per delivered message",
         recv_window > 0 ? 1e6 * cpu2 / (double)recv_window : NAN, 1, "us");
    /* Each message is read and written by both servers: A and B together
     * are what one federated message costs. */
    double both =
        recv_window > 0 && have1 && have2 ? 1e6 * (cpu1 + cpu2) / (double)recv_window : NAN;
    report_num(r, "servers_cpu_us_per_msg", "both servers' CPU per delivered message", both, 1,
               "us");
}

const scenario_t scen_s2s = {
    .name = "s2s",
    .summary = "users of two servers chat through the federated link: rate, latency",
    .check = check,
    .measure_seconds = measure_seconds,
    .has_drain = 1,
    .bound_phase = PH_MEASURE,
    .phase = phase,
    .stanza = stanza,
    .worker_free = worker_free,
    .report = report,
};
