/* cli.c: option lists, header lookups, entity keys and timestamp units for the tools (see
 * cli.h). */
#include "tools/cli.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"

/* The years 0000..9999 that ISO-8601 with four digits can say, in microseconds. */
#define MIN_US (-62167219200LL * 1000000)
#define MAX_US (253402300800LL * 1000000 - 1)
#define DAY_US (86400LL * 1000000)

int cli_split(const char *s, const char *option, cli_list *out, char *err, size_t errlen)
{
    out->n = 0;
    out->items = NULL;
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0) {
            snprintf(err, errlen, "%s: empty name in '%s'", option, s);
            cli_list_free(out);
            return ERR_INVAL;
        }
        out->items = xrealloc(out->items, (size_t)(out->n + 1) * sizeof *out->items);
        out->items[out->n++] = xmemdup(p, len);
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

void cli_list_free(cli_list *l)
{
    for (int i = 0; i < l->n; i++)
        xfree(l->items[i]);
    xfree(l->items);
    l->items = NULL;
    l->n = 0;
}

static int same(const csv_field *f, const char *name)
{
    size_t n = strlen(name);
    return f->len == n && memcmp(f->p, name, n) == 0;
}

/* err gets "option: no column 'name' in the header (columns: a, b, ...)". */
static int missing(const csv_record *hdr, const char *name, const char *option, char *err,
                   size_t errlen)
{
    int k = snprintf(err, errlen, "%s: no column '%s' in the header (columns:", option, name);
    for (int c = 0; c < hdr->nfields && k >= 0 && (size_t)k < errlen; c++)
        k += snprintf(err + k, errlen - (size_t)k, "%s %.*s", c ? "," : "",
                      (int)hdr->fields[c].len, hdr->fields[c].p);
    if (k >= 0 && (size_t)k < errlen)
        snprintf(err + k, errlen - (size_t)k, ")");
    return ERR_NOTFOUND;
}

int cli_columns(const csv_record *hdr, const cli_list *names, const char *option, int *idx,
                char *err, size_t errlen)
{
    for (int i = 0; i < names->n; i++) {
        idx[i] = -1;
        for (int c = 0; c < hdr->nfields; c++) {
            if (!same(&hdr->fields[c], names->items[i]))
                continue;
            if (idx[i] >= 0) {
                snprintf(err, errlen, "%s: the header has two columns named '%s'", option,
                         names->items[i]);
                return ERR_INVAL;
            }
            idx[i] = c;
        }
        if (idx[i] < 0)
            return missing(hdr, names->items[i], option, err, errlen);
    }
    return 0;
}

void cli_entity_key(buf *out, const csv_field *const *vals, int n)
{
    for (int i = 0; i < n; i++) {
        if (i)
            buf_appendc(out, ':');
        const char *p = vals[i]->p, *e = p + vals[i]->len;
        while (p < e) {
            const char *q = p;
            while (q < e && *q != ':' && *q != '\\')
                q++;
            buf_append(out, p, (size_t)(q - p));
            if (q == e)
                break;
            buf_appendc(out, '\\');
            buf_appendc(out, *q);
            p = q + 1;
        }
    }
}

int cli_ts_unit(const char *s)
{
    if (strcmp(s, "s") == 0)
        return CLI_TS_S;
    if (strcmp(s, "ms") == 0)
        return CLI_TS_MS;
    if (strcmp(s, "us") == 0)
        return CLI_TS_US;
    return 0;
}

/* A decimal number in unit, as microseconds: 1 (*has_frac set), 0 when s is no decimal
 * number, ERR_RANGE outside MIN_US..MAX_US. */
static int decimal_us(const char *s, size_t len, int unit, int64_t *us, int *has_frac)
{
    size_t i = 0;
    int neg = len > 0 && s[0] == '-';
    i += (size_t)neg;
    size_t first = i;
    int64_t ip = 0, frac = 0;
    int big = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (ip > MAX_US / 10)
            big = 1;
        else
            ip = ip * 10 + (s[i] - '0');
    }
    if (i == first)
        return 0;
    *has_frac = i < len && s[i] == '.';
    if (*has_frac) {
        size_t fstart = ++i;
        for (int64_t scale = unit / 10; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            frac += (s[i] - '0') * scale; /* digits past the microsecond add 0 */
            scale /= 10;
        }
        if (i == fstart)
            return 0;
    }
    if (i != len)
        return 0;
    if (big || ip > MAX_US / unit)
        return ERR_RANGE;
    int64_t v = ip * unit + frac;
    if (v > (neg ? -MIN_US : MAX_US))
        return ERR_RANGE;
    *us = neg ? -v : v;
    return 1;
}

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" for us in MIN_US..MAX_US (civil date from a day count, the
 * proleptic Gregorian calendar in 400-year eras). */
static size_t iso_format(int64_t us, char *out)
{
    int64_t days = us / DAY_US, rem = us % DAY_US;
    if (rem < 0) {
        rem += DAY_US;
        days--;
    }
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    int y = (int)(yoe + era * 400 + (m <= 2));
    int64_t secs = rem / 1000000;
    return (size_t)snprintf(out, CLI_TS_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", y, m, d,
                            (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60),
                            (int)(rem % 1000000));
}

int cli_ts(const char *s, size_t len, int unit, char *out, const char **arg, size_t *arglen)
{
    int64_t us = 0;
    int has_frac = 0;
    int rc = decimal_us(s, len, unit, &us, &has_frac);
    *arg = s;
    *arglen = len;
    if (rc == 0 || (unit == CLI_TS_MS && !has_frac))
        return 0; /* ISO text, or already the server's milliseconds */
    if (rc < 0)
        return rc;
    *arg = out;
    if (us >= 0 && us % 1000 == 0)
        *arglen = i64_to_str(out, us / 1000);
    else
        *arglen = iso_format(us, out);
    return 0;
}
