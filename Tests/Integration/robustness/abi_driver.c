/*
 * abi_driver.c — drives libredirector.so (include/redirector.h) for the robustness tests
 * (Tests/Integration/test_robustness.py) and for valgrind (scripts/soak.sh).
 *
 *   abi_driver truncate SNAPSHOT WORK
 *       every truncation length 0..size-1 of SNAPSHOT (and a few trailing-garbage lengths)
 *       must make rdr_open fail with a message naming WORK.
 *   abi_driver flip SNAPSHOT WORK COUNT SEED
 *       every bit of the 64-byte header, then COUNT random single-bit flips anywhere in the file:
 *       each must make rdr_open fail with a message; the file is restored after each flip.
 *   abi_driver corpus SNAPSHOT... -- FILE...
 *       opens every SNAPSHOT and every FILE as a snapshot path (most are rejected), and feeds every
 *       FILE to rdr_decide / rdr_lookup / rdr_lookup_batch_v4 / rdr_format_prefix /
 *       rdr_route_header as the decide fuzzer reads its inputs; checks the Location of every
 *       redirect (no byte <= 0x20 or 0x7f, starts with the target host). Used under valgrind.
 *   abi_driver soak SNAPSHOT COUNT
 *       COUNT decisions and lookups, reopening the table every 100,000, with RSS sampled.
 *
 * Prints one summary line "mode=... checked=N rejected=N accepted=N"; exits 1 on the first
 * violation with a message on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "redirector.h"

static void die(const char *what, const char *detail) {
    fprintf(stderr, "abi_driver: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (len == cap) buf = realloc(buf, cap *= 2);
        size_t n = fread(buf + len, 1, cap - len, f);
        if (n == 0) break;
        len += n;
    }
    fclose(f);
    *size = len;
    return buf;
}

static void write_file(const char *path, const unsigned char *data, size_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("cannot create", path);
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) die("cannot write", path);
        done += (size_t)n;
    }
    close(fd);
}

/* rdr_open must fail with a non-empty message naming the path. */
static void expect_rejected(const char *path, const char *what, unsigned long detail) {
    char err[512];
    memset(err, 'x', sizeof err);
    rdr_table *t = rdr_open(path, err, sizeof err);
    if (t) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s %lu was accepted", what, detail);
        rdr_close(t);
        die(msg, path);
    }
    if (memchr(err, 0, sizeof err) == NULL || strstr(err, path) == NULL || strlen(err) <= strlen(path) + 2) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s %lu: unclear message", what, detail);
        die(msg, err);
    }
}

static uint64_t rng_state;
static uint64_t next_random(void) {  /* SplitMix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Copies the snapshot to `work` and opens the copy for writing; the original bytes are in *data. */
static int working_copy(const char *snapshot, const char *work, unsigned char **data, size_t *size) {
    *data = read_file(snapshot, size);
    if (!*data) die("cannot read", snapshot);
    write_file(work, *data, *size);
    int fd = open(work, O_RDWR);
    if (fd < 0) die("cannot open", work);
    return fd;
}

static int mode_truncate(const char *snapshot, const char *work) {
    size_t size;
    unsigned char *data;
    int fd = working_copy(snapshot, work, &data, &size);
    unsigned long checked = 0;
    for (size_t len = size; len-- > 0;) {
        if (ftruncate(fd, (off_t)len) != 0) die("ftruncate", strerror(errno));
        expect_rejected(work, "truncation to", (unsigned long)len);
        checked++;
    }
    /* trailing garbage */
    static const size_t extra[] = {1, 7, 8, 64, 4096};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        write_file(work, data, size);
        int afd = open(work, O_WRONLY | O_APPEND);
        unsigned char junk[4096] = {0};
        if (write(afd, junk, extra[i]) != (ssize_t)extra[i]) die("append", work);
        close(afd);
        expect_rejected(work, "trailing bytes", (unsigned long)extra[i]);
        checked++;
    }
    close(fd);
    free(data);
    printf("mode=truncate size=%zu checked=%lu rejected=%lu accepted=0\n", size, checked, checked);
    return 0;
}

static int mode_flip(const char *snapshot, const char *work, unsigned long count, uint64_t seed) {
    size_t size;
    unsigned char *data;
    int fd = working_copy(snapshot, work, &data, &size);
    rng_state = seed;
    unsigned long checked = 0;
    unsigned long header_bits = 64 * 8;
    for (unsigned long i = 0; i < header_bits + count; i++) {
        size_t bit = i < header_bits ? i : (size_t)(next_random() % ((uint64_t)size * 8));
        size_t at = bit / 8;
        unsigned char flipped = data[at] ^ (unsigned char)(1u << (bit % 8));
        if (pwrite(fd, &flipped, 1, (off_t)at) != 1) die("pwrite", strerror(errno));
        expect_rejected(work, "bit flip at bit", (unsigned long)bit);
        if (pwrite(fd, &data[at], 1, (off_t)at) != 1) die("pwrite", strerror(errno));
        checked++;
    }
    /* the restored file is accepted again */
    char err[512];
    rdr_table *t = rdr_open(work, err, sizeof err);
    if (!t) die("the restored snapshot is rejected", err);
    rdr_close(t);
    close(fd);
    free(data);
    printf("mode=flip size=%zu checked=%lu rejected=%lu accepted=0\n", size, checked, checked);
    return 0;
}

