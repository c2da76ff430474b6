/*
 * c2s.c — the client stream state machine.
 *
 *   header -> features -> [STARTTLS -> header -> features] -> SASL ->
 *   header -> features (bind) -> bind -> stanzas
 *
 * TLS is required before authentication unless the admin turned
 * require_encryption off; PLAIN is never offered without TLS.  Failed
 * authentications are answered after a delay and the stream ends after
 * max_auth_failures.  A bound stream becomes a session in the session
 * table; its stanzas are checked, stamped with the full JID and routed.
 *
 * Module events fired here, on the stream's host: stream-features/unauth
 * and /auth; iq-TYPE/unauth/NS:NAME before login; stream/NS:NAME for a
 * top-level element that is no stanza, after login (before and after
 * bind: XEP-0198 stream management, XEP-0352 client state); session/in
 * for every stanza a bound client sends, and session/out for every stanza
 * about to be written to it (the core's own answers included).  The
 * stream's tern_session_t is the modules' handle on it from the start;
 * it gets a JID at bind.
 */
#include "stream/c2s.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "route/host.h"
#include "route/router.h"
#include "route/sessions.h"
#include "xmpp/conn.h"
#include "xmpp/flow.h"
#include "xmpp/websocket.h"
#include "stream/limits.h"
#include "stream/sasl.h"
#include "xmpp/stanza.h"

/* C2S_GONE: the session left this stream (detached, or resumed on
 * another one); what is left of the stream only closes. */
typedef enum { C2S_NEW = 0, C2S_AUTHED, C2S_BOUND, C2S_GONE } c2s_state_t;

typedef struct c2s {
    conn_t *conn;
    host_t *host;
    c2s_state_t state;
    int tls;
    char *user;          /* prepared localpart once authenticated */
    tern_jid_t *account; /* user@host once authenticated */
    sasl_t *sasl;
    int auth_failures;
    int tried_plus;              /* the client tried a -PLUS mechanism on this stream */
    struct event *failure_timer; /* delayed SASL failure */
    const char *pending_failure;
    struct event *handshake_timer;
    struct event *rate_timer; /* reading resumes when the user's bucket refills */
    int ip_counted;           /* counted in the per-address limit */
    int ip_refused;           /* over it: refused once the stream opens */
    char stream_id[STREAM_ID_LEN];
    /* session/in and session/out of the host, looked up once at bind: per
     * stanza, nobody hooking them costs one test. */
    hooks_event_t *in_hook, *out_hook;
    tern_session_t *session; /* from accept to free: modules' handle on the stream, bound or not */
    tern_session_t *spare;   /* the stream's own session after a resume took another one */
} c2s_t;

static void send_header(conn_t *c)
{
    c2s_t *s = c->data;
    stream_id_new(s->stream_id);
    char buf[512];
    if (conn_framed(c)) /* RFC 7395 §3.3.2 */
        snprintf(buf, sizeof(buf),
                 "<open xmlns='" NS_FRAMING "' id='%s'%s%s%s version='1.0' xml:lang='en'/>",
                 s->stream_id, s->host ? " from='" : "", s->host ? s->host->name : "",
                 s->host ? "'" : "");
    else
        snprintf(buf, sizeof(buf),
                 "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                 "xmlns:stream='" NS_STREAM "' id='%s'%s%s%s version='1.0' xml:lang='en'>",
                 s->stream_id, s->host ? " from='" : "", s->host ? s->host->name : "",
                 s->host ? "'" : "");
    conn_write_str(c, buf);
    c->header_sent = 1;
}

static void sasl_resumed(void *ctx, int status, const char *failure);

static sasl_params_t sasl_params(c2s_t *s)
{
    sasl_params_t p = {.host = s->host->name,
                       .db = server.db,
                       .ssl = s->tls ? conn_ssl(s->conn) : NULL,
                       .allow_plain = server.cfg->allow_plain,
                       /* A client that tried -PLUS here saw the offer: its
                        * later 'y' is no downgrade (RFC 5802 §6). */
                       .strict_cb = server.cfg->strict_channel_binding && !s->tried_plus,
                       .resume = sasl_resumed,
                       .resume_ctx = s};
    return p;
}

/* Let modules add stream features (registration, roster versioning...). */
static void add_module_features(c2s_t *s, struct evbuffer *out)
{
    tern_xml_t *features = tern_xml_new("features", NS_STREAM);
    if (!features)
        return;
    tern_event_t ev = {.stanza = features,
                       .to = s->host->jid,
                       .from = s->account,
                       .origin = s->session,
                       .user = s->user};
    hooks_fire(s->host->hooks,
               s->state == C2S_NEW ? "stream-features/unauth" : "stream-features/auth", &ev);
    for (tern_xml_t *f = tern_xml_first_element(features); f; f = tern_xml_next_element(f))
        xml_serialize(f, TERN_NS_CLIENT, out);
    tern_xml_unref(features);
}

