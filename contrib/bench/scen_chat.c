/*
 * scen_chat.c — the `chat` scenario: one-to-one messages between pairs.
 *
 * Owns the pairing (user 2k talks with 2k+1; with an odd count the last
 * user only listens), the pacing of the senders at their share of
 * --msg-rate (a 1 ms tick sends what is due, round robin over this
 * worker's online senders), the message body ("bench r=RUN t=NS s=SEQ":
 * the run id, the sender's CLOCK_MONOTONIC time in nanoseconds, and the
 * sender's sequence number), and on receipt the latency (now - t, into
 * the H_MSG histogram) and the order check.  Below about a thousand
 * messages a second per sender every message goes out in a write of its
 * own (the round robin reaches a sender again only after all the others),
 * which the fixed-rate runs of compare.sh rely on.  With --body-size the
 * same fields travel in the message id ("bench-RUN-NS-SEQ-LEN") and the
 * body is LEN bytes of filler, LEN drawn log-uniformly from the range; a
 * body of another length is counted as corrupt.  Messages of another run
 * (offline messages left by an earlier one) and delayed ones are not
 * counted.  The clock is the same in every process of the machine, so a
 * pair may span workers.
 */
#include "bench.h"
#include "xmlscan.h"

#include <event2/event.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_US      1000
#define MAX_PER_TICK 20000
#define NS_CLIENT    "jabber:client"
#define NS_DELAY     "urn:xmpp:delay"

typedef struct {
    struct event *tick;
    pacer_t pace;
    char *filler; /* --body-size: body_max bytes of text */
    uint64_t rng; /* xorshift64 state for the body lengths */
} chat_t;

static int partner_of(const bench_opts_t *o, int idx)
{
    int p = idx ^ 1;
    return p < o->users ? p : -1;
}

static int check(bench_opts_t *o, const char **why)
{
    if (o->users < 2) {
        *why = "chat needs at least 2 users";
        return -1;
    }
    if (o->msg_rate <= 0) {
        *why = "--msg-rate must be above 0";
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

/* A body length from [body_min, body_max], log-uniform: as many small
 * messages as large ones per power of two. */
static long body_length(const bench_opts_t *o, chat_t *ch)
{
    ch->rng ^= ch->rng << 13;
    ch->rng ^= ch->rng >> 7;
    ch->rng ^= ch->rng << 17;
    double u = (double)(ch->rng >> 11) / 9007199254740992.0; /* [0, 1) */
    long n = lround(
        exp(log((double)o->body_min) + u * (log((double)o->body_max) - log((double)o->body_min))));
    return n < o->body_min ? o->body_min : n > o->body_max ? o->body_max : n;
}

static void send_one(worker_t *w, client_t *c)
{
    char to[BENCH_NAME_MAX];
    client_bare_jid(w->o, partner_of(w->o, c->idx), to, sizeof(to));
    char eto[BENCH_NAME_MAX * 2];
    xml_escape(to, eto, sizeof(eto));
    c->seq_out++;
    chat_t *ch = w->sdata;
    if (ch->filler != NULL) {
        long n = body_length(w->o, ch);
        client_sendf(c,
                     "<message to='%s' type='chat' id='bench-%lu-%" PRIu64 "-%" PRIu64
                     "-%ld'><body>%.*s</body></message>",
                     eto, w->o->run_id, now_ns(), c->seq_out, n, (int)n, ch->filler);
    } else {
        client_sendf(c,
                     "<message to='%s' type='chat'><body>bench r=%lu t=%" PRIu64 " s=%" PRIu64
                     "</body></message>",
                     eto, w->o->run_id, now_ns(), c->seq_out);
    }
    W_INC(w, C_MSG_SENT);
}

static int has_partner(const worker_t *w, const client_t *c)
{
    return partner_of(w->o, c->idx) >= 0;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_t *w = arg;
    chat_t *ch = w->sdata;
    pacer_run(w, &ch->pace, MAX_PER_TICK, has_partner, send_one);
}

static void phase(worker_t *w, phase_t ph)
{
    chat_t *ch = w->sdata;
    if (ph == PH_MEASURE) {
        if (ch == NULL) {
            ch = calloc(1, sizeof(*ch));
            if (ch == NULL)
                return;
            w->sdata = ch;
            if (w->o->body_max > 0) {
                ch->filler = malloc((size_t)w->o->body_max);
                if (ch->filler == NULL)
                    return;
                for (long i = 0; i < w->o->body_max; i++)
                    ch->filler[i] = (char)('a' + i % 26);
                ch->rng = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)w->first << 20) ^ w->o->run_id;
            }
        }
        int senders = 0;
        for (int i = 0; i < w->count; i++)
            if (partner_of(w->o, w->first + i) >= 0)
                senders++;
        int total = w->o->users - (w->o->users % 2);
        ch->pace.rate = w->o->msg_rate * (double)senders / (double)total;
        ch->pace.t0 = now_s();
        if (senders == 0)
            return;
        ch->tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
        struct timeval tv = {0, TICK_US};
        event_add(ch->tick, &tv);
    } else if (ph >= PH_DRAIN && ch != NULL && ch->tick != NULL) {
        event_free(ch->tick);
        ch->tick = NULL;
    }
}

