/* test_client.c: drives a running quiver-server through hiredis, the C client most Redis
 * tools are built on, to check that what it sends and expects (binary-safe bulks, pipelines,
 * MULTI/EXEC, large values, error texts) works unchanged. Usage: test_client <host> <port>;
 * run_c_client.py starts a server and runs it. Prints "client: N passed, M failed". */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            passed++;                                                                              \
        } else {                                                                                   \
            failed++;                                                                              \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static int is_status(const redisReply *r, const char *s)
{
    return r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, s) == 0;
}

static int is_error(const redisReply *r, const char *s)
{
    return r && r->type == REDIS_REPLY_ERROR && strcmp(r->str, s) == 0;
}

static int is_int(const redisReply *r, long long v)
{
    return r && r->type == REDIS_REPLY_INTEGER && r->integer == v;
}

static int is_bulk(const redisReply *r, const void *p, size_t n)
{
    return r && r->type == REDIS_REPLY_STRING && r->len == n && memcmp(r->str, p, n) == 0;
}

static const char *show(const redisReply *r)
{
    static char tmp[200];
    if (!r)
        return "(no reply)";
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
        r->type == REDIS_REPLY_ERROR) {
        snprintf(tmp, sizeof tmp, "type %d '%.*s'", r->type, r->len > 120 ? 120 : (int)r->len,
                 r->str);
        return tmp;
    }
    snprintf(tmp, sizeof tmp, "type %d int %lld elements %zu", r->type, r->integer, r->elements);
    return tmp;
}

