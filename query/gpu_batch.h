/* gpu_batch.h: exact KNN searches of FLAT indexes served from the GPU in dynamic batches
 * (query/gpu_batch.c), for FT.SEARCH (cmd_ft.c).
 *
 * A command that may be served this way offers its search with gpu_batch_submit(). When
 * the GPU is enabled, the field's FLAT index has (or can get) a healthy device mirror
 * (index/index.h), k is at most VEC_GPU_MAX_K and the index holds at least
 * `gpu-min-vectors` vectors, the client is parked and the query joins the pending batch of
 * that index; otherwise the caller runs the search on the CPU at once, as it always did.
 * A batch runs when `gpu-batch-max` queries wait, or `gpu-batch-window-us` after its first
 * query (0: right after the current loop pass), and never while the index's previous batch
 * still runs: queries arriving meanwhile make the next batch bigger. It runs on a worker
 * thread (server_spawn): one device search of the whole batch with the largest k among
 * its queries, each query's hits then cut to its own k (the order is total, by distance
 * then id, so the cut is exactly the top k). On a device error the worker answers every
 * query of the batch with vec_knn on the CPU instead (same answers), and the index's
 * mirror stays failed, so later queries go to the CPU directly.
 *
 * PIPELINES. While a client waits on its query, the commands it sent after it are offered
 * to the batcher before they run (wire.h, PARKED CLIENTS): as long as the submitter's
 * next function says a command will be submitted too, it runs at once and its query joins
 * the pending batch, up to `gpu-batch-max` queries a client. Replies go out in the order
 * the commands came, whichever lane answers first; the first command not taken runs only
 * once every earlier reply is out, as it would have without the batcher.
 *
 * THREADS. Everything here runs on the loop thread except the batch's device search. The
 * loop never waits on the device: results come back through server_post().
 *
 * LIFETIME. While queries of an index wait or run, the batcher holds the ft_index (its
 * jobs count), so a drop or FLUSHDB frees it only afterwards. */
#ifndef QUIVER_GPU_BATCH_H
#define QUIVER_GPU_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "index/index.h"
#include "query/ft.h"
#include "wire/wire.h"

/* The answer to a submitted query, on the loop thread, exactly once: c is the client to
 * reply to (a scratch client whose output the batcher hands over before resuming the real
 * one), or NULL when the client left meanwhile (then only free arg). hits[0..n) are
 * nearest first; rc != 0 (an ERR_*) when neither the device nor the CPU could answer. */
typedef void (*gpu_batch_done_fn)(void *arg, client *c, const vec_hit *hits, size_t n, int rc);

/* Whether c's command (c->argc, c->argv), not yet dispatched, would be submitted here if
 * it were: it is then dispatched at once, while c waits. Must not reply or change
 * anything. */
typedef int (*gpu_batch_next_fn)(client *c);

/* 1 when searches may go to the GPU at all (the probe enabled it): a caller then keeps
 * what a parked search needs beyond its command. */
int gpu_batch_on(void);

/* Whether a KNN for k on vx would be taken now (the conditions above); may attach vx's
 * device mirror. */
int gpu_batch_takes(vec_index *vx, uint32_t k);

/* Offers the KNN of q (vx's dim floats, copied) for k on vx, the vector index of ix, from
 * c's running command; next judges c's pipelined commands (PIPELINES). 0: c is parked (or
 * still waits on its earlier queries) and done will be called; -1: not taken (see above),
 * nothing changed. */
int gpu_batch_submit(client *c, ft_index *ix, vec_index *vx, const float *q, uint32_t k,
                     gpu_batch_next_fn next, gpu_batch_done_fn done, void *arg);

/* INFO gpu's serving fields (appended to b): gpu_indexes (healthy device mirrors),
 * gpu_memory_used (their device bytes), gpu_batches (runs), gpu_queries (queries in them),
 * gpu_mean_batch_size, gpu_kernel_ms and gpu_select_ms (the device's time, summed from
 * gpu_index_last_times), gpu_fallbacks (batched queries the CPU answered after a device
 * error), gpu_errors (runs whose device search failed), gpu_last_error (its reason),
 * gpu_pipelined_queries (queries that joined while their client waited on earlier ones). */
void gpu_batch_info(buf *b);

#endif
