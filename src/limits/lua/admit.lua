-- Admits one request of one user, or says which limit refuses it: the abuse block, the
-- cooldown after a breach, the sliding window (60 s by default), the daily and monthly caps on requests and
-- tokens, and the feature's token bucket. All checks first, then all updates: a refused request
-- changes nothing (a window breach records a violation and starts the cooldown). One atomic step,
-- so any number of web processes together never let a user past a limit.
-- Its keys, arguments and reply are named in src/limits/admit.rs, whose prelude gives this
-- script a local `key_<name>` per key (all one user's, one hash tag: the script runs on a Redis
-- Cluster), `arg_<name>` per argument, `lim.<name>` per figure of the role's limits (by override
-- key) and `reply{...}`. `verdict` is 'ok' or the refusing limit's name (src/limits/limit.rs).
local now = now_ms()
local overrides = redis.call('HGETALL', key_overrides)
for i = 1, #overrides, 2 do
  if lim[overrides[i]] ~= nil then
    lim[overrides[i]] = tonumber(overrides[i + 1])
  end
end
local estimate = tonumber(arg_estimate)
local count = tonumber(arg_requests) or 1
local window = tonumber(arg_window_ms)

-- A period's counters and reset time. Once the stored period has ended the counters start
-- again at 0 until `reset_at`, the next reset as the calling process computed it.
local function period(hash, reset_at)
  local f = redis.call('HMGET', hash, 'requests', 'tokens', 'reset_at')
  local stored = tonumber(f[3])
  if stored == nil or stored <= now then
    return 0, 0, reset_at, true
  end
  return tonumber(f[1]) or 0, tonumber(f[2]) or 0, stored, false
end
local d_req, d_tok, d_reset, d_new = period(key_daily, tonumber(arg_daily_reset_at))
local m_req, m_tok, m_reset, m_new = period(key_monthly, tonumber(arg_monthly_reset_at))

redis.call('ZREMRANGEBYSCORE', key_window, '-inf', now - window)
local used = redis.call('ZCARD', key_window)
local oldest = redis.call('ZRANGE', key_window, 0, 0, 'WITHSCORES')
local window_reset = window
if oldest[2] then
  window_reset = tonumber(oldest[2]) + window - now
end

local function answer(verdict, retry, blocked_until)
  return reply{verdict = verdict, retry_ms = math.ceil(retry),
    per_minute = lim.per_minute, window_used = used, window_reset_ms = math.ceil(window_reset),
    daily_requests = lim.daily_requests, daily_requests_used = d_req,
    daily_tokens = lim.daily_tokens, daily_tokens_used = d_tok, daily_reset_at = d_reset,
    monthly_requests = lim.monthly_requests, monthly_requests_used = m_req,
    monthly_tokens = lim.monthly_tokens, monthly_tokens_used = m_tok, monthly_reset_at = m_reset,
    blocked_until = blocked_until or 0}
end

local blocked = redis.call('PTTL', key_blocked)
if blocked > 0 then
  return answer('blocked', blocked, now + blocked)
end
local cooldown = redis.call('PTTL', key_cooldown)
if cooldown > 0 then
  return answer('user-rate', cooldown)
end
if used >= lim.per_minute then
  local cool = lim.cooldown_secs * 1000
  if cool > 0 then
    redis.call('SET', key_cooldown, '1', 'PX', cool)
  end
  local until_ms = violation(key_violations, key_blocked, 'rate_limit', now,
    tonumber(arg_violations), tonumber(arg_violation_window_ms), tonumber(arg_block_ms))
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
local b = redis.call('HMGET', key_bucket, 'tokens', 'at')
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
redis.call('ZADD', key_window, now, arg_member)
redis.call('PEXPIRE', key_window, window)
used = used + 1
d_req, d_tok, m_req, m_tok = d_req + count, d_tok + estimate, m_req + count, m_tok + estimate
-- A period's hash lives a day past its reset (settling finds it), set once per period.
redis.call('HSET', key_daily, 'requests', d_req, 'tokens', d_tok, 'reset_at', d_reset)
if d_new then
  redis.call('PEXPIREAT', key_daily, d_reset + 86400000)
end
redis.call('HSET', key_monthly, 'requests', m_req, 'tokens', m_tok, 'reset_at', m_reset)
if m_new then
  redis.call('PEXPIREAT', key_monthly, m_reset + 86400000)
end
redis.call('HSET', key_bucket, 'tokens', tokens - need, 'at', now, 'capacity', capacity)
if not b[1] then
  -- A new bucket; an idle one expires after a day and comes back full.
  redis.call('PEXPIRE', key_bucket, 86400000)
end
return answer('ok', 0)
