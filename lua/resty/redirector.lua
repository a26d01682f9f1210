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
local setmetatable = setmetatable

-- The declarations of include/redirector.h that this binding uses, its constants included (as
-- static consts and the rdr_action enum). Tests/Integration/test_abi_layout.py compiles the header
-- and fails when a size, an offset or a value here disagrees with it.
if not pcall(ffi.typeof, "rdr_decision") then
    ffi.cdef [[
static const int RDR_ABI_VERSION = 2;

typedef struct rdr_table rdr_table;

static const int RDR_OK = 0;
static const int RDR_NO_MATCH = -1;
static const int RDR_ENOSPC = -1;
static const int RDR_EINVAL = -2;
static const int RDR_ERANGE = -3;

uint32_t rdr_abi_version(void);
rdr_table *rdr_open(const char *snapshot_path, char *err, size_t errlen);
void rdr_close(rdr_table *t);
int32_t rdr_lookup(const rdr_table *t, const uint8_t *addr, size_t addrlen);
int32_t rdr_provider_count(const rdr_table *t);
const char *rdr_provider_name(const rdr_table *t, int32_t index);

typedef enum {
    RDR_PASS     = 0,
    RDR_REDIRECT = 1,
    RDR_RESPOND  = 2
} rdr_action;

typedef struct {
    const char *client;  size_t client_len;
    const char *method;  size_t method_len;
    const char *host;    size_t host_len;
    const char *path;    size_t path_len;
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
} rdr_decision;

int rdr_decide(const rdr_table *t, const rdr_request *req, rdr_decision *out,
               char *buf, size_t buflen);
int rdr_format_prefix(const rdr_table *t, const rdr_decision *d, char *buf, size_t buflen);
int32_t rdr_route_header_count(const rdr_table *t, int32_t route);
int rdr_route_header(const rdr_table *t, int32_t route, int32_t index,
                     const char **name, const char **value);
]]
end

if not pcall(function() return ffi.C.inet_pton end) then
    ffi.cdef [[ int inet_pton(int af, const char *src, void *dst); ]]
end

local C = ffi.C
local RDR_OK = C.RDR_OK
local RDR_NO_MATCH = C.RDR_NO_MATCH
local RDR_ENOSPC = C.RDR_ENOSPC
local RDR_REDIRECT = C.RDR_REDIRECT
local AF_INET = 2
local AF_INET6 = 10
local ACTIONS = { [C.RDR_PASS] = "pass", [RDR_REDIRECT] = "redirect", [C.RDR_RESPOND] = "respond" }
local REDIRECT_STATUS = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }

local _M = { _VERSION = "0.1.0", ABI_VERSION = C.RDR_ABI_VERSION }

-- Where ffi.load looks when new() is given no `library` option, in order.
_M.library_search = {
    "/usr/lib/nginx/modules/libredirector.so",
    "/usr/local/lib/libredirector.so",
    "redirector", -- the dynamic linker's search path (LD_LIBRARY_PATH, ld.so.cache)
}

local libs = {} -- path -> loaded library (ffi.load handles), shared by all objects

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
--- all workers copy-on-write. opts.library: path of libredirector.so.
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
        providers = {},      -- index -> name
        route_headers = {},  -- route index -> { {name, value}, ... } or false
    }
    local n = tonumber(lib.rdr_provider_count(t))
    for i = 0, n - 1 do
        local p = lib.rdr_provider_name(t, i)
        self.providers[i] = p ~= nil and ffi_string(p) or ""
    end
    self.provider_count = n
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

--- Decides one request. client: address text (ngx.var.remote_addr); method; host (Host
--- header); path: raw request target with query (ngx.var.request_uri).
--- Returns a table { action = "pass"|"redirect"|"respond", status = number (0 for pass),
--- location = string|nil, provider, region, prefix ("192.0.2.0/24"), route: string|nil,
--- asn = number|nil, headers = { {name, value}, ... }|nil (read-only, shared) },
--- or nil and a message.
function mt:decide(client, method, host, path)
    client, method, host, path = str(client), str(method), str(host), str(path)
    local lib, t, dec = self.lib, self.table, self.dec
    local req = self.req[0]
    req.client, req.client_len = client, #client
    req.method, req.method_len = method, #method
    req.host, req.host_len = host, #host
    req.path, req.path_len = path, #path

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
    }
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
    end
    local route = tonumber(d.route)
    if route >= 0 and action ~= "pass" then
        res.headers = self:_route_headers(route)
    end
    return res
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
--- $http_host and $request_uri, exactly the inputs the NGINX module uses.
--- Returns the decision table, or nil and a message.
function mt:decide_request()
    local var = ngx.var
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
    return self:respond(d)
end

return _M
