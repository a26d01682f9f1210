-- Build-time check (debian/rules, dh_auto_test): resty.redirector loads the freshly built
-- libredirector.so under LuaJIT and redirects one client of the default policy; rules compares
-- the printed Location with `redirector decide` for the same request.
--   luajit debian/check-binding.lua LUA_DIR SNAPSHOT LIBRARY
local lua_dir, snapshot, library = arg[1], arg[2], arg[3]
package.path = lua_dir .. "/?.lua;" .. package.path
local redirector = require "resty.redirector"
local rdr = assert(redirector.new(snapshot, { library = library }))
local d = assert(rdr:decide("3.5.140.7", "GET", "", "/v2/pause/manifests/3.9"))
if d.action ~= "redirect" or not d.location or d.location == "" then
    io.stderr:write("expected a redirect, got ", tostring(d.action), "\n")
    os.exit(1)
end
io.write(d.location, "\n")
