-- Prepended to the limit scripts: recording a violation, and the block it may cause.

-- Records one violation at `now` (ms); when `threshold` of them fall within `window` ms, blocks
-- the user for `block` ms. KEYS are the caller's: violations list, blocked key (one user's slot;
-- the global index of blocked users is Rust's follow-up step, `Limits::index_block`).
-- Returns the block's end (ms) or 0.
local function violation(violations_key, blocked_key, reason, now, threshold, window, block)
  redis.call('LPUSH', violations_key, now .. ':' .. reason)
  redis.call('LTRIM', violations_key, 0, threshold - 1)
  redis.call('PEXPIRE', violations_key, window)
  local recent = 0
  for _, entry in ipairs(redis.call('LRANGE', violations_key, 0, threshold - 1)) do
    local at = tonumber(string.match(entry, '^(%d+):'))
    if at and at > now - window then
      recent = recent + 1
    end
  end
  if recent < threshold then
    return 0
  end
  local until_ms = now + block
  redis.call('SET', blocked_key, until_ms, 'PX', block)
  return until_ms
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

