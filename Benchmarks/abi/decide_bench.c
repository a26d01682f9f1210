/*
 * decide_bench: nanoseconds per rdr_decide through libredirector's C ABI, for the same requests
 * decided with two snapshots of the same prefixes in one run:
 *   - "single": every target one URL, no health state (the decision before pools existed);
 *   - "pool":   the targets are pools of three members (weights 2 and 1, and a backup of
 *               priority 1) with health checks, decided with a loaded health state: all up
 *               (rendezvous hashing between two members), and with the first member of every
 *               pool down (one candidate left).
 *
 *   decide_bench <single.rdb> <pool.rdb> <up.health> <down.health> <clients.txt> [decisions [single|up|down]]
 *
 * clients.txt: one client address per line. Each request has its own path (a distinct object,
 * so rendezvous hashing runs for every pool decision). Runs alternate, best of 7 each. With a
 * variant named, only its decisions run, once, untimed: for counting instructions under callgrind
 * (scripts/bench-decide.sh --instructions).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "redirector.h"

#define REQUESTS 4096

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static rdr_table *open_table(const char *path) {
    char err[512];
    rdr_table *t = rdr_open(path, err, sizeof err);
    if (t == NULL) { fprintf(stderr, "decide_bench: %s\n", err); exit(1); }
    return t;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t) size + 1);
    if (data == NULL || fread(data, 1, (size_t) size, f) != (size_t) size) { perror(path); exit(1); }
    fclose(f);
    data[size] = 0;
    *len = (size_t) size;
    return data;
}

/* A health state for t loaded from the file at path; exits on failure. */
static rdr_health *load_health(const rdr_table *t, const char *path) {
    size_t len;
    char *data = read_file(path, &len);
    rdr_health *h = rdr_health_new(t);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char err[512];
    if (rdr_health_load(h, data, len, (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000, err, sizeof err) != RDR_OK) {
        fprintf(stderr, "decide_bench: health state %s: %s\n", path, err);
        exit(1);
    }
    free(data);
    return h;
}

/* ns per decision over `count` decisions of the prepared requests; counts redirects in *redirects. */
static double run(const rdr_table *t, rdr_request *requests, size_t count, size_t *redirects) {
    rdr_decision d;
    char location[512];
    size_t redirected = 0;
    double start = now_seconds();
    for (size_t i = 0; i < count; i++) {
        rdr_decide(t, &requests[i & (REQUESTS - 1)], &d, location, sizeof location);
        redirected += d.action == RDR_REDIRECT;
    }
    double elapsed = now_seconds() - start;
    *redirects = redirected;
    return elapsed * 1e9 / (double) count;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: decide_bench <single.rdb> <pool.rdb> <up.health> <down.health> <clients.txt> [decisions [single|up|down]]\n");
        return 2;
    }
    size_t count = argc > 6 ? strtoull(argv[6], NULL, 10) : 4000000;
    rdr_table *single = open_table(argv[1]);
    rdr_table *pool = open_table(argv[2]);
    rdr_health *up = load_health(pool, argv[3]);
    rdr_health *down = load_health(pool, argv[4]);

    size_t clients_len;
    char *clients = read_file(argv[5], &clients_len);
    char *lines[REQUESTS];
    size_t line_count = 0;
    for (char *line = strtok(clients, "\n"); line != NULL && line_count < REQUESTS; line = strtok(NULL, "\n")) {
        lines[line_count++] = line;
    }
    if (line_count == 0) { fprintf(stderr, "decide_bench: no clients\n"); return 1; }

    static rdr_request single_requests[REQUESTS], up_requests[REQUESTS], down_requests[REQUESTS];
    static char paths[REQUESTS][48];
    for (size_t i = 0; i < REQUESTS; i++) {
        const char *client = lines[i % line_count];
        int path_len = snprintf(paths[i], sizeof paths[i], "/pub/object-%zu.tar.gz", i);
        rdr_request r = {
            .client = client, .client_len = strlen(client), .method = "GET", .method_len = 3,
            .host = "downloads.example", .host_len = 17, .path = paths[i], .path_len = (size_t) path_len,
            .headers = NULL, .header_count = 0, .health = NULL,
        };
        single_requests[i] = r;
        r.health = up;
        up_requests[i] = r;
        r.health = down;
        down_requests[i] = r;
    }

    if (argc > 7) {
        size_t redirects;
        if (strcmp(argv[7], "single") == 0) {
            run(single, single_requests, count, &redirects);
        } else if (strcmp(argv[7], "up") == 0) {
            run(pool, up_requests, count, &redirects);
        } else if (strcmp(argv[7], "down") == 0) {
            run(pool, down_requests, count, &redirects);
        } else {
            fprintf(stderr, "decide_bench: unknown variant %s\n", argv[7]);
            return 2;
        }
        printf("  %s: %zu decisions, %zu%% redirected\n", argv[7], count, redirects * 100 / count);
        return 0;
    }

    double best_single = 1e9, best_up = 1e9, best_down = 1e9;
    size_t redirects_single = 0, redirects_up = 0, redirects_down = 0;
    for (int round = 0; round < 7; round++) {
        double s = run(single, single_requests, count, &redirects_single);
        double u = run(pool, up_requests, count, &redirects_up);
        double d = run(pool, down_requests, count, &redirects_down);
        if (s < best_single) best_single = s;
        if (u < best_up) best_up = u;
        if (d < best_down) best_down = d;
    }
    printf("  decisions: %zu per run, best of 7, %zu distinct requests\n", count, (size_t) REQUESTS);
    printf("  single target, no health        %8.1f ns/decision  (%zu%% redirected)\n", best_single,
           redirects_single * 100 / count);
    printf("  pool of 3, all up (hashing)     %8.1f ns/decision  (%zu%% redirected)  ratio %.3f\n", best_up,
           redirects_up * 100 / count, best_up / best_single);
    printf("  pool of 3, first member down    %8.1f ns/decision  (%zu%% redirected)  ratio %.3f\n", best_down,
           redirects_down * 100 / count, best_down / best_single);

    rdr_health_free(down);
    rdr_health_free(up);
    rdr_close(pool);
    rdr_close(single);
    free(clients);
    return 0;
}
