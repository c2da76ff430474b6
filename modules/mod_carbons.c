/*
 * mod_carbons — XEP-0280 Message Carbons (urn:xmpp:carbons:2).
 *
 * Owns the per-session carbons switch (§4 enable, §5 disable: an iq-set
 * to the user's own account, idempotent per §10.1) and the forwarded
 * copies (XEP-0297) that keep a user's carbons-enabled sessions in every
 * conversation:
 *   - received (§7): a message for a local user goes, wrapped in
 *     <received/>, to each enabled and available session of that user the
 *     core will not hand the original to (RFC 6121 §8.5: a full JID that is
 *     bound gets it alone; otherwise the available sessions of highest
 *     non-negative priority get it);
 *   - sent (§8): a message a local user's session sends goes, wrapped in
 *     <sent/>, to each other enabled and available session of that user.
 * Copies come from the user's bare JID, go to the session's full JID and
 * keep the original's type.
 *
 * Eligible messages (§6): type chat; type normal with a <body/> or with
 * a payload of instant messaging that the other clients need to stay in
 * step (the current text of §6 names them): a XEP-0085 chat state, a XEP-0184
 * receipt or receipt request, a XEP-0333 chat marker; never
 * error, groupchat or headline; never a message carrying MUC user data
 * (<x xmlns='http://jabber.org/protocol/muc#user'/>: private messages
 * through a room); never a message that is itself a carbon.  Not copied
 * (§9, XEP-0334 §4.3): a message with <private xmlns='urn:xmpp:carbons:2'/>
 * or <no-copy xmlns='urn:xmpp:hints'/>; <private/> is removed from a
 * message before it is delivered to a local user (§9).
 *
 * A message from a user to their own account is copied as received only
 * (not also as sent), and never back to the sending session.
 *
 * Handlers run at priority 50 and always pass: a module that drops
 * messages (blocking, privacy) hooks "in-message/...", which runs before
 * "message/...", and "pre-message/..." above 50, so that nothing is copied
 * for what it drops.  Sent copies are made on the pre-message events,
 * which the core fires on the sender's host whatever the destination
 * (local, component, remote), so every message a client sends is copied.
 */
#include <stdlib.h>
#include <string.h>
#include <tern/module.h>

#include "hints.h"

#define NS_CARBONS  "urn:xmpp:carbons:2"
#define NS_FORWARD  "urn:xmpp:forward:0"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"

/* Namespaces whose elements make a bodyless message of type normal part
 * of a conversation (see "Eligible messages" above). */
static const char *const im_namespaces[] = {
    "http://jabber.org/protocol/chatstates", /* XEP-0085 */
    "urn:xmpp:receipts",                     /* XEP-0184 */
    "urn:xmpp:chat-markers:0",               /* XEP-0333 */
};

/* The value of a session slot while carbons are enabled on it. */
static char enabled_mark;

static int carbons_enabled(const tern_session_t *s, tern_module_ctx_t *m)
{
    return tern_session_get(s, m) == &enabled_mark;
}

/* XEP-0280 §4, §5, §10.1: switch carbons for the requesting session. */
static int set_carbons(tern_module_ctx_t *m, tern_event_t *ev, int on)
{
    if (ev->origin == NULL) {
        tern_reply_error(m, ev, "cancel", "not-allowed", NULL); /* §4.1: not our client */
        return TERN_HANDLED;
    }
    tern_session_set(ev->origin, m, on ? &enabled_mark : NULL, NULL);
    tern_xml_t *reply = tern_iq_result(ev);
    return tern_iq_answer(m, ev, reply, reply != NULL);
}

static int on_enable(tern_module_ctx_t *m, tern_event_t *ev)
{
    return set_carbons(m, ev, 1);
}

static int on_disable(tern_module_ctx_t *m, tern_event_t *ev)
{
    return set_carbons(m, ev, 0);
}

/* Whether a message of type normal belongs to a conversation: a <body/>,
 * or a direct child in one of im_namespaces. */
