-- wrk script for the edge benchmark: POSTs a GitHub-signed body with a unique X-GitHub-Delivery on
-- every request, so each one is a new delivery (LPUSH), never a duplicate.
--
-- Environment (set by run.sh):
--   HOOKQ_BENCH_BODY   path of the body file
--   HOOKQ_BENCH_SIG    the X-Hub-Signature-256 value ("sha256=<hex>")
--   HOOKQ_BENCH_NONCE  a string unique to this wrk invocation (keeps ids unique across runs)
-- The path comes from the URL given to wrk, so the same script drives /plain and /hooks/github.

local counter = 1

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
end

function init(args)
   local f = assert(io.open(os.getenv("HOOKQ_BENCH_BODY"), "rb"))
   body = f:read("*a")
   f:close()
   sig = assert(os.getenv("HOOKQ_BENCH_SIG"), "HOOKQ_BENCH_SIG not set")
   prefix = "wrk-" .. (os.getenv("HOOKQ_BENCH_NONCE") or tostring(os.time())) .. "-" .. tostring(tid) .. "-"
   n = 0
   headers = {
      ["Content-Type"] = "application/json",
      ["X-GitHub-Event"] = "push",
      ["X-Hub-Signature-256"] = sig,
   }
end

function request()
   n = n + 1
   headers["X-GitHub-Delivery"] = prefix .. n
   return wrk.format("POST", nil, headers, body)
end
