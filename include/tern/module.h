/*
 * tern/module.h — the public API of a Tern module.
 *
 * A module is a shared object exporting one descriptor, TERN_MODULE.  It
 * loads once per host that lists it; in load() it registers hooks, disco
 * features and stores through its context.  Everything it registers is
 * owned by the core and removed when it unloads, so modules need no
 * cleanup code for those.  Modules see stanzas and events, never sockets.
 *
 * Events (names are interned when hooked; no string is built per stanza):
 *   iq-get/host/NS:NAME   iq-set/bare/NS:NAME   iq-get/full/NS:NAME ...
 *       an iq get/set whose payload is <NAME xmlns='NS'/>;
 *   message/host  message/bare  message/full  (likewise presence/, iq/)
 *       any such stanza, after the iq- events above found no taker;
 *   ...DEST "self": a user's stanza to their own account (no 'to', or their
 *       bare JID); when not handled it falls back to "host" (no 'to') or
 *       "bare";
 *   pre-message/DEST, pre-presence/DEST, pre-iq/DEST
 *       outgoing filters: a stanza from an account of a local host before
 *       it is routed, fired on the sender's host whatever the destination
 *       (local, component, remote).  ev->origin is the client session that
 *       sent it, or NULL when a module routes it on the account's behalf
 *       (presence broadcasts, probe answers, notifications, errors):
 *       handlers meant for clients' stanzas check ev->origin;
 *   in-message/DEST, in-presence/DEST, in-iq/DEST   (DEST "bare" or "full")
 *       inbound filters: a stanza for an account of this host, from any
 *       origin (a local client or module, a component, a remote server),
 *       fired on the recipient's host before every other event for it
 *       (iq-TYPE/..., KIND/DEST, message/offline) and before delivery.
 *       Not fired for DEST "self": a client's stanzas to its own account;
 *   message/offline   a message for an account with no available resource;
 *   session/bound  session/closed  session/idle  user/created  user/deleted
 *   session/detached  the session lost its stream but stays bound, with its
 *       presence and module data; what is sent to it waits (a bounded
 *       queue) until a new stream takes it over, or it ends (session/closed);
 *   session/resumed  a new stream took the detached session over; what
 *       waited has been sent to it;
 *   server/started  server/stopping
 *   stream-features/unauth  stream-features/auth
 *       ev->stanza is the <stream:features/> being built (before and after
 *       SASL): handlers add children.  ev->origin is the stream; for /auth
 *       ev->from is the account's bare JID and ev->user its localpart.
 *       There is no feature list after bind (no stream restart follows
 *       it), so /auth is where XEP-0198's <sm/> and XEP-0352's <csi/> go;
 *   stream/NS:NAME
 *       a top-level element <NAME xmlns='NS'/> that is no stanza, on a
 *       client stream that has logged in, before or after resource binding
 *       (XEP-0198 <enable/>, <r/>, <a/>, <resume/>; XEP-0352 <active/>,
 *       <inactive/>); never fired for jabber:client or the stream
 *       namespace, nor before SASL.  ev->stanza is the element;
 *       ev->origin the stream (a tern_session_t with no JID before bind);
 *       ev->session the same once bound, NULL before; ev->from the full
 *       JID once bound, else the account's bare JID; ev->user the
 *       localpart; ev->to the host.  Answer on the stream with
 *       tern_stream_send(ev->origin, ...).  When no handler returns
 *       TERN_HANDLED the stream ends as before: <unsupported-stanza-type/>
 *       after bind (RFC 6120 §4.9.3.22), <not-authorized/> before;
 *   session/in
 *       every stanza a bound client sends, first of all (before its 'from'
 *       is checked and stamped): ev->stanza, ev->session == ev->origin,
 *       ev->from.  Count it and return TERN_PASS (XEP-0198 counts handled
 *       stanzas); TERN_HANDLED drops it;
 *   session/out
 *       every stanza about to be written to a bound client (routed to it,
 *       sent by a module with tern_session_send, or the core's own
 *       answers), once per session: ev->stanza (borrowed and possibly
 *       shared with other sessions: never change it; tern_xml_ref to keep
 *       it), ev->session, ev->to its full JID.  TERN_PASS lets it through
 *       (count it, XEP-0198); TERN_HANDLED takes it off the wire: the
 *       module may drop it, or keep it (XEP-0352) and hand it on later
 *       with tern_session_release, in the order it wants.  Elements sent
 *       with tern_stream_send do not pass here.  Nobody hooking it costs
 *       one test per stanza;
 *   iq-get/unauth/NS:NAME  iq-set/unauth/NS:NAME
 *       an iq from a client that has not logged in yet (in-band
 *       registration); ev->from is NULL, answer with tern_session_send on
 *       ev->origin, which has no JID.
 * Handlers run highest priority first; the first that returns
 * TERN_HANDLED stops the chain.  Unhandled stanzas get the RFC 6120 §10 /
 * RFC 6121 §8 default (delivery or an error bounce).
 */
