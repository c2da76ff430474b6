/*
 * worker.c — one load process of tern-bench.
 *
 * Owns a worker's share of the connections (a contiguous range of user
 * indexes), its event loop, the login ramp at its share of --rate, the
 * commands from the coordinator (one byte per phase on the down pipe),
 * and what it tells the coordinator on the up pipe: progress snapshots
 * four times a second, a snapshot when each phase starts and when the
 * login or setup phase is complete, and the final counters with the
 * histograms.  What happens in each phase beyond logging in belongs to
 * the scenario.
 */
#include "bench.h"

#include <errno.h>
#include <event2/event.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define RAMP_TICK_US  5000
#define PROGRESS_US   250000
#define DRAIN_PROG_US 100000
#define MAX_WARNINGS  5
#define DONE_WAIT_S   2
#define DONE_POLL_US  20000
#define MAX_PENDING   1000 /* logins in progress at once, per worker */

struct sockaddr_storage bench_server_addr;
socklen_t bench_server_addr_len;
struct sockaddr_storage bench_server2_addr;
socklen_t bench_server2_addr_len;

static int warnings;

void pacer_run(worker_t *w, pacer_t *p, int max,
               int (*eligible)(const worker_t *w, const client_t *c),
               void (*send)(worker_t *w, client_t *c))
{
    uint64_t due = (uint64_t)((now_s() - p->t0) * p->rate);
    while (p->sent < due && max-- > 0) {
        client_t *c = NULL;
        for (int tries = 0; tries < w->count && c == NULL; tries++) {
            client_t *cand = &w->clients[p->next];
            p->next = (p->next + 1) % w->count;
            if (cand->st == CS_ONLINE && !cand->dead && (!eligible || eligible(w, cand)))
                c = cand;
        }
        if (c == NULL)
            return;
        send(w, c);
        p->sent++;
    }
}

void worker_warn(worker_t *w, const char *fmt, ...)
{
    if (warnings > MAX_WARNINGS)
        return;
    if (warnings++ == MAX_WARNINGS) {
        fprintf(stderr, "tern-bench[%d]: further warnings of this process are not shown\n", w->id);
        return;
    }
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fprintf(stderr, "tern-bench[%d]: %s\n", w->id, buf);
}

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(1); /* the coordinator is gone */
        p += n;
        len -= (size_t)n;
    }
}

static void send_snap(worker_t *w, uint32_t type, phase_t ph)
{
    msg_snap_t m;
    memset(&m, 0, sizeof(m));
    w->snap.cpu_s = self_cpu_s();
    w->snap.t = now_s();
    m.type = type;
    m.phase = ph;
    m.snap = w->snap;
    write_all(w->up_fd, &m, sizeof(m));
}

static void check_login_done(worker_t *w)
{
    if (w->phase == PH_LOGIN && !w->login_marked && w->settled >= w->count) {
        w->login_marked = 1;
        if (w->ramp_ev != NULL)
            evtimer_del(w->ramp_ev);
        send_snap(w, MSG_MARK_DONE, PH_LOGIN);
    }
}

void worker_client_online(worker_t *w, client_t *c)
{
    hist_add(&w->hist[H_LOGIN], now_ns() - c->t_start);
    W_INC(w, C_LOGIN_OK);
    w->snap.last_login_t = now_s();
    w->settled++;
    check_login_done(w);
}

void worker_client_failed(worker_t *w, client_t *c, const char *why)
{
    char name[BENCH_NAME_MAX];
    bench_user_name(w->o, c->idx, name, sizeof(name));
    worker_warn(w, "%s: login failed: %s", name, why);
    W_INC(w, C_LOGIN_FAIL);
    w->settled++;
    check_login_done(w);
}

void worker_client_lost(worker_t *w, client_t *c, const char *why)
{
    if (w->phase >= PH_DONE)
        return;
    char name[BENCH_NAME_MAX];
    bench_user_name(w->o, c->idx, name, sizeof(name));
    worker_warn(w, "%s: connection lost: %s", name, why);
    W_INC(w, C_DISCONNECTS);
}

void worker_stanza(worker_t *w, client_t *c, xnode_t *st)
{
    if (w->sc->stanza != NULL)
        w->sc->stanza(w, c, st);
}

void worker_phase_complete(worker_t *w)
{
    send_snap(w, MSG_MARK_DONE, w->phase);
}

static void on_ramp(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_t *w = arg;
    double share = w->o->rate * (double)w->count / (double)w->o->users;
    double elapsed = now_s() - w->ramp_t0;
    long due = (long)(elapsed * share) + 1;
    if (due > w->count)
        due = w->count;
    while (w->launched < due && w->launched - w->settled < MAX_PENDING) {
        client_t *c = &w->clients[w->launched++];
        client_start(c);
    }
    if (w->launched >= w->count)
        evtimer_del(w->ramp_ev);
}

static void on_progress(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_t *w = arg;
    send_snap(w, MSG_PROGRESS, w->phase);
}

/* After PH_DONE: leave the loop once every connection is closed, or
 * after DONE_WAIT_S whatever is left. */
static void on_done_wait(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_t *w = arg;
    int open = 0;
    for (int i = 0; i < w->launched; i++)
        if (w->clients[i].st != CS_CLOSED)
            open++;
    if (open == 0 || now_s() - w->ramp_t0 >= DONE_WAIT_S)
        event_base_loopexit(w->base, NULL);
}

