//! The Lua scripts: one atomic script per operation, run on the master of the feed's slot.
//!
//! Every script receives the feed's 11 keys in the order of [`super::keys::FeedKeys::all`]
//! and four common arguments, then its own:
//!
//! | `ARGV` | meaning |
//! |--------|---------|
//! | 1 | the first sequence of a feed created now (the clock's now in Unix milliseconds) |
//! | 2 | now, as time text |
//! | 3 | now minus `expiry_log_retention`, as time text: expirations at or before it are forgotten |
//! | 4 | `expiry_log_retention` in milliseconds (for key TTLs) |
//!
//! Time comes only from the caller (the store's injected clock), never from Redis `TIME`, so
//! expiry is exact and testable. Lua numbers are doubles, so times are compared as time text
//! (strings) and sequences stay below 2^53 (they start at the Unix time in milliseconds).
//!
//! Mutating scripts first reclaim the feed's expired notifications (moving them to the expiry
//! log), so the live structures hold only live notifications when the mutation runs, and end
//! by setting every key's TTL to the feed's latest expiration plus the retention plus one
//! minute: a feed nobody writes to vanishes on its own once nothing in it can matter.
//!
//! A feed is created (its `meta` hash written) by its first append or `changes` call: it starts
//! at sequence ARGV\[1\] with its expirations forgotten through its creation, so a change token
//! of an earlier incarnation of the feed (one whose keys expired) is stale, never misread.

use redis::Script;

/// Shared definitions and helpers, prepended to every script.
const PRELUDE: &str = r#"
local META, NOTES, INDEX, POSITIONS, CHANGED, REMOVALS, APPS, GROUPS, EXPIRING, EXPIRED, UNREAD =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local BASE, NOW, CUTOFF, RETENTION_MS = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])

-- Creates the feed when it does not exist; returns whether it did.
local function ensure_meta()
  if redis.call('HEXISTS', META, 'seq') == 0 then
    redis.call('HSET', META, 'seq', BASE, 'frr', '0', 'fet', NOW, 'maxexp', NOW)
    return true
  end
  return false
end

local function next_seq()
  return redis.call('HINCRBY', META, 'seq', 1)
end

-- Removes a stored notification from every structure; returns its expiration text and its
-- sealed size, or nil when there is no such notification.
local function unlink(id)
  local rec = redis.call('HGET', INDEX, id)
  if not rec then return nil end
  local exp = string.sub(rec, 1, 20)
  local glen = tonumber(string.sub(rec, 21, 28))
  local gm = string.sub(rec, 29, 28 + glen)
  local app = string.sub(rec, 29 + glen)
  local size = redis.call('HSTRLEN', NOTES, id)
  redis.call('HDEL', NOTES, id)
  redis.call('HDEL', INDEX, id)
  redis.call('ZREM', POSITIONS, id)
  redis.call('ZREM', CHANGED, id)
  redis.call('SREM', UNREAD, id)
  if redis.call('HGET', APPS, app) == id then redis.call('HDEL', APPS, app) end
  if glen > 0 then redis.call('ZREM', GROUPS, gm .. id) end
  redis.call('ZREM', EXPIRING, exp .. id)
  return exp, size
end

