-- Sets the webhook's delivery state on the task or batch it announces; nothing when that record
-- has expired (a state alone must not bring it back).
-- KEYS: 1 task or batch record
-- ARGV: 1 state (pending, delivered, failed)
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'webhook', ARGV[1]) end
return 1
