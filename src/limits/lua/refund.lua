-- Gives back the tokens an admitted request reserved and never used (it was refused after
-- admission, before any task existed: a callback host that does not resolve). The request
-- itself still counts against the window and the request caps.
-- KEYS: 1 daily quota, 2 monthly quota, 3 the feature's token bucket
-- ARGV: 1 tokens, 2 daily reset_at, 3 monthly reset_at
local back = tonumber(ARGV[1])
if back <= 0 then
  return 0
end
if redis.call('HGET', KEYS[1], 'reset_at') == ARGV[2] then
  redis.call('HINCRBY', KEYS[1], 'tokens', -back)
end
if redis.call('HGET', KEYS[2], 'reset_at') == ARGV[3] then
  redis.call('HINCRBY', KEYS[2], 'tokens', -back)
end
local b = redis.call('HMGET', KEYS[3], 'tokens', 'capacity')
if b[1] then
  redis.call('HSET', KEYS[3], 'tokens', math.min(tonumber(b[2]) or 0, tonumber(b[1]) + back))
end
return 1
