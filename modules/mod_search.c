/*
 * mod_search — XEP-0055 Jabber Search of the host's user directory.
 *
 * Owns jabber:iq:search at the host's JID: an iq-get returns the search
 * fields, both the legacy ones (<first/><last/><nick/><email/>, §2) and a
 * XEP-0004 form (§3) with FORM_TYPE jabber:iq:search and fn, first, last,
 * nick, email, jid; an iq-set answers in the same style as it was asked:
 * legacy <item jid=.../> elements, or a result form with <reported/> and
 * <item/>s.  Only users of the host may search (forbidden otherwise).
 *
 * The directory is opt-in: a user is listed once their vCard has a full
 * name or a nickname (an avatar-only vCard, which clients publish on their
 * own, does not count).  With `list_all_users` every account is listed,
 * those without a vCard by JID alone.  Every field given must match (AND),
 * as a substring, ignoring ASCII case; `jid` matches the localpart, or the
 * whole bare JID when it contains '@'.  At most `max_results` items come
 * back, in localpart order; there is no paging (XEP-0055 has none).  The
 * directory is read a slice per turn of the loop (search_run_t), so the
 * answer to a search of a big directory comes after a few turns.
 *
 * The vCards belong to mod_vcard: this module reads them only through the
 * "vcard" service, and keeps its own index (MAP "directory", user "", one
 * key per listed localpart) current from the service's change callback
 * and "user/deleted".  When it loads it walks the accounts once, a batch
 * per loop turn, so that vCards stored while it was not loaded are listed.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tern/module.h>

#include "vcard_api.h"

#define NS_SEARCH  "jabber:iq:search"
#define NS_DATA    "jabber:x:data"
#define SYNC_BATCH 64   /* accounts re-read per loop turn while loading */
#define SLICE      1024 /* directory entries a search reads per loop turn */
#define JID_MAX    2048 /* local@domain: RFC 7622 §3.1, parts of 1023 bytes at most */

/* Directory fields, in the order they are stored. */
enum { F_FN, F_FIRST, F_LAST, F_NICK, F_EMAIL, F_COUNT };

static const struct {
    const char *var; /* data form field (XEP-0055 §6.2 registry, plus fn) */
    const char *label;
    int legacy; /* also a legacy <var/> element (XEP-0055 §2) */
} fields[F_COUNT] = {
    [F_FN] = {.var = "fn", .label = "Full name"},
    [F_FIRST] = {.var = "first", .label = "Given name", .legacy = 1},
    [F_LAST] = {.var = "last", .label = "Family name", .legacy = 1},
    [F_NICK] = {.var = "nick", .label = "Nickname", .legacy = 1},
    [F_EMAIL] = {.var = "email", .label = "Email address", .legacy = 1},
};

/* A string that is not NUL-terminated where it is (form values, entries). */
typedef struct span {
    const char *s;
    size_t len;
} span_t;

/* A directory entry: the fields of one user, pointing into its blob. */
typedef struct entry {
    span_t v[F_COUNT];
} entry_t;

/* What a search asks for: empty spans match anything. */
typedef struct query {
    span_t want[F_COUNT];
    span_t jid;
} query_t;

/* Module data. */
typedef struct search_state {
    tern_module_ctx_t *m;
    const vcard_api_t *vcard;
    tern_store_t *dir; /* MAP "directory" */
    int list_all;
    long long max_results;
    char **sync; /* accounts still to re-read after load, sorted */
    size_t n_sync, cap_sync, next_sync;
    tern_timer_t *sync_timer;
    struct search_run *runs; /* searches still reading the directory */
} search_state_t;

static const tern_option_t options[] = {
    {.name = "list_all_users",
     .type = TERN_OPT_BOOL,
     .def = "false",
     .doc = "List every account of the host, not only users who published a vCard with a name or "
            "nickname."},
    {.name = "max_results",
     .type = TERN_OPT_INT,
     .def = "50",
     .doc = "Most items one search returns.",
     .min = 1,
     .max = 1000},
    {.name = NULL},
};

/* ---- strings --------------------------------------------------------------- */

static span_t trimmed(const char *s)
{
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[0])) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    return (span_t){s, len};
}

