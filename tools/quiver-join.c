/* quiver-join.c: point-in-time join of an entity dataframe (a CSV file) with FS.JOIN, the
 * way Feast's get_historical_features(...).to_df() does it, writing the result as CSV.
 *
 * Before sending anything it asks the server what the features are (FS.SERVICE.INFO,
 * FS.VIEW.INFO): their fields (so the output header can be written, and "view:*" expanded)
 * and the entities of their views, whose count and order the --entity columns must match.
 * The input rows then go in batches of FS.JOIN (two batches in flight); each output row is
 * the input row as it was read, then one column per feature (an empty cell for NULL), in
 * the input's order. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/util.h"
#include "tools/cli.h"
#include "tools/conn.h"
#include "tools/csv.h"
#include "tools/progress.h"

#define TOOL "quiver-join"
/* Rows per FS.JOIN by default: as many as keep a batch's answers near JOIN_CELLS values,
 * within these bounds. The server walks each entity's history once per command, so a big
 * batch that holds several rows of an entity pays one seek for them instead of one each
 * (with 100k entities, 10000-row batches held about 0.1 row per entity). */
#define JOIN_BATCH_MIN 10000
#define JOIN_BATCH_MAX 100000
#define JOIN_CELLS 2000000

static const char usage[] =
    "Usage: " TOOL " [-h host] [-p port] [-a password] (--service S | --features v:f,...)\n"
    "                   --ts COL [--entity COL[,COL...]] [--batch N] [--full-names]\n"
    "                   [--ts-unit s|ms|us] [-o out.csv] [-q] ENTITY.csv|-\n"
    "\n"
    "Joins each row of an entity dataframe (a CSV file with a header row) with the feature\n"
    "values as of the row's timestamp (FS.JOIN), and writes the rows with one more column\n"
    "per feature, in the input's order.\n"
    "\n"
    "  -h HOST            server host (default 127.0.0.1)\n"
    "  -p PORT            server port (default 6379)\n"
    "  -a PASSWORD        AUTH with this password\n"
    "  --service S        the features of the feature service S\n"
    "  --features LIST    features as view:field (view:* for all of a view's fields)\n"
    "  --entity COLS      the entity columns, one per distinct entity of the features' views\n"
    "                     in order of first appearance (default: columns named like the\n"
    "                     entities)\n"
    "  --ts COL           the time of each row (ISO-8601, or a number in --ts-unit)\n"
    "  --ts-unit UNIT     unit of numeric epoch timestamps: s, ms (default) or us\n"
    "  --batch N          rows per FS.JOIN (default 2000000 / features, from 10000\n"
    "                     to 100000)\n"
    "  --full-names       name feature columns view__field (default: field)\n"
    "  -o FILE            write to FILE (default: standard output)\n"
    "  -q, --quiet        no progress line\n"
    "  --help             this text\n"
    "\n"
    "Values are written as the server sends them; NULL is an empty cell, the empty string\n"
    "is \"\". Exit status: 0 on success, 1 otherwise.\n";

typedef struct join_opts {
    conn_opts conn;
    const char *service, *features, *entity, *ts, *out, *file;
    int ts_unit, full_names, quiet;
    long batch;
} join_opts;

/* The requested features, as the server described them. */
typedef struct feature {
    char *view, *field;
} feature;

/* One batch of rows: the FS.JOIN arguments after ROWS <n>, and the rows as they were read. */
typedef struct batch {
    int n;
    buf args;
    buf raw;
    size_t *raw_off; /* row i is raw[raw_off[i]..raw_off[i+1]) */
    uint64_t *lines; /* row i's CSV line */
} batch;

typedef struct join {
    join_opts o;
    csv_reader *rd;
    conn *c;
    int nfeat;
    feature *feat;
    int nent;
    char **ent;   /* the distinct entities, in the order a row gives them */
    int *ent_col; /* their columns */
    int ts_col;
    buf prefix; /* "FS.JOIN" and the features, as RESP bulks */
    int prefix_args;
    FILE *out;
    char *tmp_path; /* written to, then renamed to -o */
    buf header;     /* the output's header line */
    int header_done;
    batch b[2];
    uint64_t rows;
    progress prog;
} join;

static void die_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, TOOL ": ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '" TOOL " --help'.\n");
    exit(1);
}

