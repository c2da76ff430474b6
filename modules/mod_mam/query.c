/*
 * query.c — XEP-0313 queries of a user's own archive.
 *
 * Owns, on the user's own account (no 'to', or their bare JID):
 *  - iq-set <query xmlns='urn:xmpp:mam:2'/>: the XEP-0004 form filters
 *    with, start, end (§4.1) and the extended before-id, after-id, ids
 *    (§4.1.3), XEP-0059 paging with <max/>, <after/>, <before/> (empty:
 *    the last page) and <flip-page/> (§4.3.4); one result message per
 *    item (§4.2), then the iq result with <fin/> (§4.3);
 *  - iq-get <query/>: the form (§4.1.5);
 *  - iq-get <metadata/>: first and last item of the archive (§5).
 * Queries to someone else's bare JID are refused (§8.1).  Queries sent to
 * the host's domain by one of its accounts are queries of that account's own
 * archive: some clients (profanity) look for MAM on the domain only.
 *
 * Every query is a few indexed store calls, never a walk of the archive:
 * the page itself (one range read of max+1 items), the count of the result
 * set and the index of the page's first item (two counts, each stopped
 * after max_count items: XEP-0059 lets bigger ones be left out).  The one
 * exception is a 'with' naming a full JID: the store indexes the other
 * party's bare JID, so those items are read and matched on the stanza's
 * address (§4.1.1), which costs a walk of that one conversation: it is
 * read off the event loop in steps of WALK_STEP items, and stops when the
 * page is full and the count past max_count.  Every read of the archive
 * (pages, counts, that walk, the metadata's first and last items) goes
 * through tern_archive_query_async; only the checks that the ids a client
 * names exist (one index lookup each) are made on the loop.
 *
 * Terms: the "result set" is what the form selects; a "page" is the part of
 * it RSM asks for.  <count/> and the index of <first/> are about the result
 * set; 'complete' says whether the page reaches the end of the result set
 * in the direction of paging (forward, or backward with <before/>).
 * <first/> and <last/> are the oldest and newest item of the page, also
 * when <flip-page/> reverses the order the results are sent in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mam.h"

/* One query being answered. */
typedef struct mam_req {
    tern_module_ctx_t *m;
    mam_state_t *st;
    tern_event_t *ev;
    const char *user;    /* the archive's owner (localpart) */
    const char *queryid; /* echoed in results (§4.2), or NULL */
    /* the result set */
    tern_archive_query_t set;
    const char **ids; /* NULL-terminated, malloc'd (strings in the stanza) */
    size_t n_ids;
    tern_jid_t *with; /* the 'with' field, or NULL */
    int with_full;    /* 'with' has a resource: match the stanza's address */
    /* the page */
    long max;           /* page size, after the server's cap */
    const char *after;  /* RSM <after/> */
    const char *before; /* RSM <before/> with an id */
    int backward;       /* RSM <before/> present, empty or not */
    int flip;           /* <flip-page/> */
    /* the first error met, if any */
    const char *err_type, *err_cond, *err_text;
} mam_req_t;

/* The page being read. */
typedef struct page {
    mam_req_t *r;
    tern_xml_t **msgs; /* result messages, in store order */
    char **ids;        /* their archive ids */
    long n;
    int more; /* an item beyond the page exists */
    int failed;
} page_t;

static int req_error(mam_req_t *r, const char *type, const char *cond, const char *text)
{
    if (r->err_cond == NULL) {
        r->err_type = type;
        r->err_cond = cond;
        r->err_text = text;
    }
    return -1;
}

/* ---- XEP-0082 time -------------------------------------------------- */

void mam_format_time(int64_t us, char out[32])
{
    time_t secs = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    char date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%06ldZ", date, frac);
}

/* `n` decimal digits at *p into *v; advances *p.  0 or -1. */
static int digits(const char **p, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return -1;
        *v = *v * 10 + (**p - '0');
    }
    return 0;
}

/* XEP-0082 §3.3 DateTime: CCYY-MM-DDThh:mm:ss[.sss]TZD, TZD = Z | (+|-)hh:mm. */
int mam_parse_time(const char *s, int64_t *us)
{
    int year, mon, day, hh, mm, ss, tzh = 0, tzm = 0;
    const char *p = s;
    if (digits(&p, 4, &year) < 0 || *p++ != '-' || digits(&p, 2, &mon) < 0 || *p++ != '-' ||
        digits(&p, 2, &day) < 0 || *p++ != 'T' || digits(&p, 2, &hh) < 0 || *p++ != ':' ||
        digits(&p, 2, &mm) < 0 || *p++ != ':' || digits(&p, 2, &ss) < 0)
        return -1;
    long frac = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        for (; *p >= '0' && *p <= '9'; p++, n++)
            if (n < 6)
                frac = frac * 10 + (*p - '0');
        if (n == 0)
            return -1;
        for (; n < 6; n++)
            frac *= 10;
    }
    int sign = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '+' ? 1 : -1;
        if (digits(&p, 2, &tzh) < 0 || *p++ != ':' || digits(&p, 2, &tzm) < 0)
            return -1;
    } else {
        return -1;
    }
    if (*p != '\0' || mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 ||
        tzh > 23 || tzm > 59)
        return -1;
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = day,
                    .tm_hour = hh,
                    .tm_min = mm,
                    .tm_sec = ss};
    time_t t = timegm(&tm);
    t -= (time_t)sign * (tzh * 3600 + tzm * 60);
    *us = (int64_t)t * 1000000 + frac;
    return 0;
}