static void send_features(c2s_t *s)
{
    conn_t *c = s->conn;
    struct evbuffer *out = evbuffer_new();
    if (!out)
        return;
    /* Over WebSocket each element stands alone: the prefix is declared. */
    evbuffer_add_printf(out, conn_framed(c) ? "<stream:features xmlns:stream='" NS_STREAM "'>"
                                            : "<stream:features>");
    if (s->state == C2S_NEW) {
        if (!s->tls && server.tls && !conn_framed(c))
            evbuffer_add_printf(out, "<starttls xmlns='" NS_TLS "'>%s</starttls>",
                                server.cfg->require_encryption ? "<required/>" : "");
        if (s->tls || !server.cfg->require_encryption) {
            sasl_params_t p = sasl_params(s);
            const char *mechs[SASL_MAX_MECHS];
            sasl_mechanisms(&p, mechs);
            evbuffer_add_printf(out, "<mechanisms xmlns='" NS_SASL "'>");
            for (size_t i = 0; mechs[i]; i++)
                evbuffer_add_printf(out, "<mechanism>%s</mechanism>", mechs[i]);
            evbuffer_add_printf(out, "</mechanisms>");
            const char *types[3];
            sasl_cb_types(&p, types);
            if (types[0]) {
                /* XEP-0440 */
                evbuffer_add_printf(out, "<sasl-channel-binding xmlns='" NS_SASL_CB "'>");
                for (size_t i = 0; types[i]; i++)
                    evbuffer_add_printf(out, "<channel-binding type='%s'/>", types[i]);
                evbuffer_add_printf(out, "</sasl-channel-binding>");
            }
        }
    } else if (s->state == C2S_AUTHED) {
        evbuffer_add_printf(out, "<bind xmlns='" NS_BIND "'/>");
        if (server.cfg->legacy_session)
            evbuffer_add_printf(out, "<session xmlns='" NS_SESSION "'><optional/></session>");
    }
    if (s->tls || !server.cfg->require_encryption)
        add_module_features(s, out);
    evbuffer_add_printf(out, "</stream:features>");
    size_t len = evbuffer_get_length(out);
    conn_write(c, (const char *)evbuffer_pullup(out, -1), len);
    evbuffer_free(out);
}

/* RFC 6120 §4.7 and §4.9: check the client's stream header. */
static void on_open(conn_t *c, const char *name, const char *ns, const char **attrs)
{
    c2s_t *s = c->data;
    const char *to = NULL, *version = NULL;
    for (size_t i = 0; attrs[i]; i += 2) {
        if (strcmp(attrs[i], "to") == 0)
            to = attrs[i + 1];
        else if (strcmp(attrs[i], "version") == 0)
            version = attrs[i + 1];
    }
    int framed = conn_framed(c);
    if (!name || strcmp(name, framed ? "open" : "stream") != 0 || !ns ||
        strcmp(ns, framed ? NS_FRAMING : NS_STREAM) != 0) {
        conn_stream_error(c, "invalid-namespace", NULL);
        return;
    }
    const char *see_other = server.cfg->websocket.see_other_uri;
    if (framed && see_other) { /* RFC 7395 §3.6.1: elsewhere, before anything else */
        struct evbuffer *b = evbuffer_new();
        if (b) {
            evbuffer_add_printf(b, "<close xmlns='" NS_FRAMING "' see-other-uri='");
            xml_escape(see_other, strlen(see_other), b);
            evbuffer_add_printf(b, "'/>");
            size_t len = evbuffer_get_length(b);
            conn_write(c, (const char *)evbuffer_pullup(b, -1), len);
            evbuffer_free(b);
        }
        log_info("c2s %s: sent to %s", c->peer, see_other);
        conn_close(c);
        return;
    }
    if (!to && conn_ssl(c))
        to = tls_sni(conn_ssl(c));
    char *domain = to ? tern_jid_prep_domain(to) : NULL;
    host_t *h = domain ? hosts_find(domain) : NULL;
    free(domain);
    /* A service domain has no accounts: unknown to clients as a host. */
    if (!h || h->is_service || (s->host && s->host != h)) {
        conn_stream_error(c, to ? "host-unknown" : "improper-addressing", NULL);
        return;
    }
    s->host = h;
    s->session->host = h;
    if (!version || strtol(version, NULL, 10) != 1) {
        conn_stream_error(c, "unsupported-version", NULL);
        return;
    }
    if (s->ip_refused) { /* RFC 6120 §4.9.3.14 */
        log_info("c2s %s: too many connections from this address", c->peer);
        conn_stream_error(c, "policy-violation", "too many connections from your address");
        return;
    }
    send_header(c);
    send_features(s);
}

