/*
 * coord.c — the coordinator process of tern-bench.
 *
 * Owns the run as a whole: forking the workers with a pipe each way,
 * moving every worker through the phases together (login, setup,
 * measure, drain, done: a phase that workers complete, like the login
 * ramp, ends when the last one says so), sampling the server's CPU and
 * memory at each boundary, the progress line, Ctrl-C (stop early and
 * report what was measured), and summing what the workers send into a
 * result_t for report.c.  It opens no XMPP connection itself.
 */
#include "bench.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROGRESS_S     1
#define DRAIN_CHECK_US 50000

typedef struct {
    pid_t pid;
    int down;
    struct bufferevent *up;
    snap_t last; /* latest progress */
    snap_t start[PH_COUNT], done[PH_COUNT];
    int has_start[PH_COUNT], has_done[PH_COUNT];
    msg_final_t *final;
    int gone;
} wk_t;

static struct {
    bench_opts_t *o;
    const scenario_t *sc;
    struct event_base *base;
    wk_t wk[BENCH_MAX_PROCS];
    int n;
    phase_t phase;
    double t0;
    result_t *res;
    struct event *progress_ev, *phase_ev, *drain_ev, *sigint_ev;
    int tty;
    int failed; /* a worker died */
    double drain_t0;
} co;

static void advance(void);

static void send_phase(phase_t ph)
{
    co.phase = ph;
    co.res->t_start[ph] = now_s();
    unsigned char b = (unsigned char)ph;
    for (int i = 0; i < co.n; i++)
        if (!co.wk[i].gone && write(co.wk[i].down, &b, 1) != 1)
            co.wk[i].gone = 1;
}

static int all_have(phase_t ph, int done)
{
    for (int i = 0; i < co.n; i++) {
        if (co.wk[i].gone)
            continue;
        if (!(done ? co.wk[i].has_done[ph] : co.wk[i].has_start[ph]))
            return 0;
    }
    return 1;
}

static void sum_last(snap_t *s)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < co.n; i++)
        snap_sum(s, &co.wk[i].last);
}

static void sample(proc_sample_t *s)
{
    if (co.res->server_pid > 0)
        procfs_sample(co.res->server_pid, s);
}

/* Both servers at a phase mark (the second only with s2s). */
static void sample_both(proc_sample_t *s, proc_sample_t *s2)
{
    sample(s);
    if (co.res->server2_pid > 0)
        procfs_sample(co.res->server2_pid, s2);
}

static void print_progress(void)
{
    if (co.o->json_only)
        return;
    snap_t s;
    sum_last(&s);
    proc_sample_t srv;
    memset(&srv, 0, sizeof(srv));
    sample(&srv);
    char line[400];
    int n = snprintf(line, sizeof(line), "%6.1fs %-7s logins %llu/%d", now_s() - co.t0,
                     phase_name(co.phase), (unsigned long long)s.c[C_LOGIN_OK], co.o->users);
    if (s.c[C_LOGIN_FAIL] > 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " (%llu failed)",
                      (unsigned long long)s.c[C_LOGIN_FAIL]);
    if (s.c[C_MSG_SENT] > 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " | msgs %llu sent %llu recv",
                      (unsigned long long)s.c[C_MSG_SENT], (unsigned long long)s.c[C_MSG_RECV]);
    if (s.c[C_PRES_RECV] > 0 || s.c[C_PRES_SENT] > 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " | presence %llu sent %llu recv",
                      (unsigned long long)s.c[C_PRES_SENT], (unsigned long long)s.c[C_PRES_RECV]);
    if (s.c[C_DISCONNECTS] > 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " | %llu lost",
                      (unsigned long long)s.c[C_DISCONNECTS]);
    if (srv.ok)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " | server %.0f MiB %.1f cpu-s",
                      (double)srv.rss_kib / 1024.0, srv.cpu_s - co.res->srv_before.cpu_s);
    if (co.tty)
        fprintf(stderr, "\r%-*s", n < 110 ? 110 : n, line);
    else
        fprintf(stderr, "%s\n", line);
}

