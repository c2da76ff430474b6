/*
 * main.c — tern-bench's command line.
 *
 * Owns the options (getopt_long, every value checked with a clear error),
 * the user names and passwords derived from --user-format and
 * --password(-format), the file-descriptor limit, and the choice between
 * a load run (coord.c), `tern-bench provision` (provision.c) and
 * `tern-bench floor` (floor.c).
 * Exit status: 0 done, 1 the run failed (no login, a worker died, the
 * setup did not complete), 2 usage error, 3 tool bound (the figures are
 * the tool's limit, not the server's), 130 interrupted (Ctrl-C; the
 * figures measured so far are printed).
 */
#ifdef HAVE_CONFIG_H
#include "autoconfig.h"
#endif

#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define EXIT_USAGE 2
#define FD_SPARE   64 /* descriptors a worker needs besides its connections */

enum {
    O_SERVER = 256,
    O_PORT,
    O_DIRECT_TLS,
    O_DOMAIN,
    O_USERS,
    O_FIRST_USER,
    O_USER_FORMAT,
    O_PASSWORD,
    O_PASSWORD_FORMAT,
    O_RESOURCE,
    O_MECHANISM,
    O_SCENARIO,
    O_RATE,
    O_DURATION,
    O_HOLD,
    O_MSG_RATE,
    O_ROSTER,
    O_PRESENCE_RATE,
    O_SETUP,
    O_SETUP_TIMEOUT,
    O_LOGIN_TIMEOUT,
    O_DRAIN,
    O_BODY_SIZE,
    O_PROCESSES,
    O_SOURCE_IPS,
    O_SERVER_PID,
    O_SERVER_PIDFILE,
    O_SERVER_NAME,
    O_JSON_ONLY,
    O_TOOL_BOUND,
    O_SERVER_TYPE,
    O_CTL,
    O_CTL_CONFIG,
    O_SERVER2,
    O_PORT2,
    O_DOMAIN2,
    O_LINKS,
    O_SERVER2_PID,
    O_SERVER2_PIDFILE,
    O_SERVER2_NAME,
    O_HELP,
    O_VERSION
};