#ifndef TERN_MODULE_H
#define TERN_MODULE_H

#include <stddef.h>
#include <stdint.h>
#include <tern/defs.h>
#include <tern/jid.h>
#include <tern/options.h>
#include <tern/store.h>
#include <tern/xml.h>

typedef struct tern_module_ctx tern_module_ctx_t; /* one module loaded on one host */
typedef struct tern_session tern_session_t;       /* a client's bound session */

typedef struct tern_event {
    tern_xml_t *stanza;      /* the stanza, borrowed (NULL for non-stanza events) */
    const tern_jid_t *from;  /* prepared 'from' (the sender's full JID for local users) */
    const tern_jid_t *to;    /* prepared 'to' (the host's JID when absent) */
    tern_session_t *origin;  /* local session it came from, or NULL */
    tern_session_t *session; /* the session a session/ event is about, or a full-JID target */
    const char *user;        /* localpart for user/ events */
} tern_event_t;

enum { TERN_PASS = 0, TERN_HANDLED = 1 };
typedef int (*tern_handler_fn)(tern_module_ctx_t *m, tern_event_t *ev);

typedef struct tern_module {
    int abi;                              /* TERN_ABI */
    const char *name;                     /* "ping" for mod_ping.so */
    const char *description;              /* one line for the admin guide */
    const char *const *depends;           /* module names that must load on the same host */
    const tern_option_t *options;         /* terminated by .name == NULL; may be NULL */
    int (*load)(tern_module_ctx_t *m);    /* 0, or -1 to refuse (tern_log says why) */
    void (*unload)(tern_module_ctx_t *m); /* optional: free what tern_set_data holds */
    /* Optional.  A reload changed this module's options on this host: they
     * are already in place (tern_opt_* return the new values); apply what
     * load() took from them.  0, or -1 to refuse the new options (tern_log
     * says why): the whole reload is then refused and the old values come
     * back, with reconfigure called again for them.  Hooks, data, session
     * slots, timers and stores stay as they are.  Without it, a module sees
     * the new values the next time it reads them through tern_opt_*. */
    int (*reconfigure)(tern_module_ctx_t *m);
} tern_module_t;

#define TERN_MODULE TERN_API const tern_module_t tern_module

/* Registration. */
/* Hook fn on `event` (one of the names listed at the top of this file).
 * 0, or -1 for an unknown or misspelt name ("mesage/bare"): the core logs
 * an error naming the module, the host and the event, and load() should
 * fail with it. */
TERN_API int tern_hook(tern_module_ctx_t *m, const char *event, tern_handler_fn fn, int priority);
TERN_API void tern_add_feature(tern_module_ctx_t *m, const char *var);
/* One more identity of the host in disco#info, after its server/im. */
TERN_API void tern_add_identity(tern_module_ctx_t *m, const char *category, const char *type,
                                const char *name);
/* XEP-0128: a data form (<x xmlns='jabber:x:data' type='result'>) to add to
 * the host's disco#info; copied. */
TERN_API void tern_add_disco_extension(tern_module_ctx_t *m, const tern_xml_t *form);
/* Remove the XEP-0128 forms this module added (to add new ones on reconfigure). */
TERN_API void tern_remove_disco_extensions(tern_module_ctx_t *m);
/* Fill a disco#info <query/> with the host's identities, features and extensions. */
TERN_API void tern_disco_fill(tern_module_ctx_t *m, tern_xml_t *query);
/* What every account of the host advertises at its bare JID (XEP-0030 §3.1:
 * the server answers for accounts): MAM, PEP, bookmarks compat... */
TERN_API void tern_add_account_feature(tern_module_ctx_t *m, const char *var);
TERN_API void tern_add_account_identity(tern_module_ctx_t *m, const char *category,
                                        const char *type, const char *name);
/* Fill a disco#info <query/> for an account: identity account/registered,
 * then what modules added with tern_add_account_*. */
TERN_API void tern_disco_fill_account(tern_module_ctx_t *m, tern_xml_t *query);

