/* quiver-load.c: bulk-loads a CSV file into a feature view with pipelined FS.PUSH.
 *
 * The header names the columns: entity columns make the (composite) entity key, one column
 * is the event time, one may be the created time, and the feature fields are the listed
 * columns or every other one. Each data row becomes one FS.PUSH; an unquoted empty cell is
 * NULL and leaves its field out. Up to --pipeline commands are in flight; every reply is
 * checked, and an error reply is reported with the CSV line it came from. The pushes are
 * not one transaction: rows sent before a refusal came back stay stored. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/util.h"
#include "tools/cli.h"
#include "tools/conn.h"
#include "tools/csv.h"
#include "tools/progress.h"

#define TOOL "quiver-load"
#define MAX_SHOWN_ERRORS 100

static const char usage[] =
    "Usage: " TOOL " [-h host] [-p port] [-a password] --view V --entity COL[,COL...]\n"
    "                   --ts COL [--created COL] [--fields a,b,...] [--to online|offline|both]\n"
    "                   [--ts-unit s|ms|us] [--pipeline N] [--skip-errors] [-q] FILE.csv|-\n"
    "\n"
    "Loads a CSV file (RFC 4180, header row, LF or CRLF) into the feature view V of a\n"
    "quiver-server, one FS.PUSH per row.\n"
    "\n"
    "  -h HOST            server host (default 127.0.0.1)\n"
    "  -p PORT            server port (default 6379)\n"
    "  -a PASSWORD        AUTH with this password\n"
    "  --view V           the feature view to push to\n"
    "  --entity COLS      the column(s) holding the entity key, in the view's ENTITIES order\n"
    "  --ts COL           the event time column (ISO-8601, or a number in --ts-unit)\n"
    "  --created COL      the created time column (default: the server's receive time)\n"
    "  --fields A,B,...   the feature columns (default: every other column); the column\n"
    "                     names are the view's field names\n"
    "  --to WHERE         online, offline or both (default: the server's, both)\n"
    "  --ts-unit UNIT     unit of numeric epoch timestamps: s, ms (default) or us\n"
    "  --pipeline N       commands in flight (default 2000)\n"
    "  --skip-errors      report rows the server refuses and go on (exit 0)\n"
    "  -q, --quiet        no progress line\n"
    "  --help             this text\n"
    "\n"
    "An unquoted empty cell is NULL (the field is left out); \"\" is the empty string.\n"
    "A regular file is checked whole before anything is sent: a malformed file, or a row\n"
    "without an entity value or a timestamp, changes nothing. The pushes are not one\n"
    "transaction: when the server refuses a row, the rows before it stay stored, and so\n"
    "may rows sent after it before the refusal came back (at most --pipeline).\n"
    "Exit status: 0 when every row was stored (or --skip-errors), 1 otherwise.\n";

typedef struct load_opts {
    conn_opts conn;
    const char *view, *entity, *ts, *created, *fields, *to, *file;
    int ts_unit;
    long window;
    int skip_errors, quiet;
} load_opts;

/* One loading run: the column map, the connection, and the commands in flight. */
typedef struct load {
    load_opts o;
    csv_reader *rd;
    int nent, *ent_col;
    const char **ent_name;
    const csv_field **ent_val; /* the current row's entity values */
    int ts_col, created_col;
    int nfields, *field_col;
    buf field_arg;     /* each field's name as a RESP bulk, back to back */
    size_t *field_off; /* field i's bulk is field_arg[field_off[i]..field_off[i+1]) */
    buf head;          /* "$7 FS.PUSH $n view" as RESP bulks */
    buf tail;          /* "[TO x] FIELDS" as RESP bulks */
    buf key;           /* the current row's entity key */
    int tail_args;
    conn *c;
    uint64_t *lines; /* ring: the CSV line of each command in flight */
    uint64_t sent, done, stored, failed;
    int stop;
    progress prog;
} load;

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