static long number_arg(const char *s, const char *option, long lo, long hi)
{
    int64_t v;
    if (str_to_i64(s, strlen(s), &v) != 0 || v < lo || v > hi) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s wants an integer from %ld to %ld, not '%%s'", option, lo,
                 hi);
        die_usage(msg, s);
    }
    return (long)v;
}

static void parse_opts(int argc, char **argv, join_opts *o)
{
    enum { O_SERVICE = 256, O_FEATURES, O_ENTITY, O_TS, O_UNIT, O_BATCH, O_FULL, O_HELP };
    static const struct option longs[] = {
        {"service", 1, 0, O_SERVICE}, {"features", 1, 0, O_FEATURES}, {"entity", 1, 0, O_ENTITY},
        {"ts", 1, 0, O_TS},           {"ts-unit", 1, 0, O_UNIT},      {"batch", 1, 0, O_BATCH},
        {"full-names", 0, 0, O_FULL}, {"quiet", 0, 0, 'q'},           {"help", 0, 0, O_HELP},
        {0, 0, 0, 0}};
    *o = (join_opts){.conn = {"127.0.0.1", 6379, NULL}, .ts_unit = CLI_TS_MS};
    const char *unit = "ms";
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h:p:a:o:q", longs, NULL)) != -1) {
        switch (ch) {
        case 'h': o->conn.host = optarg; break;
        case 'p': o->conn.port = (int)number_arg(optarg, "-p", 1, 65535); break;
        case 'a': o->conn.password = optarg; break;
        case 'o': o->out = optarg; break;
        case 'q': o->quiet = 1; break;
        case O_SERVICE: o->service = optarg; break;
        case O_FEATURES: o->features = optarg; break;
        case O_ENTITY: o->entity = optarg; break;
        case O_TS: o->ts = optarg; break;
        case O_UNIT: unit = optarg; break;
        case O_BATCH: o->batch = number_arg(optarg, "--batch", 1, 1000000); break;
        case O_FULL: o->full_names = 1; break;
        case O_HELP: fputs(usage, stdout); exit(0);
        case ':': die_usage("%s needs a value", argv[optind - 1]); break;
        default: die_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!(o->ts_unit = cli_ts_unit(unit)))
        die_usage("--ts-unit must be s, ms or us, not '%s'", unit);
    if (!o->service == !o->features)
        die_usage("%s", "give either --service or --features");
    if (!o->ts)
        die_usage("%s is required", "--ts");
    if (optind != argc - 1)
        die_usage("%s", optind < argc ? "give one input file (or - for stdin)"
                                      : "no input file (give ENTITY.csv, or - for stdin)");
    o->file = argv[optind];
}

/* ---- what the features are ------------------------------------------------------------ */

/* The value of key in a map reply (RESP2: a flat array of key, value, ...); NULL if none. */
static const redisReply *map_get(const redisReply *m, const char *key)
{
    if (m->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < m->elements; i += 2) {
        const redisReply *k = m->element[i];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, key) == 0)
            return m->element[i + 1];
    }
    return NULL;
}

/* A set-up command whose error reply is the user's error (an unknown view, say). */
static int ask(join *J, int argc, const char *const *argv, const char *what, redisReply **r,
               char *err, size_t errlen)
{
    int rc = conn_call(J->c, argc, argv, r, err, errlen);
    if (rc == 0 && (*r)->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s: %s", what, (*r)->str);
        freeReplyObject(*r);
        *r = NULL;
        rc = ERR_NOTFOUND;
    }
    return rc;
}

static void add_feature(join *J, const char *view, size_t vlen, const char *field, size_t flen)
{
    J->feat = xrealloc(J->feat, (size_t)(J->nfeat + 1) * sizeof *J->feat);
    J->feat[J->nfeat++] = (feature){xmemdup(view, vlen), xmemdup(field, flen)};
}

/* The requested "view:field" / "view:*" list, from --features or the service. */
static int requested(join *J, cli_list *want, char *err, size_t errlen)
{
    if (J->o.features)
        return cli_split(J->o.features, "--features", want, err, errlen);
    const char *argv[] = {"FS.SERVICE.INFO", J->o.service};
    redisReply *r;
    int rc = ask(J, 2, argv, "--service", &r, err, errlen);
    if (rc)
        return rc;
    const redisReply *f = map_get(r, "features");
    *want = (cli_list){0};
    for (size_t i = 0; f && f->type == REDIS_REPLY_ARRAY && i < f->elements; i++) {
        want->items = xrealloc(want->items, (size_t)(want->n + 1) * sizeof *want->items);
        want->items[want->n++] = xstrdup(f->element[i]->type == REDIS_REPLY_STRING
                                             ? f->element[i]->str : "");
    }
    freeReplyObject(r);
    return 0;
}

