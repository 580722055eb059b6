-- Marks a batch of jobs running. A job whose task already reached a final state (or expired)
-- is acknowledged and skipped; one that has used up its attempts (its worker kept dying) is
-- marked dead. Each start counts one attempt.
-- Two ways in: with `arg_read_count` > 0 the script reads up to that many new entries itself
-- (XREADGROUP without blocking: one round trip takes and starts a batch while the queue has
-- work); with 0 it starts the entries a blocking read already took (`StartItemArgs`, per job).
-- Keys and arguments are named in src/tasks/scripts.rs (`StartKeys`, `StartArgs`): the queue
-- stream and the dead set; the group, the events' maxlen, the worker and the read count.
-- Returns a flat list, per job: entry id, task id, job json ('' when given), attempt number
-- (> 0), 0 = skipped, -1 = dead.
local final = {succeeded = true, failed = true, cancelled = true, dead = true}
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = string.format('%.0f', now_us)

local jobs = {}
local count = tonumber(arg_read_count)
if count > 0 then
  local reply = redis.call('XREADGROUP', 'GROUP', arg_group, arg_worker, 'COUNT', count,
    'STREAMS', key_queue, '>')
  for _, entry in ipairs(reply and reply[1] and reply[1][2] or {}) do
    local fields, id, job = entry[2], nil, nil
    for f = 1, #fields, 2 do
      if fields[f] == 't' then id = fields[f + 1] elseif fields[f] == 'j' then job = fields[f + 1] end
    end
    if id and job then
      jobs[#jobs + 1] = {entry[1], id, job}
    else
      -- Not a job entry: nothing can run it.
      redis.call('XACK', key_queue, arg_group, entry[1])
      redis.call('XDEL', key_queue, entry[1])
    end
  end
else
  for i = 1, items do
    --@item
    jobs[#jobs + 1] = {arg_entry, arg_task_id, ''}
  end
end

local out = {}
local done = {}
for _, job in ipairs(jobs) do
  local entry, id = job[1], job[2]
  local task, events = 'ai:task:{' .. id .. '}', 'ai:task:{' .. id .. '}:events'
  local f = redis.call('HMGET', task, 'state', 'attempts', 'max_attempts', 'batch', 'held')
  local state = f[1]
  local result
  if not state or final[state] then
    done[#done + 1] = entry
    result = 0
  else
    local attempt = (tonumber(f[2]) or 0) + 1
    local max = tonumber(f[3])
    if attempt > max then
      local err = {kind = 'attempts_exhausted', message = 'the job was started ' .. max ..
        ' times without finishing (its worker stopped each time)'}
      redis.call('HSET', task, 'state', 'dead', 'finished_us', now, 'attempts', max,
        'outcome', cjson.encode({error = err}))
      local q = redis.call('HMGET', task, 'user_id', 'feature', 'quota')
      settle(task, q[1], q[2], q[3], 0)
      batch_step(f[4], f[5], state, 'dead', now)
      redis.call('XADD', events, 'MAXLEN', '~', arg_events_maxlen, '*', 'event', 'dead',
        'data', stamp({task_id = id, state = 'dead', attempt = max, error = err}, now))
      changed(events)
      redis.call('ZADD', key_dead, now_us, id)
      -- Dead tasks are listed for a week (their records expire with the kind's result TTL).
      redis.call('ZREMRANGEBYSCORE', key_dead, '-inf', now_us - 604800000000)
      done[#done + 1] = entry
      result = -1
    else
      redis.call('HSET', task, 'state', 'running', 'attempts', attempt, 'started_us', now,
        'worker', arg_worker)
      batch_step(f[4], f[5], state, 'running', now)
      -- The hot path: the event's JSON by hand (ids are UUIDs, nothing to escape).
      redis.call('XADD', events, 'MAXLEN', '~', arg_events_maxlen, '*', 'event', 'started',
        'data', '{"task_id":"' .. id .. '","state":"running","attempt":' .. attempt ..
        ',"at_us":' .. now .. '}')
      changed(events)
      result = attempt
    end
  end
  out[#out + 1] = entry
  out[#out + 1] = id
  out[#out + 1] = job[3]
  out[#out + 1] = result
end
-- Entries that will not run leave the queue (one call for all of them).
if #done > 0 then
  redis.call('XACK', key_queue, arg_group, unpack(done))
  redis.call('XDEL', key_queue, unpack(done))
end
announce()
return out
