/*
 * archive.c — what goes into a user's archive, and XEP-0359 stanza-ids.
 *
 * Owns the two message hooks of mod_mam:
 *  - outgoing: a message a local user's client sends, before it is routed
 *    anywhere (local, component, remote: "pre-message/bare|full" on the
 *    sender's host), goes into the sender's archive with the recipient as
 *    'with';
 *  - incoming: a message for a local user, before delivery and before
 *    offline storage ("message/bare|full"), goes into the recipient's
 *    archive with the sender as 'with', and gets
 *    <stanza-id xmlns='urn:xmpp:sid:0' by='user@host' id='ARCHIVE-ID'/>
 *    so that the client learns where it is stored (XEP-0313 §3.5).
 * Both always pass: delivery stays the core's (and mod_offline's) job.
 *
 * Rules (XEP-0313 §6.1.1 "User Archives", XEP-0334), in this order:
 *  1. type 'error' and 'groupchat' are never archived here (a groupchat
 *     belongs in the room's archive; XEP-0313 §6.1.1 leaves it to us);
 *  2. <no-store/> or <no-permanent-store/> (XEP-0334 §4.1, §4.2): never;
 *  3. content: a <body/> (XEP-0313 §6.1.1; so a XEP-0308 correction too),
 *     an encrypted payload (XEP-0384 OMEMO with a <payload/>, XEP-0373
 *     <openpgp/>), a XEP-0184 receipt (<received/>) or a XEP-0333 chat
 *     marker (<received/>, <displayed/>, <acknowledged/>), or <store/>
 *     (XEP-0334 §4.4).  Markers "SHOULD be archived" (XEP-0333 §7) so
 *     that every client of both parties can catch up on them; receipts
 *     are kept for the same reason (XEP-0313 §6.1.1 allows
 *     "additional non-conversation messages").  Type 'headline' only
 *     with <store/>.  Not archived: chat states alone (XEP-0313 §3 names
 *     them as what is not meant), a receipt request or <markable/>
 *     without a body, an empty message;
 *  4. the user's preferences (XEP-0441) for the other party.
 * A message to oneself is archived once (as incoming), not twice.
 *
 * XEP-0359 §4 rule 3: a <stanza-id/> whose 'by' is the archive's JID and
 * which came from outside is forged: it is removed from every message for
 * (and from) a local user, archived or not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <tern/base64.h>

#include "../hints.h"
#include "mam.h"

#define NS_RECEIPTS "urn:xmpp:receipts"
#define NS_MARKERS  "urn:xmpp:chat-markers:0"

/* Payloads that make a message worth archiving though it has no <body/>. */
static const struct {
    const char *name, *ns, *needs_child; /* needs_child: a child element it must carry */
} content_payloads[] = {
    {"encrypted", "eu.siacs.conversations.axolotl", "payload"}, /* XEP-0384 (0.3) */
    {"encrypted", "urn:xmpp:omemo:2", "payload"},               /* XEP-0384 */
    {"openpgp", "urn:xmpp:openpgp:0", NULL},                    /* XEP-0373 */
    {"received", NS_RECEIPTS, NULL},                            /* XEP-0184 receipt */
    {"received", NS_MARKERS, NULL},                             /* XEP-0333 markers */
    {"displayed", NS_MARKERS, NULL},
    {"acknowledged", NS_MARKERS, NULL},
};

int mam_new_id(char out[23])
{
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    /* 128 bits, 6 at a time: 22 characters, no padding (RFC 4648 §5). */
    char *id = tern_base64_encode(raw, sizeof raw, TERN_BASE64_URL | TERN_BASE64_NOPAD);
    if (id == NULL || strlen(id) != 22) {
        free(id);
        return -1;
    }
    memcpy(out, id, 23);
    free(id);
    return 0;
}

/* XEP-0359 §4 rule 3: remove every <stanza-id/> that claims to be by
 * `owner` (a bare JID); 'by' is compared after preparation so that a
 * differently cased copy is caught too.  With `count_only`, nothing is
 * removed.  Returns how many there are. */
static int strip_forged_ids(tern_xml_t *stanza, const char *owner, int count_only)
{
    int n = 0;
    tern_xml_t *next;
    for (tern_xml_t *c = tern_xml_first_element(stanza); c != NULL; c = next) {
        next = tern_xml_next_element(c);
        if (!tern_xml_is(c, "stanza-id", NS_SID))
            continue;
        const char *by = tern_xml_attr(c, "by");
        tern_jid_t *j = by != NULL ? tern_jid_new(by, NULL) : NULL;
        if (j == NULL || strcmp(j->full, owner) == 0) {
            n++; /* ours, or without a usable 'by' (rule 5) */
            if (!count_only)
                tern_xml_unlink(c);
        }
        tern_jid_free(&j);
    }
    return n;
}

