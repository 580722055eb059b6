-- Records the outcome of a batch of jobs. The first final state wins: a task that is already
-- final (cancelled while running, or finished by an earlier run) keeps its state. The queue
-- entry is acknowledged and deleted either way; a retry goes to the delayed set.
-- KEYS: 1 queue stream, 2 dead zset, 3 delayed zset (also holds inline leases), then per job: task hash, events
-- ARGV: 1 group, 2 events maxlen, 3 ttl secs, then per job: entry id ('' when inline), task id,
--       outcome (succeeded | failed | dead | retrying), payload json, retry delay ms, tokens used
-- Returns per job: {applied (1/0), user_id, role, feature, request_id, created_us, started_us, attempts, callback_url}
local final = {succeeded = true, failed = true, cancelled = true, dead = true}
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = string.format('%.0f', now_us)
local ttl = tonumber(ARGV[3])
local out = {}
local acked = {}
local n = (#KEYS - 3) / 2
for i = 1, n do
  local task, events = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local base = 3 + 6 * (i - 1)
  local entry, id, outcome, payload, delay = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4], ARGV[base + 5]
  if entry == '' then
    redis.call('ZREM', KEYS[3], id)
  else
    acked[#acked + 1] = entry
  end
  local f = redis.call('HMGET', task, 'state', 'user_id', 'role', 'feature', 'request_id',
    'created_us', 'started_us', 'attempts', 'callback_url', 'quota', 'batch', 'held')
  local state = f[1]
  local applied = 0
  if state and not final[state] then
    applied = 1
    local head
    if outcome == 'retrying' then
      local due_ms = math.floor(now_us / 1000) + tonumber(delay)
      head = '"task_id":"' .. id .. '","state":"retrying","retry_in_ms":' .. delay
      redis.call('HSET', task, 'state', 'retrying', 'outcome', payload, 'next_run_us', string.format('%.0f', due_ms * 1000))
      redis.call('ZADD', KEYS[3], due_ms, id)
    else
      head = '"task_id":"' .. id .. '","state":"' .. outcome .. '"'
      redis.call('HSET', task, 'state', outcome, 'outcome', payload, 'finished_us', now)
      settle(task, f[2], f[4], f[10], outcome == 'succeeded' and ARGV[base + 6] or 0)
      if outcome == 'dead' then
        redis.call('ZADD', KEYS[2], now_us, id)
        -- Dead tasks are listed for a week (their records expire with the kind's result TTL).
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_us - 604800000000)
      end
    end
    batch_step(f[11], f[12], state, outcome, now)
    redis.call('XADD', events, 'MAXLEN', '~', ARGV[2], '*', 'event', outcome,
      'data', with_fields(payload, head, now))
    changed(events)
    redis.call('EXPIRE', task, ttl)
    redis.call('EXPIRE', events, ttl)
  end
  out[i] = {applied, f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or '', f[7] or '', f[8] or '', f[9] or ''}
end
-- The entries leave the queue whatever happened (one call for all of them).
if #acked > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(acked))
  redis.call('XDEL', KEYS[1], unpack(acked))
end
announce()
return out
