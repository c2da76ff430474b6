/*
 * admin.c — the server side of the admin socket (see admin.h).
 *
 * Owns the listening Unix socket, its file on disk and the short-lived
 * connections of `ternctl`.  Everything runs on the event loop: nothing
 * here blocks, a command line is read with a hard length limit and every
 * connection has a timeout.  The actual work (reload, stop, kick, deluser, s2s) belongs
 * to the server core; this file only parses, checks the peer and answers.
 * Answers never contain secrets.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <tern/jid.h>
#include <tern/module.h>
#include "core/admin.h"
#include "core/module_api.h"
#include "util/log.h"
#include "core/server.h"
#include "route/sessions.h"
#include "stream/s2s.h"
#include "xml/xml_stream.h"
#include "xmpp/conn.h"

#define ADMIN_BACKLOG        16
#define ADMIN_TIMEOUT_S      30 /* idle client or stuck writer */
#define ADMIN_ACCEPT_RETRY_S 1  /* after a failed accept (out of descriptors) */
#define ADMIN_ACCEPT_LOG_S   60 /* at most one such error logged per this */

typedef struct admin_conn admin_conn_t;
struct admin_conn {
    struct bufferevent *bev;
    admin_conn_t *prev, *next;
    int answered;   /* the final line is queued: close once flushed */
    int stop_after; /* a "stop" was answered: stop the server once we are gone */
};

static struct {
    struct event_base *base;
    struct evconnlistener *listener;
    char *path;
    dev_t dev; /* identity of our socket file, so we only ever unlink our own */
    ino_t ino;
    admin_conn_t *conns;
    int stop_scheduled;
    struct event *accept_retry; /* re-enables the listener after a failed accept */
    time_t accept_logged;       /* when a failed accept was last logged */
} admin;

static char admin_errbuf[512];

/* Format an error into the static buffer and return it. */
static const char *admin_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *admin_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(admin_errbuf, sizeof(admin_errbuf), fmt, ap);
    va_end(ap);
    return admin_errbuf;
}

/* ---- deferred stop ---------------------------------------------------- */

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_info("admin: stopping on request");
    server_stop();
}

/* Run server_stop() on the next loop iteration, once. */
static void schedule_stop(void)
{
    static const struct timeval now = {0, 0};
    if (admin.stop_scheduled)
        return;
    admin.stop_scheduled = 1;
    if (event_base_once(admin.base, -1, EV_TIMEOUT, stop_cb, NULL, &now) < 0) {
        /* Cannot defer: stop right away, the answer may be lost. */
        server_stop();
    }
}

/* ---- connections ------------------------------------------------------ */

/* Unlink and free one connection.  `may_stop` is 0 when the whole admin
 * socket is being torn down (the server is stopping anyway). */
static void conn_free(admin_conn_t *c, int may_stop)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        admin.conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    int stop = c->stop_after && may_stop;
    free(c);
    if (stop)
        schedule_stop();
}

/* Queue one answer line. */
static void conn_line(admin_conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_line(admin_conn_t *c, const char *fmt, ...)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(out, fmt, ap);
    va_end(ap);
    evbuffer_add(out, "\n", 1);
}

/* Queue the final line; the write callback closes once it is flushed. */
static void conn_finish(admin_conn_t *c, const char *error)
{
    if (error == NULL) {
        conn_line(c, "ok");
    } else {
        /* One line only: control characters in an error text become spaces. */
        char buf[600];
        snprintf(buf, sizeof(buf), "%s", error);
        for (char *p = buf; *p != '\0'; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = ' ';
        conn_line(c, "error: %s", buf);
    }
    /* Reading goes on, discarding, until the answer is flushed: closing
     * with unread input would reset the connection and lose the answer. */
    c->answered = 1;
}

/* RFC 6120 §4.9.3: the stream error conditions a kick may carry. */
static int valid_condition(const char *cond)
{
    static const char *const conditions[] = {
        "bad-format",
        "conflict",
        "connection-timeout",
        "host-gone",
        "host-unknown",
        "internal-server-error",
        "not-authorized",
        "policy-violation",
        "reset",
        "resource-constraint",
        "see-other-host",
        "system-shutdown",
        "undefined-condition",
        NULL,
    };
    for (size_t i = 0; conditions[i] != NULL; i++)
        if (strcmp(cond, conditions[i]) == 0)
            return 1;
    return 0;
}

static void status_counter(void *ctx, const char *name, long long value)
{
    conn_line(ctx, "%s: %lld", name, value);
}

static void cmd_status(admin_conn_t *c)
{
    struct timespec ts;
    long long uptime = 0;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0) {
        int64_t now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
        if (server.started_us > 0 && now_us > server.started_us)
            uptime = (long long)((now_us - server.started_us) / 1000000);
    }
    conn_line(c, "version: %s", tern_server_version());
    conn_line(c, "uptime: %lld", uptime);
    conn_line(c, "sessions: %zu", server_session_count());
    conn_line(c, "detached sessions: %zu", sessions_count_detached());
    conn_line(c, "connections: %zu", conn_count());
    conn_line(c, "busy connections: %zu", conn_busy_count());
    xml_serialize_stats_t xs;
    xml_serialize_stats(&xs);
    conn_line(c, "stanzas serialized: %llu", xs.full);
    conn_line(c, "stanza bytes reused: %llu", xs.reused);
    conn_line(c, "fan-out start tags: %llu", xs.heads);
    module_counters_foreach(status_counter, c);
    conn_finish(c, NULL);
}

