-- Giving back the part of a reservation a request did not use, in the user's slot: to the daily
-- and monthly counts (only in the periods it was reserved in) and to the feature's token bucket.
-- Prepended to refund.lua and settle.lua, and to the task scripts that settle a task's
-- reservation in the step that ends it (tasks/lua/prelude.lua `settle`, on one server). A
-- task's settlement counts once however often it is applied: the user's `settled` set remembers
-- the tasks it settled for a day (an outbox entry is applied again within seconds of a crash, by
-- any process's sweeper; the set holds at most a day of the user's tasks).

-- Gives `back` tokens back (`day`, `month`: the reset_at of the periods the reservation was
-- made in; `task_id`: the task whose follow-up this is, remembered in `settled`, or '' when the
-- caller guarantees once by itself: a request that never became a task, or a task script that
-- settles in the step that takes the reservation off the record). Returns 1 when it settled, 0
-- when the task was settled before.
local function give_back(daily, monthly, bucket, settled, back, day, month, task_id)
  if task_id ~= '' then
    local t = redis.call('TIME')
    local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    if redis.call('ZADD', settled, 'NX', now_ms, task_id) == 0 then
      return 0
    end
    redis.call('ZREMRANGEBYSCORE', settled, '-inf', now_ms - 86400000)
    redis.call('PEXPIRE', settled, 86400000)
  end
  if back <= 0 then
    return 1
  end
  if redis.call('HGET', daily, 'reset_at') == day then
    redis.call('HINCRBY', daily, 'tokens', -back)
  end
  if redis.call('HGET', monthly, 'reset_at') == month then
    redis.call('HINCRBY', monthly, 'tokens', -back)
  end
  local b = redis.call('HMGET', bucket, 'tokens', 'capacity')
  if b[1] then
    redis.call('HSET', bucket, 'tokens', math.min(tonumber(b[2]) or 0, tonumber(b[1]) + back))
  end
  return 1
end

-- Settles task `task_id`'s reservation `quota` ("tokens:daily reset_at:monthly reset_at",
-- `Reservation::encode`) to `used` tokens. An unreadable reservation settles nothing (it was
-- never ours to give back).
local function settle_reservation(daily, monthly, bucket, settled, quota, used, task_id)
  local reserved, day, month = string.match(quota, '^(%d+):(%-?%d+):(%-?%d+)$')
  if not reserved then
    return 0
  end
  reserved = tonumber(reserved)
  return give_back(daily, monthly, bucket, settled, reserved - math.min(used, reserved), day,
    month, task_id)
end
