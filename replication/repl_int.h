/* repl_int.h: what the files of replication/ share (never included from outside): the
 * module's state (srv.repl), the backlog ring, the leader's view of its replicas, and the
 * snapshot frame codec. */
#ifndef QUIVER_REPL_INT_H
#define QUIVER_REPL_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "query/query_int.h"
#include "replication/repl.h"

enum { FRAME_HEADER = 1, FRAME_RECORDS = 2, FRAME_FILE = 3, FRAME_END = 4 }; /* persisted */
#define FRAME_HEAD_LEN 7
#define FRAME_MAGIC "QVSN"
#define FRAME_VERSION 1u

/* The backlog: the last size bytes of the stream; end is the offset of its last byte. */
typedef struct backlog {
    char *ring;
    size_t size, len, head; /* head: where the next byte goes */
    uint64_t end;
} backlog;

void backlog_init(backlog *b, size_t size, uint64_t end);
void backlog_free(backlog *b);
void backlog_append(backlog *b, const char *p, size_t n);
/* Appends the bytes after offset `from` to out; -1 when the backlog no longer has them
 * (or from is past its end). */
int backlog_copy(const backlog *b, uint64_t from, buf *out);

/* A replica as its leader sees it. */
enum { REPLICA_WAIT_SNAPSHOT, REPLICA_SENDING, REPLICA_ONLINE };
typedef struct replica {
    client *c;
    int state;
    int port;     /* REPLCONF listening-port */
    uint64_t ack; /* REPLCONF ACK */
    int64_t ack_ms;
    size_t unsent;        /* SENDING: output not yet written, as last seen */
    int64_t unsent_ms;    /* when that last changed (repl-timeout) */
    buf held;             /* the stream while the snapshot is sent */
    struct snap_job *job; /* while SENDING */
    struct replica *next;
} replica;

/* A client parked in WAIT until enough replicas acknowledge offset. */
typedef struct waiter {
    client *c;
    uint64_t offset;
    int need;
    int64_t deadline_ms; /* 0: no timeout */
    struct waiter *next;
} waiter;

/* The replica's side of things. */
enum { LINK_NONE, LINK_CONNECTING, LINK_HANDSHAKE, LINK_TRANSFER, LINK_CONNECTED };

/* FAILOVER on the leader: waiting for the target to acknowledge every byte (writes
 * refused meanwhile), then following it with PSYNC ... FAILOVER until it answers. */
enum { FAILOVER_NONE, FAILOVER_WAIT_SYNC, FAILOVER_IN_PROGRESS };

typedef struct repl {
    char replid[41], replid2[41];
    uint64_t second_offset; /* replid2 is valid up to here; 0 = none */
    backlog bl;
    buf pending;      /* the stream of the pass, not yet committed */
    uint64_t log_end; /* offset after the last byte put in pending */
    replica *replicas;
    waiter *waiters;
    uint64_t sync_full, sync_partial_ok, sync_partial_err;
    int64_t last_ping_ms; /* the last PING put in the stream */
    int failover_state;   /* FAILOVER_* */
    char *failover_host;  /* TO host port; NULL: the first replica that catches up */
    int failover_port, failover_force;
    int64_t failover_end_ms; /* TIMEOUT; 0 = none */
    /* replica side */
    char *master_host;
    int master_port;
    int link_state;
    struct replica_link *link;
    int64_t link_down_since_ms, last_io_ms, next_connect_ms;
    int64_t link_start_ms; /* the link's attempt began (repl-timeout before any byte) */
    int loading;           /* a whole snapshot waits to be swapped in: -LOADING */
    char link_error[256];
    char sync_refused[256]; /* why replica-protect-data refused the leader's full sync */
} repl;

/* leader.c */
void leader_log(void *ctx, uint64_t offset, int db, int argc, const char *const *argv,
                const size_t *lens);
void leader_commit(void *ctx, int ok, uint64_t offset);
void leader_flush(void);
void leader_start_snapshots(void);
void leader_drop_all(void);
replica *leader_find(const client *c);
/* Online replicas whose last ACK is at most max_lag seconds old. */
int leader_good_replicas(int max_lag);
void leader_cron(void);
/* Answers the WAITs that enough ACKs (or their timeout) settle. */
void leader_check_waiters(void);
/* FAILOVER's steps, from the cron and from the link (failover.c). */
void failover_cron(void);
/* The link to the target answered PSYNC FAILOVER (+CONTINUE): done, as its replica. */
void failover_done(void);
/* The failover cannot finish (why: for the log); the leader goes on as before. */
void failover_abort(const char *why);
/* PSYNC <replid> <offset> FAILOVER reached this replica: promotes it when replid is its
 * leader's. 0, or -1 with the error reply sent. */
int failover_take_over(client *c);
/* Stops following the leader and becomes one under a new replid (replid2 keeps the old). */
void repl_promote(void);
/* Follows host:port from the next cron tick (the link starts then). */
void repl_set_master(const char *host, int port);
/* "ip" of an "ip:port" address. */
void repl_addr_host(const char *addr, char *out, size_t n);
/* replica.c */
void link_start(void);
void link_stop(void);
/* Drops the link (the cron reconnects a second later). why: for the log and INFO. */
void link_fail(const char *why);
/* The database the applied stream is on; -1 while the link is not up. */
int link_stream_db(void);
void link_cron(void);
/* Removes a file or a directory tree (best effort). */
void repl_rmtree(const char *path);
/* A new replication id (40 hex characters). */
void repl_new_id(char *out);

/* Frames (snapframe.c). A frame is built in place: frame_begin writes its head (the
 * payload length left open) and returns where it starts, the payload is appended to out,
 * frame_finish sets the length and appends the CRC; frame_put does all three. */
size_t frame_begin(buf *out, int type, const char *name, size_t nlen);
void frame_finish(buf *out, size_t start);
void frame_put(buf *out, int type, const char *name, size_t nlen, const void *p, size_t n);
/* Parses one frame at p[0..len): RESP_NEED_MORE-like 1 when incomplete, -1 when malformed
 * (bad CRC, too long), 0 with the parts and the frame's size. */
int frame_get(const char *p, size_t len, int *type, const char **name, size_t *nlen,
              const char **payload, size_t *plen, size_t *size);
/* Takes the next record of a RECORDS payload (*p, *n advance past it): 0, 1 at the end,
 * -1 when the lengths run past the payload. */
int frame_record(const char **p, size_t *n, const char **key, size_t *klen, const char **val,
                 size_t *vlen);

#endif