/* ---- parsing the request ------------------------------------------- */

/* Whether `id` is in the user's archive: 1, 0, or -1 on a store error. */
static int id_exists(mam_req_t *r, const char *id)
{
    const char *one[2] = {id, NULL};
    tern_archive_query_t q = {.ids = one};
    long n = tern_archive_count(r->st->archive, r->user, &q);
    return n < 0 ? -1 : n > 0;
}

/* Whether item `b` comes after item `a` (both known to exist). */
static int is_after(mam_req_t *r, const char *a, const char *b)
{
    const char *one[2] = {b, NULL};
    tern_archive_query_t q = {.ids = one, .after_id = a};
    return tern_archive_count(r->st->archive, r->user, &q) > 0;
}

/* Whether item `b` comes before item `a`. */
static int is_before(mam_req_t *r, const char *a, const char *b)
{
    const char *one[2] = {b, NULL};
    tern_archive_query_t q = {.ids = one, .before_id = a};
    return tern_archive_count(r->st->archive, r->user, &q) > 0;
}

/* The text of a field's first <value/>, or NULL when it has none. */
static const char *field_value(tern_xml_t *field)
{
    tern_xml_t *v = tern_xml_child(field, "value", NS_XDATA);
    return v != NULL ? tern_xml_text(v) : NULL;
}

/* The 'ids' field: every <value/>, at most a page of them. */
static int parse_ids(mam_req_t *r, tern_xml_t *field)
{
    size_t n = 0;
    for (tern_xml_t *v = tern_xml_first_element(field); v != NULL; v = tern_xml_next_element(v))
        n += tern_xml_is(v, "value", NS_XDATA);
    if (n > r->st->max_page)
        return req_error(r, "modify", "policy-violation", "too many ids in one query");
    free(r->ids);
    r->ids = calloc(n + 1, sizeof *r->ids);
    if (r->ids == NULL)
        return req_error(r, "wait", "resource-constraint", NULL);
    r->n_ids = 0;
    for (tern_xml_t *v = tern_xml_first_element(field); v != NULL; v = tern_xml_next_element(v))
        if (tern_xml_is(v, "value", NS_XDATA))
            r->ids[r->n_ids++] = tern_xml_text(v);
    r->set.ids = r->ids;
    return 0;
}

/* XEP-0313 §4.1: the data form.  Unknown fields are feature-not-implemented
 * (§4.1.5); fields without a value are ignored. */
static int parse_form(mam_req_t *r, tern_xml_t *query)
{
    tern_xml_t *x = tern_xml_child(query, "x", NS_XDATA);
    if (x == NULL)
        return 0;
    const char *type = tern_xml_attr(x, "type");
    if (type != NULL && strcmp(type, "submit") != 0)
        return req_error(r, "modify", "bad-request", "the form must be of type submit");
    for (tern_xml_t *f = tern_xml_first_element(x); f != NULL; f = tern_xml_next_element(f)) {
        if (!tern_xml_is(f, "field", NS_XDATA))
            continue;
        const char *var = tern_xml_attr(f, "var");
        const char *value = field_value(f);
        if (var == NULL)
            return req_error(r, "modify", "bad-request", "a field without 'var'");
        if (strcmp(var, "FORM_TYPE") == 0) {
            if (value == NULL || strcmp(value, NS_MAM) != 0)
                return req_error(r, "modify", "bad-request", "FORM_TYPE must be " NS_MAM);
        } else if (strcmp(var, "ids") == 0) {
            if (parse_ids(r, f) < 0)
                return -1;
        } else if (strcmp(var, "with") != 0 && strcmp(var, "start") != 0 &&
                   strcmp(var, "end") != 0 && strcmp(var, "after-id") != 0 &&
                   strcmp(var, "before-id") != 0) {
            return req_error(r, "cancel", "feature-not-implemented", "unknown field");
        } else if (value == NULL || value[0] == '\0') {
            continue;
        } else if (strcmp(var, "with") == 0) {
            tern_jid_free(&r->with);
            r->with = tern_jid_new(value, NULL);
            if (r->with == NULL)
                return req_error(r, "modify", "jid-malformed", "'with' is not a JID");
            r->set.with = r->with->bare;
            r->with_full = r->with->resource != NULL;
        } else if (strcmp(var, "start") == 0 || strcmp(var, "end") == 0) {
            int64_t t;
            if (mam_parse_time(value, &t) < 0)
                return req_error(r, "modify", "bad-request", "not an XEP-0082 DateTime");
            /* The store reads 0 as "no bound": a bound at the epoch itself is
             * moved by a microsecond, which changes nothing in practice. */
            if (var[0] == 's')
                r->set.start_us = t != 0 ? t : 1;
            else
                r->set.end_us = t != 0 ? t : -1;
        } else if (strcmp(var, "after-id") == 0) {
            r->set.after_id = value;
        } else {
            r->set.before_id = value;
        }
    }
    return 0;
}