static void cmd_reload(admin_conn_t *c)
{
    cfg_error_t err;
    memset(&err, 0, sizeof(err));
    log_info("admin: reload requested");
    if (server_reload(&err) < 0) {
        conn_finish(c, err.text[0] != '\0' ? err.text : "reload failed");
        return;
    }
    conn_finish(c, NULL);
}

static void cmd_stop(admin_conn_t *c)
{
    c->stop_after = 1;
    conn_finish(c, NULL);
}

static void cmd_kick(admin_conn_t *c, const char *jid_s, const char *cond)
{
    const char *why = NULL;
    if (!valid_condition(cond)) {
        conn_finish(c, "unknown stream error condition");
        return;
    }
    tern_jid_t *jid = tern_jid_new(jid_s, &why);
    if (jid == NULL || jid->local == NULL || jid->resource != NULL) {
        tern_jid_free(&jid);
        conn_finish(c, "invalid bare JID");
        return;
    }
    size_t n = server_kick_user(jid->domain, jid->local, cond);
    log_info("admin: kicked %zu session(s) of %s (%s)", n, jid->bare, cond);
    conn_line(c, "kicked: %zu", n);
    conn_finish(c, NULL);
    tern_jid_free(&jid);
}

/* Delete an account through the running server, so that its modules hear
 * of it (ternctl deluser while ternd runs). */
static void cmd_deluser(admin_conn_t *c, const char *jid_s)
{
    const char *why = NULL;
    tern_jid_t *jid = tern_jid_new(jid_s, &why);
    if (jid == NULL || jid->local == NULL || jid->resource != NULL) {
        tern_jid_free(&jid);
        conn_finish(c, "invalid bare JID");
        return;
    }
    why = "storage error";
    if (server_delete_user(jid->domain, jid->local, &why) < 0) {
        conn_finish(c, why);
    } else {
        log_info("admin: deleted the account %s", jid->bare);
        conn_line(c, "deleted: %s", jid->bare);
        conn_finish(c, NULL);
    }
    tern_jid_free(&jid);
}

static void s2s_line(void *arg, const s2s_info_t *i)
{
    conn_line(arg, "%s %s %s %s %s %zu %s cert: %s; pairs: %s", i->direction,
              i->remote[0] ? i->remote : "-", i->local[0] ? i->local : "-", i->auth, i->tls,
              i->queued, i->peer, i->cert, i->pairs && i->pairs[0] ? i->pairs : "-");
}

/* `ternctl s2s`: one line per server-to-server stream. */
static void cmd_s2s(admin_conn_t *c)
{
    s2s_list(s2s_line, c);
    conn_finish(c, NULL);
}

/* `ternctl s2s close DOMAIN`. */
static void cmd_s2s_close(admin_conn_t *c, const char *domain)
{
    char *d = tern_jid_prep_domain(domain);
    if (!d) {
        conn_finish(c, "invalid domain");
        return;
    }
    size_t n = s2s_close_domain(d);
    log_info("admin: closed %zu server-to-server stream(s) with %s", n, d);
    conn_line(c, "closed: %zu", n);
    conn_finish(c, NULL);
    free(d);
}

