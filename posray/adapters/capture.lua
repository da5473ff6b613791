-- posray capture: one atomic step per batch of documents for one shard.
-- KEYS[1] = shard sequence counter, KEYS[2] = shard stream, KEYS[3..] = one idempotency key
--           per document, "(prefix):{shard}:idem:(terminal_id):(counter)"
-- ARGV[1] = accepted_at_ms, ARGV[2] = idempotency ttl (s), ARGV[3] = stream backlog max,
-- ARGV[2+2i], ARGV[3+2i] = document i's hash (hex) and canonical bytes
-- Returns a flat array: per document {status, seq, accepted_at_ms}, status 0 = new,
-- 1 = the same document again, 2 = a different document under the same counter;
-- or {-1, backlog} when the stream is full (nothing written).
-- Every check happens before the first write: Lua scripts do not roll back.
local n = #KEYS - 2
local backlog = redis.call('XLEN', KEYS[2])
if backlog + n > tonumber(ARGV[3]) then
  return {-1, backlog}
end
local out = {}
for i = 1, n do
  local h = ARGV[2 + 2 * i]
  local prior = redis.call('GET', KEYS[2 + i])
  if prior then
    local seq, acc, ph = string.match(prior, '^(%d+):(%d+):(%x+)$')
    if ph == h then
      out[#out + 1] = 1
    else
      out[#out + 1] = 2
    end
    out[#out + 1] = seq
    out[#out + 1] = acc
  else
    local seq = redis.call('INCR', KEYS[1])
    redis.call('SET', KEYS[2 + i], seq .. ':' .. ARGV[1] .. ':' .. h, 'EX', ARGV[2])
    redis.call('XADD', KEYS[2], seq .. '-0', 's', seq, 't', ARGV[1], 'h', h, 'd', ARGV[3 + 2 * i])
    out[#out + 1] = 0
    out[#out + 1] = tostring(seq)
    out[#out + 1] = ARGV[1]
  end
end
return out
