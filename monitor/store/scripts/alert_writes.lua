-- alert_writes.lua: the writes of one alert transaction, applied at once (monitor/store/alerts.py, AlertWrites).
--
-- What a MULTI of the same commands did, in one command instead of the MULTI, each command and the EXEC (a client
-- costs about as much per command in a pipeline as Redis does for the whole script). Atomic as a script is; a
-- server out of memory refuses the first write, so none is applied, as it refused the MULTI.
--
-- KEYS: every key the writes touch (all in the {alerts} Cluster slot).
-- ARGV: the writes one after the other, each as: how many items follow, the command, its key's index in KEYS,
-- then its arguments (as the client would have sent them).
--
-- Reply: how many writes were applied.
local i, done = 1, 0
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local command = {ARGV[i + 1], KEYS[tonumber(ARGV[i + 2])]}
  for j = i + 3, i + n do command[#command + 1] = ARGV[j] end
  redis.call(unpack(command))
  done = done + 1
  i = i + n + 1
end
return done
