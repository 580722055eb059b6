-- Records a violation outside admission (forbidden topic, oversized or invalid request).
-- KEYS: 1 violations list, 2 blocked key, 3 blocked index (global zset)
-- ARGV: 1 user id, 2 reason, 3 threshold, 4 window ms, 5 block ms
-- Returns the block's end (ms) when this violation blocked the user, else 0.
return violation(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], now_ms(),
  tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