static void start_phase(worker_t *w, phase_t ph)
{
    w->phase = ph;
    send_snap(w, MSG_MARK_START, ph);
    switch (ph) {
    case PH_LOGIN: {
        w->ramp_t0 = now_s();
        struct timeval tv = {0, RAMP_TICK_US};
        w->ramp_ev = event_new(w->base, -1, EV_PERSIST, on_ramp, w);
        event_add(w->ramp_ev, &tv);
        on_ramp(-1, 0, w);
        check_login_done(w); /* no users in this worker */
        break;
    }
    case PH_SETUP:
        if (w->sc->phase != NULL)
            w->sc->phase(w, ph);
        else
            worker_phase_complete(w);
        break;
    case PH_MEASURE:
        if (w->sc->phase != NULL)
            w->sc->phase(w, ph);
        break;
    case PH_DRAIN: {
        if (w->sc->phase != NULL)
            w->sc->phase(w, ph);
        /* Finer progress, so the coordinator sees the drain end sooner. */
        struct timeval tv = {0, DRAIN_PROG_US};
        event_del(w->progress_ev);
        event_add(w->progress_ev, &tv);
        break;
    }
    case PH_DONE: {
        if (w->ramp_ev != NULL)
            event_del(w->ramp_ev);
        event_del(w->progress_ev);
        if (w->sc->phase != NULL)
            w->sc->phase(w, ph);
        for (int i = 0; i < w->launched; i++)
            client_close(&w->clients[i], 1);
        /* ramp_t0 is free now: it times the close. */
        w->ramp_t0 = now_s();
        struct timeval tv = {0, DONE_POLL_US};
        event_assign(w->progress_ev, w->base, -1, EV_PERSIST, on_done_wait, w);
        event_add(w->progress_ev, &tv);
        break;
    }
    default:
        break;
    }
}

static void on_command(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    worker_t *w = arg;
    unsigned char cmd[16];
    ssize_t n = read(fd, cmd, sizeof(cmd));
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        /* The coordinator is gone: stop at once. */
        event_base_loopbreak(w->base);
        w->phase = PH_DONE;
        return;
    }
    for (ssize_t i = 0; i < n; i++)
        if (cmd[i] > w->phase && cmd[i] < PH_COUNT)
            start_phase(w, (phase_t)cmd[i]);
}

static int resolve_one(const bench_opts_t *o, const char *host, int portn,
                       struct sockaddr_storage *addr, socklen_t *len)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = o->src_first != 0 ? AF_INET : AF_UNSPEC;
    char port[16];
    snprintf(port, sizeof(port), "%d", portn);
    int r = getaddrinfo(host, port, &hints, &res);
    if (r != 0) {
        fprintf(stderr, "tern-bench: %s: %s\n", host, gai_strerror(r));
        return -1;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int bench_resolve(const bench_opts_t *o)
{
    if (resolve_one(o, o->server, o->port, &bench_server_addr, &bench_server_addr_len) < 0)
        return -1;
    if (o->sites > 1 && resolve_one(o, o->server2, o->port2 > 0 ? o->port2 : o->port,
                                    &bench_server2_addr, &bench_server2_addr_len) < 0)
        return -1;
    return 0;
}

int worker_main(const bench_opts_t *o, const scenario_t *sc, int id, int up_fd, int down_fd)
{
    /* Ctrl-C is the coordinator's to handle; a dead coordinator ends us. */
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGTERM);

    worker_t w;
    memset(&w, 0, sizeof(w));
    w.o = o;
    w.sc = sc;
    w.id = id;
    int per = o->users / o->processes, extra = o->users % o->processes;
    w.first = id * per + (id < extra ? id : extra);
    w.count = per + (id < extra ? 1 : 0);
    w.up_fd = up_fd;
    w.down_fd = down_fd;
    w.clients = calloc((size_t)(w.count > 0 ? w.count : 1), sizeof(client_t));
    w.base = event_base_new();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (w.clients == NULL || w.base == NULL || ctx == NULL) {
        fprintf(stderr, "tern-bench[%d]: out of memory\n", id);
        return 1;
    }
    /* Bench only: the server's certificate is not checked. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Buffers stay allocated (about 34 KiB a connection): releasing them
     * after every record costs two large allocations per message. */
    w.ssl_ctx = ctx;
    for (int i = 0; i < w.count; i++) {
        w.clients[i].w = &w;
        w.clients[i].idx = w.first + i;
        w.clients[i].fd = -1;
    }
    w.down_ev = event_new(w.base, down_fd, EV_READ | EV_PERSIST, on_command, &w);
    w.progress_ev = event_new(w.base, -1, EV_PERSIST, on_progress, &w);
    struct timeval tv = {0, PROGRESS_US};
    event_add(w.down_ev, NULL);
    event_add(w.progress_ev, &tv);

    event_base_dispatch(w.base);

    msg_final_t *fin = calloc(1, sizeof(*fin));
    if (fin != NULL) {
        w.snap.cpu_s = self_cpu_s();
        w.snap.t = now_s();
        fin->head.type = MSG_FINAL;
        fin->head.phase = PH_DONE;
        fin->head.snap = w.snap;
        memcpy(fin->hist, w.hist, sizeof(w.hist));
        write_all(up_fd, fin, sizeof(*fin));
        free(fin);
    }
    /* Free what is left (the sanitizers' leak check wants it). */
    for (int i = 0; i < w.count; i++)
        if (w.clients[i].st != CS_NEW && w.clients[i].st != CS_CLOSED)
            client_free(&w.clients[i]);
    if (sc->worker_free != NULL)
        sc->worker_free(&w);
    event_free(w.down_ev);
    event_free(w.progress_ev);
    if (w.ramp_ev != NULL)
        event_free(w.ramp_ev);
    free(w.clients);
    link_shutdown();
    event_base_free(w.base);
    SSL_CTX_free(ctx);
    return 0;
}
