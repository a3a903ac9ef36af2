/* progress.c: the progress line (see progress.h). */
#include "tools/progress.h"

#include <stdio.h>
#include <unistd.h>

#include "core/util.h"

#define REFRESH_US 250000

void progress_start(progress *p, const char *tool, const char *verb, uint64_t total_bytes,
                    int quiet)
{
    p->tool = tool;
    p->verb = verb;
    p->total = total_bytes;
    p->quiet = quiet;
    p->tty = !quiet && isatty(STDERR_FILENO);
    p->start_us = clock_mono_us();
    p->next_us = p->start_us + REFRESH_US;
    p->drawn = 0;
}

/* n with thousands separators ("1,234,567") into out (at least 32 bytes). */
static const char *count(uint64_t n, char *out)
{
    char digits[24];
    int k = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n), o = 0;
    for (int i = 0; i < k; i++) {
        if (i > 0 && (k - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    return out;
}

static double rate(uint64_t rows, int64_t us)
{
    return us > 0 ? (double)rows * 1e6 / (double)us : 0.0;
}

void progress_tick(progress *p, uint64_t rows, uint64_t bytes)
{
    if (!p->tty)
        return;
    int64_t now = clock_mono_us();
    if (now < p->next_us)
        return;
    p->next_us = now + REFRESH_US;
    int64_t took = now - p->start_us;
    char a[32], b[32], eta[48] = "";
    if (p->total > 0 && bytes > 0 && bytes <= p->total) {
        long left = (long)((double)took / 1e6 * (double)(p->total - bytes) / (double)bytes);
        snprintf(eta, sizeof eta, "  %3d%%  ETA %ld:%02ld", (int)(100.0 * bytes / p->total),
                 left / 60, left % 60);
    }
    fprintf(stderr, "\r%s: %s rows %s, %s rows/s%s\033[K", p->tool, count(rows, a), p->verb,
            count((uint64_t)rate(rows, took), b), eta);
    p->drawn = 1;
}

void progress_clear(progress *p)
{
    if (p->drawn)
        fputs("\r\033[K", stderr);
    p->drawn = 0;
}

void progress_end(progress *p, uint64_t rows, const char *note)
{
    progress_clear(p);
    if (p->quiet)
        return;
    int64_t took = clock_mono_us() - p->start_us;
    char a[32], b[32];
    fprintf(stderr, "%s: %s rows %s in %.2f s, %s rows/s%s%s\n", p->tool, count(rows, a),
            p->verb, (double)took / 1e6, count((uint64_t)rate(rows, took), b),
            note ? ", " : "", note ? note : "");
}
