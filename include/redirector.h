/*
 * redirector.h — C ABI of libredirector.so.
 *
 * The library loads a compiled snapshot (.rdb, see `redirector compile`) and answers
 * two questions: which provider owns a client address (longest-prefix match), and
 * what an HTTP request from that client should get (pass, redirect, or a fixed answer).
 *
 * Targets are pools of mirrors. A decision skips the members a health state marks down
 * (rdr_health, loaded from the file `redirector probe` writes) and, where routes look at
 * request headers, reads the headers the caller passes (rdr_header_name lists the names).
 *
 * Threading and memory:
 *   - Every call is synchronous; the library starts no threads and uses no signals.
 *   - rdr_open/rdr_close, rdr_health_new/rdr_health_load/rdr_health_free and
 *     rdr_format_skipped allocate; no other call allocates. All output is written
 *     into caller-owned memory, or points into the open table (valid until rdr_close).
 *   - A table is immutable: any number of threads may use one table at once.
 *   - A health state (rdr_health) is read by decisions and written only by rdr_health_load:
 *     a caller must not load into an rdr_health while another thread decides with it.
 *     (NGINX workers are single-threaded; a multi-threaded caller keeps two and swaps the
 *     pointer its decisions use after loading into the idle one.)
 *   - No input can make a call crash: bad addresses and bad requests yield "no match"
 *     or "pass"; bad snapshots make rdr_open fail with a message; bad health state files
 *     make rdr_health_load fail with a message and leave every member up.
 */
#ifndef REDIRECTOR_H
#define REDIRECTOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI version implemented by this header; compare with rdr_abi_version(). */
#define RDR_ABI_VERSION 4

/* An open snapshot. Opaque. */
typedef struct rdr_table rdr_table;

/* Return codes. Lookups return a provider index (>= 0) or RDR_NO_MATCH. */
#define RDR_OK          0   /* done */
#define RDR_NO_MATCH   -1   /* rdr_lookup: no provider's prefix covers the address */
#define RDR_ENOSPC     -1   /* a buffer is too small (rdr_decide, rdr_format_prefix) */
#define RDR_EINVAL     -2   /* a required pointer (table, request, output) is NULL */
#define RDR_ERANGE     -3   /* an index is out of range (rdr_route_header) */
#define RDR_EHEALTH    -4   /* a health state file was refused (rdr_health_load) */

/* Most request headers one decision reads (rdr_request.headers); see rdr_header_name. */
#define RDR_MAX_HEADERS 32

/* The ABI version the loaded library implements (RDR_ABI_VERSION when they agree). */
uint32_t rdr_abi_version(void);

/*
 * Loads (into private memory) and validates the snapshot at `snapshot_path`.
 * On failure returns NULL and, when err != NULL and errlen > 0, writes a
 * NUL-terminated message naming the file and the reason into err (truncated to errlen).
 */
rdr_table *rdr_open(const char *snapshot_path, char *err, size_t errlen);

/* Releases the table. NULL is ignored. */
void rdr_close(rdr_table *t);

/*
 * Longest-prefix match of one address: `addr` holds 4 (IPv4) or 16 (IPv6)
 * network-order bytes. IPv4-mapped IPv6 addresses are matched as IPv4.
 * Returns the provider index, or RDR_NO_MATCH when no provider's prefix covers the address
 * (or addrlen is neither 4 nor 16, or t is NULL).
 */
int32_t rdr_lookup(const rdr_table *t, const uint8_t *addr, size_t addrlen);

/*
 * Batch form of rdr_lookup for IPv4: out[i] = provider index of addrs[i] or RDR_NO_MATCH.
 * addrs[i] is the address as a host-order integer (e.g. 0x0A000001 for 10.0.0.1).
 * Returns the number of results written (count, or 0 when t is NULL).
 */
size_t rdr_lookup_batch_v4(const rdr_table *t, const uint32_t *addrs, int32_t *out, size_t count);

/* Number of providers in the table (0 when t is NULL). */
int32_t rdr_provider_count(const rdr_table *t);

/* NUL-terminated name of provider `index`, or NULL when out of range. Owned by the table. */
const char *rdr_provider_name(const rdr_table *t, int32_t index);

/*
 * NUL-terminated name of the source (a URL, or a path as the config wrote it) that produced
 * attribute `attribute` (rdr_decision.attribute), owned by the table; NULL when out of range
 * or when the snapshot records no provenance. Added within ABI version 3 (a new call only).
 */
const char *rdr_attribute_source(const rdr_table *t, int32_t attribute);
/* What a decision tells the caller to do. */
typedef enum {
    RDR_PASS     = 0,  /* serve the request as usual */
    RDR_REDIRECT = 1,  /* answer `status` with Location: <buf> */
    RDR_RESPOND  = 2   /* answer `status` with no Location (e.g. 404, 405, 200 for /v2/) */
} rdr_action;