/* One write: over WebSocket every write is one message. */
static void sasl_reply(c2s_t *s, const char *element, const char *b64)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        conn_stream_error(s->conn, "internal-server-error", NULL);
        return;
    }
    evbuffer_add_printf(b, "<%s xmlns='" NS_SASL "'>", element);
    if (b64 && *b64)
        evbuffer_add(b, b64, strlen(b64));
    else if (strcmp(element, "success") == 0 && b64)
        evbuffer_add(b, "=", 1);
    evbuffer_add_printf(b, "</%s>", element);
    size_t len = evbuffer_get_length(b);
    conn_write(s->conn, (const char *)evbuffer_pullup(b, -1), len);
    evbuffer_free(b);
}

/* <failure/> with an RFC 6120 §6.5 condition and, if `text` (XML-safe,
 * made by the server) is given, a <text/> for the user (§6.4.5). */
static void send_failure_now(c2s_t *s, const char *condition, const char *text)
{
    char buf[512];
    if (text)
        snprintf(buf, sizeof(buf),
                 "<failure xmlns='" NS_SASL "'><%s/><text xml:lang='en'>%s</text></failure>",
                 condition, text);
    else
        snprintf(buf, sizeof(buf), "<failure xmlns='" NS_SASL "'><%s/></failure>", condition);
    conn_write_str(s->conn, buf);
    if (s->auth_failures >= server.cfg->max_auth_failures)
        conn_stream_error(s->conn, "policy-violation", "too many authentication failures");
}

static void failure_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    c2s_t *s = arg;
    const char *cond = s->pending_failure;
    s->pending_failure = NULL;
    if (cond)
        send_failure_now(s, cond, NULL);
}

/* RFC 6120 §6.4.5: a failed attempt is answered after a delay. */
static void sasl_fail(c2s_t *s, const char *condition, int counts)
{
    sasl_free(&s->sasl);
    if (!counts) {
        send_failure_now(s, condition, NULL);
        return;
    }
    s->auth_failures++;
    log_info("c2s %s: authentication failure (%s)", s->conn->peer, condition);
    long long ms = server.cfg->auth_failure_delay_ms;
    if (ms <= 0 || !s->failure_timer) {
        send_failure_now(s, condition, NULL);
        return;
    }
    s->pending_failure = condition;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->failure_timer, &tv);
}

/* A -PLUS attempt with a channel-binding type this stream does not support
 * (tls-unique, undefined on TLS 1.3, from slixmpp 1.8 and poezio): no
 * password was tried, so it does not count toward max_auth_failures and is
 * answered at once; the <text/> names the types that work (XEP-0440). */
static void cb_refused(c2s_t *s, const char *condition)
{
    sasl_params_t p = sasl_params(s);
    const char *types[3];
    sasl_cb_types(&p, types);
    char text[160];
    snprintf(text, sizeof(text), "channel binding type %s is not supported; supported: %s%s%s",
             sasl_cb_refused(s->sasl), types[0] ? types[0] : "none", types[1] ? ", " : "",
             types[1] ? types[1] : "");
    /* Logged as a prepared localpart: no control characters reach the log. */
    const char *authcid = sasl_authcid(s->sasl);
    char *user = authcid ? tern_jid_prep_local(authcid) : NULL;
    log_info("c2s %s: %s for user '%s' refused: %s (not counted as a failed login)", s->conn->peer,
             sasl_mech_name(s->sasl), user ? user : "(invalid)", text);
    free(user);
    sasl_free(&s->sasl);
    send_failure_now(s, condition, text);
}

static void sasl_result(c2s_t *s, sasl_status_t st, char *out, const char *failure)
{
    if (st == SASL_PENDING) {
        /* keys are being derived on the worker pool: sasl_resumed follows */
    } else if (st == SASL_CONTINUE) {
        sasl_reply(s, "challenge", out ? out : "");
    } else if (st == SASL_SUCCESS) {
        s->user = strdup(sasl_username(s->sasl));
        char bare[2048];
        snprintf(bare, sizeof(bare), "%s@%s", s->user ? s->user : "", s->host->name);
        s->account = s->user ? tern_jid_new(bare, NULL) : NULL;
        if (!s->account) {
            conn_stream_error(s->conn, "internal-server-error", NULL);
            free(out);
            return;
        }
        log_info("c2s %s: authenticated %s@%s with %s", s->conn->peer, s->user, s->host->name,
                 sasl_mech_name(s->sasl));
        sasl_free(&s->sasl);
        sasl_reply(s, "success", out ? out : "");
        s->state = C2S_AUTHED;
        conn_restart_stream(s->conn); /* RFC 6120 §6.4.6 */
    } else if (sasl_cb_refused(s->sasl)) {
        cb_refused(s, failure);
    } else {
        sasl_fail(s, failure, strcmp(failure, "aborted") != 0);
    }
    free(out);
}

/* The worker pool is done with a PLAIN check (sasl.h): answer now. */
static void sasl_resumed(void *ctx, int status, const char *failure)
{
    sasl_result(ctx, (sasl_status_t)status, NULL, failure);
}

