/*
 * bench.h — shared declarations of tern-bench, the XMPP load generator.
 *
 * Owns the types every part of the tool sees: the options, the phases of
 * a run, the counters and histograms a worker keeps, the messages a
 * worker sends its parent over a pipe, and the scenario interface.  The
 * process layout is one coordinator (coord.c) and --processes workers
 * (worker.c), each worker running --users/P client connections
 * (client.c) on its own libevent loop.  A scenario (scen_*.c) plugs into
 * the worker through the hooks of scenario_t and into the report through
 * its report() callback; adding one (group chat, say) means one new file
 * and one line in scenario.c.
 */
#ifndef TERN_BENCH_H
#define TERN_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "link.h"

#define BENCH_MAX_PROCS 256
#define BENCH_NAME_MAX  256 /* bytes of a generated user name or JID */

/* ---- options (main.c) --------------------------------------------------- */

typedef enum { MECH_AUTO = 0, MECH_SHA1, MECH_SHA256 } bench_mech_t;

typedef struct {
    const char *server; /* address to connect to */
    int port;           /* 0: 5222, or 5223 with direct_tls */
    int direct_tls;     /* XEP-0368 direct TLS instead of STARTTLS */
    const char *domain; /* XMPP domain of the accounts */
    int users;          /* number of accounts/connections */
    int first_user;     /* number of the first account */
    const char *user_format;
    const char *password;
    const char *password_format; /* per-user password (printf with %d), or NULL */
    const char *resource;
    bench_mech_t mech;
    const char *scenario;
    double rate;             /* logins per second, all processes together */
    double duration;         /* measured phase of chat and presence, seconds */
    double hold;             /* idle phase of connect, seconds */
    double msg_rate;         /* chat messages per second, all senders together */
    int roster_k;            /* presence: contacts per user */
    double presence_rate;    /* presence: online/offline changes per second */
    int setup_only;          /* presence: make the rosters, then stop */
    double setup_timeout;    /* seconds */
    double login_timeout;    /* seconds for one connection to be online */
    double drain;            /* seconds to wait for messages still in flight */
    long body_min, body_max; /* chat: body length in bytes, drawn log-uniformly (0: as is) */
    int processes;
    uint32_t src_first, src_last; /* host byte order; 0: let the kernel choose */
    pid_t server_pid;
    const char *server_pidfile;
    const char *server_name;
    int json_only;
    double tool_bound_pct; /* per-process CPU above which a run is tool bound */
    unsigned long run_id;  /* tells this run's messages from a former run's */
    /* provision mode */
    const char *server_type; /* tern, prosody, ejabberd */
    const char *ctl;         /* path of the server's admin tool */
    const char *ctl_config;  /* its configuration (ternctl -c) */
    /* s2s: a second server.  Client idx is on server (idx % sites) as
     * account number first_user + idx / sites; users counts both. */
    int sites;           /* 1, or 2 for s2s */
    const char *server2; /* address of the second server */
    int port2;           /* its port (0: the first one's) */
    const char *domain2; /* its domain */
    int links;           /* s2s: user 1 of A asks l1..lN.DOMAIN2 (hosts of B) */
    pid_t server2_pid;   /* its process, for /proc figures */
    const char *server2_pidfile;
    const char *server2_name;
} bench_opts_t;

/* User number `idx` (0-based within the run) as a localpart / password. */
void bench_user_name(const bench_opts_t *o, int idx, char *buf, size_t size);
void bench_user_password(const bench_opts_t *o, int idx, char *buf, size_t size);
/* The server (0 or 1) and domain of client idx (s2s: two servers). */
int bench_site(const bench_opts_t *o, int idx);
const char *bench_user_domain(const bench_opts_t *o, int idx);
/* The user index of a JID ("name@domain[/resource]") of this run, or -1. */
int bench_user_index(const bench_opts_t *o, const char *jid);

/* Monotonic clock. */
uint64_t now_ns(void);
double now_s(void);
/* CPU seconds (user + system) used by this process so far. */
double self_cpu_s(void);

/* ---- phases ----------------------------------------------------------- */

