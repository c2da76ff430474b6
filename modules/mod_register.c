/*
 * mod_register — XEP-0077 In-Band Registration with the server.
 *
 * Owns jabber:iq:register on the host:
 *  - before login (§3.1, "Registration with a Server"): the registration
 *    form, and account creation.  Closed unless the admin sets
 *    `allow_registration`; a stream that presented a valid invitation
 *    (mod_invites, XEP-0445) may create one account even then.  Open
 *    registration is throttled per client address, and the
 *    <register xmlns='http://jabber.org/features/iq-register'/> stream
 *    feature is offered only while it is open (XEP-0077 §8);
 *  - after login: <registered/> (§3.1), password change (§3.3) and
 *    cancellation (§3.2), which deletes the account and all its data
 *    through the core and ends its sessions with <not-authorized/>.
 * Passwords are never logged, and errors never echo the request (§3.3:
 * it holds the password).  The core fires the pre-login events only on
 * an encrypted stream when encryption is required.  This module keeps no
 * per-session state: mod_invites remembers accepted tokens.  Creating an
 * account and changing a password derive keys (seconds with a high
 * scram_iterations), so both go through tern_account_*_async and the iq
 * is answered when the core calls back; a request whose stream closed
 * meanwhile is dropped unanswered.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tern/module.h>

#include "invites_api.h"

#define NS_REGISTER   "jabber:iq:register"
#define NS_FEATURE    "http://jabber.org/features/iq-register"
#define NS_DATA       "jabber:x:data"
#define NS_STANZAS    "urn:ietf:params:xml:ns:xmpp-stanzas"
#define THROTTLE_SIZE 4096 /* addresses remembered at most; the oldest go first */

#define INSTRUCTIONS "Choose a username and password to register with this server."

/* Successful open registrations from one address in its current window. */
typedef struct throttle_entry {
    struct throttle_entry *newer, *older;
    int64_t start_us; /* first registration of the window */
    unsigned count;
    char ip[48];
} throttle_entry_t;

typedef struct reg_state {
    int open;                          /* allow_registration */
    size_t min_password;               /* characters */
    unsigned throttle_max;             /* 0 = no limit */
    int64_t period_us;                 /* throttle window */
    throttle_entry_t *newest, *oldest; /* ordered by start_us */
    size_t n_entries;
} reg_state_t;

static const tern_option_t options[] = {
    {.name = "allow_registration",
     .type = TERN_OPT_BOOL,
     .def = "false",
     .doc = "Let anyone create an account in-band. Invitations work without it."},
    {.name = "min_password_length",
     .type = TERN_OPT_INT,
     .def = "8",
     .doc = "Fewest characters (Unicode code points) a new password may have, for registration and "
            "password change.",
     .min = 1,
     .max = 1023},
    {.name = "throttle_max",
     .type = TERN_OPT_INT,
     .def = "1",
     .doc = "Open registrations one IP address may make per `throttle_period`; `0` = no limit.",
     .min = 0,
     .max = 1000000},
    {.name = "throttle_period",
     .type = TERN_OPT_DURATION,
     .def = "1h",
     .doc = "The window `throttle_max` counts in. Must be more than 0."},
    {.name = NULL},
};

/* ---- replies ---------------------------------------------------------- */

/* A new <iq/> of `type` answering ev's iq, without its payload.  Before
 * login it carries neither 'to' nor 'from' (the stream has no JID yet). */
static tern_xml_t *answer(const tern_event_t *ev, const char *type)
{
    tern_xml_t *r = tern_xml_new("iq", TERN_NS_CLIENT);
    if (r == NULL)
        return NULL;
    const char *id = tern_xml_attr(ev->stanza, "id");
    tern_xml_set_attr(r, "type", type);
    tern_xml_set_attr(r, "id", id != NULL ? id : "");
    if (ev->from != NULL) {
        tern_xml_set_attr(r, "to", ev->from->full);
        tern_xml_set_attr(r, "from", ev->to->full);
    }
    return r;
}

/* Send `r` to the requester and drop our reference. */
static void send_answer(tern_module_ctx_t *m, const tern_event_t *ev, tern_xml_t *r)
{
    if (r == NULL)
        return;
    if (ev->from != NULL)
        tern_route(m, r);
    else
        tern_session_send(ev->origin, r);
    tern_xml_unref(r);
}

