-- posray capture: one atomic step per batch of documents for one shard.
-- KEYS[1] = shard sequence counter, KEYS[2] = shard stream, KEYS[3] = recorded height (set by
--           the ledger), KEYS[4] = the shard's fence "epoch:reserved_seq" (set from the ledger),
--           KEYS[5..] = one idempotency key per document,
--           "(prefix):{shard}:idem:(terminal_id):(counter)"
-- ARGV[1] = accepted_at_ms, ARGV[2] = idempotency ttl (s), ARGV[3] = backlog max (documents),
-- ARGV[4] = the fence epoch the caller established,
-- ARGV[5] = 1 when the caller waits for replication (WAITAOF) after the call: a call that writes
--           no new document then rewrites the counter unchanged, so that its connection's
--           replication offset covers the earlier writes of the documents it resends,
-- ARGV[4+2i], ARGV[5+2i] = document i's SHA-256 (32 raw bytes) and canonical bytes
-- Idempotency value: the 32-byte hash, then "seq:accepted_at_ms".
-- The new documents of the call become ONE stream entry, id "(first seq)-0", fields
-- s = first seq, n = count, t = accepted_at_ms, e = fence epoch, d = canonical documents
-- joined by "\n" (canonical JSON never contains a raw newline).
-- Returns a flat array: per document {status, seq, accepted_at_ms}, status 0 = new,
-- 1 = the same document again, 2 = a different document under the same counter;
-- or {-1, backlog} when the backlog would exceed its bound, {-2, reason} when the store is not
-- fenced with the caller's epoch (flushed, restored, failed over, fenced by another writer),
-- {-3, reserved_seq} when the new documents would pass the sequences reserved in the ledger.
-- Every check that can refuse the call comes before the first write: Lua does not roll back.
-- A refused call writes nothing, so the caller may re-fence or extend and call again.
local HASH_BYTES = 32  -- an idempotency value starts with the document's raw SHA-256
local fence = redis.call('GET', KEYS[4])
if not fence then
  return {-2, 'missing'}
end
local epoch, reserved = string.match(fence, '^(%d+):(%d+)$')
if epoch ~= ARGV[4] then
  return {-2, 'epoch ' .. tostring(epoch)}
end
local n = #KEYS - 4
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local backlog = seq - tonumber(redis.call('GET', KEYS[3]) or '0')
if backlog + n > tonumber(ARGV[3]) then
  return {-1, backlog}
end
if seq + n > tonumber(reserved) then
  return {-3, reserved}
end
local acc, ttl = ARGV[1], ARGV[2]
local first = seq + 1
local out, docs = {}, {}
for i = 1, n do
  local h = ARGV[4 + 2 * i]
  local value = h .. string.format('%d', seq + 1) .. ':' .. acc
  -- SET NX GET: writes only when the key is new, and returns the earlier value otherwise.
  local prior = redis.call('SET', KEYS[4 + i], value, 'NX', 'GET', 'EX', ttl)
  if prior then
    local pseq, pacc = string.match(string.sub(prior, HASH_BYTES + 1), '^(%d+):(%d+)$')
    out[#out + 1] = (string.sub(prior, 1, HASH_BYTES) == h) and 1 or 2
    out[#out + 1] = pseq
    out[#out + 1] = pacc
  else
    seq = seq + 1
    docs[#docs + 1] = ARGV[5 + 2 * i]
    out[#out + 1] = 0
    out[#out + 1] = seq
    out[#out + 1] = acc
  end
end
if #docs > 0 then
  redis.call('SET', KEYS[1], seq)
  redis.call('XADD', KEYS[2], string.format('%d', first) .. '-0',
             's', first, 'n', #docs, 't', acc, 'e', ARGV[4], 'd', table.concat(docs, '\n'))
elseif ARGV[5] == '1' then
  redis.call('SET', KEYS[1], seq)
end
return out