/* "bench r=RUN t=NS s=SEQ" -> 0 and the fields, -1 if not ours. */
static int parse_body(const char *body, unsigned long run, uint64_t *t, uint64_t *seq)
{
    unsigned long r;
    if (body == NULL || sscanf(body, "bench r=%lu t=%" SCNu64 " s=%" SCNu64, &r, t, seq) != 3)
        return -1;
    return r == run ? 0 : -1;
}

/* "bench-RUN-NS-SEQ-LEN" (--body-size) -> 0 and the fields, -1 if not ours. */
static int parse_id(const char *id, unsigned long run, uint64_t *t, uint64_t *seq, long *len)
{
    unsigned long r;
    if (id == NULL || sscanf(id, "bench-%lu-%" SCNu64 "-%" SCNu64 "-%ld", &r, t, seq, len) != 4)
        return -1;
    return r == run ? 0 : -1;
}

static void stanza(worker_t *w, client_t *c, xnode_t *st)
{
    if (!xn_is(st, NS_CLIENT, "message"))
        return;
    const char *type = xn_attr(st, "type");
    if (type != NULL && strcmp(type, "error") == 0)
        return;
    const xnode_t *body = xn_child(st, NS_CLIENT, "body");
    uint64_t t, seq;
    long len = -1;
    if (body == NULL || xn_child(st, NS_DELAY, "delay") != NULL)
        return;
    if (w->o->body_max > 0 ? parse_id(xn_attr(st, "id"), w->o->run_id, &t, &seq, &len) < 0
                           : parse_body(body->text, w->o->run_id, &t, &seq) < 0)
        return;
    if (len >= 0 && (long)body->text_len != len)
        W_INC(w, C_MSG_CORRUPT);
    uint64_t now = now_ns();
    hist_add(&w->hist[H_MSG], now > t ? now - t : 0);
    W_INC(w, C_MSG_RECV);
    if (seq != c->seq_in + 1)
        W_INC(w, C_MSG_REORDER);
    if (seq > c->seq_in)
        c->seq_in = seq;
}

static void worker_free(worker_t *w)
{
    chat_t *ch = w->sdata;
    if (ch == NULL)
        return;
    if (ch->tick != NULL)
        event_free(ch->tick);
    free(ch->filler);
    free(ch);
    w->sdata = NULL;
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* Quantile q of h in milliseconds; NaN (null) when h is empty. */
static double q_ms(const hist_t *h, double q)
{
    return h->count > 0 ? ms(hist_quantile(h, q)) : NAN;
}

static void report(report_t *r, const result_t *res)
{
    double window = res_window(res, PH_MEASURE, PH_DRAIN);
    uint64_t sent = res->final.c[C_MSG_SENT], recv = res->final.c[C_MSG_RECV];
    uint64_t recv_window = res_delta(res, C_MSG_RECV, PH_MEASURE, PH_DRAIN);
    double srv_cpu = res->srv_measure1.cpu_s - res->srv_measure0.cpu_s;
    report_num(r, "duration_s", "measured for", window, 2, "s");
    report_num(r, "msg_rate_target", "message rate asked", res->o->msg_rate, 1, "/s");
    report_num(r, "sent", "messages sent", (double)sent, 0, NULL);
    report_num(r, "delivered", "messages delivered", (double)recv, 0, NULL);
    report_num(r, "lost", "messages lost", sent > recv ? (double)(sent - recv) : 0, 0, NULL);
    report_num(r, "reordered", "out of order", (double)res->final.c[C_MSG_REORDER], 0, NULL);
    report_num(r, "corrupt", "bodies of a wrong length", (double)res->final.c[C_MSG_CORRUPT], 0,
               NULL);
    report_num(r, "delivered_per_s", "delivered/s", window > 0 ? (double)recv_window / window : NAN,
               1, NULL);
    const hist_t *h = &res->hist[H_MSG];
    report_num(r, "latency_ms_p50", "latency p50", q_ms(h, 0.5), 3, "ms");
    report_num(r, "latency_ms_p99", "latency p99", q_ms(h, 0.99), 3, "ms");
    report_num(r, "latency_ms_p999", "latency p99.9", q_ms(h, 0.999), 3, "ms");
    report_num(r, "latency_ms_max", "latency max", h->count > 0 ? ms(h->max) : NAN, 3, "ms");
    report_srv(r, res, "server_cpu_pct", "server CPU while measured",
               window > 0 ? 100.0 * srv_cpu / window : NAN, 1, "%");
    /* What one message costs the server: its CPU time in the window over
     * the messages delivered in the window (each one read, routed and
     * written once). */
    report_srv(r, res, "server_cpu_us_per_msg", "server CPU per delivered message",
               recv_window > 0 ? 1e6 * srv_cpu / (double)recv_window : NAN, 1, "us");
}

const scenario_t scen_chat = {
    .name = "chat",
    .summary = "pairs of users exchange messages: delivered msgs/s and latency",
    .check = check,
    .measure_seconds = measure_seconds,
    .has_drain = 1,
    .bound_phase = PH_MEASURE,
    .phase = phase,
    .stanza = stanza,
    .worker_free = worker_free,
    .report = report,
};
