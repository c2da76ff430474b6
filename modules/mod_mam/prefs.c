/*
 * prefs.c — XEP-0441 Message Archive Management Preferences.
 *
 * Owns <prefs xmlns='urn:xmpp:mam:2'/> get and set on the user's own
 * account (XEP-0441 §2) and the decision "does this user archive messages
 * with that JID" (§2.3).  Preferences live in the KV store "mam_prefs", one
 * value per user, as text lines: the default ("always", "never",
 * "roster"), then "+JID" for each JID always archived and "-JID" for each
 * never archived, all prepared (RFC 7622) so that matching is strcmp.
 *
 * Decisions: a JID in both lists counts as 'never' (the safer reading) and
 * is dropped from 'always' when set; a user without preferences gets the
 * `default_policy` option.  'roster' asks mod_roster's "roster" service
 * (modules/roster_api.h), found at run time so that mod_mam does not
 * depend on mod_roster; without it 'roster' behaves as 'always' (so that
 * nothing is lost on a host without rosters).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../roster_api.h"
#include "mam.h"

#define MAX_PREF_JIDS 1000 /* entries of always + never one user may set */

static const char *const policy_names[] = {"always", "never", "roster"};

int mam_policy_parse(const char *s, mam_policy_t *p)
{
    for (size_t i = 0; i < sizeof policy_names / sizeof policy_names[0]; i++) {
        if (s != NULL && strcmp(s, policy_names[i]) == 0) {
            *p = (mam_policy_t)i;
            return 0;
        }
    }
    return -1;
}

/* XEP-0441 §2.3.1: a listed JID with a resource matches the full target; a
 * bare one matches the target's bare JID. */
static int jid_matches(const char *listed, size_t len, const tern_jid_t *peer)
{
    const char *target = memchr(listed, '/', len) != NULL ? peer->full : peer->bare;
    return strlen(target) == len && memcmp(target, listed, len) == 0;
}

/* Walk stored preferences: the default into *def (left alone when the
 * text has none), then fn for each listed JID with its sign ('+' always,
 * '-' never); fn returns non-zero to stop. */
static void prefs_walk(const char *text, size_t len, mam_policy_t *def,
                       int (*fn)(void *ctx, char sign, const char *jid, size_t n), void *ctx)
{
    const char *line = text, *end = text != NULL ? text + len : NULL;
    for (int first = 1; line != NULL && line < end; first = 0) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = nl != NULL ? (size_t)(nl - line) : (size_t)(end - line);
        if (first) {
            char word[8];
            if (n < sizeof word) {
                memcpy(word, line, n);
                word[n] = '\0';
                mam_policy_parse(word, def);
            }
        } else if (n > 1 && (line[0] == '+' || line[0] == '-') &&
                   fn(ctx, line[0], line + 1, n - 1) != 0) {
            return;
        }
        line += n + 1;
    }
}

/* Whether `peer_bare` is in `user`'s roster (any subscription, pending
 * requests included).  1 when the host has no roster service: see the top
 * of the file.  Looked up at each call: modules load in any order. */
static int in_roster(tern_module_ctx_t *m, const char *user, const char *peer_bare)
{
    const roster_api_t *roster = tern_require(m, ROSTER_SERVICE);
    if (roster == NULL || roster->in_roster == NULL)
        return 1;
    return roster->in_roster(tern_host(m), user, peer_bare) == 1;
}

/* The lists' verdict on one peer, for mam_prefs_allow. */
typedef struct verdict {
    const tern_jid_t *peer;
    int always, never;
} verdict_t;

static int judge(void *ctx, char sign, const char *jid, size_t n)
{
    verdict_t *v = ctx;
    if (jid_matches(jid, n, v->peer)) {
        if (sign == '-')
            v->never = 1;
        else
            v->always = 1;
    }
    return v->never; /* 'never' settles it */
}

/* A user's stored preferences as read (len 0: none stored). */
typedef struct mam_prefs {
    size_t len;
    char text[];
} mam_prefs_t;

static int free_prefs(void *ctx, const char *key, void *value)
{
    free(value);
    return 0;
}

void mam_prefs_forget(tern_module_ctx_t *m, const char *user)
{
    mam_state_t *st = tern_get_data(m);
    if (st == NULL || st->prefs_cache == NULL)
        return;
    if (user != NULL) {
        free(tern_table_remove(st->prefs_cache, user));
        return;
    }
    tern_table_foreach(st->prefs_cache, free_prefs, NULL);
    tern_table_free(&st->prefs_cache);
}