static const struct option long_opts[] = {
    {"server", required_argument, NULL, O_SERVER},
    {"port", required_argument, NULL, O_PORT},
    {"direct-tls", no_argument, NULL, O_DIRECT_TLS},
    {"domain", required_argument, NULL, O_DOMAIN},
    {"users", required_argument, NULL, O_USERS},
    {"first-user", required_argument, NULL, O_FIRST_USER},
    {"user-format", required_argument, NULL, O_USER_FORMAT},
    {"password", required_argument, NULL, O_PASSWORD},
    {"password-format", required_argument, NULL, O_PASSWORD_FORMAT},
    {"resource", required_argument, NULL, O_RESOURCE},
    {"mechanism", required_argument, NULL, O_MECHANISM},
    {"scenario", required_argument, NULL, O_SCENARIO},
    {"rate", required_argument, NULL, O_RATE},
    {"duration", required_argument, NULL, O_DURATION},
    {"hold", required_argument, NULL, O_HOLD},
    {"msg-rate", required_argument, NULL, O_MSG_RATE},
    {"roster", required_argument, NULL, O_ROSTER},
    {"presence-rate", required_argument, NULL, O_PRESENCE_RATE},
    {"setup", no_argument, NULL, O_SETUP},
    {"setup-timeout", required_argument, NULL, O_SETUP_TIMEOUT},
    {"login-timeout", required_argument, NULL, O_LOGIN_TIMEOUT},
    {"drain", required_argument, NULL, O_DRAIN},
    {"body-size", required_argument, NULL, O_BODY_SIZE},
    {"processes", required_argument, NULL, O_PROCESSES},
    {"source-ips", required_argument, NULL, O_SOURCE_IPS},
    {"server-pid", required_argument, NULL, O_SERVER_PID},
    {"server-pidfile", required_argument, NULL, O_SERVER_PIDFILE},
    {"server-name", required_argument, NULL, O_SERVER_NAME},
    {"json-only", no_argument, NULL, O_JSON_ONLY},
    {"tool-bound-pct", required_argument, NULL, O_TOOL_BOUND},
    {"server-type", required_argument, NULL, O_SERVER_TYPE},
    {"ctl", required_argument, NULL, O_CTL},
    {"ctl-config", required_argument, NULL, O_CTL_CONFIG},
    {"server2", required_argument, NULL, O_SERVER2},
    {"port2", required_argument, NULL, O_PORT2},
    {"domain2", required_argument, NULL, O_DOMAIN2},
    {"links", required_argument, NULL, O_LINKS},
    {"server2-pid", required_argument, NULL, O_SERVER2_PID},
    {"server2-pidfile", required_argument, NULL, O_SERVER2_PIDFILE},
    {"server2-name", required_argument, NULL, O_SERVER2_NAME},
    {"help", no_argument, NULL, O_HELP},
    {"version", no_argument, NULL, O_VERSION},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: tern-bench [OPTIONS]                 run a scenario against a server\n"
               "       tern-bench provision [OPTIONS]       create the accounts\n"
               "       tern-bench floor [--cpus A,B]        the machine's own latency floor\n"
               "\n"
               "Scenarios (--scenario):\n");
    scenario_list(f);
    fprintf(f, "\n"
               "Server and accounts:\n"
               "  --server HOST          address to connect to (127.0.0.1)\n"
               "  --port N               port (5222, or 5223 with --direct-tls)\n"
               "  --direct-tls           TLS from the first byte (XEP-0368), not STARTTLS\n"
               "  --domain D             XMPP domain of the accounts (localhost)\n"
               "  --users N              accounts, one connection each (100)\n"
               "  --first-user N         number of the first account (1)\n"
               "  --user-format FMT      account names, printf with one %%d (u%%d)\n"
               "  --password P           password of every account (password)\n"
               "  --password-format FMT  per-account password, printf with one %%d\n"
               "  --resource R           resource to bind (bench)\n"
               "  --mechanism M          SCRAM-SHA-1, SCRAM-SHA-256 or auto: the strongest\n"
               "                         of the two the server offers (auto)\n"
               "Load:\n"
               "  --scenario S           connect, chat, presence or s2s (connect)\n"
               "  --rate R               logins per second, all processes (100)\n"
               "  --login-timeout S      seconds one login may take (60)\n"
               "  --hold S               connect: seconds to hold the idle sessions (5)\n"
               "  --duration S           chat, presence: seconds measured (10)\n"
               "  --msg-rate R           chat, s2s: messages per second, all senders (1000)\n"
               "  --drain S              chat: seconds to wait for messages in flight (5)\n"
               "  --body-size MIN[-MAX]  chat: body length in bytes, log-uniform in MIN..MAX\n"
               "  --roster K             presence: contacts per user (10)\n"
               "  --presence-rate R      presence: offline/online changes per second (100)\n"
               "  --setup                presence: make the rosters, then stop\n"
               "  --setup-timeout S      presence: seconds the roster setup may take (120)\n"
               "  --processes P          load processes, each with users/P connections (1)\n"
               "  --source-ips A-B       bind connections to source addresses A..B (IPv4),\n"
               "                         round robin, e.g. 127.0.0.1-127.0.0.250\n"
               "Second server (s2s: u1..uN of --domain chat with u1..uN of --domain2):\n"
               "  --server2 HOST[:PORT]  address of the second server\n"
               "  --port2 N              its port (the first server's)\n"
               "  --domain2 D            its domain (required by s2s)\n"
               "  --links N              s2s: user 1 of --domain also asks l1..lN.DOMAIN2\n"
               "                         (domains of the second server) for disco#info:\n"
               "                         a link each, for the memory per connection\n"
               "  --server2-pid PID      its process for CPU and memory from /proc\n"
               "  --server2-pidfile FILE ... or its pid file\n"
               "  --server2-name NAME    ... or its process name (comm)\n"
               "Measurement and output:\n"
               "  --server-pid PID       server process for CPU and memory from /proc\n"
               "  --server-pidfile FILE  ... or its pid file\n"
               "  --server-name NAME     ... or its process name (comm), e.g. ternd\n"
               "  --tool-bound-pct P     a load process busier than P%% of a core marks the\n"
               "                         run tool bound (90)\n"
               "  --json-only            print only the JSON line\n"
               "Provisioning (tern-bench provision):\n"
               "  --server-type T        tern, prosody or ejabberd (tern)\n"
               "  --ctl PATH             the server's admin tool (ternctl, prosodyctl,\n"
               "                         ejabberdctl)\n"
               "  --ctl-config FILE      configuration for it (ternctl -c FILE)\n"
               "                         (--processes admin tools run at once)\n"
               "\n"
               "  --help, --version\n"
               "\n"
               "Progress goes to stderr; the results to stdout, as a table and then one\n"
               "JSON line (--json-only: the JSON line alone).  Exit status: 0 done, 1 the\n"
               "run failed, 2 usage error, 3 tool bound (the figures are not the server's),\n"
               "130 interrupted by Ctrl-C (what was measured is printed).\n");
}