/* One request from a decide-fuzzer input: [mode][buf][client...][method length][method][target]. */
static void decide_input(rdr_table *t, const unsigned char *in, size_t n, unsigned long *redirects) {
    if (n < 2) return;
    size_t cursor = 2;
    char client[64] = "";
    size_t client_len = 0;
    switch (in[0] & 3) {
    case 0: {
        size_t c = cursor < n ? in[cursor] : 0;
        if (c > n - cursor - 1) c = cursor < n ? n - cursor - 1 : 0;
        if (c > sizeof client) c = sizeof client;
        memcpy(client, in + cursor + 1, c);
        client_len = c;
        cursor += 1 + c;
        break;
    }
    case 1: {
        /* a client inside the fixtures' and the fuzz policy's ranges */
        static const char *known[] = {"192.0.2.10", "192.0.2.200", "198.51.100.5", "203.0.113.9", "2001:db8:b::1",
                                      "3.5.140.7", "34.1.208.9", "::ffff:192.0.2.1", "100.64.0.1", "13.69.0.5"};
        const char *k = known[cursor < n ? in[cursor] % 10 : 0];
        client_len = strlen(k);
        memcpy(client, k, client_len);
        cursor += 3;
        break;
    }
    case 2:
        break;
    default: {
        size_t c = (cursor < n && (in[cursor] & 1) == 0) ? 4 : 16;
        if (cursor + 1 + c <= n) {
            /* also a raw lookup */
            (void)rdr_lookup(t, in + cursor + 1, c);
        }
        cursor += 1 + c;
        break;
    }
    }
    if (cursor >= n) return;
    size_t mlen = in[cursor] % 24;
    if (mlen > n - cursor - 1) mlen = n - cursor - 1;
    const char *method = (const char *)in + cursor + 1;
    const char *path = method + mlen;
    size_t path_len = n - (cursor + 1 + mlen);

    rdr_request req = {client, client_len, method, mlen, "mirror.test", 11, path, path_len, NULL, 0, NULL, NULL, 0, 0};
    rdr_decision d;
    char small[24];
    int rc = rdr_decide(t, &req, &d, small, sizeof small);
    char *buf = small;
    size_t buflen = sizeof small;
    if (rc == RDR_ENOSPC) {
        buflen = d.location_len + 1;
        buf = malloc(buflen);
        rc = rdr_decide(t, &req, &d, buf, buflen);
    }
    if (rc != RDR_OK) die("rdr_decide failed", NULL);
    if (d.action == RDR_REDIRECT) {
        (*redirects)++;
        if (d.status < 300 || d.status > 399) die("redirect with a non-3xx status", NULL);
        /* the target as configured, or without its final '/' when the path's own '/' follows */
        size_t host = strlen(d.target_host);
        if (host > 0 && d.target_host[host - 1] == '/' && (d.location_len < host || memcmp(buf, d.target_host, host) != 0)) host--;
        if (d.location_len < host || memcmp(buf, d.target_host, host) != 0) die("Location does not start with its target", buf);
        for (size_t i = 0; i < d.location_len; i++)
            if ((unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] == 0x7f) die("Location holds a control byte", NULL);
    }
    char prefix[64];
    if (rdr_format_prefix(t, &d, prefix, sizeof prefix) < 0) die("rdr_format_prefix failed", NULL);
    for (int32_t i = 0; i < rdr_route_header_count(t, d.route); i++) {
        const char *name, *value;
        if (rdr_route_header(t, d.route, i, &name, &value) != RDR_OK) die("rdr_route_header failed", NULL);
    }
    if (buf != small) free(buf);
}

