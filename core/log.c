/* log.c: the log, one line per message, written with a single write(2). */
#include "log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

static int log_level = LOG_NOTICE;
static int log_fd = 2;

void log_set_level(int level)
{
    log_level = level;
}

int log_parse_level(const char *name)
{
    static const char *names[] = {"debug", "verbose", "notice", "warning"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    return -1;
}

int log_set_file(const char *path)
{
    if (!path || !*path) {
        log_fd = 2;
        return 0;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return ERR_IO;
    if (log_fd > 2)
        close(log_fd);
    log_fd = fd;
    return 0;
}

void log_msg(int level, const char *fmt, ...)
{
    if (level < log_level)
        return;
    char line[1024];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%d:M ", (int)getpid());
    n += (int)strftime(line + n, sizeof line - n, "%d %b %Y %H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - n, ".%03d %c ", (int)(tv.tv_usec / 1000), ".-*#"[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    n = (m < 0 || n + m >= (int)sizeof line - 1) ? (int)sizeof line - 2 : n + m;
    line[n++] = '\n';
    ssize_t w = write(log_fd, line, n);
    (void)w;
}
