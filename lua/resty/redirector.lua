-- resty.redirector: LuaJIT FFI binding of libredirector.so (include/redirector.h).
--
-- Answers the same questions as the NGINX module, from lua-nginx-module/OpenResty:
--
--   init_by_lua_block {
--       local redirector = require "resty.redirector"
--       rdr = assert(redirector.new("/etc/nginx/redirector.rdb",
--                                   { library = "/usr/lib/nginx/modules/libredirector.so" }))
--   }
--   access_by_lua_block { rdr:access() }
--
-- or, to compose your own answer:
--
--   local d = rdr:decide(ngx.var.remote_addr, ngx.req.get_method(),
--                        ngx.var.http_host, ngx.var.request_uri)
--   if d.action == "redirect" then return ngx.redirect(d.location, d.status) end
--
-- Mirror pools with health checks: decisions skip the members the prober's state file marks
-- down once the object watches it (init_worker_by_lua*, or init_by_lua*: the timer then starts
-- in each worker at its first decision):
--
--   init_worker_by_lua_block { rdr:watch_health("/run/redirector/health.state", 1) }
--
-- Presence checks (routes with `verify`): pass the internal location that checks, as the NGINX
-- module's redirector_presence_check; access() then waits on ngx.location.capture (a HEAD to
-- ngx.ctx.redirector_check_url) and decides again without a member that lacks the object:
--
--   rdr = assert(redirector.new(path, { presence_check = "/_redirector_presence" }))
--
-- and give that location the binding's header filter, which hands the mirror's own status to the
-- check (nginx reads an answer that is not HTTP as HTTP/0.9 and reports it to the capture as 200):
--
--   header_filter_by_lua_block { require("resty.redirector").check_header_filter() }
--
-- Memory: buffers are allocated once per object (new() runs in init_by_lua*, so every
-- worker gets its own copy on fork); a decision allocates no C memory. Strings the
-- library returns point into the open table and are copied into Lua strings.
-- The object is not closed explicitly: the table lives as long as the process
-- (a reload starts new workers with a new table).

local ffi = require "ffi"

local ffi_new = ffi.new
local ffi_string = ffi.string
local tonumber = tonumber
local tostring = tostring
local type = type
local pairs = pairs
local ipairs = ipairs
local pcall = pcall
local rawget = rawget
local setmetatable = setmetatable
local math_floor = math.floor
local str_lower = string.lower

-- The declarations of include/redirector.h that this binding uses, its constants included (as
-- static consts and the rdr_action enum). Tests/Integration/test_abi_layout.py compiles the header
-- and fails when a size, an offset or a value here disagrees with it.
if not pcall(ffi.typeof, "rdr_header") then
    ffi.cdef [[
static const int RDR_ABI_VERSION = 4;

typedef struct rdr_table rdr_table;

static const int RDR_OK = 0;
static const int RDR_NO_MATCH = -1;
static const int RDR_ENOSPC = -1;
static const int RDR_EINVAL = -2;
static const int RDR_ERANGE = -3;
static const int RDR_EHEALTH = -4;
static const int RDR_MAX_HEADERS = 32;

uint32_t rdr_abi_version(void);
rdr_table *rdr_open(const char *snapshot_path, char *err, size_t errlen);
void rdr_close(rdr_table *t);
int32_t rdr_lookup(const rdr_table *t, const uint8_t *addr, size_t addrlen);
int32_t rdr_provider_count(const rdr_table *t);
const char *rdr_provider_name(const rdr_table *t, int32_t index);
const char *rdr_attribute_source(const rdr_table *t, int32_t attribute);

typedef enum {
    RDR_PASS     = 0,
    RDR_REDIRECT = 1,
    RDR_RESPOND  = 2
} rdr_action;

typedef struct {
    const char *name;    size_t name_len;
    const char *value;   size_t value_len;
} rdr_header;

typedef struct rdr_health rdr_health;

typedef struct {
    const char *client;  size_t client_len;
    const char *method;  size_t method_len;
    const char *host;    size_t host_len;
    const char *path;    size_t path_len;
    const rdr_header *headers; size_t header_count;
    const rdr_health *health;
    const uint32_t *missing; size_t missing_count;
    int32_t checks_exhausted;
} rdr_request;

typedef struct {
    int32_t     action;
    int32_t     status;
    size_t      location_len;
    int32_t     provider;
    int32_t     route;
    uint32_t    asn;
    int32_t     attribute;
    int32_t     family;
    uint8_t     client[16];
    const char *provider_name;
    const char *region;
    const char *route_name;
    const char *target_host;
    int32_t     pool;
    int32_t     member;
    int32_t     step;
    const char *pool_name;
    const char *step_name;
    int32_t     verify;
} rdr_decision;

typedef struct {
    uint32_t    timeout_ms;
    uint32_t    present_ttl_ms;
    uint32_t    absent_ttl_ms;
    uint32_t    cache_entries;
    uint32_t    concurrency;
    uint32_t    max_checks;
    int32_t     verify_routes;
    const char *verify_route;
} rdr_presence;

int rdr_presence_settings(const rdr_table *t, rdr_presence *out);

static const int RDR_STEP_NONE = 0;
static const int RDR_STEP_PRIMARY = 1;
static const int RDR_STEP_POOL_FALLBACK = 2;
static const int RDR_STEP_NEAREST_REGION = 3;
static const int RDR_STEP_PROVIDER = 4;
static const int RDR_STEP_DEFAULT = 5;
static const int RDR_STEP_PASS = 6;

int rdr_decide(const rdr_table *t, const rdr_request *req, rdr_decision *out,
               char *buf, size_t buflen);
int rdr_format_prefix(const rdr_table *t, const rdr_decision *d, char *buf, size_t buflen);
int32_t rdr_route_header_count(const rdr_table *t, int32_t route);
int rdr_route_header(const rdr_table *t, int32_t route, int32_t index,
                     const char **name, const char **value);
int32_t rdr_header_name_count(const rdr_table *t);
const char *rdr_header_name(const rdr_table *t, int32_t i);
rdr_health *rdr_health_new(const rdr_table *t);
int rdr_health_load(rdr_health *h, const void *data, size_t len, int64_t now_ms,
                    char *err, size_t errlen);
int64_t rdr_health_expires(const rdr_health *h);
int32_t rdr_health_down_count(const rdr_health *h);
void rdr_health_free(rdr_health *h);
int rdr_format_skipped(const rdr_table *t, const rdr_request *req, char *buf, size_t buflen);
]]
end

