/* query.h: commands. The declarative command table, the dispatcher that checks arity,
 * authentication and MULTI state before calling a handler, the handlers themselves (core,
 * keyspace, strings, hashes, transactions), and what every write does after it succeeds:
 * record itself in the replication log and touch WATCHed keys.
 *
 * Threading: event-loop thread only. */
#ifndef QUIVER_QUERY_H
#define QUIVER_QUERY_H

#include "wire/wire.h"

/* Builds the lookup index of the command table, hooks expiry into the store, and builds
 * FS.KNN's vector indexes (query/fs_vec.h). */
void query_init(void);
/* Hooks a (re)opened srv.store: expiry, FS.KNN's vector indexes. */
void query_attach_store(void);
/* Executes c->argv (set by wire/). */
void query_dispatch(client *c);
/* Frees what query/ holds for a client that is going away. */
void query_release(client *c);
/* Appends the server's metrics in the Prometheus text format (query/metrics.c). */
void metrics_render(buf *out);
/* Its part that depends on INFO's text alone (every section, as INFO EVERYTHING writes it):
 * appends the metrics read from those len bytes. A pure function, for unit tests. */
void metrics_from_info(buf *out, const char *info, size_t len);

#endif