/* An RFC 6120 §8.3 error that does not echo the request (XEP-0077 §3.3). */
static int fail(tern_module_ctx_t *m, const tern_event_t *ev, const char *type,
                const char *condition, const char *text)
{
    tern_xml_t *r = answer(ev, "error");
    tern_xml_t *err = r != NULL ? tern_xml_add_child(r, "error", NULL) : NULL;
    if (err != NULL) {
        tern_xml_set_attr(err, "type", type);
        tern_xml_add_child(err, condition, NS_STANZAS);
        if (text != NULL) {
            tern_xml_t *t = tern_xml_add_child(err, "text", NS_STANZAS);
            tern_xml_set_attr(t, "xml:lang", "en");
            tern_xml_add_text(t, text, strlen(text));
        }
    }
    send_answer(m, ev, r);
    return TERN_HANDLED;
}

static int succeed(tern_module_ctx_t *m, const tern_event_t *ev)
{
    send_answer(m, ev, answer(ev, "result"));
    return TERN_HANDLED;
}

/* A request waiting for the core's worker threads: what answering it
 * later takes (the iq, its addresses, the account). */
typedef struct pending {
    tern_xml_t *stanza;
    tern_jid_t *from, *to; /* NULL before login */
    char *local;
    int invited;
} pending_t;

static void pending_free(pending_t *p)
{
    if (p == NULL)
        return;
    if (p->stanza != NULL)
        tern_xml_unref(p->stanza);
    tern_jid_free(&p->from);
    tern_jid_free(&p->to);
    free(p->local);
    free(p);
}

static pending_t *pending_new(const tern_event_t *ev, const char *local)
{
    pending_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->stanza = tern_xml_ref(ev->stanza);
    p->local = strdup(local);
    if (ev->from != NULL) {
        p->from = tern_jid_dup(ev->from);
        p->to = tern_jid_dup(ev->to);
    }
    if (p->stanza == NULL || p->local == NULL ||
        (ev->from != NULL && (p->from == NULL || p->to == NULL))) {
        pending_free(p);
        return NULL;
    }
    return p;
}

/* The event a pending request came with, to answer it through fail()
 * and succeed(). */
static tern_event_t pending_event(const pending_t *p, tern_session_t *s)
{
    tern_event_t ev = {.stanza = p->stanza, .from = p->from, .to = p->to, .origin = s};
    return ev;
}

static void add_text_child(tern_xml_t *parent, const char *name, const char *text)
{
    tern_xml_t *el = tern_xml_add_child(parent, name, NULL);
    if (el != NULL && text != NULL)
        tern_xml_add_text(el, text, strlen(text));
}

/* ---- reading the request ---------------------------------------------- */

static tern_xml_t *query_of(const tern_event_t *ev)
{
    return tern_xml_child(ev->stanza, "query", NS_REGISTER);
}

/* The value of field `var` in the submitted data form `x`, or NULL. */
static const char *form_field(tern_xml_t *x, const char *var)
{
    for (tern_xml_t *f = tern_xml_first_element(x); f != NULL; f = tern_xml_next_element(f)) {
        const char *name = tern_xml_attr(f, "var");
        if (tern_xml_is(f, "field", NS_DATA) && name != NULL && strcmp(name, var) == 0) {
            tern_xml_t *value = tern_xml_child(f, "value", NS_DATA);
            return value != NULL ? tern_xml_text(value) : "";
        }
    }
    return NULL;
}

/* `name` as the requester gave it: from a submitted data form when there
 * is one (XEP-0077 §4: it takes precedence), else from the plain
 * <name/> element.  NULL when absent. */
static const char *field(tern_xml_t *query, const char *name)
{
    tern_xml_t *x = tern_xml_child(query, "x", NS_DATA);
    const char *type = x != NULL ? tern_xml_attr(x, "type") : NULL;
    if (type != NULL && strcmp(type, "submit") == 0)
        return form_field(x, name);
    tern_xml_t *el = tern_xml_child(query, name, NS_REGISTER);
    return el != NULL ? tern_xml_text(el) : NULL;
}

/* Characters (code points) of UTF-8 `s`. */
static size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* The password rule: present, not empty (XEP-0077 §3.1, §3.3) and at least
 * min_password_length characters.  NULL when acceptable, else why not. */
static const char *password_problem(const reg_state_t *st, const char *password, char *buf,
                                    size_t size)
{
    if (password == NULL || password[0] == '\0')
        return "A password is required";
    if (utf8_length(password) < st->min_password) {
        snprintf(buf, size, "The password must have at least %zu characters", st->min_password);
        return buf;
    }
    return NULL;
}