static void parse_opts(int argc, char **argv, load_opts *o)
{
    enum { O_VIEW = 256, O_ENTITY, O_TS, O_CREATED, O_FIELDS, O_TO, O_UNIT, O_PIPE, O_SKIP,
           O_HELP };
    static const struct option longs[] = {
        {"view", 1, 0, O_VIEW},         {"entity", 1, 0, O_ENTITY},  {"ts", 1, 0, O_TS},
        {"created", 1, 0, O_CREATED},   {"fields", 1, 0, O_FIELDS},  {"to", 1, 0, O_TO},
        {"ts-unit", 1, 0, O_UNIT},      {"pipeline", 1, 0, O_PIPE},  {"skip-errors", 0, 0, O_SKIP},
        {"quiet", 0, 0, 'q'},           {"help", 0, 0, O_HELP},      {0, 0, 0, 0}};
    *o = (load_opts){.conn = {"127.0.0.1", 6379, NULL}, .ts_unit = CLI_TS_MS, .window = 2000};
    const char *unit = "ms";
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h:p:a:q", longs, NULL)) != -1) {
        switch (ch) {
        case 'h': o->conn.host = optarg; break;
        case 'p': o->conn.port = (int)number_arg(optarg, "-p", 1, 65535); break;
        case 'a': o->conn.password = optarg; break;
        case 'q': o->quiet = 1; break;
        case O_VIEW: o->view = optarg; break;
        case O_ENTITY: o->entity = optarg; break;
        case O_TS: o->ts = optarg; break;
        case O_CREATED: o->created = optarg; break;
        case O_FIELDS: o->fields = optarg; break;
        case O_TO: o->to = optarg; break;
        case O_UNIT: unit = optarg; break;
        case O_PIPE: o->window = number_arg(optarg, "--pipeline", 1, 1000000); break;
        case O_SKIP: o->skip_errors = 1; break;
        case O_HELP: fputs(usage, stdout); exit(0);
        case ':': die_usage("%s needs a value", argv[optind - 1]); break;
        default: die_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!(o->ts_unit = cli_ts_unit(unit)))
        die_usage("--ts-unit must be s, ms or us, not '%s'", unit);
    if (o->to && strcasecmp(o->to, "online") && strcasecmp(o->to, "offline") &&
        strcasecmp(o->to, "both"))
        die_usage("--to must be online, offline or both, not '%s'", o->to);
    if (!o->view)
        die_usage("%s is required", "--view");
    if (!o->entity)
        die_usage("%s is required", "--entity");
    if (!o->ts)
        die_usage("%s is required", "--ts");
    if (optind != argc - 1)
        die_usage("%s", optind < argc ? "give one input file (or - for stdin)"
                                      : "no input file (give FILE.csv, or - for stdin)");
    o->file = argv[optind];
}

/* Finds one column named by an option; -1 when name is NULL. */
static int column(const csv_record *hdr, const char *name, const char *option, int *col,
                  char *err, size_t errlen)
{
    *col = -1;
    if (!name)
        return 0;
    cli_list l = {0};
    int rc = cli_split(name, option, &l, err, errlen);
    if (rc == 0 && l.n != 1) {
        snprintf(err, errlen, "%s names one column, not '%s'", option, name);
        rc = ERR_INVAL;
    }
    if (rc == 0)
        rc = cli_columns(hdr, &l, option, col, err, errlen);
    cli_list_free(&l);
    return rc;
}