/* XEP-0059 §2: <max/>, <after/>, <before/>; <index/> (§2.4) is not
 * supported.  XEP-0313 §4.3.4: <flip-page/>. */
static int parse_rsm(mam_req_t *r, tern_xml_t *query)
{
    r->max = (long)r->st->default_page;
    r->flip = tern_xml_child(query, "flip-page", NS_MAM) != NULL;
    tern_xml_t *set = tern_xml_child(query, "set", NS_RSM);
    if (set == NULL)
        return 0;
    if (tern_xml_child(set, "index", NS_RSM) != NULL)
        return req_error(r, "cancel", "feature-not-implemented", "paging by index");
    tern_xml_t *max = tern_xml_child(set, "max", NS_RSM);
    if (max != NULL) {
        const char *s = tern_xml_text(max);
        char *end = NULL;
        long v = strtol(s, &end, 10);
        if (s[0] == '\0' || *end != '\0' || v < 0)
            return req_error(r, "modify", "bad-request", "<max/> must be a number");
        r->max = v < (long)r->st->max_page ? v : (long)r->st->max_page; /* §4.3.1 */
    }
    tern_xml_t *after = tern_xml_child(set, "after", NS_RSM);
    if (after != NULL) {
        r->after = tern_xml_text(after);
        if (r->after[0] == '\0')
            return req_error(r, "modify", "bad-request", "empty <after/>");
    }
    tern_xml_t *before = tern_xml_child(set, "before", NS_RSM);
    if (before != NULL) {
        r->backward = 1;
        const char *id = tern_xml_text(before);
        r->before = id[0] != '\0' ? id : NULL;
    }
    return 0;
}

/* §4.1.3, §4.3.2: every id the client names must be in the archive. */
static int check_ids(mam_req_t *r)
{
    const char *named[] = {r->set.after_id, r->set.before_id, r->after, r->before};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (named[i] == NULL)
            continue;
        int found = id_exists(r, named[i]);
        if (found < 0)
            return req_error(r, "wait", "internal-server-error", NULL);
        if (found == 0)
            return req_error(r, "cancel", "item-not-found", NULL);
    }
    if (r->ids == NULL)
        return 0;
    size_t distinct = 0;
    for (size_t i = 0; i < r->n_ids; i++) {
        size_t k = 0;
        while (k < i && strcmp(r->ids[k], r->ids[i]) != 0)
            k++;
        distinct += k == i;
    }
    tern_archive_query_t q = {.ids = r->ids};
    long n = tern_archive_count(r->st->archive, r->user, &q);
    if (n < 0)
        return req_error(r, "wait", "internal-server-error", NULL);
    if ((size_t)n != distinct)
        return req_error(r, "cancel", "item-not-found", NULL);
    return 0;
}

/* ---- reading ------------------------------------------------------- */

/* §4.1.1 with a full JID: the other party's address on the stanza (its
 * 'from' when incoming, its 'to' when outgoing) must be that JID. */
static int peer_matches(const mam_req_t *r, const tern_archive_item_t *it)
{
    tern_xml_t *stored = tern_xml_parse(it->data, it->len);
    const char *from = stored != NULL ? tern_xml_attr(stored, "from") : NULL;
    const char *to = stored != NULL ? tern_xml_attr(stored, "to") : NULL;
    if (from == NULL || to == NULL) {
        if (stored != NULL)
            tern_xml_unref(stored);
        return 0;
    }
    tern_jid_t *f = tern_jid_new(from, NULL), *t = tern_jid_new(to, NULL);
    int match = 0;
    if (f != NULL && t != NULL) {
        int outgoing = f->local != NULL && strcmp(f->local, r->user) == 0 &&
                       strcmp(f->domain, tern_host(r->m)) == 0;
        int incoming = t->local != NULL && strcmp(t->local, r->user) == 0 &&
                       strcmp(t->domain, tern_host(r->m)) == 0;
        match = (outgoing && strcmp(t->full, r->with->full) == 0) ||
                (incoming && strcmp(f->full, r->with->full) == 0);
    }
    tern_jid_free(&f);
    tern_jid_free(&t);
    tern_xml_unref(stored);
    return match;
}

/* XEP-0059 §2.2: <count/> and the 'index' of <first/> "MAY be omitted
 * ... only if it would be ... exceptionally resource intensive to
 * calculate reasonably accurate values".  Past the max_count option they
 * are left out rather than read the whole range on the event loop. */
static int count_unknown(const mam_req_t *r, long n)
{
    return n > r->st->max_count;
}

/* <message to=querier from=archive><result queryid id><forwarded><delay/>
 * ORIGINAL</forwarded></result></message> — XEP-0313 §4.2, XEP-0297. */
