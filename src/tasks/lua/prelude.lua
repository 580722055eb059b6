-- Prepended to every task script (store.rs). Helpers for event streams.

-- cjson keeps 14 significant digits: splice the exact microsecond time in as text.
local function stamp(data, now)
  local json = cjson.encode(data)
  return string.sub(json, 1, -2) .. ',"at_us":' .. now .. '}'
end

-- Event readers (hub.rs) register the streams their subscribers watch in `ai:watching`
-- (member: stream key, score: expiry). An append to a watched stream is announced on
-- `ai:events` once per script; when nobody watches anything, announcing costs one EXISTS.
local announced = {}
local anyone_watching = nil
local function changed(key)
  if anyone_watching == nil then
    anyone_watching = redis.call('EXISTS', 'ai:watching') == 1
  end
  if anyone_watching and redis.call('ZSCORE', 'ai:watching', key) then
    announced[#announced + 1] = key
  end
end
local function announce()
  if #announced > 0 then
    redis.call('XADD', 'ai:events', 'MAXLEN', '~', 100000, '*', 'k', table.concat(announced, ' '))
  end
end