/* Adds the features of one "view:field" item, learning the view's fields and entities. */
static int resolve_item(join *J, const char *item, char *err, size_t errlen)
{
    const char *colon = strchr(item, ':');
    if (!colon || colon == item || !colon[1]) {
        snprintf(err, errlen, "%s: '%s' is not view:field or view:*",
                 J->o.features ? "--features" : "--service", item);
        return ERR_INVAL;
    }
    char *view = xmemdup(item, (size_t)(colon - item));
    const char *argv[] = {"FS.VIEW.INFO", view};
    redisReply *r = NULL;
    int rc = ask(J, 2, argv, J->o.features ? "--features" : "--service", &r, err, errlen);
    if (rc)
        goto done;
    const redisReply *ents = map_get(r, "entities"), *schema = map_get(r, "schema");
    if (!ents || ents->type != REDIS_REPLY_ARRAY || !schema || schema->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "FS.VIEW.INFO %s: a reply without entities or schema", view);
        rc = ERR_PROTO;
        goto done;
    }
    for (size_t i = 0; i < ents->elements; i++) {
        int e = 0;
        while (e < J->nent && strcmp(J->ent[e], ents->element[i]->str) != 0)
            e++;
        if (e == J->nent) {
            J->ent = xrealloc(J->ent, (size_t)(J->nent + 1) * sizeof *J->ent);
            J->ent[J->nent++] = xstrdup(ents->element[i]->str);
        }
    }
    int found = 0;
    for (size_t i = 0; i < schema->elements; i++) {
        const redisReply *f = schema->element[i];
        if (f->type != REDIS_REPLY_ARRAY || f->elements < 1 ||
            f->element[0]->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(colon + 1, "*") == 0 || strcmp(colon + 1, f->element[0]->str) == 0) {
            add_feature(J, item, (size_t)(colon - item), f->element[0]->str,
                        f->element[0]->len);
            found = 1;
        }
    }
    if (!found) {
        snprintf(err, errlen, "%s: feature view '%s' has no field '%s'",
                 J->o.features ? "--features" : "--service", view, colon + 1);
        rc = ERR_NOTFOUND;
    }
done:
    if (r)
        freeReplyObject(r);
    xfree(view);
    return rc;
}

/* The output name of feature i: "field" or "view__field". */
static void feature_name(const join *J, int i, buf *out)
{
    if (J->o.full_names) {
        buf_append(out, J->feat[i].view, strlen(J->feat[i].view));
        buf_append(out, "__", 2);
    }
    buf_append(out, J->feat[i].field, strlen(J->feat[i].field));
}

/* Two features with one output name would make an ambiguous column (Feast refuses too). */
static int check_names(const join *J, char *err, size_t errlen)
{
    buf a, b;
    buf_init(&a);
    buf_init(&b);
    int rc = 0;
    for (int i = 0; i < J->nfeat && !rc; i++) {
        for (int k = 0; k < i && !rc; k++) {
            a.len = b.len = 0;
            feature_name(J, i, &a);
            feature_name(J, k, &b);
            if (a.len == b.len && memcmp(a.data, b.data, a.len) == 0) {
                if (strcmp(J->feat[i].view, J->feat[k].view) == 0)
                    snprintf(err, errlen, "feature %s:%s is asked for twice", J->feat[i].view,
                             J->feat[i].field);
                else
                    snprintf(err, errlen, "views %s and %s both have a field '%s': use "
                                          "--full-names for view__field columns",
                             J->feat[k].view, J->feat[i].view, J->feat[i].field);
                rc = ERR_INVAL;
            }
        }
    }
    buf_free(&a);
    buf_free(&b);
    return rc;
}