static void handle_sasl(c2s_t *s, tern_xml_t *el)
{
    if (s->pending_failure)
        return; /* still answering the previous attempt */
    const char *failure = "malformed-request";
    char *out = NULL;
    if (strcmp(el->name, "auth") == 0) {
        sasl_free(&s->sasl);
        if (!s->tls && server.cfg->require_encryption) {
            sasl_fail(s, "encryption-required", 0);
            return;
        }
        const char *mech = tern_xml_attr(el, "mechanism");
        sasl_params_t p = sasl_params(s);
        if (!mech || !(s->sasl = sasl_start(&p, mech, &failure))) {
            sasl_fail(s, mech ? failure : "invalid-mechanism", 0);
            return;
        }
        size_t ml = strlen(mech);
        if (ml > 5 && strcmp(mech + ml - 5, "-PLUS") == 0)
            s->tried_plus = 1;
        sasl_status_t st = sasl_step(s->sasl, tern_xml_text(el), &out, &failure);
        sasl_result(s, st, out, failure);
    } else if (strcmp(el->name, "response") == 0) {
        if (!s->sasl) {
            sasl_fail(s, "malformed-request", 0);
            return;
        }
        sasl_status_t st = sasl_step(s->sasl, tern_xml_text(el), &out, &failure);
        sasl_result(s, st, out, failure);
    } else if (strcmp(el->name, "abort") == 0) {
        sasl_free(&s->sasl);
        sasl_fail(s, "aborted", 0);
    } else {
        conn_stream_error(s->conn, "unsupported-stanza-type", NULL);
    }
}

static void handle_starttls(c2s_t *s)
{
    if (conn_framed(s->conn)) { /* never offered over WebSocket */
        conn_write_str(s->conn, "<failure xmlns='" NS_TLS "'/>");
        conn_close(s->conn);
        return;
    }
    if (s->tls || !server.tls) {
        conn_write_str(s->conn, "<failure xmlns='" NS_TLS "'/></stream:stream>");
        conn_close(s->conn);
        return;
    }
    SSL *ssl = tls_server_ssl(server.tls, NULL);
    if (!ssl) {
        conn_write_str(s->conn, "<failure xmlns='" NS_TLS "'/></stream:stream>");
        conn_close(s->conn);
        return;
    }
    conn_write_str(s->conn, "<proceed xmlns='" NS_TLS "'/>");
    s->tls = 1;
    conn_starttls(s->conn, ssl);
}

static c2s_t *stream_of(const tern_session_t *session)
{
    return ((conn_t *)session->link.conn)->data;
}

/* A stanza is about to be written to the bound client: the host's
 * session/out handlers see it first (XEP-0198 counts it, XEP-0352 may
 * hold it back).  1 when one of them took it: it is not written now. */
static int out_taken(c2s_t *s, tern_xml_t *stanza)
{
    if (!hooks_event_hooked(s->out_hook))
        return 0;
    if (stanza_kind(stanza) == STANZA_OTHER)
        return 0; /* a stream-level element a module sent: not a stanza */
    tern_event_t ev = {
        .stanza = stanza, .to = s->session->jid, .session = s->session, .user = s->user};
    return hooks_event_fire(s->out_hook, &ev) == TERN_HANDLED;
}

static void deliver(tern_session_t *session, tern_xml_t *stanza)
{
    if (!out_taken(stream_of(session), stanza))
        conn_send(session->link.conn, stanza);
}

/* Module output: held back while the client's queue is full, so that an
 * archive page larger than the output cap reaches a slow reader. */
static void send_paced(tern_session_t *session, tern_xml_t *stanza)
{
    if (!out_taken(stream_of(session), stanza))
        conn_send_paced(session->link.conn, stanza);
}

/* tern_stream_send, and stanzas a module held back and hands on: as they
 * are, no hooks. */
static void write_element(tern_session_t *session, tern_xml_t *el)
{
    conn_send(session->link.conn, el);
}

/* A stanza the core itself answers a bound client with (errors, the
 * legacy session result) passes session/out like any other. */
static void send_own(c2s_t *s, tern_xml_t *stanza)
{
    if (s->state == C2S_BOUND)
        deliver(s->session, stanza);
    else
        conn_send(s->conn, stanza);
}

/* The session waits for a read (core/store_jobs.c): its stream is not
 * read, and what was already parsed waits, until released. */
static void hold_session_input(tern_session_t *session)
{
    conn_input_hold(session->link.conn);
}

static void release_session_input(tern_session_t *session)
{
    conn_input_release(session->link.conn);
}

static void close_session(tern_session_t *session, const char *condition)
{
    conn_t *c = session->link.conn;
    conn_stream_error(c, condition ? condition : "undefined-condition", NULL);
}

