-- Moves due jobs from the delayed set to the queue, at most ARGV[1] per call: retries whose
-- backoff has passed, and inline runs whose lease expired (their process died).
-- KEYS: 1 delayed zset, 2 queue stream
-- ARGV: 1 limit, 2 events maxlen
-- Returns {moved, ms until the next due job or -1}
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = string.format('%.0f', now_us)
local now_ms = math.floor(now_us / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[1]))
local moved = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local task = 'ai:task:{' .. id .. '}'
  local f = redis.call('HMGET', task, 'state', 'job')
  if f[1] == 'retrying' or f[1] == 'running' then
    if f[1] == 'retrying' then
      redis.call('HSET', task, 'state', 'queued')
      redis.call('XADD', task .. ':events', 'MAXLEN', '~', ARGV[2], '*', 'event', 'queued',
        'data', stamp({task_id = id, state = 'queued'}, now))
      changed(task .. ':events')
    end
    redis.call('XADD', KEYS[2], '*', 't', id, 'j', f[2])
    moved = moved + 1
  end
end
announce()
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if next_due[2] then
  return {moved, math.max(0, tonumber(next_due[2]) - now_ms)}
end
return {moved, -1}