/* Maps the options' column names onto the header. */
static int map_columns(load *L, const csv_record *hdr, char *err, size_t errlen)
{
    cli_list ents = {0}, fields = {0};
    int rc = cli_split(L->o.entity, "--entity", &ents, err, errlen);
    if (rc)
        return rc;
    L->nent = ents.n;
    L->ent_col = xcalloc((size_t)ents.n, sizeof *L->ent_col);
    L->ent_name = xcalloc((size_t)ents.n, sizeof *L->ent_name);
    L->ent_val = xcalloc((size_t)ents.n, sizeof *L->ent_val);
    if ((rc = cli_columns(hdr, &ents, "--entity", L->ent_col, err, errlen)) ||
        (rc = column(hdr, L->o.ts, "--ts", &L->ts_col, err, errlen)) ||
        (rc = column(hdr, L->o.created, "--created", &L->created_col, err, errlen)))
        goto done;
    if (L->o.fields) {
        if ((rc = cli_split(L->o.fields, "--fields", &fields, err, errlen)))
            goto done;
        L->nfields = fields.n;
        L->field_col = xcalloc((size_t)fields.n, sizeof *L->field_col);
        if ((rc = cli_columns(hdr, &fields, "--fields", L->field_col, err, errlen)))
            goto done;
    } else {
        L->field_col = xcalloc((size_t)hdr->nfields, sizeof *L->field_col);
        for (int c = 0; c < hdr->nfields; c++) {
            int used = c == L->ts_col || c == L->created_col;
            for (int e = 0; e < L->nent; e++)
                used |= c == L->ent_col[e];
            if (!used)
                L->field_col[L->nfields++] = c;
        }
        if (L->nfields == 0) {
            snprintf(err, errlen, "no feature columns: the header has only the entity and "
                                  "timestamp columns");
            rc = ERR_INVAL;
            goto done;
        }
    }
    for (int e = 0; e < L->nent; e++)
        L->ent_name[e] = xstrdup(ents.items[e]);
    L->field_off = xcalloc((size_t)L->nfields + 1, sizeof *L->field_off);
    for (int i = 0; i < L->nfields; i++) {
        const csv_field *h = &hdr->fields[L->field_col[i]];
        L->field_off[i] = L->field_arg.len;
        resp_arg(&L->field_arg, h->p, h->len);
    }
    L->field_off[L->nfields] = L->field_arg.len;
done:
    cli_list_free(&ents);
    cli_list_free(&fields);
    return rc;
}

/* The parts of every command that do not change from row to row. */
static void build_constants(load *L)
{
    resp_argz(&L->head, "FS.PUSH");
    resp_argz(&L->head, L->o.view);
    if (L->o.to) {
        char up[16];
        size_t n = strlen(L->o.to);
        for (size_t i = 0; i < n; i++)
            up[i] = (char)(L->o.to[i] & ~0x20);
        resp_argz(&L->tail, "TO");
        resp_arg(&L->tail, up, n);
        L->tail_args = 2;
    }
    resp_argz(&L->tail, "FIELDS");
    L->tail_args++;
}

static void row_error(load *L, uint64_t line, const char *msg)
{
    L->failed++;
    if (!L->o.skip_errors)
        L->stop = 1;
    if (L->failed > MAX_SHOWN_ERRORS)
        return;
    progress_clear(&L->prog);
    fprintf(stderr, TOOL ": line %llu: %s\n", (unsigned long long)line, msg);
    if (L->failed == MAX_SHOWN_ERRORS)
        fprintf(stderr, TOOL ": (further errors are counted, not shown)\n");
}

/* What one data row sends besides its fields, once checked. */
typedef struct row_args {
    char tsbuf[CLI_TS_MAX], crbuf[CLI_TS_MAX];
    const char *ts, *created; /* created NULL: the server's time */
    size_t tslen, crlen;
    int present; /* fields that are not NULL */
} row_args;

/* Checks one data row (entity values present, timestamps in range) into *a and L->ent_val,
 * or says what is wrong with it. */
static int check_row(load *L, const csv_record *rec, row_args *a, char *err, size_t errlen)
{
    for (int e = 0; e < L->nent; e++) {
        L->ent_val[e] = &rec->fields[L->ent_col[e]];
        if (L->ent_val[e]->len == 0) {
            snprintf(err, errlen, "no value in the entity column '%s'", L->ent_name[e]);
            return ERR_INVAL;
        }
    }
    const csv_field *ts = &rec->fields[L->ts_col];
    if (ts->len == 0 || cli_ts(ts->p, ts->len, L->o.ts_unit, a->tsbuf, &a->ts, &a->tslen)) {
        snprintf(err, errlen, "%s timestamp in the column '%s'",
                 ts->len ? "out of range" : "no", L->o.ts);
        return ERR_INVAL;
    }
    a->created = NULL;
    if (L->created_col >= 0) {
        const csv_field *cr = &rec->fields[L->created_col];
        if (cr->len && cli_ts(cr->p, cr->len, L->o.ts_unit, a->crbuf, &a->created, &a->crlen)) {
            snprintf(err, errlen, "out of range timestamp in the column '%s'", L->o.created);
            return ERR_INVAL;
        }
    }
    a->present = 0;
    for (int i = 0; i < L->nfields; i++) {
        const csv_field *f = &rec->fields[L->field_col[i]];
        a->present += f->len > 0 || f->quoted;
    }
    return 0;
}