/* RFC 6120 §7: resource binding. */
static void handle_bind(c2s_t *s, tern_xml_t *iq, tern_xml_t *bind)
{
    tern_xml_t *res = tern_xml_child(bind, "resource", NS_BIND);
    const char *resource = res ? tern_xml_text(res) : NULL;
    const char *error = NULL;
    if (sessions_bind(s->session, s->user, resource, server.cfg->resource_conflict,
                      (size_t)server.cfg->max_sessions_per_user, &error) < 0) {
        /* RFC 6120 §7.6.2.1 resource-constraint (wait), §7.7.2.2 conflict
         * (cancel), §7.7.2.1 bad-request for a bad resource (modify). */
        int limit = strcmp(error, "resource-constraint") == 0;
        const char *type = strcmp(error, "conflict") == 0 ? "cancel" : limit ? "wait" : "modify";
        tern_xml_t *err = stanza_error_reply(iq, type, error,
                                             limit ? "too many sessions for this account" : NULL);
        if (err) {
            tern_xml_del_attr(err, "to");
            tern_xml_del_attr(err, "from");
            conn_send(s->conn, err);
            tern_xml_unref(err);
        }
        return;
    }
    s->state = C2S_BOUND;
    s->in_hook = hooks_event(s->host->hooks, "session/in");
    s->out_hook = hooks_event(s->host->hooks, "session/out");
    if (s->handshake_timer)
        event_del(s->handshake_timer);
    tern_xml_t *r = tern_xml_new("iq", TERN_NS_CLIENT);
    tern_xml_set_attr(r, "type", "result");
    tern_xml_set_attr(r, "id", tern_xml_attr(iq, "id"));
    tern_xml_t *b = tern_xml_add_child(r, "bind", NS_BIND);
    tern_xml_t *j = tern_xml_add_child(b, "jid", NULL);
    tern_xml_add_text(j, s->session->jid->full, strlen(s->session->jid->full));
    conn_send(s->conn, r);
    tern_xml_unref(r);
    log_info("c2s %s: bound %s", s->conn->peer, s->session->jid->full);
    tern_event_t ev = {.session = s->session, .from = s->session->jid};
    hooks_fire(s->host->hooks, "session/bound", &ev);
}

static void send_empty_result(c2s_t *s, const tern_xml_t *iq)
{
    tern_xml_t *r = tern_xml_new("iq", TERN_NS_CLIENT);
    tern_xml_set_attr(r, "type", "result");
    tern_xml_set_attr(r, "id", tern_xml_attr(iq, "id"));
    send_own(s, r);
    tern_xml_unref(r);
}

static void reply_error(c2s_t *s, const tern_xml_t *st, const char *type, const char *cond)
{
    tern_xml_t *err = stanza_error_reply(st, type, cond, NULL);
    if (!err)
        return;
    tern_xml_del_attr(err, "from");
    tern_xml_set_attr(err, "to", s->state == C2S_BOUND ? s->session->jid->full : "");
    if (s->state != C2S_BOUND)
        tern_xml_del_attr(err, "to");
    send_own(s, err);
    tern_xml_unref(err);
}

static int valid_type(stanza_kind_t kind, const char *type)
{
    static const char *const message[] = {"normal", "chat", "groupchat", "headline", "error", NULL};
    static const char *const presence[] = {"available",  "unavailable", "subscribe",
                                           "subscribed", "unsubscribe", "unsubscribed",
                                           "probe",      "error",       NULL};
    static const char *const iq[] = {"get", "set", "result", "error", NULL};
    const char *const *list = kind == STANZA_MESSAGE    ? message
                              : kind == STANZA_PRESENCE ? presence
                                                        : iq;
    if (kind == STANZA_PRESENCE && strcmp(type, "available") == 0)
        return 0; /* "available" is the absence of a type, not a value */
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], type) == 0)
            return 1;
    return 0;
}

/* RFC 6121 §4.7.2.3: priority is an integer from -128 to 127, default 0. */
static int presence_priority(tern_xml_t *p)
{
    tern_xml_t *el = tern_xml_child(p, "priority", TERN_NS_CLIENT);
    if (!el)
        return 0;
    long v = strtol(tern_xml_text(el), NULL, 10);
    return v < -128 ? -128 : v > 127 ? 127 : (int)v;
}

static void rate_over(evutil_socket_t fd, short what, void *arg)
{
    c2s_t *s = arg;
    conn_input_release(s->conn);
}

/* Per-user stanza rate: the stanza is handled, and when the account's
 * bucket is empty the connection is not read until it refills. */
static void charge_stanza(c2s_t *s)
{
    struct timeval tv;
    event_base_gettimeofday_cached(server.base, &tv);
    long long now = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    long long wait = limits_stanza_take(s->session->user, server.cfg->max_stanzas_per_second,
                                        server.cfg->stanza_burst, now);
    if (wait <= 0 || !s->rate_timer)
        return;
    struct timeval w = {wait / 1000, (wait % 1000) * 1000};
    conn_input_hold(s->conn);
    evtimer_add(s->rate_timer, &w);
}

