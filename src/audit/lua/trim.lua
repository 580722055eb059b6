-- Trims a drained chunk off the spool while this drainer still holds the lock, and extends it.
-- KEYS: 1 spool, 2 lock
-- ARGV: 1 lock token, 2 events drained, 3 lock ms
-- Returns 1 when trimmed, 0 when the lock is another's (nothing changes).
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('LTRIM', KEYS[1], ARGV[2], -1)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return 1
end
return 0