static int im_content(const tern_xml_t *st)
{
    if (tern_xml_child(st, "body", TERN_NS_CLIENT) != NULL)
        return 1;
    for (const tern_xml_t *el = tern_xml_first_element(st); el != NULL;
         el = tern_xml_next_element(el))
        for (size_t i = 0; el->ns != NULL && i < sizeof im_namespaces / sizeof im_namespaces[0];
             i++)
            if (strcmp(el->ns, im_namespaces[i]) == 0)
                return 1;
    return 0;
}

/* XEP-0280 §6, and not a carbon itself, not from or through a MUC. */
static int eligible(const tern_xml_t *st)
{
    const char *type = tern_xml_attr(st, "type");
    int chat = type != NULL && strcmp(type, "chat") == 0;
    int normal = type == NULL || strcmp(type, "normal") == 0;
    if (!chat && !(normal && im_content(st)))
        return 0;
    return tern_xml_child(st, "received", NS_CARBONS) == NULL &&
           tern_xml_child(st, "sent", NS_CARBONS) == NULL &&
           tern_xml_child(st, "x", NS_MUC_USER) == NULL;
}

/* §9, XEP-0334 §4.3: the sender asked for no copies. */
static int no_copies(const tern_xml_t *st)
{
    return tern_xml_child(st, "private", NS_CARBONS) != NULL || hint_no_copy(st);
}

/* <message from=BARE type=TYPE><DIR xmlns=carbons><forwarded>ORIGINAL
 * </forwarded></DIR></message>, without 'to' yet; NULL when out of memory. */
static tern_xml_t *wrap(const tern_xml_t *orig, const char *dir, const char *bare)
{
    tern_xml_t *msg = tern_xml_new("message", TERN_NS_CLIENT);
    tern_xml_t *d = msg != NULL ? tern_xml_add_child(msg, dir, NS_CARBONS) : NULL;
    tern_xml_t *fwd = d != NULL ? tern_xml_add_child(d, "forwarded", NS_FORWARD) : NULL;
    if (fwd == NULL || tern_xml_copy_into(fwd, orig) == NULL) {
        if (msg != NULL)
            tern_xml_unref(msg);
        return NULL;
    }
    const char *type = tern_xml_attr(orig, "type");
    tern_xml_set_attr(msg, "from", bare);
    if (type != NULL)
        tern_xml_set_attr(msg, "type", type);
    return msg;
}

/* Send a copy of `tmpl` addressed to `s`'s full JID. */
static void send_copy(tern_module_ctx_t *m, tern_session_t *s, const tern_xml_t *tmpl)
{
    const tern_jid_t *jid = tern_session_jid(s);
    tern_xml_t *copy = jid != NULL ? tern_xml_copy(tmpl) : NULL;
    if (copy == NULL) {
        tern_log(m, TERN_LOG_WARN, "out of memory: a carbon copy was not sent");
        return;
    }
    tern_xml_set_attr(copy, "to", jid->full);
    tern_session_send(s, copy);
    tern_xml_unref(copy);
}

/* Highest non-negative priority among `local`'s available sessions, or -1:
 * those sessions get a message to the bare JID (RFC 6121 §8.5.2.1.1). */
static int best_priority(tern_module_ctx_t *m, const char *local)
{
    int best = -1;
    for (tern_session_t *s = tern_user_first_session(m, local); s != NULL; s = tern_session_next(s))
        if (tern_session_available(s) && tern_session_priority(s) > best)
            best = tern_session_priority(s);
    return best;
}

