/*
 * abi_bench: lookups per second through libredirector's C ABI, next to a 1-bit binary radix
 * tree (the structure of NGINX's geo module) built from the same prefixes, in the same run.
 *
 *   abi_bench <snapshot.rdb> <prefixes.txt> <family 4|6> [addresses] [threads]
 *
 * With threads > 1 it also runs rdr_lookup and the radix tree on that many threads at once, each
 * over its own share of the addresses, and reports the speed-up over one thread: lookups write
 * nothing shared, so both should scale with the cores (the radix tree shows what this machine's
 * memory system allows).
 *
 * prefixes.txt holds "prefix<TAB>anything" lines (a pyasn dump, decompressed); ';' lines are skipped.
 * Addresses are uniformly random (fixed seed); for IPv6 they are drawn inside the table's prefixes
 * (a uniformly random IPv6 address almost never matches anything).
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redirector.h"

typedef struct {
    int32_t child[2];
    int32_t value;          /* index of the prefix ending here + 1, 0 when none */
} radix_node;

typedef struct {
    radix_node *nodes;
    size_t      count, capacity;
} radix_tree;

static int32_t radix_new(radix_tree *t) {
    if (t->count == t->capacity) {
        t->capacity = t->capacity ? t->capacity * 2 : 1024;
        t->nodes = realloc(t->nodes, t->capacity * sizeof(radix_node));
        if (t->nodes == NULL) { perror("realloc"); exit(1); }
    }
    t->nodes[t->count] = (radix_node){{-1, -1}, 0};
    return (int32_t) t->count++;
}

static void radix_insert(radix_tree *t, const uint8_t *key, int bits, int32_t value) {
    int32_t node = 0;
    for (int i = 0; i < bits; i++) {
        int bit = (key[i >> 3] >> (7 - (i & 7))) & 1;
        if (t->nodes[node].child[bit] < 0) {
            int32_t child = radix_new(t);
            t->nodes[node].child[bit] = child;
        }
        node = t->nodes[node].child[bit];
    }
    if (t->nodes[node].value == 0) t->nodes[node].value = value;
}

static inline int32_t radix_find32(const radix_tree *t, uint32_t key) {
    int32_t node = 0, found = t->nodes[0].value;
    for (int i = 0; i < 32; i++) {
        node = t->nodes[node].child[(key >> (31 - i)) & 1];
        if (node < 0) break;
        if (t->nodes[node].value) found = t->nodes[node].value;
    }
    return found;
}

