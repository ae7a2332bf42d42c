//! Interest across brokers and zones: which filters this broker declares to each peer, with
//! which zone path, and which peers a message may be passed on to.
//!
//! Brokers of one zone form a full mesh, so inside a zone a message crosses one link: a
//! broker never passes a zone mate's message to another zone mate, and never declares a zone
//! mate's interest to one. Between zones, interest travels as path vectors, like the service
//! offers of the cluster link: a broker declares to a peer of another zone what its own
//! subscribers hold (path: its zone) and what it learned through other zones (path: its zone,
//! then the path it learned), leaving out every path that holds the peer's zone; it refuses an
//! interest whose path holds its own zone. Without paths, interest relayed round a cycle of
//! zones would keep itself alive after its subscriber had gone.
//!
//! Messages follow interest, each carrying the zones it has been in: a broker passes a
//! message to a peer only if the peer's zone is not among them (and, inside the zone, only if
//! the message entered the zone here), so no message goes round a cycle either. Redundant
//! gateways can still bring a message twice by two routes; the bus drops the second copy
//! ([`crate::bus`]'s duplicate window).

use std::collections::HashMap;

use zhub_protocol::builtin::TopicRoute;
use zhub_protocol::cluster::MAX_PATH_ZONES;
use zhub_protocol::delivery::{read_path, write_path, ZonePath};

/// A peer's interest in a filter: the peer, and the path (as written) it came through.
type Held = (u64, Box<[u8]>);

/// The interest of this broker's subscribers and of its peers, as paths. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Zones {
    /// This broker's zone.
    zone: Box<str>,
    /// Filters this broker's own subscribers hold, with their holders counted.
    own: HashMap<Box<[u8]>, usize>,
    /// Filters peers declared, each with the peers holding it and their paths.
    learned: HashMap<Box<[u8]>, Vec<Held>>,
    /// Filters whose declarations may have changed since the last [`Zones::take_dirty`].
    dirty: Vec<Box<[u8]>>,
}

impl Zones {
    pub(crate) fn new(zone: &str) -> Self {
        Zones {
            zone: zone.into(),
            ..Zones::default()
        }
    }

    /// This broker's zone.
    pub(crate) fn zone(&self) -> &str {
        &self.zone
    }

    /// Counts a holder of `filter` among this broker's own subscribers, coming or going.
    pub(crate) fn own(&mut self, filter: &[u8], held: bool) {
        if held {
            let n = self.own.entry(filter.into()).or_default();
            *n += 1;
            if *n == 1 {
                self.dirty.push(filter.into());
            }
        } else if let Some(n) = self.own.get_mut(filter) {
            *n -= 1;
            if *n == 0 {
                self.own.remove(filter);
                self.dirty.push(filter.into());
            }
        }
    }

    /// Whether an interest with this path may be taken: one that has come round to this zone
    /// is refused (from a zone mate, the path starts with this zone and must not hold it
    /// again).
    pub(crate) fn accepts(&self, path: &ZonePath<'_>) -> bool {
        let zone = self.zone.as_bytes();
        let mut zones = path.iter();
        if path.first() == zone {
            zones.next();
        }
        !zones.any(|z| z == zone)
    }

    /// Takes `peer`'s interest in `filter` through `path`; true when it is the peer's first
    /// path for the filter (the filter is then matched for the peer).
    pub(crate) fn learn(&mut self, filter: &[u8], peer: u64, path: &ZonePath<'_>) -> bool {
        let holders = self.learned.entry(filter.into()).or_default();
        let first = !holders.iter().any(|(p, _)| *p == peer);
        holders.push((peer, path.as_bytes().into()));
        self.dirty.push(filter.into());
        first
    }

    /// Drops `peer`'s interest in `filter` through `path`; true when the peer holds the
    /// filter through no other path (it is then no longer matched for the peer).
    pub(crate) fn unlearn(&mut self, filter: &[u8], peer: u64, path: &ZonePath<'_>) -> bool {
        let Some(holders) = self.learned.get_mut(filter) else {
            return false;
        };
        let Some(at) = holders
            .iter()
            .position(|(p, raw)| *p == peer && **raw == *path.as_bytes())
        else {
            return false;
        };
        holders.swap_remove(at);
        let last = !holders.iter().any(|(p, _)| *p == peer);
        if holders.is_empty() {
            self.learned.remove(filter);
        }
        self.dirty.push(filter.into());
        last
    }

