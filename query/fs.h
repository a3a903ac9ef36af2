/* fs.h: what the FS.* command files share (fs_common.c): parsing feature lists and
 * entity-key rows, timestamps, and replying typed values with their metadata. The
 * semantics are DESIGN.md's "Feature store"; the storage is store.h's feature store.
 *
 * Every parse helper replies a clear error naming the argument and returns -1 on bad
 * input, so that a handler validates everything first and writes nothing on any error. */
#ifndef QUIVER_FS_H
#define QUIVER_FS_H

#include <stdint.h>

#include "query/query_int.h"

/* Statuses of a served value (WITHMETA), as Feast names them. */
enum { FS_PRESENT = 0, FS_NULL_VALUE = 1, FS_NOT_FOUND = 2, FS_OUTSIDE_MAX_AGE = 3 };
const char *fs_status_name(int status);

/* A requested feature list, resolved against the catalog of the current pass (its view
 * pointers die with the pass: see store.h CATALOG).
 *   features: in the caller's order; view indexes into views.
 *   views: the distinct views, in order of first appearance.
 *   entities: the distinct entity names of those views, in order of first appearance:
 *     each request row gives one value per entity, in this order (DESIGN.md).
 *   view_ent[v][j]: for view v's j-th entity (ENTITIES order), its index in entities. */
typedef struct fs_feature {
    int view;  /* index into views */
    int field; /* index into that view's fields */
} fs_feature;

typedef struct fs_request {
    int nfeatures;
    fs_feature *features;
    int nviews;
    const store_view **views;
    int nentities;
    const char **entities;
    int **view_ent;
} fs_request;

/* Parses "<service> ..." or "FEATURES <n> <view>:<field>|<view>:* ..." starting at argv[i]
 * (a name that is not the word FEATURES is a service); *next is set past it. */
int fs_parse_features(client *c, int i, fs_request *rq, int *next);
/* The features of one view: "[FEATURES <n> <f>...]" at argv[i] if present, else every
 * field (rq gets that one view). *next is set past what was read. */
int fs_parse_view_features(client *c, const store_view *v, int i, fs_request *rq, int *next);
void fs_request_free(fs_request *rq);

/* The stored entity key of rq->views[v] for one request row (vals[0..rq->nentities)). */
int fs_row_key(client *c, const fs_request *rq, int v, const char *const *vals,
               const size_t *lens, buf *out);
/* The stored key of v from one composite client argument (argv[i]). */
int fs_arg_key(client *c, const store_view *v, int i, buf *out);
/* A timestamp argument (epoch ms or ISO-8601) into microseconds; an error starts with
 * what (the argument's name: "CREATED", "event_ts"). */
int fs_arg_ts(client *c, int i, const char *what, int64_t *us);

/* One value in c's protocol: nil when NULL; INT* and BOOL as integers, FLOAT* as doubles
 * (bulk strings in RESP2), TIMESTAMP as an ISO-8601 bulk string (store_format_ts), STRING
 * BYTES VECTOR as bulk strings. */
void fs_reply_value(client *c, const store_field *f, const store_fvalue *v);
/* WITHMETA's [value, event_ts_ms or nil, status]; v may be NULL (no row). */
void fs_reply_meta(client *c, const store_field *f, const store_fvalue *v, int64_t event_us,
                   int status);

/* FS.VIEW.CREATE's arguments (argv[0] the command, argv[1] the view) into spec, whose
 * strings it allocates; -1 with err (what the command replies). Free spec either way. */
int fs_view_spec_parse(int argc, const char **argv, const size_t *lens, store_view *spec,
                       char *err, size_t errlen);
void fs_view_spec_free(store_view *spec);
/* FS.PUSH's FIELDS: n arguments, <field> <value> pairs of view v, parsed as the schema's
 * types and encoded as a row (missing fields NULL) appended to row; -1 with err. */
int fs_push_row(const store_view *v, int n, const char **argv, const size_t *lens, buf *row,
                char *err, size_t errlen);

#endif
