-- Marks a batch of fetched jobs running. A job whose task already reached a final state (or
-- expired) is acknowledged and skipped; one that has used up its attempts (its worker kept
-- dying) is marked dead. Each start counts one attempt.
-- KEYS: 1 queue stream, 2 dead zset, then per job: task hash, events stream
-- ARGV: 1 group, 2 events maxlen, 3 worker name, then per job: entry id, task id
-- Returns per job: attempt number (> 0), 0 = skipped, -1 = dead.
local final = {succeeded = true, failed = true, cancelled = true, dead = true}
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = string.format('%.0f', now_us)
local out = {}
local n = (#KEYS - 2) / 2
for i = 1, n do
  local task, events = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local entry, id = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local state = redis.call('HGET', task, 'state')
  if not state or final[state] then
    redis.call('XACK', KEYS[1], ARGV[1], entry)
    redis.call('XDEL', KEYS[1], entry)
    out[i] = 0
  else
    local attempt = redis.call('HINCRBY', task, 'attempts', 1)
    local max = tonumber(redis.call('HGET', task, 'max_attempts'))
    if attempt > max then
      local err = {kind = 'attempts_exhausted', message = 'the job was started ' .. max ..
        ' times without finishing (its worker stopped each time)'}
      redis.call('HSET', task, 'state', 'dead', 'finished_us', now, 'attempts', max,
        'outcome', cjson.encode({error = err}))
      redis.call('XADD', events, 'MAXLEN', '~', ARGV[2], '*', 'event', 'dead',
        'data', stamp({task_id = id, state = 'dead', attempt = max, error = err}, now))
      changed(events)
      redis.call('ZADD', KEYS[2], now_us, id)
      -- Dead tasks are listed for a week (their records expire with the kind's result TTL).
      redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_us - 604800000000)
      redis.call('XACK', KEYS[1], ARGV[1], entry)
      redis.call('XDEL', KEYS[1], entry)
      out[i] = -1
    else
      redis.call('HSET', task, 'state', 'running', 'started_us', now, 'worker', ARGV[3])
      redis.call('XADD', events, 'MAXLEN', '~', ARGV[2], '*', 'event', 'started',
        'data', stamp({task_id = id, state = 'running', attempt = attempt}, now))
      changed(events)
      out[i] = attempt
    end
  end
end
announce()
return out