/* `user`'s preferences, read from storage once and then kept: they are
 * needed for every message.  NULL on a storage or memory error. */
static const mam_prefs_t *user_prefs(tern_module_ctx_t *m, const char *user)
{
    mam_state_t *st = tern_get_data(m);
    mam_prefs_t *p = st->prefs_cache != NULL ? tern_table_get(st->prefs_cache, user) : NULL;
    if (p != NULL)
        return p;
    if (st->prefs_cache != NULL && tern_table_count(st->prefs_cache) >= MAM_PREFS_CACHED)
        mam_prefs_forget(m, NULL); /* simple bound: start over */
    if (st->prefs_cache == NULL && (st->prefs_cache = tern_table_new()) == NULL)
        return NULL;
    tern_blob_t b = {0};
    int rc = tern_kv_get(st->prefs, user, &b);
    if (rc < 0 || (p = malloc(sizeof *p + (rc == 1 ? b.len : 0) + 1)) == NULL) {
        free(b.data);
        return NULL;
    }
    p->len = rc == 1 ? b.len : 0;
    if (p->len > 0)
        memcpy(p->text, b.data, p->len);
    p->text[p->len] = '\0';
    free(b.data);
    if (tern_table_put(st->prefs_cache, user, p) < 0) {
        free(p);
        return NULL;
    }
    return p;
}

int mam_prefs_allow(tern_module_ctx_t *m, const char *user, const tern_jid_t *peer)
{
    mam_state_t *st = tern_get_data(m);
    if (st == NULL)
        return 0;
    mam_policy_t def = st->default_policy;
    verdict_t v = {.peer = peer};
    const mam_prefs_t *p = user_prefs(m, user);
    if (p != NULL && p->len > 0)
        prefs_walk(p->text, p->len, &def, judge, &v);
    if (v.never)
        return 0;
    if (v.always || def == MAM_POLICY_ALWAYS)
        return 1;
    return def == MAM_POLICY_ROSTER && in_roster(m, user, peer->bare);
}

/* The <always/> and <never/> elements being filled by reply_prefs. */
typedef struct lists {
    tern_xml_t *always, *never;
    int failed;
} lists_t;

static int list_jid(void *ctx, char sign, const char *jid, size_t n)
{
    lists_t *l = ctx;
    tern_xml_t *el = tern_xml_add_child(sign == '+' ? l->always : l->never, "jid", NULL);
    if (el == NULL) {
        l->failed = 1;
        return 1;
    }
    tern_xml_add_text(el, jid, n);
    return 0;
}

/* Answer with the preferences stored as `text` (NULL: none stored).
 * XEP-0441 §2.1: <always/> and <never/> are present even when empty. */
static int reply_prefs(tern_module_ctx_t *m, tern_event_t *ev, const char *text, size_t len)
{
    mam_state_t *st = tern_get_data(m);
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *prefs = reply != NULL ? tern_xml_add_child(reply, "prefs", NS_MAM) : NULL;
    lists_t l = {0};
    l.always = prefs != NULL ? tern_xml_add_child(prefs, "always", NULL) : NULL;
    l.never = prefs != NULL ? tern_xml_add_child(prefs, "never", NULL) : NULL;
    mam_policy_t def = st->default_policy;
    if (l.always != NULL && l.never != NULL)
        prefs_walk(text, len, &def, list_jid, &l);
    int ok = l.always != NULL && l.never != NULL && !l.failed;
    if (ok)
        tern_xml_set_attr(prefs, "default", policy_names[def]);
    return tern_iq_answer(m, ev, reply, ok);
}

/* iq-get/self/urn:xmpp:mam:2:prefs — XEP-0441 §2.1. */
int mam_on_prefs_get(tern_module_ctx_t *m, tern_event_t *ev)
{
    mam_state_t *st = tern_get_data(m);
    if (st == NULL || ev->from == NULL || ev->from->local == NULL)
        return TERN_PASS;
    tern_blob_t b = {0};
    int rc = tern_kv_get(st->prefs, ev->from->local, &b);
    if (rc < 0) {
        tern_reply_error(m, ev, "wait", "internal-server-error", NULL);
        return TERN_HANDLED;
    }
    reply_prefs(m, ev, rc == 1 ? b.data : NULL, rc == 1 ? b.len : 0);
    free(b.data);
    return TERN_HANDLED;
}

