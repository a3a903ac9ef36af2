/* prom.c: the Prometheus text format writer of prom.h: family headers, sample lines, the
 * escaping of help texts and label values, and float values in the format's spelling. */
#include "query/prom.h"

#include <math.h>
#include <string.h>

/* Help texts escape \ and newline; label values also escape the double quote. Runs of
 * plain bytes are copied whole: a scrape writes thousands of these. */
static void escape(buf *b, const char *s, int quote)
{
    const char *special = quote ? "\\\n\"" : "\\\n";
    while (*s) {
        size_t run = strcspn(s, special);
        buf_append(b, s, run);
        s += run;
        if (*s) {
            buf_append(b, *s == '\n' ? "\\n" : *s == '"' ? "\\\"" : "\\\\", 2);
            s++;
        }
    }
}

static void append_str(buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void prom_escape_label(buf *b, const char *s)
{
    escape(b, s, 1);
}

void prom_family(buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s ", name);
    escape(b, help, 0);
    buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

void prom_value(buf *b, double v)
{
    char s[32];
    if (isnan(v))
        buf_append(b, "NaN", 3);
    else if (isinf(v))
        buf_append(b, v > 0 ? "+Inf" : "-Inf", 4);
    else
        buf_append(b, s, double_to_str(s, v));
}

void prom_sample(buf *b, const char *name, const char *suffix, const prom_label *labels, int n,
                 double v)
{
    append_str(b, name);
    if (suffix)
        append_str(b, suffix);
    for (int i = 0; i < n; i++) {
        buf_appendc(b, i ? ',' : '{');
        append_str(b, labels[i].name);
        buf_append(b, "=\"", 2);
        escape(b, labels[i].value, 1);
        buf_appendc(b, '"');
    }
    buf_append(b, n ? "} " : " ", n ? 2 : 1);
    prom_value(b, v);
    buf_appendc(b, '\n');
}

void prom_name_clean(char *s)
{
    for (char *p = s; *p; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == ':' ||
                 (*p >= '0' && *p <= '9' && p != s);
        if (!ok)
            *p = '_';
    }
}
