-- Admits one request of one user, or says which limit refuses it: the abuse block, the
-- cooldown after a breach, the sliding window (60 s by default), the daily and monthly caps on requests and
-- tokens, and the feature's token bucket. All checks first, then all updates: a refused request
-- changes nothing (a window breach records a violation and starts the cooldown). One atomic step,
-- so any number of web processes together never let a user past a limit.
-- KEYS (all one user's, one hash tag): 1 blocked, 2 window zset, 3 cooldown, 4 daily hash,
--   5 monthly hash, 6 bucket hash (this feature), 7 overrides hash, 8 violations list,
--   then 9 the blocked index (global zset)
-- ARGV: 1 user id, 2 request member (unique), 3 estimated tokens, 4 daily reset_at ms,
--   5 monthly reset_at ms, 6 violation threshold, 7 violation window ms, 8 block ms, 9 window ms,
--   then the role's limits by name: 10 per_minute, 11 cooldown_secs, 12 daily_requests,
--   13 daily_tokens, 14 monthly_requests, 15 monthly_tokens, 16 bucket_tokens, 17 bucket_refill_per_sec,
--   18 requests (1, or a batch's item count: one entry in the window, that many against the
--   daily and monthly caps, and no token bucket: a batch is paced by its concurrency cap)
-- Returns {verdict, retry_after_ms, per_minute, window_used, window_reset_ms,
--   daily_requests, daily_requests_used, daily_tokens, daily_tokens_used, daily_reset_at,
--   monthly_requests, monthly_requests_used, monthly_tokens, monthly_tokens_used, monthly_reset_at,
--   blocked_until}; verdict 'ok' or the refusing limit's name.
local now = now_ms()
local names = {'per_minute', 'cooldown_secs', 'daily_requests', 'daily_tokens', 'monthly_requests',
  'monthly_tokens', 'bucket_tokens', 'bucket_refill_per_sec'}
local lim = {}
for i, name in ipairs(names) do
  lim[name] = tonumber(ARGV[9 + i])
end
local overrides = redis.call('HGETALL', KEYS[7])
for i = 1, #overrides, 2 do
  if lim[overrides[i]] ~= nil then
    lim[overrides[i]] = tonumber(overrides[i + 1])
  end
end
local estimate = tonumber(ARGV[3])
local count = tonumber(ARGV[18]) or 1
local window = tonumber(ARGV[9])

-- A period's counters and reset time. Once the stored period has ended the counters start
-- again at 0 until `reset_at`, the next reset as the calling process computed it.
local function period(key, reset_at)
  local f = redis.call('HMGET', key, 'requests', 'tokens', 'reset_at')
  local stored = tonumber(f[3])
  if stored == nil or stored <= now then
    return 0, 0, reset_at, true
  end
  return tonumber(f[1]) or 0, tonumber(f[2]) or 0, stored, false
end
local d_req, d_tok, d_reset, d_new = period(KEYS[4], tonumber(ARGV[4]))
local m_req, m_tok, m_reset, m_new = period(KEYS[5], tonumber(ARGV[5]))

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[2])
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local window_reset = window
if oldest[2] then
  window_reset = tonumber(oldest[2]) + window - now
end

local function answer(verdict, retry, blocked_until)
  return {verdict, math.ceil(retry), lim.per_minute, used, math.ceil(window_reset),
    lim.daily_requests, d_req, lim.daily_tokens, d_tok, d_reset,
    lim.monthly_requests, m_req, lim.monthly_tokens, m_tok, m_reset, blocked_until or 0}
end

local blocked = redis.call('PTTL', KEYS[1])
if blocked > 0 then
  return answer('blocked', blocked, now + blocked)
end
local cooldown = redis.call('PTTL', KEYS[3])
if cooldown > 0 then
  return answer('user-rate', cooldown)
end
if used >= lim.per_minute then
  local cool = lim.cooldown_secs * 1000
  if cool > 0 then
    redis.call('SET', KEYS[3], '1', 'PX', cool)
  end
  local until_ms = violation(KEYS[8], KEYS[1], KEYS[9], ARGV[1], 'rate_limit', now,
    tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]))
  if until_ms > 0 then
    return answer('blocked', until_ms - now, until_ms)
  end
  return answer('user-rate', math.max(cool, window_reset))
end
if d_req + count > lim.daily_requests then
  return answer('daily-requests', d_reset - now)
end
if m_req + count > lim.monthly_requests then
  return answer('monthly-requests', m_reset - now)
end
if d_tok + estimate > lim.daily_tokens then
  return answer('daily-tokens', d_reset - now)
end
if m_tok + estimate > lim.monthly_tokens then
  return answer('monthly-tokens', m_reset - now)
end
local b = redis.call('HMGET', KEYS[6], 'tokens', 'at')
local capacity, rate = lim.bucket_tokens, lim.bucket_refill_per_sec
local tokens = tonumber(b[1]) or capacity
local at = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + (now - at) * rate / 1000)
-- A request larger than the whole bucket passes when the bucket is full (and empties it).
local need = math.min(estimate, capacity)
if count > 1 then
  need = 0
end
if tokens < need then
  local wait = 60000
  if rate > 0 then
    wait = (need - tokens) * 1000 / rate
  end
  return answer('feature-tokens', wait)
end

-- Admitted: count it everywhere.
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('PEXPIRE', KEYS[2], window)
used = used + 1
d_req, d_tok, m_req, m_tok = d_req + count, d_tok + estimate, m_req + count, m_tok + estimate
-- A period's hash lives a day past its reset (settling finds it), set once per period.
redis.call('HSET', KEYS[4], 'requests', d_req, 'tokens', d_tok, 'reset_at', d_reset)
if d_new then
  redis.call('PEXPIREAT', KEYS[4], d_reset + 86400000)
end
redis.call('HSET', KEYS[5], 'requests', m_req, 'tokens', m_tok, 'reset_at', m_reset)
if m_new then
  redis.call('PEXPIREAT', KEYS[5], m_reset + 86400000)
end
redis.call('HSET', KEYS[6], 'tokens', tokens - need, 'at', now, 'capacity', capacity)
if not b[1] then
  -- A new bucket; an idle one expires after a day and comes back full.
  redis.call('PEXPIRE', KEYS[6], 86400000)
end
return answer('ok', 0)
