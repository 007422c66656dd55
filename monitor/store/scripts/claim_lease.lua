-- claim_lease.lua: take the due members of a sorted set and lease them, atomically (no two claimers share one).
--
-- KEYS[1]  sorted set: member = an item (a feed id, an alert id), score = when it is due; while leased, when the
--          lease ends: a claimer that dies without finishing gives its items back by itself then
-- KEYS[2]  optional guard: a string key that must exist for anything to be claimed (the feed schedule's marker)
-- ARGV[1]  now, in the scores' unit (unix seconds)
-- ARGV[2]  lease: every item taken is re-scored now + lease
-- ARGV[3]  count: at most this many items, lowest scores first
-- ARGV[4]  optional: a guard value that claims nothing either ('' or absent: none), e.g. 'rebuilding'
-- ARGV[5..] optional: claim these members instead of the due ones, whatever their score (those not in the set are
--          skipped: an item removed from the set stays out); at most count of them, in the order given
--
-- Reply: {guard, item, item, ...}. guard: KEYS[2]'s value; '' when KEYS[2] is missing (nothing claimed: the data
-- it guards is gone); '*' when no guard key was given. Only members already in the set are re-scored (ZADD XX).
-- Use it through monitor.store.scripts.LeaseClaim, which returns (guard, items).
local guard = '*'
if #KEYS >= 2 then
  guard = redis.call('GET', KEYS[2])
  if not guard then return {''} end
  if ARGV[4] and ARGV[4] ~= '' and guard == ARGV[4] then return {guard} end
end
local now, count = tonumber(ARGV[1]), tonumber(ARGV[3])
local until_score = now + tonumber(ARGV[2])
local ids
if #ARGV >= 5 then
  ids = {}
  for i = 5, #ARGV do
    if #ids >= count then break end
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then table.insert(ids, ARGV[i]) end
  end
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, count)
end
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], 'XX', until_score, id)
end
table.insert(ids, 1, guard)
return ids
