/*
 * lastactivity.c — XEP-0012 Last Activity of accounts (§3, "offline user
 * query"), and the record behind it.
 *
 * Owns the "last_activity" key-value store: per user, the time (Unix
 * seconds) the account last went offline, a newline, and the status text
 * of its last unavailable presence.  presence.c writes it when the last
 * available resource goes away or the last session ends, and answers
 * probes for an offline account from it (RFC 6121 §4.3.2).
 *
 * A query to the account's bare JID is answered by the server for the
 * user: to the user and to contacts subscribed to the user's presence
 * (subscription 'from' or 'both'), <forbidden/> to anybody else (§3).
 * The server's own uptime (jabber:iq:last to the host) is mod_uptime's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void last_record(rhost_t *h, const char *user, const char *status)
{
    char *cut = str_cut(status != NULL ? status : "", ROSTER_MAX_STATUS);
    size_t len = cut != NULL ? strlen(cut) + 32 : 0;
    char *data = cut != NULL ? malloc(len) : NULL;
    if (data != NULL) {
        int n = snprintf(data, len, "%" PRId64 "\n%s", tern_now_us() / 1000000, cut);
        if (n > 0 && tern_kv_set(h->last, user, data, (size_t)n) < 0)
            tern_log(h->m, TERN_LOG_WARN, "cannot store the last activity of %s", user);
    }
    free(data);
    free(cut);
}

int last_lookup(rhost_t *h, const char *user, int64_t *when_s, char **status_r)
{
    tern_blob_t blob = {0};
    int rc = tern_kv_get(h->last, user, &blob);
    if (rc <= 0)
        return rc;
    const char *nl = strchr(blob.data, '\n');
    *when_s = strtoll(blob.data, NULL, 10);
    *status_r = strdup(nl != NULL ? nl + 1 : "");
    free(blob.data);
    return *status_r != NULL ? 1 : -1;
}

static int any_available(tern_module_ctx_t *m, const char *user)
{
    for (tern_session_t *s = tern_user_first_session(m, user); s; s = tern_session_next(s))
        if (tern_session_available(s))
            return 1;
    return 0;
}

/* "iq-get/bare/jabber:iq:last:query": XEP-0012 §3. */
int last_on_get(tern_module_ctx_t *m, tern_event_t *ev)
{
    rhost_t *h = tern_get_data(m);
    const char *user = ev->to->local;
    if (user == NULL || !tern_user_exists(m, user)) {
        tern_reply_error(m, ev, "cancel", "service-unavailable", NULL); /* RFC 6121 §8.5.1 */
        return TERN_HANDLED;
    }
    ritem_t *it = NULL;
    int allowed = strcmp(ev->from->bare, ev->to->bare) == 0;
    if (!allowed && item_get(h, user, ev->from->bare, &it) == 1)
        allowed = !it->hidden && (it->sub & ROSTER_SUB_FROM);
    item_free(&it);
    if (!allowed) {
        tern_reply_error(m, ev, "auth", "forbidden", NULL);
        return TERN_HANDLED;
    }
    int64_t when = 0, seconds = 0;
    char *status = NULL;
    if (!any_available(m, user)) {
        if (last_lookup(h, user, &when, &status) != 1) {
            /* Never logged out since the record exists: nothing to tell. */
            tern_reply_error(m, ev, "cancel", "service-unavailable", NULL);
            return TERN_HANDLED;
        }
        seconds = tern_now_us() / 1000000 - when;
        if (seconds < 0)
            seconds = 0;
    }
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, seconds);
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *query = reply != NULL ? tern_xml_add_child(reply, "query", NS_LAST) : NULL;
    if (query != NULL) {
        tern_xml_set_attr(query, "seconds", buf);
        if (status != NULL && *status)
            tern_xml_add_text(query, status, strlen(status));
        tern_route(m, reply);
    }
    if (reply != NULL)
        tern_xml_unref(reply);
    free(status);
    return TERN_HANDLED;
}