static inline int32_t radix_find128(const radix_tree *t, const uint8_t *key) {
    int32_t node = 0, found = t->nodes[0].value;
    for (int i = 0; i < 128; i++) {
        node = t->nodes[node].child[(key[i >> 3] >> (7 - (i & 7))) & 1];
        if (node < 0) break;
        if (t->nodes[node].value) found = t->nodes[node].value;
    }
    return found;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static inline uint64_t next_random(void) {   /* xorshift64* */
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

/* One thread's share of a parallel run. */
typedef struct {
    const rdr_table  *table;
    const radix_tree *tree;
    const uint32_t   *v4;
    const uint8_t   (*v6)[16];
    size_t            begin, end;
    int               family, use_radix;
    int64_t           sum;
} lookup_share;

static void *lookup_worker(void *argument) {
    lookup_share *share = argument;
    int64_t sum = 0;
    for (size_t i = share->begin; i < share->end; i++) {
        if (share->use_radix) {
            sum += share->family == 4 ? radix_find32(share->tree, share->v4[i]) : radix_find128(share->tree, share->v6[i]);
        } else if (share->family == 4) {
            uint32_t be = htonl(share->v4[i]);
            sum += rdr_lookup(share->table, (const uint8_t *) &be, 4);
        } else {
            sum += rdr_lookup(share->table, share->v6[i], 16);
        }
    }
    share->sum = sum;
    return NULL;
}

/* Seconds for `threads` threads to look up all n addresses together (radix tree or rdr_lookup). */
static double parallel_run(const rdr_table *t, const radix_tree *tree, const uint32_t *v4, uint8_t (*v6)[16],
                           size_t n, int family, int threads, int use_radix, volatile int64_t *sink) {
    pthread_t ids[64];
    lookup_share shares[64];
    double start = now();
    for (int k = 0; k < threads; k++) {
        shares[k] = (lookup_share){t, tree, v4, (const uint8_t (*)[16]) v6, n * k / threads, n * (k + 1) / threads,
                                   family, use_radix, 0};
        if (pthread_create(&ids[k], NULL, lookup_worker, &shares[k]) != 0) { perror("pthread_create"); exit(1); }
    }
    for (int k = 0; k < threads; k++) {
        pthread_join(ids[k], NULL);
        *sink += shares[k].sum;
    }
    return now() - start;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s snapshot.rdb prefixes.txt 4|6 [addresses]\n", argv[0]);
        return 2;
    }
    int family = atoi(argv[3]);
    size_t n = argc > 4 ? strtoul(argv[4], NULL, 10) : 16u << 20;
    int threads = argc > 5 ? atoi(argv[5]) : 1;
    if (threads < 1 || threads > 64) { fprintf(stderr, "threads must be 1-64\n"); return 2; }
    char err[512];

    /* Load time: average of repeated opens (page cache warm after the first). */
    rdr_table *t = rdr_open(argv[1], err, sizeof err);
    if (t == NULL) { fprintf(stderr, "%s\n", err); return 1; }
    int opens = 20;
    double start = now();
    for (int i = 0; i < opens; i++) {
        rdr_table *again = rdr_open(argv[1], err, sizeof err);
        if (again == NULL) { fprintf(stderr, "%s\n", err); return 1; }
        rdr_close(again);
    }
    double load_ms = (now() - start) / opens * 1e3;

    /* The baseline tree, from the same prefixes. */
    radix_tree tree = {0};
    radix_new(&tree);
    FILE *f = fopen(argv[2], "r");
    if (f == NULL) { perror(argv[2]); return 1; }
    char line[256];
    size_t prefixes = 0, stored = 0, cap = 1 << 20;
    uint8_t (*nets)[16] = malloc(cap * 16);
    int *lens = malloc(cap * sizeof(int));
    while (fgets(line, sizeof line, f)) {
        if (line[0] == ';') continue;
        char *slash = strchr(line, '/');
        if (slash == NULL) continue;
        *slash = '\0';
        int len = atoi(slash + 1);
        uint8_t key[16] = {0};
        int is6 = strchr(line, ':') != NULL;
        if ((family == 6) != is6) continue;
        if (inet_pton(is6 ? AF_INET6 : AF_INET, line, key) != 1) continue;
        radix_insert(&tree, key, len, (int32_t) ++prefixes);
        if (stored == cap) { cap *= 2; nets = realloc(nets, cap * 16); lens = realloc(lens, cap * sizeof(int)); }
        memcpy(nets[stored], key, 16);
        lens[stored++] = len;
    }
    fclose(f);

    /* Addresses. */
    uint32_t *v4 = NULL;
    uint8_t (*v6)[16] = NULL;
    if (family == 4) {
        v4 = malloc(n * sizeof *v4);
        for (size_t i = 0; i < n; i++) v4[i] = (uint32_t) next_random();
    } else {
        v6 = malloc(n * 16);
        for (size_t i = 0; i < n; i++) {
            size_t p = next_random() % stored;
            uint64_t r1 = next_random(), r2 = next_random();
            for (int b = 0; b < 16; b++) {
                uint8_t random_byte = (uint8_t) ((b < 8 ? r1 : r2) >> ((b & 7) * 8));
                int keep = lens[p] - b * 8;          /* network bits in this byte */
                uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t) (0xff << (8 - keep));
                v6[i][b] = (uint8_t) ((nets[p][b] & mask) | (random_byte & ~mask));
            }
        }
    }

    int32_t *out = malloc(n * sizeof *out);
    volatile int64_t sink = 0;
    int64_t sum = 0;

    /* Single calls through the ABI. */
    start = now();
    if (family == 4) {
        for (size_t i = 0; i < n; i++) {
            uint32_t be = htonl(v4[i]);
            sum += rdr_lookup(t, (const uint8_t *) &be, 4);
        }
    } else {
        for (size_t i = 0; i < n; i++) sum += rdr_lookup(t, v6[i], 16);
    }
    double abi_s = now() - start;
    sink += sum;

    double batch_s = 0;
    if (family == 4) {
        start = now();
        rdr_lookup_batch_v4(t, v4, out, n);
        batch_s = now() - start;
        sink += out[n - 1];
    }

    sum = 0;
    start = now();
    if (family == 4) {
        for (size_t i = 0; i < n; i++) sum += radix_find32(&tree, v4[i]);
    } else {
        for (size_t i = 0; i < n; i++) sum += radix_find128(&tree, v6[i]);
    }
    double radix_s = now() - start;
    sink += sum;

    FILE *snap = fopen(argv[1], "rb");
    fseek(snap, 0, SEEK_END);
    long bytes = ftell(snap);
    fclose(snap);

    printf("IPv%d: %zu prefixes, %zu random addresses\n", family, prefixes, n);
    printf("  %-34s %10.1f M lookups/s\n", "libredirector rdr_lookup", n / abi_s / 1e6);
    if (family == 4)
        printf("  %-34s %10.1f M lookups/s\n", "libredirector rdr_lookup_batch_v4", n / batch_s / 1e6);
    printf("  %-34s %10.1f M lookups/s\n", "1-bit radix tree (C, nginx geo)", n / radix_s / 1e6);
    printf("  %-34s %10.2fx\n", "rdr_lookup / radix tree", radix_s / abi_s);
    printf("  %-34s %10.3f ms\n", "rdr_open (load + validate)", load_ms);
    printf("  %-34s %10ld bytes (%.2f B/prefix)\n", "snapshot size", bytes, (double) bytes / prefixes);
    printf("  %-34s %10zu bytes (%.2f B/prefix)\n", "radix tree size", tree.count * sizeof(radix_node),
           (double) (tree.count * sizeof(radix_node)) / prefixes);
    if (threads > 1) {
        /* One thread, then all together, over the same addresses (so the same cache behaviour). */
        double abi_one = parallel_run(t, &tree, v4, v6, n, family, 1, 0, &sink);
        double abi_all = parallel_run(t, &tree, v4, v6, n, family, threads, 0, &sink);
        double radix_one = parallel_run(t, &tree, v4, v6, n, family, 1, 1, &sink);
        double radix_all = parallel_run(t, &tree, v4, v6, n, family, threads, 1, &sink);
        printf("  %d threads:\n", threads);
        printf("  %-34s %10.1f M lookups/s  %.2fx one thread\n", "  rdr_lookup", n / abi_all / 1e6, abi_one / abi_all);
        printf("  %-34s %10.1f M lookups/s  %.2fx one thread\n", "  1-bit radix tree", n / radix_all / 1e6, radix_one / radix_all);
    }
    rdr_close(t);
    return sink == 42 ? 3 : 0;
}