static int resolve_features(join *J, char *err, size_t errlen)
{
    cli_list want = {0};
    int rc = requested(J, &want, err, errlen);
    if (rc == 0 && want.n == 0) {
        snprintf(err, errlen, "--service: feature service '%s' has no features", J->o.service);
        rc = ERR_INVAL;
    }
    for (int i = 0; i < want.n && !rc; i++)
        rc = resolve_item(J, want.items[i], err, errlen);
    cli_list_free(&want);
    return rc ? rc : check_names(J, err, errlen);
}

/* ---- the entity columns ---------------------------------------------------------------- */

static void join_names(char *const *names, int n, char *out, size_t outlen)
{
    size_t k = 0;
    out[0] = '\0';
    for (int i = 0; i < n && k < outlen; i++)
        k += (size_t)snprintf(out + k, outlen - k, "%s%s", i ? ", " : "", names[i]);
}

/* Maps the entities onto columns: --entity's, or columns named like the entities. */
static int map_entities(join *J, const csv_record *hdr, char *err, size_t errlen)
{
    char ents[300], cols[300];
    join_names(J->ent, J->nent, ents, sizeof ents);
    cli_list l = {0};
    int rc;
    if (J->o.entity) {
        if ((rc = cli_split(J->o.entity, "--entity", &l, err, errlen)))
            return rc;
        join_names(l.items, l.n, cols, sizeof cols);
        if (l.n != J->nent) {
            snprintf(err, errlen,
                     "--entity: the features' views are keyed by %d entit%s (%s): give %d "
                     "entity column%s; --entity gave %d (%s)",
                     J->nent, J->nent == 1 ? "y" : "ies", ents, J->nent,
                     J->nent == 1 ? "" : "s, in that order", l.n, cols);
            rc = ERR_INVAL;
            goto done;
        }
        int same_set = 1, same_order = 1;
        for (int i = 0; i < l.n; i++) {
            int in = 0;
            for (int e = 0; e < J->nent; e++)
                in |= strcmp(l.items[i], J->ent[e]) == 0;
            same_set &= in;
            same_order &= strcmp(l.items[i], J->ent[i]) == 0;
        }
        if (same_set && !same_order) {
            snprintf(err, errlen, "--entity: give the columns in the entities' order (%s), "
                                  "not (%s)", ents, cols);
            rc = ERR_INVAL;
            goto done;
        }
        rc = cli_columns(hdr, &l, "--entity", J->ent_col, err, errlen);
    } else {
        l.n = J->nent;
        l.items = J->ent;
        rc = cli_columns(hdr, &l, "the entity columns", J->ent_col, err, errlen);
        l = (cli_list){0};
        if (rc == ERR_NOTFOUND) {
            size_t k = strlen(err);
            snprintf(err + k, errlen - k, "; the features' views are keyed by %s: name the "
                                          "columns with --entity", ents);
        }
    }
done:
    cli_list_free(&l);
    return rc;
}

/* ---- output -------------------------------------------------------------------------------- */

/* Opens standard output, or -o: a new or regular file through a temporary file renamed
 * at the end (so a failed join leaves no half file under the name), anything else (a
 * link such as /dev/stdout, a pipe) directly. Then makes the header. */
static int open_output(join *J, const csv_record *hdr, char *err, size_t errlen)
{
    struct stat st;
    if (!J->o.out) {
        J->out = stdout;
    } else if (lstat(J->o.out, &st) == 0 && !S_ISREG(st.st_mode)) {
        J->out = fopen(J->o.out, "w");
    } else {
        size_t n = strlen(J->o.out) + 32;
        J->tmp_path = xmalloc(n);
        snprintf(J->tmp_path, n, "%s.tmp.%d", J->o.out, (int)getpid());
        J->out = fopen(J->tmp_path, "w");
    }
    if (!J->out) {
        snprintf(err, errlen, "cannot write %s: %s", J->tmp_path ? J->tmp_path : J->o.out,
                 strerror(errno));
        return ERR_IO;
    }
    buf_append(&J->header, hdr->raw, hdr->raw_len);
    for (int i = 0; i < J->nfeat; i++) {
        buf name;
        buf_init(&name);
        feature_name(J, i, &name);
        buf_appendc(&J->header, ',');
        csv_put_field(&J->header, name.data, name.len);
        buf_free(&name);
    }
    buf_appendc(&J->header, '\n');
    return 0;
}

/* Writes the header, once: before the first rows, or at the end of an empty input (so that
 * a join that fails at once writes nothing, not even to standard output). */
