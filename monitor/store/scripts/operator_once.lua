-- operator_once.lua: store an operator alert once per key: the once-key and the (unpublished) alert record in one
-- step, so two instances store one alert and a crash cannot leave a claimed key without its alert (the outbox
-- sweep publishes a stored, unpublished one).
--
-- KEYS[1] the once-key, KEYS[2] the alert hash, KEYS[3] the alert index ZSET, KEYS[4] the unpublished ZSET
-- ARGV[1] alert id, ARGV[2] the alert as JSON, ARGV[3] now, ARGV[4] retention (s)
--
-- Reply: 1 stored, 0 an alert was stored for this key already. Use it through monitor.store.alerts.AlertStore.
if not redis.call('SET', KEYS[1], ARGV[1] .. '@' .. ARGV[3], 'NX', 'EX', ARGV[4]) then return 0 end
redis.call('HSET', KEYS[2], 'json', ARGV[2], 'created', ARGV[3], 'base', ARGV[1], 'published', '0')
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[4]))
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
return 1