/* A top-level element that is no stanza, on a stream that logged in:
 * "stream/NS:NAME" on the stream's host (XEP-0198 <enable/>, <r/>, <a/>,
 * <resume/>; XEP-0352 <active/>, <inactive/>).  1 when a module took it. */
static int stream_element(c2s_t *s, tern_xml_t *el)
{
    if (!el->ns || strcmp(el->ns, TERN_NS_CLIENT) == 0 || strcmp(el->ns, NS_STREAM) == 0)
        return 0;
    int bound = s->state == C2S_BOUND;
    tern_event_t ev = {.stanza = el,
                       .from = bound ? s->session->jid : s->account,
                       .to = s->host->jid,
                       .origin = s->session,
                       .session = bound ? s->session : NULL,
                       .user = s->user};
    const char *parts[3] = {"stream", el->ns, el->name};
    return hooks_fire_parts(s->host->hooks, parts, 3, "/:", &ev) == TERN_HANDLED;
}

static void handle_bound_stanza(c2s_t *s, tern_xml_t *st)
{
    charge_stanza(s);
    stanza_kind_t kind = stanza_kind(st);
    if (kind == STANZA_OTHER) {
        /* RFC 6120 §4.9.3.22 unless a module knows the element. */
        if (!stream_element(s, st))
            conn_stream_error(s->conn, "unsupported-stanza-type", NULL);
        return;
    }
    if (hooks_event_hooked(s->in_hook)) {
        tern_event_t ev = {.stanza = st,
                           .from = s->session->jid,
                           .origin = s->session,
                           .session = s->session,
                           .user = s->user};
        if (hooks_event_fire(s->in_hook, &ev) == TERN_HANDLED)
            return;
    }
    /* The router's rules for a client: 'from' stamped with the full JID,
     * a spoofed one ends the stream (RFC 6120 §8.1.2.1, §4.9.3.9). */
    const route_origin_t origin = {.kind = ROUTE_CLIENT, .session = s->session};
    const char *refused = NULL;
    if (router_admit(st, &origin, &refused) < 0) {
        conn_stream_error(s->conn, refused ? refused : "invalid-from", NULL);
        return;
    }
    const char *type_attr = tern_xml_attr(st, "type");
    if ((type_attr || kind == STANZA_IQ) && !valid_type(kind, type_attr ? type_attr : "")) {
        reply_error(s, st, "modify", "bad-request");
        return;
    }
    const char *to = tern_xml_attr(st, "to");
    if (kind == STANZA_IQ) {
        const char *type = type_attr;
        int request = strcmp(type, "get") == 0 || strcmp(type, "set") == 0;
        tern_xml_t *payload = tern_xml_first_element(st);
        if (!tern_xml_attr(st, "id") || (request && (!payload || tern_xml_next_element(payload)))) {
            reply_error(s, st, "modify", "bad-request"); /* RFC 6120 §8.2.3 */
            return;
        }
        if (strcmp(type, "set") == 0 && !to && payload &&
            tern_xml_is(payload, "session", NS_SESSION)) {
            send_empty_result(s, st); /* RFC 3921 legacy session: nothing to do */
            return;
        }
        if (strcmp(type, "set") == 0 && !to && payload && tern_xml_is(payload, "bind", NS_BIND)) {
            reply_error(s, st, "cancel", "not-allowed"); /* already bound */
            return;
        }
    } else if (kind == STANZA_PRESENCE && !to) {
        if (!type_attr) {
            s->session->available = 1;
            s->session->priority = presence_priority(st);
        } else if (strcmp(type_attr, "unavailable") == 0) {
            s->session->available = 0;
        }
    }
    router_route(st, s->session);
}

/* XEP-0077 §3: before logging in, a client may talk to the server about
 * registration; modules answer "iq-TYPE/unauth/NS:NAME" events. */
static void handle_unauth_iq(c2s_t *s, tern_xml_t *st)
{
    const char *type = tern_xml_attr(st, "type");
    tern_xml_t *payload = tern_xml_first_element(st);
    int get = type && strcmp(type, "get") == 0, set = type && strcmp(type, "set") == 0;
    if (!(get || set) || !payload || !payload->ns || tern_xml_next_element(payload) ||
        !tern_xml_attr(st, "id")) {
        reply_error(s, st, "modify", "bad-request");
        return;
    }
    tern_xml_del_attr(st, "from");
    tern_event_t ev = {.stanza = st, .to = s->host->jid, .origin = s->session};
    const char *parts[4] = {get ? "iq-get" : "iq-set", "unauth", payload->ns, payload->name};
    if (hooks_fire_parts(s->host->hooks, parts, 4, "//:", &ev) != TERN_HANDLED)
        reply_error(s, st, "cancel", "service-unavailable");
}

