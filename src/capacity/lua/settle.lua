-- Settles one booked call (`reserve.lua`): its place among the calls in flight is freed, the
-- tokens it booked but did not use go back (its real usage is booked instead), and what the
-- vendor reported is taken over: its limits (they win while fresh) and what it says is left,
-- when that is less than the schedule thinks. A 429 pauses the entry for every process for the
-- vendor's Retry-After (`arg_pause_ms`) and empties its request bucket.
-- Counts of this minute's requests and tokens, and of 429s, are kept for the status.
-- Keys and arguments: `SettleKeys`, `SettleArgs` (src/capacity/scripts.rs); a figure the
-- vendor did not report is -1.
-- Returns 1.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call('ZREM', key_inflight, arg_call_id)
local reported = {
  {field = 'v_req', limit = tonumber(arg_requests_limit)},
  {field = 'v_tok', limit = tonumber(arg_tokens_limit)},
  {field = 'v_in', limit = tonumber(arg_input_limit)},
  {field = 'v_out', limit = tonumber(arg_output_limit)},
}
local any = false
for _, r in ipairs(reported) do
  if r.limit > 0 then
    redis.call('HSET', key_state, r.field, r.limit)
    any = true
  end
end
if any then
  redis.call('HSET', key_state, 'v_at', string.format('%.3f', now))
end
local f = redis.call('HMGET', key_state, 'v_at', 'v_req', 'v_tok', 'v_in', 'v_out',
  'tat_req', 'tat_tok', 'tat_in', 'tat_out', 'minute')
local fresh = f[1] and (now - tonumber(f[1]) <= tonumber(arg_fresh_ms))
local used_in = math.max(tonumber(arg_used_input), 0)
local used_out = math.max(tonumber(arg_used_output), 0)
local booked_in = tonumber(arg_booked_input)
local booked_out = tonumber(arg_booked_output)
local kinds = {
  {field = 'tat_req', limit = arg_rpm, vendor = f[2], tat = f[6], unused = 0,
    left = tonumber(arg_requests_left)},
  {field = 'tat_tok', limit = arg_tpm, vendor = f[3], tat = f[7],
    unused = booked_in + booked_out - used_in - used_out, left = tonumber(arg_tokens_left)},
  {field = 'tat_in', limit = arg_itpm, vendor = f[4], tat = f[8], unused = booked_in - used_in,
    left = tonumber(arg_input_left)},
  {field = 'tat_out', limit = arg_otpm, vendor = f[5], tat = f[9],
    unused = booked_out - used_out, left = tonumber(arg_output_left)},
}
local burst = tonumber(arg_burst_ms)
local limited = arg_rate_limited == '1'
for i, k in ipairs(kinds) do
  local limit = tonumber(k.limit)
  if fresh and k.vendor then
    limit = tonumber(k.vendor)
  end
  if limit and limit > 0 then
    local interval = 60000 / limit
    local tau = math.max(burst, interval)
    local tat = math.max(tonumber(k.tat or 0) - k.unused * interval, now)
    if k.left >= 0 then
      tat = math.max(tat, now + tau - k.left * interval)
    end
    if limited and i == 1 then
      tat = math.max(tat, now + tau)
    end
    redis.call('HSET', key_state, k.field, string.format('%.3f', tat))
  end
end
if limited then
  local until_ms = now + tonumber(arg_pause_ms)
  if until_ms > tonumber(redis.call('HGET', key_state, 'paused_until') or 0) then
    redis.call('HSET', key_state, 'paused_until', string.format('%.3f', until_ms))
  end
  redis.call('HINCRBY', key_state, 'rate_limited', 1)
end
local minute = tostring(math.floor(now / 60000))
if f[10] ~= minute then
  redis.call('HSET', key_state, 'minute', minute, 'minute_requests', 0, 'minute_tokens', 0)
end
redis.call('HINCRBY', key_state, 'minute_requests', 1)
redis.call('HINCRBY', key_state, 'minute_tokens', used_in + used_out)
redis.call('PEXPIRE', key_state, 86400000)
return 1
