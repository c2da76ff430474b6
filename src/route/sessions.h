/*
 * sessions.h — bound client sessions, found by full or bare JID in O(1)
 * (internal).
 *
 * A session is what a c2s stream becomes after resource binding.  The
 * stream layer gives it two callbacks: deliver a stanza, and close with a
 * stream error.  The table knows nothing of sockets.
 */
#ifndef TERN_SESSIONS_H
#define TERN_SESSIONS_H

#include <tern/module.h>

#include "config/config.h"

struct host;
typedef struct user_sessions user_sessions_t;

struct tern_session {
    tern_jid_t *jid; /* full JID */
    uint64_t serial; /* set at bind, never reused */
    struct host *host;
    user_sessions_t *user;
    tern_session_t *next_of_user;
    int available;              /* sent initial presence and not unavailable since */
    int priority;               /* RFC 6121 §4.7.2.3, from the last broadcast presence */
    int interested;             /* requested the roster (RFC 6121 §2.1.6) */
    struct session_slot *slots; /* per-module data */
    tern_session_t *slotted_prev, *slotted_next; /* list of sessions with slots */
    void (*deliver)(tern_session_t *s, tern_xml_t *stanza);
    /* What modules send themselves (replies, archive pages, offline
     * messages): paced against the client's output; NULL = deliver. */
    void (*send)(tern_session_t *s, tern_xml_t *stanza);
    void (*close)(tern_session_t *s, const char *condition);
    /* Write an element on the client's stream as it is, without the
     * session/out hooks, bound or not (tern_stream_send); NULL = deliver. */
    void (*write)(tern_session_t *s, tern_xml_t *el);
    void *conn; /* owner's connection */
    char peer_ip[48];
};

struct user_sessions {
    char *bare;
    tern_session_t *first;
    size_t count;
    long long rate_tokens; /* stanza rate limit (stream/limits.c), in 1/1000 */
    long long rate_at_ms;  /* when they were counted; 0 = not yet */
};

int sessions_init(void);
void sessions_free_all(void);

/* Bind `s` (deliver/close/conn/host set by the caller) as local@host/resource.
 * resource NULL = generate one.  On a conflict, policy kick-old closes the
 * older session with <conflict/>; refuse returns -1 with *error_r "conflict".
 * A user who already has `max_per_user` sessions (0 = no limit) gets -1 with
 * "resource-constraint" (RFC 6120 §7.6.2.1), unless the new session replaces
 * one of them (kick-old on the same resource).
 * Other errors: "bad-request" (bad resource), "internal-server-error". */
int sessions_bind(tern_session_t *s, const char *local, const char *resource, cfg_conflict_t policy,
                  size_t max_per_user, const char **error_r);
/* Remove from the tables and free s->jid (the caller frees s). */
void sessions_unbind(tern_session_t *s);

/* Free every module slot of s (when the session ends). */
void sessions_free_slots(tern_session_t *s);
/* Free the slots `owner` set on any session (module unload). */
void sessions_drop_owner(const tern_module_ctx_t *owner);
void *sessions_slot_get(const tern_session_t *s, const tern_module_ctx_t *owner);
int sessions_slot_set(tern_session_t *s, const tern_module_ctx_t *owner, void *data,
                      void (*free_fn)(void *));

tern_session_t *sessions_find_full(const char *full);
user_sessions_t *sessions_find_bare(const char *bare);
size_t sessions_count(void);

#endif
