
/*
 * ngx_http_redirector_module: redirects clients to the mirror of the cloud
 * provider that owns their address, using a snapshot compiled by
 * `redirector compile` and the C ABI of libredirector.so (redirector.h).
 *
 * Directives:
 *   redirector_snapshot  /path/to/file.rdb;     http
 *   redirector_health_state /path/to/state;     http
 *   redirector_health_check_interval 1s;        http
 *   redirector           on | off;              http, server, location
 *   redirector_presence_check /uri | off;       http, server, location
 *   set_redirector_target $var [$fallback];     server, location, if (needs the NDK)
 *
 * Variables: $redirector_action, $redirector_status, $redirector_target,
 *   $redirector_provider, $redirector_region, $redirector_prefix,
 *   $redirector_asn, $redirector_route, $redirector_snapshot,
 *   $redirector_pool, $redirector_member, $redirector_step,
 *   $redirector_skipped, $redirector_source, $redirector_check_url,
 *   $redirector_checks.
 *
 * The client address is the connection address (c->addr_text), so the stock
 * realip module decides which proxies are trusted.  The request headers the
 * snapshot's routes look at (rdr_header_name) are passed to every decision.
 *
 * Health: each worker owns an rdr_health, checks the state file the prober
 * writes every interval (a timer) and reloads it when it changed; while the
 * file is missing, refused or stale, decisions see every member up.  The
 * master makes no Swift call besides rdr_open (DESIGN: no threads there).
 *
 * Presence checks (routes with `verify`): as auth_request does, the access
 * handler waits on a subrequest to the redirector_presence_check location,
 * which proxies a HEAD to $redirector_check_url (and may cache the answers
 * with proxy_cache, proxy_cache_lock making one HEAD of many).  A 2xx
 * redirects there; anything else adds the member to the request's missing
 * list and decides again, down the fallback chain or on to the next route.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#if (NGX_HTTP_REDIRECTOR_NDK)
#ifndef NDK_SET_VAR
#define NDK_SET_VAR  1
#endif
#include <ndk.h>

/*
 * The NDK functions live in ndk_http_module.so.  Weak references let this
 * module load without it; set_redirector_target then reports that the NDK
 * must be loaded first instead of nginx failing with "undefined symbol".
 */
#pragma weak ndk_set_var_core
#pragma weak ndk_set_var_value_core
#endif

#include <redirector.h>


/* Room for "https://" + host beyond the request target; longer targets retry. */
#define NGX_HTTP_REDIRECTOR_LOCATION_SLACK  256

/* rdr_format_prefix() never needs more than 44 bytes. */
#define NGX_HTTP_REDIRECTOR_PREFIX_LEN      48

/* First buffer of $redirector_skipped; grows up to the maximum. */
#define NGX_HTTP_REDIRECTOR_SKIPPED_LEN     512
#define NGX_HTTP_REDIRECTOR_SKIPPED_MAX     65536

/* A health state file holds ~20 bytes per member; refuse anything bigger. */
#define NGX_HTTP_REDIRECTOR_HEALTH_MAX      (1024 * 1024)

/* Room for the last reason a health state was not used (logged once). */
#define NGX_HTTP_REDIRECTOR_REASON_LEN      512

/* Room for the most presence checks one request makes (rdr_presence.max_checks). */
#define NGX_HTTP_REDIRECTOR_MAX_CHECKS      16

/* One entry of $redirector_checks: " " + url + "(unknown-NNN,cached)" or
 * "(unknown-NNN,<msec>ms)". */
#define NGX_HTTP_REDIRECTOR_CHECK_EXTRA                                       \
    (sizeof(" (unknown-999,ms)") + NGX_INT64_LEN)


typedef struct {
    rdr_table                  *table;
    ngx_str_t                   snapshot;
    ngx_flag_t                  table_required;
    ngx_flag_t                  set_target_used;
    rdr_presence                presence;

    /* the lower-case request header names the routes look at */
    ngx_str_t                  *header_names;
    ngx_uint_t                  nheader_names;

    ngx_str_t                   health_state;
    ngx_msec_t                  health_interval;

    /* per worker (init_process), unused in the master */
    rdr_health                 *health;
    ngx_flag_t                  health_active;
    int64_t                     health_expires;
    ngx_event_t                 health_timer;
    ngx_file_uniq_t             health_uniq;
    time_t                      health_mtime;
    long                        health_mtime_nsec;
    off_t                       health_size;
    size_t                      health_reason_len;
    u_char                      health_reason[NGX_HTTP_REDIRECTOR_REASON_LEN];
} ngx_http_redirector_main_conf_t;


typedef struct {
    ngx_flag_t                  enable;
    ngx_str_t                   presence_uri;
} ngx_http_redirector_loc_conf_t;


typedef struct {
    rdr_decision                decision;
    ngx_str_t                   location;
    const rdr_health           *health;     /* what the decision used */

    /* presence checks of a verify route */
    ngx_uint_t                  checking;   /* a check subrequest was started */
    ngx_uint_t                  checked;    /* ... and has answered */
    ngx_uint_t                  verified;   /* the decision may be answered */
    ngx_uint_t                  check_status;
    ngx_uint_t                  check_cached;   /* answered from proxy_cache */
    ngx_msec_t                  check_start;
    uint32_t                    missing[NGX_HTTP_REDIRECTOR_MAX_CHECKS];
    ngx_uint_t                  nmissing;
    ngx_str_t                   checks;     /* $redirector_checks */
} ngx_http_redirector_ctx_t;


enum {
    NGX_HTTP_REDIRECTOR_VAR_ACTION = 0,
    NGX_HTTP_REDIRECTOR_VAR_STATUS,
    NGX_HTTP_REDIRECTOR_VAR_TARGET,
    NGX_HTTP_REDIRECTOR_VAR_PROVIDER,
    NGX_HTTP_REDIRECTOR_VAR_REGION,
    NGX_HTTP_REDIRECTOR_VAR_PREFIX,
    NGX_HTTP_REDIRECTOR_VAR_ASN,
    NGX_HTTP_REDIRECTOR_VAR_ROUTE,
    NGX_HTTP_REDIRECTOR_VAR_POOL,
    NGX_HTTP_REDIRECTOR_VAR_MEMBER,
    NGX_HTTP_REDIRECTOR_VAR_STEP,
    NGX_HTTP_REDIRECTOR_VAR_SKIPPED,
    NGX_HTTP_REDIRECTOR_VAR_SOURCE,
    NGX_HTTP_REDIRECTOR_VAR_CHECK_URL,
    NGX_HTTP_REDIRECTOR_VAR_CHECKS
};