/* Whether `needle` occurs in `hay`, ignoring ASCII case. */
static int contains(span_t hay, span_t needle)
{
    if (needle.len == 0)
        return 1;
    for (size_t i = 0; i + needle.len <= hay.len; i++) {
        size_t j = 0;
        while (j < needle.len &&
               tolower((unsigned char)hay.s[i + j]) == tolower((unsigned char)needle.s[j]))
            j++;
        if (j == needle.len)
            return 1;
    }
    return 0;
}

/* Append <name>text</name> (text of `len` bytes) under `parent`; NULL when
 * out of memory. */
static tern_xml_t *add_text_child(tern_xml_t *parent, const char *name, const char *ns,
                                  const char *text, size_t len)
{
    tern_xml_t *el = tern_xml_add_child(parent, name, ns);
    if (el != NULL && len > 0)
        tern_xml_add_text(el, text, len);
    return el;
}

/* ---- directory entries ------------------------------------------------------ */

/* Split a stored entry ("fn\0first\0last\0nick\0email") into `e`; absent
 * trailing fields are empty. */
static void entry_parse(entry_t *e, const char *data, size_t len)
{
    size_t pos = 0;
    for (int i = 0; i < F_COUNT; i++) {
        const char *start = data != NULL ? data + pos : "";
        size_t n = 0;
        while (pos + n < len && start[n] != '\0')
            n++;
        e->v[i] = (span_t){start, n};
        pos = pos + n < len ? pos + n + 1 : len;
    }
}

/* Trimmed text of `vcard`'s first <name/> (or of its first <sub/> when
 * `sub` is given), or an empty span. */
static span_t vcard_field(const tern_xml_t *vcard, const char *name, const char *sub)
{
    tern_xml_t *el = tern_xml_child(vcard, name, VCARD_NS);
    if (el != NULL && sub != NULL)
        el = tern_xml_child(el, sub, VCARD_NS);
    return el != NULL ? trimmed(tern_xml_text(el)) : (span_t){"", 0};
}

/* XEP-0054 fields of `vcard` as an entry.  EMAIL carries its address in
 * <USERID/>; some old clients put it as text. */
static entry_t entry_of_vcard(const tern_xml_t *vcard)
{
    entry_t e;
    e.v[F_FN] = vcard_field(vcard, "FN", NULL);
    e.v[F_FIRST] = vcard_field(vcard, "N", "GIVEN");
    e.v[F_LAST] = vcard_field(vcard, "N", "FAMILY");
    e.v[F_NICK] = vcard_field(vcard, "NICKNAME", NULL);
    e.v[F_EMAIL] = vcard_field(vcard, "EMAIL", "USERID");
    if (e.v[F_EMAIL].len == 0)
        e.v[F_EMAIL] = vcard_field(vcard, "EMAIL", NULL);
    return e;
}

/* Whether the directory holds exactly `data` (NULL: nothing) for `user`;
 * so that catching up after load writes only what changed. */
static int directory_has(search_state_t *st, const char *user, const char *data, size_t len)
{
    tern_blob_t old = {0};
    int rc = tern_map_get(st->dir, "", user, &old);
    int same = rc == 1 ? data != NULL && old.len == len && memcmp(old.data, data, len) == 0
                       : rc == 0 && data == NULL;
    free(old.data);
    return same;
}

/* Make the directory agree with `user`'s vCard (NULL: none): listed when
 * it names the user, removed otherwise. */
static void directory_update(search_state_t *st, const char *user, const tern_xml_t *vcard)
{
    entry_t e = {0};
    if (vcard != NULL)
        e = entry_of_vcard(vcard);
    if (e.v[F_FN].len == 0 && e.v[F_NICK].len == 0) {
        if (!directory_has(st, user, NULL, 0) && tern_map_set(st->dir, "", user, NULL, 0) != 0)
            tern_log(st->m, TERN_LOG_ERROR, "cannot remove %s from the directory", user);
        return;
    }
    size_t len = 0;
    for (int i = 0; i < F_COUNT; i++)
        len += e.v[i].len + 1;
    char *blob = malloc(len);
    if (blob == NULL)
        return;
    char *p = blob;
    for (int i = 0; i < F_COUNT; i++) {
        memcpy(p, e.v[i].s, e.v[i].len);
        p += e.v[i].len;
        *p++ = '\0';
    }
    len--; /* the last separator is not stored */
    if (!directory_has(st, user, blob, len) && tern_map_set(st->dir, "", user, blob, len) != 0)
        tern_log(st->m, TERN_LOG_ERROR, "cannot list %s in the directory", user);
    free(blob);
}