/* Queues the FS.PUSH of a checked row. */
static void queue_row(load *L, const csv_record *rec, const row_args *a)
{
    buf *out = conn_out(L->c);
    resp_cmd(out, 4 + (a->created ? 2 : 0) + L->tail_args + 2 * a->present);
    buf_append(out, L->head.data, L->head.len);
    L->key.len = 0;
    cli_entity_key(&L->key, L->ent_val, L->nent);
    resp_arg(out, L->key.data, L->key.len);
    resp_arg(out, a->ts, a->tslen);
    if (a->created) {
        resp_argz(out, "CREATED");
        resp_arg(out, a->created, a->crlen);
    }
    buf_append(out, L->tail.data, L->tail.len);
    for (int i = 0; i < L->nfields; i++) {
        const csv_field *f = &rec->fields[L->field_col[i]];
        if (f->len == 0 && !f->quoted)
            continue;
        buf_append(out, L->field_arg.data + L->field_off[i], L->field_off[i + 1] - L->field_off[i]);
        resp_arg(out, f->p, f->len);
    }
}

/* Checks one reply against the command it answers. */
static void take_reply(load *L, redisReply *r)
{
    uint64_t line = L->lines[L->done % (uint64_t)L->o.window];
    L->done++;
    if (r->type == REDIS_REPLY_ERROR)
        row_error(L, line, r->str);
    else
        L->stored++;
    freeReplyObject(r);
}

/* Reads rows into the window and replies out of it until the input ends or a stop. Returns
 * 0, or 1 when the CSV or the connection failed (already reported). */
static int run(load *L)
{
    char err[512];
    int eof = 0;
    uint64_t rows_at_tick = 0;
    while (!L->stop || L->done < L->sent) {
        while (!L->stop && !eof && L->sent - L->done < (uint64_t)L->o.window) {
            csv_record rec;
            int rc = csv_next(L->rd, &rec, err, sizeof err);
            if (rc == 0) {
                eof = 1;
                break;
            }
            if (rc < 0) {
                progress_clear(&L->prog);
                fprintf(stderr, TOOL ": %s: %s\n", L->o.file, err);
                L->stop = 2;
                break;
            }
            row_args a;
            if (check_row(L, &rec, &a, err, sizeof err) != 0) {
                row_error(L, rec.line, err);
                continue;
            }
            queue_row(L, &rec, &a);
            L->lines[L->sent % (uint64_t)L->o.window] = rec.line;
            L->sent++;
            if (conn_out(L->c)->len >= (256u << 10) && conn_flush(L->c, err, sizeof err))
                goto lost;
        }
        if (L->done == L->sent) {
            if (eof || L->stop)
                break;
            continue;
        }
        int wait = L->sent - L->done >= (uint64_t)L->o.window || eof || L->stop;
        redisReply *r;
        int rc;
        while ((rc = conn_reply(L->c, wait, &r, err, sizeof err)) == 1) {
            take_reply(L, r);
            wait = 0;
        }
        if (rc < 0)
            goto lost;
        if (L->done - rows_at_tick >= 1024) {
            rows_at_tick = L->done;
            progress_tick(&L->prog, L->stored, csv_bytes_read(L->rd));
        }
    }
    return L->stop == 2;
lost:
    progress_clear(&L->prog);
    fprintf(stderr, TOOL ": %s (%llu rows stored, %llu sent without a reply)\n", err,
            (unsigned long long)L->stored, (unsigned long long)(L->sent - L->done));
    return 1;
}