    /// The filters whose declarations may have changed since the last call, each once.
    pub(crate) fn take_dirty(&mut self) -> Vec<Box<[u8]>> {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        dirty
    }

    /// Every filter held here or by a peer: what a new link may need declared.
    pub(crate) fn filters(&self) -> Vec<Box<[u8]>> {
        let mut all: Vec<Box<[u8]>> = self
            .own
            .keys()
            .chain(self.learned.keys())
            .cloned()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Every filter this broker's own subscribers hold.
    #[cfg(test)]
    pub(crate) fn own_filters(&self) -> impl Iterator<Item = &[u8]> {
        self.own.keys().map(|k| &**k)
    }

    /// Where messages go, for `zhub.topics`: this broker's own filters and, per filter, each
    /// peer's (named by `name_of`) with the shortest path it declared, sorted by filter; at
    /// most `limit` of them, so that the snapshot costs little however much is held.
    pub(crate) fn topic_routes(
        &self,
        name_of: impl Fn(u64) -> String,
        limit: usize,
    ) -> Vec<TopicRoute> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut routes: Vec<TopicRoute> = self
            .own
            .keys()
            .take(limit)
            .map(|filter| TopicRoute {
                filter: text(filter),
                ..TopicRoute::default()
            })
            .collect();
        for (filter, holders) in &self.learned {
            // A peer holds a filter by two paths for a moment when its best path changes.
            let mut best: HashMap<u64, ZonePath<'_>> = HashMap::new();
            for (peer, raw) in holders {
                let Ok((path, _)) = read_path(raw) else {
                    continue;
                };
                let shorter = best.get(peer).is_none_or(|b| path.len() < b.len());
                if shorter {
                    best.insert(*peer, path);
                }
            }
            for (peer, path) in best {
                if routes.len() >= limit {
                    break;
                }
                let mate = path.first() == self.zone.as_bytes();
                routes.push(TopicRoute {
                    filter: text(filter),
                    broker: name_of(peer),
                    zone: text(path.first()),
                    path: path.iter().skip(usize::from(mate)).map(text).collect(),
                });
            }
        }
        routes.sort_by(|a, b| (&a.filter, &a.broker).cmp(&(&b.filter, &b.broker)));
        routes
    }

    /// The path to declare `filter` with to a peer of zone `to` (as written), or `None` when
    /// nothing here may be declared to it: the shortest of this broker's own interest (its
    /// zone alone) and each learned interest that may go on to that zone.
    pub(crate) fn path_for(&self, filter: &[u8], to: &str) -> Option<Vec<u8>> {
        if self.own.contains_key(filter) {
            let mut path = Vec::with_capacity(2 + self.zone.len());
            write_path(&mut path, [self.zone.as_bytes()]);
            return Some(path);
        }
        self.learned
            .get(filter)?
            .iter()
            .filter_map(|(_, raw)| {
                let (path, _) = read_path(raw).ok()?;
                self.relayed(&path, to)
            })
            .min_by(|a, b| (a.len(), a).cmp(&(b.len(), b)))
    }

    /// The path an interest learned through `path` is declared with to a peer of zone `to`,
    /// if it may be.
    fn relayed(&self, path: &ZonePath<'_>, to: &str) -> Option<Vec<u8>> {
        let zone = self.zone.as_bytes();
        let from_mate = path.first() == zone;
        if from_mate && to == &*self.zone {
            // Inside a zone, every broker hears its zone mates' interest from them.
            return None;
        }
        let beyond: Vec<&[u8]> = path.iter().skip(usize::from(from_mate)).collect();
        // A message coming back along the path names one zone more, the publisher's: an
        // interest goes only as far as a message can.
        if beyond.contains(&to.as_bytes()) || 1 + beyond.len() >= MAX_PATH_ZONES {
            return None;
        }
        let mut out = Vec::with_capacity(path.as_bytes().len() + 2 + zone.len());
        write_path(&mut out, std::iter::once(zone).chain(beyond));
        Some(out)
    }
}

