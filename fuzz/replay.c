/* SPDX-License-Identifier: MIT */
/*
 * Replay a fuzz target over a corpus without libFuzzer: any compiler, any
 * build (the ASan build turns it into a memory-safety regression test).
 *
 *   fuzz_virtq_replay DIR|FILE...
 *
 * Runs LLVMFuzzerTestOneInput once per file (directories are read one
 * level deep, in name order, so runs are reproducible) and prints TAP with
 * one case for the whole target: "1..1" then "ok 1 - TARGET replayed N
 * inputs". A crash is the failure the runner sees; an unreadable path or
 * an empty corpus is "not ok", since a regression test that replayed
 * nothing has proved nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_TARGET
#define FUZZ_TARGET "fuzz"
#endif

/* Targets may define it; replay calls it when they do. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int read_file(const char *path, uint8_t **ret, size_t *ret_len)
{
        FILE *f = fopen(path, "rb");
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0;

        if (!f)
                return -errno;
        for (;;) {
                if (len == cap) {
                        uint8_t *p = realloc(buf, cap ? 2 * cap : 4096);

                        if (!p) {
                                free(buf);
                                fclose(f);
                                return -ENOMEM;
                        }
                        buf = p;
                        cap = cap ? 2 * cap : 4096;
                }
                size_t n = fread(buf + len, 1, cap - len, f);

                len += n;
                if (n == 0)
                        break;
        }
        fclose(f);
        /* Exactly @len bytes on the heap, so ASan sees reads past the end. */
        *ret = malloc(len ? len : 1);
        if (*ret)
                memcpy(*ret, buf, len);
        free(buf);
        *ret_len = len;
        return *ret ? 0 : -ENOMEM;
}

static int run_file(const char *path, unsigned *count)
{
        uint8_t *data = NULL;
        size_t len = 0;
        int r = read_file(path, &data, &len);

        if (r < 0) {
                printf("# %s: %s\n", path, strerror(-r));
                return r;
        }
        LLVMFuzzerTestOneInput(data, len);
        free(data);
        (*count)++;
        return 0;
}

static int cmp_names(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_dir(const char *dir, char ***ret, size_t *ret_n)
{
        DIR *d = opendir(dir);
        char **names = NULL;
        size_t n = 0;
        struct dirent *e;

        if (!d)
                return -errno;
        while ((e = readdir(d)) != NULL) {
                char **p;

                if (e->d_name[0] == '.')
                        continue;
                p = realloc(names, (n + 1) * sizeof(*names));
                if (!p || !(p[n] = strdup(e->d_name))) {
                        free(p ? p : names);
                        closedir(d);
                        return -ENOMEM;
                }
                names = p;
                n++;
        }
        closedir(d);
        qsort(names, n, sizeof(*names), cmp_names);
        *ret = names;
        *ret_n = n;
        return 0;
}

static int run_dir(const char *dir, unsigned *count)
{
        char **names = NULL;
        size_t n = 0;
        int r = list_dir(dir, &names, &n);

        if (r < 0) {
                printf("# %s: %s\n", dir, strerror(-r));
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                char path[4096];
                struct stat st;

                snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && r == 0)
                        r = run_file(path, count);
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char **argv)
{
        unsigned count = 0;
        int r = 0;

        printf("1..1\n");
        fflush(stdout);
        if (LLVMFuzzerInitialize)
                LLVMFuzzerInitialize(&argc, &argv);
        for (int i = 1; i < argc && r == 0; i++) {
                struct stat st;

                if (stat(argv[i], &st) < 0) {
                        printf("# %s: %s\n", argv[i], strerror(errno));
                        r = -errno;
                } else if (S_ISDIR(st.st_mode)) {
                        r = run_dir(argv[i], &count);
                } else {
                        r = run_file(argv[i], &count);
                }
        }
        if (r == 0 && count == 0)
                printf("# no inputs: give corpus directories or files\n");
        if (r == 0 && count > 0) {
                printf("ok 1 - %s replayed %u inputs\n", FUZZ_TARGET, count);
                return 0;
        }
        printf("not ok 1 - %s replayed %u inputs\n", FUZZ_TARGET, count);
        return 1;
}
