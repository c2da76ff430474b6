/*
 * selfping.c — XEP-0410 MUC self-ping: a client pings its own occupant
 * JID (room@service/nick) from the full JID that joined, and the room
 * answers for it instead of forwarding the ping (§3.2, advertised as
 * muc#self-ping-optimization in the room's disco#info): a result while
 * that session is joined under that nick, else not-acceptable, which tells
 * the client to join again (after a restart of the service, a kick, a
 * lost presence).  Pings to another occupant are not ours to answer.
 */
#include <string.h>

#include "muc.h"

int muc_on_self_ping(tern_module_ctx_t *m, tern_event_t *ev)
{
    muc_t *mu = muc_get(m);
    muc_room_t *r = room_find(mu, ev->to->local);
    if (!r) { /* §3.2: no such room (e.g. gone after a restart) */
        tern_reply_error(m, ev, "cancel", "not-acceptable", "You are not in this room");
        return TERN_HANDLED;
    }
    muc_occ_t *self = occ_by_full(r, ev->from->full);
    muc_occ_t *target = occ_by_nick(r, ev->to->resource);
    if (self && target == self)
        return tern_iq_answer(m, ev, tern_iq_result(ev), 1);
    if (self && target) /* a ping to another occupant: not a self-ping */
        return TERN_PASS;
    tern_reply_error(m, ev, "cancel", "not-acceptable",
                     self ? "That nickname is not yours" : "You are not in this room");
    return TERN_HANDLED;
}
