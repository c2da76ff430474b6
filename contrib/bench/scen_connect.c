/*
 * scen_connect.c — the `connect` scenario: many idle sessions.
 *
 * Owns what connect adds to the common run: nothing happens after the
 * logins (each session is authenticated, bound, has fetched its roster
 * and sent its presence), the sessions are held idle for --hold seconds,
 * and the report gives the server's CPU for the logins and while idle.
 * The login rate, memory per session and the rest are common figures
 * (report.c).  tool_bound looks at the login ramp: SCRAM's PBKDF2 makes
 * a login cost the client more CPU than the server.
 */
#include "bench.h"

#include <math.h>

static int check(bench_opts_t *o, const char **why)
{
    if (o->hold < 0) {
        *why = "--hold must not be negative";
        return -1;
    }
    return 0;
}

static double measure_seconds(const bench_opts_t *o)
{
    return o->hold;
}

static void report(report_t *r, const result_t *res)
{
    uint64_t ok = res->final.c[C_LOGIN_OK];
    double cpu_login = res->srv_login.cpu_s - res->srv_before.cpu_s;
    report_num(r, "hold_s", "idle hold", res_window(res, PH_MEASURE, PH_DRAIN), 1, "s");
    report_srv(r, res, "server_cpu_per_login_ms", "server CPU per login",
               ok > 0 ? cpu_login * 1000.0 / (double)ok : NAN, 3, "ms");
    report_srv(r, res, "server_cpu_hold_s", "server CPU while idle",
               res->srv_measure1.cpu_s - res->srv_measure0.cpu_s, 2, "s");
}

const scenario_t scen_connect = {
    .name = "connect",
    .summary = "N authenticated, bound, idle sessions: logins/s and memory per session",
    .check = check,
    .measure_seconds = measure_seconds,
    .bound_phase = PH_LOGIN,
    .report = report,
};
