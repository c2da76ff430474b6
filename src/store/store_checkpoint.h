/*
 * store_checkpoint.h — WAL checkpoints off the event loop (internal to
 * the SQLite store; see store_checkpoint.c).
 */
#ifndef TERN_STORE_CHECKPOINT_H
#define TERN_STORE_CHECKPOINT_H

#include <sqlite3.h>

typedef struct checkpointer checkpointer_t;

/* Take over checkpoints of `main_conn`'s database.  NULL when it cannot
 * (in-memory database, no thread): SQLite's own checkpoints stay on. */
checkpointer_t *checkpointer_start(sqlite3 *main_conn);
/* Called by the loop before it opens a write transaction: waits while
 * the thread runs a RESTART checkpoint (short; see store_checkpoint.c). */
void checkpointer_gate(checkpointer_t *c);
/* Stop the thread (after a last checkpoint) and give checkpoints back. */
void checkpointer_stop(checkpointer_t **c, sqlite3 *main_conn);

#endif
