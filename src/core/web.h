/*
 * web.h — the core's HTTP paths (WebSocket, XEP-0156 host-meta) and the
 * module API for paths (internal).
 */
#ifndef TERN_WEB_H
#define TERN_WEB_H

#include <tern/http.h>

#include "config/config.h"

/* The http: section's limits to the HTTP server (start-up and reload). */
void web_apply_settings(const tern_config_t *cfg);
/* Register the core's paths.  0 or -1. */
int web_start(void);
/* Close the HTTP connections (shutdown begins). */
void web_close_connections(void);
/* Close the HTTP connections and drop every path (shutdown). */
void web_stop(void);
/* A module goes: its paths go with it. */
void web_module_unload(tern_module_ctx_t *m);

#endif
