//! `/api/...`: the broker's built-in services' replies as JSON, and the query strings of the
//! paged endpoints.

use serde::Serialize;
use zhub_protocol::builtin::{ServiceInfo, SERVICES_SERVICE};
use zhub_protocol::group::MAX_LIST_GROUPS;

use super::{unavailable, BrokerSource, Reply};

/// Most keys one `/api/kv` page holds.
pub(crate) const KV_MAX_LIMIT: u64 = 1000;
/// Keys in a `/api/kv` page when `limit` is not given.
pub(crate) const KV_DEFAULT_LIMIT: u64 = 100;
/// Groups in a `/api/groups` page when `limit` is not given.
const GROUPS_DEFAULT_LIMIT: u64 = 100;
/// Longest value text shown in a `/api/kv` page; longer values are cut (`value_bytes` tells
/// their length), so that a page of large values stays small.
const KV_VALUE_PREVIEW: usize = 256;

/// A query string's `name=value` pairs, percent-decoded, in order.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b=x%20y` (`+` is a space, as browsers send it).
    ///
    /// # Errors
    /// A reason for a 400 when an escape is broken or decodes to something not UTF-8.
    pub(crate) fn parse(text: &str) -> Result<Query, String> {
        let mut pairs = Vec::new();
        for part in text.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode(name)?, decode(value)?));
        }
        Ok(Query(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A 400's reason if any parameter is not one of `known`.
    fn only(&self, known: &[&str]) -> Result<(), String> {
        match self.0.iter().find(|(n, _)| !known.contains(&n.as_str())) {
            Some((name, _)) => Err(format!(
                "unknown parameter {name:?}; known: {}",
                known.join(", ")
            )),
            None => Ok(()),
        }
    }
}

/// Percent-decoding of one query component.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("broken escape in {text:?}"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} is not UTF-8"))
}

fn to_json<T: Serialize>(value: &T) -> Reply {
    match serde_json::to_string(value) {
        Ok(body) => Reply::json(body),
        Err(e) => Reply::error(500, &format!("cannot encode: {e}")),
    }
}

/// `/api/info`.
pub(crate) fn info(broker: &mut BrokerSource) -> Result<Reply, Reply> {
    let info = broker.ask(|c| Ok(c.info().clone())).map_err(unavailable)?;
    Ok(to_json(&info))
}

/// `/api/stats`.
pub(crate) fn stats(broker: &mut BrokerSource) -> Result<Reply, Reply> {
    let stats = broker.ask(|c| c.stats()).map_err(unavailable)?;
    Ok(to_json(&stats))
}

/// The services, in name order.
pub(crate) fn list_services(broker: &mut BrokerSource) -> Result<Vec<ServiceInfo>, Reply> {
    let mut services: Vec<ServiceInfo> = broker
        .ask(|c| c.request(SERVICES_SERVICE, &()))
        .map_err(unavailable)?;
    services.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(services)
}

/// `/api/services`.
pub(crate) fn services(broker: &mut BrokerSource) -> Result<Reply, Reply> {
    Ok(to_json(&list_services(broker)?))
}

/// `/api/peers`: this broker's links to peer brokers (`zhub.peers`).
pub(crate) fn peers(broker: &mut BrokerSource) -> Result<Reply, Reply> {
    let peers: zhub_protocol::builtin::Peers = broker
        .ask(|c| c.request(zhub_protocol::builtin::PEERS_SERVICE, &()))
        .map_err(unavailable)?;
    Ok(to_json(&peers))
}

/// `/api/storage`.
pub(crate) fn storage(broker: &mut BrokerSource) -> Result<Reply, Reply> {
    Ok(to_json(
        &broker.ask(|c| c.storage_stats()).map_err(unavailable)?,
    ))
}

/// `/api/streams`.
pub(crate) fn streams(broker: &mut BrokerSource) -> Result<Reply, Reply> {
    let streams = broker.ask(|c| c.log().streams()).map_err(unavailable)?;
    Ok(to_json(&streams))
}

/// The `limit` parameter: `default` when absent, else a number from 1 to `max`.
fn limit(query: &Query, default: u64, max: u64) -> Result<u64, String> {
    match query.get("limit") {
        None => Ok(default),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!("limit {text:?}: expected a number from 1 to {max}")),
        },
    }
}

/// One key of a `/api/kv` page.
#[derive(Serialize)]
struct KvKey {
    key: String,
    revision: u64,
    /// The value's length in bytes.
    value_bytes: usize,
    /// The value as text when it is UTF-8, cut at [`KV_VALUE_PREVIEW`] bytes; else `null`.
    value: Option<String>,
    expires_at_us: Option<i64>,
}

