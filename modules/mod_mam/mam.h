/*
 * mam.h — what the files of mod_mam share (private to the module).
 *
 *   mod.c       options, load/unload, the retention timer
 *   archive.c   which messages are archived, XEP-0359 stanza-ids
 *   query.c     XEP-0313 queries, RSM paging, the form, metadata, and
 *               XEP-0082 timestamps
 *   prefs.c     XEP-0441 archiving preferences
 *   quota.c     the most messages one user's archive keeps
 *
 * Every file is compiled into the one mod_mam.so; the functions below are
 * hidden by -fvisibility=hidden like everything but the descriptor.
 */
#ifndef MOD_MAM_H
#define MOD_MAM_H

#include <stddef.h>
#include <stdint.h>
#include <tern/module.h>
#include <tern/table.h>

#define NS_MAM       "urn:xmpp:mam:2"
#define NS_MAM_EXT   "urn:xmpp:mam:2#extended"
#define NS_SID       "urn:xmpp:sid:0"
#define NS_RSM       "http://jabber.org/protocol/rsm"
#define NS_FORWARD   "urn:xmpp:forward:0"
#define NS_DELAY     "urn:xmpp:delay"
#define NS_XDATA     "jabber:x:data"
#define NS_XVALIDATE "http://jabber.org/protocol/xdata-validate"

/* Store names (scoped to the host by the core). */
#define MAM_ARCHIVE_STORE "archive"
#define MAM_PREFS_STORE   "mam_prefs"
#define MAM_PREFS_CACHED  100000 /* preferences kept in memory before the cache starts over */

/* XEP-0441 §2.1 default archiving behaviour. */
typedef enum { MAM_POLICY_ALWAYS = 0, MAM_POLICY_NEVER, MAM_POLICY_ROSTER } mam_policy_t;

/* Module data (tern_get_data). */
typedef struct mam_state {
    tern_store_t *archive;       /* TERN_STORE_ARCHIVE: one list per user */
    tern_store_t *prefs;         /* TERN_STORE_KV: the user's XEP-0441 preferences */
    tern_table_t *prefs_cache;   /* user -> mam_prefs_t: the stored preferences read so far */
    unsigned default_page;       /* items per page when the query names no <max/> */
    unsigned max_page;           /* the most items per page, whatever <max/> says */
    long max_count;              /* result sets are counted this far (query.c) */
    mam_policy_t default_policy; /* for users who never set preferences */
    int64_t expire_after_us;     /* 0: keep forever */
    long long expire_interval;   /* ms between expiry runs, as the timer runs */
    tern_timer_t *expire_timer;  /* NULL when nothing expires */
    long max_items;              /* per user; 0: no limit (quota.c) */
    tern_table_t *quota_counts;  /* user -> messages archived since counted, + 1 */
    tern_timer_t *expiring;      /* while a round of expiry goes on, batch by batch */
    int64_t expire_before_us;    /* that round's cut-off */
    long expired;                /* items that round deleted so far */
    unsigned long long sent;     /* counter for ids of result messages */
} mam_state_t;

/* Expiry deletes at most this many items per turn of the loop, and a
 * result set is counted no further than MAM_COUNT_MAX items (query.c). */
#define MAM_EXPIRE_BATCH 500
#define MAM_EXPIRE_PAUSE 5 /* ms between two batches */
#define MAM_COUNT_MAX    10000

/* archive.c */
int mam_on_outgoing(tern_module_ctx_t *m, tern_event_t *ev);
int mam_on_incoming(tern_module_ctx_t *m, tern_event_t *ev);
/* A fresh unguessable id (16 random bytes, base64url: 22 characters). */
int mam_new_id(char out[23]);

/* query.c */
int mam_on_query(tern_module_ctx_t *m, tern_event_t *ev);
int mam_on_form(tern_module_ctx_t *m, tern_event_t *ev);
int mam_on_metadata(tern_module_ctx_t *m, tern_event_t *ev);
int mam_on_foreign(tern_module_ctx_t *m, tern_event_t *ev);
/* The same three requests sent to the host's domain by one of its accounts. */
int mam_on_host_query(tern_module_ctx_t *m, tern_event_t *ev);
int mam_on_host_form(tern_module_ctx_t *m, tern_event_t *ev);
int mam_on_host_metadata(tern_module_ctx_t *m, tern_event_t *ev);

/* prefs.c */
int mam_on_prefs_get(tern_module_ctx_t *m, tern_event_t *ev);
int mam_on_prefs_set(tern_module_ctx_t *m, tern_event_t *ev);
/* Whether `user` archives messages with `peer` (the 'to' of an outgoing
 * message, the 'from' of an incoming one).  XEP-0441 §2.3. */
int mam_prefs_allow(tern_module_ctx_t *m, const char *user, const tern_jid_t *peer);
/* "always" / "never" / "roster" into *p; 0, or -1 when `s` is none of them. */
int mam_policy_parse(const char *s, mam_policy_t *p);
/* Forget what was read of `user`'s preferences; NULL: of everybody. */
void mam_prefs_forget(tern_module_ctx_t *m, const char *user);

/* quota.c */
/* A message was archived for `user`: keep the archive within max_items
 * (counted now and then, never per message). */
void mam_quota_appended(tern_module_ctx_t *m, mam_state_t *st, const char *user);
/* Forget the counts of `user` (deleted); NULL: of everybody (unload). */
void mam_quota_forget(mam_state_t *st, const char *user);

/* query.c: XEP-0082 time */
/* XEP-0082 DateTime with microseconds, "2010-07-10T23:08:25.123456Z". */
void mam_format_time(int64_t us, char out[32]);
/* XEP-0082 DateTime (fraction and zone optional offsets) to microseconds
 * since the epoch; 0, or -1 when `s` is not one. */
int mam_parse_time(const char *s, int64_t *us);

#endif
