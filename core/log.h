/* log.h: leveled logging to stderr or a file, Redis-style lines:
 *   pid:role dd Mon yyyy hh:mm:ss.mmm <level-char> message
 * Safe to call from any thread (one write(2) per line). */
#ifndef QUIVER_LOG_H
#define QUIVER_LOG_H

enum { LOG_DEBUG, LOG_VERBOSE, LOG_NOTICE, LOG_WARNING };

void log_set_level(int level);
int log_parse_level(const char *name); /* -1 if unknown */
int log_set_file(const char *path);    /* "" = stderr; returns 0 or ERR_IO */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)

#endif
