-- route_send.lua: route an alert to a channel for sending now, unless (alert, channel) already has a record; the
-- throttle gate is part of the same script, so a crash cannot consume a throttle window without recording the alert.
--
-- KEYS[1] the alert's deliveries hash (channel -> JSON state)
-- KEYS[2] the channel's due ZSET (alert id -> when to send)
-- KEYS[3] the channel's throttle hash for the alert's rule (until, count)
-- ARGV[1] channel, ARGV[2] alert id, ARGV[3] now, ARGV[4] throttle window in seconds (0: none), ARGV[5] retention (s)
--
-- Reply: {1, suppressed} queued (suppressed: how many the window held back before) | {0, count} throttled |
-- {-1, 0} the alert already has a record for the channel. Use it through monitor.store.alerts.AlertStore.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {-1, 0} end
local now = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local suppressed = 0
if window > 0 then
  local untl = tonumber(redis.call('HGET', KEYS[3], 'until') or '0')
  if now < untl then
    local c = redis.call('HINCRBY', KEYS[3], 'count', 1)
    redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({status='throttled', at=now, window_ends=untl}))
    redis.call('EXPIRE', KEYS[1], ARGV[5])
    return {0, c}
  end
  suppressed = tonumber(redis.call('HGET', KEYS[3], 'count') or '0')
  redis.call('HSET', KEYS[3], 'until', ARGV[3] + window, 'count', 0)
  redis.call('EXPIRE', KEYS[3], math.ceil(window) + 86400)
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({status='queued', attempts=0, first_at=now, suppressed=suppressed}))
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], now, ARGV[2])
return {1, suppressed}
