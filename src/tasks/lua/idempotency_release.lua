-- Gives an Idempotency-Key slot back if it still holds this request's value.
-- KEYS: 1 slot
-- ARGV: 1 prefix of this request's value
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
