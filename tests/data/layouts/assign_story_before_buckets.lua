-- assign_story.lua: put one article in a story cluster (monitor/store/stories.py).
--
-- One script per article, so N instances never split a story: exact check, candidate lookup, verification and the
-- new-story claim happen atomically. Candidate story keys are built from ARGV (same {stories} hash slot).
-- KEYS: 1 fingerprint, 2.. band keys.  ARGV: 1 new story id, 2 url, 3 source, 4 signature (binary, 4 bytes a hash
-- value), 5 shingle count, 6 threshold, 7 ttl seconds, 8 story key prefix, 9 "1" if the fingerprint is usable,
-- 10 unused (was the creation time, which nothing read), 11 Jaccard floor, 12 minimum estimated shingles in common.
-- Stories written before signatures were binary hold them in hex (twice as long): read as such until they expire.
-- Their ':urls' sets are no longer written or read (the members list says who is in); they expire with the story.
--
-- Reply: {outcome, story id, the story's first url, best similarity}; outcome: exact | near | same_url | new.
local new_id, url, source, sig = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local size, threshold, ttl, prefix = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local use_fp, jaccard_floor, min_common = ARGV[9] == '1', tonumber(ARGV[11]), tonumber(ARGV[12])

local function is_member(key)
  for _, member in ipairs(redis.call('LRANGE', key .. ':members', 0, -1)) do
    if cjson.decode(member)[2] == url then return true end
  end
  return false
end

local function join(id)
  local key = prefix .. id
  if not is_member(key) then
    redis.call('RPUSH', key .. ':members', cjson.encode({source, url}))
  end
  for _, k in ipairs({key, key .. ':members'}) do redis.call('EXPIRE', k, ttl) end
  if use_fp then redis.call('SET', KEYS[1], id, 'EX', ttl) end
  return redis.call('HGET', key, 'first_url') or url
end

local function unhex(text)
  return (string.gsub(text, '..', function(pair) return string.char(tonumber(pair, 16)) end))
end

local function similarity(other, other_size)
  local n = #sig / 4
  if #other == 2 * #sig then other = unhex(other) end
  if #other ~= #sig or n == 0 or size == 0 or other_size == 0 then return 0, 0 end
  local same = 0
  for i = 0, n - 1 do
    if string.sub(sig, i * 4 + 1, i * 4 + 4) == string.sub(other, i * 4 + 1, i * 4 + 4) then same = same + 1 end
  end
  local j = same / n
  local common = j * (size + other_size) / (1 + j)
  return math.min(1, common / math.min(size, other_size)), j, common
end

if use_fp then
  local known = redis.call('GET', KEYS[1])
  if known and redis.call('EXISTS', prefix .. known) == 1 then
    return {'exact', known, join(known), '1'}
  end
end

local best_id, best, seen = nil, 0, {}
for i = 2, #KEYS do
  local cand = redis.call('GET', KEYS[i])
  if cand and not seen[cand] then
    seen[cand] = true
    local stored = redis.call('HMGET', prefix .. cand, 'sig', 'size')
    if stored[1] then
      local sim, j, common = similarity(stored[1], tonumber(stored[2]))
      if sim > best and j >= jaccard_floor and common >= min_common then best_id, best = cand, sim end
    end
  end
end
if best_id and best >= threshold then
  return {'near', best_id, join(best_id), tostring(best)}
end

-- The same URL seen before with other content (an edited article) stays in its story.
if redis.call('EXISTS', prefix .. new_id) == 1 then
  return {'same_url', new_id, join(new_id), tostring(best)}
end
redis.call('HSET', prefix .. new_id, 'sig', sig, 'size', size, 'first_url', url)
for i = 2, #KEYS do redis.call('SET', KEYS[i], new_id, 'NX', 'EX', ttl) end
return {'new', new_id, join(new_id), tostring(best)}