static tern_xml_t *result_message(mam_req_t *r, const tern_archive_item_t *it)
{
    char stamp[32];
    tern_xml_t *msg = tern_xml_new("message", TERN_NS_CLIENT);
    tern_xml_t *res = msg != NULL ? tern_xml_add_child(msg, "result", NS_MAM) : NULL;
    tern_xml_t *fwd = res != NULL ? tern_xml_add_child(res, "forwarded", NS_FORWARD) : NULL;
    tern_xml_t *delay = fwd != NULL ? tern_xml_add_child(fwd, "delay", NS_DELAY) : NULL;
    if (delay == NULL) {
        if (msg != NULL)
            tern_xml_unref(msg);
        return NULL;
    }
    tern_xml_set_attr(msg, "to", r->ev->from->full);
    tern_xml_set_attr(msg, "from", r->ev->to->bare);
    if (r->queryid != NULL)
        tern_xml_set_attr(res, "queryid", r->queryid);
    tern_xml_set_attr(res, "id", it->id);
    mam_format_time(it->when_us, stamp);
    tern_xml_set_attr(delay, "stamp", stamp); /* XEP-0203: when we received it */
    /* §3.2: a stanza that cannot be read back is left out of <forwarded/>,
     * keeping its id and time, as for a removed message. */
    tern_xml_t *stored = tern_xml_parse(it->data, it->len);
    if (stored != NULL) {
        tern_xml_copy_into(fwd, stored);
        tern_xml_unref(stored);
    } else
        tern_log(r->m, TERN_LOG_WARN, "archive item %s of %s is unreadable", it->id, r->user);
    return msg;
}

static int page_cb(void *ctx, const tern_archive_item_t *it)
{
    page_t *pg = ctx;
    mam_req_t *r = pg->r;
    if (r->with_full && !peer_matches(r, it))
        return 0;
    if (pg->n == r->max) {
        pg->more = 1;
        return 1;
    }
    tern_xml_t *msg = result_message(r, it);
    char *id = msg != NULL ? strdup(it->id) : NULL;
    if (id == NULL) {
        if (msg != NULL)
            tern_xml_unref(msg);
        pg->failed = 1;
        return 1;
    }
    pg->msgs[pg->n] = msg;
    pg->ids[pg->n] = id;
    pg->n++;
    return 0;
}

static void page_free(page_t *pg)
{
    for (long i = 0; i < pg->n; i++) {
        tern_xml_unref(pg->msgs[i]);
        free(pg->ids[i]);
    }
    free(pg->msgs);
    free(pg->ids);
    pg->msgs = NULL;
    pg->ids = NULL;
    pg->n = 0;
}

/* Send to the querying session directly (results are for it alone), or
 * route when the query did not come from a local session. */
static void send_to_querier(mam_req_t *r, tern_xml_t *stanza)
{
    if (r->ev->origin != NULL)
        tern_session_send(r->ev->origin, stanza);
    else
        tern_route(r->m, stanza);
}

static void add_text_child(tern_xml_t *parent, const char *name, const char *text)
{
    tern_xml_t *c = tern_xml_add_child(parent, name, NULL);
    if (c != NULL)
        tern_xml_add_text(c, text, strlen(text));
}

/* §4.3: the iq result closing the query. */
static int send_fin(mam_req_t *r, const page_t *pg, long count, long index)
{
    char num[32];
    tern_xml_t *reply = tern_iq_result(r->ev);
    tern_xml_t *fin = reply != NULL ? tern_xml_add_child(reply, "fin", NS_MAM) : NULL;
    tern_xml_t *set = fin != NULL ? tern_xml_add_child(fin, "set", NS_RSM) : NULL;
    if (set == NULL) {
        if (reply != NULL)
            tern_xml_unref(reply);
        return -1;
    }
    int complete = pg->n > 0 || r->max > 0 ? !pg->more : count == 0;
    tern_xml_set_attr(fin, "complete", complete ? "true" : "false");
    if (r->queryid != NULL)
        tern_xml_set_attr(fin, "queryid", r->queryid);
    if (pg->n > 0) {
        /* In chronological order, whatever order they were sent in. */
        const char *first = pg->ids[r->backward ? pg->n - 1 : 0];
        const char *last = pg->ids[r->backward ? 0 : pg->n - 1];
        tern_xml_t *f = tern_xml_add_child(set, "first", NULL);
        if (f != NULL) {
            snprintf(num, sizeof num, "%ld", index);
            if (!count_unknown(r, index))
                tern_xml_set_attr(f, "index", num);
            tern_xml_add_text(f, first, strlen(first));
        }
        add_text_child(set, "last", last);
    }
    snprintf(num, sizeof num, "%ld", count);
    if (!count_unknown(r, count))
        add_text_child(set, "count", num);
    send_to_querier(r, reply);
    tern_xml_unref(reply);
    return 0;
}

static void req_free(mam_req_t *r)
{
    free(r->ids);
    tern_jid_free(&r->with);
}

/* The page's range: the tighter of the form's and RSM's bounds, read
 * newest first when paging backward, one item more than the page (to
 * know whether it is complete). */