/* One request header. Strings need not be NUL-terminated; the name may be in any case. */
typedef struct {
    const char *name;    size_t name_len;
    const char *value;   size_t value_len;
} rdr_header;

/* Which pool members are down, for decisions (rdr_health_new). Opaque. */
typedef struct rdr_health rdr_health;

/*
 * One request, as the host saw it. Strings need not be NUL-terminated.
 * headers: the request headers whose names rdr_header_name lists (others are ignored; a
 * table without such names needs none: NULL and 0). At most RDR_MAX_HEADERS are read: when
 * more are given, only those with a listed name count, the first RDR_MAX_HEADERS of them.
 * health: the members' health, or NULL to decide as if every member were up.
 * missing: members (rdr_decision.member of earlier decisions of this request) on which a
 * presence check did not find the object: skipped like members that are down (see verify).
 * checks_exhausted: 1 when the request has made rdr_presence.max_checks checks: routes with
 * verify are then skipped.
 */
typedef struct {
    const char *client;  size_t client_len;  /* client address text: "192.0.2.1", "2001:db8::1" */
    const char *method;  size_t method_len;  /* "GET" */
    const char *host;    size_t host_len;    /* Host header (informational) */
    const char *path;    size_t path_len;    /* raw request target: path and optional "?query" */
    const rdr_header *headers; size_t header_count; /* request headers routes look at */
    const rdr_health *health;                /* NULL: every member up */
    const uint32_t *missing; size_t missing_count; /* NULL and 0: none */
    int32_t checks_exhausted;                /* 0, or 1: skip routes with verify */
} rdr_request;

/* The answer, and why. Pointers point into the table and live until rdr_close. */
typedef struct {
    int32_t     action;        /* rdr_action */
    int32_t     status;        /* HTTP status for REDIRECT/RESPOND, 0 for PASS */
    size_t      location_len;  /* bytes of Location written to buf (NUL added when room) */
    int32_t     provider;      /* provider index, or -1 when the client matched none */
    int32_t     route;         /* index of the route that decided, or -1 (no route matched) */
    uint32_t    asn;           /* ASN of the matched prefix, 0 when unknown */
    int32_t     attribute;     /* attribute index of the matched prefix, -1 when nothing matched */
    int32_t     family;        /* 4 or 6: the client address's family, 0 when it was malformed */
    uint8_t     client[16];    /* the client address decided on (network order; 4 bytes for IPv4) */
    const char *provider_name; /* NUL-terminated, "" when no provider */
    const char *region;        /* NUL-terminated, "" when unknown */
    const char *route_name;    /* NUL-terminated, "" when no route matched */
    const char *target_host;   /* NUL-terminated base URL of the redirect (the chosen member), "" otherwise */
    int32_t     pool;          /* index of the pool the member was chosen from, -1 unless redirecting */
    int32_t     member;        /* the chosen member's slot in health states, -1 unless redirecting */
    int32_t     step;          /* fallback step that gave the target: RDR_STEP_* */
    const char *pool_name;     /* NUL-terminated pool name, "" for a pool of one URL or none */
    const char *step_name;     /* NUL-terminated step name ("primary", "nearest-region", ...), "" for none */
    int32_t     verify;        /* 1: the route verifies presence (see below), 0 otherwise */
} rdr_decision;

/*
 * Presence checks. A redirect with verify == 1 may be answered only once a HEAD of its
 * Location found the object there (2xx). When the object is absent (404, 403, 410) or the
 * check gave no clear answer (any other status, a timeout, a failed connection), decide
 * again with out->member appended to req->missing: the next decision skips that member and
 * goes on down the fallback chain, or, with no member left, to the routes after the
 * verifying one. After max_checks checks without the object, decide once more with
 * req->checks_exhausted = 1: the routes after the verifying ones answer. A host that cannot
 * check must not serve a table whose rdr_presence.verify_routes is not 0.
 */
typedef struct {
    uint32_t    timeout_ms;          /* per check, connection included */
    uint32_t    present_ttl_ms;      /* how long a found object may be remembered */
    uint32_t    absent_ttl_ms;       /* how long a missing one may be (0: not at all) */
    uint32_t    cache_entries;       /* most answers a host should remember */
    uint32_t    concurrency;         /* most checks in flight to one mirror */
    uint32_t    max_checks;          /* most checks one request makes (1..16) */
    int32_t     verify_routes;       /* number of routes with verify */
    const char *verify_route;        /* NUL-terminated name of the first, "" when none */
} rdr_presence;

/* The table's presence settings (its config's `presence:`). RDR_OK, or RDR_EINVAL for NULL. */
int rdr_presence_settings(const rdr_table *t, rdr_presence *out);

/* Steps of the fallback chain (rdr_decision.step). */
#define RDR_STEP_NONE            0  /* nothing was redirected, or the route does not redirect */
#define RDR_STEP_PRIMARY         1  /* a member of the client's first pool: nothing failed over */
#define RDR_STEP_POOL_FALLBACK   2  /* a member of the pool a down pool names as its fallback */
#define RDR_STEP_NEAREST_REGION  3  /* a member of the nearest other region of the provider */
#define RDR_STEP_PROVIDER        4  /* a member of the provider's pool for all regions */
#define RDR_STEP_DEFAULT         5  /* a member of the policy's default pool */
#define RDR_STEP_PASS            6  /* every candidate was down: the request passes */

