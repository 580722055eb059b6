-- Adds a new task to its user's index and feed, in the user's slot, before the task's own
-- record is created in its partition (create.lua), on a Redis Cluster: if that never happens
-- (the process died in between, or the partition's node is away), the index holds an id
-- without a record, which every reader skips as it skips expired ones; nothing accepted is
-- lost. A repeat is a no-op. (On one server create.lua does this itself, in the same step.)
-- Keys and arguments: `UserTaskKeys`, `UserTaskArgs` in src/tasks/scripts.rs.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
return add_to_user(key_user_tasks, key_user_feed, arg_task_id, now_us, tonumber(arg_ttl_secs))