/* ---- throttle --------------------------------------------------------- */

static void throttle_unlink(reg_state_t *st, throttle_entry_t *e)
{
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        st->newest = e->older;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        st->oldest = e->newer;
    st->n_entries--;
    free(e);
}

/* Forget windows that ended: they are the oldest, so the walk stops early. */
static void throttle_expire(reg_state_t *st, int64_t now)
{
    while (st->oldest != NULL && now - st->oldest->start_us >= st->period_us)
        throttle_unlink(st, st->oldest);
}

static throttle_entry_t *throttle_find(reg_state_t *st, const char *ip)
{
    for (throttle_entry_t *e = st->newest; e != NULL; e = e->older)
        if (strcmp(e->ip, ip) == 0)
            return e;
    return NULL;
}

/* 1 when `ip` used up its open registrations for the current window. */
static int throttled(reg_state_t *st, const char *ip)
{
    if (st->throttle_max == 0)
        return 0;
    throttle_expire(st, tern_now_us());
    const throttle_entry_t *e = throttle_find(st, ip);
    return e != NULL && e->count >= st->throttle_max;
}

/* Count one registration from `ip`.  The table stays bounded: at
 * THROTTLE_SIZE addresses the oldest window is dropped. */
static void throttle_count(reg_state_t *st, const char *ip)
{
    if (st->throttle_max == 0)
        return;
    int64_t now = tern_now_us();
    throttle_expire(st, now);
    throttle_entry_t *e = throttle_find(st, ip);
    if (e == NULL) {
        if (st->n_entries >= THROTTLE_SIZE)
            throttle_unlink(st, st->oldest);
        if ((e = calloc(1, sizeof *e)) == NULL)
            return;
        snprintf(e->ip, sizeof e->ip, "%s", ip);
        e->start_us = now;
        e->older = st->newest;
        if (st->newest != NULL)
            st->newest->newer = e;
        else
            st->oldest = e;
        st->newest = e;
        st->n_entries++;
    }
    e->count++;
}

/* ---- before login ------------------------------------------------------ */

/* The invitation service when `s` holds a usable token, else NULL. */
static const invites_api_t *invitation(tern_module_ctx_t *m, tern_session_t *s)
{
    const invites_api_t *inv = tern_require(m, INVITES_SERVICE);
    return inv != NULL && inv->session_may_register(inv, s) ? inv : NULL;
}

/* XEP-0077 §8: offer registration only while anyone may use it.  A stream
 * with an invitation learns of it from mod_invites' own feature. */
static int on_features(tern_module_ctx_t *m, tern_event_t *ev)
{
    const reg_state_t *st = tern_get_data(m);
    if (st->open)
        tern_xml_add_child(ev->stanza, "register", NS_FEATURE);
    return TERN_PASS;
}

/* XEP-0077 §3.1: the fields to fill, as plain elements and as a XEP-0004
 * form.  A host that does not offer registration answers
 * service-unavailable. */