/* The vCard service's change callback. */
static void on_vcard_changed(tern_module_ctx_t *m, const char *user, const tern_xml_t *vcard)
{
    search_state_t *st = tern_get_data(m);
    if (st != NULL)
        directory_update(st, user, vcard);
}

/* An account is gone: so is its entry (the core deletes only the user's
 * own data, and the directory is kept under the host). */
static int on_user_deleted(tern_module_ctx_t *m, tern_event_t *ev)
{
    search_state_t *st = tern_get_data(m);
    if (st != NULL && ev->user != NULL)
        directory_update(st, ev->user, NULL);
    return TERN_PASS;
}

/* ---- searching -------------------------------------------------------------- */

/* One search.  A directory search reads SLICE entries per turn of the
 * loop (an index range after the last key read), so that a big directory
 * never holds everyone else up; the answer goes out, by address, once it
 * has max_results items or the directory is read. */
typedef struct search_run {
    struct search_run *next;
    search_state_t *st;
    query_t q; /* spans into `request` */
    const char *host;
    tern_xml_t *request; /* a reference */
    tern_jid_t *from, *to;
    tern_xml_t *reply; /* the iq result being filled */
    tern_xml_t *out;   /* the <query/> (legacy) or the result <x/> */
    int form;
    long long found;
    int failed, full, error;
    char last[JID_MAX]; /* the last key read */
    tern_timer_t *timer;
} search_run_t;

static int matches(const query_t *q, const entry_t *e, const char *local, const char *host)
{
    for (int i = 0; i < F_COUNT; i++)
        if (!contains(e->v[i], q->want[i]))
            return 0;
    if (q->jid.len == 0)
        return 1;
    if (memchr(q->jid.s, '@', q->jid.len) == NULL)
        return contains((span_t){local, strlen(local)}, q->jid);
    char bare[JID_MAX];
    int n = snprintf(bare, sizeof bare, "%s@%s", local, host);
    return n > 0 && (size_t)n < sizeof bare && contains((span_t){bare, (size_t)n}, q->jid);
}

/* Add one result for local@host with fields `e`.  0, or -1 out of memory. */
static int add_item(search_run_t *r, const char *local, const entry_t *e)
{
    char jid[JID_MAX];
    snprintf(jid, sizeof jid, "%s@%s", local, r->host); /* parts are at most 1023 bytes */

    tern_xml_t *item = tern_xml_add_child(r->out, "item", NULL);
    if (item == NULL)
        return -1;
    if (!r->form) { /* XEP-0055 §2: <item jid=...><first/>... */
        tern_xml_set_attr(item, "jid", jid);
        for (int i = 0; i < F_COUNT; i++)
            if (fields[i].legacy &&
                add_text_child(item, fields[i].var, NULL, e->v[i].s, e->v[i].len) == NULL)
                return -1;
        return 0;
    }
    /* XEP-0004 §3.4: one <field var=...><value/></field> per reported field. */
    for (int i = -1; i < F_COUNT; i++) {
        tern_xml_t *field = tern_xml_add_child(item, "field", NULL);
        if (field == NULL)
            return -1;
        tern_xml_set_attr(field, "var", i < 0 ? "jid" : fields[i].var);
        if (add_text_child(field, "value", NULL, i < 0 ? jid : e->v[i].s,
                           i < 0 ? strlen(jid) : e->v[i].len) == NULL)
            return -1;
    }
    return 0;
}

/* Take a matching user; non-zero stops the walk (enough results, or
 * failure). */
static int take(search_run_t *r, const char *local, const entry_t *e)
{
    if (add_item(r, local, e) != 0) {
        r->failed = 1;
        return 1;
    }
    if (++r->found >= r->st->max_results)
        r->full = 1;
    return r->full;
}

