-- A cache lookup: the answer when there is one; otherwise the coalescing lock, if free.
-- KEYS: 1 answer, 2 lock
-- ARGV: 1 lock token, 2 lock ms
-- Returns {1, answer} on a hit, {2, ''} when this caller took the lock, {0, ''} when another
-- caller holds it.
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, ''} end
return {0, ''}