typedef enum {
    PH_IDLE = 0,
    PH_LOGIN,   /* ramp the connections up to online */
    PH_SETUP,   /* scenario preparation (rosters), not measured */
    PH_MEASURE, /* the measured window */
    PH_DRAIN,   /* stop sending, let what is in flight arrive */
    PH_DONE,    /* close everything and report */
    PH_COUNT
} phase_t;

const char *phase_name(phase_t ph);

/* ---- counters and histograms (stats.c) ---------------------------------- */

enum {
    C_CONN_STARTED = 0,
    C_LOGIN_OK,
    C_LOGIN_FAIL,
    C_DISCONNECTS, /* connections lost after login */
    C_STANZA_ERRORS,
    C_MSG_SENT,
    C_MSG_RECV,
    C_MSG_REORDER, /* sequence numbers out of order or missing */
    C_MSG_CORRUPT, /* bodies whose length is not the one they announce */
    C_PRES_SENT,
    C_PRES_RECV,
    C_SETUP_FIXED, /* roster contacts the setup had to subscribe */
    C_SETUP_DONE,  /* clients whose setup is complete */
    C_SETUP_FAIL,
    C_MECH_SHA1, /* logins that used SCRAM-SHA-1 */
    C_MECH_SHA256,
    C_LINK_ANSWERS, /* s2s --links: answers from the link domains */
    C_COUNT
};

/* Log-bucketed histogram of nanosecond values: exact below 128, then 64
 * buckets per power of two (at most 1.6% error), mergeable by adding. */
#define HIST_SUB_BITS 6
#define HIST_SUB      (1 << HIST_SUB_BITS)
#define HIST_BUCKETS  (2 * HIST_SUB + (64 - HIST_SUB_BITS - 1) * HIST_SUB)

typedef struct {
    uint64_t count;
    uint64_t max;
    uint64_t b[HIST_BUCKETS];
} hist_t;

/* H_FIRST: s2s, each sender's first message; H_LINK: s2s --links round trips */
enum { H_LOGIN = 0, H_MSG, H_FIRST, H_LINK, H_COUNT };

void hist_add(hist_t *h, uint64_t v);
void hist_merge(hist_t *into, const hist_t *from);
/* The value at quantile q (0..1), in the units recorded; 0 when empty. */
uint64_t hist_quantile(const hist_t *h, double q);

/* What a worker reports at phase marks and in progress messages. */
typedef struct {
    uint64_t c[C_COUNT];
    double cpu_s;        /* the worker's CPU seconds so far */
    double t;            /* now_s() when taken */
    double last_login_t; /* now_s() of the last successful login, 0 if none */
} snap_t;

void snap_sum(snap_t *into, const snap_t *from);

/* ---- worker -> coordinator messages ------------------------------------- */

enum { MSG_PROGRESS = 1, MSG_MARK_START, MSG_MARK_DONE, MSG_FINAL };

typedef struct {
    uint32_t type;
    uint32_t phase;
    snap_t snap;
} msg_snap_t;

typedef struct {
    msg_snap_t head; /* type MSG_FINAL */
    hist_t hist[H_COUNT];
} msg_final_t;

/* ---- client connections (client.c) -------------------------------------- */

typedef struct worker worker_t;
typedef struct client client_t;
typedef struct xnode xnode_t;

typedef enum {
    CS_NEW = 0,
    CS_CONNECTING,
    CS_FEATURES_PLAIN, /* stream open before TLS: waiting for features */
    CS_STARTTLS,       /* waiting for <proceed/> */
    CS_TLS,            /* TLS handshake */
    CS_FEATURES_TLS,   /* waiting for the SASL mechanisms */
    CS_AUTH,           /* SCRAM exchange */
    CS_FEATURES_AUTH,  /* waiting for bind */
    CS_BIND,
    CS_SESSION,
    CS_ROSTER,
    CS_ONLINE,
    CS_CLOSED
} client_state_t;

struct client {
    worker_t *w;
    int idx; /* user index in the run (0..users-1) */
    int fd;
    client_state_t st;
    link_t link; /* valid while has_link */
    struct xscan *xs;
    struct scram *scram;
    struct event *timer; /* login timeout, or the deferred free */
    uint64_t t_start;    /* now_ns() at connect */
    uint32_t iq_seq;
    unsigned tls : 1, need_session : 1, dead : 1, available : 1;
    unsigned sasl_answered : 1, sasl_verified : 1, has_link : 1, draining : 1;
    uint64_t seq_out; /* scenario: messages sent */
    uint64_t seq_in;  /* scenario: last sequence received */
    void *sdata;      /* scenario: per-client data (freed with the client) */
};

