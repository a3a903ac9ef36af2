/* repl.h: replication. A leader streams every write to read-only replicas; a replica
 * follows one leader, resuming from its backlog after a break (partial resync) or loading a
 * consistent snapshot of the whole store (full sync). Redis's protocol and names, so that
 * its tools and operators feel at home.
 *
 * THE STREAM is the store's replication log (store.h): every logged command in RESP, a
 * SELECT before a command whose database differs from the one before, MULTI and EXEC
 * around the writes of a transaction that has more than one (a replica applies those only
 * once EXEC has arrived, in one pass, so they commit together as on the leader). Its
 * offsets are the store's: the byte count of the stream since the data set began,
 * persisted with each commit (store.h REPLICATION STATE), so a restarted server keeps its
 * replication id and offset.
 * The leader keeps the last repl-backlog-size bytes in a ring (the backlog). Only committed
 * writes enter the stream: a pass's log waits in a pending buffer until the store commits
 * it, and is dropped if the pass fails (the store rewinds its offset too).
 *
 * THE HANDSHAKE (replica -> leader, over a hiredis async link on the loop's libevent; with
 * tls-replication over the link's own TLS session, the commands pipelined):
 *   AUTH [<masteruser>] <masterauth> (when masterauth is set; the user when masteruser is)
 *   REPLCONF listening-port <port>   -> +OK
 *   REPLCONF capa psync2             -> +OK
 *   PSYNC <replid> <offset + 1>      (first time: PSYNC ? -1)
 * The leader answers +CONTINUE <replid> when replid is its own (or its previous one, up to
 * the offset where it changed: failover) and its backlog holds every byte from offset + 1;
 * the backlog's bytes follow. Otherwise +FULLRESYNC <replid> <offset>, then a snapshot of
 * the store at exactly that offset (SNAPSHOT FORMAT), then the stream from offset + 1. The
 * replica then takes the socket from hiredis (the bytes hiredis read past the reply come
 * along), or keeps its TLS session, and reads frames and commands itself.
 * Replica -> leader afterwards: REPLCONF ACK <offset> every second (no reply).
 * A replica with no stream yet (offset 0) asks PSYNC ? -1, which the leader does not count
 * in sync_partial_err. With replica-protect-data, a replica holding data drops the link
 * instead of swapping in an empty snapshot (no RECORDS frame but "meta") whose replid is
 * neither of its own.
 *
 * LIVENESS. The leader logs PING (*1 $4 PING) every repl-ping-replica-period seconds: part
 * of the stream, with its offset, committed like a write. A replica drops a link that
 * brought nothing for repl-timeout; the leader drops a replica whose ACKs stopped (or
 * whose snapshot output did not move) for as long.
 *
 * FAILOVER (failover.c). The leader refuses writes (-TRYAGAIN) until the target has
 * ACKed its offset, then connects to the target as a replica with
 *   PSYNC <replid> <offset + 1> FAILOVER
 * The target, when <replid> is its own (its leader's), promotes itself: a new replid, the
 * old one kept as replid2 up to its offset; it answers +CONTINUE <new replid> as to any
 * replica of the old history, and the old leader follows it. Otherwise: -ERR PSYNC
 * FAILOVER replid must match my replid.
 *
 * SNAPSHOT FORMAT (version 1). A sequence of frames; integers little-endian:
 *   0   u8   type: 1 HEADER, 2 RECORDS, 3 FILE, 4 END (never change)
 *   1   u16  name length n
 *   3   u32  payload length m (at most REPL_FRAME_MAX)
 *   7   n    name
 *   .   m    payload
 *   .   u32  CRC32C of every byte of the frame before it
 * HEADER   name "QVSN"; payload u32 version (1), u64 offset, u64 LMDB bytes in use, replid
 *          (40 chars), i32 the stream's database at offset (-1: the stream SELECTs before
 *          its first command). Always the first frame.
 * RECORDS  name: an LMDB named database (store.h ON-DISK FORMAT); payload: records, each
 *          u32 key length, key, u32 value length, value, in key order.
 * FILE     name: a file of the RocksDB history checkpoint (a plain file name); payload: the
 *          next bytes of that file (a file spans as many frames as it needs, in order).
 * END      name ""; payload u64 offset (the HEADER's again), u64 frames before this one.
 * The leader takes the snapshot between two passes (store_snap_begin: one LMDB read
 * transaction and a RocksDB checkpoint of the same commit) and a worker thread encodes it
 * straight into the replica's output, waiting while more than REPL_SEND_WINDOW bytes are
 * unsent (no temporary file: the data goes out once, at the socket's pace). RECORDS frames
 * are built in place (frame_begin/frame_finish), in chunk buffers the worker reuses. Vector (FT)
 * indexes are not sent: their definitions travel in LMDB and the replica rebuilds them from
 * the hashes, as at any start without a snapshot file; FS.KNN indexes likewise.
 *
 * ON THE REPLICA'S DISK. The snapshot is written into <dir>/sync.tmp (data.mdb and
 * history/) while the old data keeps answering reads. When END checks out, sync.tmp/READY is
 * written and synced, the store is closed, the old data.mdb, history/ and vectors/ go, the
 * new ones are renamed in, sync.tmp is removed and the store reopened. A crash after READY
 * is finished by repl_recover_dir() at the next start; before READY, sync.tmp is deleted.
 * The swap waits for worker jobs (they may read the store); meanwhile the replica answers
 * -LOADING to commands without the loading flag (no new job starts) and drops its own
 * replicas (their snapshot jobs would hold it).
 *
 * REPLICAS ARE READ-ONLY: client writes get -READONLY; the stream is applied by an internal
 * master client (no replies, no ACL) through the normal command path, so the replica's
 * writes commit like any and its offset (set to the leader's after each command) persists.
 * Replicas never expire keys actively; the leader's DELs do that.
 *
 * CHAINS. A replica serves replicas of its own (PSYNC, once its link is up): it passes on
 * its leader's bytes as they are, so offsets and ids are the same along the chain.
 *
 * THREADS. Loop thread only, except the snapshot encoder (a worker, see leader.c). */
