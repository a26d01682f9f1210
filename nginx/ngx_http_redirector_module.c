
/*
 * ngx_http_redirector_module: redirects clients to the mirror of the cloud
 * provider that owns their address, using a snapshot compiled by
 * `redirector compile` and the C ABI of libredirector.so (redirector.h).
 *
 * Directives:
 *   redirector_snapshot  /path/to/file.rdb;     http
 *   redirector           on | off;              http, server, location
 *   set_redirector_target $var [$fallback];     server, location, if (needs the NDK)
 *
 * Variables: $redirector_action, $redirector_status, $redirector_target,
 *   $redirector_provider, $redirector_region, $redirector_prefix,
 *   $redirector_asn, $redirector_route, $redirector_snapshot.
 *
 * The client address is the connection address (c->addr_text), so the stock
 * realip module decides which proxies are trusted.
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


typedef struct {
    rdr_table                  *table;
    ngx_str_t                   snapshot;
    ngx_flag_t                  table_required;
} ngx_http_redirector_main_conf_t;


typedef struct {
    ngx_flag_t                  enable;
} ngx_http_redirector_loc_conf_t;


typedef struct {
    rdr_decision                decision;
    ngx_str_t                   location;
} ngx_http_redirector_ctx_t;


enum {
    NGX_HTTP_REDIRECTOR_VAR_ACTION = 0,
    NGX_HTTP_REDIRECTOR_VAR_STATUS,
    NGX_HTTP_REDIRECTOR_VAR_TARGET,
    NGX_HTTP_REDIRECTOR_VAR_PROVIDER,
    NGX_HTTP_REDIRECTOR_VAR_REGION,
    NGX_HTTP_REDIRECTOR_VAR_PREFIX,
    NGX_HTTP_REDIRECTOR_VAR_ASN,
    NGX_HTTP_REDIRECTOR_VAR_ROUTE
};


static ngx_int_t ngx_http_redirector_get_ctx(ngx_http_request_t *r,
    ngx_http_redirector_ctx_t **ctxp);
static ngx_int_t ngx_http_redirector_handler(ngx_http_request_t *r);
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
static void ngx_http_redirector_set_cstr(ngx_http_variable_value_t *v,
    const char *s);

static char *ngx_http_redirector_snapshot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void ngx_http_redirector_cleanup(void *data);
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

    { ngx_string("redirector"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_redirector_loc_conf_t, enable),
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
    NULL,                                  /* init main configuration */

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
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
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

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_redirector_actions[] = {
    ngx_string("pass"),
    ngx_string("redirect"),
    ngx_string("respond")
};


/*
 * Decides the (main) request once and caches the answer in its ctx.
 * Returns NGX_OK with *ctxp set, NGX_DECLINED when no snapshot is configured,
 * or NGX_ERROR when memory ran out.
 */

static ngx_int_t
ngx_http_redirector_get_ctx(ngx_http_request_t *r,
    ngx_http_redirector_ctx_t **ctxp)
{
    int                               rc;
    u_char                           *buf;
    size_t                            len, need;
    rdr_request                       req;
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

    req.client = (const char *) r->connection->addr_text.data;
    req.client_len = r->connection->addr_text.len;
    req.method = (const char *) r->method_name.data;
    req.method_len = r->method_name.len;

    if (r->headers_in.host) {
        req.host = (const char *) r->headers_in.host->value.data;
        req.host_len = r->headers_in.host->value.len;

    } else {
        req.host = "";
        req.host_len = 0;
    }

    req.path = (const char *) r->unparsed_uri.data;
    req.path_len = r->unparsed_uri.len;

    if (req.client == NULL) {
        req.client = "";
        req.client_len = 0;
    }

    if (req.method == NULL) {
        req.method = "";
        req.method_len = 0;
    }

    if (req.path == NULL) {
        req.path = "";
        req.path_len = 0;
    }

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

    } else if (ctx->decision.action == RDR_REDIRECT) {
        ctx->location.data = buf;
        ctx->location.len = ngx_min(ctx->decision.location_len, len);
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "redirector: client \"%V\" action %d status %d "
                   "location \"%V\"", &r->connection->addr_text,
                   ctx->decision.action, ctx->decision.status,
                   &ctx->location);

    ngx_http_set_ctx(r, ctx, ngx_http_redirector_module);

    *ctxp = ctx;

    return NGX_OK;
}


static ngx_int_t
ngx_http_redirector_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_redirector_ctx_t       *ctx;
    ngx_http_redirector_loc_conf_t  *rlcf;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_redirector_module);

    if (!rlcf->enable) {
        return NGX_DECLINED;
    }

    rc = ngx_http_redirector_get_ctx(r, &ctx);

    if (rc == NGX_DECLINED) {
        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
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

    switch (data) {

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
    uint32_t             abi;
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

    ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                  "redirector: loaded snapshot \"%V\" (%D providers)",
                  &path, rdr_provider_count(table));

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
     */

    return rmcf;
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

    return conf;
}


static char *
ngx_http_redirector_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_redirector_loc_conf_t *prev = parent;
    ngx_http_redirector_loc_conf_t *conf = child;

    ngx_http_redirector_main_conf_t  *rmcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    if (conf->enable) {
        rmcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_redirector_module);
        rmcf->table_required = 1;
    }

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

        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_redirector_handler;

    return NGX_OK;
}
