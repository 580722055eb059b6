-- Books one call's share of a provider entry's capacity, for every process at once. Each kind of
-- limit (requests, tokens, input and output tokens per minute) is a GCRA schedule: `tat_<kind>`
-- is the time the capacity booked so far is used up, and a call may go once the bucket
-- (`arg_burst_ms` deep) holds its cost. The limit is the vendor's while its report is fresh,
-- else the configured one (0: none). A 429 pauses the entry (`paused_until`, `settle.lua`).
-- Batch calls leave `arg_headroom` requests of the bucket to interactive ones. A call due
-- within `arg_hold_ms` is booked (and told how long to wait); a later one is refused and given
-- its turn: fairly among the users (or tenants, `arg_fair_key`) of its class that wait, each
-- user's calls one after another, spaced by the capacity they take times the number of users
-- waiting (`key_users`: each user's next free turn). So refused calls come back one by one
-- instead of all at once, and a user with thousands waiting does not delay another's first
-- call: that one is booked at once if due within its hold. A task waiting is counted in the
-- waiting set until it books.
-- Keys and arguments: `ReserveKeys`, `ReserveArgs` (src/capacity/scripts.rs).
-- Returns {1, wait ms, ''} when booked, {0, ms until its turn, reason} when refused.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local f = redis.call('HMGET', key_state, 'paused_until', 'v_at', 'v_req', 'v_tok', 'v_in', 'v_out',
  'tat_req', 'tat_tok', 'tat_in', 'tat_out')
local fresh = f[2] and (now - tonumber(f[2]) <= tonumber(arg_fresh_ms))
local input = tonumber(arg_input_tokens)
local output = tonumber(arg_output_tokens)
local kinds = {
  {name = 'requests', field = 'tat_req', limit = arg_rpm, vendor = f[3], tat = f[7], cost = 1},
  {name = 'tokens', field = 'tat_tok', limit = arg_tpm, vendor = f[4], tat = f[8], cost = input + output},
  {name = 'input_tokens', field = 'tat_in', limit = arg_itpm, vendor = f[5], tat = f[9], cost = input},
  {name = 'output_tokens', field = 'tat_out', limit = arg_otpm, vendor = f[6], tat = f[10], cost = output},
}
local burst = tonumber(arg_burst_ms)
local at = now
local reason = 'requests'
local paused = tonumber(f[1] or 0)
if paused > at then
  at = paused
  reason = 'paused'
end
-- How long this call's capacity lasts at the rate: the spacing of refused calls.
local step = 0
for _, k in ipairs(kinds) do
  local limit = tonumber(k.limit)
  if fresh and k.vendor then
    limit = tonumber(k.vendor)
  end
  if limit and limit > 0 then
    k.interval = 60000 / limit
    local tau = math.max(burst, k.interval)
    k.tat = math.max(tonumber(k.tat or 0), now)
    local need = math.min(k.cost * k.interval, tau)
    local go = k.tat + need - tau
    if k.name == 'requests' and arg_class == 'batch' then
      go = go + tonumber(arg_headroom) * k.interval
    end
    if go > at then
      at = go
      reason = k.name
    end
    step = math.max(step, k.cost * k.interval)
  end
end
local max_in_flight = tonumber(arg_max_in_flight)
if max_in_flight > 0 then
  redis.call('ZREMRANGEBYSCORE', key_inflight, '-inf', now)
  if redis.call('ZCARD', key_inflight) >= max_in_flight then
    -- A place frees when a call ends, which nobody can say: look again after the hold.
    at = math.max(at, now + tonumber(arg_hold_ms) + 1)
    reason = 'in_flight'
    step = math.max(step, tonumber(arg_hold_ms) / max_in_flight)
  end
end
-- The same user's earlier calls wait for their turns: a newcomer of theirs queues behind them.
local my_tail = tonumber(redis.call('ZSCORE', key_users, arg_fair_key) or 0)
local my_turn = arg_task_id ~= '' and redis.call('ZSCORE', key_waiting, arg_task_id)
local queued_behind = my_tail > now and not my_turn
if at - now > tonumber(arg_hold_ms) or queued_behind then
  -- Users with turns ahead share the capacity: this user's next turn is that many calls on.
  local sharing = redis.call('ZCOUNT', key_users, '(' .. string.format('%.3f', now), '+inf')
  if my_tail <= now then
    sharing = sharing + 1
  end
  local due = math.max(my_tail, at)
  -- Only a task comes back for its turn; a call of no task that was refused holds none.
  if arg_task_id ~= '' then
    redis.call('ZADD', key_users, string.format('%.3f', due + step * sharing), arg_fair_key)
    redis.call('ZADD', key_waiting, string.format('%.3f', due), arg_task_id)
  end
  -- A task that stopped waiting (cancelled, or gone to another provider) is forgotten later.
  redis.call('ZREMRANGEBYSCORE', key_waiting, '-inf', now - 600000)
  redis.call('ZREMRANGEBYSCORE', key_users, '-inf', now - 600000)
  redis.call('PEXPIRE', key_state, 86400000)
  redis.call('PEXPIRE', key_waiting, 86400000)
  redis.call('PEXPIRE', key_users, 86400000)
  return {0, math.ceil(due - now), reason}
end
for _, k in ipairs(kinds) do
  if k.interval then
    redis.call('HSET', key_state, k.field,
      string.format('%.3f', math.max(k.tat, at) + k.cost * k.interval))
  end
end
if max_in_flight > 0 then
  redis.call('ZADD', key_inflight, string.format('%.3f', at + tonumber(arg_lease_ms)), arg_call_id)
  redis.call('PEXPIRE', key_inflight, 86400000)
end
if arg_task_id ~= '' then
  redis.call('ZREM', key_waiting, arg_task_id)
end
redis.call('PEXPIRE', key_state, 86400000)
return {1, math.floor(at - now), ''}