/* tern_map_foreach over the directory.  An entry whose account is gone is
 * skipped: `ternctl deluser` deletes accounts without telling ternd, and
 * the entry goes at the next load. */
static int visit_entry(void *ctx, const char *key, const char *data, size_t len)
{
    search_run_t *r = ctx;
    entry_t e;
    snprintf(r->last, sizeof r->last, "%s", key); /* a localpart: at most 1023 bytes */
    entry_parse(&e, data, len);
    if (!matches(&r->q, &e, key, r->host) || tern_user_exists(r->st->m, key) <= 0)
        return 0;
    return take(r, key, &e);
}

/* tern_account_foreach with `list_all_users`: every account, with its
 * directory entry when it has one. */
static int visit_account(void *ctx, const char *local)
{
    search_run_t *r = ctx;
    tern_blob_t blob = {0};
    entry_t e;
    int rc = tern_map_get(r->st->dir, "", local, &blob);
    entry_parse(&e, rc == 1 ? blob.data : NULL, rc == 1 ? blob.len : 0);
    int stop = matches(&r->q, &e, local, r->host) ? take(r, local, &e) : 0;
    free(blob.data);
    return stop;
}

/* ---- the protocol -------------------------------------------------------- */

/* Only a user of this host may use the directory: a remote entity, a
 * component or a user of another local host gets forbidden. */
static int allowed(tern_module_ctx_t *m, const tern_event_t *ev)
{
    if (ev->origin != NULL && ev->from != NULL && ev->from->local != NULL &&
        strcmp(ev->from->domain, tern_host(m)) == 0)
        return 1;
    tern_reply_error(m, ev, "auth", "forbidden", "only users of this server may search");
    return 0;
}

/* <field var=... type=... label=...>, with one <value/> when `value`. */
static tern_xml_t *add_field(tern_xml_t *parent, const char *var, const char *type,
                             const char *label, const char *value)
{
    tern_xml_t *f = tern_xml_add_child(parent, "field", NS_DATA);
    if (f == NULL)
        return NULL;
    tern_xml_set_attr(f, "var", var);
    if (type != NULL)
        tern_xml_set_attr(f, "type", type);
    if (label != NULL)
        tern_xml_set_attr(f, "label", label);
    if (value != NULL && add_text_child(f, "value", NULL, value, strlen(value)) == NULL)
        return NULL;
    return f;
}

/* XEP-0055 §2 and §3: the search fields, legacy and as a form. */
static int on_get(tern_module_ctx_t *m, tern_event_t *ev)
{
    if (!allowed(m, ev))
        return TERN_HANDLED;
    static const char howto[] = "Fill in one or more fields to find users of this server "
                                "(any part of a name matches, whatever its case).";
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *query = reply != NULL ? tern_xml_add_child(reply, "query", NS_SEARCH) : NULL;
    int ok =
        query != NULL && add_text_child(query, "instructions", NULL, howto, strlen(howto)) != NULL;
    for (int i = 0; ok && i < F_COUNT; i++)
        if (fields[i].legacy)
            ok = tern_xml_add_child(query, fields[i].var, NULL) != NULL;
    tern_xml_t *x = ok ? tern_xml_add_child(query, "x", NS_DATA) : NULL;
    ok = x != NULL &&
         add_text_child(x, "title", NULL, "User directory", strlen("User directory")) != NULL &&
         add_text_child(x, "instructions", NULL, howto, strlen(howto)) != NULL &&
         add_field(x, "FORM_TYPE", "hidden", NULL, NS_SEARCH) != NULL;
    if (x != NULL)
        tern_xml_set_attr(x, "type", "form");
    for (int i = 0; ok && i < F_COUNT; i++)
        ok = add_field(x, fields[i].var, "text-single", fields[i].label, NULL) != NULL;
    ok = ok && add_field(x, "jid", "text-single", "User name or address", NULL) != NULL;
    return tern_iq_answer(m, ev, reply, ok);
}

/* Field index of form variable `var`, F_COUNT for "jid", -1 when unknown. */
static int field_index(const char *var)
{
    for (int i = 0; i < F_COUNT; i++)
        if (strcmp(var, fields[i].var) == 0)
            return i;
    return strcmp(var, "jid") == 0 ? F_COUNT : -1;
}