#ifndef QUIVER_REPL_H
#define QUIVER_REPL_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "wire/wire.h"

#define REPL_FRAME_MAX ((size_t)4 << 20)
#define REPL_SEND_WINDOW ((size_t)16 << 20)

/* At start, before the store opens: finishes or discards a full sync that a crash
 * interrupted in <dir>/sync.tmp. */
void repl_recover_dir(const char *dir);
/* After the store opened: replication id and offset from the store, the backlog, the log
 * hooks, and the link to the leader when `replicaof` is set. */
void repl_start(void);
/* Every cron tick: ACKs, reconnects, timeouts of replicas and of the link. */
void repl_cron(void);
/* After the pass's commit (ok = it committed): sends the pass's stream, starts the
 * snapshots that replicas wait for. */
void repl_pass_end(int ok);
/* At shutdown: drops the link. */
void repl_stop(void);
/* Why c's writes must be refused, as the error reply, or NULL: this server is a replica and
 * c is not its leader (READONLY), or fewer than min-replicas-to-write replicas acknowledged
 * within min-replicas-max-lag seconds (NOREPLICAS). */
const char *repl_write_denied(const client *c);
/* 1 while a replica's full sync swaps its data: commands without the loading flag get
 * -LOADING (INFO persistence loading:1). */
int repl_loading(void);
/* 1 when this server is a replica (no active expiry). */
int repl_is_replica(void);
/* A client going away that may be a replica. */
void repl_client_gone(client *c);
/* INFO's replication section, and the sync_* fields of its stats section. */
void repl_info(buf *b);
void repl_info_stats(buf *b);

#endif
