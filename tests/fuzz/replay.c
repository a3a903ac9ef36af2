/* replay.c: runs a fuzz target over a checked-in corpus without libFuzzer, so `make test`
 * can replay every fuzz corpus with an ordinary compiler (SQLite's fuzzcheck idea). Link it
 * with any file defining LLVMFuzzerTestOneInput; give it files and directories (the files
 * directly inside a directory are replayed, in name order). A crash or abort in the target
 * fails the run; an unreadable path is an error. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void *must(void *p)
{
    if (!p) {
        fprintf(stderr, "replay: out of memory\n");
        exit(1);
    }
    return p;
}

/* Reads the whole file into a malloc'd buffer; NULL if it cannot be read. */
static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat st;
    uint8_t *data = NULL;
    if (fstat(fileno(f), &st) == 0) {
        data = must(malloc((size_t)st.st_size + 1));
        *size = fread(data, 1, (size_t)st.st_size, f);
        if (ferror(f)) {
            free(data);
            data = NULL;
        }
    }
    fclose(f);
    return data;
}

static int replay_file(const char *path, long *count)
{
    size_t size;
    uint8_t *data = read_file(path, &size);
    if (!data) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return -1;
    }
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    (*count)++;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_dir(const char *dir, long *count)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: cannot open %s\n", dir);
        return -1;
    }
    char **paths = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        paths = must(realloc(paths, (n + 1) * sizeof *paths));
        paths[n] = must(malloc(len));
        snprintf(paths[n++], len, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (n > 0)
        qsort(paths, n, sizeof *paths, by_name);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (rc == 0 && stat(paths[i], &st) == 0 && S_ISREG(st.st_mode))
            rc = replay_file(paths[i], count);
        free(paths[i]);
    }
    free(paths);
    return rc;
}

int main(int argc, char **argv)
{
    long count = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "replay: cannot read %s\n", argv[i]);
            return 1;
        }
        int rc = S_ISDIR(st.st_mode) ? replay_dir(argv[i], &count) : replay_file(argv[i], &count);
        if (rc < 0)
            return 1;
    }
    printf("replayed %ld inputs\n", count);
    return 0;
}