/* Parse and run one command line (NUL-terminated, no end-of-line). */
static void run_command(admin_conn_t *c, char *line)
{
    char *args[4];
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t", &save); tok != NULL;
         tok = strtok_r(NULL, " \t", &save)) {
        if (n == sizeof(args) / sizeof(args[0])) {
            conn_finish(c, "too many arguments");
            return;
        }
        args[n++] = tok;
    }
    if (n == 0) {
        conn_finish(c, "empty command");
        return;
    }
    const char *cmd = args[0];
    if (strcmp(cmd, "status") == 0 && n == 1)
        cmd_status(c);
    else if (strcmp(cmd, "reload") == 0 && n == 1)
        cmd_reload(c);
    else if (strcmp(cmd, "stop") == 0 && n == 1)
        cmd_stop(c);
    else if (strcmp(cmd, "kick") == 0 && n == 3)
        cmd_kick(c, args[1], args[2]);
    else if (strcmp(cmd, "deluser") == 0 && n == 2)
        cmd_deluser(c, args[1]);
    else if (strcmp(cmd, "s2s") == 0 && n == 1)
        cmd_s2s(c);
    else if (strcmp(cmd, "s2s") == 0 && n == 3 && strcmp(args[1], "close") == 0)
        cmd_s2s_close(c, args[2]);
    else if (strcmp(cmd, "status") == 0 || strcmp(cmd, "reload") == 0 || strcmp(cmd, "stop") == 0 ||
             strcmp(cmd, "kick") == 0 || strcmp(cmd, "deluser") == 0 || strcmp(cmd, "s2s") == 0)
        conn_finish(c, "wrong number of arguments");
    else
        conn_finish(c, "unknown command");
}

/* Run a raw line of `len` bytes; refuse embedded NULs and overlong lines. */
static void run_line(admin_conn_t *c, char *line, size_t len)
{
    if (len > ADMIN_MAX_LINE)
        conn_finish(c, "line too long");
    else if (strlen(line) != len)
        conn_finish(c, "invalid command");
    else
        run_command(c, line);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    admin_conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->answered) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    size_t len = 0;
    char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
    if (line == NULL) {
        if (evbuffer_get_length(in) > ADMIN_MAX_LINE)
            conn_finish(c, "line too long");
        return;
    }
    run_line(c, line, len);
    free(line);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    admin_conn_t *c = arg;
    if (c->answered && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_free(c, 1);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    admin_conn_t *c = arg;
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
        struct evbuffer *in = bufferevent_get_input(bev);
        size_t len = evbuffer_get_length(in);
        if (!c->answered && len > 0) {
            /* The client half-closed after a line without end-of-line. */
            if (len > ADMIN_MAX_LINE) {
                conn_finish(c, "line too long");
            } else {
                char *line = malloc(len + 1);
                if (line == NULL) {
                    conn_free(c, 1);
                    return;
                }
                evbuffer_remove(in, line, len);
                line[len] = '\0';
                run_line(c, line, len);
                free(line);
            }
        }
        if (c->answered && evbuffer_get_length(bufferevent_get_output(bev)) > 0)
            return; /* the write callback closes once flushed */
    }
    conn_free(c, 1);
}

/* Is the peer on `fd` our own uid or root?  Where the platform cannot
 * tell, the socket's mode 0600 is the only guard. */
static int peer_allowed(evutil_socket_t fd)
{
#if defined(SO_PEERCRED)
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || len != sizeof(cr))
        return 0;
    return cr.uid == 0 || cr.uid == geteuid();
#elif defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__) || defined(__APPLE__)
    uid_t uid;
    gid_t gid;
    if (getpeereid(fd, &uid, &gid) < 0)
        return 0;
    return uid == 0 || uid == geteuid();
#else
    (void)fd;
    return 1;
#endif
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    (void)arg;
    admin_conn_t *c = calloc(1, sizeof(*c));
    struct bufferevent *bev = bufferevent_socket_new(admin.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c == NULL || bev == NULL) {
        log_error("admin: out of memory");
        free(c);
        if (bev != NULL)
            bufferevent_free(bev);
        else
            evutil_closesocket(fd);
        return;
    }
    c->bev = bev;
    c->next = admin.conns;
    if (admin.conns != NULL)
        admin.conns->prev = c;
    admin.conns = c;

    const struct timeval tmo = {ADMIN_TIMEOUT_S, 0};
    bufferevent_setcb(bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_set_timeouts(bev, &tmo, &tmo);
    /* Never buffer more than one maximal line plus CRLF. */
    bufferevent_setwatermark(bev, EV_READ, 0, ADMIN_MAX_LINE + 2);

    if (!peer_allowed(fd)) {
        log_warn("admin: refused a client with another uid");
        conn_finish(c, "permission denied");
        bufferevent_enable(bev, EV_WRITE);
        return;
    }
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (admin.listener != NULL)
        evconnlistener_enable(admin.listener);
}

