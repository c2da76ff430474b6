/*
 * listener.h — listening sockets for client, direct-TLS and component
 * connections (internal).
 */
#ifndef TERN_LISTENER_H
#define TERN_LISTENER_H

#include "config/config.h"

struct event_base;

/* Open every configured listener.  0, or -1 after logging which one failed. */
int listeners_start(struct event_base *base, const tern_config_t *cfg);
void listeners_stop(void);

#endif