/* Where clients connect: --server, resolved once by bench_resolve()
 * before the workers are forked. */
extern struct sockaddr_storage bench_server_addr;
extern socklen_t bench_server_addr_len;
extern struct sockaddr_storage bench_server2_addr; /* s2s: --server2 */
extern socklen_t bench_server2_addr_len;
int bench_resolve(const bench_opts_t *o);

/* Start connecting client c (already in w->clients). */
void client_start(client_t *c);
/* Close: optional </stream:stream>, then free everything but the struct. */
void client_close(client_t *c, int graceful);
/* Free at once everything the connection holds (not from its callbacks). */
void client_free(client_t *c);
/* Send raw XML; a no-op unless the connection is up. */
void client_send(client_t *c, const char *xml, size_t len);
void client_sendf(client_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The bare JID of user idx. */
void client_bare_jid(const bench_opts_t *o, int idx, char *buf, size_t size);
/* XML-escape s into buf (for attribute values and text). */
void xml_escape(const char *s, char *buf, size_t size);

/* ---- workers (worker.c) ------------------------------------------------- */

typedef struct scenario scenario_t;

struct worker {
    const bench_opts_t *o;
    const scenario_t *sc;
    int id;
    int first, count; /* user indexes [first, first+count) */
    client_t *clients;
    struct event_base *base;
    struct ssl_ctx_st *ssl_ctx;
    int up_fd, down_fd;
    phase_t phase;
    snap_t snap;
    hist_t hist[H_COUNT];
    struct event *ramp_ev, *progress_ev, *down_ev;
    double ramp_t0;
    int launched, settled; /* connections started / online or failed */
    int login_marked;
    void *sdata; /* scenario: per-worker data */
};

#define W_INC(w, k)    ((w)->snap.c[(k)]++)
#define W_ADD(w, k, n) ((w)->snap.c[(k)] += (n))

/* Run worker `id` until the coordinator says PH_DONE; returns an exit code. */
int worker_main(const bench_opts_t *o, const scenario_t *sc, int id, int up_fd, int down_fd);
/* Client callbacks into the worker. */
void worker_client_online(worker_t *w, client_t *c);
void worker_client_failed(worker_t *w, client_t *c, const char *why);
void worker_client_lost(worker_t *w, client_t *c, const char *why);
void worker_stanza(worker_t *w, client_t *c, xnode_t *st);
/* The scenario finished its part of the current phase (PH_SETUP). */
void worker_phase_complete(worker_t *w);
/* Sending at a rate, for the scenarios that do (chat, presence...). */
typedef struct pacer {
    double t0;     /* when sending started */
    double rate;   /* this worker's share, per second */
    uint64_t sent; /* sends made so far */
    int next;      /* round-robin position among the worker's clients */
} pacer_t;
/* Make the sends due by now, at most `max` in this call: each goes to
 * the next online client that `eligible` accepts (NULL: any), round robin,
 * through `send`.  Stops early when no client is eligible. */
void pacer_run(worker_t *w, pacer_t *p, int max,
               int (*eligible)(const worker_t *w, const client_t *c),
               void (*send)(worker_t *w, client_t *c));
/* Diagnostics, at most a few per worker so a failing run stays readable. */
void worker_warn(worker_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- scenarios (scenario.c, scen_*.c) ----------------------------------- */

typedef struct report report_t;
typedef struct result result_t;

struct scenario {
    const char *name;
    const char *summary;
    /* Coordinator: check the options; -1 with *why set to refuse them. */
    int (*check)(bench_opts_t *o, const char **why);
    /* Coordinator: length of the measured phase in seconds. */
    double (*measure_seconds)(const bench_opts_t *o);
    int has_setup;       /* runs a PH_SETUP phase */
    phase_t bound_phase; /* the phase whose tool CPU decides tool_bound */
    int has_drain;       /* waits in PH_DRAIN until sent == received */
    /* Worker: a phase begins (PH_SETUP must end in worker_phase_complete). */
    void (*phase)(worker_t *w, phase_t ph);
    /* Worker: client c is online (bound, roster fetched, presence sent);
     * `roster` is the roster result. */
    void (*online)(worker_t *w, client_t *c, xnode_t *roster);
    /* Worker: a stanza for an online client that the core did not answer. */
    void (*stanza)(worker_t *w, client_t *c, xnode_t *st);
    /* Worker: free per-client and per-worker data (may be NULL). */
    void (*client_free)(client_t *c);
    void (*worker_free)(worker_t *w);
    /* Coordinator: add the scenario's figures to the report. */
    void (*report)(report_t *r, const result_t *res);
};

const scenario_t *scenario_find(const char *name);
void scenario_list(void *file);

extern const scenario_t scen_connect;
extern const scenario_t scen_chat;
extern const scenario_t scen_presence;
extern const scenario_t scen_s2s;

/* ---- server figures from the OS (procfs.c) ------------------------------ */

typedef struct {
    int ok;
    double cpu_s; /* utime + stime */
    long rss_kib; /* VmRSS */
    long hwm_kib; /* VmHWM */
    int threads;
} proc_sample_t;

/* The server pid from the options (pid, pidfile or process name); 0 if
 * none was asked for, -1 with *why set on error. */
pid_t procfs_find_server(const bench_opts_t *o, const char **why);
/* The same for the second server (--server2-pid, -pidfile, -name). */
pid_t procfs_find_server2(const bench_opts_t *o, const char **why);
int procfs_sample(pid_t pid, proc_sample_t *s);

/* ---- results and report (coord.c, report.c) ------------------------------ */

/* Everything the coordinator gathered, summed over the workers. */
struct result {
    const bench_opts_t *o;
    const scenario_t *sc;
    int workers;
    /* summed snapshots at the start of each phase and when it was done */
    snap_t start[PH_COUNT], done[PH_COUNT];
    int have_start[PH_COUNT], have_done[PH_COUNT];
    double t_start[PH_COUNT], t_done[PH_COUNT]; /* coordinator clock */
    double last_login_t;                        /* latest over the workers */
    snap_t final;
    hist_t hist[H_COUNT];
    /* per-worker CPU percentage during the phase that is measured */
    double tool_cpu_max_pct;
    double tool_cpu_s; /* workers + coordinator */
    int tool_bound;
    pid_t server_pid;
    proc_sample_t srv_before, srv_login, srv_measure0, srv_measure1, srv_end;
    pid_t server2_pid; /* s2s: the second server, sampled at the same marks */
    proc_sample_t srv2_before, srv2_login, srv2_measure0, srv2_measure1, srv2_end;
    int interrupted;
    int setup_failed; /* timed out, or logins failed before it */
};

#define REPORT_MAX 96

typedef struct {
    const char *key;   /* JSON key */
    const char *label; /* table label, NULL: JSON only */
    int kind;          /* 0 number, 1 string, 2 bool, 3 null */
    double num;
    int decimals;
    const char *str;
    const char *unit;
} report_entry_t;

struct report {
    int n;
    report_entry_t e[REPORT_MAX];
};

void report_num(report_t *r, const char *key, const char *label, double v, int decimals,
                const char *unit);
void report_str(report_t *r, const char *key, const char *label, const char *s);
void report_bool(report_t *r, const char *key, const char *label, int b);
/* A server figure: null in JSON when there is no server pid. */
void report_srv(report_t *r, const result_t *res, const char *key, const char *label, double v,
                int decimals, const char *unit);
void report_print(const report_t *r, int json_only);

/* Common figures of every scenario, then the scenario's own. */
void report_build(report_t *r, const result_t *res);
/* Helpers for scenario reports. */
uint64_t res_delta(const result_t *res, int counter, phase_t from, phase_t to);
double res_window(const result_t *res, phase_t from, phase_t to);

/* Run the coordinator: fork the workers, drive the phases, report. */
int coord_main(bench_opts_t *o, const scenario_t *sc);

/* ---- provisioning (provision.c) ------------------------------------------ */

int provision_main(const bench_opts_t *o);

/* ---- the machine's latency floor (floor.c) -------------------------------- */

/* `tern-bench floor ...`: argv[0] is "floor". */
int floor_main(int argc, char **argv);

#endif
