-- posray capture: one atomic step per batch of documents for one shard.
-- KEYS[1] = shard sequence counter, KEYS[2] = shard stream, KEYS[3] = recorded height (set by
--           the ledger), KEYS[4..] = one idempotency key per document,
--           "(prefix):{shard}:idem:(terminal_id):(counter)"
-- ARGV[1] = accepted_at_ms, ARGV[2] = idempotency ttl (s), ARGV[3] = backlog max (documents),
-- ARGV[2+2i], ARGV[3+2i] = document i's SHA-256 (32 raw bytes) and canonical bytes
-- Idempotency value: the 32-byte hash, then "seq:accepted_at_ms".
-- The new documents of the call become ONE stream entry, id "(first seq)-0", fields
-- s = first seq, n = count, t = accepted_at_ms, d = canonical documents joined by "\n"
-- (canonical JSON never contains a raw newline).
-- Returns a flat array: per document {status, seq, accepted_at_ms}, status 0 = new,
-- 1 = the same document again, 2 = a different document under the same counter;
-- or {-1, backlog} when the backlog would exceed its bound (nothing written).
-- The only check that can refuse the call comes before the first write: Lua does not roll back.
local n = #KEYS - 3
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local backlog = seq - tonumber(redis.call('GET', KEYS[3]) or '0')
if backlog + n > tonumber(ARGV[3]) then
  return {-1, backlog}
end
local acc, ttl = ARGV[1], ARGV[2]
local first = seq + 1
local out, docs = {}, {}
for i = 1, n do
  local h = ARGV[2 + 2 * i]
  local value = h .. string.format('%d', seq + 1) .. ':' .. acc
  -- SET NX GET: writes only when the key is new, and returns the earlier value otherwise.
  local prior = redis.call('SET', KEYS[3 + i], value, 'NX', 'GET', 'EX', ttl)
  if prior then
    local pseq, pacc = string.match(string.sub(prior, 33), '^(%d+):(%d+)$')
    out[#out + 1] = (string.sub(prior, 1, 32) == h) and 1 or 2
    out[#out + 1] = pseq
    out[#out + 1] = pacc
  else
    seq = seq + 1
    docs[#docs + 1] = ARGV[3 + 2 * i]
    out[#out + 1] = 0
    out[#out + 1] = seq
    out[#out + 1] = acc
  end
end
if #docs > 0 then
  redis.call('SET', KEYS[1], seq)
  redis.call('XADD', KEYS[2], string.format('%d', first) .. '-0',
             's', first, 'n', #docs, 't', acc, 'd', table.concat(docs, '\n'))
end
return out