/// A `/api/kv` page: pass `next` as `after` for the next one.
#[derive(Serialize)]
struct KvPage {
    keys: Vec<KvKey>,
    /// The last key of this page when more follow, else `null`.
    next: Option<String>,
}

/// `/api/kv?prefix=P&limit=N&after=K`.
pub(crate) fn kv(query: &Query, broker: &mut BrokerSource) -> Result<Reply, Reply> {
    let bad = |reason: String| Reply::error(400, &reason);
    query.only(&["prefix", "limit", "after"]).map_err(bad)?;
    let prefix = query.get("prefix").unwrap_or("").to_owned();
    let after = query.get("after").map(str::to_owned);
    let limit = limit(query, KV_DEFAULT_LIMIT, KV_MAX_LIMIT).map_err(bad)?;
    let (entries, more) = broker
        .ask(|c| c.kv().list(&prefix, after.as_deref(), limit))
        .map_err(unavailable)?;
    let keys: Vec<KvKey> = entries
        .into_iter()
        .map(|e| KvKey {
            value_bytes: e.value.len(),
            value: preview(&e.value),
            key: e.key,
            revision: e.revision,
            expires_at_us: e.expires_at_us,
        })
        .collect();
    let next = if more {
        keys.last().map(|k| k.key.clone())
    } else {
        None
    };
    Ok(to_json(&KvPage { keys, next }))
}

/// One group of a `/api/groups` page. Member ids are 16 hex digits, as the broker logs them
/// (a 64-bit number does not survive JavaScript's numbers).
#[derive(Serialize)]
struct GroupEntry {
    group: String,
    version: u64,
    /// By rank.
    members: Vec<String>,
    token_holder: Option<String>,
    token_generation: u64,
    waiting_locks: u32,
    waiting_joins: u32,
}

/// A `/api/groups` page: pass `next` as `after` for the next one.
#[derive(Serialize)]
struct GroupsPage {
    groups: Vec<GroupEntry>,
    /// The last group of this page when more follow, else `null`.
    next: Option<String>,
}

fn member_hex(id: u64) -> String {
    format!("{id:016x}")
}

/// `/api/groups?prefix=P&limit=N&after=G`.
pub(crate) fn groups(query: &Query, broker: &mut BrokerSource) -> Result<Reply, Reply> {
    let bad = |reason: String| Reply::error(400, &reason);
    query.only(&["prefix", "limit", "after"]).map_err(bad)?;
    let prefix = query.get("prefix").unwrap_or("").to_owned();
    let after = query.get("after").map(str::to_owned);
    let limit = limit(query, GROUPS_DEFAULT_LIMIT, u64::from(MAX_LIST_GROUPS)).map_err(bad)?;
    // Within MAX_LIST_GROUPS, so it fits.
    let limit = u32::try_from(limit).unwrap_or(MAX_LIST_GROUPS);
    let page = broker
        .ask(|c| c.groups(&prefix, after.as_deref(), limit))
        .map_err(unavailable)?;
    let groups: Vec<GroupEntry> = page
        .groups
        .into_iter()
        .map(|g| GroupEntry {
            members: g.view.members.iter().copied().map(member_hex).collect(),
            group: g.view.group,
            version: g.view.version,
            token_holder: g.token_holder.map(member_hex),
            token_generation: g.token_generation,
            waiting_locks: g.waiting_locks,
            waiting_joins: g.waiting_joins,
        })
        .collect();
    let next = if page.more {
        groups.last().map(|g| g.group.clone())
    } else {
        None
    };
    Ok(to_json(&GroupsPage { groups, next }))
}

/// The value as text, cut at a character boundary, if it is UTF-8.
fn preview(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    let mut end = text.len().min(KV_VALUE_PREVIEW);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_refuse_broken_escapes() {
        let q = Query::parse("prefix=a%2Eb+c&limit=5&&after").unwrap();
        assert_eq!(q.get("prefix"), Some("a.b c"));
        assert_eq!(q.get("limit"), Some("5"));
        assert_eq!(q.get("after"), Some(""));
        assert!(q.only(&["prefix", "limit", "after"]).is_ok());
        assert!(q.only(&["prefix"]).unwrap_err().contains("limit"));
        assert!(Query::parse("a=%4").is_err());
        assert!(Query::parse("a=%zz").is_err());
        assert!(Query::parse("a=%ff").is_err());
    }

    #[test]
    fn previews_cut_at_a_character_boundary() {
        let long = "é".repeat(200);
        let cut = preview(long.as_bytes()).unwrap();
        assert!(cut.len() <= KV_VALUE_PREVIEW && long.starts_with(&cut));
        assert_eq!(preview(&[0xff, 0]), None);
    }
}