static void on_progress(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    print_progress();
}

static void finish(void)
{
    if (co.phase >= PH_DONE)
        return;
    sample_both(&co.res->srv_end, &co.res->srv2_end);
    if (co.drain_ev != NULL)
        event_del(co.drain_ev);
    if (co.phase_ev != NULL)
        event_del(co.phase_ev);
    send_phase(PH_DONE);
}

static void on_phase_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (co.phase == PH_MEASURE) {
        sample_both(&co.res->srv_measure1, &co.res->srv2_measure1);
        send_phase(PH_DRAIN);
        co.drain_t0 = now_s();
        if (co.sc->has_drain) {
            struct timeval tv = {0, DRAIN_CHECK_US};
            event_add(co.drain_ev, &tv);
        }
    } else if (co.phase == PH_SETUP) {
        fprintf(stderr, "%stern-bench: the setup did not complete within %.0fs\n",
                co.tty ? "\n" : "", co.o->setup_timeout);
        co.res->setup_failed = 1;
        finish();
    }
    advance();
}

static void on_drain_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    snap_t s;
    sum_last(&s);
    if (!all_have(PH_DRAIN, 0))
        return;
    if (s.c[C_MSG_RECV] >= s.c[C_MSG_SENT] || now_s() - co.drain_t0 >= co.o->drain)
        finish();
}

static void start_measure(void)
{
    sample_both(&co.res->srv_measure0, &co.res->srv2_measure0);
    send_phase(PH_MEASURE);
    double secs = co.sc->measure_seconds(co.o);
    struct timeval tv = {(time_t)secs, (suseconds_t)((secs - floor(secs)) * 1e6)};
    event_add(co.phase_ev, &tv);
}

static uint64_t login_failures(void)
{
    uint64_t n = 0;
    for (int i = 0; i < co.n; i++)
        n += co.wk[i].done[PH_LOGIN].c[C_LOGIN_FAIL];
    return n;
}

/* Move on when every worker has done its part of the current phase. */
static void advance(void)
{
    switch (co.phase) {
    case PH_LOGIN:
        if (!all_have(PH_LOGIN, 1))
            return;
        co.res->t_done[PH_LOGIN] = now_s();
        sample_both(&co.res->srv_login, &co.res->srv2_login);
        if (co.sc->has_setup && login_failures() > 0) {
            /* A contact that is not online cannot approve a subscription. */
            fprintf(stderr, "%stern-bench: %llu logins failed: the setup cannot complete\n",
                    co.tty ? "\n" : "", (unsigned long long)login_failures());
            co.res->setup_failed = 1;
            finish();
        } else if (co.sc->has_setup) {
            send_phase(PH_SETUP);
            struct timeval tv = {(time_t)co.o->setup_timeout, 0};
            event_add(co.phase_ev, &tv);
        } else {
            start_measure();
        }
        return;
    case PH_SETUP:
        if (!all_have(PH_SETUP, 1))
            return;
        event_del(co.phase_ev);
        co.res->t_done[PH_SETUP] = now_s();
        if (co.o->setup_only)
            finish();
        else
            start_measure();
        return;
    case PH_DRAIN:
        if (!co.sc->has_drain && all_have(PH_DRAIN, 0))
            finish();
        return;
    case PH_DONE: {
        for (int i = 0; i < co.n; i++)
            if (!co.wk[i].gone && co.wk[i].final == NULL)
                return;
        event_base_loopexit(co.base, NULL);
        return;
    }
    default:
        return;
    }
}

static void on_message(wk_t *wk, const msg_snap_t *m, size_t len)
{
    phase_t ph = m->phase < PH_COUNT ? (phase_t)m->phase : PH_IDLE;
    wk->last = m->snap;
    switch (m->type) {
    case MSG_MARK_START:
        wk->start[ph] = m->snap;
        wk->has_start[ph] = 1;
        break;
    case MSG_MARK_DONE:
        wk->done[ph] = m->snap;
        wk->has_done[ph] = 1;
        break;
    case MSG_FINAL:
        if (len == sizeof(msg_final_t) && wk->final == NULL) {
            wk->final = malloc(sizeof(msg_final_t));
            if (wk->final != NULL)
                memcpy(wk->final, m, sizeof(msg_final_t));
        }
        break;
    default:
        break;
    }
    advance();
}

