-- A minimal Redis (RESP2) client over ngx.socket.tcp cosockets, for the OpenResty baseline
-- receiver. Benchmark code, not product code: one command per round trip, connections reused
-- through the cosocket keepalive pool (one per concurrent request; nothing is pipelined across
-- requests, which is what a lua-resty-redis receiver would do too).
local tcp = ngx.socket.tcp
local sub, byte, tonumber = string.sub, string.byte, tonumber

local M = {}

local function read_reply(sock)
    local line, err = sock:receive("*l")
    if not line then
        return nil, err
    end
    local kind = byte(line, 1)
    if kind == 58 then -- ':' integer
        return tonumber(sub(line, 2))
    elseif kind == 43 then -- '+' status
        return sub(line, 2)
    elseif kind == 45 then -- '-' error: false + message, so callers can tell it from I/O errors
        return false, sub(line, 2)
    elseif kind == 36 then -- '$' bulk
        local n = tonumber(sub(line, 2))
        if n < 0 then
            return ngx.null
        end
        local data, rerr = sock:receive(n + 2)
        if not data then
            return nil, rerr
        end
        return sub(data, 1, n)
    elseif kind == 42 then -- '*' array
        local n = tonumber(sub(line, 2))
        if n < 0 then
            return ngx.null
        end
        local out = {}
        for i = 1, n do
            local v, verr = read_reply(sock)
            if v == nil then
                return nil, verr
            end
            out[i] = v
        end
        return out
    end
    return nil, "bad reply: " .. line
end

-- Sends one command (a list of strings) and reads its reply. Returns the reply, or nil/false and a
-- message (nil: the connection failed and must be closed; false: Redis answered an error).
function M.call(sock, args)
    local n = #args
    local out = { "*", n, "\r\n" }
    for i = 1, n do
        local a = args[i]
        out[#out + 1] = "$"
        out[#out + 1] = #a
        out[#out + 1] = "\r\n"
        out[#out + 1] = a
        out[#out + 1] = "\r\n"
    end
    local ok, err = sock:send(out)
    if not ok then
        return nil, err
    end
    return read_reply(sock)
end

-- host "unix:/path" (port nil) connects to a unix socket.
function M.connect(host, port, timeout_ms)
    local sock = tcp()
    sock:settimeouts(timeout_ms, timeout_ms, timeout_ms)
    local ok, err
    if port then
        ok, err = sock:connect(host, port)
    else
        ok, err = sock:connect(host)
    end
    if not ok then
        return nil, err
    end
    return sock
end

-- Back into the worker's pool (idle connections kept for 60 s, up to 128 of them).
function M.release(sock)
    sock:setkeepalive(60000, 128)
end

return M