static tern_archive_query_t page_query(mam_req_t *r)
{
    tern_archive_query_t q = r->set;
    if (r->after != NULL && (q.after_id == NULL || is_after(r, q.after_id, r->after)))
        q.after_id = r->after;
    if (r->before != NULL && (q.before_id == NULL || is_before(r, q.before_id, r->before)))
        q.before_id = r->before;
    q.reverse = r->backward;
    q.limit = r->with_full ? 0 : (unsigned)r->max + 1;
    return q;
}

/* Room for the page's messages and ids.  0, or -1 with an error set. */
static int page_alloc(mam_req_t *r, page_t *pg)
{
    if (r->max <= 0)
        return 0;
    pg->msgs = calloc((size_t)r->max, sizeof *pg->msgs);
    pg->ids = calloc((size_t)r->max, sizeof *pg->ids);
    if (pg->msgs == NULL || pg->ids == NULL) {
        page_free(pg);
        return req_error(r, "wait", "resource-constraint", NULL);
    }
    return 0;
}

/* Send the page's results and the fin (the page read, the result set
 * counted).  0, or -1 with an error set (nothing sent then).  Frees the
 * page. */
static int send_page(mam_req_t *r, page_t *pg, long count, long index)
{
    if (count < 0 || index < 0) {
        page_free(pg);
        return req_error(r, "wait", "internal-server-error", NULL);
    }
    /* Sent oldest first (§4.2), or newest first with <flip-page/>.  The
     * store gave them newest first when paging backward. */
    int newest_first = r->flip;
    for (long i = 0; i < pg->n; i++) {
        long k = (r->backward != newest_first) ? pg->n - 1 - i : i;
        char id[32];
        snprintf(id, sizeof id, "mam%llu", ++r->st->sent);
        tern_xml_set_attr(pg->msgs[k], "id", id);
        send_to_querier(r, pg->msgs[k]);
    }
    int rc = send_fin(r, pg, count, index);
    page_free(pg);
    return rc < 0 ? req_error(r, "wait", "resource-constraint", NULL) : 0;
}

/* A query whose page is being read off the loop: the request, and what
 * it points to kept alive (the stanza its strings are in, the JIDs).  A
 * 'with' naming a full JID is read in steps (see walk_step). */
typedef struct mam_async {
    mam_req_t r;
    tern_event_t ev;
    tern_jid_t *from, *to;
    /* the walk of a 'with' naming a full JID */
    int counting;           /* 0: reading the page, 1: counting the result set */
    tern_archive_query_t q; /* this step's range */
    page_t pg;
    long count, index;
    int index_found;
} mam_async_t;

static void async_free(mam_async_t *a)
{
    page_free(&a->pg);
    req_free(&a->r);
    tern_xml_unref(a->ev.stanza);
    tern_jid_free(&a->from);
    tern_jid_free(&a->to);
    free(a);
}

/* A copy of the request `r` that outlives the handler: the event, its
 * JIDs and its stanza (r's strings point into it) kept.  NULL when out of
 * memory.  r->ids and r->with are not taken: the caller hands them over
 * (async_take) once the read is on its way. */
static mam_async_t *async_new(mam_req_t *r)
{
    mam_async_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->ev = *r->ev;
    a->from = tern_jid_dup(r->ev->from);
    a->to = tern_jid_dup(r->ev->to);
    if (a->from == NULL || a->to == NULL) {
        tern_jid_free(&a->from);
        tern_jid_free(&a->to);
        free(a);
        return NULL;
    }
    a->ev.from = a->from;
    a->ev.to = a->to;
    a->ev.stanza = tern_xml_ref(r->ev->stanza);
    a->r = *r;
    a->r.ev = &a->ev;
    a->r.user = a->from->local;
    a->pg.r = &a->r;
    return a;
}

/* The read is on its way: r's allocations are a's now. */
static void async_take(mam_req_t *r)
{
    r->ids = NULL;
    r->with = NULL;
}

/* Free a that never got its read going (r keeps its allocations). */
static void async_drop(mam_async_t *a)
{
    a->r.ids = NULL;
    a->r.with = NULL;
    async_free(a);
}

/* The page and counts were read (tern_archive_query_async): send the
 * results, then the fin.  Nothing when the querying session closed or
 * the module went away meanwhile. */
static void on_page(tern_module_ctx_t *m, tern_session_t *s, void *ctx,
                    const tern_archive_result_t *res)
{
    mam_async_t *a = ctx;
    mam_req_t *r = &a->r;
    r->st = tern_get_data(m);
    if (res == NULL || r->st == NULL) {
        async_free(a);
        return;
    }
    a->ev.origin = s;
    page_t pg = {.r = r};
    if (res->rc < 0) {
        int unknown = res->error != NULL && strcmp(res->error, "item-not-found") == 0;
        req_error(r, "cancel", unknown ? "item-not-found" : "internal-server-error", NULL);
    } else if (page_alloc(r, &pg) == 0) {
        for (int i = 0; r->max > 0 && i < res->rc; i++)
            if (page_cb(&pg, &res->items[i]) != 0)
                break;
        if (pg.failed) {
            page_free(&pg);
            req_error(r, "wait", "internal-server-error", NULL);
        } else {
            send_page(r, &pg, res->count, pg.n > 0 ? res->index : 0);
        }
    }
    if (r->err_cond != NULL)
        tern_reply_error(m, &a->ev, r->err_type, r->err_cond, r->err_text);
    async_free(a);
}

