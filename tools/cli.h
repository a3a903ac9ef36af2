/* cli.h: what quiver-load and quiver-join share besides CSV and the connection: comma
 * separated option lists, finding columns by their header name, composite entity keys, and
 * the timestamp units of numeric epoch columns. Plain functions, no state. */
#ifndef QUIVER_TOOLS_CLI_H
#define QUIVER_TOOLS_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "tools/csv.h"

/* A comma separated option value, split. Items are NUL-terminated copies. */
typedef struct cli_list {
    int n;
    char **items;
} cli_list;

/* Splits "a,b,c" (no quoting). An empty list or item is ERR_INVAL with err naming option. */
int cli_split(const char *s, const char *option, cli_list *out, char *err, size_t errlen);
void cli_list_free(cli_list *l);

/* Finds each of names in the header record hdr: idx[k] is its column. ERR_NOTFOUND when a
 * name is no column (err names it, the option that asked for it and the columns there are),
 * ERR_INVAL when it names two columns. */
int cli_columns(const csv_record *hdr, const cli_list *names, const char *option, int *idx,
                char *err, size_t errlen);

/* Appends the composite entity key of n values to out: joined by ':', with ':' and '\'
 * inside a value written "\:" and "\\" (DESIGN.md "Feature store"). */
void cli_entity_key(buf *out, const csv_field *const *vals, int n);

/* Timestamp units of a numeric epoch column, in microseconds. */
enum { CLI_TS_S = 1000000, CLI_TS_MS = 1000, CLI_TS_US = 1 };
/* "s", "ms", "us" -> CLI_TS_*; 0 when unknown. */
int cli_ts_unit(const char *s);

#define CLI_TS_MAX 40
/* The server's form of a timestamp cell s[0..len): a decimal number ("-12", "1.5") is an
 * epoch time in unit (CLI_TS_*; digits past the microsecond are dropped) and is sent as
 * integer milliseconds when exact and not negative, else as ISO-8601 with microseconds;
 * anything else (ISO-8601 text) goes as it is, for the server to check. *arg and *arglen
 * get the result: s itself, or out (CLI_TS_MAX bytes). ERR_RANGE: a number outside the
 * years 0000..9999. */
int cli_ts(const char *s, size_t len, int unit, char *out, const char **arg, size_t *arglen);

#endif
