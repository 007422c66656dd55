-- host_slots.lua: per-host politeness shared by every instance (monitor/store/hosts.py, monitor/hosts.py).
--
-- KEYS[1]  sorted set of the host's request slots: member = one request's token, score = its lease end (ms)
-- KEYS[2]  the host's hold: "not before" time (ms) set by a Retry-After or a 429
-- ARGV[1]  'acquire' | 'release' | 'hold'
--   acquire ARGV[2] limit, ARGV[3] lease (ms), ARGV[4] token -> {1, 0} taken; {0, ms} full, the earliest lease
--           ends in ms; {-1, ms} the host is held back for ms more
--   release ARGV[2] token                                   -> {1, 0}
--   hold    ARGV[2] delay (ms)                              -> {-1, ms} the hold now in force (never shortened)
--
-- Time is the Redis server's, so instances on hosts with different clocks agree. A slot whose lease ran out (its
-- instance died, or never released it) is dropped before counting: a dead instance cannot keep a slot.
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]

if op == 'release' then
  redis.call('ZREM', KEYS[1], ARGV[2])
  return {1, 0}
end

local hold = tonumber(redis.call('GET', KEYS[2]) or '0')

if op == 'hold' then
  local until_ms = now + tonumber(ARGV[2])
  if until_ms > hold then
    redis.call('SET', KEYS[2], until_ms, 'PX', until_ms - now)
    hold = until_ms
  end
  return {-1, hold - now}
end

if hold > now then
  return {-1, hold - now}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local lease = tonumber(ARGV[3])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], lease)
  return {1, 0}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, math.max(tonumber(first[2]) - now, 1)}
