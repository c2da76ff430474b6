/*
 * sessions.h — client sessions, their transport link, and the tables that
 * find bound ones by full or bare JID in O(1) (internal).
 *
 * A session is its own object, made here (sessions_new) and freed here
 * (sessions_end).  It is what a client stream becomes after resource
 * binding, and it may outlive that stream: the stream gives it a link
 * (deliver, send, close callbacks and the stream's own pointer); the link
 * can be taken away (sessions_detach) and given by a new stream
 * (sessions_attach).  While detached, the session keeps its JID, presence,
 * place in the tables and module slots, and what is sent to it waits in a
 * small queue inside the session, flushed in order on attach.
 *
 * Ownership: an attached session belongs to its stream, which ends it
 * (sessions_end) when it goes; a detached session belongs to the table,
 * and ends on a conflicting bind, a close (admin kick, account deletion),
 * or whatever later detached it (stream management's timeout).
 *
 * This layer knows nothing of sockets; it calls up only through the link.
 */
#ifndef TERN_SESSIONS_H
#define TERN_SESSIONS_H

#include <tern/module.h>

#include "config/config.h"

struct host;
typedef struct user_sessions user_sessions_t;
typedef struct session_queue session_queue_t;

/* What a stream gives its session.  deliver and close are required; send
 * (module output, paced against the client's output; NULL = deliver) is
 * optional; conn is the stream's own object, for its callbacks.  hold and
 * release (optional, both or neither) stop and resume the handling of the
 * client's input: after hold, no further stanza of the session is handled
 * (those already read included) until release; a transport that cannot
 * hold leaves them NULL (see sessions_hold_input). */
typedef struct session_link {
    void (*deliver)(tern_session_t *s, tern_xml_t *stanza);
    void (*send)(tern_session_t *s, tern_xml_t *stanza);
    void (*close)(tern_session_t *s, const char *condition);
    /* Write an element on the client's stream as it is, without the
     * session/out hooks, bound or not (tern_stream_send); NULL = deliver. */
    void (*write)(tern_session_t *s, tern_xml_t *el);
    void (*hold)(tern_session_t *s);
    void (*release)(tern_session_t *s);
    void *conn;
} session_link_t;