/* Read a submitted form into `q`.  0, or -1 with *why for bad-request. */
static int read_form(tern_xml_t *x, query_t *q, const char **why)
{
    const char *type = tern_xml_attr(x, "type");
    if (type == NULL || strcmp(type, "submit") != 0) {
        *why = "the form must be of type 'submit'";
        return -1;
    }
    for (tern_xml_t *f = tern_xml_first_element(x); f != NULL; f = tern_xml_next_element(f)) {
        const char *var = tern_xml_attr(f, "var");
        if (!tern_xml_is(f, "field", NS_DATA) || var == NULL)
            continue;
        tern_xml_t *value = tern_xml_child(f, "value", NS_DATA);
        span_t v = value != NULL ? trimmed(tern_xml_text(value)) : (span_t){"", 0};
        if (strcmp(var, "FORM_TYPE") == 0) { /* XEP-0068: the form's type */
            if (v.len != strlen(NS_SEARCH) || memcmp(v.s, NS_SEARCH, v.len) != 0) {
                *why = "FORM_TYPE is not " NS_SEARCH;
                return -1;
            }
            continue;
        }
        int i = field_index(var); /* fields we do not offer are ignored */
        if (i == F_COUNT)
            q->jid = v;
        else if (i >= 0)
            q->want[i] = v;
    }
    return 0;
}

/* <reported/> of the result form (XEP-0004 §3.4). */
static int add_reported(tern_xml_t *x)
{
    tern_xml_t *rep = tern_xml_add_child(x, "reported", NULL);
    if (rep == NULL || add_field(rep, "jid", "jid-single", "JID", NULL) == NULL)
        return -1;
    for (int i = 0; i < F_COUNT; i++)
        if (add_field(rep, fields[i].var, "text-single", fields[i].label, NULL) == NULL)
            return -1;
    return 0;
}

/* XEP-0055 §2, §3: search, answering in the style of the request. */
static void run_free(search_run_t *r)
{
    tern_timer_cancel(&r->timer);
    if (r->reply != NULL)
        tern_xml_unref(r->reply);
    if (r->request != NULL)
        tern_xml_unref(r->request);
    tern_jid_free(&r->from);
    tern_jid_free(&r->to);
    free(r);
}

/* Read the next slice of the directory; 1 when the search is over. */
static int search_slice(search_run_t *r)
{
    long n = tern_map_foreach_after(r->st->dir, "", r->last, SLICE, visit_entry, r);
    if (n < 0 && !r->failed)
        r->error = 1;
    return n < SLICE || r->full || r->failed || r->error;
}

/* Answer the search (by address: the session may have gone) and free it. */
static void search_finish(tern_module_ctx_t *m, search_run_t *r)
{
    tern_event_t ev = {.stanza = r->request, .from = r->from, .to = r->to};
    if (r->request != NULL && r->from != NULL && r->to != NULL) {
        if (r->error && !r->failed) {
            tern_reply_error(m, &ev, "wait", "internal-server-error", NULL);
        } else {
            tern_iq_answer(m, &ev, r->reply, !r->failed);
            r->reply = NULL; /* send_reply dropped it */
        }
    }
    run_free(r);
}

static void on_search_timer(tern_module_ctx_t *m, void *arg)
{
    search_run_t *r = arg;
    if (!search_slice(r))
        return;
    search_run_t **p = &r->st->runs;
    while (*p != NULL && *p != r)
        p = &(*p)->next;
    if (*p != NULL)
        *p = r->next;
    search_finish(m, r);
}