static void on_stanza(conn_t *c, tern_xml_t *st)
{
    c2s_t *s = c->data;
    if (!s->host) {
        conn_stream_error(c, "not-authorized", NULL);
        return;
    }
    if (s->state == C2S_NEW) {
        if (st->ns && strcmp(st->ns, NS_TLS) == 0 && strcmp(st->name, "starttls") == 0)
            handle_starttls(s);
        else if (st->ns && strcmp(st->ns, NS_SASL) == 0)
            handle_sasl(s, st);
        else if (stanza_kind(st) == STANZA_IQ && (s->tls || !server.cfg->require_encryption))
            handle_unauth_iq(s, st);
        else
            conn_stream_error(c, "not-authorized", NULL); /* RFC 6120 §6.4.2 */
        return;
    }
    if (s->state == C2S_AUTHED) {
        tern_xml_t *bind =
            stanza_kind(st) == STANZA_IQ ? tern_xml_child(st, "bind", NS_BIND) : NULL;
        const char *type = tern_xml_attr(st, "type");
        if (bind && type && strcmp(type, "set") == 0 && tern_xml_attr(st, "id"))
            handle_bind(s, st, bind);
        else if (stanza_kind(st) == STANZA_IQ && type && strcmp(type, "set") == 0 &&
                 tern_xml_child(st, "session", NS_SESSION))
            reply_error(s, st, "wait", "not-allowed");
        else if (stanza_kind(st) != STANZA_OTHER || !stream_element(s, st))
            conn_stream_error(c, "not-authorized", NULL); /* RFC 6120 §7.1 */
        /* else a module took it (XEP-0198 <resume/> comes before bind) */
        return;
    }
    if (s->state == C2S_BOUND)
        handle_bound_stanza(s, st);
}

/* Idle for half the timeout: let a module ping (XEP-0199), else whitespace. */
static void on_idle(conn_t *c)
{
    c2s_t *s = c->data;
    if (s->state == C2S_BOUND) {
        tern_event_t ev = {.session = s->session, .from = s->session->jid};
        if (hooks_fire(s->host->hooks, "session/idle", &ev) == TERN_HANDLED)
            return;
    }
    conn_write_str(c, " ");
}

/* The stream is ending.  A bound session a module made resumable
 * (XEP-0198) detaches when the connection was lost or timed out, rather
 * than closed with </stream:stream> or ended by another stream error. */
static void on_closing(conn_t *c)
{
    c2s_t *s = c->data;
    if (s->state != C2S_BOUND || !s->session || !s->session->jid)
        return;
    const char *how = c->ended_with;
    if (s->session->resumable && (!how[0] || strcmp(how, "connection-timeout") == 0)) {
        tern_session_t *session = s->session;
        log_info("c2s %s: connection of %s lost: session detached", c->peer, session->jid->full);
        if (s->ip_counted)
            limits_ip_release(session->peer_ip);
        s->ip_counted = 0;
        s->session = NULL;
        s->state = C2S_GONE;
        sessions_detach(session);
        return;
    }
    log_info("c2s %s: session %s closed", c->peer, s->session->jid->full);
    tern_event_t ev = {.session = s->session, .from = s->session->jid};
    hooks_fire(s->host->hooks, "session/closed", &ev);
    sessions_unbind(s->session);
}

static void on_free(conn_t *c)
{
    c2s_t *s = c->data;
    if (s->ip_counted && s->session)
        limits_ip_release(s->session->peer_ip);
    sessions_end(&s->session); /* unbound by now; it may still hold module data */
    sessions_end(&s->spare);
    sasl_free(&s->sasl);
    if (s->failure_timer)
        event_free(s->failure_timer);
    if (s->handshake_timer)
        event_free(s->handshake_timer);
    if (s->rate_timer)
        event_free(s->rate_timer);
    tern_jid_free(&s->account);
    free(s->user);
    free(s);
}

int c2s_resume(tern_session_t *stream, tern_session_t *target)
{
    if (!stream || !target || stream == target || stream->jid || !target->jid ||
        !stream->link.conn || stream->link.deliver != deliver)
        return -1;
    c2s_t *s = stream_of(stream);
    if (s->state != C2S_AUTHED || s->session != stream || target->host != s->host ||
        !target->jid->local || !s->user || strcmp(target->jid->local, s->user) != 0)
        return -1;
    if (!target->detached) {
        /* The old connection is not known dead yet (XEP-0198 §5): it ends. */
        if (target->link.deliver != deliver)
            return -1;
        c2s_t *old = stream_of(target);
        if (old->ip_counted)
            limits_ip_release(target->peer_ip);
        old->ip_counted = 0;
        old->session = NULL;
        old->state = C2S_GONE;
        sessions_detach(target);
        conn_stream_error(old->conn, "conflict", "the session was resumed on another connection");
    }
    session_link_t link = stream->link;
    snprintf(target->peer_ip, sizeof(target->peer_ip), "%s", stream->peer_ip);
    s->spare = stream; /* freed with the stream: the event naming it may still run */
    s->session = target;
    s->state = C2S_BOUND;
    s->in_hook = hooks_event(s->host->hooks, "session/in");
    s->out_hook = hooks_event(s->host->hooks, "session/out");
    if (s->handshake_timer)
        event_del(s->handshake_timer);
    log_info("c2s %s: resumed %s", s->conn->peer, target->jid->full);
    return sessions_attach(target, &link);
}