struct tern_session {
    tern_jid_t *jid; /* full JID, NULL until bound */
    uint64_t serial; /* set at bind, never reused */
    struct host *host;
    user_sessions_t *user;
    tern_session_t *next_of_user;
    int available;  /* sent initial presence and not unavailable since */
    int priority;   /* RFC 6121 §4.7.2.3, from the last broadcast presence */
    int interested; /* requested the roster (RFC 6121 §2.1.6) */
    int detached;   /* no stream now: stanzas wait in `queue` */
    /* A module asked (tern_session_set_resumable, XEP-0198): when the
     * stream is lost without a clean close, the session detaches instead
     * of ending. */
    int resumable;
    struct session_slot *slots;                  /* per-module data */
    tern_session_t *slotted_prev, *slotted_next; /* list of sessions with slots */
    session_link_t link;                         /* all NULL while detached */
    session_queue_t *queue; /* allocated at the first stanza queued while detached */
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
/* Free the tables and the detached sessions still in them (at shutdown:
 * no events, queued stanzas dropped).  Attached sessions are their
 * streams' to end. */
void sessions_free_all(void);

/* A new, unbound session of `host` (may be NULL until the stream knows
 * it) on `link` (copied), from the address `peer_ip` (may be NULL).
 * NULL when out of memory. */
tern_session_t *sessions_new(struct host *host, const session_link_t *link, const char *peer_ip);

/* The final end of *sp, and *sp = NULL: if bound, fire session/closed on
 * its host; what was queued while detached goes the way of an undelivered
 * stanza (below), while the session is still bound; then it is unbound,
 * its module slots are freed, then the session.  Nothing for NULL. */
void sessions_end(tern_session_t **sp);

/* Bind `s` (its host set) as local@host/resource.
 * resource NULL = generate one.  On a conflict with an attached session,
 * policy kick-old closes the older session with <conflict/>; refuse returns
 * -1 with *error_r "conflict".  A detached session with that full JID is
 * ended (sessions_end) under either policy: its client is gone, and this
 * is most likely the same client coming back without resuming.
 * A user who already has `max_per_user` sessions (0 = no limit; detached
 * ones count) gets -1 with "resource-constraint" (RFC 6120 §7.6.2.1),
 * unless the new session replaces one of them.
 * Other errors: "bad-request" (bad resource), "internal-server-error". */
int sessions_bind(tern_session_t *s, const char *local, const char *resource, cfg_conflict_t policy,
                  size_t max_per_user, const char **error_r);
/* Remove from the tables and free s->jid and the module slots; the object
 * stays (sessions_end frees it). */
void sessions_unbind(tern_session_t *s);

/* Take the link away from a bound, attached session: the stream is gone,
 * the session stays bound, available or not as it was, with its slots.
 * Fires session/detached on its host.  0, or -1 (not bound, or already
 * detached).
 *
 * Queue while detached: at most sessions_queue_max stanzas and
 * sessions_queue_max_bytes bytes (about their serialized size).  Over
 * either, the oldest stanzas leave the queue, one by one, until the new
 * one fits (a stanza larger than the byte cap alone does not wait at
 * all): what leaves goes the undelivered way, as at sessions_end:
 *   message normal/chat -> first the user's other attached, available
 *     sessions of non-negative priority (RFC 6121 §8.5.3.2.1), all of
 *     them; without one, message/offline on the session's host (as for
 *     an account with no available resource), else bounced
 *     service-unavailable;
 *   message groupchat, iq get/set -> bounced service-unavailable;
 *   everything else (presence, headline, errors, iq results) -> dropped. */
int sessions_detach(tern_session_t *s);
/* Give a detached session the new `link` (copied): queued stanzas are sent
 * in their order through it (its send, else deliver), then
 * session/resumed fires on the host.  0, or -1 (not detached). */
int sessions_attach(tern_session_t *s, const session_link_t *link);
/* What `s` could not take goes the undelivered way above (stream
 * management's unacknowledged stanzas when the session ends); borrowed. */
void sessions_undelivered(tern_session_t *s, tern_xml_t *stanza);
/* Queue caps (defaults 256 stanzas, 256 KiB); 0 keeps the current one. */
void sessions_set_queue_limits(size_t max_stanzas, size_t max_bytes);
/* How many stanzas / bytes wait in s's queue (0 when attached). */
size_t sessions_queued(const tern_session_t *s, size_t *bytes_r);

/* Hand a stanza to the session (the caller keeps its reference): through
 * the link, or into the queue while detached.  deliver is for routed
 * stanzas, send for module output (paced); close ends the stream with a
 * stream error (RFC 6120 §4.9.3), or a detached session at once. */
void sessions_deliver(tern_session_t *s, tern_xml_t *stanza);
void sessions_send(tern_session_t *s, tern_xml_t *stanza);
void sessions_close(tern_session_t *s, const char *condition);

/* Stop handling the client's input until sessions_release_input (a read
 * the session waits for, in core/store_jobs.c): through the link's hold.
 * Holds are not counted: one release ends them.  A detached session has
 * no input to hold; a link without hold is not held (its stanzas may then
 * overtake a pending answer).  1 when the input is now held, else 0. */
int sessions_hold_input(tern_session_t *s);
/* Resume what sessions_hold_input stopped; nothing when not attached. */
void sessions_release_input(tern_session_t *s);

/* Free every module slot of s (when the session ends). */
void sessions_free_slots(tern_session_t *s);
/* Free the slots `owner` set on any session (module unload). */
void sessions_drop_owner(const tern_module_ctx_t *owner);
void *sessions_slot_get(const tern_session_t *s, const tern_module_ctx_t *owner);
int sessions_slot_set(tern_session_t *s, const tern_module_ctx_t *owner, void *data,
                      void (*free_fn)(void *));
/* Take owner's slot off `s` without running its free function; returns
 * the data it held (NULL when there was none). */
void *sessions_slot_take(tern_session_t *s, const tern_module_ctx_t *owner);

/* Lookups of the local tables (route/directory.h answers "where" in a way
 * that can later include other nodes). */
tern_session_t *sessions_find_full(const char *full);
user_sessions_t *sessions_find_bare(const char *bare);
/* Bound sessions, detached ones included; and the detached ones alone. */
size_t sessions_count(void);
size_t sessions_count_detached(void);

#endif