static int bad(const char *fmt, const char *arg)
{
    fprintf(stderr, "tern-bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see --help)\n");
    return -1;
}

static int parse_double(const char *s, const char *name, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "tern-bench: %s: '%s' is not a number from %g to %g\n", name, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_int(const char *s, const char *name, long min, long max, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "tern-bench: %s: '%s' is not a whole number from %ld to %ld\n", name, s,
                min, max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* A printf format with exactly one %d (flags and width allowed) and
 * otherwise only %%: the prefix and suffix lengths around it. */
static int check_format(const char *fmt, size_t *pre, size_t *conv_len)
{
    int convs = 0;
    for (const char *p = fmt; *p != '\0'; p++) {
        if (*p != '%')
            continue;
        if (p[1] == '%') {
            p++;
            continue;
        }
        const char *q = p + 1;
        while (*q == '0' || *q == '-' || *q == ' ' || *q == '+')
            q++;
        while (*q >= '0' && *q <= '9')
            q++;
        if (*q != 'd')
            return -1;
        if (convs++ == 0 && pre != NULL) {
            *pre = (size_t)(p - fmt);
            *conv_len = (size_t)(q + 1 - p);
        }
        p = q;
    }
    return convs == 1 ? 0 : -1;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static int user_number(const bench_opts_t *o, int idx)
{
    return o->first_user + (o->sites > 1 ? idx / o->sites : idx);
}

void bench_user_name(const bench_opts_t *o, int idx, char *buf, size_t size)
{
    snprintf(buf, size, o->user_format, user_number(o, idx));
}

void bench_user_password(const bench_opts_t *o, int idx, char *buf, size_t size)
{
    if (o->password_format != NULL)
        snprintf(buf, size, o->password_format, user_number(o, idx));
    else
        snprintf(buf, size, "%s", o->password);
}
#pragma GCC diagnostic pop

int bench_site(const bench_opts_t *o, int idx)
{
    return o->sites > 1 ? idx % o->sites : 0;
}

const char *bench_user_domain(const bench_opts_t *o, int idx)
{
    return bench_site(o, idx) == 1 && o->domain2 != NULL ? o->domain2 : o->domain;
}

int bench_user_index(const bench_opts_t *o, const char *jid)
{
    size_t pre = 0, conv = 0;
    if (check_format(o->user_format, &pre, &conv) < 0)
        return -1;
    if (strncmp(jid, o->user_format, pre) != 0)
        return -1;
    const char *p = jid + pre;
    char *end;
    errno = 0;
    long n = strtol(p, &end, 10);
    if (end == p || errno != 0)
        return -1;
    long idx = n - o->first_user;
    if (idx < 0 || idx >= o->users)
        return -1;
    /* The whole localpart must be this user's name (padding, suffix). */
    char name[BENCH_NAME_MAX];
    bench_user_name(o, (int)idx, name, sizeof(name));
    size_t nl = strlen(name);
    if (strncmp(jid, name, nl) != 0 || jid[nl] != '@')
        return -1;
    size_t dl = strlen(o->domain);
    if (strncmp(jid + nl + 1, o->domain, dl) != 0 ||
        (jid[nl + 1 + dl] != '\0' && jid[nl + 1 + dl] != '/'))
        return -1;
    return (int)idx;
}

static int parse_ips(const char *s, bench_opts_t *o)
{
    char a[64], b[64];
    const char *dash = strchr(s, '-');
    size_t al = dash != NULL ? (size_t)(dash - s) : strlen(s);
    if (al >= sizeof(a) || (dash != NULL && strlen(dash + 1) >= sizeof(b)))
        return bad("--source-ips: '%s' is not A-B with IPv4 addresses", s);
    memcpy(a, s, al);
    a[al] = '\0';
    snprintf(b, sizeof(b), "%s", dash != NULL ? dash + 1 : a);
    struct in_addr ia, ib;
    if (inet_pton(AF_INET, a, &ia) != 1 || inet_pton(AF_INET, b, &ib) != 1)
        return bad("--source-ips: '%s' is not A-B with IPv4 addresses", s);
    o->src_first = ntohl(ia.s_addr);
    o->src_last = ntohl(ib.s_addr);
    if (o->src_first == 0 || o->src_last < o->src_first)
        return bad("--source-ips: '%s': the range is empty", s);
    return 0;
}

/* --body-size MIN[-MAX]: bytes, 1 to 16 MiB. */
static int parse_body_size(const char *s, bench_opts_t *o)
{
    char *end;
    errno = 0;
    long lo = strtol(s, &end, 10), hi = lo;
    if (errno == 0 && end != s && *end == '-') {
        const char *h = end + 1;
        hi = strtol(h, &end, 10);
        if (end == h)
            end = (char *)s;
    }
    if (errno != 0 || end == s || *end != '\0' || lo < 1 || hi < lo || hi > 16L * 1024 * 1024)
        return bad("--body-size: '%s' is not MIN or MIN-MAX bytes (1 to 16777216)", s);
    o->body_min = lo;
    o->body_max = hi;
    return 0;
}

static int parse_args(int argc, char **argv, bench_opts_t *o, int provision)
{
    int c;
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        int r = 0;
        switch (c) {
        case O_SERVER:
            o->server = optarg;
            break;
        case O_PORT:
            r = parse_int(optarg, "--port", 1, 65535, &o->port);
            break;
        case O_DIRECT_TLS:
            o->direct_tls = 1;
            break;
        case O_DOMAIN:
            o->domain = optarg;
            break;
        case O_USERS:
            r = parse_int(optarg, "--users", 1, 10000000, &o->users);
            break;
        case O_FIRST_USER:
            r = parse_int(optarg, "--first-user", 0, 1000000000, &o->first_user);
            break;
        case O_USER_FORMAT:
            o->user_format = optarg;
            if (check_format(optarg, NULL, NULL) < 0)
                r = bad("--user-format: '%s' needs exactly one %%d and no other conversion",
                        optarg);
            break;
        case O_PASSWORD:
            o->password = optarg;
            break;
        case O_PASSWORD_FORMAT:
            o->password_format = optarg;
            if (check_format(optarg, NULL, NULL) < 0)
                r = bad("--password-format: '%s' needs exactly one %%d and no other conversion",
                        optarg);
            break;
        case O_RESOURCE:
            o->resource = optarg;
            break;
        case O_MECHANISM:
            if (strcmp(optarg, "SCRAM-SHA-1") == 0)
                o->mech = MECH_SHA1;
            else if (strcmp(optarg, "SCRAM-SHA-256") == 0)
                o->mech = MECH_SHA256;
            else if (strcmp(optarg, "auto") == 0)
                o->mech = MECH_AUTO;
            else
                r = bad("--mechanism: '%s' is not SCRAM-SHA-1, SCRAM-SHA-256 or auto", optarg);
            break;
        case O_SCENARIO:
            o->scenario = optarg;
            break;
        case O_RATE:
            r = parse_double(optarg, "--rate", 0.001, 1e7, &o->rate);
            break;
        case O_DURATION:
            r = parse_double(optarg, "--duration", 0.001, 1e6, &o->duration);
            break;
        case O_HOLD:
            r = parse_double(optarg, "--hold", 0, 1e6, &o->hold);
            break;
        case O_MSG_RATE:
            r = parse_double(optarg, "--msg-rate", 0.001, 1e8, &o->msg_rate);
            break;
        case O_ROSTER:
            r = parse_int(optarg, "--roster", 1, 100000, &o->roster_k);
            break;
        case O_PRESENCE_RATE:
            r = parse_double(optarg, "--presence-rate", 0.001, 1e8, &o->presence_rate);
            break;
        case O_SETUP:
            o->setup_only = 1;
            break;
        case O_SETUP_TIMEOUT:
            r = parse_double(optarg, "--setup-timeout", 1, 1e6, &o->setup_timeout);
            break;
        case O_LOGIN_TIMEOUT:
            r = parse_double(optarg, "--login-timeout", 0.1, 1e5, &o->login_timeout);
            break;
        case O_DRAIN:
            r = parse_double(optarg, "--drain", 0, 3600, &o->drain);
            break;
        case O_BODY_SIZE:
            r = parse_body_size(optarg, o);
            break;
        case O_PROCESSES:
            r = parse_int(optarg, "--processes", 1, BENCH_MAX_PROCS, &o->processes);
            break;
        case O_SOURCE_IPS:
            r = parse_ips(optarg, o);
            break;
        case O_SERVER_PID: {
            int pid = 0;
            r = parse_int(optarg, "--server-pid", 1, 0x7fffffff, &pid);
            o->server_pid = pid;
            break;
        }
        case O_SERVER_PIDFILE:
            o->server_pidfile = optarg;
            break;
        case O_SERVER_NAME:
            o->server_name = optarg;
            break;
        case O_SERVER2: {
            /* HOST:PORT when there is exactly one colon (not IPv6) */
            const char *colon = strchr(optarg, ':');
            if (colon != NULL && strchr(colon + 1, ':') == NULL) {
                static char host[256];
                size_t hl = (size_t)(colon - optarg);
                if (hl == 0 || hl >= sizeof(host))
                    return bad("--server2: '%s' is not HOST[:PORT]", optarg);
                memcpy(host, optarg, hl);
                host[hl] = '\0';
                o->server2 = host;
                r = parse_int(colon + 1, "--server2 (port)", 1, 65535, &o->port2);
            } else {
                o->server2 = optarg;
            }
            break;
        }
        case O_PORT2:
            r = parse_int(optarg, "--port2", 1, 65535, &o->port2);
            break;
        case O_DOMAIN2:
            o->domain2 = optarg;
            break;
        case O_LINKS:
            r = parse_int(optarg, "--links", 0, 10000, &o->links);
            break;
        case O_SERVER2_PID: {
            int pid = 0;
            r = parse_int(optarg, "--server2-pid", 1, 0x7fffffff, &pid);
            o->server2_pid = pid;
            break;
        }
        case O_SERVER2_PIDFILE:
            o->server2_pidfile = optarg;
            break;
        case O_SERVER2_NAME:
            o->server2_name = optarg;
            break;
        case O_JSON_ONLY:
            o->json_only = 1;
            break;
        case O_TOOL_BOUND:
            r = parse_double(optarg, "--tool-bound-pct", 0, 100000, &o->tool_bound_pct);
            break;
        case O_SERVER_TYPE:
            if (strcmp(optarg, "tern") != 0 && strcmp(optarg, "prosody") != 0 &&
                strcmp(optarg, "ejabberd") != 0)
                r = bad("--server-type: '%s' is not tern, prosody or ejabberd", optarg);
            o->server_type = optarg;
            break;
        case O_CTL:
            o->ctl = optarg;
            break;
        case O_CTL_CONFIG:
            o->ctl_config = optarg;
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        case O_VERSION:
            printf("tern-bench %s\n", PACKAGE_VERSION);
            exit(0);
        default:
            return -1;
        }
        if (r < 0)
            return -1;
    }
    if (optind < argc)
        return bad("unexpected argument '%s'", argv[optind]);
    if (o->port == 0)
        o->port = o->direct_tls ? 5223 : 5222;
    if (provision)
        return 0;
    if (o->src_first != 0 && strchr(o->server, ':') != NULL)
        return bad("--source-ips: IPv4 only, and the server '%s' is IPv6", o->server);
    if ((o->server_pid > 0) + (o->server_pidfile != NULL) + (o->server_name != NULL) > 1)
        return bad("%s", "give one of --server-pid, --server-pidfile, --server-name");
    if ((o->server2_pid > 0) + (o->server2_pidfile != NULL) + (o->server2_name != NULL) > 1)
        return bad("%s", "give one of --server2-pid, --server2-pidfile, --server2-name");
    if (o->processes > o->users)
        o->processes = o->users;
    return 0;
}

/* Raise the soft limit on open files to the hard limit, and check that
 * each worker's share of connections fits. */
static int raise_nofile(const bench_opts_t *o)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    rlim_t need = (rlim_t)((o->users + o->processes - 1) / o->processes) + FD_SPARE;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        fprintf(stderr,
                "tern-bench: %llu connections per process need %llu open files, the limit is "
                "%llu: raise it (ulimit -n) or use more --processes\n",
                (unsigned long long)(need - FD_SPARE), (unsigned long long)need,
                (unsigned long long)rl.rlim_cur);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts_t o = {
        .server = "127.0.0.1",
        .domain = "localhost",
        .users = 100,
        .first_user = 1,
        .user_format = "u%d",
        .password = "password",
        .resource = "bench",
        .scenario = "connect",
        .rate = 100,
        .duration = 10,
        .hold = 5,
        .msg_rate = 1000,
        .roster_k = 10,
        .presence_rate = 100,
        .setup_timeout = 120,
        .login_timeout = 60,
        .drain = 5,
        .processes = 1,
        .tool_bound_pct = 90,
        .server_type = "tern",
        .sites = 1,
    };
    if (argc > 1 && strcmp(argv[1], "floor") == 0)
        return floor_main(argc - 1, argv + 1);
    int provision = argc > 1 && strcmp(argv[1], "provision") == 0;
    if (provision) {
        argv[1] = argv[0];
        argc--;
        argv++;
    }
    if (parse_args(argc, argv, &o, provision) < 0)
        return EXIT_USAGE;
    if (provision)
        return provision_main(&o);

    const scenario_t *sc = scenario_find(o.scenario);
    if (sc == NULL) {
        fprintf(stderr, "tern-bench: --scenario: '%s' is not one of:\n", o.scenario);
        scenario_list(stderr);
        return EXIT_USAGE;
    }
    const char *why = NULL;
    if (sc->check != NULL && sc->check(&o, &why) < 0) {
        fprintf(stderr, "tern-bench: %s: %s\n", sc->name, why);
        return EXIT_USAGE;
    }
    if (o.setup_only && !sc->has_setup) {
        fprintf(stderr, "tern-bench: --setup: the %s scenario has no setup\n", sc->name);
        return EXIT_USAGE;
    }
    if (raise_nofile(&o) < 0)
        return 1;
    o.run_id = ((unsigned long)getpid() * 1000003ul) ^ (unsigned long)time(NULL);
    return coord_main(&o, sc);
}