/*
 * Decides one request. Returns RDR_OK, RDR_ENOSPC (buf too small: out->location_len
 * holds the size needed, without NUL) or RDR_EINVAL (t, req or out is NULL).
 * On RDR_OK, `out` is filled; for RDR_REDIRECT the Location
 * value ("https://host/path?query") is written to buf[0..location_len) and
 * NUL-terminated when buflen > location_len. When buf is too small the call returns
 * RDR_ENOSPC with out->location_len set to the length needed and out->action set,
 * and nothing is written to buf. A malformed client address never matches; a path
 * with control bytes, or not starting with '/', is never redirected. Pool members
 * req->health marks down are skipped (out->step tells how far the fallback chain went);
 * routes with header conditions read req->headers. Allocates nothing.
 */
int rdr_decide(const rdr_table *t, const rdr_request *req, rdr_decision *out,
               char *buf, size_t buflen);

/*
 * Writes the prefix that matched a decision's client as text ("192.0.2.0/24") to buf,
 * NUL-terminated. Decisions do not compute it (the decision path reads only the answer
 * trie); this looks it up in the table's explanation trie, so call it only when the prefix
 * is wanted (a log variable, an explanation). Returns the text length, 0 when nothing
 * matched, RDR_ENOSPC when buflen is too small (at most 44 bytes are ever needed), or
 * RDR_EINVAL when t, d or buf is NULL.
 */
int rdr_format_prefix(const rdr_table *t, const rdr_decision *d, char *buf, size_t buflen);

/* Number of extra response headers route `route` sets (e.g. Docker-Distribution-Api-Version). */
int32_t rdr_route_header_count(const rdr_table *t, int32_t route);

/*
 * Header `index` of route `route`: name and value as NUL-terminated strings owned by the
 * table. Returns RDR_OK, or RDR_ERANGE when route or index is out of range (or t is NULL).
 */
int rdr_route_header(const rdr_table *t, int32_t route, int32_t index,
                     const char **name, const char **value);

/* Number of request header names the table's routes look at (0 when t is NULL). */
int32_t rdr_header_name_count(const rdr_table *t);

/*
 * Request header name `i` the routes look at: lower case, NUL-terminated, owned by the table;
 * NULL when out of range. Pass these headers (and only these) in rdr_request.headers.
 */
const char *rdr_header_name(const rdr_table *t, int32_t i);

/*
 * A health state for decisions with table t: every member up until rdr_health_load succeeds.
 * Allocates; NULL when t is NULL. Use it only with t (with another table it counts as NULL),
 * and free it before closing t.
 */
rdr_health *rdr_health_new(const rdr_table *t);

/*
 * Reads a health state file's bytes (data[0..len), e.g. the whole file `redirector probe`
 * writes) at Unix time now_ms (milliseconds). The file must be for t's pools (same member
 * count and health fingerprint), intact (checksum), of this build's format version, and not
 * stale at now_ms. On success, decisions using h skip the members it marks down, and the
 * call returns RDR_OK. Otherwise it returns RDR_EHEALTH, writes a NUL-terminated reason
 * into err (when err != NULL and errlen > 0, truncated to errlen) and resets h to "no health
 * information": every member up, never all down. RDR_EINVAL when h is NULL. Allocates.
 */
int rdr_health_load(rdr_health *h, const void *data, size_t len, int64_t now_ms,
                    char *err, size_t errlen);

/*
 * Unix time in milliseconds after which the loaded state is stale (written at + stale after):
 * a caller then stops passing h (or loads a newer file). 0 when no state is loaded.
 */
int64_t rdr_health_expires(const rdr_health *h);

/* Number of members the loaded state marks down (0 when none is loaded or h is NULL). */
int32_t rdr_health_down_count(const rdr_health *h);

/* Releases h. NULL is ignored. */
void rdr_health_free(rdr_health *h);

/*
 * Decides req again, recording every pool member the decision passed over, and writes them
 * to buf as text, NUL-terminated: "url(pool):reason" separated by single spaces, e.g.
 * "https://a.example(eu):down https://b.example(eu):weight" (a pool of one URL has no
 * "(pool)"; reasons: down, priority, weight, missing — in req->missing). For explanations (a log variable), not for
 * every request: it allocates. Returns the text length (0 when nothing was skipped),
 * RDR_ENOSPC when buflen is too small (buf then holds ""), or RDR_EINVAL when t, req or buf
 * is NULL or buflen is 0.
 */
int rdr_format_skipped(const rdr_table *t, const rdr_request *req, char *buf, size_t buflen);

#ifdef __cplusplus
}
#endif

#endif /* REDIRECTOR_H */