static int put_header(join *J, char *err, size_t errlen)
{
    if (J->header_done)
        return 0;
    J->header_done = 1;
    if (fwrite(J->header.data, 1, J->header.len, J->out) == J->header.len)
        return 0;
    snprintf(err, errlen, "writing %s: %s", J->o.out ? J->o.out : "the output", strerror(errno));
    return ERR_IO;
}

/* Flushes and closes the output; on success renames the temporary file into place, on
 * failure removes it. */
static int close_output(join *J, int ok, char *err, size_t errlen)
{
    if (!J->out)
        return 0;
    int rc = ok ? put_header(J, err, errlen) : 0;
    if (!rc && (fflush(J->out) != 0 || ferror(J->out))) {
        snprintf(err, errlen, "writing %s: %s", J->o.out ? J->o.out : "the output",
                 strerror(errno));
        rc = ERR_IO;
    }
    if (J->out != stdout && fclose(J->out) != 0 && !rc) {
        snprintf(err, errlen, "writing %s: %s", J->o.out, strerror(errno));
        rc = ERR_IO;
    }
    J->out = NULL;
    if (J->tmp_path) {
        if (ok && !rc && rename(J->tmp_path, J->o.out) != 0) {
            snprintf(err, errlen, "renaming %s to %s: %s", J->tmp_path, J->o.out,
                     strerror(errno));
            rc = ERR_IO;
        }
        if (!ok || rc)
            unlink(J->tmp_path);
    }
    return rc;
}

/* ---- batches ----------------------------------------------------------------------------- */

static void build_prefix(join *J)
{
    resp_argz(&J->prefix, "FS.JOIN");
    J->prefix_args = 1;
    if (J->o.service) {
        resp_argz(&J->prefix, J->o.service);
        J->prefix_args++;
        return;
    }
    char n[24];
    resp_argz(&J->prefix, "FEATURES");
    resp_arg(&J->prefix, n, i64_to_str(n, J->nfeat));
    buf name;
    buf_init(&name);
    for (int i = 0; i < J->nfeat; i++) {
        name.len = 0;
        buf_printf(&name, "%s:%s", J->feat[i].view, J->feat[i].field);
        resp_arg(&J->prefix, name.data, name.len);
    }
    buf_free(&name);
    J->prefix_args += 2 + J->nfeat;
}

static long default_batch(int nfeat)
{
    long n = JOIN_CELLS / (nfeat > 0 ? nfeat : 1);
    return n < JOIN_BATCH_MIN ? JOIN_BATCH_MIN : n > JOIN_BATCH_MAX ? JOIN_BATCH_MAX : n;
}

/* Fills b with up to --batch rows: 1 when it holds rows, 0 at the end of the input, or an
 * error in err (a malformed CSV, a row without an entity value or a timestamp). */
static int fill_batch(join *J, batch *b, char *err, size_t errlen)
{
    b->n = 0;
    b->args.len = b->raw.len = 0;
    while (b->n < J->o.batch) {
        csv_record rec;
        char e[512];
        int rc = csv_next(J->rd, &rec, e, sizeof e);
        if (rc < 0) {
            snprintf(err, errlen, "%s: %s", J->o.file, e);
            return rc;
        }
        if (rc == 0)
            break;
        for (int i = 0; i < J->nent; i++) {
            const csv_field *f = &rec.fields[J->ent_col[i]];
            if (f->len == 0) {
                snprintf(err, errlen, "%s: line %llu: no value in the entity column for '%s'",
                         J->o.file, (unsigned long long)rec.line, J->ent[i]);
                return ERR_INVAL;
            }
            resp_arg(&b->args, f->p, f->len);
        }
        const csv_field *ts = &rec.fields[J->ts_col];
        char tsbuf[CLI_TS_MAX];
        const char *arg;
        size_t len;
        if (ts->len == 0 || cli_ts(ts->p, ts->len, J->o.ts_unit, tsbuf, &arg, &len)) {
            snprintf(err, errlen, "%s: line %llu: %s timestamp in the column '%s'", J->o.file,
                     (unsigned long long)rec.line, ts->len ? "out of range" : "no", J->o.ts);
            return ERR_INVAL;
        }
        resp_arg(&b->args, arg, len);
        b->lines[b->n] = rec.line;
        b->raw_off[b->n++] = b->raw.len;
        buf_append(&b->raw, rec.raw, rec.raw_len);
    }
    b->raw_off[b->n] = b->raw.len;
    return b->n > 0;
}

