-- take_digest.lua: take a channel's held list into a new open digest if its time has come (safe on several
-- instances: the first takes it, the others find nothing).
--
-- KEYS[1] the channel's held LIST, KEYS[2] its held-due time, KEYS[3] the digest sequence, KEYS[4] the SET of open
-- digests ("channel\tdigest id")
-- ARGV[1] now, ARGV[2] channel, ARGV[3] the key prefix of a digest's item LIST (the digest id is appended)
--
-- Reply: the new digest id, or false (not due, or nothing held). Use it through monitor.store.alerts.AlertStore.
local due = redis.call('GET', KEYS[2])
if not due or tonumber(due) > tonumber(ARGV[1]) then return false end
redis.call('DEL', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local digest = ARGV[2] .. '-' .. redis.call('INCR', KEYS[3])
redis.call('RENAME', KEYS[1], ARGV[3] .. digest)
redis.call('SADD', KEYS[4], ARGV[2] .. '\t' .. digest)
return digest
