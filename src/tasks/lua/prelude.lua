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

-- Event readers (hub.rs) register the streams their subscribers watch in the partition's
-- watching set (member: stream key, score: expiry). An append to a watched stream is announced
-- on the partition's announcement stream once per script; when nobody watches anything there,
-- announcing costs one EXISTS. Both keys are the script's own (`key_watching`,
-- `key_announcements`).
local announced = {}
local anyone_watching = nil
local function changed(watching, key)
  if anyone_watching == nil then
    anyone_watching = redis.call('EXISTS', watching) == 1
  end
  if anyone_watching and redis.call('ZSCORE', watching, key) then
    announced[#announced + 1] = key
  end
end
local function announce(announcements)
  if #announced > 0 then
    redis.call('XADD', announcements, 'MAXLEN', '~', 100000, '*', 'k', table.concat(announced, ' '))
  end
end

-- Adds a new task to its user's index and feed (the user's slot): `user_task.lua` on a cluster,
-- `create.lua` itself on one server, where every key may be changed together. Once per task.
local function add_to_user(user_tasks, user_feed, task_id, now_us, ttl)
  if redis.call('ZADD', user_tasks, 'NX', now_us, task_id) == 0 then
    return 0
  end
  redis.call('ZREMRANGEBYSCORE', user_tasks, '-inf', now_us - ttl * 1000000)
  redis.call('EXPIRE', user_tasks, ttl)
  redis.call('XADD', user_feed, 'MAXLEN', '~', 1000, '*', 't', task_id)
  redis.call('EXPIRE', user_feed, ttl)
  return 1
end

-- Follow-up steps for other slots (tasks/outbox.rs): appended to the partition's outbox in the
-- same atomic step as the change that needs them, and returned, so the caller applies them at
-- once; a sweeper applies whatever a crash left behind. Each step is idempotent.
local followups = {}
local function follow(outbox, fields)
  local id = redis.call('XADD', outbox, '*', unpack(fields))
  followups[#followups + 1] = {id, fields}
end

-- Settles a task's token reservation when it ends: `used` of the reserved estimate is kept, the
-- rest goes back. In this step when the script was given the user's settlement keys (`here`:
-- daily, monthly, bucket, settled; one server only, `settle_reservation` comes from
-- limits/lua/settlement.lua), else as a follow-up in the user's slot (limits/lua/settle.lua).
-- Once per task: the reservation leaves the task's record here, in the step that settles it or
-- writes its follow-up; a follow-up may be applied again after a crash, so the user's slot
-- remembers the tasks it settled that way (settling here needs no such memory: task id '').
local function settle(outbox, task, id, user, feature, quota, used, here)
  if not quota then
    return
  end
  redis.call('HDEL', task, 'quota')
  if here then
    settle_reservation(here[1], here[2], here[3], here[4], quota, tonumber(used), '')
    return
  end
  follow(outbox, {'op', 'settle', 'task', id, 'user', user, 'feature', feature, 'quota', quota,
    'used', tostring(used or 0)})
end

-- Queues the webhook of a task that ended with a callback URL (webhooks/finals.rs, which reads
-- the record and creates the delivery task under an id that comes from this task's: a repeat is
-- a no-op). Once per task: only the step that makes it final calls this.
local function webhook(outbox, id, callback_url, state)
  if callback_url and callback_url ~= '' then
    follow(outbox, {'op', 'webhook', 'task', id, 'state', state})
  end
end

-- The partition prefix (`ai:{<tag>}:`) of one of the partition's keys.
local function partition_of(key)
  return string.match(key, '^(ai:{[^}]*}:)')
end

-- Batches (batches/store.rs): an item is a task with a `batch` field, in its batch's partition.
-- `batch_step` keeps the batch in step when an item moves from state `from` to `to`: the
-- running count, the final counts, the per-batch concurrency cap (a dispatched item that ends
-- queues the next held one; a `held` item never took a slot) and the batch's end (its id goes
-- to the partition's `batches:ended`, where a worker picks it up for the batch webhook). Any
-- number of scripts may run it. The batch's keys and the next held item's are found from the
-- record (`prefix`: the partition's, all in the script's slot), not given: the one place a
-- script builds keys itself, each through `derived` (the key guard checks its slot).
local batch_counter = {succeeded = 'succeeded', failed = 'failed', dead = 'failed', cancelled = 'cancelled'}
local function batch_step(prefix, b, held, from, to, now)
  if not b then
    return
  end
  local key = derived(prefix .. 'batch:' .. b)
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
      local next_id = redis.call('LPOP', derived(key .. ':held'))
      if not next_id then
        break
      end
      local task = derived(prefix .. 'task:' .. next_id)
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
    redis.call('RPUSH', derived(prefix .. 'batches:ended'), b)
  end
end
