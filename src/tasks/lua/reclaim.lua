-- Puts back at the tail of the queue every entry that a consumer fetched but has not acknowledged
-- nor heart-beaten for longer than the visibility timeout (its worker died). The next start counts
-- the attempt.
-- KEYS: 1 queue stream
-- ARGV: 1 group, 2 min idle ms, 3 limit
local res = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], 'reaper', ARGV[2], '0-0', 'COUNT', tonumber(ARGV[3]))
local moved = 0
for _, entry in ipairs(res[2]) do
  local fields = entry[2]
  if fields then
    local values = {}
    for j = 1, #fields, 2 do
      values[fields[j]] = fields[j + 1]
    end
    if values.t and values.j then
      redis.call('XADD', KEYS[1], '*', 't', values.t, 'j', values.j)
      moved = moved + 1
    end
  end
  redis.call('XACK', KEYS[1], ARGV[1], entry[1])
  redis.call('XDEL', KEYS[1], entry[1])
end
return moved