static int on_set(tern_module_ctx_t *m, tern_event_t *ev)
{
    search_state_t *st = tern_get_data(m);
    if (!allowed(m, ev))
        return TERN_HANDLED;
    tern_xml_t *req = tern_xml_child(ev->stanza, "query", NS_SEARCH);
    tern_xml_t *form = tern_xml_child(req, "x", NS_DATA);
    query_t q = {0};
    const char *why = NULL;
    if (form != NULL && read_form(form, &q, &why) != 0) {
        tern_reply_error(m, ev, "modify", "bad-request", why);
        return TERN_HANDLED;
    }
    for (int i = 0; form == NULL && i < F_COUNT; i++) {
        tern_xml_t *el = fields[i].legacy ? tern_xml_child(req, fields[i].var, NS_SEARCH) : NULL;
        if (el != NULL)
            q.want[i] = trimmed(tern_xml_text(el));
    }
    int empty = q.jid.len == 0;
    for (int i = 0; i < F_COUNT; i++)
        empty = empty && q.want[i].len == 0;
    if (empty) {
        tern_reply_error(m, ev, "modify", "not-acceptable", "fill in at least one field");
        return TERN_HANDLED;
    }

    search_run_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        tern_reply_error(m, ev, "wait", "resource-constraint", NULL);
        return TERN_HANDLED;
    }
    *r = (search_run_t){.st = st, .q = q, .host = tern_host(m), .form = form != NULL};
    r->request = tern_xml_ref(ev->stanza);
    r->from = tern_jid_dup(ev->from);
    r->to = tern_jid_dup(ev->to);
    r->reply = tern_iq_result(ev);
    tern_xml_t *query = r->reply != NULL ? tern_xml_add_child(r->reply, "query", NS_SEARCH) : NULL;
    r->out = query;
    if (r->request == NULL || r->from == NULL || r->to == NULL || query == NULL)
        r->failed = 1;
    if (!r->failed && r->form) {
        r->out = tern_xml_add_child(query, "x", NS_DATA);
        if (r->out == NULL || add_field(r->out, "FORM_TYPE", "hidden", NULL, NS_SEARCH) == NULL ||
            add_reported(r->out) != 0)
            r->failed = 1;
        else
            tern_xml_set_attr(r->out, "type", "result");
    }
    if (!r->failed && st->list_all && tern_account_foreach(m, visit_account, r) < 0)
        r->error = 1;
    if (r->failed || st->list_all || search_slice(r)) {
        search_finish(m, r);
        return TERN_HANDLED;
    }
    r->timer = tern_timer_add(m, 1, 1, on_search_timer, r);
    if (r->timer == NULL) {
        r->failed = 1;
        search_finish(m, r);
        return TERN_HANDLED;
    }
    r->next = st->runs;
    st->runs = r;
    return TERN_HANDLED;
}

/* ---- catching up after load ---------------------------------------------- */

static void sync_free(search_state_t *st)
{
    for (size_t i = 0; i < st->n_sync; i++)
        free(st->sync[i]);
    free(st->sync);
    st->sync = NULL;
    st->n_sync = st->cap_sync = st->next_sync = 0;
    tern_timer_cancel(&st->sync_timer);
}

/* Re-read up to `n` accounts' vCards; 1 when the walk is over. */
static int sync_some(search_state_t *st, size_t n)
{
    for (; n > 0 && st->next_sync < st->n_sync; n--, st->next_sync++) {
        const char *user = st->sync[st->next_sync];
        tern_xml_t *vcard = NULL;
        int rc = st->vcard->get(st->vcard, user, &vcard);
        if (rc >= 0)
            directory_update(st, user, vcard);
        if (vcard != NULL)
            tern_xml_unref(vcard);
    }
    return st->next_sync >= st->n_sync;
}

static void on_sync_timer(tern_module_ctx_t *m, void *arg)
{
    search_state_t *st = tern_get_data(m);
    if (st != NULL && sync_some(st, SYNC_BATCH)) {
        tern_log(m, TERN_LOG_DEBUG, "directory checked against %zu accounts", st->n_sync);
        sync_free(st);
    }
}

static int collect_account(void *ctx, const char *local)
{
    search_state_t *st = ctx;
    if (st->n_sync == st->cap_sync) {
        size_t cap = st->cap_sync ? 2 * st->cap_sync : 16;
        char **more = realloc(st->sync, cap * sizeof *more);
        if (more == NULL)
            return 1;
        st->sync = more;
        st->cap_sync = cap;
    }
    if ((st->sync[st->n_sync] = strdup(local)) == NULL)
        return 1;
    st->n_sync++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Directory keys that are no account any more (deleted while this module
 * was not loaded), as a list to remove. */
typedef struct orphans {
    search_state_t *st;
    char **keys;
    size_t n, cap;
} orphans_t;

static int collect_orphan(void *ctx, const char *key, const char *data, size_t len)
{
    orphans_t *o = ctx;
    if (bsearch(&key, o->st->sync, o->st->n_sync, sizeof(char *), cmp_str) != NULL)
        return 0;
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 16;
        char **more = realloc(o->keys, cap * sizeof *more);
        if (more == NULL)
            return 1;
        o->keys = more;
        o->cap = cap;
    }
    if ((o->keys[o->n] = strdup(key)) == NULL)
        return 1;
    o->n++;
    return 0;
}