static void handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
    c2s_t *s = arg;
    log_info("c2s %s: no session after the handshake timeout", s->conn->peer);
    conn_stream_error(s->conn, "connection-timeout", NULL);
}

static const conn_ops_t c2s_ops = {.kind = "c2s",
                                   .on_open = on_open,
                                   .on_stanza = on_stanza,
                                   .on_idle = on_idle,
                                   .on_closing = on_closing,
                                   .send_header = send_header,
                                   .on_free = on_free};

/* What every client stream needs once its conn exists: the session's
 * link and address, the per-address count and the timers. */
static void c2s_started(c2s_t *s, const char *peer)
{
    s->session->link.conn = s->conn;
    /* "1.2.3.4:5678" / "[2001:db8::1]:5678" -> the address alone */
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    if (peer[0] == '[' && n >= 2) {
        peer++;
        n -= 2;
    }
    snprintf(s->session->peer_ip, sizeof(s->session->peer_ip), "%.*s", (int)n, peer);
    long long max_ip = server.cfg->max_connections_per_ip;
    if (limits_ip_take(s->session->peer_ip, max_ip) == 0)
        s->ip_counted = max_ip > 0;
    else
        s->ip_refused = 1;
    s->rate_timer = evtimer_new(server.base, rate_over, s);
    s->failure_timer = evtimer_new(server.base, failure_timer_cb, s);
    s->handshake_timer = evtimer_new(server.base, handshake_timeout, s);
    long long ms = server.cfg->handshake_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (s->handshake_timer && ms > 0)
        evtimer_add(s->handshake_timer, &tv);
}

static c2s_t *c2s_alloc(void)
{
    c2s_t *s = calloc(1, sizeof(*s));
    session_link_t link = {.deliver = deliver,
                           .send = send_paced,
                           .write = write_element,
                           .close = close_session,
                           .hold = hold_session_input,
                           .release = release_session_input};
    if (!s || !(s->session = sessions_new(NULL, &link, NULL))) {
        free(s);
        return NULL;
    }
    return s;
}

struct transport *c2s_accept_websocket(struct transport *t, const char *peer, int secure,
                                       const char *client, struct evbuffer *rest)
{
    c2s_t *s = c2s_alloc();
    if (!s)
        return t;
    s->tls = secure;
    xml_stream_limits_t limits = {
        .max_stanza_bytes = (size_t)server.cfg->max_stanza_size, .max_depth = 64, .max_attrs = 64};
    s->conn =
        ws_conn_new(server.base, t, peer, &c2s_ops, s, &limits, server.cfg->c2s_idle_timeout_ms,
                    (size_t)server.cfg->websocket.max_message_size, rest);
    if (!s->conn) {
        sessions_end(&s->session);
        free(s);
        return t;
    }
    /* The client's address: the peer, or the one a trusted proxy named. */
    char addr[80];
    if (client && strchr(client, ':'))
        snprintf(addr, sizeof(addr), "[%s]:0", client);
    else
        snprintf(addr, sizeof(addr), "%s:0", client ? client : peer);
    c2s_started(s, client ? addr : peer);
    log_info("c2s %s: new WebSocket connection (%s)", peer, secure ? "secure" : "plain");
    return NULL;
}

void c2s_accept(evutil_socket_t fd, const char *peer, int direct_tls)
{
    c2s_t *s = c2s_alloc();
    if (!s) {
        evutil_closesocket(fd);
        return;
    }
    SSL *ssl = NULL;
    if (direct_tls) {
        if (!server.tls || !(ssl = tls_server_ssl(server.tls, "xmpp-client"))) {
            sessions_end(&s->session);
            free(s);
            evutil_closesocket(fd);
            return;
        }
        s->tls = 1;
    }
    xml_stream_limits_t limits = {
        .max_stanza_bytes = (size_t)server.cfg->max_stanza_size, .max_depth = 64, .max_attrs = 64};
    s->conn =
        conn_new(server.base, fd, peer, &c2s_ops, s, ssl, &limits, server.cfg->c2s_idle_timeout_ms);
    if (!s->conn) {
        sessions_end(&s->session);
        free(s);
        return;
    }
    c2s_started(s, peer);
    log_info("c2s %s: new %s connection", peer, direct_tls ? "direct TLS" : "plain");
}