/* Rule 3 above: whether the message carries content worth keeping. */
static int has_content(const tern_xml_t *stanza)
{
    if (tern_xml_child(stanza, "body", TERN_NS_CLIENT) != NULL)
        return 1;
    for (size_t i = 0; i < sizeof content_payloads / sizeof content_payloads[0]; i++) {
        const tern_xml_t *p =
            tern_xml_child(stanza, content_payloads[i].name, content_payloads[i].ns);
        if (p != NULL && (content_payloads[i].needs_child == NULL ||
                          tern_xml_child(p, content_payloads[i].needs_child, NULL) != NULL))
            return 1;
    }
    return 0;
}

/* Rules 1-3: whether this message may be archived at all. */
static int archivable(const tern_xml_t *stanza)
{
    const char *type = tern_xml_attr(stanza, "type");
    if (type == NULL)
        type = "normal";
    if (strcmp(type, "error") == 0 || strcmp(type, "groupchat") == 0)
        return 0;
    if (hint_no_permanent_store(stanza)) /* also true for <no-store/> */
        return 0;
    if (hint_store(stanza))
        return 1;
    if (strcmp(type, "headline") == 0)
        return 0;
    return has_content(stanza);
}

/* Store `stanza` in `user`'s archive; the new id goes to `id`.  0 or -1. */
static int archive(tern_module_ctx_t *m, mam_state_t *st, const char *user, const char *with,
                   const tern_xml_t *stanza, char id[23])
{
    size_t len = 0;
    char *xml = tern_xml_to_string(stanza, &len);
    int rc = -1;
    if (xml != NULL && mam_new_id(id) == 0)
        rc = tern_archive_append(st->archive, user, id, tern_now_us(), with, xml, len);
    if (rc != 0)
        tern_log(m, TERN_LOG_WARN, "could not archive a message for %s", user);
    else
        mam_quota_appended(m, st, user);
    free(xml);
    return rc;
}

/* pre-message/bare, pre-message/full: a message from a local user's
 * client, before routing, whatever the destination.  XEP-0313 §3:
 * outgoing messages go into the sender's archive; the 'to' is the other
 * party (XEP-0441 §2.3.2).  No stanza-id is added (XEP-0313 §3.5: not in
 * messages to JIDs that cannot read the archive). */
int mam_on_outgoing(tern_module_ctx_t *m, tern_event_t *ev)
{
    mam_state_t *st = tern_get_data(m);
    const tern_jid_t *from = ev->from, *to = ev->to;
    /* Only what the user's client sent: not what modules route on the
     * user's behalf (errors, notifications).  The core fires pre- events on
     * the sender's host, so the sender is a user of this one. */
    if (st == NULL || ev->origin == NULL || from == NULL || to == NULL || from->local == NULL ||
        strcmp(from->domain, tern_host(m)) != 0)
        return TERN_PASS;
    strip_forged_ids(ev->stanza, from->bare, 0); /* not frozen yet: see router.c */
    /* To oneself: archived once, by the incoming hook. */
    if (strcmp(from->bare, to->bare) == 0)
        return TERN_PASS;
    if (!archivable(ev->stanza) || !mam_prefs_allow(m, from->local, to))
        return TERN_PASS;
    char id[23];
    archive(m, st, from->local, to->bare, ev->stanza, id);
    return TERN_PASS;
}

/* message/bare, message/full: a message for a local user, before delivery
 * or offline storage.  XEP-0313 §3 and §3.5. */
int mam_on_incoming(tern_module_ctx_t *m, tern_event_t *ev)
{
    mam_state_t *st = tern_get_data(m);
    const tern_jid_t *from = ev->from, *to = ev->to;
    if (st == NULL || from == NULL || to == NULL || to->local == NULL)
        return TERN_PASS;
    /* From the account's own bare JID: made by the server for the user
     * (query results, carbon copies): not a message to archive. */
    if (from->resource == NULL && strcmp(from->bare, to->bare) == 0)
        return TERN_PASS;
    /* The stanza is routed (frozen): changes go to an edited copy that
     * replaces it for delivery (tern_event_edit). */
    if (strip_forged_ids(ev->stanza, to->bare, 1) > 0) {
        tern_xml_t *w = tern_event_edit(ev);
        if (w == NULL)
            return TERN_PASS;
        strip_forged_ids(w, to->bare, 0);
    }
    if (!archivable(ev->stanza) || tern_user_exists(m, to->local) <= 0 ||
        !mam_prefs_allow(m, to->local, from))
        return TERN_PASS;
    char id[23];
    if (archive(m, st, to->local, from->bare, ev->stanza, id) != 0)
        return TERN_PASS;
    tern_xml_t *w = tern_event_edit(ev);
    tern_xml_t *sid = w != NULL ? tern_xml_add_child(w, "stanza-id", NS_SID) : NULL;
    if (sid != NULL) {
        tern_xml_set_attr(sid, "by", to->bare);
        tern_xml_set_attr(sid, "id", id);
    }
    return TERN_PASS;
}