/* Context. */
TERN_API const char *tern_host(tern_module_ctx_t *m);
TERN_API void *tern_get_data(tern_module_ctx_t *m);
TERN_API void tern_set_data(tern_module_ctx_t *m, void *data);

/* Options (validated before load(); the name must be in the table). */
TERN_API long long tern_opt_int(tern_module_ctx_t *m,
                                const char *name); /* also BOOL, DURATION (ms), SIZE */
TERN_API const char *tern_opt_str(tern_module_ctx_t *m, const char *name);
TERN_API const char *const *tern_opt_list(tern_module_ctx_t *m, const char *name);

/* Sending.  The caller keeps its reference: the core takes its own.
 * Routing freezes the stanza (see <tern/xml.h>): after tern_route,
 * tern_route_fanout or tern_session_send neither the caller nor any handler
 * may change it; copy it (tern_xml_copy) to send a changed version.  The
 * same holds for ev->stanza in every handler: it is already routed.  A
 * stanza without 'from' is sent from the host. */
TERN_API void tern_route(tern_module_ctx_t *m, tern_xml_t *stanza);
/* A handler that must change the stanza of its event (add a <stanza-id/>
 * before delivery, drop an element the recipient must not see) asks for
 * it here and changes what it gets, never ev->stanza itself.  Before the
 * stanza is frozen (a client's stanza in the sender's pre- filters) that
 * is ev->stanza; after, a copy that replaces ev->stanza for the rest of
 * the handlers and the delivery (the core owns it; it is frozen when it is
 * delivered).  Cheap when called again in the same chain.  NULL on
 * allocation failure or outside routing. */
TERN_API tern_xml_t *tern_event_edit(tern_event_t *ev);
/* Route `stanza` to each of the `n` JIDs in `to` (NULL entries skipped),
 * as n calls of tern_route with 'to' set would (filters, events, blocking
 * and delivery rules run per recipient), but the tree is not copied and
 * is serialized once: each recipient's own root (name, attributes, 'to')
 * shares the stanza's children and writes only its start tag before the
 * shared bytes of the rest.  Any 'to' on `stanza` is ignored; `stanza` is not changed (it is
 * frozen if it had a 'from' and no 'to').  For presence broadcasts and
 * anything else that goes to many JIDs with only 'to' differing. */
TERN_API void tern_route_fanout(tern_module_ctx_t *m, tern_xml_t *stanza, const char *const *to,
                                size_t n);
/* A new <iq type='result'/> answering ev's iq (to/from swapped, same id). */
TERN_API tern_xml_t *tern_iq_result(const tern_event_t *ev);
/* Send `result` (from tern_iq_result, filled in) as the answer to ev's iq;
 * when it is NULL or not `complete` (building it ran out of memory), the
 * answer is a resource-constraint error instead.  Takes the caller's
 * reference.  Returns TERN_HANDLED, for handlers to return. */
TERN_API int tern_iq_answer(tern_module_ctx_t *m, const tern_event_t *ev, tern_xml_t *result,
                            int complete);
/* Answer ev's stanza with an error (RFC 6120 §8.3); never for type='error'.
 * type: "cancel", "modify", "auth", "wait"; condition: "service-unavailable"... */
TERN_API void tern_reply_error(tern_module_ctx_t *m, const tern_event_t *ev, const char *type,
                               const char *condition, const char *text);
/* Send an iq get/set (the core sets its id) and call cb exactly once with
 * the answer, or with NULL after timeout_ms.  Returns 0, or -1 and cb is
 * never called.  On unload, pending callbacks are dropped uncalled. */
typedef void (*tern_iq_cb)(tern_module_ctx_t *m, tern_xml_t *reply, void *arg);
TERN_API int tern_send_iq(tern_module_ctx_t *m, tern_xml_t *iq, long long timeout_ms, tern_iq_cb cb,
                          void *arg);

/* Sessions. */
TERN_API const tern_jid_t *tern_session_jid(const tern_session_t *s);
/* The bound session with this full JID on any local host, or NULL.  Do not
 * keep the pointer across events: look it up again. */
TERN_API tern_session_t *tern_session_find(tern_module_ctx_t *m, const char *full_jid);
/* A number naming `s` for the life of the process: never 0, never reused
 * (tells a session from a newer one that took over the same full JID). */
