/*
 * report.c — the results of a run, as one JSON line and a table.
 *
 * Owns the figures every scenario shares (logins, login time, the
 * server's memory and CPU from /proc, the tool's own CPU and whether it
 * was the bottleneck) and the output format: a human table on stdout,
 * then the JSON object on one line (the last line, for scripts), or only
 * the JSON with --json-only.  Scenarios add their figures through
 * report_num() and friends; a figure that needs the server's pid is null
 * without one.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void add(report_t *r, const char *key, const char *label, int kind, double v, int dec,
                const char *s, const char *unit)
{
    if (r->n >= REPORT_MAX)
        return;
    r->e[r->n].key = key;
    r->e[r->n].label = label;
    r->e[r->n].kind = kind;
    r->e[r->n].num = v;
    r->e[r->n].decimals = dec;
    r->e[r->n].str = s;
    r->e[r->n].unit = unit;
    r->n++;
}

void report_num(report_t *r, const char *key, const char *label, double v, int decimals,
                const char *unit)
{
    add(r, key, label, isfinite(v) ? 0 : 3, v, decimals, NULL, unit);
}

void report_str(report_t *r, const char *key, const char *label, const char *s)
{
    add(r, key, label, 1, 0, 0, s, NULL);
}

void report_bool(report_t *r, const char *key, const char *label, int b)
{
    add(r, key, label, 2, b, 0, NULL, NULL);
}

void report_srv(report_t *r, const result_t *res, const char *key, const char *label, double v,
                int decimals, const char *unit)
{
    if (res->server_pid > 0 && res->srv_before.ok)
        report_num(r, key, label, v, decimals, unit);
    else
        add(r, key, label, 3, 0, 0, NULL, unit);
}

uint64_t res_delta(const result_t *res, int counter, phase_t from, phase_t to)
{
    if (!res->have_start[from])
        return 0;
    const snap_t *end = res->have_start[to] ? &res->start[to] : &res->final;
    return end->c[counter] - res->start[from].c[counter];
}

double res_window(const result_t *res, phase_t from, phase_t to)
{
    if (res->t_start[from] <= 0)
        return NAN; /* the phase never ran: null in the report */
    double end = res->t_start[to] > 0 ? res->t_start[to] : now_s();
    return end - res->t_start[from];
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

