-- Moves due jobs from the partition's delayed set to its queue: retries whose backoff has
-- passed, jobs whose provider capacity is due (queued, waiting), and inline runs whose lease
-- expired (their process died). The caller read the due ids
-- (ZRANGEBYSCORE) and passes each task's keys; a job another process moved first, or whose
-- lease was extended since, is left alone.
-- Keys and arguments: `PromoteKeys`, `PromoteArgs`, per job `PromoteItemKeys`,
-- `PromoteItemArgs` (src/tasks/scripts.rs).
-- Returns {moved, ms until the next due job or -1}.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = string.format('%.0f', now_us)
local now_ms = math.floor(now_us / 1000)
local moved = 0
for i = 1, items do
  --@item
  local due = redis.call('ZSCORE', key_delayed, arg_task_id)
  if due and tonumber(due) <= now_ms then
    redis.call('ZREM', key_delayed, arg_task_id)
    local f = redis.call('HMGET', key_task, 'state', 'job')
    if f[1] == 'retrying' or f[1] == 'running' or f[1] == 'queued' then
      if f[1] == 'retrying' then
        redis.call('HSET', key_task, 'state', 'queued')
        redis.call('XADD', key_events, 'MAXLEN', '~', arg_events_maxlen, '*', 'event', 'queued',
          'data', stamp({task_id = arg_task_id, state = 'queued'}, now))
        changed(key_watching, key_events)
      end
      redis.call('XADD', key_queue, '*', 't', arg_task_id, 'j', f[2])
      moved = moved + 1
    end
  end
end
announce(key_announcements)
local next_due = redis.call('ZRANGE', key_delayed, 0, 0, 'WITHSCORES')
if next_due[2] then
  return {moved, math.max(0, tonumber(next_due[2]) - now_ms)}
end
return {moved, -1}
