-- A prototype measured by outside_lua.py (see there), not what the module sends.
-- ARGV[1] '<' (before the push) or '>' (after it); then groups: n, limit, ttl, n request ids.
-- KEYS per group: queue, its stage, n dedup keys.
local before, k, a, nargv = ARGV[1] == '<', 1, 2, #ARGV
if before then
  local done = {}
  while a <= nargv do
    local q, n = KEYS[k], tonumber(ARGV[a])
    if not done[q] then
      done[q] = true
      local kind = redis.call('TYPE', q)['ok']
      if kind == 'list' then
        redis.call('RENAME', q, KEYS[k + 1])
      elseif kind == 'none' then
        redis.call('LPUSH', KEYS[k + 1], '')
      end
    end
    k, a = k + 2 + n, a + 3 + n
  end
  return 0
end
local total = {}
while a <= nargv do
  local n = tonumber(ARGV[a])
  total[KEYS[k]] = (total[KEYS[k]] or 0) + n
  k, a = k + 2 + n, a + 3 + n
end
local out, lens, seen, dead, stages = {}, {}, {}, {}, {}
k, a = 1, 2
while a <= nargv do
  local q, stage, n, limit, ttl = KEYS[k], KEYS[k + 1], tonumber(ARGV[a]), tonumber(ARGV[a + 1]), ARGV[a + 2]
  local len = lens[q]
  if not len then
    if redis.call('EXISTS', stage) == 1 then
      stages[q] = stage
      len = redis.call('LLEN', stage) - total[q]
      if redis.call('LPOS', stage, '', 'RANK', -1, 'MAXLEN', 1) then
        dead[q] = 1
        len = len - 1
      end
    else
      len = -1
    end
  end
  if len < 0 then
    local kind = redis.call('TYPE', q)['ok']
    for _ = 1, n do out[#out + 1] = {-2, kind} end
  else
    local at = seen[q] or 0
    for i = 1, n do
      at = at + 1
      local refused
      if limit > 0 and len >= limit then
        refused = {-1}
      else
        local dedup = KEYS[k + 1 + i]
        local set = redis.pcall('SET', dedup, ARGV[a + 2 + i], 'NX', 'EX', ttl)
        if type(set) == 'table' and set.err then
          refused = {-3, set.err}
        elseif not set then
          refused = {0, redis.call('GET', dedup)}
        end
      end
      if refused then
        redis.call('LSET', stage, total[q] - at, '')
        dead[q] = (dead[q] or 0) + 1
        out[#out + 1] = refused
      else
        len = len + 1
        out[#out + 1] = {1, len, 0}
      end
    end
    seen[q] = at
  end
  lens[q] = len
  k, a = k + 2 + n, a + 3 + n
end
for q, stage in pairs(stages) do
  if dead[q] then redis.call('LREM', stage, dead[q], '') end
  if lens[q] > 0 then redis.call('RENAME', stage, q) else redis.call('DEL', stage) end
end
return out
