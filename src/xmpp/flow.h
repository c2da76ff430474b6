/*
 * flow.h — output flow control between connections (internal).
 *
 * Owns the push-back from a recipient whose output queue fills up to the
 * connection whose input produced that output, the queue of stanzas held
 * back until a recipient's output drains (archive and offline pages), and
 * the time a recipient may leave its output unread before it is treated
 * as a slow reader.  conn.c calls in; nothing here touches sockets.
 */
#ifndef TERN_FLOW_H
#define TERN_FLOW_H

#include <stddef.h>
#include <tern/xml.h>

typedef struct conn conn_t;
typedef struct conn_flow conn_flow_t;

/* Output was queued on `dst` while the input of `src` (NULL when no input
 * is being handled) was being processed.  When dst's queue passes the soft
 * mark, src stops being read until dst drains below the low mark, and a
 * stall timer starts on dst.  0, or -1 when dst must be dropped as a slow
 * reader (out of memory). */
int flow_after_output(conn_t *dst, conn_t *src);

/* Bytes left `dst`'s queue for the socket: feed held stanzas while it is
 * below the low mark, and let its waiting senders read again. */
void flow_drained(conn_t *dst);

/* Queue `node` (borrowed; a reference is kept) behind any stanza held for
 * `dst`, and write it now only when nothing is held and the queue is under
 * the soft mark; `src` (or NULL) is paused like a sender when dst is over
 * the soft mark.  0, or -1 when it cannot be kept (dst is then dropped). */
int flow_send_paced(conn_t *dst, tern_xml_t *node, conn_t *src);

/* Whether `c` may read now as far as flow control goes. */
int flow_may_read(const conn_t *c);

/* `c` is closing: its waiting senders read again, held stanzas are
 * dropped, and it stops waiting on anyone. */
void flow_forget(conn_t *c);

/* Free what flow control holds for `c` (after flow_forget). */
void flow_free(conn_t *c);

/* How long a recipient may leave its queue over the soft mark without the
 * socket taking a byte before it is closed as a slow reader; 0 = never.
 * One value for the whole process (limits.slow_reader_timeout), set by the
 * core at start-up and on reload; it holds at once for every open
 * connection (a stall already being timed is checked against the new
 * value when its timer fires). */
void flow_set_stall_ms(long long ms);

#endif