static void test_binary(redisContext *c)
{
    const char val[] = "a\0b\r\n\0\xff\x01z";
    redisReply *r = redisCommand(c, "SET %b %b", "bin\0key", (size_t)7, val, sizeof val - 1);
    CHECK(is_status(r, "OK"), "SET binary: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "GET %b", "bin\0key", (size_t)7);
    CHECK(is_bulk(r, val, sizeof val - 1), "GET binary: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "STRLEN %b", "bin\0key", (size_t)7);
    CHECK(is_int(r, (long long)sizeof val - 1), "STRLEN binary: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "GET %b", "bin", (size_t)3); /* the NUL is part of the key */
    CHECK(r && r->type == REDIS_REPLY_NIL, "GET key prefix: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "SET empty %b", "", (size_t)0);
    freeReplyObject(r);
    r = redisCommand(c, "GET empty");
    CHECK(is_bulk(r, "", 0), "GET empty value: %s", show(r));
    freeReplyObject(r);
}

static void test_hash(redisContext *c)
{
    redisReply *r = redisCommand(c, "HSET h f1 v1 f2 %b f3 v3", "x\0y", (size_t)3);
    CHECK(is_int(r, 3), "HSET: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "HSET h f1 v1b");
    CHECK(is_int(r, 0), "HSET existing field: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "HGETALL h");
    int seen = 0;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 6) {
        for (size_t i = 0; i < 6; i += 2) {
            const redisReply *f = r->element[i], *v = r->element[i + 1];
            if (is_bulk(f, "f1", 2) && is_bulk(v, "v1b", 3))
                seen |= 1;
            else if (is_bulk(f, "f2", 2) && is_bulk(v, "x\0y", 3))
                seen |= 2;
            else if (is_bulk(f, "f3", 2) && is_bulk(v, "v3", 2))
                seen |= 4;
        }
    }
    CHECK(seen == 7, "HGETALL: %s, pairs seen mask %d", show(r), seen);
    freeReplyObject(r);
    r = redisCommand(c, "HGET h f2");
    CHECK(is_bulk(r, "x\0y", 3), "HGET: %s", show(r));
    freeReplyObject(r);
}

static void test_errors(redisContext *c)
{
    redisReply *r = redisCommand(c, "SET n 9223372036854775807");
    freeReplyObject(r);
    r = redisCommand(c, "INCR n");
    CHECK(is_error(r, "ERR increment or decrement would overflow"), "INCR overflow: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "GET n");
    CHECK(is_bulk(r, "9223372036854775807", 19), "value after failed INCR: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "SET m -9223372036854775808");
    freeReplyObject(r);
    r = redisCommand(c, "DECR m");
    CHECK(is_error(r, "ERR increment or decrement would overflow"), "DECR overflow: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "GET");
    CHECK(is_error(r, "ERR wrong number of arguments for 'get' command"), "GET arity: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "SET onlykey");
    CHECK(is_error(r, "ERR wrong number of arguments for 'set' command"), "SET arity: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "INCR h");
    CHECK(is_error(r, "WRONGTYPE Operation against a key holding the wrong kind of value"),
          "INCR on a hash: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "HGET bin f");
    CHECK(r && r->type == REDIS_REPLY_NIL, "HGET missing key: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "HSET empty f v");
    CHECK(is_error(r, "WRONGTYPE Operation against a key holding the wrong kind of value"),
          "HSET on a string: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "PING");
    CHECK(is_status(r, "PONG"), "connection usable after errors: %s", show(r));
    freeReplyObject(r);
}

static void test_pipeline(redisContext *c)
{
    enum { N = 10000 };
    char key[32], val[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "p:%d", i);
        snprintf(val, sizeof val, "v%d", i * 7);
        redisAppendCommand(c, "SET %s %s", key, val);
    }
    int ok = 0;
    for (int i = 0; i < N; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            break;
        ok += is_status(r, "OK");
        freeReplyObject(r);
    }
    CHECK(ok == N, "pipelined SETs: %d of %d OK", ok, N);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "p:%d", i);
        redisAppendCommand(c, "GET %s", key);
    }
    int inorder = 0;
    for (int i = 0; i < N; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            break;
        int n = snprintf(val, sizeof val, "v%d", i * 7);
        inorder += is_bulk(r, val, (size_t)n);
        freeReplyObject(r);
    }
    CHECK(inorder == N, "pipelined GETs in order: %d of %d", inorder, N);
    redisReply *r = redisCommand(c, "DBSIZE");
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer >= N, "DBSIZE after pipeline: %s",
          show(r));
    freeReplyObject(r);
}

static void test_multi(redisContext *c)
{
    redisReply *r = redisCommand(c, "MULTI");
    CHECK(is_status(r, "OK"), "MULTI: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "SET tx 1");
    CHECK(is_status(r, "QUEUED"), "queued SET: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "INCR tx");
    CHECK(is_status(r, "QUEUED"), "queued INCR: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "HSET h f1 v1b"); /* runs and errors inside EXEC */
    freeReplyObject(r);
    r = redisCommand(c, "INCR h");
    freeReplyObject(r);
    r = redisCommand(c, "GET tx");
    freeReplyObject(r);
    r = redisCommand(c, "EXEC");
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 5 &&
             is_status(r->element[0], "OK") && is_int(r->element[1], 2) &&
             is_int(r->element[2], 0) && r->element[3]->type == REDIS_REPLY_ERROR &&
             strncmp(r->element[3]->str, "WRONGTYPE", 9) == 0 && is_bulk(r->element[4], "2", 1);
    CHECK(ok, "EXEC results: %s", show(r));
    freeReplyObject(r);

    r = redisCommand(c, "MULTI");
    freeReplyObject(r);
    r = redisCommand(c, "GET");
    CHECK(r && r->type == REDIS_REPLY_ERROR, "arity error inside MULTI: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "EXEC");
    CHECK(r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "EXECABORT", 9) == 0,
          "EXECABORT: %s", show(r));
    freeReplyObject(r);

    /* WATCH from a second connection makes EXEC return a null array */
    redisContext *other = redisConnect(c->tcp.host, c->tcp.port);
    r = redisCommand(c, "WATCH tx");
    freeReplyObject(r);
    r = other && !other->err ? redisCommand(other, "SET tx 100") : NULL;
    freeReplyObject(r);
    r = redisCommand(c, "MULTI");
    freeReplyObject(r);
    r = redisCommand(c, "INCR tx");
    freeReplyObject(r);
    r = redisCommand(c, "EXEC");
    CHECK(r && r->type == REDIS_REPLY_NIL, "EXEC after a WATCHed key changed: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "GET tx");
    CHECK(is_bulk(r, "100", 3), "aborted transaction changed nothing: %s", show(r));
    freeReplyObject(r);
    if (other)
        redisFree(other);
}

static void test_big_value(redisContext *c)
{
    size_t n = 10u * 1024 * 1024;
    char *v = malloc(n);
    for (size_t i = 0; i < n; i++)
        v[i] = (char)((i * 2654435761u) >> 13);
    redisReply *r = redisCommand(c, "SET big %b", v, n);
    CHECK(is_status(r, "OK"), "SET 10 MiB: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "GET big");
    CHECK(is_bulk(r, v, n), "GET 10 MiB round trip: %s", show(r));
    freeReplyObject(r);
    r = redisCommand(c, "STRLEN big");
    CHECK(is_int(r, (long long)n), "STRLEN 10 MiB: %s", show(r));
    freeReplyObject(r);
    free(v);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_client <host> <port>\n");
        return 2;
    }
    redisContext *c = redisConnect(argv[1], atoi(argv[2]));
    if (!c || c->err) {
        fprintf(stderr, "cannot connect to %s:%s: %s\n", argv[1], argv[2],
                c ? c->errstr : "out of memory");
        return 2;
    }
    redisReply *r = redisCommand(c, "FLUSHALL");
    freeReplyObject(r);
    test_binary(c);
    test_hash(c);
    test_errors(c);
    test_pipeline(c);
    test_multi(c);
    test_big_value(c);
    CHECK(c->err == 0, "connection error: %s", c->errstr);
    redisFree(c);
    printf("client: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
