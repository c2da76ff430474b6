/*
 * hooks.h — named events with prioritized handlers (internal).
 *
 * Event names are stored once, when a handler is hooked.  A stanza event
 * is fired by its pieces ("iq-get", "host", ns, name): the table hashes and
 * compares the pieces against the stored names without joining them, so
 * no string is built per stanza.
 */
#ifndef TERN_HOOKS_H
#define TERN_HOOKS_H

#include <tern/module.h>

typedef struct hooks hooks_t;
typedef struct hooks_event hooks_event_t; /* one named event of a table */

hooks_t *hooks_new(void);
void hooks_free(hooks_t **h);

/* Whether `event` is a name the core fires (the list in tern/module.h):
 * KIND/DEST, pre-KIND/DEST, in-KIND/bare|full, iq-get|iq-set/DEST/NS:NAME,
 * iq-get|iq-set/unauth/NS:NAME, stream/NS:NAME and the fixed non-stanza
 * events.  KIND is
 * message, presence or iq; DEST host, bare, full or self.  1 or 0. */
int hooks_event_valid(const char *event);

/* Handlers run highest priority first; equal priorities in hook order.  0 / -1. */
int hooks_add(hooks_t *h, const char *event, tern_handler_fn fn, int priority,
              tern_module_ctx_t *owner);
/* Drop every handler `owner` registered. */
void hooks_remove_owner(hooks_t *h, tern_module_ctx_t *owner);

/* Fire the event whose name is the concatenation of parts[0..n) with
 * separators seps[0..n-1) between them (e.g. parts {"iq-get","host",ns,name},
 * seps "//:").  Returns TERN_HANDLED when a handler took it, else TERN_PASS. */
int hooks_fire_parts(hooks_t *h, const char *const *parts, int n, const char *seps,
                     tern_event_t *ev);
int hooks_fire(hooks_t *h, const char *event, tern_event_t *ev);
/* Whether any handler is hooked on `event`. */
int hooks_has(hooks_t *h, const char *event);

/* For events fired per stanza (session/in, session/out): a handle on the
 * event `name` of h, made without handlers if nobody hooked it yet, valid
 * until hooks_free (handlers hooked or removed later are seen through
 * it).  NULL when out of memory. */
hooks_event_t *hooks_event(hooks_t *h, const char *name);
/* Whether e (may be NULL) has handlers: one test, nothing hashed. */
int hooks_event_hooked(const hooks_event_t *e);
/* Run e's handlers like hooks_fire; with none (or e NULL) it returns
 * TERN_PASS after one test, without hashing anything. */
int hooks_event_fire(const hooks_event_t *e, tern_event_t *ev);
/* The same for an event named `a`/`b` that a caller fires for every
 * stanza (the router: pre-message/bare, in-message/bare, message/bare
 * ...): `slot` (below HOOKS_SLOTS) is the caller's fixed number for that
 * pair, always the same pair.  The first fire interns the name and keeps
 * its handle in the slot; later ones cost one test when nothing is
 * hooked.  Returns as hooks_fire_parts. */
#define HOOKS_SLOTS 64
int hooks_fire_slot(hooks_t *h, unsigned slot, const char *a, const char *b, tern_event_t *ev);
/* Run the handlers of `name` that come after the first one `owner`
 * hooked (all of them when it hooked none): a module that held an event
 * back hands it on to the handlers below its own. */
int hooks_fire_after(hooks_t *h, const char *name, const tern_module_ctx_t *owner,
                     tern_event_t *ev);

#endif