/// Where a message may go among peers: the zones it has been in, this broker's last.
#[derive(Debug, Default)]
pub(crate) struct Route {
    /// The zone path to send on with the message (as written).
    path: Vec<u8>,
    /// Whether it may go to zone mates: it was published here or entered the zone here.
    to_mates: bool,
    /// Whether it may go to other zones: its path has room for another.
    onward: bool,
}

impl Route {
    /// The route of a message published at this broker, in `zone`.
    pub(crate) fn set_local(&mut self, zone: &str) {
        self.path.clear();
        write_path(&mut self.path, [zone]);
        self.to_mates = true;
        self.onward = true;
    }

    /// The route of a message that came from a peer having been in the zones of `came`;
    /// false when it must not be taken here at all: it has been in this zone before, other
    /// than just now at a zone mate.
    pub(crate) fn set_from_peer(&mut self, zone: &str, came: &ZonePath<'_>) -> bool {
        let from_mate = came.last() == zone.as_bytes();
        let before = came.len() - usize::from(from_mate);
        if came.iter().take(before).any(|z| z == zone.as_bytes()) {
            return false;
        }
        self.path.clear();
        if from_mate || came.len() == MAX_PATH_ZONES {
            // A path with no room for this zone ends here: local subscribers only.
            self.path.extend_from_slice(came.as_bytes());
            self.to_mates = !from_mate && came.len() < MAX_PATH_ZONES;
        } else {
            write_path(&mut self.path, came.iter().chain([zone.as_bytes()]));
            self.to_mates = true;
        }
        self.onward = read_path(&self.path).is_ok_and(|(p, _)| p.len() < MAX_PATH_ZONES)
            && (from_mate || came.len() < MAX_PATH_ZONES);
        true
    }

    /// Whether the message may go to a peer of zone `to`, this broker being in `zone`.
    pub(crate) fn allows(&self, zone: &str, to: &str) -> bool {
        if to == zone {
            return self.to_mates;
        }
        self.onward && read_path(&self.path).is_ok_and(|(path, _)| !path.contains(to))
    }

