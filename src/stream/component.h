/*
 * component.h — external components, XEP-0114 (internal).
 *
 * A component connects, names its domain in the stream header, proves the
 * shared secret with <handshake/> and then sends and receives stanzas for
 * that domain.  While it is away its domain bounces service-unavailable.
 */
#ifndef TERN_COMPONENT_H
#define TERN_COMPONENT_H

#include <event2/util.h>

void component_accept(evutil_socket_t fd, const char *peer);

#endif