static int mode_corpus(int argc, char **argv) {
    int split = 0;
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--") == 0) split = i;
    if (split == 0) die("usage: corpus SNAPSHOT... -- FILE...", NULL);
    unsigned long opened = 0, rejected = 0, decisions = 0, redirects = 0;
    for (int s = 0; s < split; s++) {
        char err[512];
        rdr_table *t = rdr_open(argv[s], err, sizeof err);
        if (!t) die("cannot open snapshot", err);
        opened++;
        uint32_t batch[256];
        int32_t providers[256];
        for (int f = split + 1; f < argc; f++) {
            size_t n;
            unsigned char *in = read_file(argv[f], &n);
            if (!in) continue;
            decide_input(t, in, n, &redirects);
            decisions++;
            /* the same bytes as addresses */
            for (size_t i = 0; i < 256; i++) batch[i] = n >= 4 ? (uint32_t)in[i % n] << 24 | (uint32_t)in[(i + 1) % n] << 16 | (uint32_t)i : (uint32_t)i;
            rdr_lookup_batch_v4(t, batch, providers, 256);
            for (size_t i = 0; i + 16 <= n && i < 64; i += 16) rdr_lookup(t, in + i, 16);
            free(in);
        }
        for (int32_t p = 0; p < rdr_provider_count(t) + 2; p++) (void)rdr_provider_name(t, p - 1);
        rdr_close(t);
    }
    /* open/close cycles of the good snapshots: nothing may accumulate */
    for (int round = 0; round < 20; round++) {
        for (int s = 0; s < split; s++) {
            char err[512];
            rdr_table *t = rdr_open(argv[s], err, sizeof err);
            if (!t) die("cannot reopen snapshot", err);
            opened++;
            rdr_close(t);
        }
    }
    /* every corpus file as a snapshot path: almost all rejected, none may crash or leak */
    for (int f = split + 1; f < argc; f++) {
        char err[256];
        rdr_table *t = rdr_open(argv[f], err, sizeof err);
        if (t) { opened++; rdr_close(t); } else rejected++;
    }
    char err[64];
    if (rdr_open(NULL, err, sizeof err) != NULL || rdr_open("/nonexistent/x.rdb", NULL, 0) != NULL) die("bad open accepted", NULL);
    rdr_close(NULL);
    printf("mode=corpus snapshots=%d files=%d decisions=%lu redirects=%lu opened=%lu rejected=%lu\n",
           split, argc - split - 1, decisions, redirects, opened, rejected);
    return 0;
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

/* COUNT decisions and lookups in a loop (plus an open/close every 100,000), RSS sampled. */
static int mode_soak(const char *snapshot, unsigned long count) {
    char err[512];
    rdr_table *t = rdr_open(snapshot, err, sizeof err);
    if (!t) die("cannot open", err);
    static const char *clients[] = {"192.0.2.10", "192.0.2.200", "198.51.100.5", "203.0.113.9", "2001:db8:b::1",
                                    "10.1.2.3", "::ffff:192.0.2.10", "garbage"};
    static const char *paths[] = {"/v2/library/nginx/manifests/1.25", "/binaries/kubectl?arch=amd64", "/v2/",
                                  "/v2/a/blobs/sha256:00ff", "/index.html", "/v2/a\r\nx"};
    char buf[1024];
    long first = 0, warm = 0, peak = 0;
    unsigned long redirects = 0;
    for (unsigned long i = 0; i < count; i++) {
        const char *c = clients[i % 8], *p = paths[(i / 8) % 6];
        rdr_request req = {c, strlen(c), "GET", 3, "h", 1, p, strlen(p), NULL, 0, NULL, NULL, 0, 0};
        rdr_decision d;
        if (rdr_decide(t, &req, &d, buf, sizeof buf) != RDR_OK) die("rdr_decide failed", NULL);
        redirects += d.action == RDR_REDIRECT;
        uint32_t addr = (uint32_t)(i * 2654435761u);
        int32_t provider;
        rdr_lookup_batch_v4(t, &addr, &provider, 1);
        if (i % 100000 == 99999) {
            rdr_table *again = rdr_open(snapshot, err, sizeof err);
            if (!again) die("cannot reopen", err);
            rdr_close(t);
            t = again;
            long kb = rss_kb();
            if (first == 0) first = kb;
            if (i + 1 == count / 10 || (warm == 0 && i + 1 >= count / 10)) warm = kb;
            if (kb > peak) peak = kb;
        }
    }
    long last = rss_kb();
    rdr_close(t);
    printf("mode=soak decisions=%lu redirects=%lu reopens=%lu rss_first_kb=%ld rss_warm_kb=%ld rss_peak_kb=%ld rss_last_kb=%ld\n",
           count, redirects, count / 100000, first, warm, peak, last);
    return 0;
}

int main(int argc, char **argv) {
    if (rdr_abi_version() != RDR_ABI_VERSION) die("ABI version mismatch", NULL);
    if (argc >= 4 && strcmp(argv[1], "truncate") == 0) return mode_truncate(argv[2], argv[3]);
    if (argc >= 6 && strcmp(argv[1], "flip") == 0)
        return mode_flip(argv[2], argv[3], strtoul(argv[4], NULL, 10), strtoull(argv[5], NULL, 10));
    if (argc >= 3 && strcmp(argv[1], "corpus") == 0) return mode_corpus(argc - 2, argv + 2);
    if (argc >= 4 && strcmp(argv[1], "soak") == 0) return mode_soak(argv[2], strtoul(argv[3], NULL, 10));
    fprintf(stderr, "usage: abi_driver truncate SNAPSHOT WORK | flip SNAPSHOT WORK COUNT SEED | corpus SNAPSHOT... -- FILE... | soak SNAPSHOT COUNT\n");
    return 2;
}