/* accept() failed (out of descriptors, most likely): the socket stays
 * readable, so pause the listener for ADMIN_ACCEPT_RETRY_S instead of
 * failing again at once, and log at most once per ADMIN_ACCEPT_LOG_S. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)arg;
    int err = EVUTIL_SOCKET_ERROR();
    time_t now = time(NULL);
    if (admin.accept_logged == 0 || now - admin.accept_logged >= ADMIN_ACCEPT_LOG_S) {
        admin.accept_logged = now;
        log_error("admin: accept failed: %s: retrying every %d s",
                  evutil_socket_error_to_string(err), ADMIN_ACCEPT_RETRY_S);
    }
    if (admin.accept_retry == NULL)
        admin.accept_retry = evtimer_new(admin.base, accept_retry_cb, NULL);
    const struct timeval tv = {ADMIN_ACCEPT_RETRY_S, 0};
    if (admin.accept_retry != NULL && evtimer_add(admin.accept_retry, &tv) == 0)
        evconnlistener_disable(l);
}

/* ---- the listening socket --------------------------------------------- */

/* Does something accept connections at `sun`?  1 yes, 0 no (refused or
 * gone), -1 cannot tell (errno set).  Never blocks: the socket is
 * non-blocking and a Unix connect completes or fails at once. */
static int socket_is_live(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
    int err = errno;
    close(fd);
    if (r == 0 || err == EAGAIN || err == EINPROGRESS)
        return 1;
    if (err == ECONNREFUSED || err == ENOENT)
        return 0;
    errno = err;
    return -1;
}

int admin_start(struct event_base *base, const char *path, const char **error_r)
{
    const char *dummy;
    if (error_r == NULL)
        error_r = &dummy;
    if (admin.listener != NULL) {
        *error_r = "admin socket already started";
        return -1;
    }
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    size_t plen = path != NULL ? strlen(path) : 0;
    if (plen == 0 || plen >= sizeof(sun.sun_path)) {
        *error_r = "admin socket path is empty or too long";
        return -1;
    }
    memcpy(sun.sun_path, path, plen + 1);

    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *error_r = admin_err("admin socket %s: exists and is not a socket", path);
            return -1;
        }
        int live = socket_is_live(&sun);
        if (live > 0) {
            *error_r = "another ternd is running";
            return -1;
        }
        if (live < 0) {
            *error_r = admin_err("admin socket %s: %s", path, strerror(errno));
            return -1;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
            *error_r = admin_err("cannot remove stale admin socket %s: %s", path, strerror(errno));
            return -1;
        }
        log_info("admin: removed stale socket %s", path);
    } else if (errno != ENOENT) {
        *error_r = admin_err("admin socket %s: %s", path, strerror(errno));
        return -1;
    }

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *error_r = admin_err("admin socket %s: socket: %s", path, strerror(errno));
        return -1;
    }
    /* Created 0600 from the start; chmod below in case the umask is ignored. */
    mode_t old_mask = umask(0177);
    int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    int err = errno;
    umask(old_mask);
    if (r < 0) {
        close(fd);
        *error_r = admin_err("admin socket %s: bind: %s", path, strerror(err));
        return -1;
    }
    if (chmod(path, 0600) < 0 || lstat(path, &st) < 0) {
        err = errno;
        close(fd);
        unlink(path);
        *error_r = admin_err("admin socket %s: %s", path, strerror(err));
        return -1;
    }
    char *path_copy = strdup(path);
    struct evconnlistener *l =
        path_copy == NULL
            ? NULL
            : evconnlistener_new(base, accept_cb, NULL,
                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, ADMIN_BACKLOG, fd);
    if (l == NULL) {
        err = path_copy == NULL ? ENOMEM : errno;
        free(path_copy);
        close(fd);
        unlink(path);
        *error_r = admin_err("admin socket %s: listen: %s", path, strerror(err != 0 ? err : EIO));
        return -1;
    }
    evconnlistener_set_error_cb(l, accept_error_cb);
    admin.base = base;
    admin.listener = l;
    admin.path = path_copy;
    admin.dev = st.st_dev;
    admin.ino = st.st_ino;
    admin.stop_scheduled = 0;
    log_info("admin: listening on %s", path);
    return 0;
}

void admin_stop(void)
{
    while (admin.conns != NULL)
        conn_free(admin.conns, 0);
    if (admin.listener != NULL) {
        evconnlistener_free(admin.listener);
        admin.listener = NULL;
    }
    if (admin.accept_retry != NULL) {
        event_free(admin.accept_retry);
        admin.accept_retry = NULL;
    }
    if (admin.path != NULL) {
        /* Remove the file only if it is still the one we created. */
        struct stat st;
        if (lstat(admin.path, &st) == 0 && st.st_dev == admin.dev && st.st_ino == admin.ino)
            unlink(admin.path);
        free(admin.path);
        admin.path = NULL;
    }
}
