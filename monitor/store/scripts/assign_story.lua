-- assign_story.lua: put one article in a story cluster (monitor/store/stories.py).
--
-- One script per article, so N instances never split a story: exact check, candidate lookup, verification and the
-- new-story claim happen atomically. Every key is under the {stories} hash tag; the new layout's keys are built here
-- from ARGV[13] (same slot), the old layout's are KEYS (read, never written again).
-- KEYS: 1 old fingerprint key, 2.. old band keys.
-- ARGV: 1 new story id, 2 url, 3 source, 4 signature (binary, 4 bytes a hash value), 5 shingle count, 6 threshold,
-- 7 ttl seconds, 8 old story key prefix, 9 "1" if the fingerprint is usable, 10 now (unix seconds), 11 Jaccard floor,
-- 12 minimum estimated shingles in common, 13 new-layout prefix ("<prefix>{stories}:"), 14 bucket period seconds,
-- 15 fingerprint (16 bytes binary), 16 bytes of hash values in a band, 17.. band fields (binary: the band number,
-- one byte below 256, then the band's hash values).
--
-- New layout (docs/decisions.md, "Story index in hash buckets"):
--   s:<id>            string: '>I4' shingle count, '>I4' creation time, '>I2' signature length, signature, then
--                     every copy as source \31 url \30 (the first copy's url is the story's first url); expires a
--                     retention after its last copy.
--   bn:<p>:<l>:<n>    hash bucket of LSH band values written in period p (now // period) at level l, shard n:
--                     field = the band number and at most 4 bytes of its hash values (never the last byte, the
--                     shard's), value = the story id (8 bytes binary for a 16-hex id). An entry counts only if
--                     the story's signature has the band's whole value (so a value alike in those 40 bits is
--                     passed over, never a candidate in place of the real one); a band is written only where no
--                     entry of that field is live, so a live one is never replaced: a story's band value that
--                     collides with a live other one in its 40 bits (odds ~1e-9 a band) is not indexed, the only
--                     difference from keeping the whole value. Bands are written only when a story is created, so
--                     an entry's write time is its story's creation time: it is live while that story exists, was
--                     created in period p, and less than a retention ago.
--   bk:<p>:<l>:<n>    the same with the band bytes but the last as field (the version before; read until it
--                     expires, one retention after the upgrade, never written; a later version may drop it).
--   fk:<p>:<l>:<n>    the same for exact fingerprints, value '>I4' write time .. story id (latest write wins).
--   bm:<kind>:<p>     bucket meta: lo / hi level, n fields written at level hi.
-- A call reads each period's meta once and applies its writes to the current one once, at the end (level and count
-- kept in the call meanwhile, so a level moves up at the same count as when every band wrote the meta).
-- A bucket key lives a retention after its last write; an entry older than the retention is ignored, so expiry is
-- what one key per band gave. Level l has 256 * 2^l shards, and a period moves to the next level after
-- 80 fields a shard, so a shard stays a small listpack hash (Redis's hash-max-listpack-entries is 128) at any volume;
-- a new period starts at the previous one's top level.
-- Oldest layout (read until it expires): fp:<fp> string, b:<band> strings, story:<id> hash (sig hex or binary, size,
-- first_url) and story:<id>:members list of JSON [source, url]. A story in the old layout is still joined in it.
-- Nothing in the data says when that layout was last written (its keys are never refreshed, but they expire by the
-- retention they were written with), so its band keys are still read, all with one MGET at a call's first band that
-- the buckets do not have; the bk: buckets are read only in a period whose meta is left (one EXISTS a call).
--
-- Reply: {outcome, story id, the story's first url, best similarity}; outcome: exact | near | same_url | new.
local new_id, url, source, sig = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local size, threshold, ttl, old_prefix = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local use_fp, now = ARGV[9] == '1', tonumber(ARGV[10])
local jaccard_floor, min_common = tonumber(ARGV[11]), tonumber(ARGV[12])
local prefix, period, fp_field, band_width = ARGV[13], tonumber(ARGV[14]), ARGV[15], tonumber(ARGV[16])
local BASE_SHARDS, PER_SHARD = 256, 80
local current = math.floor(now / period)
local oldest = math.floor((now - ttl) / period)

-- ids: 16 hex digits (dedup.py: a URL hash's first 16) stored as 8 bytes; any other id as it is
local function pack_id(id)
  if #id == 16 and not string.find(id, '[^0-9a-f]') then
    return struct.pack('>I4I4', tonumber(string.sub(id, 1, 8), 16), tonumber(string.sub(id, 9), 16))
  end
  return id
end

local function unpack_id(raw)
  if #raw == 8 then
    local a, b = struct.unpack('>I4I4', raw)
    return string.format('%08x%08x', a, b)
  end
  return raw
end

-- what of a field a bucket keeps: a band's number and at most 4 bytes of its values (bn), else all but the
-- shard's last byte
local function stored(kind, field)
  if kind == 'bn' then return string.sub(field, 1, #field - band_width + math.min(4, band_width - 1)) end
  return string.sub(field, 1, -2)
end

-- A field's bucket shard is its last 4 bytes' number modulo the level's shard count, a multiple of 256, so a field's
-- last byte is its shard's remainder by 256: the hash field is the value without it (one byte less a band, nothing
-- lost). Per kind and field, computed once a call: {hash = that number, stored = what a bucket keeps, read = the
-- current period's value by level as the lookups read it (false: none)}.
local fields = {bn = {}, bk = {}, fk = {}}
local function about(kind, field)
  local f = fields[kind][field]
  if f == nil then
    local a, b, c, d = string.byte(field, #field - 3, #field)
    f = {hash = ((a * 256 + b) * 256 + c) * 256 + d, stored = stored(kind, field), read = {}}
    fields[kind][field] = f
  end
  return f
end

-- the bucket of a field (from about()) in period p at a level; the key's head and the shard count once a call each
local heads = {bn = {}, bk = {}, fk = {}}
local function bucket(kind, p, level, f)
  local by_level = heads[kind][p]
  if by_level == nil then
    by_level = {}
    heads[kind][p] = by_level
  end
  local head = by_level[level]
  if head == nil then
    head = {prefix .. kind .. ':' .. p .. ':' .. level .. ':', BASE_SHARDS * 2 ^ level}
    by_level[level] = head
  end
  return head[1] .. (f.hash % head[2])
end

-- does the signature `sig` have the band value of the band field `field`?
local function has_band(sig, field)
  local head = #field - band_width
  local number = string.byte(field, 1)
  if head == 2 then number = number * 256 + string.byte(field, 2) end
  return string.sub(sig, number * band_width + 1, (number + 1) * band_width) == string.sub(field, head + 1)
end

-- a period's bucket meta as it was when the call began: HMGET lo hi n, and as numbers .lo .hi .n (n 0 if unset);
-- read once a call (write() keeps its own copy)
local metas = {bn = {}, bk = {}, fk = {}}
local function levels(kind, p)
  local meta = metas[kind][p]
  if meta == nil then
    meta = redis.call('HMGET', prefix .. 'bm:' .. kind .. ':' .. p, 'lo', 'hi', 'n')
    meta.lo, meta.hi, meta.n = tonumber(meta[1]), tonumber(meta[2]), tonumber(meta[3] or '0')
    metas[kind][p] = meta
  end
  return meta
end

-- the bk: buckets (never written) are read only while a meta of theirs is left in the retention: one EXISTS a call
local bk_present = nil
local function any_bk()
  if bk_present == nil then
    local names = {}
    for p = oldest, current do names[#names + 1] = prefix .. 'bm:bk:' .. p end
    bk_present = redis.call('EXISTS', unpack(names)) > 0
  end
  return bk_present
end

-- a story: {size=, sig=, created=, record=, body= (new layout)} or {size=, sig=, old=true}; false for none
local stories = {}
local function load(id)
  if stories[id] ~= nil then return stories[id] end
  local found = false
  local rec = redis.call('GET', prefix .. 's:' .. id)
  if rec then
    local n, created, len = struct.unpack('>I4I4I2', rec)
    found = {size = n, created = created, sig = string.sub(rec, 11, 10 + len), record = rec, body = 11 + len}
  else
    local stored = redis.call('HMGET', old_prefix .. id, 'sig', 'size')
    if stored[1] then found = {size = tonumber(stored[2]), sig = stored[1], old = true} end
  end
  stories[id] = found
  return found
end

-- is the entry `v` found in period `p` of the buckets of `kind` live? (its story id, or nil); with `field`, a bn
-- entry counts only if its story has that band's value
local function live(kind, v, p, field)
  if kind == 'fk' then
    if now - struct.unpack('>I4', v) < ttl then return unpack_id(string.sub(v, 5)) end
    return nil
  end
  local id = unpack_id(v)
  local story = load(id)
  if story and story.created and math.floor(story.created / period) == p and now - story.created < ttl
      and not (field and not has_band(story.sig, field)) then
    return id
  end
  return nil
end

-- the live story id under `field` in the buckets of `kind`, nil for none; newest first if `newest`
local function lookup(kind, field, newest)
  if kind == 'bk' and not any_bk() then return nil end
  local f = about(kind, field)
  local first, last, step = oldest, current, 1
  if newest then first, last, step = current, oldest, -1 end
  for p = first, last, step do
    local meta = levels(kind, p)
    if meta[1] then
      local l0, l1, ls = meta.lo, meta.hi, 1
      if newest then l0, l1, ls = meta.hi, meta.lo, -1 end
      for level = l0, l1, ls do
        local v = redis.call('HGET', bucket(kind, p, level, f), f.stored)
        if p == current then f.read[level] = v end  -- write() checks its field from here: nothing else writes it
        local id = v and live(kind, v, p, kind == 'bn' and field)
        if id then return id end
      end
    end
  end
  return nil
end

-- Writes of one kind in this call, applied to its meta once at the end (finish): the level and count are kept here,
-- band by band, so a roll-over happens at the same count as if the meta were written at every band.
local writes, packed = {}, {}
local function write(kind, field, id)
  local w = writes[kind]
  if w == nil then
    local meta = levels(kind, current)
    w = {hi = meta.hi, n = meta.n, added = 0, keys = {}, order = {}}
    if not w.hi then
      w.hi = tonumber(levels(kind, current - 1)[2] or '0')
      w.lo, w.n, w.set = w.hi, 0, true
    end
    w.limit = PER_SHARD * BASE_SHARDS * 2 ^ w.hi
    writes[kind] = w
  end
  if w.n >= w.limit then
    w.hi, w.n, w.added, w.set = w.hi + 1, 0, 0, true
    w.limit = PER_SHARD * BASE_SHARDS * 2 ^ w.hi
  end
  local f = about(kind, field)
  local key = bucket(kind, current, w.hi, f)
  if kind == 'bn' then  -- a live entry of another value alike in the kept bytes stays (see the header)
    local there = f.read[w.hi]
    if there == nil then there = redis.call('HGET', key, f.stored) end
    if there and live(kind, there, current) then return end
  end
  local value = packed[id]
  if value == nil then
    value = pack_id(id)
    packed[id] = value
  end
  if kind == 'fk' then value = struct.pack('>I4', now) .. value end
  if redis.call('HSET', key, f.stored, value) == 1 then
    w.n, w.added = w.n + 1, w.added + 1
  end
  if not w.keys[key] then
    w.keys[key] = true
    w.order[#w.order + 1] = key
  end
end

-- the writes' meta (lo / hi / n as the band-by-band updates would leave them) and expiry: each bucket written and
-- the meta once, as every write did before
local function finish(reply)
  for _, kind in ipairs({'bn', 'fk'}) do
    local w = writes[kind]
    if w then
      local meta_key = prefix .. 'bm:' .. kind .. ':' .. current
      if w.lo then
        redis.call('HSET', meta_key, 'lo', w.lo, 'hi', w.hi, 'n', w.n)
      elseif w.set then
        redis.call('HSET', meta_key, 'hi', w.hi, 'n', w.n)
      elseif w.added > 0 then
        redis.call('HINCRBY', meta_key, 'n', w.added)
      end
      for _, key in ipairs(w.order) do redis.call('EXPIRE', key, ttl) end
      if #w.order > 0 then redis.call('EXPIRE', meta_key, ttl) end
    end
  end
  return reply
end

local function old_is_member(key)
  for _, member in ipairs(redis.call('LRANGE', key .. ':members', 0, -1)) do
    if cjson.decode(member)[2] == url then return true end
  end
  return false
end

local function join(id, story)
  if use_fp then write('fk', fp_field, id) end
  if story.old then
    local key = old_prefix .. id
    if not old_is_member(key) then redis.call('RPUSH', key .. ':members', cjson.encode({source, url})) end
    for _, k in ipairs({key, key .. ':members'}) do redis.call('EXPIRE', k, ttl) end
    return redis.call('HGET', key, 'first_url') or url
  end
  local key, rec = prefix .. 's:' .. id, story.record
  if not string.find(rec, '\31' .. url .. '\30', story.body, true) then
    -- SET, not APPEND: an appended string keeps as much room again for growth (~600 bytes a story)
    rec = rec .. source .. '\31' .. url .. '\30'
    redis.call('SET', key, rec, 'EX', ttl)
  else
    redis.call('EXPIRE', key, ttl)
  end
  local body = string.sub(rec, story.body)
  local sep = string.find(body, '\31', 1, true)
  local stop = string.find(body, '\30', 1, true)
  if sep and stop then return string.sub(body, sep + 1, stop - 1) end
  return url
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
  local known = lookup('fk', fp_field, true) or redis.call('GET', KEYS[1])
  if known then
    local story = load(known)
    if story then return finish({'exact', known, join(known, story), '1'}) end
  end
end

-- the old layout's band keys, read with one MGET at the first band the buckets do not have
local best_id, best, best_story, seen, taken, old_bands = nil, 0, nil, {}, {}, nil
for i = 17, #ARGV do
  local cand = lookup('bn', ARGV[i], false) or lookup('bk', ARGV[i], false)
  if not cand then
    if not old_bands then old_bands = redis.call('MGET', unpack(KEYS, 2)) end
    cand = old_bands[i - 16]
  end
  if cand then
    taken[i] = true
    if not seen[cand] then
      seen[cand] = true
      local story = load(cand)
      if story then
        local sim, j, common = similarity(story.sig, story.size)
        if sim > best and j >= jaccard_floor and common >= min_common then
          best_id, best, best_story = cand, sim, story
        end
      end
    end
  end
end
if best_id and best >= threshold then
  return finish({'near', best_id, join(best_id, best_story), tostring(best)})
end

-- The same URL seen before with other content (an edited article) stays in its story.
local mine = load(new_id)
if mine then
  return finish({'same_url', new_id, join(new_id, mine), tostring(best)})
end
for i = 17, #ARGV do
  if not taken[i] then write('bn', ARGV[i], new_id) end
end
local record = struct.pack('>I4I4I2', size, now, #sig) .. sig
return finish({'new', new_id, join(new_id, {record = record, body = 11 + #sig}), tostring(best)})
