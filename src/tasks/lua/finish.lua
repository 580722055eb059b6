-- Records the outcome of a batch of jobs. The first final state wins: a task that is already
-- final (cancelled while running, or finished by an earlier run) keeps its state. The queue
-- entry is acknowledged and deleted either way; a retry goes to the delayed set.
-- Keys and arguments are named in src/tasks/scripts.rs: `FinishKeys` and `FinishArgs` (the
-- queue stream, the dead set, the delayed set that also holds inline leases, the partition's
-- watching set, announcements and outbox), then per job
-- `TaskKeys` (or, in the settling build, `FinishItemKeys`: with the user's settlement keys;
-- `settles_here` says which) and `FinishItemArgs` (`arg_ending`: succeeded | failed | dead |
-- retrying | waiting: queued again after the delay, the attempt not counted).
-- Returns {per job: {applied (1/0), user_id, role, feature, request_id, created_us, started_us,
-- attempts, callback_url}; follow-ups}
local final = {succeeded = true, failed = true, cancelled = true, dead = true}
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = string.format('%.0f', now_us)
local ttl = tonumber(arg_ttl_secs)
local out = {}
local acked = {}
for i = 1, items do
  --@item
  if arg_entry == '' then
    redis.call('ZREM', key_delayed, arg_task_id)
  else
    acked[#acked + 1] = arg_entry
  end
  local f = redis.call('HMGET', key_task, 'state', 'user_id', 'role', 'feature', 'request_id',
    'created_us', 'started_us', 'attempts', 'callback_url', 'quota', 'batch', 'held')
  local state = f[1]
  local applied = 0
  if state and not final[state] then
    applied = 1
    local head
    if arg_ending == 'retrying' then
      local due_ms = math.floor(now_us / 1000) + tonumber(arg_delay_ms)
      head = '"task_id":"' .. arg_task_id .. '","state":"retrying","retry_in_ms":' .. arg_delay_ms
      redis.call('HSET', key_task, 'state', 'retrying', 'outcome', arg_outcome, 'next_run_us', string.format('%.0f', due_ms * 1000))
      redis.call('ZADD', key_delayed, due_ms, arg_task_id)
    elseif arg_ending == 'waiting' then
      -- Back in the queue until what it waits for is due; this attempt does not count.
      local due_ms = math.floor(now_us / 1000) + tonumber(arg_delay_ms)
      head = '"task_id":"' .. arg_task_id .. '","state":"queued","waiting_ms":' .. arg_delay_ms
      redis.call('HSET', key_task, 'state', 'queued', 'next_run_us', string.format('%.0f', due_ms * 1000))
      redis.call('HINCRBY', key_task, 'attempts', -1)
      redis.call('ZADD', key_delayed, due_ms, arg_task_id)
    else
      head = '"task_id":"' .. arg_task_id .. '","state":"' .. arg_ending .. '"'
      redis.call('HSET', key_task, 'state', arg_ending, 'outcome', arg_outcome, 'finished_us', now)
      settle(key_outbox, key_task, arg_task_id, f[2], f[4], f[10],
        arg_ending == 'succeeded' and arg_tokens or 0,
        settles_here and {key_daily, key_monthly, key_bucket, key_settled} or nil)
      webhook(key_outbox, arg_task_id, f[9], arg_ending)
      if arg_ending == 'dead' then
        redis.call('ZADD', key_dead, now_us, arg_task_id)
        -- Dead tasks are listed for a week (their records expire with the kind's result TTL).
        redis.call('ZREMRANGEBYSCORE', key_dead, '-inf', now_us - 604800000000)
      end
    end
    batch_step(partition_of(key_task), f[11], f[12], state, arg_ending, now)
    redis.call('XADD', key_events, 'MAXLEN', '~', arg_events_maxlen, '*', 'event', arg_ending,
      'data', with_fields(arg_outcome, head, now))
    changed(key_watching, key_events)
    redis.call('EXPIRE', key_task, ttl)
    redis.call('EXPIRE', key_events, ttl)
  end
  out[i] = {applied, f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or '', f[7] or '', f[8] or '', f[9] or ''}
end
-- The entries leave the queue whatever happened (one call for all of them).
if #acked > 0 then
  redis.call('XACK', key_queue, arg_group, unpack(acked))
  redis.call('XDEL', key_queue, unpack(acked))
end
announce(key_announcements)
return {out, followups}