TERN_API uint64_t tern_session_serial(const tern_session_t *s);
TERN_API void tern_session_close(tern_session_t *s, const char *stream_error);
TERN_API int tern_user_exists(tern_module_ctx_t *m, const char *local);
/* 1 when `bare_jid` (prepared) is one of the server's admins (the
 * top-level `admins` of the configuration), else 0. */
TERN_API int tern_is_admin(tern_module_ctx_t *m, const char *bare_jid);
/* 1 when `domain` (prepared) is a local host (accounts and client logins,
 * not a service domain or component), else 0. */
TERN_API int tern_is_local_host(tern_module_ctx_t *m, const char *domain);
/* The bound sessions of local@host (this module's host): first, then next
 * until NULL.  Do not close sessions while walking the list. */
TERN_API tern_session_t *tern_user_first_session(tern_module_ctx_t *m, const char *local);
TERN_API tern_session_t *tern_session_next(const tern_session_t *s);
/* Whether the client sent available presence (RFC 6121 §4.2) and its priority. */
TERN_API int tern_session_available(const tern_session_t *s);
TERN_API int tern_session_priority(const tern_session_t *s);
/* The client's address ("192.0.2.1", "2001:db8::1"), for logs and limits. */
TERN_API const char *tern_session_peer_ip(const tern_session_t *s);
/* Hand a stanza to this session as it is, without routing (the
 * session/out handlers see it first).  Calls keep their order; while the
 * client's output queue is over half its cap they are held back and
 * written as it drains, so a page of archive results larger than the cap
 * still reaches a client that reads slowly. */
TERN_API void tern_session_send(tern_session_t *s, tern_xml_t *stanza);
/* Write `el` on the client's stream now, as it is, bound or not (the
 * stream of a stream/ or stream-features/ event): stream management's
 * <enabled/>, <a/>, <failed/>...  No session/out handler sees it, so it is
 * for elements that are no stanza.  The caller keeps its reference.  A
 * stream not yet bound is only valid during the event that named it. */
TERN_API void tern_stream_send(tern_session_t *s, tern_xml_t *el);
/* Hand on a stanza m's session/out handler took: the session/out handlers
 * of lower priority than m's see it, then it is written (so a module that
 * only counts, XEP-0198, hooks below one that holds, XEP-0352).  Calls
 * keep their order.  The caller keeps its reference. */
TERN_API void tern_session_release(tern_module_ctx_t *m, tern_session_t *s, tern_xml_t *stanza);
/* Stream management (XEP-0198).  With `on`, when the client's connection
 * is lost without a clean close (no </stream:stream>, no stream error
 * but connection-timeout), the session detaches instead of ending: it
 * stays bound and available with its module data, session/detached
 * fires, and what is routed to it waits in a bounded queue.  The module
 * then ends it (tern_session_close) or a new stream takes it over
 * (tern_session_resume).  Off by default. */
TERN_API void tern_session_set_resumable(tern_session_t *s, int on);
/* 1 while `s` has no stream (detached), else 0. */
TERN_API int tern_session_detached(const tern_session_t *s);
/* The client stream `stream` (ev->origin of a stream/ event after SASL,
 * before bind) takes over `s`, a session of the same account: a detached
 * one, or one still on an older stream, which then ends with <conflict/>.
 * What waited for `s` is handed to it (session/out handlers see it), then
 * session/resumed fires.  Write <resumed/> and any resent stanzas with
 * tern_stream_send(stream, ...) before calling this, so they come first.
 * 0, or -1 (nothing changed: not the same account, or `stream` is bound
 * or no client stream).  After 0, ev->session-style handles name `s`;
 * `stream` stays valid only until the event returns. */
TERN_API int tern_session_resume(tern_session_t *stream, tern_session_t *s);
/* The bounds of the queue of every detached session (defaults 256
 * stanzas, 256 KiB; 0 keeps one): past them the oldest stanzas go the
 * undelivered way (tern_session_undelivered). */
TERN_API void tern_session_queue_limits(size_t max_stanzas, size_t max_bytes);
/* A stanza `s` was sent but never took (XEP-0198: unacknowledged when
 * the session ends): a chat or normal message goes to the user's other
 * available resources of non-negative priority, else message/offline
 * (offline storage), else it bounces; a groupchat message or an iq
 * get/set bounces; anything else is dropped.  The archive (MAM) does not
 * see it again.  The caller keeps its reference.  For session/closed
 * handlers, while `s` is still bound. */
TERN_API void tern_session_undelivered(tern_session_t *s, tern_xml_t *stanza);
/* Per-module data on a session; free_fn (may be NULL) runs when the
 * session ends or the value is replaced. */