if not pcall(function() return ffi.C.inet_pton end) then
    ffi.cdef [[ int inet_pton(int af, const char *src, void *dst); ]]
end
if not pcall(function() return ffi.C.clock_gettime end) then
    ffi.cdef [[ int clock_gettime(int clk_id, void *tp); ]]
end

local C = ffi.C
local RDR_OK = C.RDR_OK
local RDR_NO_MATCH = C.RDR_NO_MATCH
local RDR_ENOSPC = C.RDR_ENOSPC
local RDR_REDIRECT = C.RDR_REDIRECT
local RDR_MAX_HEADERS = C.RDR_MAX_HEADERS
local HEALTH_FILE_MAX = 1024 * 1024 -- a state file is 40 + ~20 bytes per member; refuse anything bigger
local AF_INET = 2
local AF_INET6 = 10
local ACTIONS = { [C.RDR_PASS] = "pass", [RDR_REDIRECT] = "redirect", [C.RDR_RESPOND] = "respond" }
local REDIRECT_STATUS = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }

local _M = { _VERSION = "0.2.0", ABI_VERSION = C.RDR_ABI_VERSION }

-- Where ffi.load looks when new() is given no `library` option, in order.
_M.library_search = {
    "/usr/lib/nginx/modules/libredirector.so",
    "/usr/local/lib/libredirector.so",
    "redirector", -- the dynamic linker's search path (LD_LIBRARY_PATH, ld.so.cache)
}

local libs = {} -- path -> loaded library (ffi.load handles), shared by all objects

-- Unix time in milliseconds: nginx's cached clock inside nginx, else CLOCK_REALTIME (os.time()
-- when clock_gettime cannot be called with this declaration).
local timespec = ffi_new("long[2]") -- struct timespec { time_t tv_sec; long tv_nsec; }
local function now_ms()
    local ngx = ngx
    if ngx and ngx.now then
        return math_floor(ngx.now() * 1000)
    end
    local ok, rc = pcall(C.clock_gettime, 0, timespec)
    if ok and rc == 0 then
        return tonumber(timespec[0]) * 1000 + math_floor(tonumber(timespec[1]) / 1000000)
    end
    return os.time() * 1000
end

local function log_error(...)
    local ngx = ngx
    if ngx and ngx.log then
        ngx.log(ngx.ERR, ...)
    else
        io.stderr:write(table.concat({ ... }), "\n")
    end
