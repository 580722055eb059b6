-- Keeps an answer (when there is one) and releases the coalescing lock this caller holds.
-- KEYS: 1 answer, 2 lock
-- ARGV: 1 answer json ('' = none), 2 ttl secs, 3 lock token ('' = none)
if ARGV[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