/* "message/bare", "message/full": received copies (§7). */
static int on_inbound(tern_module_ctx_t *m, tern_event_t *ev)
{
    tern_xml_t *st = ev->stanza;
    const char *local = ev->to->local;
    if (local == NULL || strcmp(ev->to->domain, tern_host(m)) != 0)
        return TERN_PASS;
    if (tern_xml_child(st, "private", NS_CARBONS) != NULL || hint_no_copy(st) || !eligible(st)) {
        /* §9: the recipient does not need <private/>: the stanza is
         * routed (frozen), so it goes out as an edited copy. */
        tern_xml_t *w = tern_xml_child(st, "private", NS_CARBONS) ? tern_event_edit(ev) : NULL;
        tern_xml_t *priv = w != NULL ? tern_xml_child(w, "private", NS_CARBONS) : NULL;
        if (priv != NULL)
            tern_xml_unlink(priv);
        return TERN_PASS;
    }
    /* Who gets the original: a bound full JID alone, else RFC 6121 §8.5.2. */
    tern_session_t *target = ev->to->resource != NULL ? ev->session : NULL;
    int best = target == NULL ? best_priority(m, local) : -1;
    tern_xml_t *tmpl = NULL;
    tern_session_t *next;
    for (tern_session_t *s = tern_user_first_session(m, local); s != NULL; s = next) {
        next = tern_session_next(s); /* a send may close a slow reader's session */
        if (s == target || s == ev->origin || !carbons_enabled(s, m) || !tern_session_available(s))
            continue;
        if (target == NULL && best >= 0 && tern_session_priority(s) == best)
            continue; /* gets the original */
        if (tmpl == NULL && (tmpl = wrap(st, "received", ev->to->bare)) == NULL) {
            tern_log(m, TERN_LOG_WARN, "out of memory: carbon copies were not sent");
            return TERN_PASS;
        }
        send_copy(m, s, tmpl);
    }
    if (tmpl != NULL)
        tern_xml_unref(tmpl);
    return TERN_PASS;
}

/* "pre-message/bare", "pre-message/full", "pre-message/host": sent copies
 * (§8) to the sender's other sessions. */
static int on_outbound(tern_module_ctx_t *m, tern_event_t *ev)
{
    tern_xml_t *st = ev->stanza;
    const tern_jid_t *from = ev->from;
    if (ev->origin == NULL || from->local == NULL || strcmp(from->domain, tern_host(m)) != 0)
        return TERN_PASS; /* not a client's message (modules route on users' behalf too) */
    if (strcmp(ev->to->bare, from->bare) == 0 || no_copies(st) || !eligible(st))
        return TERN_PASS; /* to oneself: on_inbound copies it as received */
    tern_xml_t *tmpl = NULL;
    tern_session_t *next;
    for (tern_session_t *s = tern_user_first_session(m, from->local); s != NULL; s = next) {
        next = tern_session_next(s); /* a send may close a slow reader's session */
        if (s == ev->origin || !carbons_enabled(s, m) || !tern_session_available(s))
            continue;
        if (tmpl == NULL && (tmpl = wrap(st, "sent", from->bare)) == NULL) {
            tern_log(m, TERN_LOG_WARN, "out of memory: carbon copies were not sent");
            return TERN_PASS;
        }
        send_copy(m, s, tmpl);
    }
    if (tmpl != NULL)
        tern_xml_unref(tmpl);
    return TERN_PASS;
}

static int load(tern_module_ctx_t *m)
{
    tern_add_feature(m, NS_CARBONS); /* §3 */
    if (tern_hook(m, "iq-set/self/" NS_CARBONS ":enable", on_enable, 0) != 0 ||
        tern_hook(m, "iq-set/self/" NS_CARBONS ":disable", on_disable, 0) != 0 ||
        tern_hook(m, "message/bare", on_inbound, 50) != 0 ||
        tern_hook(m, "message/full", on_inbound, 50) != 0 ||
        tern_hook(m, "pre-message/bare", on_outbound, 50) != 0 ||
        tern_hook(m, "pre-message/full", on_outbound, 50) != 0 ||
        tern_hook(m, "pre-message/host", on_outbound, 50) != 0)
        return -1;
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "carbons",
    .description = "Message Carbons: copies of a user's conversations to all their clients "
                   "(XEP-0280)",
    .load = load,
};
