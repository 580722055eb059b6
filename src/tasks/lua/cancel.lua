-- Cancels a task that is not final yet: queued and retrying tasks never start, a running one is
-- marked cancelled at once (its late result is ignored) and its worker is told to stop.
-- KEYS: 1 task hash, 2 events stream, 3 delayed zset
-- ARGV: 1 task id, 2 owner user id ('' = any), 3 events maxlen, 4 cancel channel
-- Returns the state before: 'missing', a final state (unchanged), or the cancelled state's predecessor.
local final = {succeeded = true, failed = true, cancelled = true, dead = true}
local f = redis.call('HMGET', KEYS[1], 'state', 'user_id', 'feature', 'quota', 'batch', 'held')
local state = f[1]
if not state or (ARGV[2] ~= '' and f[2] ~= ARGV[2]) then
  return 'missing'
end
if final[state] then
  return state
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = string.format('%.0f', now_us)
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_us', string.format('%.0f', now_us))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', 'cancelled',
  'data', stamp({task_id = ARGV[1], state = 'cancelled'}, now))
changed(KEYS[2])
announce()
settle(KEYS[1], f[2], f[3], f[4], 0)
batch_step(f[5], f[6], state, 'cancelled', now)
redis.call('ZREM', KEYS[3], ARGV[1])
if state == 'running' then
  redis.call('PUBLISH', ARGV[4], ARGV[1])
end
return state