TERN_API void *tern_session_get(const tern_session_t *s, tern_module_ctx_t *m);
TERN_API void tern_session_set(tern_session_t *s, tern_module_ctx_t *m, void *data,
                               void (*free_fn)(void *));

/* Accounts on this module's host.  Passwords become SCRAM keys at once,
 * on the event loop (seconds with a high c2s.scram_iterations, during
 * which nobody is served: answering a client, use the _async forms).
 * 0, or -1 with *error_r: "invalid username", "account exists", "no such
 * account", "invalid password", "storage error". */
TERN_API int tern_account_create(tern_module_ctx_t *m, const char *local, const char *password,
                                 const char **error_r);
TERN_API int tern_account_passwd(tern_module_ctx_t *m, const char *local, const char *password,
                                 const char **error_r);
/* The same two without stalling the server: the keys (PBKDF2, up to
 * seconds of CPU) are derived on the server's worker threads.  The cheap
 * checks run at once: -1 with *error_r as above, and nothing more
 * happens.  Otherwise 0, and done(m, s, ctx, rc, error) runs later on
 * the loop, exactly once (possibly before the call returns): with the
 * outcome (rc 0, or -1 and the error), or with s == NULL when the
 * session `s` closed (or the module is being unloaded) first; then
 * nothing was changed and only ctx is to be freed.  A non-NULL
 * old_password must be the current one first (error "wrong password"). */
typedef void (*tern_account_done_t)(tern_module_ctx_t *m, tern_session_t *s, void *ctx, int rc,
                                    const char *error);
TERN_API int tern_account_create_async(tern_module_ctx_t *m, tern_session_t *s, const char *local,
                                       const char *password, tern_account_done_t done, void *ctx,
                                       const char **error_r);
TERN_API int tern_account_passwd_async(tern_module_ctx_t *m, tern_session_t *s, const char *local,
                                       const char *old_password, const char *password,
                                       tern_account_done_t done, void *ctx, const char **error_r);
/* Delete the account and all its data, close its sessions, fire user/deleted. */
/* Calls fn for every account of the host, in order; fn returns non-zero to stop. */
TERN_API int tern_account_foreach(tern_module_ctx_t *m, int (*fn)(void *ctx, const char *local),
                                  void *ctx);
TERN_API int tern_account_delete(tern_module_ctx_t *m, const char *local, const char **error_r);
/* 1 when `password` is the account's password, else 0.  One key
 * derivation on the loop, like tern_account_create. */
TERN_API int tern_account_check_password(tern_module_ctx_t *m, const char *local,
                                         const char *password);

/* Services modules offer each other on one host: a module provides a named
 * table of functions; a module that lists it in .depends gets the table. */
TERN_API int tern_provide(tern_module_ctx_t *m, const char *name, const void *api);
TERN_API const void *tern_require(tern_module_ctx_t *m, const char *name);

/* Storage of this module on this host. */
typedef enum { TERN_STORE_KV = 1, TERN_STORE_MAP = 2, TERN_STORE_ARCHIVE = 3 } tern_store_kind_t;
TERN_API tern_store_t *tern_store(tern_module_ctx_t *m, const char *name, tern_store_kind_t kind);

/* Timers: cb runs on the loop; repeat until cancelled when `repeat`. */
typedef struct tern_timer tern_timer_t;
typedef void (*tern_timer_cb)(tern_module_ctx_t *m, void *arg);
TERN_API tern_timer_t *tern_timer_add(tern_module_ctx_t *m, long long ms, int repeat,
                                      tern_timer_cb cb, void *arg);
TERN_API void tern_timer_cancel(tern_timer_t **t);

/* Logging and server facts. */
typedef enum { TERN_LOG_ERROR = 0, TERN_LOG_WARN, TERN_LOG_INFO, TERN_LOG_DEBUG } tern_log_level_t;
TERN_API void tern_log(tern_module_ctx_t *m, tern_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
TERN_API const char *tern_server_version(void);
TERN_API int64_t tern_server_started_us(void); /* wall clock, microseconds */
TERN_API int64_t tern_now_us(void);            /* wall clock, microseconds */

/* Process-wide named counters, summed over hosts and shown by `ternctl
 * status` as "NAME: N" (in the order first used).  `name` is copied on
 * first use; at most 64 names, later ones are ignored. */
TERN_API void tern_counter_add(tern_module_ctx_t *m, const char *name, long long delta);

#endif