void report_print(const report_t *r, int json_only)
{
    if (!json_only) {
        int width = 0;
        for (int i = 0; i < r->n; i++)
            if (r->e[i].label != NULL && (int)strlen(r->e[i].label) > width)
                width = (int)strlen(r->e[i].label);
        for (int i = 0; i < r->n; i++) {
            const report_entry_t *e = &r->e[i];
            if (e->label == NULL)
                continue;
            printf("  %-*s  ", width, e->label);
            switch (e->kind) {
            case 0:
                printf("%.*f", e->decimals, e->num);
                break;
            case 1:
                printf("%s", e->str);
                break;
            case 2:
                printf("%s", e->num != 0 ? "yes" : "no");
                break;
            default:
                printf("n/a");
                break;
            }
            if (e->unit != NULL && e->kind == 0)
                printf(" %s", e->unit);
            printf("\n");
        }
    }
    printf("{");
    for (int i = 0; i < r->n; i++) {
        const report_entry_t *e = &r->e[i];
        if (i > 0)
            printf(", ");
        json_string(stdout, e->key);
        printf(": ");
        switch (e->kind) {
        case 0:
            printf("%.*f", e->decimals, e->num);
            break;
        case 1:
            json_string(stdout, e->str);
            break;
        case 2:
            printf("%s", e->num != 0 ? "true" : "false");
            break;
        default:
            printf("null");
            break;
        }
    }
    printf("}\n");
    fflush(stdout);
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

void report_build(report_t *r, const result_t *res)
{
    const bench_opts_t *o = res->o;
    static char server[300];
    snprintf(server, sizeof(server), strchr(o->server, ':') != NULL ? "[%s]:%d" : "%s:%d",
             o->server, o->port);
    report_str(r, "scenario", "scenario", res->sc->name);
    report_str(r, "server", "server", server);
    report_str(r, "tls", "TLS", o->direct_tls ? "direct" : "starttls");
    uint64_t m1 = res->final.c[C_MECH_SHA1], m256 = res->final.c[C_MECH_SHA256];
    report_str(r, "mechanism", "SASL mechanism",
               m1 > 0 && m256 > 0 ? "mixed"
               : m1 > 0           ? "SCRAM-SHA-1"
               : m256 > 0         ? "SCRAM-SHA-256"
                                  : "none");
    report_num(r, "users", "users", o->users, 0, NULL);
    report_num(r, "processes", "load processes", o->processes, 0, NULL);
    report_num(r, "rate", "login rate asked", o->rate, 1, "/s");

    uint64_t ok = res->final.c[C_LOGIN_OK];
    double login_time = ok > 0 ? res->last_login_t - res->t_start[PH_LOGIN] : 0;
    report_num(r, "logins_ok", "logins ok", (double)ok, 0, NULL);
    report_num(r, "logins_failed", "logins failed", (double)res->final.c[C_LOGIN_FAIL], 0, NULL);
    report_num(r, "login_time_s", "login ramp time", login_time, 3, "s");
    report_num(r, "logins_per_s", "logins/s", login_time > 0 ? (double)ok / login_time : NAN, 1,
               NULL);
    const hist_t *lh = &res->hist[H_LOGIN];
    report_num(r, "login_ms_p50", "login time p50", q_ms(lh, 0.5), 2, "ms");
    report_num(r, "login_ms_p99", "login time p99", q_ms(lh, 0.99), 2, "ms");
    report_num(r, "login_ms_max", "login time max", lh->count > 0 ? ms(lh->max) : NAN, 2, "ms");
    report_num(r, "disconnects", "connections lost", (double)res->final.c[C_DISCONNECTS], 0, NULL);
    report_num(r, "stanza_errors", "error stanzas received", (double)res->final.c[C_STANZA_ERRORS],
               0, NULL);

    const proc_sample_t *b = &res->srv_before, *e = &res->srv_end;
    if (res->server_pid > 0)
        report_num(r, "server_pid", "server pid", res->server_pid, 0, NULL);
    else
        report_srv(r, res, "server_pid", "server pid", 0, 0, NULL);
    report_srv(r, res, "server_rss_before_kib", "server RSS before", (double)b->rss_kib, 0, "KiB");
    report_srv(r, res, "server_rss_after_kib", "server RSS with the sessions", (double)e->rss_kib,
               0, "KiB");
    report_srv(r, res, "server_rss_per_session_kib", "server RSS per session",
               ok > 0 ? (double)(e->rss_kib - b->rss_kib) / (double)ok : NAN, 2, "KiB");
    report_srv(r, res, "server_rss_peak_kib", "server RSS peak", (double)e->hwm_kib, 0, "KiB");
    report_srv(r, res, "server_cpu_s", "server CPU", e->cpu_s - b->cpu_s, 2, "s");
    report_srv(r, res, "server_cpu_login_s", "server CPU during logins",
               res->srv_login.cpu_s - b->cpu_s, 2, "s");
    report_srv(r, res, "server_threads", "server threads", e->threads, 0, NULL);

    if (res->sc->report != NULL)
        res->sc->report(r, res);

    report_num(r, "tool_cpu_s", "tool CPU", res->tool_cpu_s, 2, "s");
    report_num(r, "tool_cpu_max_pct", "tool CPU, busiest process", res->tool_cpu_max_pct, 1, "%");
    report_bool(r, "tool_bound", "tool bound (figures are the tool's limit)", res->tool_bound);
    report_bool(r, "interrupted", "interrupted", res->interrupted);
}
