-- Cancels a task that is not final yet: queued and retrying tasks never start, a running one is
-- marked cancelled at once (its late result is ignored) and its worker is told to stop.
-- Keys and arguments: `CancelKeys`, `CancelArgs` (src/tasks/scripts.rs).
-- Returns {the state before: 'missing', a final state (unchanged), or the cancelled state's
-- predecessor; follow-ups}.
local final = {succeeded = true, failed = true, cancelled = true, dead = true}
local f = redis.call('HMGET', key_task, 'state', 'user_id', 'feature', 'quota', 'batch', 'held',
  'callback_url')
local state = f[1]
if not state or (arg_owner ~= '' and f[2] ~= arg_owner) then
  return {'missing', followups}
end
if final[state] then
  return {state, followups}
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = string.format('%.0f', now_us)
redis.call('HSET', key_task, 'state', 'cancelled', 'finished_us', now)
redis.call('XADD', key_events, 'MAXLEN', '~', arg_events_maxlen, '*', 'event', 'cancelled',
  'data', stamp({task_id = arg_task_id, state = 'cancelled'}, now))
changed(key_watching, key_events)
announce(key_announcements)
settle(key_outbox, key_task, arg_task_id, f[2], f[3], f[4], 0)
webhook(key_outbox, arg_task_id, f[7], 'cancelled')
batch_step(partition_of(key_task), f[5], f[6], state, 'cancelled', now)
redis.call('ZREM', key_delayed, arg_task_id)
if state == 'running' then
  redis.call('PUBLISH', arg_cancel_channel, arg_task_id)
end
return {state, followups}
