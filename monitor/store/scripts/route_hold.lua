-- route_hold.lua: hold an alert for the channel's next digest (digest window or quiet hours), unless (alert,
-- channel) already has a record.
--
-- KEYS[1] the alert's deliveries hash, KEYS[2] the channel's held LIST, KEYS[3] the channel's held-due time
-- ARGV[1] channel, ARGV[2] alert id, ARGV[3] now, ARGV[4] when the held list goes out (set if not set),
-- ARGV[5] retention (s), ARGV[6] reason ("digest" | "quiet hours")
--
-- Reply: 1 held, 0 the alert already has a record. Use it through monitor.store.alerts.AlertStore.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({status='held', reason=ARGV[6], at=tonumber(ARGV[3])}))
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[4], 'NX')
return 1
