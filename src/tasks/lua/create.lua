-- Creates a task record and its first events, then either queues the job (mode "queue") or
-- takes an inline lease on it (mode "inline": state running, a due date in the delayed set that
-- the runner keeps pushing forward; if the runner dies the job is queued when the lease expires).
-- KEYS: 1 task hash, 2 events stream, 3 user index, 4 queue stream (queue) | delayed zset (inline),
--       5 the user's feed (a stream of new task ids, for "subscribe to all my tasks")
-- ARGV: 1 task id, 2 job json, 3 ttl secs, 4 max attempts, 5 kind, 6 user id, 7 feature,
--       8 request id, 9 role, 10 events maxlen, 11 mode, 12 lease ms (inline), 13 callback url ('' = none),
--       14 quota reservation ('' = none; settled when the task ends), 15 batch id ('' = none)
-- Mode "hold" (batch items over the batch's concurrency cap) records the task as queued but
-- leaves it out of the queue: `batch_step` (prelude) queues it when a slot frees.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = string.format('%.0f', now_us)
local ttl = tonumber(ARGV[3])
local inline = ARGV[11] == 'inline'
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'state', inline and 'running' or 'queued', 'kind', ARGV[5],
  'job', ARGV[2], 'created_us', now, 'attempts', inline and 1 or 0, 'max_attempts', ARGV[4],
  'user_id', ARGV[6], 'feature', ARGV[7], 'request_id', ARGV[8], 'role', ARGV[9])
if inline then
  redis.call('HSET', KEYS[1], 'started_us', now)
end
if ARGV[14] ~= '' then
  redis.call('HSET', KEYS[1], 'quota', ARGV[14])
end
if ARGV[15] ~= '' then
  redis.call('HSET', KEYS[1], 'batch', ARGV[15])
end
if ARGV[11] == 'hold' then
  redis.call('HSET', KEYS[1], 'held', '1')
end
if ARGV[13] ~= '' then
  redis.call('HSET', KEYS[1], 'callback_url', ARGV[13], 'webhook', 'pending')
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[10], '*', 'event', 'queued',
  'data', stamp({task_id = ARGV[1], state = 'queued'}, now))
if inline then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[10], '*', 'event', 'started',
    'data', stamp({task_id = ARGV[1], state = 'running', attempt = 1}, now))
  redis.call('ZADD', KEYS[4], math.floor(now_us / 1000) + tonumber(ARGV[12]), ARGV[1])
elseif ARGV[11] == 'queue' then
  redis.call('XADD', KEYS[4], '*', 't', ARGV[1], 'j', ARGV[2])
end
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[3], now_us, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now_us - ttl * 1000000)
redis.call('EXPIRE', KEYS[3], ttl)
redis.call('XADD', KEYS[5], 'MAXLEN', '~', 1000, '*', 't', ARGV[1])
changed(KEYS[2])
changed(KEYS[5])
announce()
redis.call('EXPIRE', KEYS[5], ttl)
return now
