-- Sets a flowpipe flow record's time from its time_received_ns field:
-- nanoseconds since the Unix epoch (UTC), read as text from the raw line
-- so that no digit is lost to floating point.
function flowpipe_time(tag, timestamp, record)
  local line = record["log"]
  if type(line) ~= "string" then
    return 0, timestamp, record
  end
  local ns = string.match(line, '"time_received_ns":(%d+)')
  if ns == nil or #ns < 10 then
    return 0, timestamp, record
  end
  local sec = tonumber(string.sub(ns, 1, -10))
  local nsec = tonumber(string.sub(ns, -9))
  return 1, { sec = sec, nsec = nsec }, record
end