/* A regular file is read once before anything is sent, so that a malformed file (or,
 * without --skip-errors, a row that cannot be sent) changes nothing. Then L->rd starts
 * again at the first data row. 0, or 1 after reporting. */
static int precheck(load *L, int fd)
{
    char err[512];
    csv_record rec;
    uint64_t bad = 0;
    int rc;
    while ((rc = csv_next(L->rd, &rec, err, sizeof err)) == 1) {
        if (L->o.skip_errors)
            continue;
        row_args a;
        if (check_row(L, &rec, &a, err, sizeof err) && ++bad <= MAX_SHOWN_ERRORS)
            fprintf(stderr, TOOL ": %s: line %llu: %s\n", L->o.file,
                    (unsigned long long)rec.line, err);
    }
    if (rc < 0)
        fprintf(stderr, TOOL ": %s: %s\n", L->o.file, err);
    if (rc < 0 || bad) {
        fprintf(stderr, TOOL ": nothing was sent%s\n",
                bad ? " (rows that cannot be sent are listed above; --skip-errors skips them)"
                    : "");
        return 1;
    }
    csv_close(L->rd);
    L->rd = NULL;
    if (lseek(fd, 0, SEEK_SET) < 0) {
        fprintf(stderr, TOOL ": %s: %s\n", L->o.file, strerror(errno));
        return 1;
    }
    L->rd = csv_open_fd(fd);
    return csv_next(L->rd, &rec, err, sizeof err) == 1 ? 0 : 1;
}

static void load_free(load *L)
{
    for (int e = 0; e < L->nent && L->ent_name; e++)
        xfree((void *)L->ent_name[e]);
    xfree(L->ent_name);
    xfree(L->ent_val);
    xfree(L->ent_col);
    xfree(L->field_col);
    xfree(L->field_off);
    xfree(L->lines);
    buf_free(&L->field_arg);
    buf_free(&L->head);
    buf_free(&L->tail);
    buf_free(&L->key);
    conn_close(L->c);
    csv_close(L->rd);
}

int main(int argc, char **argv)
{
    load L = {0};
    parse_opts(argc, argv, &L.o);
    char err[1024];
    int fd = strcmp(L.o.file, "-") == 0 ? STDIN_FILENO : open(L.o.file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, TOOL ": cannot open %s: %s\n", L.o.file, strerror(errno));
        return 1;
    }
    if (fd == STDIN_FILENO)
        L.o.file = "<stdin>";
    struct stat st;
    if (fstat(fd, &st) != 0)
        st.st_mode = 0;
    uint64_t total = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    L.rd = csv_open_fd(fd);
    csv_record hdr;
    int status = 1, rc = csv_next(L.rd, &hdr, err, sizeof err);
    if (rc <= 0) {
        fprintf(stderr, TOOL ": %s: %s\n", L.o.file, rc == 0 ? "empty (no header row)" : err);
        goto out;
    }
    if (map_columns(&L, &hdr, err, sizeof err) != 0) {
        fprintf(stderr, TOOL ": %s\n", err);
        goto out;
    }
    build_constants(&L);
    progress_start(&L.prog, TOOL, "loaded", total, L.o.quiet);
    if (S_ISREG(st.st_mode) && precheck(&L, fd))
        goto out;
    if (conn_open(&L.o.conn, &L.c, err, sizeof err) != 0) {
        fprintf(stderr, TOOL ": %s\n", err);
        goto out;
    }
    L.lines = xcalloc((size_t)L.o.window, sizeof *L.lines);
    int broken = run(&L);
    char note[160] = "";
    if (L.failed)
        snprintf(note, sizeof note, "%llu refused%s", (unsigned long long)L.failed,
                 L.o.skip_errors ? " (skipped)" : "; stopped at the first");
    progress_end(&L.prog, L.stored, L.failed ? note : NULL);
    status = broken || (L.failed && !L.o.skip_errors);
out:
    load_free(&L);
    if (fd != STDIN_FILENO)
        close(fd);
    return status;
}