/* Queues the FS.JOIN of b and sends what the socket takes now. */
static int send_batch(join *J, const batch *b, char *err, size_t errlen)
{
    buf *out = conn_out(J->c);
    char n[24];
    resp_cmd(out, J->prefix_args + 2 + b->n * (J->nent + 1));
    buf_append(out, J->prefix.data, J->prefix.len);
    resp_argz(out, "ROWS");
    resp_arg(out, n, i64_to_str(n, b->n));
    buf_append(out, b->args.data, b->args.len);
    return conn_flush(J->c, err, errlen);
}

/* One value of a reply row as a CSV cell. */
static int put_value(buf *line, const redisReply *v)
{
    char n[24];
    switch (v->type) {
    case REDIS_REPLY_NIL:
        return 0;
    case REDIS_REPLY_INTEGER:
        buf_append(line, n, i64_to_str(n, v->integer));
        return 0;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        csv_put_field(line, v->str, v->len);
        return 0;
    default:
        return -1;
    }
}

/* Writes the rows of b with the feature values of reply r. */
static int write_batch(join *J, const batch *b, const redisReply *r, buf *line, char *err,
                       size_t errlen)
{
    if (r->type == REDIS_REPLY_ERROR) {
        /* "... ROWS row N: why" names a row of the batch: say its CSV line instead */
        const char *at = strstr(r->str, "ROWS row ");
        char *end = NULL;
        unsigned long n = at ? strtoul(at + 9, &end, 10) : 0;
        if (n >= 1 && n <= (unsigned long)b->n && end[0] == ':' && end[1] == ' ')
            snprintf(err, errlen, "line %llu: %s", (unsigned long long)b->lines[n - 1], end + 2);
        else
            snprintf(err, errlen, "lines %llu-%llu: %s", (unsigned long long)b->lines[0],
                     (unsigned long long)b->lines[b->n - 1], r->str);
        return ERR_INVAL;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)b->n) {
        snprintf(err, errlen, "lines %llu-%llu: FS.JOIN replied %zu rows for %d",
                 (unsigned long long)b->lines[0], (unsigned long long)b->lines[b->n - 1],
                 r->type == REDIS_REPLY_ARRAY ? r->elements : 0, b->n);
        return ERR_PROTO;
    }
    line->len = 0;
    for (int i = 0; i < b->n; i++) {
        const redisReply *row = r->element[i];
        if (row->type != REDIS_REPLY_ARRAY || row->elements != (size_t)J->nfeat) {
            snprintf(err, errlen, "FS.JOIN replied %zu values for the row of line %llu where "
                                  "%d features were asked for (was the service changed?)",
                     row->type == REDIS_REPLY_ARRAY ? row->elements : 0,
                     (unsigned long long)b->lines[i], J->nfeat);
            return ERR_PROTO;
        }
        buf_append(line, b->raw.data + b->raw_off[i], b->raw_off[i + 1] - b->raw_off[i]);
        for (size_t k = 0; k < row->elements; k++) {
            buf_appendc(line, ',');
            if (put_value(line, row->element[k])) {
                snprintf(err, errlen, "FS.JOIN replied a value of RESP type %d",
                         row->element[k]->type);
                return ERR_PROTO;
            }
        }
        buf_appendc(line, '\n');
    }
    int rc = put_header(J, err, errlen);
    if (rc)
        return rc;
    if (fwrite(line->data, 1, line->len, J->out) != line->len) {
        snprintf(err, errlen, "writing %s: %s", J->o.out ? J->o.out : "the output",
                 strerror(errno));
        return ERR_IO;
    }
    J->rows += (uint64_t)b->n;
    return 0;
}

