/*
 * module_api.h — the core side of the public module API (internal).
 */
#ifndef TERN_MODULE_API_H
#define TERN_MODULE_API_H

#include <tern/module.h>

struct host;

/* Cancel the timers and pending iqs a module owns (on unload). */
void module_api_release(tern_module_ctx_t *m);
/* An iq result/error addressed to a host: if it answers a tern_send_iq,
 * call its callback and return 1; else 0. */
int module_api_iq_reply(struct host *h, tern_xml_t *iq, const tern_jid_t *from);
/* Make a fresh unique stanza id into buf (at least 24 bytes). */
void make_id(char *buf, size_t len);
/* Each module counter (tern_counter_add) with its value, in first-use order. */
void module_counters_foreach(void (*fn)(void *ctx, const char *name, long long value), void *ctx);

#endif
