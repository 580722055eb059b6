-- The key guard (storage/script.rs), in front of every script when TUTORQ_SCRIPT_KEY_GUARD=1
-- (the tests): a script may touch only the keys it was given in KEYS, and keys it derives
-- itself through `derived`, which must carry the hash tag of its first key (the same slot). A
-- script that touches any other key fails, naming the key and the command.
local server = redis
local declared = {}
for _, key in ipairs(KEYS) do
  declared[key] = true
end
local function tag(key)
  local open = string.find(key, '{', 1, true)
  if not open then
    return key
  end
  local close = string.find(key, '}', open + 1, true)
  if not close or close == open + 1 then
    return key
  end
  return string.sub(key, open + 1, close - 1)
end
local function derived(key)
  if #KEYS == 0 or tag(key) ~= tag(KEYS[1]) then
    error('key guard: derived key ' .. key .. ' is outside the slot of ' .. tostring(KEYS[1]))
  end
  declared[key] = true
  return key
end
-- Where each command the scripts use names its keys: the first argument, every argument, or
-- (XREADGROUP) the first half after STREAMS. A command not listed fails, so a new one is added
-- here on purpose.
local first = {}
for _, name in ipairs({'HSET', 'HGET', 'HMGET', 'HINCRBY', 'HDEL', 'HGETALL', 'EXPIRE', 'PEXPIRE',
  'PEXPIREAT', 'PTTL', 'TTL', 'XADD', 'XACK', 'XDEL', 'XAUTOCLAIM', 'XCLAIM', 'XLEN', 'XRANGE',
  'XREVRANGE', 'ZADD', 'ZREM', 'ZSCORE', 'ZRANGE', 'ZRANGEBYSCORE', 'ZREVRANGE',
  'ZREMRANGEBYSCORE', 'ZCARD', 'ZCOUNT', 'LPUSH', 'RPUSH', 'LPOP', 'LLEN', 'LRANGE', 'LTRIM',
  'LREM', 'GET', 'SET', 'INCR', 'INCRBY'}) do
  first[name] = true
end
local all = {DEL = true, EXISTS = true, UNLINK = true}
local none = {TIME = true, PUBLISH = true}
local function check(name, ...)
  local command = string.upper(name)
  local args = {...}
  local keys = {}
  if first[command] then
    keys = {args[1]}
  elseif all[command] then
    keys = args
  elseif command == 'XREADGROUP' then
    for i, arg in ipairs(args) do
      if string.upper(arg) == 'STREAMS' then
        local count = (#args - i) / 2
        for j = 1, count do
          keys[#keys + 1] = args[i + j]
        end
        break
      end
    end
  elseif not none[command] then
    error('key guard: ' .. command .. ' is not known to the guard (storage/lua/key_guard.lua)')
  end
  for _, key in ipairs(keys) do
    if not declared[key] then
      error('key guard: ' .. command .. ' touched ' .. tostring(key) .. ', not given in KEYS')
    end
  end
end
local redis = setmetatable({
  call = function(...)
    check(...)
    return server.call(...)
  end,
  pcall = function(...)
    check(...)
    return server.pcall(...)
  end,
}, {__index = server})