/* A growing text buffer for the stored form. */
typedef struct text_buf {
    char *s;
    size_t len, cap;
} text_buf_t;

static int text_add(text_buf_t *t, char sign, const char *s)
{
    size_t n = strlen(s) + (sign != 0 ? 2 : 1);
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap != 0 ? t->cap : 256;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *p = realloc(t->s, cap);
        if (p == NULL)
            return -1;
        t->s = p;
        t->cap = cap;
    }
    if (sign != 0)
        t->s[t->len++] = sign;
    memcpy(t->s + t->len, s, strlen(s));
    t->len += strlen(s);
    t->s[t->len++] = '\n';
    t->s[t->len] = '\0';
    return 0;
}

/* Whether prepared JID `j` is listed with `sign` in `t` (after line 1). */
static int text_has(const text_buf_t *t, char sign, const char *j)
{
    size_t n = strlen(j);
    for (const char *p = t->s != NULL ? strchr(t->s, '\n') : NULL; p != NULL && p[1] != '\0';
         p = strchr(p + 1, '\n'))
        if (p[1] == sign && strncmp(p + 2, j, n) == 0 && p[2 + n] == '\n')
            return 1;
    return 0;
}

/* Append the prepared JIDs of <list><jid/>...</list> with `sign`, skipping
 * duplicates, and for '+' the JIDs already listed with '-'.  0, or -1 with
 * *cond set to the error condition. */
static int add_list(text_buf_t *t, tern_xml_t *list, char sign, unsigned *count, const char **cond)
{
    for (tern_xml_t *c = list != NULL ? tern_xml_first_element(list) : NULL; c != NULL;
         c = tern_xml_next_element(c)) {
        if (!tern_xml_is(c, "jid", NS_MAM))
            continue;
        tern_jid_t *j = tern_jid_new(tern_xml_text(c), NULL);
        if (j == NULL) {
            *cond = "jid-malformed";
            return -1;
        }
        int skip = text_has(t, sign, j->full) || (sign == '+' && text_has(t, '-', j->full));
        int rc = 0;
        if (!skip && ++*count > MAX_PREF_JIDS) {
            *cond = "policy-violation";
            rc = -1;
        } else if (!skip && text_add(t, sign, j->full) < 0) {
            *cond = "resource-constraint";
            rc = -1;
        }
        tern_jid_free(&j);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* iq-set/self/urn:xmpp:mam:2:prefs — XEP-0441 §2.1: store and answer with
 * what was applied. */
int mam_on_prefs_set(tern_module_ctx_t *m, tern_event_t *ev)
{
    mam_state_t *st = tern_get_data(m);
    if (st == NULL || ev->from == NULL || ev->from->local == NULL)
        return TERN_PASS;
    tern_xml_t *prefs = tern_xml_child(ev->stanza, "prefs", NS_MAM);
    mam_policy_t def;
    if (prefs == NULL || mam_policy_parse(tern_xml_attr(prefs, "default"), &def) < 0) {
        tern_reply_error(m, ev, "modify", "bad-request",
                         "'default' must be always, never or roster");
        return TERN_HANDLED;
    }
    /* 'never' first, so that a JID in both lists is left out of 'always'. */
    text_buf_t out = {0};
    unsigned count = 0;
    const char *cond = "resource-constraint";
    int ok = text_add(&out, 0, policy_names[def]) == 0 &&
             add_list(&out, tern_xml_child(prefs, "never", NS_MAM), '-', &count, &cond) == 0 &&
             add_list(&out, tern_xml_child(prefs, "always", NS_MAM), '+', &count, &cond) == 0;
    if (ok && tern_kv_set(st->prefs, ev->from->local, out.s, out.len) != 0) {
        ok = 0;
        cond = "internal-server-error";
    }
    mam_prefs_forget(m, ev->from->local);
    if (ok)
        reply_prefs(m, ev, out.s, out.len);
    else
        tern_reply_error(m, ev,
                         strcmp(cond, "jid-malformed") == 0 || strcmp(cond, "policy-violation") == 0
                             ? "modify"
                             : "wait",
                         cond, NULL);
    free(out.s);
    return TERN_HANDLED;
}