end

local function log_notice(...)
    local ngx = ngx
    if ngx and ngx.log then
        ngx.log(ngx.NOTICE, ...)
    end
end

local function load_library(path)
    local lib = libs[path]
    if lib then
        return lib
    end
    local ok, res = pcall(ffi.load, path)
    if not ok then
        return nil, res
    end
    local abi = tonumber(res.rdr_abi_version())
    if abi ~= _M.ABI_VERSION then
        return nil, "libredirector " .. path .. " implements ABI version " .. tostring(abi)
            .. ", this binding needs " .. _M.ABI_VERSION
    end
    libs[path] = res
    return res
end

local function find_library(opts)
    if opts.library then
        return load_library(opts.library)
    end
    local errs = {}
    for _, path in ipairs(_M.library_search) do
        local lib, err = load_library(path)
        if lib then
            return lib
        end
        errs[#errs + 1] = err
    end
    return nil, "libredirector.so not found (pass { library = \"/path/libredirector.so\" }): "
        .. table.concat(errs, "; ")
end


local mt = {}
mt.__index = mt

--- Opens a snapshot. Call it in init_by_lua* (the master): the table is then shared by
--- all workers copy-on-write. opts.library: path of libredirector.so; opts.presence_check:
--- the internal location that checks (needed when routes verify); opts.checks_variable: an
--- nginx variable (declared with `set $name "";`) that access() sets to the decision's checks,
--- for the access log.
--- Returns the object, or nil and a message naming the file and the reason.
function _M.new(path, opts)
    opts = opts or {}
    if type(path) ~= "string" or path == "" then
        return nil, "redirector.new: snapshot path expected"
    end
    local lib, err = find_library(opts)
    if not lib then
        return nil, err
    end

    local errbuf = ffi_new("char[512]")
    local t = lib.rdr_open(path, errbuf, 512)
    if t == nil then
        local msg = ffi_string(errbuf)
        if msg == "" then
            msg = "cannot open snapshot " .. path
        end
        return nil, msg
    end
    ffi.gc(t, lib.rdr_close)

    local buflen = opts.location_buffer or 4096
    local self = {
        lib = lib,
        table = t,
        path = path,
        req = ffi_new("rdr_request[1]"),
        dec = ffi_new("rdr_decision[1]"),
        buf = ffi_new("char[?]", buflen),
        buflen = buflen,
        prefix_buf = ffi_new("char[48]"),
        addr_buf = ffi_new("uint8_t[16]"),
        hname = ffi_new("const char *[1]"),
        hvalue = ffi_new("const char *[1]"),
        hbuf = ffi_new("rdr_header[?]", RDR_MAX_HEADERS),
        errbuf = ffi_new("char[512]"),
        skip_buf = ffi_new("char[1024]"),
        skip_buflen = 1024,
        providers = {},      -- index -> name
        route_headers = {},  -- route index -> { {name, value}, ... } or false
        header_names = {},   -- the lower-case request header names the routes look at
        header_set = {},     -- the same as a set
        health = nil,        -- rdr_health * (watch_health)
        health_active = false,
    }
    local n = tonumber(lib.rdr_provider_count(t))
    for i = 0, n - 1 do
        local p = lib.rdr_provider_name(t, i)
        self.providers[i] = p ~= nil and ffi_string(p) or ""
    end
    self.provider_count = n
    for i = 0, tonumber(lib.rdr_header_name_count(t)) - 1 do
        local p = lib.rdr_header_name(t, i)
        if p ~= nil then
            local name = ffi_string(p)
            self.header_names[#self.header_names + 1] = name
            self.header_set[name] = true
        end
    end
    self.header_count = #self.header_names

    local presence = ffi_new("rdr_presence[1]")
    if lib.rdr_presence_settings(t, presence) ~= RDR_OK then
        return nil, "rdr_presence_settings failed"
    end
    self.verify_routes = tonumber(presence[0].verify_routes)
    if self.verify_routes > 0 and not opts.presence_check then
        return nil, "route \"" .. ffi_string(presence[0].verify_route) .. "\" of " .. path
            .. " verifies presence: pass { presence_check = \"/uri\" }, the internal location that checks"
    end
    self.presence_check = opts.presence_check
    self.checks_variable = opts.checks_variable
    self.max_checks = tonumber(presence[0].max_checks)
    self.missing_buf = ffi_new("uint32_t[?]", self.max_checks + 1)
    return setmetatable(self, mt)
end

local function cstr(p)
    if p == nil then
        return nil
    end
    local s = ffi_string(p)
    if s == "" then
        return nil
    end
    return s
end

function mt:_route_headers(route)
    local hs = self.route_headers[route]
    if hs ~= nil then
        return hs or nil
    end
    local lib, t = self.lib, self.table
    local n = tonumber(lib.rdr_route_header_count(t, route))
    local list = {}
    for i = 0, n - 1 do
        if lib.rdr_route_header(t, route, i, self.hname, self.hvalue) == RDR_OK
            and self.hname[0] ~= nil and self.hvalue[0] ~= nil then
            list[#list + 1] = { ffi_string(self.hname[0]), ffi_string(self.hvalue[0]) }
        end
    end
    if #list == 0 then
        list = false
    end
    self.route_headers[route] = list
    return list or nil
end

local function str(s)
    if type(s) == "string" then
        return s
    end
    return ""
end

-- Appends header `name` with value `v` (a string, or a list of them for a repeated header) to
-- the flat list { name, value, name, value, ... } of at most RDR_MAX_HEADERS headers.
local function add_header(list, n, name, v)
    if type(v) == "string" then
        if n < RDR_MAX_HEADERS * 2 then
            list[n + 1], list[n + 2] = name, v
            n = n + 2
        end
    elseif type(v) == "table" then
        for _, x in ipairs(v) do
            n = add_header(list, n, name, x)
        end
    end
    return n
end

--- The request headers a decision passes: from `headers` (name -> value or list of values, any
--- name case), or, when it is nil and there is a current request, from ngx.req.get_headers();
--- only the names the routes look at. A flat list { name, value, ... }, or nil.
function mt:_request_headers(headers)
    local list, n = {}, 0
    if headers == nil then
        local ngx = ngx
        if not (ngx and ngx.req and ngx.req.get_headers) then
            return nil
        end
        local ok, h = pcall(ngx.req.get_headers) -- fails outside a request (init, timer)
        if not ok or type(h) ~= "table" then
            return nil
        end
        local names = self.header_names
        for i = 1, #names do
            n = add_header(list, n, names[i], h[names[i]])
        end
    elseif type(headers) == "table" then
        local set = self.header_set
        for name, v in pairs(headers) do
            if type(name) == "string" and set[str_lower(name)] then
                n = add_header(list, n, name, v)
            end
        end
    end
    if n == 0 then
        return nil
    end
    return list
end

-- Fills the request struct; the Lua strings (in the caller's locals and `hlist`) stay alive
-- while the library reads them. `missing`: member slots a presence check did not find the
-- object on (a list), or nil; `exhausted`: the request is out of checks (skip verifying routes).
function mt:_fill_request(client, method, host, path, hlist, missing, exhausted)
    local req = self.req[0]
    req.client, req.client_len = client, #client
    req.method, req.method_len = method, #method
    req.host, req.host_len = host, #host
    req.path, req.path_len = path, #path
    if hlist then
        local hb, count = self.hbuf, 0
        for i = 1, #hlist, 2 do
            local name, value = hlist[i], hlist[i + 1]
            hb[count].name, hb[count].name_len = name, #name
            hb[count].value, hb[count].value_len = value, #value
            count = count + 1
        end
        req.headers, req.header_count = hb, count
    else
        req.headers, req.header_count = nil, 0
    end
    req.health = self:_decision_health()
    req.checks_exhausted = exhausted and 1 or 0
    if missing and #missing > 0 then
        local n = #missing <= self.max_checks and #missing or self.max_checks
        for i = 1, n do
            self.missing_buf[i - 1] = missing[i]
        end
        req.missing, req.missing_count = self.missing_buf, n
    else
        req.missing, req.missing_count = nil, 0
    end
    return req
end

-- Results compute `skipped` when it is first read (rdr_format_skipped decides again). The
-- decision's inputs wait in a weak-keyed side table, so a result stays a plain table of strings
-- and numbers (cjson.encode, pairs) and does not keep the binding alive.
local pending_inputs = setmetatable({}, { __mode = "k" })
local result_mt = {
    __index = function(res, key)
        if key ~= "skipped" then
            return nil
        end
        local inputs = pending_inputs[res]
        if not inputs then
            return nil
        end
        pending_inputs[res] = nil
        local text = inputs[1]:_skipped(inputs)
        res.skipped = text
        return text
    end,
}

function mt:_skipped(inputs)
    local req = self:_fill_request(inputs[2], inputs[3], inputs[4], inputs[5], inputs[6], inputs[8], inputs[9])
    if not inputs[7] then
        req.health = nil -- explain with the health the decision had (none)
    end
    local lib, t = self.lib, self.table
    local rc = lib.rdr_format_skipped(t, req, self.skip_buf, self.skip_buflen)
    while rc == RDR_ENOSPC and self.skip_buflen < 1024 * 1024 do
        self.skip_buflen = self.skip_buflen * 4
        self.skip_buf = ffi_new("char[?]", self.skip_buflen)
        rc = lib.rdr_format_skipped(t, req, self.skip_buf, self.skip_buflen)
    end
    if rc > 0 then
        return ffi_string(self.skip_buf, rc)
    end
    return nil
end

--- Decides one request. client: address text (ngx.var.remote_addr); method; host (Host
--- header); path: raw request target with query (ngx.var.request_uri); headers: the request
--- headers, name -> value (or a list of values), or nil to read the current request's (inside
--- nginx) -- only the names the routes look at are passed (none when no route looks at any).
--- The health state watch_health() keeps is used while it is fresh.
--- Returns a table { action = "pass"|"redirect"|"respond", status = number (0 for pass),
--- location = string|nil, provider, region, prefix ("192.0.2.0/24"), route: string|nil,
--- asn = number|nil, headers = { {name, value}, ... }|nil (read-only, shared),
--- pool (pool name)|nil, member (the chosen member's URL)|nil, step ("primary",
--- "nearest-region", ..., "pass")|nil, skipped ("url(pool):reason ..." , computed when read)|nil,
--- verify (true: the redirect needs a presence check, see decide_verified; respond() passes
--- such a decision unless decide_verified found the object: verified = true)|nil, slot (the
--- member's slot)|nil }, or nil and a message. `missing`: slots to skip (failed checks);
--- `exhausted`: skip the routes that verify (the request is out of checks).
function mt:decide(client, method, host, path, headers, missing, exhausted)
    client, method, host, path = str(client), str(method), str(host), str(path)
    local lib, t, dec = self.lib, self.table, self.dec
    local hlist = nil
    if self.header_count > 0 then
        hlist = self:_request_headers(headers)
    end
    local req = self:_fill_request(client, method, host, path, hlist, missing, exhausted)

    local rc = lib.rdr_decide(t, req, dec, self.buf, self.buflen)
    if rc == RDR_ENOSPC then
        -- grow once (rare: a target longer than the buffer) and keep the bigger buffer
        local need = tonumber(dec[0].location_len) + 1
        local len = self.buflen
        while len < need do
            len = len * 2
        end
        self.buf, self.buflen = ffi_new("char[?]", len), len
        rc = lib.rdr_decide(t, req, dec, self.buf, self.buflen)
    end
    if rc ~= RDR_OK then
        return nil, "rdr_decide failed: " .. tostring(rc)
    end

    local d = dec[0]
    local action = ACTIONS[tonumber(d.action)] or "pass"
    local res = {
        action = action,
        status = tonumber(d.status),
        provider = nil,
        region = cstr(d.region),
        route = cstr(d.route_name),
        prefix = nil,
        asn = nil,
        location = nil,
        headers = nil,
        pool = cstr(d.pool_name),
        member = nil,
        step = cstr(d.step_name),
    }
    pending_inputs[res] = { self, client, method, host, path, hlist, req.health ~= nil, missing, exhausted }
    local provider = tonumber(d.provider)
    if provider >= 0 then
        res.provider = self.providers[provider] or cstr(d.provider_name)
        if res.provider == "" then
            res.provider = nil
        end
    end
    local asn = tonumber(d.asn)
    if asn ~= 0 then
        res.asn = asn
    end
    if d.attribute >= 0 then
        local n = lib.rdr_format_prefix(self.table, dec, self.prefix_buf, 48)
        if n > 0 then
            res.prefix = ffi_string(self.prefix_buf, n)
        end
    end
    if action == "redirect" then
        local n = tonumber(d.location_len)
        if n > self.buflen then
            n = self.buflen
        end
        res.location = ffi_string(self.buf, n)
        res.member = cstr(d.target_host)
        res.slot = tonumber(d.member)
        if d.verify ~= 0 then
            res.verify = true
        end
    end
    local route = tonumber(d.route)
    if route >= 0 and action ~= "pass" then
        res.headers = self:_route_headers(route)
    end
    return setmetatable(res, result_mt)
end

-- The headers check_header_filter() puts on the presence_check location's answers: the
-- mirror's status, and proxy_cache's $upstream_cache_status.
local CHECK_STATUS_HEADER = "X-Redirector-Check-Status"
local CHECK_CACHE_HEADER = "X-Redirector-Check-Cache"

-- proxy_cache answered without asking the mirror.
local FROM_CACHE = { HIT = true, STALE = true, UPDATING = true }

--- The header filter of the presence_check location (header_filter_by_lua_block): records the
--- status the mirror answered with, 0 for an answer that was not HTTP (ngx.status is 9 for
--- what nginx took as HTTP/0.9, which ngx.location.capture would report as 200), and whether
--- proxy_cache answered.
function _M.check_header_filter()
    local status = ngx.status or 0
    ngx.header[CHECK_STATUS_HEADER] = tostring(status >= 100 and status or 0)
    ngx.header[CHECK_CACHE_HEADER] = ngx.var.upstream_cache_status
end

--- The presence check inside nginx: a HEAD subrequest to the presence_check location, which
--- proxies to ngx.ctx.redirector_check_url. Returns the mirror's status as check_header_filter()
--- recorded it; 0 (unknown) when there was none, or when the location lacks that filter (logged:
--- the capture's own status cannot tell a 200 from an answer that is not HTTP). Second: whether
--- proxy_cache answered.
function mt:_capture_check(url)
    local ngx = ngx
    local res = ngx.location.capture(self.presence_check,
                                     { method = ngx.HTTP_HEAD, ctx = { redirector_check_url = url } })
    if not res then
        return 0, false
    end
    local status = res.header[CHECK_STATUS_HEADER]
    if not status then
        if not self.filter_missing_logged then
            self.filter_missing_logged = true
            ngx.log(ngx.ERR, "redirector: the presence_check location ", self.presence_check, " lacks ",
                    'header_filter_by_lua_block { require("resty.redirector").check_header_filter() }: ',
                    "its answers count as unknown (logged once per worker)")
        end
        return 0, false
    end
    return tonumber(status) or 0, FROM_CACHE[res.header[CHECK_CACHE_HEADER]] == true
end

-- Milliseconds on CLOCK_MONOTONIC, to time a check (nil if clock_gettime cannot be called).
local function monotonic_ms()
    local ok, rc = pcall(C.clock_gettime, 1, timespec)
    if ok and rc == 0 then
        return tonumber(timespec[0]) * 1000 + tonumber(timespec[1]) / 1000000
    end
    return nil
end

--- decide(), then, while the decision is a redirect of a `verify` route, a presence check of
--- its location: check(url) returns an HTTP status and whether a cache answered (default: the
--- capture of the presence_check location); 2xx answers the redirect, anything else decides
--- again without that member; after the table's max_checks checks the routes after the
--- verifying ones decide. The decision carries `checks`, as the NGINX module's
--- $redirector_checks: "url(absent-404,3ms) url(present,cached) ...". Returns the decision, or
--- nil and a message.
function mt:decide_verified(client, method, host, path, headers, check)
    check = check or function(url) return self:_capture_check(url) end
    local missing, checks = {}, {}
    while true do
        local exhausted = #checks >= self.max_checks
        local d, err = self:decide(client, method, host, path, headers, missing, exhausted)
        if not d or not d.verify or exhausted then
            if d and #checks > 0 then
                d.checks = table.concat(checks, " ")
            end
            return d, err
        end
        local started = monotonic_ms()
        local answer, cached = check(d.location)
        local status = tonumber(answer) or 0
        local how = ")"
        if cached then
            how = ",cached)"
        elseif started then
            how = string.format(",%dms)", math_floor(monotonic_ms() - started + 0.5))
        end
        if status >= 200 and status < 300 then
            checks[#checks + 1] = d.location .. "(present" .. how
            d.checks = table.concat(checks, " ")
            d.verified = true
            return d
        end
        local absent = status == 404 or status == 403 or status == 410
        checks[#checks + 1] = string.format("%s(%s-%03d%s", d.location, absent and "absent" or "unknown",
                                            status < 999 and status or 999, how)
        missing[#missing + 1] = d.slot
    end
end

-- --------------------------------------------------------------------------- health state

local function read_file(path)
    local f, err = io.open(path, "rb")
    if not f then
        err = tostring(err)
        if err:sub(1, #path + 2) == path .. ": " then -- io.open's message starts with the path
            err = err:sub(#path + 3)
        end
        return nil, "cannot open: " .. err
    end
    local data, rerr = f:read(HEALTH_FILE_MAX + 1)
    f:close()
    if data == nil then
        if rerr then
            return nil, "cannot read: " .. tostring(rerr)
        end
        data = "" -- empty file: the library says why that is not a state
    end
    if #data > HEALTH_FILE_MAX then
        return nil, "larger than " .. HEALTH_FILE_MAX .. " bytes"
    end
    return data
end

-- Stops deciding with health, logging `reason` unless it was the last one logged.
function mt:_health_off(reason)
    self.health_active = false
    if reason ~= self.health_reason then
        self.health_reason = reason
        log_error("redirector: health state \"", self.health_path, "\": ", reason, " (deciding without health)")
    end
end

--- Reads the watched state file now: loads it when its content changed, and stops using a state
--- that has gone stale. watch_health() calls it every interval; callers rarely need to.
function mt:check_health()
    local path = self.health_path
    if not path then
        return
    end
    local now = now_ms()
    self.health_checked = now
    local data, err = read_file(path)
    if not data then
        self.health_data = nil
        return self:_health_off(err)
    end
    if data ~= self.health_data then -- (interned strings: an unchanged file compares in O(1))
        local lib = self.lib
        local rc = lib.rdr_health_load(self.health, data, #data, now, self.errbuf, 512)
        if rc ~= RDR_OK then
            -- Refused: tried again only when the content changes, so a stale file is logged once.
            self.health_data = data
            self.health_active = false
            return self:_health_off(ffi_string(self.errbuf))
        end
        self.health_data = data
        self.health_expires = tonumber(lib.rdr_health_expires(self.health))
        self.health_active = true
        if self.health_reason then
            log_notice("redirector: health state \"", path, "\" loaded (",
                       tonumber(lib.rdr_health_down_count(self.health)), " members down)")
        end
        self.health_reason = nil
    end
    if self.health_active and now > self.health_expires then
        self:_health_off("stale since " .. (now - self.health_expires)
                         .. " ms ago, not rewritten by the prober (is it running?)")
    end
end

function mt:_start_health_timer()
    self.health_timer_wanted = nil
    local ngx = ngx
    if ngx.get_phase() == "init" then
        -- the master: every worker starts its own timer at its first decision
        self.health_timer_wanted = true
        return
    end
    local ok, err = ngx.timer.every(self.health_interval, function(premature)
        if not premature then
            self:check_health()
        end
    end)
    if not ok then
        log_error("redirector: health state \"", self.health_path, "\": cannot start the timer: ", tostring(err))
        self.health_polling = true -- fall back to checks on decisions
    end
end

-- The rdr_health * a decision passes (nil: every member up); checks the file when it is due.
function mt:_decision_health()
    if not self.health_path then
        return nil
    end
    if self.health_timer_wanted then
        -- the first decision of a worker forked after watch_health() in init_by_lua*
        self:_start_health_timer()
        self:check_health()
    elseif self.health_polling and now_ms() - self.health_checked >= self.health_interval * 1000 then
        self:check_health()
    end
    if self.health_active then
        return self.health
    end
    return nil
end

--- Decides with the health state in the file at `path` (`redirector probe` writes it), checked
--- every `interval` seconds (default 1). Inside nginx a timer (ngx.timer.every) checks it in each
--- worker: call this in init_worker_by_lua*, or in init_by_lua* (the timer then starts in every
--- worker at its first decision); outside nginx, decide() checks it at most once per interval.
--- The file is read whole (it is small) and loaded when its content changed; a missing, corrupt,
--- foreign or stale file is logged once per reason (ngx.log ERR) and decisions go on as if
--- every member were up. Returns true, or nil and a message.
function mt:watch_health(path, interval)
    if type(path) ~= "string" or path == "" then
        return nil, "watch_health: state file path expected"
    end
    interval = tonumber(interval) or 1
    if interval <= 0 then
        return nil, "watch_health: interval must be positive"
    end
    if not self.health then
        local h = self.lib.rdr_health_new(self.table)
        if h == nil then
            return nil, "watch_health: rdr_health_new failed"
        end
        self.health = ffi.gc(h, self.lib.rdr_health_free)
    end
    self.health_path, self.health_interval = path, interval
    self.health_active, self.health_data, self.health_reason, self.health_expires = false, nil, nil, 0
    self:check_health()
    local ngx = ngx
    self.health_polling = not (ngx and ngx.timer and ngx.timer.every and ngx.get_phase)
    if not self.health_polling then
        self:_start_health_timer()
    end
    return true
end

--- What the watched health state is: { path, active (decisions use it), down (members down),
--- expires (Unix ms), error (the last reason it was not used) }, or nil when nothing is watched.
function mt:health_status()
    if not self.health_path then
        return nil
    end
    return {
        path = self.health_path,
        active = self.health_active,
        down = self.health and tonumber(self.lib.rdr_health_down_count(self.health)) or 0,
        expires = self.health_expires,
        error = self.health_reason,
    }
end

--- Longest-prefix match of one address text ("192.0.2.1", "2001:db8::1").
--- Returns the provider name and index, or nil when no provider covers it or the text is
--- not an address (strict inet_pton parsing: no zone ids, no shorthand).
function mt:lookup(addr)
    if type(addr) ~= "string" or addr == "" then
        return nil
    end
    local buf = self.addr_buf
    local len
    if ffi.C.inet_pton(AF_INET, addr, buf) == 1 then
        len = 4
    elseif ffi.C.inet_pton(AF_INET6, addr, buf) == 1 then
        len = 16
    else
        return nil
    end
    local idx = tonumber(self.lib.rdr_lookup(self.table, buf, len))
    if idx == RDR_NO_MATCH then
        return nil
    end
    return self.providers[idx], idx
end

--- The provider names, index order (0-based indices as in the C ABI).
function mt:provider_names()
    local names = {}
    for i = 0, self.provider_count - 1 do
        names[#names + 1] = self.providers[i]
    end
    return names
end

--- Decides the current request from ngx.var (after realip): $remote_addr, the method,
--- $http_host and $request_uri, exactly the inputs the NGINX module uses; with presence checks
--- when the table has `verify` routes (decide_verified).
--- Returns the decision table, or nil and a message.
function mt:decide_request()
    local var = ngx.var
    if self.verify_routes > 0 then
        return self:decide_verified(var.remote_addr, ngx.req.get_method(), var.http_host, var.request_uri)
    end
    return self:decide(var.remote_addr, ngx.req.get_method(), var.http_host, var.request_uri)
end

--- Acts on a decision in access_by_lua*, as the NGINX module's `redirector on;` does:
--- "redirect" answers the status with Location, "respond" answers the status with the
--- route's headers and an empty body, "pass" (or nil) lets the request continue.
--- Use it as `return rdr:respond(d)`.
function mt:respond(d)
    local ngx = ngx
    if not d or d.action == "pass" then
        return
    end

    local status = d.status
    if d.action == "redirect" then
        if d.verify and not d.verified then
            -- a decide() of a verifying route: never a redirect that was not checked
            ngx.log(ngx.ERR, "redirector: route ", tostring(d.route),
                    " verifies presence: decide with decide_verified(), passing request")
            return
        end
        if not REDIRECT_STATUS[status] or not d.location then
            ngx.log(ngx.ERR, "redirector: invalid redirect status ", status, ", passing request")
            return
        end
    elseif status < 200 or status > 599 then
        ngx.log(ngx.ERR, "redirector: invalid response status ", status, ", passing request")
        return
    end

    if d.headers then
        local header = ngx.header
        for _, h in ipairs(d.headers) do
            header[h[1]] = h[2]
        end
    end

    if d.action == "redirect" then
        return ngx.redirect(d.location, status)
    end

    -- respond: status, route headers, empty body
    ngx.req.discard_body()
    ngx.status = status
    ngx.header["Content-Length"] = 0
    ngx.send_headers()
    ngx.eof()
    return ngx.exit(ngx.HTTP_OK)
end

--- decide_request() + respond() in one call, for access_by_lua*: `return rdr:access()`.
--- The decision is also kept in ngx.ctx.redirector for later phases (log_by_lua*).
function mt:access()
    local d, err = self:decide_request()
    if not d then
        ngx.log(ngx.ERR, "redirector: ", err, ", passing request")
        return
    end
    ngx.ctx.redirector = d
    if self.checks_variable and d.checks then
        local ok, verr = pcall(function() ngx.var[self.checks_variable] = d.checks end)
        if not ok and not self.checks_variable_logged then
            self.checks_variable_logged = true
            ngx.log(ngx.ERR, "redirector: checks_variable $", self.checks_variable, " cannot be set here ",
                    "(declare it with set $", self.checks_variable, ' "";): ', verr, " (logged once per worker)")
        end
    end
    return self:respond(d)
end

return _M