/* Hand the page and its counts to the store, off the loop (on_page
 * answers).  0, or -1 with an error set.  On success *r belongs to the
 * pending query (the caller must not free it). */
static int answer_later(mam_req_t *r)
{
    tern_archive_query_t q = page_query(r);
    mam_async_t *a = async_new(r);
    if (a == NULL)
        return req_error(r, "wait", "resource-constraint", NULL);
    /* The index is that of the page's oldest item: the first read going
     * forward, the max-th (or last) going backward. */
    tern_archive_count_t count = {.q = &r->set,
                                  .max = r->st->max_count + 1,
                                  .index_of = r->backward && r->max > 0 ? (unsigned)r->max - 1 : 0};
    if (tern_archive_query_async(r->m, r->ev->origin, r->st->archive, r->user, &q, &count, on_page,
                                 a) < 0) {
        async_drop(a);
        return req_error(r, "wait", "internal-server-error", NULL);
    }
    async_take(r);
    return 0;
}

/* ---- a 'with' naming a full JID: a walk in steps, off the loop ------- */

/* Items read per step: the store indexes the bare JID only, so the items
 * of that conversation are read and matched on their addresses (§4.1.1);
 * a step is a bounded read, and the walk stops as soon as the page is
 * full and the result set counted to max_count + 1, as a walk on the
 * loop did. */
#define WALK_STEP 256

static void on_walk(tern_module_ctx_t *m, tern_session_t *s, void *ctx,
                    const tern_archive_result_t *res);

/* Ask for the walk's next step (a->q).  0, or -1 with an error set. */
static int walk_step(mam_async_t *a)
{
    mam_req_t *r = &a->r;
    a->q.limit = WALK_STEP;
    if (tern_archive_query_async(r->m, r->ev->origin, r->st->archive, r->user, &a->q, NULL, on_walk,
                                 a) < 0)
        return req_error(r, "wait", "internal-server-error", NULL);
    return 0;
}

/* The page is read: count the result set, from its oldest item on. */
static int walk_count(mam_async_t *a)
{
    a->counting = 1;
    a->q = a->r.set;
    a->q.reverse = 0;
    return walk_step(a);
}

/* One step of the walk is in: match its items, then read on, count, or
 * answer.  Nothing when the querying session closed or the module went
 * away meanwhile. */
static void on_walk(tern_module_ctx_t *m, tern_session_t *s, void *ctx,
                    const tern_archive_result_t *res)
{
    mam_async_t *a = ctx;
    mam_req_t *r = &a->r;
    r->st = tern_get_data(m);
    if (res == NULL || r->st == NULL) {
        async_free(a);
        return;
    }
    a->ev.origin = s;
    int stop = 0; /* the page is full, or the count past max_count */
    if (res->rc < 0) {
        int unknown = res->error != NULL && strcmp(res->error, "item-not-found") == 0;
        req_error(r, "cancel", unknown ? "item-not-found" : "internal-server-error", NULL);
    } else if (!a->counting) {
        for (int i = 0; i < res->rc && !stop; i++)
            stop = page_cb(&a->pg, &res->items[i]) != 0;
        if (a->pg.failed)
            req_error(r, "wait", "internal-server-error", NULL);
    } else {
        const char *first = a->pg.n > 0 ? a->pg.ids[r->backward ? a->pg.n - 1 : 0] : NULL;
        for (int i = 0; i < res->rc && !stop; i++) {
            if (first != NULL && !a->index_found && strcmp(res->items[i].id, first) == 0) {
                a->index = a->count; /* the matches before the page's oldest item */
                a->index_found = 1;
            }
            a->count += peer_matches(r, &res->items[i]);
            stop = a->count > r->st->max_count;
        }
    }
    int more = !stop && res->rc == WALK_STEP; /* the range may hold more items */
    if (r->err_cond == NULL) {
        if (more) { /* read on after (or, backward, before) the step's last item */
            const char *last = res->items[res->rc - 1].id;
            if (a->q.reverse)
                a->q.before_id = last;
            else
                a->q.after_id = last;
            if (walk_step(a) == 0)
                return;
        } else if (!a->counting) {
            if (walk_count(a) == 0)
                return;
        } else {
            /* Stopped past max_count before the page's item: unknown too. */
            long index = a->index_found ? a->index : a->count;
            page_t pg = a->pg;
            memset(&a->pg, 0, sizeof a->pg);
            send_page(r, &pg, a->count, pg.n > 0 ? index : 0);
        }
    }
    if (r->err_cond != NULL)
        tern_reply_error(m, &a->ev, r->err_type, r->err_cond, r->err_text);
    async_free(a);
}

/* Start the walk of a 'with' naming a full JID: the page first (items
 * matched until it is full), then the count.  0, or -1 with an error set;
 * on success *r belongs to the walk. */
