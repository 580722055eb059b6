-- Re-queues a dead task with its attempts reset. A batch item counts as unfinished again and,
-- while its batch still holds items back (the concurrency cap), waits first in line for a slot.
-- KEYS: 1 task hash, 2 events stream, 3 dead zset, 4 queue stream
-- ARGV: 1 task id, 2 events maxlen, 3 ttl secs
local f = redis.call('HMGET', KEYS[1], 'state', 'job', 'batch')
if f[1] ~= 'dead' or not f[2] then
  return 0
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = string.format('%.0f', now_us)
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempts', 0)
redis.call('HDEL', KEYS[1], 'finished_us', 'outcome', 'next_run_us')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', 'queued',
  'data', stamp({task_id = ARGV[1], state = 'queued', replayed = true}, now))
changed(KEYS[2])
announce()
redis.call('ZREM', KEYS[3], ARGV[1])
local held = false
if f[3] then
  local batch = 'ai:batch:{' .. f[3] .. '}'
  redis.call('HINCRBY', batch, 'failed', -1)
  redis.call('HINCRBY', batch, 'done', -1)
  redis.call('HDEL', batch, 'ended_us')
  if redis.call('LLEN', batch .. ':held') > 0 then
    redis.call('LPUSH', batch .. ':held', ARGV[1])
    redis.call('HSET', KEYS[1], 'held', '1')
    held = true
  end
end
if not held then
  redis.call('XADD', KEYS[4], '*', 't', ARGV[1], 'j', f[2])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
return 1
