/*
 * admin.h — the server side of the admin socket (internal).
 *
 * A Unix stream socket, mode 0600, that `ternctl` talks to.  The client
 * writes one command line; the server answers zero or more lines, then a
 * final "ok" or "error: <text>", and closes.  Commands:
 *   status                       version:, uptime: (s), sessions: lines
 *   reload                       server_reload()
 *   stop                         answers, then server_stop()
 *   kick <bare-jid> <condition>  server_kick_user(), "kicked: N"
 *   deluser <bare-jid>           server_delete_user(), "deleted: JID"
 * Only a peer with our uid, or root, is served (SO_PEERCRED).
 */
#ifndef TERN_ADMIN_H
#define TERN_ADMIN_H

struct event_base;

/* Longest command line accepted, without its end-of-line. */
#define ADMIN_MAX_LINE 4096

/* Listen on `path`.  A stale socket file (nothing answers on it) is
 * replaced; a live one means "another ternd is running".  0, or -1 with
 * *error_r (static, or in a static buffer valid until the next call). */
int admin_start(struct event_base *base, const char *path, const char **error_r);
/* Close the listener and every open admin connection, remove the socket
 * file.  Safe to call when not started. */
void admin_stop(void);

#endif
