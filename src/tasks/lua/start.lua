-- Marks a batch of jobs running: entries an XREADGROUP of the caller took from the partition's
-- queue. A job whose task already reached a final state (or expired) is acknowledged and
-- skipped; one that has used up its attempts (its worker kept dying) is marked dead. Each start
-- counts one attempt.
-- Keys and arguments are named in src/tasks/scripts.rs (`StartKeys`, `StartArgs`, then per job
-- `StartItemKeys`, `StartItemArgs`): the queue stream, the dead set, the partition's watching
-- set, announcements and outbox; per job its task's hash and events.
-- Returns {per job: entry id, task id, attempt number (> 0), 0 = skipped, -1 = dead; follow-ups}.
local final = {succeeded = true, failed = true, cancelled = true, dead = true}
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = string.format('%.0f', now_us)

local out = {}
local done = {}
for i = 1, items do
  --@item
  local f = redis.call('HMGET', key_task, 'state', 'attempts', 'max_attempts', 'batch', 'held')
  local state = f[1]
  local result
  if not state or final[state] then
    done[#done + 1] = arg_entry
    result = 0
  else
    local attempt = (tonumber(f[2]) or 0) + 1
    local max = tonumber(f[3])
    if attempt > max then
      local err = {kind = 'attempts_exhausted', message = 'the job was started ' .. max ..
        ' times without finishing (its worker stopped each time)'}
      redis.call('HSET', key_task, 'state', 'dead', 'finished_us', now, 'attempts', max,
        'outcome', cjson.encode({error = err}))
      local q = redis.call('HMGET', key_task, 'user_id', 'feature', 'quota', 'callback_url')
      settle(key_outbox, key_task, arg_task_id, q[1], q[2], q[3], 0)
      webhook(key_outbox, arg_task_id, q[4], 'dead')
      batch_step(partition_of(key_task), f[4], f[5], state, 'dead', now)
      redis.call('XADD', key_events, 'MAXLEN', '~', arg_events_maxlen, '*', 'event', 'dead',
        'data', stamp({task_id = arg_task_id, state = 'dead', attempt = max, error = err}, now))
      changed(key_watching, key_events)
      redis.call('ZADD', key_dead, now_us, arg_task_id)
      -- Dead tasks are listed for a week (their records expire with the kind's result TTL).
      redis.call('ZREMRANGEBYSCORE', key_dead, '-inf', now_us - 604800000000)
      done[#done + 1] = arg_entry
      result = -1
    else
      redis.call('HSET', key_task, 'state', 'running', 'attempts', attempt, 'started_us', now,
        'worker', arg_worker)
      batch_step(partition_of(key_task), f[4], f[5], state, 'running', now)
      -- The hot path: the event's JSON by hand (ids are UUIDs, nothing to escape).
      redis.call('XADD', key_events, 'MAXLEN', '~', arg_events_maxlen, '*', 'event', 'started',
        'data', '{"task_id":"' .. arg_task_id .. '","state":"running","attempt":' .. attempt ..
        ',"at_us":' .. now .. '}')
      changed(key_watching, key_events)
      result = attempt
    end
  end
  out[#out + 1] = arg_entry
  out[#out + 1] = arg_task_id
  out[#out + 1] = result
end
-- Entries that will not run leave the queue (one call for all of them).
if #done > 0 then
  redis.call('XACK', key_queue, arg_group, unpack(done))
  redis.call('XDEL', key_queue, unpack(done))
end
announce(key_announcements)
return {out, followups}
