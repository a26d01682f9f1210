-- wrk script for the robustness tests and scripts/soak.sh: sends one request over and over and
-- checks every response against the allowed outcomes; prints one JSON line at the end.
--
--   wrk ... -s check.lua URL -- METHOD PATH CLIENT CONNECTION ALLOWED...
--
-- CLIENT goes into X-Forwarded-For ("-" for none); CONNECTION "close" sends Connection: close
-- (a new connection per request), "keep" uses keep-alive. Each ALLOWED is "STATUS" or "STATUS LOCATION"
-- (e.g. "302 https://registry.aws.test/v2/x"); any other response counts as wrong. The JSON line
-- (prefixed "RESULT ") has requests, wrong, socket errors and a few examples of wrong answers.

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    wrk.method = args[1]
    wrk.path = args[2]
    if args[3] ~= "-" then
        wrk.headers["X-Forwarded-For"] = args[3]
    end
    if args[4] == "close" then
        wrk.headers["Connection"] = "close"
    end
    allowed = {}
    for i = 5, #args do
        allowed[args[i]] = true
    end
    checked = 0
    wrong = 0
    examples = ""
end

function response(status, headers, body)
    checked = checked + 1
    local location = headers["Location"] or headers["location"]
    local key = tostring(status)
    if location then
        key = key .. " " .. location
    end
    if not allowed[key] then
        wrong = wrong + 1
        if #examples < 400 then
            examples = examples .. key .. " | "
        end
    end
end

local function escape(s)
    return (s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end))
end

function done(summary, latency, requests)
    local total_checked, total_wrong, all_examples = 0, 0, ""
    for _, thread in ipairs(threads) do
        total_checked = total_checked + (thread:get("checked") or 0)
        total_wrong = total_wrong + (thread:get("wrong") or 0)
        all_examples = all_examples .. (thread:get("examples") or "")
    end
    local e = summary.errors
    io.write(string.format(
        'RESULT {"requests": %d, "checked": %d, "wrong": %d, "connect_errors": %d, "read_errors": %d, ' ..
        '"write_errors": %d, "timeouts": %d, "non_2xx_3xx": %d, "duration_s": %.3f, ' ..
        '"latency_p99_ms": %.3f, "examples": "%s"}\n',
        summary.requests, total_checked, total_wrong, e.connect, e.read, e.write, e.timeout, e.status,
        summary.duration / 1e6, latency:percentile(99) / 1000, escape(all_examples)))
end
