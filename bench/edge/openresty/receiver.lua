-- OpenResty baseline receiver for bench/edge/baseline.sh: the work hookq's `hookq github` does,
-- written the way an OpenResty user would: verify X-Hub-Signature-256 (HMAC-SHA256 of the body
-- through LuaJIT FFI into libcrypto, compared without early exit), dedup on X-GitHub-Delivery and
-- queue the raw body with a few headers in one Redis script call (SET NX EX, then LPUSH), answer
-- 202, or 200 for a duplicate, 401 for a bad signature, 503 when Redis fails.
-- Differences from hookq kept on purpose small: no queue-depth limit (the bench runs hookq with
-- hookq_max_queue_depth 0), no TYPE check, a text header block instead of hookq's binary envelope,
-- and one Redis call per request (hookq groups a turn's webhooks into one call).
local ffi = require("ffi")
local bit = require("bit")
local resp = require("resp")

ffi.cdef([[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md, unsigned int *md_len);
]])
local ok, crypto = pcall(ffi.load, "crypto")
if not ok then
    crypto = ffi.load("libcrypto.so.3")
end

local byte, concat = string.byte, table.concat
local bor, bxor = bit.bor, bit.bxor
local md = ffi.new("unsigned char[32]")
local md_len = ffi.new("unsigned int[1]")
local HEX = {}
for i = 0, 255 do
    HEX[i] = { byte(string.format("%02x", i), 1, 2) }
end

-- KEYS[1] queue, KEYS[2] dedup key; ARGV[1] ttl seconds, ARGV[2] payload.
local SCRIPT = "if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then "
    .. "return redis.call('LPUSH', KEYS[1], ARGV[2]) end return -1"
local SHA = ngx.encode_base16 and ngx.encode_base16(ngx.sha1_bin(SCRIPT))
    or (ngx.sha1_bin(SCRIPT):gsub(".", function(c)
        return string.format("%02x", byte(c))
    end))

local M = {}
local cfg

-- opts: secret (string), redis_host, redis_port, or redis_unix (a unix socket path, which wins),
-- queue (name), ttl (seconds)
function M.init(opts)
    cfg = opts
    if opts.redis_unix then
        cfg.redis_host, cfg.redis_port = "unix:" .. opts.redis_unix, nil
    end
    cfg.queue_key = "orr:{" .. opts.queue .. "}:queue"
    cfg.dedup_prefix = "orr:{" .. opts.queue .. "}:dedup:"
    cfg.ttl = tostring(opts.ttl or 86400)
end

-- "sha256=" + 64 lowercase hex digits of HMAC-SHA256(secret, body); no early exit on a mismatch.
local function signature_ok(sig, body)
    if not sig or #sig ~= 71 or sig:sub(1, 7) ~= "sha256=" then
        return false
    end
    local secret = cfg.secret
    crypto.HMAC(crypto.EVP_sha256(), secret, #secret, body, #body, md, md_len)
    local diff = 0
    for i = 0, 31 do
        local h = HEX[md[i]]
        local a, b = byte(sig, 8 + 2 * i, 9 + 2 * i)
        diff = bor(diff, bxor(a, h[1]), bxor(b, h[2]))
    end
    return diff == 0
end

function M.handle()
    local var = ngx.var
    local id = var.http_x_github_delivery
    if not id or id == "" then
        ngx.status = 400
        return ngx.say("missing X-GitHub-Delivery")
    end
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body then
        ngx.status = 413 -- in a temp file: larger than client_body_buffer_size
        return ngx.say("body too large")
    end
    if not signature_ok(var.http_x_hub_signature_256, body) then
        ngx.status = 401
        return ngx.say("bad signature")
    end
    local payload = concat({ "X-GitHub-Event: ", var.http_x_github_event or "",
        "\r\nX-GitHub-Delivery: ", id, "\r\nContent-Type: ", var.content_type or "",
        "\r\n\r\n", body })

    local sock, err = resp.connect(cfg.redis_host, cfg.redis_port, 1000)
    local res
    if sock then
        local args = { "EVALSHA", SHA, "2", cfg.queue_key, cfg.dedup_prefix .. id, cfg.ttl, payload }
        res, err = resp.call(sock, args)
        if res == false and err:sub(1, 8) == "NOSCRIPT" then
            args[1], args[2] = "EVAL", SCRIPT
            res, err = resp.call(sock, args)
        end
        if res == nil then
            sock:close()
        else
            resp.release(sock)
        end
    end
    if type(res) ~= "number" then
        ngx.log(ngx.ERR, "redis: ", tostring(err))
        return ngx.exit(503)
    end
    ngx.status = res < 0 and 200 or 202
    return ngx.exit(ngx.status)
end

return M
