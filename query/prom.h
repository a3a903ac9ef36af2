/* prom.h: writing the Prometheus text exposition format, version 0.0.4 (what GET /metrics
 * answers, query/metrics.c). Pure formatting into a buf: no server state, so unit tests
 * drive it directly.
 *
 * The format, as these functions write it: each metric family is introduced once by
 *   # HELP <name> <help, with \ and newline escaped>
 *   # TYPE <name> counter|gauge|histogram|summary|untyped
 * and its samples follow, all together:
 *   <name>[suffix][{label="value",...}] <value>
 * Names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*; label values
 * escape \, " and newline; values are Go-style floats ("+Inf", "-Inf", "NaN"). Callers
 * pass valid names (the constants of metrics.c, or prom_name_clean()'s output); only help
 * texts and label values come from data and are escaped here.
 *
 * Threading: none. */
#ifndef QUIVER_PROM_H
#define QUIVER_PROM_H

#include "core/util.h"

typedef struct prom_label {
    const char *name, *value;
} prom_label;

/* The HELP and TYPE lines of a family. */
void prom_family(buf *b, const char *name, const char *type, const char *help);
/* One sample line: name, then suffix (NULL or "_bucket", "_sum", ...), the n labels (none
 * when n is 0), the value. */
void prom_sample(buf *b, const char *name, const char *suffix, const prom_label *labels, int n,
                 double v);
/* Appends s with \, " and newline escaped, as a label value needs. */
void prom_escape_label(buf *b, const char *s);
/* Appends v as the format writes floats: shortest round-trip digits, integers without an
 * exponent, +Inf, -Inf, NaN. */
void prom_value(buf *b, double v);
/* Turns s into a valid metric name in place: every character outside [a-zA-Z0-9_:] (and a
 * leading digit) becomes '_'. For names made from data (INFO field names). */
void prom_name_clean(char *s);

#endif
