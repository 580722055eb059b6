-- Per-IP limit: a sliding-window counter (this minute's count plus the last minute's, weighted
-- by how much of it is still inside the window; rounded up, so it never admits more than the
-- limit in any 60 s). One small hash per IP, whatever the rate.
-- KEYS: 1 the IP's hash (window, cur, prev)
-- ARGV: 1 limit per minute
-- Returns {admitted 1/0, remaining, ms until a request is admitted again (0 when admitted), ms until the window resets}
local now = now_ms()
local limit = tonumber(ARGV[1])
local window = math.floor(now / 60000)
local f = redis.call('HMGET', KEYS[1], 'window', 'cur', 'prev')
local stored, cur, prev = tonumber(f[1]), tonumber(f[2]) or 0, tonumber(f[3]) or 0
if stored ~= window then
  if stored == window - 1 then
    prev = cur
  else
    prev = 0
  end
  cur = 0
end
local into = now - window * 60000
local weighted = math.ceil(prev * (60000 - into) / 60000)
local reset = 60000 - into
if weighted + cur >= limit then
  -- Admitted again once enough of the last minute has slid out (or the next minute starts).
  local wait = reset
  if prev > 0 and cur < limit then
    local need = weighted + cur - limit + 1
    wait = math.min(reset, math.ceil(need * 60000 / prev))
  end
  redis.call('HSET', KEYS[1], 'window', window, 'cur', cur, 'prev', prev)
  redis.call('PEXPIRE', KEYS[1], 120000)
  return {0, 0, math.max(wait, 1), reset}
end
redis.call('HSET', KEYS[1], 'window', window, 'cur', cur + 1, 'prev', prev)
redis.call('PEXPIRE', KEYS[1], 120000)
return {1, limit - weighted - cur - 1, 0, reset}