-- Forgets the oldest removals beyond the capacity, remembering the highest forgotten sequence.
local function trim_removals(capacity)
  local n = redis.call('ZCARD', REMOVALS)
  if n > capacity then
    local old = redis.call('ZRANGE', REMOVALS, 0, n - capacity - 1, 'WITHSCORES')
    local last = old[#old]
    if tonumber(last) > tonumber(redis.call('HGET', META, 'frr')) then
      redis.call('HSET', META, 'frr', last)
    end
    redis.call('ZREMRANGEBYRANK', REMOVALS, 0, n - capacity - 1)
  end
end

-- An explicit removal: takes a sequence and enters the removal log.
local function remove_logged(id, reason, capacity)
  if not unlink(id) then return false end
  local seq = next_seq()
  redis.call('ZADD', REMOVALS, seq, id .. ':' .. reason)
  trim_removals(capacity)
  return true
end

-- Forgets logged expirations older than the retention, remembering the latest forgotten.
local function forget_old_expirations()
  local old = redis.call('ZREVRANGEBYLEX', EXPIRED, '[' .. CUTOFF .. '~', '-', 'LIMIT', 0, 1)
  if #old > 0 then
    local exp = string.sub(old[1], 1, 20)
    if exp > redis.call('HGET', META, 'fet') then redis.call('HSET', META, 'fet', exp) end
    redis.call('ZREMRANGEBYLEX', EXPIRED, '-', '[' .. CUTOFF .. '~')
  end
end

-- Moves every notification expired at NOW from the live structures to the expiry log.
-- Cost: O(expired).
local function sweep()
  local due = redis.call('ZRANGEBYLEX', EXPIRING, '-', '[' .. NOW .. '~')
  local bytes = 0
  for _, member in ipairs(due) do
    local _, size = unlink(string.sub(member, 21))
    redis.call('ZREM', EXPIRING, member)
    bytes = bytes + (size or 0)
    redis.call('ZADD', EXPIRED, 0, member)
  end
  forget_old_expirations()
  return #due, bytes
end

-- Every key lives until the latest expiration plus the retention plus a minute.
local function refresh_ttl()
  local maxexp = redis.call('HGET', META, 'maxexp') or NOW
  local ms = (tonumber(maxexp) - tonumber(NOW)) / 1e6
  if ms < 0 then ms = 0 end
  ms = math.floor(ms + RETENTION_MS + 60000)
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ms) end
end
"#;

/// ARGV 5 app notification id. Returns `{}` or `{id, sealed, change sequence}`.
const GET_BY_APP: &str = r#"
local id = redis.call('HGET', APPS, ARGV[5])
if not id then return {} end
return {id, redis.call('HGET', NOTES, id), redis.call('ZSCORE', CHANGED, id)}
"#;

/// ARGV 5 id. Returns `{}` or `{id, sealed, change sequence}`.
const GET: &str = r#"
local id = ARGV[5]
local sealed = redis.call('HGET', NOTES, id)
if not sealed then return {} end
return {id, sealed, redis.call('ZSCORE', CHANGED, id)}
"#;

