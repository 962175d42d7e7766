-- wrk script: signed GitHub webhooks, each with its own X-GitHub-Delivery (the dedup key), so every
-- request is a new webhook. The signature covers only the body, so one precomputed signature fits
-- every request; nginx still verifies it (HMAC) on each one.
local body = os.getenv("HOOKQ_BODY")
local sig = os.getenv("HOOKQ_SIG")
local pace = tonumber(os.getenv("HOOKQ_PACE_MS") or "0")
local counter = 0
local prefix = os.getenv("HOOKQ_RUN") or tostring(os.time())

function setup(thread)
  thread:set("tid", tostring(math.random(1, 1e9)))
end

request = function()
  counter = counter + 1
  return wrk.format("POST", "/hooks/github", {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-Hub-Signature-256"] = sig,
    ["X-GitHub-Delivery"] = prefix .. "-" .. (tid or "0") .. "-" .. counter,
  }, body)
end

if pace > 0 then
  delay = function() return pace end
end
