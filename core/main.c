/* main.c: the command line. `quiver-server [config-file] [--name value ...]`, as
 * redis-server: the file is read first, then each --name overrides it. */
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/server.h"

static void usage(void)
{
    fprintf(stderr,
            "Usage: quiver-server [/path/to/quiver.conf] [--option value ...]\n"
            "       quiver-server --version\n\n"
            "Examples:\n"
            "  quiver-server\n"
            "  quiver-server --port 7777 --dir /var/lib/quiver --durability always\n"
            "  quiver-server /etc/quiver.conf --loglevel verbose\n");
}

int main(int argc, char **argv)
{
    char err[1024];
    config_init(&srv.cfg);
    int i = 1;
    if (argc > 1 && (!strcmp(argv[1], "-v") || !strcmp(argv[1], "--version"))) {
        printf("quiver-server v=%s\n", QUIVER_VERSION);
        return 0;
    }
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage();
        return 0;
    }
    if (argc > 1 && strncmp(argv[1], "--", 2) != 0) {
        if (config_load_file(&srv.cfg, argv[1], err, sizeof err) != 0) {
            fprintf(stderr, "*** FATAL CONFIG FILE ERROR ***\n%s\n", err);
            return 1;
        }
        i = 2;
    }
    while (i < argc) {
        if (strncmp(argv[i], "--", 2) != 0) {
            fprintf(stderr, "unexpected argument '%s'\n", argv[i]);
            usage();
            return 1;
        }
        const char *name = argv[i] + 2;
        int j = i + 1;
        while (j < argc && strncmp(argv[j], "--", 2) != 0)
            j++;
        const char *const *args = (const char *const *)argv + i + 1;
        if (config_set(&srv.cfg, name, j - i - 1, args, 1, err, sizeof err) != 0) {
            fprintf(stderr, "*** FATAL CONFIG ERROR ***\n--%s: %s\n", name, err);
            return 1;
        }
        i = j;
    }
    if (server_start(err, sizeof err) != 0) {
        log_warn("cannot start: %s", err);
        return 1;
    }
    return server_run();
}