static void on_up_read(struct bufferevent *bev, void *arg)
{
    wk_t *wk = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t have = evbuffer_get_length(in);
        if (have < sizeof(uint32_t))
            return;
        uint32_t type;
        evbuffer_copyout(in, &type, sizeof(type));
        size_t need = type == MSG_FINAL ? sizeof(msg_final_t) : sizeof(msg_snap_t);
        if (have < need)
            return;
        unsigned char *p = evbuffer_pullup(in, (ssize_t)need);
        on_message(wk, (const msg_snap_t *)p, need);
        evbuffer_drain(in, need);
    }
}

static void on_up_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    wk_t *wk = arg;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    if (!wk->gone && wk->final == NULL) {
        fprintf(stderr, "%stern-bench: worker %d ended before reporting\n", co.tty ? "\n" : "",
                (int)(wk - co.wk));
        co.failed = 1;
    }
    wk->gone = 1;
    if (co.failed && co.phase < PH_DONE)
        finish();
    advance();
}

static void on_sigint(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (co.phase < PH_DONE) {
        co.res->interrupted = 1;
        if (co.phase == PH_MEASURE) { /* keep the window measured so far */
            sample_both(&co.res->srv_measure1, &co.res->srv2_measure1);
            send_phase(PH_DRAIN);
        }
        finish();
    } else {
        /* Second Ctrl-C: stop the workers and stop waiting for them. */
        for (int i = 0; i < co.n; i++)
            if (!co.wk[i].gone)
                kill(co.wk[i].pid, SIGTERM);
        event_base_loopexit(co.base, NULL);
    }
}

/* Fork the workers; returns the number started. */
static int spawn(void)
{
    for (int i = 0; i < co.o->processes; i++) {
        int up[2], down[2];
        if (pipe2(up, O_CLOEXEC) < 0 || pipe2(down, O_CLOEXEC) < 0) {
            perror("tern-bench: pipe");
            return i;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            perror("tern-bench: fork");
            close(up[0]), close(up[1]), close(down[0]), close(down[1]);
            return i;
        }
        if (pid == 0) {
            close(up[0]);
            close(down[1]);
            for (int j = 0; j < i; j++) { /* the pipes of the workers before */
                close(co.wk[j].down);
                close(bufferevent_getfd(co.wk[j].up));
            }
            /* exit(), not _exit(): the leak checker runs at exit. */
            exit(worker_main(co.o, co.sc, i, up[1], down[0]));
        }
        close(up[1]);
        close(down[0]);
        wk_t *wk = &co.wk[i];
        wk->pid = pid;
        wk->down = down[1];
        evutil_make_socket_nonblocking(up[0]);
        wk->up = bufferevent_socket_new(co.base, up[0], BEV_OPT_CLOSE_ON_FREE);
        bufferevent_setcb(wk->up, on_up_read, NULL, on_up_event, wk);
        bufferevent_enable(wk->up, EV_READ);
        co.n = i + 1;
    }
    return co.n;
}

