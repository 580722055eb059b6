-- Prepended to every task script (store.rs). Helpers for event streams.

-- cjson keeps 14 significant digits: splice the exact microsecond time in as text.
local function stamp(data, now)
  local json = cjson.encode(data)
  return string.sub(json, 1, -2) .. ',"at_us":' .. now .. '}'
end

-- A JSON object (as serde_json writes it: no surrounding space) with more fields, without
-- decoding it: `head` (JSON members, ours, last so they win) and `at_us`.
local function with_fields(object, head, now)
  local inner = string.sub(object, 2, -2)
  if string.sub(object, 1, 1) ~= '{' or string.sub(object, -1) ~= '}' then
    inner = '"value":' .. object
  end
  if inner ~= '' then
    inner = inner .. ','
  end
  return '{' .. inner .. head .. ',"at_us":' .. now .. '}'
end

-- Event readers (hub.rs) register the streams their subscribers watch in `ai:watching`
-- (member: stream key, score: expiry). An append to a watched stream is announced on
-- `ai:events` once per script; when nobody watches anything, announcing costs one EXISTS.
local announced = {}
local anyone_watching = nil
local function changed(key)
  if anyone_watching == nil then
    anyone_watching = redis.call('EXISTS', 'ai:watching') == 1
  end
  if anyone_watching and redis.call('ZSCORE', 'ai:watching', key) then
    announced[#announced + 1] = key
  end
end
local function announce()
  if #announced > 0 then
    redis.call('XADD', 'ai:events', 'MAXLEN', '~', 100000, '*', 'k', table.concat(announced, ' '))
  end
end

-- Settles a task's token reservation (limits/mod.rs) when it ends: the user's daily and monthly
-- token counts keep `used` of the reserved estimate (never more; 0 refunds it all), in the periods
-- it was reserved in, and the feature's token bucket gets the rest back. Once per task.
local function settle(task, user, feature, quota, used)
  if not quota then
    return
  end
  redis.call('HDEL', task, 'quota')
  local reserved, day, month = string.match(quota, '^(%d+):(%d+):(%d+)$')
  if not reserved then
    return
  end
  reserved = tonumber(reserved)
  local back = reserved - math.max(0, math.min(tonumber(used) or 0, reserved))
  if back == 0 then
    return
  end
  local base = 'ai:quota:user:{' .. user .. '}:'
  if redis.call('HGET', base .. 'daily', 'reset_at') == day then
    redis.call('HINCRBY', base .. 'daily', 'tokens', -back)
  end
  if redis.call('HGET', base .. 'monthly', 'reset_at') == month then
    redis.call('HINCRBY', base .. 'monthly', 'tokens', -back)
  end
  local bucket = base .. 'bucket:' .. feature
  local b = redis.call('HMGET', bucket, 'tokens', 'capacity')
  if b[1] then
    redis.call('HSET', bucket, 'tokens', math.min(tonumber(b[2]) or 0, tonumber(b[1]) + back))
  end
end


-- Batches (batches/store.rs): an item is a task with a `batch` field. `batch_step` keeps the
-- batch in step when item `id` moves from state `from` to `to`: the running count, the final
-- counts, the per-batch concurrency cap (a dispatched item that ends queues the next held one;
-- a `held` item never took a slot) and the batch's end (its id goes to `ai:batches:ended`,
-- where a worker picks it up for the batch webhook). Any number of scripts may run it.
local batch_counter = {succeeded = 'succeeded', failed = 'failed', dead = 'failed', cancelled = 'cancelled'}
local function batch_step(b, held, from, to, now)
  if not b then
    return
  end
  local key = 'ai:batch:{' .. b .. '}'
  if from == 'running' and to ~= 'running' then
    redis.call('HINCRBY', key, 'running', -1)
  elseif to == 'running' and from ~= 'running' then
    redis.call('HINCRBY', key, 'running', 1)
  end
  local counter = batch_counter[to]
  if not counter then
    return
  end
  redis.call('HINCRBY', key, counter, 1)
  if not held then
    local queue = redis.call('HGET', key, 'queue')
    while queue do
      local next_id = redis.call('LPOP', key .. ':held')
      if not next_id then
        break
      end
      local task = 'ai:task:{' .. next_id .. '}'
      local f = redis.call('HMGET', task, 'state', 'job')
      if f[1] == 'queued' and f[2] then
        redis.call('HDEL', task, 'held')
        redis.call('XADD', queue, '*', 't', next_id, 'j', f[2])
        break
      end
    end
  end
  if redis.call('HINCRBY', key, 'done', 1) == tonumber(redis.call('HGET', key, 'valid')) then
    redis.call('HSET', key, 'ended_us', now)
    redis.call('RPUSH', 'ai:batches:ended', b)
  end
end
