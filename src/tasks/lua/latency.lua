-- Folds n latency samples with mean m into a feature's moving average (EWMA, weight alpha per
-- sample), shared by every process.
-- KEYS: 1 latency hash; ARGV: 1 mean ms, 2 n, 3 alpha
local mean, n, alpha = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local old = tonumber(redis.call('HGET', KEYS[1], 'ewma_ms'))
local new = mean
if old then
  local keep = (1 - alpha) ^ n
  new = old * keep + mean * (1 - keep)
end
redis.call('HSET', KEYS[1], 'ewma_ms', string.format('%.3f', new))
redis.call('HINCRBY', KEYS[1], 'samples', n)
return string.format('%.3f', new)