static int on_unauth_get(tern_module_ctx_t *m, tern_event_t *ev)
{
    const reg_state_t *st = tern_get_data(m);
    const invites_api_t *inv = invitation(m, ev->origin);
    if (!st->open && inv == NULL)
        return fail(m, ev, "cancel", "service-unavailable", "Registration is closed");
    const char *preset = inv != NULL ? inv->session_username(inv, ev->origin) : NULL;

    tern_xml_t *r = answer(ev, "result");
    tern_xml_t *q = r != NULL ? tern_xml_add_child(r, "query", NS_REGISTER) : NULL;
    tern_xml_t *x = q != NULL ? tern_xml_add_child(q, "x", NS_DATA) : NULL;
    if (x == NULL) {
        if (r != NULL)
            tern_xml_unref(r);
        return fail(m, ev, "wait", "resource-constraint", NULL); /* RFC 6120 §8.3.3.18 */
    }
    add_text_child(q, "instructions", INSTRUCTIONS);
    add_text_child(q, "username", preset);
    add_text_child(q, "password", NULL);

    tern_xml_set_attr(x, "type", "form");
    add_text_child(x, "title", "Account registration");
    add_text_child(x, "instructions", INSTRUCTIONS);
    static const char *const fields[][3] = {{"FORM_TYPE", "hidden", NULL},
                                            {"username", "text-single", "Username"},
                                            {"password", "text-private", "Password"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        tern_xml_t *f = tern_xml_add_child(x, "field", NULL);
        if (f == NULL)
            continue;
        tern_xml_set_attr(f, "var", fields[i][0]);
        tern_xml_set_attr(f, "type", fields[i][1]);
        if (fields[i][2] != NULL) {
            tern_xml_set_attr(f, "label", fields[i][2]);
            tern_xml_add_child(f, "required", NULL);
        }
        if (i == 0)
            add_text_child(f, "value", NS_REGISTER);
        else if (i == 1 && preset != NULL)
            add_text_child(f, "value", preset);
    }
    send_answer(m, ev, r);
    return TERN_HANDLED;
}

/* The error for a failed creation (XEP-0077 §3.1, RFC 6120 §8.3.3). */
static int create_failed(tern_module_ctx_t *m, const tern_event_t *ev, const char *error)
{
    if (error != NULL && strcmp(error, "account exists") == 0)
        return fail(m, ev, "cancel", "conflict", "The username is taken");
    if (error != NULL &&
        (strcmp(error, "invalid username") == 0 || strcmp(error, "invalid password") == 0))
        return fail(m, ev, "modify", "not-acceptable", error);
    return fail(m, ev, "wait", "internal-server-error", NULL);
}

/* The core is done creating the account of a pending registration. */
static void registered(tern_module_ctx_t *m, tern_session_t *s, void *ctx, int rc,
                       const char *error)
{
    pending_t *p = ctx;
    if (s != NULL) {
        tern_event_t ev = pending_event(p, s);
        if (rc < 0) {
            create_failed(m, &ev, error);
        } else {
            const invites_api_t *inv = p->invited ? invitation(m, s) : NULL;
            if (inv != NULL)
                inv->consume(inv, s, p->local);
            tern_log(m, TERN_LOG_INFO, "registered %s from %s%s", p->local, tern_session_peer_ip(s),
                     p->invited ? " with an invitation" : "");
            succeed(m, &ev);
        }
    }
    pending_free(p);
}

/* XEP-0077 §3.1: create the account; errors per its examples and RFC 6120
 * §8.3.3.  Checks run cheapest first; the key derivation of the account
 * comes last, on the core's worker threads (registered() answers). */
static int on_unauth_set(tern_module_ctx_t *m, tern_event_t *ev)
{
    reg_state_t *st = tern_get_data(m);
    tern_session_t *s = ev->origin;
    tern_xml_t *query = query_of(ev);
    if (tern_xml_child(query, "remove", NS_REGISTER) != NULL) /* §3.2: not registered */
        return fail(m, ev, "cancel", "unexpected-request", "Log in to cancel a registration");

    const invites_api_t *inv = invitation(m, s);
    if (!st->open && inv == NULL)
        return fail(m, ev, "cancel", "not-allowed", "Registration is closed");

    const char *username = field(query, "username");
    const char *password = field(query, "password");
    if (username == NULL || username[0] == '\0')
        return fail(m, ev, "modify", "not-acceptable", "A username is required");
    char buf[96];
    const char *why = password_problem(st, password, buf, sizeof buf);
    if (why != NULL)
        return fail(m, ev, "modify", "not-acceptable", why);
    char *local = tern_jid_prep_local(username);
    if (local == NULL)
        return fail(m, ev, "modify", "not-acceptable", "The username is not valid");

    int rc = TERN_HANDLED;
    const char *preset = inv != NULL ? inv->session_username(inv, s) : NULL;
    const invites_api_t *any = inv != NULL ? inv : tern_require(m, INVITES_SERVICE);
    const char *error = NULL;
    if (preset != NULL && strcmp(preset, local) != 0) {
        char text[1100]; /* a localpart has at most 1023 bytes */
        snprintf(text, sizeof text, "This invitation is for the username %s", preset);
        rc = fail(m, ev, "modify", "not-acceptable", text);
    } else if (any != NULL && any->username_reserved(any, s, local)) {
        rc = fail(m, ev, "cancel", "conflict", "The username is reserved");
    } else if (inv == NULL && throttled(st, tern_session_peer_ip(s))) {
        rc = fail(m, ev, "wait", "resource-constraint",
                  "Too many registrations from your address; try again later");
    } else {
        pending_t *p = pending_new(ev, local);
        if (p == NULL) {
            rc = fail(m, ev, "wait", "resource-constraint", NULL);
        } else {
            p->invited = inv != NULL;
            const char *ip = tern_session_peer_ip(s);
            char *ip_copy = ip != NULL ? strdup(ip) : NULL; /* registered() may close s */
            if (tern_account_create_async(m, s, local, password, registered, p, &error) < 0) {
                pending_free(p);
                rc = create_failed(m, ev, error);
            } else if (inv == NULL && ip_copy != NULL) {
                throttle_count(st, ip_copy); /* now: requests in flight count too */
            }
            free(ip_copy);
        }
    }
    free(local);
    return rc;
}

/* ---- after login ------------------------------------------------------- */

/* Whether ev comes from a user of this host (iq-*\/host events also see
 * remote senders, which this module does not serve). */
static int from_local_user(tern_module_ctx_t *m, const tern_event_t *ev)
{
    return ev->origin != NULL && ev->from != NULL && ev->from->local != NULL &&
           strcmp(ev->from->domain, tern_host(m)) == 0;
}

/* XEP-0077 §3.1: an authenticated entity is already registered. */
static int on_get(tern_module_ctx_t *m, tern_event_t *ev)
{
    if (!from_local_user(m, ev))
        return TERN_PASS;
    tern_xml_t *r = answer(ev, "result");
    tern_xml_t *q = r != NULL ? tern_xml_add_child(r, "query", NS_REGISTER) : NULL;
    if (q == NULL) {
        if (r != NULL)
            tern_xml_unref(r);
        return fail(m, ev, "wait", "resource-constraint", NULL);
    }
    tern_xml_add_child(q, "registered", NULL);
    add_text_child(q, "instructions", "You are registered. Send a new password to change it.");
    add_text_child(q, "username", ev->from->local);
    send_answer(m, ev, r);
    return TERN_HANDLED;
}

/* XEP-0077 §3.2: the result goes out first, then the core deletes the
 * account and its data and closes its sessions with <not-authorized/>. */
static int cancel_registration(tern_module_ctx_t *m, tern_event_t *ev, tern_xml_t *query)
{
    tern_xml_t *only = tern_xml_first_element(query);
    if (tern_xml_next_element(only) != NULL)
        return fail(m, ev, "modify", "bad-request", "<remove/> must be the only child");
    char *local = strdup(ev->from->local); /* the sessions (and ev->from's owner) go */
    if (local == NULL)
        return fail(m, ev, "wait", "resource-constraint", NULL);
    succeed(m, ev);
    const char *error = NULL;
    if (tern_account_delete(m, local, &error) < 0)
        tern_log(m, TERN_LOG_ERROR, "cannot delete %s: %s", local, error);
    else
        tern_log(m, TERN_LOG_INFO, "%s cancelled its registration", local);
    free(local);
    return TERN_HANDLED;
}

/* 1 when `given` names the account `local`: the localpart, or the bare
 * JID as the XEP-0077 §3.3 form example writes it. */
static int names_account(tern_module_ctx_t *m, const char *given, const char *local)
{
    tern_jid_t *j = tern_jid_new(given, NULL);
    int same = 0;
    if (j != NULL && j->resource == NULL) {
        if (j->local != NULL)
            same = strcmp(j->local, local) == 0 && strcmp(j->domain, tern_host(m)) == 0;
        else {
            char *prepped = tern_jid_prep_local(given);
            same = prepped != NULL && strcmp(prepped, local) == 0;
            free(prepped);
        }
    }
    tern_jid_free(&j);
    return same;
}

/* The error for a failed password change (XEP-0077 §3.3). */
static int passwd_failed(tern_module_ctx_t *m, const tern_event_t *ev, const char *error)
{
    if (error != NULL && strcmp(error, "wrong password") == 0)
        return fail(m, ev, "modify", "not-authorized", "The old password is wrong");
    if (error != NULL && strcmp(error, "invalid password") == 0)
        return fail(m, ev, "modify", "not-acceptable", error);
    return fail(m, ev, "wait", "internal-server-error", NULL);
}

/* The core is done with a pending password change. */
static void password_changed(tern_module_ctx_t *m, tern_session_t *s, void *ctx, int rc,
                             const char *error)
{
    pending_t *p = ctx;
    if (s != NULL) {
        tern_event_t ev = pending_event(p, s);
        if (rc < 0) {
            passwd_failed(m, &ev, error);
        } else {
            tern_log(m, TERN_LOG_INFO, "%s changed its password", p->local);
            succeed(m, &ev);
        }
    }
    pending_free(p);
}

/* XEP-0077 §3.3: a new password for the requester's own account, set
 * once the core has checked the old one (if given) and derived the new
 * keys on its worker threads.  On any error the old password stays. */
static int change_password(tern_module_ctx_t *m, tern_event_t *ev, tern_xml_t *query)
{
    const reg_state_t *st = tern_get_data(m);
    const char *local = ev->from->local;
    const char *username = field(query, "username");
    const char *password = field(query, "password");
    const char *old = field(query, "old_password");
    if (username == NULL || password == NULL)
        return fail(m, ev, "modify", "bad-request", "Both <username/> and <password/> are needed");
    if (!names_account(m, username, local))
        return fail(m, ev, "auth", "forbidden", "You can only change your own password");
    char buf[96];
    const char *why = password_problem(st, password, buf, sizeof buf);
    if (why != NULL)
        return fail(m, ev, "modify", "not-acceptable", why);
    pending_t *p = pending_new(ev, local);
    if (p == NULL)
        return fail(m, ev, "wait", "resource-constraint", NULL);
    const char *error = NULL;
    if (tern_account_passwd_async(m, ev->origin, local, old, password, password_changed, p,
                                  &error) < 0) {
        pending_free(p);
        return passwd_failed(m, ev, error);
    }
    return TERN_HANDLED;
}

static int on_set(tern_module_ctx_t *m, tern_event_t *ev)
{
    if (!from_local_user(m, ev))
        return TERN_PASS;
    tern_xml_t *query = query_of(ev);
    if (tern_xml_child(query, "remove", NS_REGISTER) != NULL)
        return cancel_registration(m, ev, query);
    return change_password(m, ev, query);
}

/* ---- life cycle -------------------------------------------------------- */

static int load(tern_module_ctx_t *m)
{
    long long period_ms = tern_opt_int(m, "throttle_period");
    if (period_ms <= 0) {
        tern_log(m, TERN_LOG_ERROR, "throttle_period must be more than 0");
        return -1;
    }
    reg_state_t *st = calloc(1, sizeof *st);
    if (st == NULL) {
        tern_log(m, TERN_LOG_ERROR, "out of memory");
        return -1;
    }
    st->open = tern_opt_int(m, "allow_registration") != 0;
    st->min_password = (size_t)tern_opt_int(m, "min_password_length");
    st->throttle_max = (unsigned)tern_opt_int(m, "throttle_max");
    st->period_us = period_ms * 1000;
    tern_set_data(m, st);

    tern_add_feature(m, NS_REGISTER); /* XEP-0077 §10: password change and cancel work */
    if (tern_hook(m, "stream-features/unauth", on_features, 0) != 0 ||
        tern_hook(m, "iq-get/unauth/" NS_REGISTER ":query", on_unauth_get, 0) != 0 ||
        tern_hook(m, "iq-set/unauth/" NS_REGISTER ":query", on_unauth_set, 0) != 0 ||
        tern_hook(m, "iq-get/self/" NS_REGISTER ":query", on_get, 0) != 0 ||
        tern_hook(m, "iq-set/self/" NS_REGISTER ":query", on_set, 0) != 0 ||
        tern_hook(m, "iq-get/host/" NS_REGISTER ":query", on_get, 0) != 0 ||
        tern_hook(m, "iq-set/host/" NS_REGISTER ":query", on_set, 0) != 0) {
        free(st); /* unload() runs only after a successful load */
        tern_set_data(m, NULL);
        return -1;
    }
    return 0;
}

static void unload(tern_module_ctx_t *m)
{
    reg_state_t *st = tern_get_data(m);
    if (st == NULL)
        return;
    while (st->oldest != NULL)
        throttle_unlink(st, st->oldest);
    free(st);
    tern_set_data(m, NULL);
}

/* A reload changed the options: checked as in load(); the throttle keeps
 * what it counted so far. */
static int reconfigure(tern_module_ctx_t *m)
{
    reg_state_t *st = tern_get_data(m);
    long long period_ms = tern_opt_int(m, "throttle_period");
    if (period_ms <= 0) {
        tern_log(m, TERN_LOG_ERROR, "throttle_period must be more than 0");
        return -1;
    }
    st->open = tern_opt_int(m, "allow_registration") != 0;
    st->min_password = (size_t)tern_opt_int(m, "min_password_length");
    st->throttle_max = (unsigned)tern_opt_int(m, "throttle_max");
    st->period_us = period_ms * 1000;
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "register",
    .description = "In-band registration, password change and account removal (XEP-0077)",
    .options = options,
    .load = load,
    .unload = unload,
    .reconfigure = reconfigure,
};