/// ARGV 5 upper position bound (`+inf` or `(<position>`), 6 how many. Returns a flat list of
/// `id, position, sealed`, newest position first.
const LIST_CHUNK: &str = r#"
local rows = redis.call('ZREVRANGEBYSCORE', POSITIONS, ARGV[5], '-inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[6]))
local out = {}
for i = 1, #rows, 2 do
  out[#out + 1] = rows[i]
  out[#out + 1] = rows[i + 1]
  out[#out + 1] = redis.call('HGET', NOTES, rows[i])
end
return out
"#;

/// Returns `{total, unread}` of live notifications at NOW. Cost: O(expired not yet swept).
const COUNT: &str = r#"
local due = redis.call('ZRANGEBYLEX', EXPIRING, '-', '[' .. NOW .. '~')
local total = redis.call('ZCARD', POSITIONS) - #due
local unread = redis.call('SCARD', UNREAD)
for _, member in ipairs(due) do
  unread = unread - redis.call('SISMEMBER', UNREAD, string.sub(member, 21))
end
return {total, unread}
"#;

/// ARGV 5 feed capacity, 6 removal log capacity, 7 app notification id, 8 `new` or `replace`,
/// 9 expected id (replace), 10 expected change sequence (replace), 11 id, 12 sealed,
/// 13 expiration text, 14 group member prefix (empty: no group).
/// Returns `{'ok', sequence}` or `{'retry'}` when the feed changed since the caller read it.
const APPEND: &str = r#"
ensure_meta()
sweep()
local capacity, removal_capacity = tonumber(ARGV[5]), tonumber(ARGV[6])
local app, mode, expected_id, expected_seq = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local id, sealed, exp, gp = ARGV[11], ARGV[12], ARGV[13], ARGV[14]
local current = redis.call('HGET', APPS, app)
if mode == 'replace' then
  if current ~= expected_id or redis.call('ZSCORE', CHANGED, expected_id) ~= expected_seq then
    return {'retry'}
  end
  unlink(expected_id)
else
  if current then return {'retry'} end
  local live = redis.call('ZCARD', POSITIONS)
  if live >= capacity then
    for _, old in ipairs(redis.call('ZRANGE', POSITIONS, 0, live - capacity)) do
      remove_logged(old, 4, removal_capacity)
    end
  end
end
local seq = next_seq()
redis.call('HSET', NOTES, id, sealed)
redis.call('HSET', INDEX, id, exp .. string.format('%08d', #gp) .. gp .. app)
redis.call('ZADD', POSITIONS, seq, id)
redis.call('ZADD', CHANGED, seq, id)
redis.call('HSET', APPS, app, id)
if #gp > 0 then redis.call('ZADD', GROUPS, 0, gp .. id) end
redis.call('ZADD', EXPIRING, 0, exp .. id)
redis.call('SADD', UNREAD, id)
if exp > redis.call('HGET', META, 'maxexp') then redis.call('HSET', META, 'maxexp', exp) end
refresh_ttl()
return {'ok', seq}
"#;

/// ARGV 5 id, 6 expected change sequence, 7 sealed, 8 `1` when unread.
/// Returns `{'ok', sequence}`, `{'gone'}` or `{'retry'}`.
const UPDATE_STATE: &str = r#"
if redis.call('EXISTS', META) == 0 then return {'gone'} end
sweep()
local id = ARGV[5]
local score = redis.call('ZSCORE', CHANGED, id)
if not score then return {'gone'} end
if score ~= ARGV[6] then return {'retry'} end
local seq = next_seq()
redis.call('HSET', NOTES, id, ARGV[7])
redis.call('ZADD', CHANGED, seq, id)
if ARGV[8] == '1' then redis.call('SADD', UNREAD, id) else redis.call('SREM', UNREAD, id) end
refresh_ttl()
return {'ok', seq}
"#;

/// ARGV 5 id, 6 removal log capacity. Returns 1 when a live notification was deleted, else 0.
const DELETE: &str = r#"
if redis.call('EXISTS', META) == 0 then return 0 end
sweep()
local removed = remove_logged(ARGV[5], 1, tonumber(ARGV[6]))
refresh_ttl()
if removed then return 1 end
return 0
"#;

/// ARGV 5 app notification id, 6 removal log capacity. Returns 1 or 0 as [`DELETE`].
const DELETE_BY_APP: &str = r#"
if redis.call('EXISTS', META) == 0 then return 0 end
sweep()
local id = redis.call('HGET', APPS, ARGV[5])
local removed = id and remove_logged(id, 1, tonumber(ARGV[6]))
refresh_ttl()
if removed then return 1 end
return 0
"#;

/// ARGV 5 group member prefix, 6 removal log capacity. Deletes the group's notifications
/// oldest position first and returns how many.
const DELETE_GROUP: &str = r#"
if redis.call('EXISTS', META) == 0 then return 0 end
sweep()
local gp = ARGV[5]
local members = redis.call('ZRANGEBYLEX', GROUPS, '[' .. gp, '[' .. gp .. '~')
-- Oldest position first, so the removal log reads in feed order.
local victims = {}
for _, member in ipairs(members) do
  local id = string.sub(member, #gp + 1)
  victims[#victims + 1] = {tonumber(redis.call('ZSCORE', POSITIONS, id)) or 0, id}
end
table.sort(victims, function(a, b) return a[1] < b[1] end)
local n = 0
for _, victim in ipairs(victims) do
  if remove_logged(victim[2], 2, tonumber(ARGV[6])) then n = n + 1 end
end
refresh_ttl()
return n
"#;

/// Reclaims the feed's expired notifications. Returns `{swept, bytes, next}` where `next` is the
/// earliest remaining expiration as time text, or empty when nothing remains.
const SWEEP_FEED: &str = r#"
if redis.call('EXISTS', META) == 0 then return {0, 0, ''} end
local n, bytes = sweep()
local first = redis.call('ZRANGE', EXPIRING, 0, 0)
local next = ''
if #first > 0 then next = string.sub(first[1], 1, 20) end
return {n, bytes, next}
"#;

/// ARGV 5 the token's sequence (empty: from the beginning), 6 the token's expiration time text,
/// 7 the most upserts to return, 8 the most removals to return.
/// Returns `{latest sequence, forgotten removals through, forgotten expirations through,
/// {sequence, id, sealed, ...} upserts, {member, sequence, ...} removals, {member, ...}
/// expirations}`. Creates the feed when it does not exist.
const CHANGES: &str = r#"
if ensure_meta() then refresh_ttl() end
local meta = redis.call('HMGET', META, 'seq', 'frr', 'fet')
local fet = meta[3]
for _, key in ipairs({EXPIRING, EXPIRED}) do
  local old = redis.call('ZREVRANGEBYLEX', key, '[' .. CUTOFF .. '~', '-', 'LIMIT', 0, 1)
  if #old > 0 and string.sub(old[1], 1, 20) > fet then fet = string.sub(old[1], 1, 20) end
end
local since = ARGV[5]
local from = '-inf'
if since ~= '' then from = '(' .. since end
local upserts = {}
local want = tonumber(ARGV[7])
local found = 0
local candidates = redis.call('ZRANGEBYSCORE', CHANGED, from, '+inf', 'WITHSCORES')
for i = 1, #candidates, 2 do
  if found >= want then break end
  local id = candidates[i]
  local rec = redis.call('HGET', INDEX, id)
  if rec and string.sub(rec, 1, 20) > NOW then
    upserts[#upserts + 1] = candidates[i + 1]
    upserts[#upserts + 1] = id
    upserts[#upserts + 1] = redis.call('HGET', NOTES, id)
    found = found + 1
  end
end
local removals = redis.call('ZRANGEBYSCORE', REMOVALS, from, '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[8]))
local expirations = {}
if since ~= '' and ARGV[6] < NOW then
  for _, key in ipairs({EXPIRING, EXPIRED}) do
    for _, member in ipairs(redis.call('ZRANGEBYLEX', key, '(' .. ARGV[6] .. '~', '[' .. NOW .. '~')) do
      expirations[#expirations + 1] = member
    end
  end
end
return {meta[1], meta[2], fet, upserts, removals, expirations}
"#;

/// The compiled scripts (each knows its SHA1; Redis caches it after the first use).
pub(crate) struct Scripts {
    pub(crate) get: Script,
    pub(crate) get_by_app: Script,
    pub(crate) list_chunk: Script,
    pub(crate) count: Script,
    pub(crate) append: Script,
    pub(crate) update_state: Script,
    pub(crate) delete: Script,
    pub(crate) delete_by_app: Script,
    pub(crate) delete_group: Script,
    pub(crate) sweep_feed: Script,
    pub(crate) changes: Script,
}

fn with_prelude(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            get: with_prelude(GET),
            get_by_app: with_prelude(GET_BY_APP),
            list_chunk: with_prelude(LIST_CHUNK),
            count: with_prelude(COUNT),
            append: with_prelude(APPEND),
            update_state: with_prelude(UPDATE_STATE),
            delete: with_prelude(DELETE),
            delete_by_app: with_prelude(DELETE_BY_APP),
            delete_group: with_prelude(DELETE_GROUP),
            sweep_feed: with_prelude(SWEEP_FEED),
            changes: with_prelude(CHANGES),
        }
    }
}