static int answer_walk(mam_req_t *r)
{
    mam_async_t *a = async_new(r);
    if (a == NULL)
        return req_error(r, "wait", "resource-constraint", NULL);
    int rc;
    if (page_alloc(&a->r, &a->pg) < 0) {
        rc = req_error(r, "wait", "resource-constraint", NULL);
    } else if (r->max > 0) {
        a->q = page_query(r);
        rc = walk_step(a);
    } else {
        rc = walk_count(a); /* no page: only the count */
    }
    if (rc < 0) {
        if (a->r.err_cond != NULL && r->err_cond == NULL)
            req_error(r, a->r.err_type, a->r.err_cond, a->r.err_text);
        async_drop(a);
        return -1;
    }
    async_take(r);
    return 0;
}

/* iq-set/self/urn:xmpp:mam:2:query — XEP-0313 §4.  The page is read off
 * the loop: in one read (answer_later), or in steps when 'with' names a
 * full JID (answer_walk). */
int mam_on_query(tern_module_ctx_t *m, tern_event_t *ev)
{
    mam_state_t *st = tern_get_data(m);
    if (st == NULL || ev->from == NULL || ev->from->local == NULL)
        return TERN_PASS;
    tern_xml_t *query = tern_xml_child(ev->stanza, "query", NS_MAM);
    if (query == NULL)
        return TERN_PASS;
    mam_req_t r = {.m = m, .st = st, .ev = ev, .user = ev->from->local};
    r.queryid = tern_xml_attr(query, "queryid");
    if (tern_xml_attr(query, "node") != NULL) /* §6.1.3: pubsub archives only */
        req_error(&r, "cancel", "item-not-found", NULL);
    else if (parse_form(&r, query) == 0 && parse_rsm(&r, query) == 0 && check_ids(&r) == 0) {
        if (r.with_full)
            answer_walk(&r);
        else
            answer_later(&r);
    }
    if (r.err_cond != NULL)
        tern_reply_error(m, ev, r.err_type, r.err_cond, r.err_text);
    req_free(&r);
    return TERN_HANDLED;
}

/* Add <field var type/> to a form; the field, or NULL. */
static tern_xml_t *add_field(tern_xml_t *x, const char *var, const char *type)
{
    tern_xml_t *f = tern_xml_add_child(x, "field", NULL);
    if (f != NULL) {
        tern_xml_set_attr(f, "var", var);
        tern_xml_set_attr(f, "type", type);
    }
    return f;
}

/* iq-get/self/urn:xmpp:mam:2:query — §4.1.5: the fields we support. */
int mam_on_form(tern_module_ctx_t *m, tern_event_t *ev)
{
    static const char *const fields[][2] = {
        {"with", "jid-single"},       {"start", "text-single"},    {"end", "text-single"},
        {"before-id", "text-single"}, {"after-id", "text-single"},
    };
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *query = reply != NULL ? tern_xml_add_child(reply, "query", NS_MAM) : NULL;
    tern_xml_t *x = query != NULL ? tern_xml_add_child(query, "x", NS_XDATA) : NULL;
    tern_xml_t *ft = x != NULL ? add_field(x, "FORM_TYPE", "hidden") : NULL;
    int ok = ft != NULL;
    if (ok) {
        tern_xml_set_attr(x, "type", "form");
        add_text_child(ft, "value", NS_MAM);
    }
    for (size_t i = 0; ok && i < sizeof fields / sizeof fields[0]; i++)
        ok = add_field(x, fields[i][0], fields[i][1]) != NULL;
    /* The list of ids is open: XEP-0122 <validate><open/></validate>. */
    tern_xml_t *ids = ok ? add_field(x, "ids", "list-multi") : NULL;
    tern_xml_t *val = ids != NULL ? tern_xml_add_child(ids, "validate", NS_XVALIDATE) : NULL;
    ok = val != NULL && tern_xml_add_child(val, "open", NULL) != NULL;
    if (ok) {
        tern_xml_set_attr(val, "datatype", "xs:string");
        tern_route(m, reply);
    } else {
        tern_reply_error(m, ev, "wait", "resource-constraint", NULL);
    }
    if (reply != NULL)
        tern_xml_unref(reply);
    return TERN_HANDLED;
}

/* A metadata request whose first and last items are being read (two
 * tern_archive_query_async calls, answered in call order: the last
 * item's answer sends the reply). */
typedef struct meta_req {
    mam_async_t *a; /* the request kept alive */
    int pending;    /* reads not back yet */
    int failed;
    struct {
        char id[128];
        int64_t when_us;
        int found;
    } edges[2];
} meta_req_t;

static void meta_free(meta_req_t *mr)
{
    async_free(mr->a);
    free(mr);
}

/* §5: <metadata/> with <start/> and <end/> (an empty one for an empty
 * archive), or an error. */
