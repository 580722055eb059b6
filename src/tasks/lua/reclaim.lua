-- Puts back at the tail of the queue every entry that a consumer fetched but has not acknowledged
-- nor heart-beaten for longer than the visibility timeout (its worker died). The next start counts
-- the attempt.
-- Keys and arguments: `ReclaimKeys`, `ReclaimArgs` (src/tasks/scripts.rs).
local res = redis.call('XAUTOCLAIM', key_queue, arg_group, 'reaper', arg_min_idle_ms, '0-0',
  'COUNT', tonumber(arg_limit))
local moved = 0
for _, entry in ipairs(res[2]) do
  local fields = entry[2]
  if fields then
    local values = {}
    for j = 1, #fields, 2 do
      values[fields[j]] = fields[j + 1]
    end
    if values.t and values.j then
      redis.call('XADD', key_queue, '*', 't', values.t, 'j', values.j)
      moved = moved + 1
    end
  end
  redis.call('XACK', key_queue, arg_group, entry[1])
  redis.call('XDEL', key_queue, entry[1])
end
return moved
