/* progress.h: the tools' progress line on stderr: rows so far, rows per second, and an ETA
 * from the bytes read against the input's size when it is known (a regular file).
 *
 * On a terminal the line is redrawn in place about four times a second; otherwise only
 * the final line is written (logs stay readable). Quiet writes nothing. */
#ifndef QUIVER_TOOLS_PROGRESS_H
#define QUIVER_TOOLS_PROGRESS_H

#include <stdint.h>

typedef struct progress {
    const char *tool; /* the line's prefix, "quiver-load" */
    const char *verb; /* "loaded", "joined" */
    uint64_t total;   /* input size in bytes; 0 when unknown */
    int tty, quiet;
    int64_t start_us, next_us;
    int drawn; /* a refreshed line is on the terminal */
} progress;

void progress_start(progress *p, const char *tool, const char *verb, uint64_t total_bytes,
                    int quiet);
/* Redraws when 250 ms have passed since the last time (reads the clock on each call). */
void progress_tick(progress *p, uint64_t rows, uint64_t bytes);
/* Clears the refreshed line (before another message goes to stderr). */
void progress_clear(progress *p);
/* The final line: rows, seconds, rows per second, then note when not NULL. */
void progress_end(progress *p, uint64_t rows, const char *note);

#endif