/* Keeps two batches in flight until the input is joined. */
static int run(join *J, char *err, size_t errlen)
{
    int inflight = 0, k = 0, more = 1, rc = 0;
    buf line;
    buf_init(&line);
    for (int i = 0; i < 2 && more; i++) {
        if ((rc = fill_batch(J, &J->b[i], err, errlen)) < 0)
            goto done;
        more = rc == 1;
        if (more) {
            if ((rc = send_batch(J, &J->b[i], err, errlen)) != 0)
                goto done;
            inflight++;
        }
    }
    while (inflight > 0) {
        redisReply *r;
        if ((rc = conn_reply(J->c, 1, &r, err, errlen)) < 0)
            goto done;
        rc = write_batch(J, &J->b[k], r, &line, err, errlen);
        freeReplyObject(r);
        if (rc)
            goto done;
        inflight--;
        progress_tick(&J->prog, J->rows, csv_bytes_read(J->rd));
        if (more) {
            if ((rc = fill_batch(J, &J->b[k], err, errlen)) < 0)
                goto done;
            more = rc == 1;
            if (more) {
                if ((rc = send_batch(J, &J->b[k], err, errlen)) != 0)
                    goto done;
                inflight++;
            }
        }
        k ^= 1;
    }
    rc = 0;
done:
    buf_free(&line);
    return rc;
}

static void join_free(join *J)
{
    for (int i = 0; i < J->nfeat; i++) {
        xfree(J->feat[i].view);
        xfree(J->feat[i].field);
    }
    xfree(J->feat);
    for (int i = 0; i < J->nent; i++)
        xfree(J->ent[i]);
    xfree(J->ent);
    xfree(J->ent_col);
    for (int i = 0; i < 2; i++) {
        buf_free(&J->b[i].args);
        buf_free(&J->b[i].raw);
        xfree(J->b[i].raw_off);
        xfree(J->b[i].lines);
    }
    buf_free(&J->prefix);
    buf_free(&J->header);
    xfree(J->tmp_path);
    conn_close(J->c);
    csv_close(J->rd);
}

int main(int argc, char **argv)
{
    join J = {0};
    parse_opts(argc, argv, &J.o);
    char err[1024];
    int fd = strcmp(J.o.file, "-") == 0 ? STDIN_FILENO : open(J.o.file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, TOOL ": cannot open %s: %s\n", J.o.file, strerror(errno));
        return 1;
    }
    if (fd == STDIN_FILENO)
        J.o.file = "<stdin>";
    struct stat st;
    uint64_t total = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    J.rd = csv_open_fd(fd);
    csv_record hdr;
    int ok = 0, rc = csv_next(J.rd, &hdr, err, sizeof err);
    if (rc <= 0) {
        fprintf(stderr, TOOL ": %s: %s\n", J.o.file, rc == 0 ? "empty (no header row)" : err);
        goto out;
    }
    cli_list ts = {0};
    rc = cli_split(J.o.ts, "--ts", &ts, err, sizeof err);
    if (rc == 0 && ts.n != 1) {
        snprintf(err, sizeof err, "--ts names one column, not '%s'", J.o.ts);
        rc = ERR_INVAL;
    }
    if (rc == 0)
        rc = cli_columns(&hdr, &ts, "--ts", &J.ts_col, err, sizeof err);
    cli_list_free(&ts);
    if (rc || (rc = conn_open(&J.o.conn, &J.c, err, sizeof err)) ||
        (rc = resolve_features(&J, err, sizeof err)))
        goto fail;
    J.ent_col = xcalloc((size_t)J.nent, sizeof *J.ent_col);
    if ((rc = map_entities(&J, &hdr, err, sizeof err)))
        goto fail;
    build_prefix(&J);
    if (!J.o.batch)
        J.o.batch = default_batch(J.nfeat);
    for (int i = 0; i < 2; i++) {
        J.b[i].raw_off = xcalloc((size_t)J.o.batch + 1, sizeof *J.b[i].raw_off);
        J.b[i].lines = xcalloc((size_t)J.o.batch, sizeof *J.b[i].lines);
    }
    if ((rc = open_output(&J, &hdr, err, sizeof err)))
        goto fail;
    progress_start(&J.prog, TOOL, "joined", total, J.o.quiet);
    rc = run(&J, err, sizeof err);
    if (rc == 0)
        rc = close_output(&J, 1, err, sizeof err);
    if (rc)
        goto fail;
    progress_end(&J.prog, J.rows, NULL);
    ok = 1;
    goto out;
fail:
    progress_clear(&J.prog);
    fprintf(stderr, TOOL ": %s\n", err);
    close_output(&J, 0, err, sizeof err);
out:
    join_free(&J);
    if (fd != STDIN_FILENO)
        close(fd);
    return !ok;
}