static void meta_answer(tern_module_ctx_t *m, meta_req_t *mr)
{
    tern_event_t *ev = &mr->a->ev;
    if (mr->failed) {
        tern_reply_error(m, ev, "wait", "internal-server-error", NULL);
        return;
    }
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *md = reply != NULL ? tern_xml_add_child(reply, "metadata", NS_MAM) : NULL;
    int ok = md != NULL;
    for (int i = 0; ok && i < 2 && mr->edges[i].found; i++) {
        char stamp[32];
        tern_xml_t *e = tern_xml_add_child(md, i == 0 ? "start" : "end", NULL);
        ok = e != NULL;
        if (ok) {
            mam_format_time(mr->edges[i].when_us, stamp);
            tern_xml_set_attr(e, "id", mr->edges[i].id);
            tern_xml_set_attr(e, "timestamp", stamp);
        }
    }
    if (ok)
        tern_route(m, reply);
    else
        tern_reply_error(m, ev, "wait", "resource-constraint", NULL);
    if (reply != NULL)
        tern_xml_unref(reply);
}

/* One edge was read; the second one answers.  Nothing is sent when the
 * session closed or the module went away meanwhile. */
static void on_edge(tern_module_ctx_t *m, tern_session_t *s, void *ctx,
                    const tern_archive_result_t *res)
{
    meta_req_t *mr = ctx;
    int i = 2 - mr->pending; /* 0: the first item, 1: the last */
    mr->pending--;
    if (res == NULL || tern_get_data(m) == NULL) {
        mr->failed = -1; /* gone: nothing to send */
    } else if (res->rc < 0) {
        if (mr->failed == 0)
            mr->failed = 1;
    } else if (res->rc > 0) {
        snprintf(mr->edges[i].id, sizeof mr->edges[i].id, "%s", res->items[0].id);
        mr->edges[i].when_us = res->items[0].when_us;
        mr->edges[i].found = 1;
    }
    if (mr->pending > 0)
        return;
    mr->a->ev.origin = s;
    if (mr->failed >= 0)
        meta_answer(m, mr);
    meta_free(mr);
}

/* iq-get/self/urn:xmpp:mam:2:metadata — §5: the first and last item; an
 * empty <metadata/> for an empty archive.  Both are read off the loop. */
int mam_on_metadata(tern_module_ctx_t *m, tern_event_t *ev)
{
    mam_state_t *st = tern_get_data(m);
    if (st == NULL || ev->from == NULL || ev->from->local == NULL)
        return TERN_PASS;
    mam_req_t r = {.m = m, .st = st, .ev = ev, .user = ev->from->local};
    meta_req_t *mr = calloc(1, sizeof *mr);
    if (mr == NULL || (mr->a = async_new(&r)) == NULL) {
        free(mr);
        tern_reply_error(m, ev, "wait", "resource-constraint", NULL);
        return TERN_HANDLED;
    }
    for (int i = 0; i < 2; i++) {
        tern_archive_query_t q = {.limit = 1, .reverse = i};
        if (tern_archive_query_async(m, ev->origin, st->archive, mr->a->r.user, &q, NULL, on_edge,
                                     mr) < 0) {
            if (i == 0) { /* nothing on its way */
                meta_free(mr);
                tern_reply_error(m, ev, "wait", "internal-server-error", NULL);
                return TERN_HANDLED;
            }
            mr->failed = 1; /* the first read answers, with the error */
            break;
        }
        mr->pending++;
    }
    return TERN_HANDLED;
}

/* A request to the host's domain from an account of that host (not from a
 * user of another host, a component or a remote server): its archive is
 * the sender's own, kept by this module instance. */
static int own_account_to_domain(const tern_event_t *ev)
{
    return ev->from != NULL && ev->from->local != NULL && ev->to != NULL && ev->to->local == NULL &&
           strcmp(ev->from->domain, ev->to->domain) == 0;
}

/* iq-set/host/urn:xmpp:mam:2:query — the user's own archive, as ejabberd
 * answers it; anything else falls through to the default error. */
int mam_on_host_query(tern_module_ctx_t *m, tern_event_t *ev)
{
    return own_account_to_domain(ev) ? mam_on_query(m, ev) : TERN_PASS;
}

/* iq-get/host/urn:xmpp:mam:2:query — the form, as on the account. */
int mam_on_host_form(tern_module_ctx_t *m, tern_event_t *ev)
{
    return own_account_to_domain(ev) ? mam_on_form(m, ev) : TERN_PASS;
}

/* iq-get/host/urn:xmpp:mam:2:metadata — the user's own archive's edges. */
int mam_on_host_metadata(tern_module_ctx_t *m, tern_event_t *ev)
{
    return own_account_to_domain(ev) ? mam_on_metadata(m, ev) : TERN_PASS;
}

/* iq-get|set/bare/urn:xmpp:mam:2:* — another user's archive.  §8.1:
 * forbidden; an account that does not exist answers like any iq to it
 * (RFC 6121 §8.5.1), so that accounts cannot be probed. */
int mam_on_foreign(tern_module_ctx_t *m, tern_event_t *ev)
{
    int exists = ev->to->local != NULL && tern_user_exists(m, ev->to->local) > 0;
    tern_reply_error(m, ev, "cancel", exists ? "forbidden" : "service-unavailable", NULL);
    return TERN_HANDLED;
}
