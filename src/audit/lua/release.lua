-- Releases the spool lock if this drainer still holds it.
-- KEYS: 1 lock
-- ARGV: 1 lock token
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
