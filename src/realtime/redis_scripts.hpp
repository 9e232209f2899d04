// redis_scripts.hpp — private: the Lua scripts of the Redis broker. Each
// runs atomically in Redis, so a channel's epoch, offset, stream and
// pub/sub message can never disagree.
//
// Keys of channel C (P is the key prefix): P m:C a hash {e: epoch, o: last
// offset}; P s:C the stream, entry id "<offset>-0" with fields t (Redis
// time, ms) and d (the publication tail); P p:C a sorted set of presence
// entries (JSON) scored by lease expiry (ms); P c:C the pub/sub channel.
// Pub/sub payloads: "m<epoch> <offset> <tail>", "M<epoch> <first offset>
// <length>:<tail>…" (several publications of one call, redis_packed.hpp),
// "j<entry json>", "l<entry json>".
#pragma once

namespace switchboard::realtime::detail::redis_scripts {

// A missing epoch is a lost stream: a fresh epoch (ARGV new_epoch), offset
// 0 and no stream, so an offset is never reused for different data.
#define SWITCHBOARD_REDIS_EPOCH                                   \
  "local e = redis.call('HGET', KEYS[1], 'e')\n"                  \
  "local top = 0\n"                                               \
  "if not e then\n"                                               \
  "  e = ARGV[1]\n"                                               \
  "  redis.call('DEL', KEYS[2])\n"                                \
  "  redis.call('HSET', KEYS[1], 'e', e, 'o', 0)\n"               \
  "else\n"                                                        \
  "  top = tonumber(redis.call('HGET', KEYS[1], 'o'))\n"          \
  "end\n"                                                         \
  "local function now_ms()\n"                                     \
  "  local t = redis.call('TIME')\n"                              \
  "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" \
  "end\n"

// Publications, several per call (every publication the node has for this
// shard in one loop iteration: one script call's fixed cost, ~23,000
// instructions of Redis, is shared), grouped by channel so that a channel's
// own work is done once per call: one HGET and one HINCRBY by n, the
// PEXPIREs once, one PUBLISH carrying all n (the packed form "M…" of
// redis_packed.hpp; the single form "m…" when n is 1). KEYS: meta, stream,
// pub/sub channel of each channel in turn. ARGV[1]: new_epoch, then per
// channel: n, history size, stream ttl ms (0: none), meta ttl ms, then its n
// tails in order. Returns {epoch1, first offset1, epoch2, first offset2, …}
// per channel: its publications have offsets first, first + 1, …. The stream
// is trimmed with MAXLEN ~ (whole nodes of entries, about half the cost of an
// exact trim per XADD), so it may hold more than the history size: the read
// script counts only the last `history size` offsets as kept.
inline constexpr const char* k_publish =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local out = {}\n"
    "local a = 2\n"
    "for i = 0, #KEYS / 3 - 1 do\n"
    "  local km, ks, kc = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]\n"
    "  local n, size, ttl, mttl = tonumber(ARGV[a]), tonumber(ARGV[a + 1]),\n"
    "                             tonumber(ARGV[a + 2]), ARGV[a + 3]\n"
    "  a = a + 4\n"
    "  local e = redis.call('HGET', km, 'e')\n"
    "  if not e then\n"
    "    e = ARGV[1]\n"
    "    redis.call('DEL', ks)\n"
    "    redis.call('HSET', km, 'e', e, 'o', 0)\n"
    "  end\n"
    "  local first = redis.call('HINCRBY', km, 'o', n) - n + 1\n"
    "  if size > 0 then\n"
    "    for j = 0, n - 1 do\n"
    "      redis.call('XADD', ks, 'MAXLEN', '~', size, string.format('%d-0', first + j),\n"
    "                 't', now, 'd', ARGV[a + j])\n"
    "    end\n"
    "    if ttl > 0 then redis.call('PEXPIRE', ks, ttl) else redis.call('PEXPIRE', ks, mttl) end\n"
    "  end\n"
    "  redis.call('PEXPIRE', km, mttl)\n"
    "  local head = e .. ' ' .. string.format('%d', first) .. ' '\n"
    "  if n == 1 then\n"
    "    redis.call('PUBLISH', kc, 'm' .. head .. ARGV[a])\n"
    "  else\n"
    "    local parts = {'M', head}\n"
    "    for j = 0, n - 1 do\n"
    "      local d = ARGV[a + j]\n"
    "      parts[#parts + 1] = #d .. ':'\n"
    "      parts[#parts + 1] = d\n"
    "    end\n"
    "    redis.call('PUBLISH', kc, table.concat(parts))\n"
    "  end\n"
    "  out[i * 2 + 1] = e\n"
    "  out[i * 2 + 2] = first\n"
    "  a = a + n\n"
    "end\n"
    "return out\n";

// KEYS: meta, stream. ARGV: new_epoch, has_since (0/1), since epoch, since
// offset, limit (0: all), ttl ms (0: none), latest_when_lost (0/1), meta
// ttl ms, history size (kept: the last this many offsets, of what the
// stream still holds). Returns {epoch, top, reason ("" = recovered or no since),
// id1, tail1, id2, tail2, …} oldest first. The same rules as the memory
// broker: recovery only inside one epoch, not ahead of the stream, and
// while everything after `since` is kept.
inline constexpr const char* k_read = SWITCHBOARD_REDIS_EPOCH
    "redis.call('PEXPIRE', KEYS[1], ARGV[8])\n"
    "local ttl = tonumber(ARGV[6])\n"
    "if ttl > 0 then\n"
    "  local now = now_ms()\n"
    "  while true do\n"
    "    local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)\n"
    "    if #first == 0 or tonumber(first[1][2][2]) + ttl > now then break end\n"
    "    redis.call('XDEL', KEYS[2], first[1][1])\n"
    "  end\n"
    "end\n"
    "local first_kept = top + 1\n"
    "local head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)\n"
    "if #head > 0 then first_kept = tonumber(string.match(head[1][1], '^%d+')) end\n"
    "local size = tonumber(ARGV[9])\n"
    "if top - size + 1 > first_kept then first_kept = top - size + 1 end\n"
    "local out = {e, top, ''}\n"
    "local from = nil\n"
    "if ARGV[2] == '1' then\n"
    "  local so = tonumber(ARGV[4])\n"
    "  local reason = ''\n"
    "  if ARGV[3] ~= e then reason = 'epoch changed'\n"
    "  elseif so > top then reason = 'offset ahead of the stream'\n"
    "  elseif so + 1 < first_kept then reason = 'too far behind' end\n"
    "  out[3] = reason\n"
    "  if reason == '' then from = so\n"
    "  elseif ARGV[7] ~= '1' then return out end\n"
    "end\n"
    "local limit = tonumber(ARGV[5])\n"
    "local kept = top - first_kept + 1\n"
    "if from then kept = top - from end\n"
    "if limit == 0 or limit > kept then limit = kept end\n"
    "if limit <= 0 then return out end\n"
    "local entries\n"
    "if from then\n"
    "  local start = '(' .. string.format('%d', from) .. '-0'\n"
    "  entries = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', limit)\n"
    "  for i = 1, #entries do\n"
    "    out[#out + 1] = entries[i][1]; out[#out + 1] = entries[i][2][4]\n"
    "  end\n"
    "else\n"
    "  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', limit)\n"
    "  for i = #entries, 1, -1 do\n"
    "    out[#out + 1] = entries[i][1]; out[#out + 1] = entries[i][2][4]\n"
    "  end\n"
    "end\n"
    "return out\n";

#undef SWITCHBOARD_REDIS_EPOCH

// KEYS: presence set, pub/sub channel. ARGV: mode (add | remove | refresh |
// list), lease ms, entries…. Entries whose lease ran out (their node died)
// leave first, with a leave push. add: (re)lease, join push. refresh:
// (re)lease; an entry that was missing (Redis lost it) joins again. remove:
// leave push if it was there. list: returns the entries. count: returns how
// many there are (the per-tick count of a presence push: no entry crosses
// the network).
inline constexpr const char* k_presence =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "for _, j in ipairs(gone) do\n"
    "  redis.call('ZREM', KEYS[1], j)\n"
    "  redis.call('PUBLISH', KEYS[2], 'l' .. j)\n"
    "end\n"
    "local mode = ARGV[1]\n"
    "local lease = tonumber(ARGV[2])\n"
    "if mode == 'list' then return redis.call('ZRANGE', KEYS[1], 0, -1) end\n"
    "if mode == 'count' then return redis.call('ZCARD', KEYS[1]) end\n"
    "for i = 3, #ARGV do\n"
    "  if mode == 'remove' then\n"
    "    if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then\n"
    "      redis.call('PUBLISH', KEYS[2], 'l' .. ARGV[i])\n"
    "    end\n"
    "  else\n"
    "    local added = redis.call('ZADD', KEYS[1], now + lease, ARGV[i])\n"
    "    if mode == 'add' or added == 1 then redis.call('PUBLISH', KEYS[2], 'j' .. ARGV[i]) end\n"
    "  end\n"
    "end\n"
    "if redis.call('ZCARD', KEYS[1]) > 0 then redis.call('PEXPIRE', KEYS[1], lease * 2) end\n"
    "return 0\n";

}  // namespace switchboard::realtime::detail::redis_scripts
