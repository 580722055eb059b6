-- Re-queues a dead task with its attempts reset. A batch item counts as unfinished again and,
-- while its batch still holds items back (the concurrency cap), waits first in line for a slot.
-- Keys and arguments: `ReplayKeys`, `ReplayArgs` (src/tasks/scripts.rs).
local f = redis.call('HMGET', key_task, 'state', 'job', 'batch')
if f[1] ~= 'dead' or not f[2] then
  return 0
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = string.format('%.0f', now_us)
redis.call('HSET', key_task, 'state', 'queued', 'attempts', 0)
redis.call('HDEL', key_task, 'finished_us', 'outcome', 'next_run_us')
redis.call('XADD', key_events, 'MAXLEN', '~', arg_events_maxlen, '*', 'event', 'queued',
  'data', stamp({task_id = arg_task_id, state = 'queued', replayed = true}, now))
changed(key_watching, key_events)
announce(key_announcements)
redis.call('ZREM', key_dead, arg_task_id)
local held = false
if f[3] then
  -- The batch is in the task's partition (see batch_step in prelude.lua).
  local batch = derived(partition_of(key_task) .. 'batch:' .. f[3])
  local held_list = derived(batch .. ':held')
  redis.call('HINCRBY', batch, 'failed', -1)
  redis.call('HINCRBY', batch, 'done', -1)
  redis.call('HDEL', batch, 'ended_us')
  if redis.call('LLEN', held_list) > 0 then
    redis.call('LPUSH', held_list, arg_task_id)
    redis.call('HSET', key_task, 'held', '1')
    held = true
  end
end
if not held then
  redis.call('XADD', key_queue, '*', 't', arg_task_id, 'j', f[2])
end
redis.call('EXPIRE', key_task, tonumber(arg_ttl_secs))
redis.call('EXPIRE', key_events, tonumber(arg_ttl_secs))
return 1
