-- Gives back what an admitted request reserved, when it is refused before any task exists
-- (settlement.lua, prepended).
-- KEYS: 1 daily quota, 2 monthly quota, 3 the feature's token bucket, 4 the user's settled set
-- ARGV: 1 tokens to give back, 2 daily reset_at, 3 monthly reset_at
return give_back(KEYS[1], KEYS[2], KEYS[3], KEYS[4], tonumber(ARGV[1]), ARGV[2], ARGV[3], '')
