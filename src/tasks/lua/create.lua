-- Creates a task record and its first events, then either queues the job (mode "queue") or
-- takes an inline lease on it (mode "inline": state running, a due date in the delayed set that
-- the runner keeps pushing forward; if the runner dies the job is queued when the lease expires).
-- Keys and arguments are named in src/tasks/scripts.rs (`CreateKeys`, `CreateArgs`): the
-- task's hash and events, the queue stream (queue) or the queue's delayed set (inline), and
-- the partition's watching set and announcements; on one server also the user's index and feed
-- (on a cluster they are in the user's slot: `user_task.lua` adds the task there first, and
-- these two keys are not given; `arg_user_feed` is announced either way).
-- Mode "hold" (batch items over the batch's concurrency cap) records the task as queued but
-- leaves it out of the queue: `batch_step` (prelude) queues it when a slot frees.
if redis.call('EXISTS', key_task) == 1 then
  return 0
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = string.format('%.0f', now_us)
local ttl = tonumber(arg_ttl_secs)
local inline = arg_mode == 'inline'
redis.call('HSET', key_task, 'id', arg_task_id, 'state', inline and 'running' or 'queued', 'kind', arg_kind,
  'job', arg_job, 'created_us', now, 'attempts', inline and 1 or 0, 'max_attempts', arg_max_attempts,
  'user_id', arg_user_id, 'feature', arg_feature, 'request_id', arg_request_id, 'role', arg_role)
if inline then
  redis.call('HSET', key_task, 'started_us', now)
end
if arg_quota ~= '' then
  redis.call('HSET', key_task, 'quota', arg_quota)
end
if arg_batch ~= '' then
  redis.call('HSET', key_task, 'batch', arg_batch)
end
if arg_mode == 'hold' then
  redis.call('HSET', key_task, 'held', '1')
end
if arg_callback_url ~= '' then
  redis.call('HSET', key_task, 'callback_url', arg_callback_url, 'webhook', 'pending')
end
redis.call('EXPIRE', key_task, ttl)
redis.call('XADD', key_events, 'MAXLEN', '~', arg_events_maxlen, '*', 'event', 'queued',
  'data', stamp({task_id = arg_task_id, state = 'queued'}, now))
if inline then
  redis.call('XADD', key_events, 'MAXLEN', '~', arg_events_maxlen, '*', 'event', 'started',
    'data', stamp({task_id = arg_task_id, state = 'running', attempt = 1}, now))
  redis.call('ZADD', key_queue, math.floor(now_us / 1000) + tonumber(arg_lease_ms), arg_task_id)
elseif arg_mode == 'queue' then
  redis.call('XADD', key_queue, '*', 't', arg_task_id, 'j', arg_job)
end
redis.call('EXPIRE', key_events, ttl)
if key_user_tasks then
  add_to_user(key_user_tasks, key_user_feed, arg_task_id, now_us, ttl)
end
changed(key_watching, key_events)
changed(key_watching, arg_user_feed)
announce(key_announcements)
return now
