-- Records a violation outside admission (forbidden topic, oversized or invalid request).
-- KEYS: 1 violations list, 2 blocked key (one user's slot)
-- ARGV: 1 reason, 2 threshold, 3 window ms, 4 block ms
-- Returns the block's end (ms) when this violation blocked the user, else 0.
return violation(KEYS[1], KEYS[2], ARGV[1], now_ms(),
  tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