static void collect(result_t *r)
{
    for (int i = 0; i < co.n; i++) {
        wk_t *wk = &co.wk[i];
        for (int ph = 0; ph < PH_COUNT; ph++) {
            if (wk->has_start[ph]) {
                snap_sum(&r->start[ph], &wk->start[ph]);
                r->have_start[ph] = 1;
            }
            if (wk->has_done[ph]) {
                snap_sum(&r->done[ph], &wk->done[ph]);
                r->have_done[ph] = 1;
            }
        }
        const snap_t *fin = wk->final != NULL ? &wk->final->head.snap : &wk->last;
        snap_sum(&r->final, fin);
        r->tool_cpu_s += fin->cpu_s;
        if (fin->last_login_t > r->last_login_t)
            r->last_login_t = fin->last_login_t;
        if (wk->final != NULL)
            for (int h = 0; h < H_COUNT; h++)
                hist_merge(&r->hist[h], &wk->final->hist[h]);
        /* The tool's CPU per process in the phase that is measured. */
        phase_t a = co.sc->bound_phase, b = (phase_t)(a + 1);
        const snap_t *s0 = wk->has_start[a] ? &wk->start[a] : NULL;
        const snap_t *s1 = a == PH_LOGIN ? (wk->has_done[a] ? &wk->done[a] : NULL)
                                         : (wk->has_start[b] ? &wk->start[b] : NULL);
        if (s0 != NULL && s1 != NULL && s1->t - s0->t > 0.05) {
            double pct = 100.0 * (s1->cpu_s - s0->cpu_s) / (s1->t - s0->t);
            if (pct > r->tool_cpu_max_pct)
                r->tool_cpu_max_pct = pct;
        }
    }
    r->tool_cpu_s += self_cpu_s();
    r->tool_bound = r->tool_cpu_max_pct > co.o->tool_bound_pct;
}

int coord_main(bench_opts_t *o, const scenario_t *sc)
{
    result_t *res = calloc(1, sizeof(*res));
    if (res == NULL)
        return 1;
    memset(&co, 0, sizeof(co));
    co.o = o;
    co.sc = sc;
    co.res = res;
    res->o = o;
    res->sc = sc;
    const char *why = NULL;
    res->server_pid = procfs_find_server(o, &why);
    if (res->server_pid < 0) {
        fprintf(stderr, "tern-bench: %s\n", why);
        free(res);
        return 2;
    }
    res->server2_pid = procfs_find_server2(o, &why);
    if (res->server2_pid < 0) {
        fprintf(stderr, "tern-bench: second server: %s\n", why);
        free(res);
        return 2;
    }
    if (bench_resolve(o) < 0) {
        free(res);
        return 1;
    }
    co.tty = isatty(2);
    co.base = event_base_new();
    if (co.base == NULL) {
        free(res);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (spawn() < o->processes) {
        for (int i = 0; i < co.n; i++)
            kill(co.wk[i].pid, SIGTERM);
        o->processes = 0;
    }
    int rc = 0;
    if (o->processes > 0) {
        co.progress_ev = event_new(co.base, -1, EV_PERSIST, on_progress, NULL);
        co.phase_ev = evtimer_new(co.base, on_phase_timer, NULL);
        co.drain_ev = event_new(co.base, -1, EV_PERSIST, on_drain_check, NULL);
        co.sigint_ev = evsignal_new(co.base, SIGINT, on_sigint, NULL);
        event_add(co.sigint_ev, NULL);
        struct timeval tv = {PROGRESS_S, 0};
        event_add(co.progress_ev, &tv);
        co.t0 = now_s();
        sample_both(&res->srv_before, &res->srv2_before);
        send_phase(PH_LOGIN);
        event_base_dispatch(co.base);
        if (co.tty && !o->json_only)
            fprintf(stderr, "\n");
        res->workers = co.n;
        collect(res);
        report_t *rep = calloc(1, sizeof(*rep));
        if (rep != NULL) {
            report_build(rep, res);
            report_print(rep, o->json_only);
            free(rep);
        }
        if (co.failed || res->setup_failed || res->final.c[C_LOGIN_OK] == 0)
            rc = 1;
        else if (res->interrupted)
            rc = 130;
        else if (res->tool_bound)
            rc = 3;
        event_free(co.progress_ev);
        event_free(co.phase_ev);
        event_free(co.drain_ev);
        event_free(co.sigint_ev);
    } else {
        rc = 1;
    }
    for (int i = 0; i < co.n; i++) {
        int st;
        close(co.wk[i].down);
        bufferevent_free(co.wk[i].up);
        free(co.wk[i].final);
        if (waitpid(co.wk[i].pid, &st, 0) == co.wk[i].pid &&
            !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            rc = rc == 0 ? 1 : rc;
    }
    event_base_free(co.base);
    free(res);
    return rc;
}
