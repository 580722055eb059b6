-- Gives back the part of a reservation a request did not use, in the user's slot: to the daily
-- and monthly counts (only in the periods it was reserved in) and to the feature's token bucket.
-- Run when a task ends (limits/settle.rs, a follow-up of the partition script that recorded the
-- end: tasks/outbox.rs) and when an admitted request is refused before any task exists. A task's
-- settlement counts once however often it is applied: the user's `settled` set remembers the
-- tasks it settled for a day (an outbox entry is applied again within seconds of a crash, by any
-- process's sweeper; the set holds at most a day of the user's tasks).
-- KEYS: 1 daily quota, 2 monthly quota, 3 the feature's token bucket, 4 the user's settled set
-- ARGV: 1 tokens to give back, 2 daily reset_at, 3 monthly reset_at, 4 task id ('' for a
-- request that never became a task)
-- Returns 1 when it settled, 0 when the task was settled before.
if ARGV[4] ~= '' then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if redis.call('ZADD', KEYS[4], 'NX', now_ms, ARGV[4]) == 0 then
    return 0
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now_ms - 86400000)
  redis.call('PEXPIRE', KEYS[4], 86400000)
end
local back = tonumber(ARGV[1])
if back <= 0 then
  return 1
end
if redis.call('HGET', KEYS[1], 'reset_at') == ARGV[2] then
  redis.call('HINCRBY', KEYS[1], 'tokens', -back)
end
if redis.call('HGET', KEYS[2], 'reset_at') == ARGV[3] then
  redis.call('HINCRBY', KEYS[2], 'tokens', -back)
end
local b = redis.call('HMGET', KEYS[3], 'tokens', 'capacity')
if b[1] then
  redis.call('HSET', KEYS[3], 'tokens', math.min(tonumber(b[2]) or 0, tonumber(b[1]) + back))
end
return 1
