-- Adds a new task to its user's index and feed, in the user's slot, before the task's own
-- record is created in its partition (create.lua): if that never happens (the process died in
-- between, or the partition's node is away), the index holds an id without a record, which
-- every reader skips as it skips expired ones; nothing accepted is lost. A repeat is a no-op.
-- Keys and arguments: `UserTaskKeys`, `UserTaskArgs` in src/tasks/scripts.rs.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(arg_ttl_secs)
if redis.call('ZADD', key_user_tasks, 'NX', now_us, arg_task_id) == 0 then
  return 0
end
redis.call('ZREMRANGEBYSCORE', key_user_tasks, '-inf', now_us - ttl * 1000000)
redis.call('EXPIRE', key_user_tasks, ttl)
redis.call('XADD', key_user_feed, 'MAXLEN', '~', 1000, '*', 't', arg_task_id)
redis.call('EXPIRE', key_user_feed, ttl)
return 1