    /// The zone path to send with the message (as written).
    pub(crate) fn path(&self) -> &[u8] {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(zones: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        write_path(&mut out, zones);
        out
    }

    fn zones_of(raw: &[u8]) -> Vec<String> {
        read_path(raw).unwrap().0.zones()
    }

    fn learn(z: &mut Zones, filter: &str, peer: u64, zones: &[&str]) -> bool {
        let raw = path(zones);
        let (p, _) = read_path(&raw).unwrap();
        assert!(z.accepts(&p), "{zones:?} accepted at {}", z.zone());
        z.learn(filter.as_bytes(), peer, &p)
    }

    fn declared(z: &Zones, filter: &str, to: &str) -> Option<Vec<String>> {
        z.path_for(filter.as_bytes(), to).map(|p| zones_of(&p))
    }

    #[test]
    fn own_interest_goes_to_everyone_with_this_zone_alone() {
        let mut z = Zones::new("b");
        z.own(b"x.", true);
        z.own(b"x.", true);
        assert_eq!(z.take_dirty(), vec![b"x.".to_vec().into_boxed_slice()]);
        for to in ["a", "b", "c"] {
            assert_eq!(declared(&z, "x.", to), Some(vec!["b".to_owned()]));
        }
        z.own(b"x.", false);
        assert!(z.take_dirty().is_empty(), "still held once");
        z.own(b"x.", false);
        assert_eq!(z.take_dirty().len(), 1);
        assert_eq!(declared(&z, "x.", "a"), None);
    }

    #[test]
    fn learned_interest_goes_on_only_where_it_has_not_been() {
        let mut z = Zones::new("b");
        // From zone c: on to zone a and to zone mates, never back to c.
        assert!(learn(&mut z, "x.", 7, &["c"]));
        assert_eq!(declared(&z, "x.", "a"), Some(vec!["b".into(), "c".into()]));
        assert_eq!(declared(&z, "x.", "b"), Some(vec!["b".into(), "c".into()]));
        assert_eq!(declared(&z, "x.", "c"), None);
        // From a zone mate: its own interest goes to other zones, never to zone mates.
        assert!(learn(&mut z, "y.", 8, &["b"]));
        assert_eq!(declared(&z, "y.", "a"), Some(vec!["b".into()]));
        assert_eq!(declared(&z, "y.", "b"), None);
        // What the zone mate learned from zone d goes on, but not back to d.
        learn(&mut z, "w.", 8, &["b", "d"]);
        assert_eq!(declared(&z, "w.", "a"), Some(vec!["b".into(), "d".into()]));
        assert_eq!(declared(&z, "w.", "d"), None);
        assert_eq!(declared(&z, "w.", "b"), None);
        // The shortest path wins; when it goes, the next one is declared.
        learn(&mut z, "x.", 9, &["d", "e", "c"]);
        assert_eq!(declared(&z, "x.", "a"), Some(vec!["b".into(), "c".into()]));
        let raw = path(&["c"]);
        assert!(z.unlearn(b"x.", 7, &read_path(&raw).unwrap().0));
        assert_eq!(
            declared(&z, "x.", "a"),
            Some(vec!["b".into(), "d".into(), "e".into(), "c".into()])
        );
        assert_eq!(declared(&z, "x.", "e"), None);
        // An interest goes only as far as a message can come back: a message's path names
        // the publisher's zone besides.
        let far: Vec<String> = (0..MAX_PATH_ZONES).map(|i| format!("z{i}")).collect();
        let far: Vec<&str> = far.iter().map(String::as_str).collect();
        learn(&mut z, "far.", 7, &far[..MAX_PATH_ZONES - 2]);
        learn(&mut z, "too-far.", 7, &far[..MAX_PATH_ZONES - 1]);
        assert_eq!(
            declared(&z, "far.", "a").map(|p| p.len()),
            Some(MAX_PATH_ZONES - 1)
        );
        assert_eq!(declared(&z, "too-far.", "a"), None);
    }

    #[test]
    fn interest_that_came_round_to_this_zone_is_refused() {
        let z = Zones::new("b");
        for (zones, ok) in [
            (&["a"][..], true),
            (&["b"][..], true),
            (&["b", "a"][..], true),
            (&["a", "b"][..], false),
            (&["b", "a", "b"][..], false),
        ] {
            let raw = path(zones);
            assert_eq!(z.accepts(&read_path(&raw).unwrap().0), ok, "{zones:?}");
        }
    }

    #[test]
    fn a_peer_holding_a_filter_by_two_paths_holds_it_until_both_go() {
        let mut z = Zones::new("b");
        assert!(learn(&mut z, "x.", 7, &["c"]));
        assert!(!learn(&mut z, "x.", 7, &["c", "d"]), "second path");
        let (one, two) = (path(&["c"]), path(&["c", "d"]));
        assert!(!z.unlearn(b"x.", 7, &read_path(&one).unwrap().0));
        assert!(z.unlearn(b"x.", 7, &read_path(&two).unwrap().0));
        assert!(z.filters().is_empty());
    }

    #[test]
    fn messages_never_go_back_into_a_zone_they_have_been_in() {
        let mut r = Route::default();
        r.set_local("a");
        assert!(r.allows("a", "a"), "published here: to zone mates");
        assert!(r.allows("a", "b"));
        assert_eq!(zones_of(r.path()), ["a"]);

        // Entered zone b here from zone a: to zone mates and to zones it has not been in.
        let came = path(&["a"]);
        assert!(r.set_from_peer("b", &read_path(&came).unwrap().0));
        assert_eq!(zones_of(r.path()), ["a", "b"]);
        assert!(r.allows("b", "b") && r.allows("b", "c"));
        assert!(!r.allows("b", "a"));

        // From a zone mate: not to zone mates, on to other zones.
        let came = path(&["a", "b"]);
        assert!(r.set_from_peer("b", &read_path(&came).unwrap().0));
        assert_eq!(zones_of(r.path()), ["a", "b"]);
        assert!(!r.allows("b", "b"));
        assert!(r.allows("b", "c") && !r.allows("b", "a"));

        // Back in a zone it has been in: refused.
        for came in [path(&["b", "a"]), path(&["b", "a", "b"])] {
            assert!(!r.set_from_peer("b", &read_path(&came).unwrap().0));
        }
        // A full path goes no further, to no peer, but still reaches this broker.
        let long: Vec<String> = (0..MAX_PATH_ZONES).map(|i| format!("z{i}")).collect();
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        let came = path(&long);
        assert!(r.set_from_peer("b", &read_path(&came).unwrap().0));
        assert!(!r.allows("b", "b"));
        assert!(!r.allows("b", "c"));
    }
}