/* Bring the directory up to date with the accounts and their vCards:
 * entries of gone accounts now, each account's vCard a batch per turn. */
static void sync_start(search_state_t *st)
{
    if (tern_account_foreach(st->m, collect_account, st) < 0) {
        tern_log(st->m, TERN_LOG_WARN, "cannot list the accounts: the directory may be stale");
        sync_free(st);
        return;
    }
    if (st->n_sync > 0) /* no accounts yet: st->sync is NULL */
        qsort(st->sync, st->n_sync, sizeof(char *), cmp_str);
    orphans_t o = {.st = st};
    tern_map_foreach(st->dir, "", collect_orphan, &o);
    for (size_t i = 0; i < o.n; i++) {
        tern_map_set(st->dir, "", o.keys[i], NULL, 0);
        free(o.keys[i]);
    }
    free(o.keys);
    if (st->n_sync == 0)
        return;
    st->sync_timer = tern_timer_add(st->m, 1, 1, on_sync_timer, NULL);
    if (st->sync_timer == NULL) { /* no loop (a configuration check): do it now */
        sync_some(st, st->n_sync);
        sync_free(st);
    }
}

/* ---- life cycle ------------------------------------------------------------ */

static const char *const depends[] = {"vcard", NULL};

static int load(tern_module_ctx_t *m)
{
    const vcard_api_t *vcard = tern_require(m, VCARD_SERVICE);
    tern_store_t *dir = tern_store(m, "directory", TERN_STORE_MAP);
    if (vcard == NULL || dir == NULL) {
        tern_log(m, TERN_LOG_ERROR,
                 vcard == NULL ? "the vcard service is missing"
                               : "cannot open the directory store");
        return -1;
    }
    search_state_t *st = calloc(1, sizeof *st);
    if (st == NULL) {
        tern_log(m, TERN_LOG_ERROR, "out of memory");
        return -1;
    }
    *st = (search_state_t){.m = m,
                           .vcard = vcard,
                           .dir = dir,
                           .list_all = tern_opt_int(m, "list_all_users") != 0,
                           .max_results = tern_opt_int(m, "max_results")};
    tern_add_feature(m, NS_SEARCH);
    tern_add_identity(m, "directory", "user", "User directory"); /* XEP-0030 registry */
    if (tern_hook(m, "iq-get/host/" NS_SEARCH ":query", on_get, 0) != 0 ||
        tern_hook(m, "iq-set/host/" NS_SEARCH ":query", on_set, 0) != 0 ||
        tern_hook(m, "user/deleted", on_user_deleted, 0) != 0 ||
        vcard->watch(vcard, m, on_vcard_changed) != 0) {
        free(st);
        return -1;
    }
    tern_set_data(m, st);
    sync_start(st);
    return 0;
}

static void unload(tern_module_ctx_t *m)
{
    search_state_t *st = tern_get_data(m);
    if (st == NULL)
        return;
    st->vcard->unwatch(st->vcard, m);
    sync_free(st);
    while (st->runs != NULL) { /* unanswered: the module goes */
        search_run_t *r = st->runs;
        st->runs = r->next;
        run_free(r);
    }
    free(st);
    tern_set_data(m, NULL);
}

/* A reload changed the options: the next searches use them. */
static int reconfigure(tern_module_ctx_t *m)
{
    search_state_t *st = tern_get_data(m);
    st->list_all = tern_opt_int(m, "list_all_users") != 0;
    st->max_results = tern_opt_int(m, "max_results");
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "search",
    .description = "User directory search (XEP-0055, with XEP-0004 forms)",
    .depends = depends,
    .options = options,
    .load = load,
    .unload = unload,
    .reconfigure = reconfigure,
};