static void ngx_http_redirector_request(ngx_http_request_t *r,
    ngx_http_redirector_main_conf_t *rmcf, rdr_request *req,
    rdr_header *headers);
static ngx_int_t ngx_http_redirector_get_ctx(ngx_http_request_t *r,
    ngx_http_redirector_ctx_t **ctxp);
static ngx_int_t ngx_http_redirector_decide(ngx_http_request_t *r,
    ngx_http_redirector_main_conf_t *rmcf, ngx_http_redirector_ctx_t *ctx);
static ngx_int_t ngx_http_redirector_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_redirector_check(ngx_http_request_t *r,
    ngx_http_redirector_loc_conf_t *rlcf, ngx_http_redirector_ctx_t *ctx);
static ngx_int_t ngx_http_redirector_check_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc);
static ngx_int_t ngx_http_redirector_checked(ngx_http_request_t *r,
    ngx_http_redirector_ctx_t *ctx);
static char *ngx_http_redirector_presence_check(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_redirector_redirect(ngx_http_request_t *r,
    ngx_http_redirector_ctx_t *ctx);
static ngx_int_t ngx_http_redirector_respond(ngx_http_request_t *r,
    ngx_http_redirector_ctx_t *ctx);
static ngx_int_t ngx_http_redirector_add_route_headers(ngx_http_request_t *r,
    ngx_http_redirector_ctx_t *ctx);
static ngx_int_t ngx_http_redirector_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_redirector_snapshot_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_redirector_skipped(ngx_http_request_t *r,
    ngx_http_redirector_ctx_t *ctx, ngx_http_variable_value_t *v);
static void ngx_http_redirector_set_cstr(ngx_http_variable_value_t *v,
    const char *s);

static char *ngx_http_redirector_snapshot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_redirector_health_state(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void ngx_http_redirector_cleanup(void *data);

static ngx_int_t ngx_http_redirector_init_process(ngx_cycle_t *cycle);
static void ngx_http_redirector_exit_process(ngx_cycle_t *cycle);
static void ngx_http_redirector_health_timer(ngx_event_t *ev);
static void ngx_http_redirector_health_check(
    ngx_http_redirector_main_conf_t *rmcf, ngx_log_t *log);
static ngx_int_t ngx_http_redirector_health_read(
    ngx_http_redirector_main_conf_t *rmcf, ngx_log_t *log, int64_t now,
    u_char *reason, size_t len);
static void ngx_http_redirector_health_off(
    ngx_http_redirector_main_conf_t *rmcf, ngx_log_t *log, u_char *reason);
#if (NGX_HTTP_REDIRECTOR_NDK)
static char *ngx_http_redirector_set_target(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_redirector_set_target_basic(ngx_http_request_t *r,
    ngx_str_t *res);
static ngx_int_t ngx_http_redirector_set_target_value(ngx_http_request_t *r,
    ngx_str_t *res, ngx_http_variable_value_t *v);
#endif

static ngx_int_t ngx_http_redirector_add_variables(ngx_conf_t *cf);
static void *ngx_http_redirector_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_redirector_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_redirector_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_redirector_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_redirector_init(ngx_conf_t *cf);


static ngx_command_t  ngx_http_redirector_commands[] = {

    { ngx_string("redirector_snapshot"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_redirector_snapshot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("redirector_health_state"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_redirector_health_state,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("redirector_health_check_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_redirector_main_conf_t, health_interval),
      NULL },

    { ngx_string("redirector"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_redirector_loc_conf_t, enable),
      NULL },

    { ngx_string("redirector_presence_check"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_redirector_presence_check,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

#if (NGX_HTTP_REDIRECTOR_NDK)

    { ngx_string("set_redirector_target"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_SIF_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF
                       |NGX_CONF_TAKE12,
      ngx_http_redirector_set_target,
      0,
      0,
      NULL },

#endif

      ngx_null_command
};


static ngx_http_module_t  ngx_http_redirector_module_ctx = {
    ngx_http_redirector_add_variables,     /* preconfiguration */
    ngx_http_redirector_init,              /* postconfiguration */

    ngx_http_redirector_create_main_conf,  /* create main configuration */
    ngx_http_redirector_init_main_conf,    /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_redirector_create_loc_conf,   /* create location configuration */
    ngx_http_redirector_merge_loc_conf     /* merge location configuration */
};


ngx_module_t  ngx_http_redirector_module = {
    NGX_MODULE_V1,
    &ngx_http_redirector_module_ctx,       /* module context */
    ngx_http_redirector_commands,          /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_redirector_init_process,      /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_redirector_exit_process,      /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_redirector_vars[] = {

    { ngx_string("redirector_action"), NULL,
      ngx_http_redirector_variable, NGX_HTTP_REDIRECTOR_VAR_ACTION, 0, 0 },

    { ngx_string("redirector_status"), NULL,
      ngx_http_redirector_variable, NGX_HTTP_REDIRECTOR_VAR_STATUS, 0, 0 },

    { ngx_string("redirector_target"), NULL,
      ngx_http_redirector_variable, NGX_HTTP_REDIRECTOR_VAR_TARGET, 0, 0 },

    { ngx_string("redirector_provider"), NULL,
      ngx_http_redirector_variable, NGX_HTTP_REDIRECTOR_VAR_PROVIDER, 0, 0 },

    { ngx_string("redirector_region"), NULL,
      ngx_http_redirector_variable, NGX_HTTP_REDIRECTOR_VAR_REGION, 0, 0 },

    { ngx_string("redirector_prefix"), NULL,
      ngx_http_redirector_variable, NGX_HTTP_REDIRECTOR_VAR_PREFIX, 0, 0 },

    { ngx_string("redirector_asn"), NULL,
      ngx_http_redirector_variable, NGX_HTTP_REDIRECTOR_VAR_ASN, 0, 0 },

    { ngx_string("redirector_route"), NULL,
      ngx_http_redirector_variable, NGX_HTTP_REDIRECTOR_VAR_ROUTE, 0, 0 },

    { ngx_string("redirector_snapshot"), NULL,
      ngx_http_redirector_snapshot_variable, 0, 0, 0 },

    { ngx_string("redirector_pool"), NULL,
      ngx_http_redirector_variable, NGX_HTTP_REDIRECTOR_VAR_POOL, 0, 0 },

    { ngx_string("redirector_member"), NULL,
      ngx_http_redirector_variable, NGX_HTTP_REDIRECTOR_VAR_MEMBER, 0, 0 },

    { ngx_string("redirector_step"), NULL,
      ngx_http_redirector_variable, NGX_HTTP_REDIRECTOR_VAR_STEP, 0, 0 },

    { ngx_string("redirector_skipped"), NULL,
      ngx_http_redirector_variable, NGX_HTTP_REDIRECTOR_VAR_SKIPPED, 0, 0 },

    { ngx_string("redirector_source"), NULL,
      ngx_http_redirector_variable, NGX_HTTP_REDIRECTOR_VAR_SOURCE, 0, 0 },

    { ngx_string("redirector_check_url"), NULL,
      ngx_http_redirector_variable, NGX_HTTP_REDIRECTOR_VAR_CHECK_URL,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("redirector_checks"), NULL,
      ngx_http_redirector_variable, NGX_HTTP_REDIRECTOR_VAR_CHECKS,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_redirector_actions[] = {
    ngx_string("pass"),
    ngx_string("redirect"),
    ngx_string("respond")
};


/*
 * The decision input of the (main) request r: the connection address, the
 * method, Host, the raw request target, the headers the routes look at (into
 * `headers`, RDR_MAX_HEADERS of them at most) and this worker's health state
 * while it is fresh.
 */

static void
ngx_http_redirector_request(ngx_http_request_t *r,
    ngx_http_redirector_main_conf_t *rmcf, rdr_request *req,
    rdr_header *headers)
{
    ngx_uint_t        i, k, n;
    ngx_str_t        *name;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    req->client = (const char *) r->connection->addr_text.data;
    req->client_len = r->connection->addr_text.len;
    req->method = (const char *) r->method_name.data;
    req->method_len = r->method_name.len;

    if (r->headers_in.host) {
        req->host = (const char *) r->headers_in.host->value.data;
        req->host_len = r->headers_in.host->value.len;

    } else {
        req->host = "";
        req->host_len = 0;
    }

    req->path = (const char *) r->unparsed_uri.data;
    req->path_len = r->unparsed_uri.len;

    if (req->client == NULL) {
        req->client = "";
        req->client_len = 0;
    }

    if (req->method == NULL) {
        req->method = "";
        req->method_len = 0;
    }

    if (req->path == NULL) {
        req->path = "";
        req->path_len = 0;
    }

    n = 0;

    if (rmcf->nheader_names) {
        part = &r->headers_in.headers.part;
        h = part->elts;

        for (i = 0; /* void */ ; i++) {

            if (i >= part->nelts) {
                if (part->next == NULL) {
                    break;
                }

                part = part->next;
                h = part->elts;
                i = 0;
            }

            if (h[i].hash == 0) {
                continue;
            }

            name = rmcf->header_names;

            for (k = 0; k < rmcf->nheader_names; k++) {
                if (h[i].key.len == name[k].len
                    && ngx_strncasecmp(h[i].key.data, name[k].data,
                                       name[k].len)
                       == 0)
                {
                    break;
                }
            }

            if (k == rmcf->nheader_names) {
                continue;
            }

            headers[n].name = (const char *) h[i].key.data;
            headers[n].name_len = h[i].key.len;
            headers[n].value = (const char *) h[i].value.data;
            headers[n].value_len = h[i].value.len;

            if (++n == RDR_MAX_HEADERS) {
                break;
            }
        }
    }

    req->headers = n ? headers : NULL;
    req->header_count = n;
    req->health = rmcf->health_active ? rmcf->health : NULL;
    req->missing = NULL;
    req->missing_count = 0;
    req->checks_exhausted = 0;
}


/*
 * Decides the (main) request once and caches the answer in its ctx.
 * Returns NGX_OK with *ctxp set, NGX_DECLINED when no snapshot is configured,
 * or NGX_ERROR when memory ran out.
 */

static ngx_int_t
ngx_http_redirector_get_ctx(ngx_http_request_t *r,
    ngx_http_redirector_ctx_t **ctxp)
{
    ngx_http_redirector_ctx_t        *ctx;
    ngx_http_redirector_main_conf_t  *rmcf;

    r = r->main;

    ctx = ngx_http_get_module_ctx(r, ngx_http_redirector_module);
    if (ctx) {
        *ctxp = ctx;
        return NGX_OK;
    }

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_redirector_module);
    if (rmcf->table == NULL) {
        return NGX_DECLINED;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_redirector_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_redirector_decide(r, rmcf, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_redirector_module);

    *ctxp = ctx;

    return NGX_OK;
}


/*
 * Decides the request into ctx, skipping the members in ctx->missing.
 * Returns NGX_OK, or NGX_ERROR when memory ran out.
 */

static ngx_int_t
ngx_http_redirector_decide(ngx_http_request_t *r,
    ngx_http_redirector_main_conf_t *rmcf, ngx_http_redirector_ctx_t *ctx)
{
    int           rc;
    u_char       *buf;
    size_t        len, need;
    rdr_header    headers[RDR_MAX_HEADERS];
    rdr_request   req;

    ngx_http_redirector_request(r, rmcf, &req, headers);

    req.missing = ctx->nmissing ? ctx->missing : NULL;
    req.missing_count = ctx->nmissing;
    req.checks_exhausted = ctx->nmissing >= rmcf->presence.max_checks;

    ctx->health = req.health;
    ngx_str_null(&ctx->location);

    len = req.path_len + NGX_HTTP_REDIRECTOR_LOCATION_SLACK;

    buf = ngx_pnalloc(r->pool, len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    rc = rdr_decide(rmcf->table, &req, &ctx->decision, (char *) buf, len);

    if (rc == RDR_ENOSPC) {
        need = ctx->decision.location_len;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "redirector: location needs %uz bytes, had %uz",
                       need, len);

        if (need < len || need > NGX_MAX_SIZE_T_VALUE - 1) {
            rc = RDR_EINVAL;

        } else {
            len = need + 1;

            buf = ngx_pnalloc(r->pool, len);
            if (buf == NULL) {
                return NGX_ERROR;
            }

            rc = rdr_decide(rmcf->table, &req, &ctx->decision,
                            (char *) buf, len);
        }
    }

    if (rc != RDR_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "redirector: decision failed (%d), passing request",
                      rc);

        ngx_memzero(&ctx->decision, sizeof(rdr_decision));
        ctx->decision.action = RDR_PASS;
        ctx->decision.provider = -1;
        ctx->decision.route = -1;
        ctx->decision.attribute = -1;
        ctx->decision.pool = -1;
        ctx->decision.member = -1;
        ctx->decision.step = RDR_STEP_NONE;

    } else if (ctx->decision.action == RDR_REDIRECT) {
        ctx->location.data = buf;
        ctx->location.len = ngx_min(ctx->decision.location_len, len);
    }

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "redirector: client \"%V\" action %d status %d "
                   "location \"%V\" verify %d", &r->connection->addr_text,
                   ctx->decision.action, ctx->decision.status,
                   &ctx->location, ctx->decision.verify);

    return NGX_OK;
}


static ngx_int_t
ngx_http_redirector_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_redirector_ctx_t       *ctx;
    ngx_http_redirector_loc_conf_t  *rlcf;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_redirector_module);

    if (!rlcf->enable || r != r->main) {
        return NGX_DECLINED;
    }

    rc = ngx_http_redirector_get_ctx(r, &ctx);

    if (rc == NGX_DECLINED) {
        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->checking) {
        if (!ctx->checked) {
            return NGX_AGAIN;
        }

        if (ngx_http_redirector_checked(r, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ctx->decision.action == RDR_REDIRECT && ctx->decision.verify
        && !ctx->verified)
    {
        if (rlcf->presence_uri.len == 0) {
            /* never a redirect that was not checked */

            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "redirector: route \"%s\" verifies presence but "
                          "no redirector_presence_check applies here, "
                          "passing request", ctx->decision.route_name);

            return NGX_DECLINED;
        }

        return ngx_http_redirector_check(r, rlcf, ctx);
    }

    switch (ctx->decision.action) {

    case RDR_REDIRECT:
        return ngx_http_redirector_redirect(r, ctx);

    case RDR_RESPOND:
        return ngx_http_redirector_respond(r, ctx);

    default: /* RDR_PASS */
        return NGX_DECLINED;
    }
}


/*
 * Starts the presence check of ctx->location: a HEAD subrequest to the
 * redirector_presence_check location, which proxies it to
 * $redirector_check_url.  The access phase waits for it (NGX_AGAIN).
 */

static ngx_int_t
ngx_http_redirector_check(ngx_http_request_t *r,
    ngx_http_redirector_loc_conf_t *rlcf, ngx_http_redirector_ctx_t *ctx)
{
    ngx_http_request_t          *sr;
    ngx_http_post_subrequest_t  *ps;

    static ngx_str_t  head = ngx_string("HEAD");

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_redirector_check_done;
    ps->data = ctx;

    ctx->checking = 1;
    ctx->checked = 0;
    ctx->check_status = 0;
    ctx->check_cached = 0;
    ctx->check_start = ngx_current_msec;

    if (ngx_http_subrequest(r, &rlcf->presence_uri, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* a fake body: the check must not read or close the client's */

    sr->request_body = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    if (sr->request_body == NULL) {
        return NGX_ERROR;
    }

    sr->method = NGX_HTTP_HEAD;
    sr->method_name = head;
    sr->header_only = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "redirector: checking \"%V\"", &ctx->location);

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_redirector_check_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc)
{
    ngx_http_redirector_ctx_t  *ctx = data;

    ctx->checked = 1;
    ctx->check_status = r->headers_out.status;

    if (ctx->check_status == 0 && rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        ctx->check_status = rc;     /* e.g. 502 when the mirror is down */
    }

#if (NGX_HTTP_CACHE)
    if (r->upstream
        && (r->upstream->cache_status == NGX_HTTP_CACHE_HIT
            || r->upstream->cache_status == NGX_HTTP_CACHE_STALE
            || r->upstream->cache_status == NGX_HTTP_CACHE_UPDATING))
    {
        ctx->check_cached = 1;
    }
#endif

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "redirector: check done s:%ui", ctx->check_status);

    return rc;
}


/*
 * Acts on a finished check: a 2xx verifies the decision; anything else
 * records the member as missing the object and decides again.  Appends the
 * check to $redirector_checks.
 */

static ngx_int_t
ngx_http_redirector_checked(ngx_http_request_t *r,
    ngx_http_redirector_ctx_t *ctx)
{
    u_char                           *p, *last;
    size_t                            len;
    ngx_uint_t                        status;
    ngx_http_redirector_main_conf_t  *rmcf;

    status = ctx->check_status;
    ctx->checking = 0;
    ctx->checked = 0;

    len = ctx->checks.len + ctx->location.len
          + NGX_HTTP_REDIRECTOR_CHECK_EXTRA;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    last = ngx_cpymem(p, ctx->checks.data, ctx->checks.len);

    if (last != p) {
        *last++ = ' ';
    }

    if (status >= NGX_HTTP_OK && status < NGX_HTTP_SPECIAL_RESPONSE) {
        ctx->verified = 1;
        last = ngx_sprintf(last, "%V(present", &ctx->location);

    } else {
        last = ngx_sprintf(last, "%V(%s-%03ui", &ctx->location,
                           (status == NGX_HTTP_NOT_FOUND
                            || status == NGX_HTTP_FORBIDDEN
                            || status == 410)
                           ? "absent" : "unknown",
                           ngx_min(status, 999));
    }

    /* how long the check took, in nginx's cached milliseconds ($request_time's) */

    if (ctx->check_cached) {
        last = ngx_cpymem(last, ",cached)", sizeof(",cached)") - 1);

    } else {
        last = ngx_sprintf(last, ",%Mms)",
                           (ngx_msec_t) (ngx_current_msec - ctx->check_start));
    }

    ctx->checks.data = p;
    ctx->checks.len = last - p;

    if (ctx->verified) {
        return NGX_OK;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "redirector: \"%V\" not found (%ui), deciding again",
                   &ctx->location, status);

    ctx->missing[ctx->nmissing++] = (uint32_t) ctx->decision.member;

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_redirector_module);

    return ngx_http_redirector_decide(r, rmcf, ctx);
}


static ngx_int_t
ngx_http_redirector_redirect(ngx_http_request_t *r,
    ngx_http_redirector_ctx_t *ctx)
{
    ngx_int_t         status;
    ngx_table_elt_t  *h;

    status = ctx->decision.status;

    if (status < NGX_HTTP_MOVED_PERMANENTLY
        || status > NGX_HTTP_PERMANENT_REDIRECT
        || ctx->location.len == 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "redirector: invalid redirect (status %i, "
                      "location length %uz), passing request",
                      status, ctx->location.len);
        return NGX_DECLINED;
    }

    if (ngx_http_redirector_add_route_headers(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_clear_location(r);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "Location");
    h->value = ctx->location;
    h->lowcase_key = NULL;

    r->headers_out.location = h;

    /* the status code page is produced like that of "return 302 URL" */

    return status;
}


/* A fixed answer: the route's status and headers, and an empty body. */

static ngx_int_t
ngx_http_redirector_respond(ngx_http_request_t *r,
    ngx_http_redirector_ctx_t *ctx)
{
    ngx_int_t  rc, status;

    status = ctx->decision.status;

    if (status < NGX_HTTP_OK || status > 599) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "redirector: invalid response status %i, "
                      "passing request", status);
        return NGX_DECLINED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_redirector_add_route_headers(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    rc = ngx_http_send_header(r);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_redirector_add_route_headers(ngx_http_request_t *r,
    ngx_http_redirector_ctx_t *ctx)
{
    int32_t                           i, n;
    const char                       *name, *value;
    ngx_table_elt_t                  *h;
    ngx_http_redirector_main_conf_t  *rmcf;

    if (ctx->decision.route < 0) {
        return NGX_OK;
    }

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_redirector_module);

    n = rdr_route_header_count(rmcf->table, ctx->decision.route);

    for (i = 0; i < n; i++) {
        name = NULL;
        value = NULL;

        if (rdr_route_header(rmcf->table, ctx->decision.route, i,
                             &name, &value)
            != RDR_OK
            || name == NULL || value == NULL || name[0] == '\0')
        {
            continue;
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        /* the strings belong to the table, which outlives every request */

        h->hash = 1;
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif
        h->key.data = (u_char *) name;
        h->key.len = ngx_strlen(name);
        h->value.data = (u_char *) value;
        h->value.len = ngx_strlen(value);
        h->lowcase_key = NULL;
    }

    return NGX_OK;
}


static void
ngx_http_redirector_set_cstr(ngx_http_variable_value_t *v, const char *s)
{
    size_t  len;

    len = (s == NULL) ? 0 : ngx_strlen(s);

    if (len == 0) {
        v->not_found = 1;
        return;
    }

    v->len = len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = (u_char *) s;
}


static ngx_int_t
ngx_http_redirector_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    int                               n;
    u_char                           *p;
    ngx_int_t                         rc;
    rdr_decision                     *d;
    ngx_http_redirector_ctx_t        *ctx;
    ngx_http_redirector_main_conf_t  *rmcf;

    rc = ngx_http_redirector_get_ctx(r, &ctx);

    if (rc == NGX_DECLINED) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    d = &ctx->decision;

    /*
     * A redirect that waits for its presence check is not one yet: until the
     * access handler has checked it, the variables that would hand it out
     * say "pass" or nothing (and are evaluated again later).
     */

    if (d->action == RDR_REDIRECT && d->verify && !ctx->verified
        && (data == NGX_HTTP_REDIRECTOR_VAR_ACTION
            || data == NGX_HTTP_REDIRECTOR_VAR_STATUS
            || data == NGX_HTTP_REDIRECTOR_VAR_TARGET
            || data == NGX_HTTP_REDIRECTOR_VAR_MEMBER))
    {
        if (data == NGX_HTTP_REDIRECTOR_VAR_ACTION) {
            v->len = ngx_http_redirector_actions[RDR_PASS].len;
            v->data = ngx_http_redirector_actions[RDR_PASS].data;
            v->valid = 1;
            v->not_found = 0;

        } else {
            v->not_found = 1;
        }

        v->no_cacheable = 1;

        return NGX_OK;
    }

    switch (data) {

    case NGX_HTTP_REDIRECTOR_VAR_CHECK_URL:
        if (!ctx->checking || ctx->location.len == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->len = ctx->location.len;
        v->data = ctx->location.data;
        break;

    case NGX_HTTP_REDIRECTOR_VAR_CHECKS:
        if (ctx->checks.len == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->len = ctx->checks.len;
        v->data = ctx->checks.data;
        break;

    case NGX_HTTP_REDIRECTOR_VAR_ACTION:
        if (d->action < RDR_PASS || d->action > RDR_RESPOND) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->len = ngx_http_redirector_actions[d->action].len;
        v->data = ngx_http_redirector_actions[d->action].data;
        break;

    case NGX_HTTP_REDIRECTOR_VAR_STATUS:
        if (d->status <= 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        p = ngx_pnalloc(r->pool, NGX_INT32_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->len = ngx_sprintf(p, "%D", d->status) - p;
        v->data = p;
        break;

    case NGX_HTTP_REDIRECTOR_VAR_TARGET:
        if (ctx->location.len == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->len = ctx->location.len;
        v->data = ctx->location.data;
        break;

    case NGX_HTTP_REDIRECTOR_VAR_PROVIDER:
        ngx_http_redirector_set_cstr(v, d->provider_name);
        return NGX_OK;

    case NGX_HTTP_REDIRECTOR_VAR_REGION:
        ngx_http_redirector_set_cstr(v, d->region);
        return NGX_OK;

    case NGX_HTTP_REDIRECTOR_VAR_ROUTE:
        ngx_http_redirector_set_cstr(v, d->route_name);
        return NGX_OK;

    case NGX_HTTP_REDIRECTOR_VAR_POOL:
        ngx_http_redirector_set_cstr(v, d->pool_name);
        return NGX_OK;

    case NGX_HTTP_REDIRECTOR_VAR_MEMBER:
        ngx_http_redirector_set_cstr(v, d->action == RDR_REDIRECT
                                        ? d->target_host : NULL);
        return NGX_OK;

    case NGX_HTTP_REDIRECTOR_VAR_STEP:
        ngx_http_redirector_set_cstr(v, d->step_name);
        return NGX_OK;

    case NGX_HTTP_REDIRECTOR_VAR_SKIPPED:
        return ngx_http_redirector_skipped(r, ctx, v);

    case NGX_HTTP_REDIRECTOR_VAR_SOURCE:
        /* the source file that produced the matched prefix (snapshot provenance) */
        rmcf = ngx_http_get_module_main_conf(r, ngx_http_redirector_module);
        ngx_http_redirector_set_cstr(v, rdr_attribute_source(rmcf->table,
                                                             d->attribute));
        return NGX_OK;

    case NGX_HTTP_REDIRECTOR_VAR_PREFIX:
        if (d->attribute < 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        p = ngx_pnalloc(r->pool, NGX_HTTP_REDIRECTOR_PREFIX_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        /* looked up only here, when a configuration uses the variable */
        rmcf = ngx_http_get_module_main_conf(r, ngx_http_redirector_module);
        n = rdr_format_prefix(rmcf->table, d, (char *) p,
                              NGX_HTTP_REDIRECTOR_PREFIX_LEN);

        if (n <= 0 || n >= NGX_HTTP_REDIRECTOR_PREFIX_LEN) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->len = n;
        v->data = p;
        break;

    case NGX_HTTP_REDIRECTOR_VAR_ASN:
        if (d->asn == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        p = ngx_pnalloc(r->pool, NGX_INT32_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->len = ngx_sprintf(p, "%uD", d->asn) - p;
        v->data = p;
        break;

    default:
        v->not_found = 1;
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * $redirector_skipped: the pool members the decision passed over, from a
 * second decision that records them (rdr_format_skipped), made only when a
 * configuration reads the variable.  It uses the health state the decision
 * used, as it is now (a timer may have reloaded it in between).
 */

static ngx_int_t
ngx_http_redirector_skipped(ngx_http_request_t *r,
    ngx_http_redirector_ctx_t *ctx, ngx_http_variable_value_t *v)
{
    int                               n;
    u_char                           *p;
    size_t                            len;
    rdr_header                        headers[RDR_MAX_HEADERS];
    rdr_request                       req;
    ngx_http_redirector_main_conf_t  *rmcf;

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_redirector_module);

    ngx_http_redirector_request(r->main, rmcf, &req, headers);

    if (ctx->health == NULL) {
        req.health = NULL;
    }

    /* the members presence checks excluded, as the decision had them */

    req.missing = ctx->nmissing ? ctx->missing : NULL;
    req.missing_count = ctx->nmissing;
    req.checks_exhausted = ctx->nmissing >= rmcf->presence.max_checks;

    for (len = NGX_HTTP_REDIRECTOR_SKIPPED_LEN; /* void */ ;
         len = ngx_min(len * 4, NGX_HTTP_REDIRECTOR_SKIPPED_MAX))
    {
        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        n = rdr_format_skipped(rmcf->table, &req, (char *) p, len);

        if (n != RDR_ENOSPC || len >= NGX_HTTP_REDIRECTOR_SKIPPED_MAX) {
            break;
        }
    }

    if (n <= 0 || (size_t) n >= len) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = n;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_redirector_snapshot_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_redirector_main_conf_t  *rmcf;

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_redirector_module);

    if (rmcf->table == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = rmcf->snapshot.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = rmcf->snapshot.data;

    return NGX_OK;
}


#if (NGX_HTTP_REDIRECTOR_NDK)

/*
 * set_redirector_target $var;            $var = Location, or "" when the
 *                                        request is not redirected
 * set_redirector_target $var value;      $var = Location, or value
 */

static char *
ngx_http_redirector_set_target(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t                        *value;
    ndk_set_var_t                     filter;
    ngx_http_redirector_main_conf_t  *rmcf;

    if (ndk_set_var_core == NULL || ndk_set_var_value_core == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"set_redirector_target\" requires the NDK: "
                           "\"load_module modules/ndk_http_module.so;\" "
                           "must come before the redirector module's "
                           "load_module");
        return NGX_CONF_ERROR;
    }

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_redirector_module);
    rmcf->table_required = 1;
    rmcf->set_target_used = 1;

    value = cf->args->elts;

    filter.size = 0;
    filter.data = NULL;

    if (cf->args->nelts == 2) {
        filter.type = NDK_SET_VAR_BASIC;
        filter.func = (void *) ngx_http_redirector_set_target_basic;

        return ndk_set_var_core(cf, &value[1], &filter);
    }

    filter.type = NDK_SET_VAR_VALUE;
    filter.func = (void *) ngx_http_redirector_set_target_value;

    return ndk_set_var_value_core(cf, &value[1], &value[2], &filter);
}


static ngx_int_t
ngx_http_redirector_set_target_basic(ngx_http_request_t *r, ngx_str_t *res)
{
    ngx_int_t                   rc;
    ngx_http_redirector_ctx_t  *ctx;

    rc = ngx_http_redirector_get_ctx(r, &ctx);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_OK && ctx->location.len) {
        *res = ctx->location;

    } else {
        ngx_str_null(res);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_redirector_set_target_value(ngx_http_request_t *r, ngx_str_t *res,
    ngx_http_variable_value_t *v)
{
    ngx_int_t                   rc;
    ngx_http_redirector_ctx_t  *ctx;

    rc = ngx_http_redirector_get_ctx(r, &ctx);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_OK && ctx->location.len) {
        *res = ctx->location;

    } else {
        res->len = v->len;
        res->data = v->data;
    }

    return NGX_OK;
}

#endif


static char *
ngx_http_redirector_snapshot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_redirector_main_conf_t *rmcf = conf;

    char                 err[512];
    int32_t              i, n;
    uint32_t             abi;
    const char          *name;
    rdr_table           *table;
    ngx_str_t           *value, path;
    ngx_pool_cleanup_t  *cln;

    if (rmcf->table) {
        return "is duplicate";
    }

    value = cf->args->elts;
    path = value[1];

    if (path.len == 0) {
        return "has an empty path";
    }

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    abi = rdr_abi_version();

    if (abi != RDR_ABI_VERSION) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "libredirector implements ABI version %uD, "
                           "this module was built for version %d",
                           abi, RDR_ABI_VERSION);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    err[0] = '\0';

    /* synchronous: reads and validates the file, starts no threads */

    table = rdr_open((const char *) path.data, err, sizeof(err));

    if (table == NULL) {
        err[sizeof(err) - 1] = '\0';

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "redirector_snapshot \"%V\" cannot be loaded: %s",
                           &path, err[0] ? err : "unknown error");
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_redirector_cleanup;
    cln->data = table;

    rmcf->table = table;
    rmcf->snapshot = path;

    if (rdr_presence_settings(table, &rmcf->presence) != RDR_OK
        || rmcf->presence.max_checks > NGX_HTTP_REDIRECTOR_MAX_CHECKS)
    {
        return NGX_CONF_ERROR;
    }

    /* the header names belong to the table, which lives as long as the cycle */

    n = rdr_header_name_count(table);

    if (n > 0) {
        rmcf->header_names = ngx_palloc(cf->pool, n * sizeof(ngx_str_t));
        if (rmcf->header_names == NULL) {
            return NGX_CONF_ERROR;
        }

        for (i = 0; i < n; i++) {
            name = rdr_header_name(table, i);

            if (name == NULL || name[0] == '\0') {
                continue;
            }

            rmcf->header_names[rmcf->nheader_names].data = (u_char *) name;
            rmcf->header_names[rmcf->nheader_names].len = ngx_strlen(name);
            rmcf->nheader_names++;
        }
    }

    ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                  "redirector: loaded snapshot \"%V\" (%D providers, "
                  "%ui request headers read)",
                  &path, rdr_provider_count(table), rmcf->nheader_names);

    return NGX_CONF_OK;
}


static char *
ngx_http_redirector_health_state(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_redirector_main_conf_t *rmcf = conf;

    ngx_str_t  *value;

    if (rmcf->health_state.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "has an empty path";
    }

    rmcf->health_state = value[1];

    /* the file is read by the workers, and may not exist yet */

    if (ngx_conf_full_name(cf->cycle, &rmcf->health_state, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_redirector_cleanup(void *data)
{
    rdr_table  *table = data;

    rdr_close(table);
}


static ngx_int_t
ngx_http_redirector_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_redirector_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static void *
ngx_http_redirector_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_redirector_main_conf_t  *rmcf;

    rmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_redirector_main_conf_t));
    if (rmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rmcf->table = NULL;
     *     rmcf->snapshot = { 0, NULL };
     *     rmcf->table_required = 0;
     *     rmcf->header_names = NULL;
     *     rmcf->nheader_names = 0;
     *     rmcf->health_state = { 0, NULL };
     *     rmcf->health = NULL;
     *     rmcf->health_active = 0;
     *     rmcf->health_reason_len = 0;
     */

    rmcf->health_interval = NGX_CONF_UNSET_MSEC;

    return rmcf;
}


static char *
ngx_http_redirector_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_redirector_main_conf_t *rmcf = conf;

    ngx_conf_init_msec_value(rmcf->health_interval, 1000);

    if (rmcf->health_interval == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"redirector_health_check_interval\" must be "
                           "positive");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_redirector_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_redirector_loc_conf_t  *conf;

    conf = ngx_palloc(cf->pool, sizeof(ngx_http_redirector_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->enable = NGX_CONF_UNSET;
    ngx_str_null(&conf->presence_uri);

    return conf;
}


static char *
ngx_http_redirector_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_redirector_loc_conf_t *prev = parent;
    ngx_http_redirector_loc_conf_t *conf = child;

    ngx_http_redirector_main_conf_t  *rmcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    if (conf->presence_uri.data == NULL) {
        conf->presence_uri = prev->presence_uri;
    }

    if (conf->enable) {
        rmcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_redirector_module);
        rmcf->table_required = 1;

        /* the whole http block is parsed: the snapshot is loaded */

        if (rmcf->table && rmcf->presence.verify_routes > 0
            && conf->presence_uri.len == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "route \"%s\" of redirector_snapshot \"%V\" "
                               "verifies presence: \"redirector on\" needs "
                               "\"redirector_presence_check\" naming the "
                               "location that checks (nginx/README.md)",
                               rmcf->presence.verify_route, &rmcf->snapshot);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_redirector_presence_check(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_redirector_loc_conf_t *rlcf = conf;

    ngx_str_t  *value;

    if (rlcf->presence_uri.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        rlcf->presence_uri.len = 0;
        rlcf->presence_uri.data = (u_char *) "";
        return NGX_CONF_OK;
    }

    if (value[1].len == 0 || value[1].data[0] != '/') {
        return "must be a URI starting with \"/\" or \"off\"";
    }

    rlcf->presence_uri = value[1];

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_redirector_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt              *h;
    ngx_http_core_main_conf_t        *cmcf;
    ngx_http_redirector_main_conf_t  *rmcf;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_redirector_module);

    if (rmcf->table == NULL) {
        if (rmcf->table_required) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"redirector\" and \"set_redirector_target\" "
                               "require \"redirector_snapshot\" in the "
                               "http block");
            return NGX_ERROR;
        }

        if (rmcf->health_state.data) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"redirector_health_state\" requires "
                               "\"redirector_snapshot\" in the http block");
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (rmcf->set_target_used && rmcf->presence.verify_routes > 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "route \"%s\" of redirector_snapshot \"%V\" "
                           "verifies presence, which \"set_redirector_target\" "
                           "cannot wait for: use \"redirector on\" with "
                           "\"redirector_presence_check\"",
                           rmcf->presence.verify_route, &rmcf->snapshot);
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_redirector_handler;

    return NGX_OK;
}


/*
 * Health state, per worker: an rdr_health made in init_process (never in the
 * master), a timer that checks the file every interval and reloads it when
 * its inode, size or modification time changed, and a check of its expiry on
 * every tick.  Decisions pass the state only while it is loaded and fresh.
 */

static ngx_int_t
ngx_http_redirector_init_process(ngx_cycle_t *cycle)
{
    ngx_http_redirector_main_conf_t  *rmcf;

    rmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_redirector_module);

    if (rmcf == NULL || rmcf->table == NULL || rmcf->health_state.len == 0) {
        return NGX_OK;
    }

    /* cache managers and loaders run init_process too, and decide nothing */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    rmcf->health = rdr_health_new(rmcf->table);

    if (rmcf->health == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "redirector: rdr_health_new() failed");
        return NGX_ERROR;
    }

    rmcf->health_active = 0;
    rmcf->health_uniq = 0;
    rmcf->health_size = -1;
    rmcf->health_reason_len = 0;

    ngx_http_redirector_health_check(rmcf, cycle->log);

    rmcf->health_timer.handler = ngx_http_redirector_health_timer;
    rmcf->health_timer.data = rmcf;
    rmcf->health_timer.log = cycle->log;
    rmcf->health_timer.cancelable = 1;

    ngx_add_timer(&rmcf->health_timer, rmcf->health_interval);

    return NGX_OK;
}


static void
ngx_http_redirector_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_redirector_main_conf_t  *rmcf;

    rmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_redirector_module);

    if (rmcf == NULL || rmcf->health == NULL) {
        return;
    }

    if (rmcf->health_timer.timer_set) {
        ngx_del_timer(&rmcf->health_timer);
    }

    rmcf->health_active = 0;

    rdr_health_free(rmcf->health);
    rmcf->health = NULL;
}


static void
ngx_http_redirector_health_timer(ngx_event_t *ev)
{
    ngx_http_redirector_main_conf_t  *rmcf = ev->data;

    if (ngx_exiting || ngx_terminate || rmcf->health == NULL) {
        return;
    }

    ngx_http_redirector_health_check(rmcf, ev->log);

    ngx_add_timer(ev, rmcf->health_interval);
}


static void
ngx_http_redirector_health_check(ngx_http_redirector_main_conf_t *rmcf,
    ngx_log_t *log)
{
    long              nsec;
    u_char           *p;
    int64_t           now;
    ngx_err_t         err;
    ngx_time_t       *tp;
    ngx_file_info_t   fi;
    u_char            reason[NGX_HTTP_REDIRECTOR_REASON_LEN];

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + (int64_t) tp->msec;

    if (ngx_file_info(rmcf->health_state.data, &fi) == NGX_FILE_ERROR) {
        err = ngx_errno;

        p = ngx_snprintf(reason, sizeof(reason) - 1,
                         ngx_file_info_n " failed (%d: ", err);
        p = ngx_strerror(err, p, reason + sizeof(reason) - 2 - p);
        p = ngx_snprintf(p, reason + sizeof(reason) - 1 - p, ")");
        *p = '\0';

        rmcf->health_uniq = 0;
        rmcf->health_size = -1;

        ngx_http_redirector_health_off(rmcf, log, reason);
        return;
    }

#if (NGX_LINUX)
    nsec = fi.st_mtim.tv_nsec;
#else
    nsec = 0;
#endif

    if (ngx_file_uniq(&fi) != rmcf->health_uniq
        || ngx_file_size(&fi) != rmcf->health_size
        || ngx_file_mtime(&fi) != rmcf->health_mtime
        || nsec != rmcf->health_mtime_nsec)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                       "redirector: health state \"%V\" changed",
                       &rmcf->health_state);

        if (ngx_http_redirector_health_read(rmcf, log, now, reason,
                                            sizeof(reason))
            != NGX_OK)
        {
            /*
             * a file that could not be read is read again on the next tick
             * (its identity was not remembered); a refused one only when it
             * changes, so a stale file is refused and logged once
             */

            ngx_http_redirector_health_off(rmcf, log, reason);
            return;
        }

        if (rmcf->health_reason_len) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "redirector: health state \"%V\" loaded "
                          "(%D members down)", &rmcf->health_state,
                          rdr_health_down_count(rmcf->health));
        }

        rmcf->health_reason_len = 0;
        rmcf->health_active = 1;
        rmcf->health_expires = rdr_health_expires(rmcf->health);
    }

    if (rmcf->health_active && now > rmcf->health_expires) {
        p = ngx_snprintf(reason, sizeof(reason) - 1,
                         "stale since %L ms ago, not rewritten by the "
                         "prober (is it running?)",
                         now - rmcf->health_expires);
        *p = '\0';

        ngx_http_redirector_health_off(rmcf, log, reason);
    }
}


/*
 * Reads the state file whole into a temporary pool and loads it into the
 * worker's rdr_health.  Remembers the identity (inode, size, mtime) of the
 * file read.  On failure writes the reason, NUL-terminated, into `reason`.
 */

static ngx_int_t
ngx_http_redirector_health_read(ngx_http_redirector_main_conf_t *rmcf,
    ngx_log_t *log, int64_t now, u_char *reason, size_t len)
{
    int               rc;
    u_char           *p, *buf;
    off_t             size;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_err_t         err;
    ngx_file_t        file;
    ngx_pool_t       *pool;
    const char       *what;
    ngx_file_info_t   fi;

    fd = ngx_open_file(rmcf->health_state.data, NGX_FILE_RDONLY,
                       NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        what = ngx_open_file_n;
        goto failed;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        what = ngx_fd_info_n;
        goto failed_close;
    }

    size = ngx_file_size(&fi);

    if (size > NGX_HTTP_REDIRECTOR_HEALTH_MAX) {
        ngx_close_file(fd);

        p = ngx_snprintf(reason, len - 1, "%O bytes, larger than %d",
                         size, NGX_HTTP_REDIRECTOR_HEALTH_MAX);
        *p = '\0';
        return NGX_ERROR;
    }

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, log);
    if (pool == NULL) {
        ngx_close_file(fd);

        p = ngx_snprintf(reason, len - 1, "out of memory");
        *p = '\0';
        return NGX_ERROR;
    }

    buf = ngx_pnalloc(pool, (size_t) size + 1);
    if (buf == NULL) {
        ngx_destroy_pool(pool);
        ngx_close_file(fd);

        p = ngx_snprintf(reason, len - 1, "out of memory");
        *p = '\0';
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = rmcf->health_state;
    file.log = log;

    n = size ? ngx_read_file(&file, buf, (size_t) size, 0) : 0;

    if (n == NGX_ERROR) {
        ngx_destroy_pool(pool);
        what = ngx_read_file_n;
        goto failed_close;
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &rmcf->health_state);
    }

    if (n != size) {
        ngx_destroy_pool(pool);

        p = ngx_snprintf(reason, len - 1, "read only %z of %O bytes", n, size);
        *p = '\0';
        return NGX_ERROR;
    }

    reason[0] = '\0';

    rc = rdr_health_load(rmcf->health, buf, (size_t) n, now,
                         (char *) reason, len);

    ngx_destroy_pool(pool);

    /* a refused file left the state "every member up" */

    rmcf->health_uniq = ngx_file_uniq(&fi);
    rmcf->health_size = size;
    rmcf->health_mtime = ngx_file_mtime(&fi);
#if (NGX_LINUX)
    rmcf->health_mtime_nsec = fi.st_mtim.tv_nsec;
#else
    rmcf->health_mtime_nsec = 0;
#endif

    if (rc != RDR_OK) {
        reason[len - 1] = '\0';

        if (reason[0] == '\0') {
            p = ngx_snprintf(reason, len - 1, "refused (%d)", rc);
            *p = '\0';
        }

        return NGX_ERROR;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                   "redirector: health state \"%V\" loaded, %D down, "
                   "expires %L", &rmcf->health_state,
                   rdr_health_down_count(rmcf->health),
                   rdr_health_expires(rmcf->health));

    return NGX_OK;

failed_close:

    err = ngx_errno;
    ngx_close_file(fd);
    ngx_set_errno(err);

failed:

    err = ngx_errno;

    p = ngx_snprintf(reason, len - 1, "%s failed (%d: ", what, err);
    p = ngx_strerror(err, p, reason + len - 2 - p);
    p = ngx_snprintf(p, reason + len - 1 - p, ")");
    *p = '\0';

    return NGX_ERROR;
}


/* Decides without health from now on; logs `reason` unless it was the last. */

static void
ngx_http_redirector_health_off(ngx_http_redirector_main_conf_t *rmcf,
    ngx_log_t *log, u_char *reason)
{
    size_t  len;

    rmcf->health_active = 0;

    len = ngx_strlen(reason);

    if (len == rmcf->health_reason_len
        && ngx_memcmp(reason, rmcf->health_reason, len) == 0)
    {
        return;
    }

    len = ngx_min(len, NGX_HTTP_REDIRECTOR_REASON_LEN - 1);
    ngx_memcpy(rmcf->health_reason, reason, len);
    rmcf->health_reason_len = len;

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "redirector: health state \"%V\": %s "
                  "(deciding without health)", &rmcf->health_state, reason);
}
