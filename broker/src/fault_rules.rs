//! Faults injected on real traffic: the rules of `zhub.fault` ([`zhub_protocol::fault`]),
//! which drop or delay bus messages on chosen topics.
//!
//! The rules live in a [`FaultTable`] shared by two threads, as the journal routes are: the
//! router answers `zhub.fault` requests and changes the table; the bus thread holds a
//! [`FaultGate`] that checks one atomic generation number per message (reloading its copy
//! of the rules when it moved), judges each message a publisher sends ([`Verdict`]), and
//! keeps the delayed ones in a due-time queue that its poll loop releases. The queue is
//! bounded ([`MAX_HELD`] messages, [`MAX_HELD_BYTES`] bytes): a message that would overflow
//! it is dropped and counted with the rules' drops.
//!
//! The table refuses every request unless the broker was started with faults allowed: a
//! production broker must not be one request away from dropping its traffic.
//!
//! Pure state, with the clock passed in; the bus thread does the I/O.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use zhub_protocol::fault::{FaultRequest, FaultRule, FaultRuleInfo, MAX_RULES};
use zhub_protocol::{body, subject, Status};

/// Most delayed messages held at once.
pub(crate) const MAX_HELD: usize = 100_000;
/// Most bytes of delayed messages held at once.
pub(crate) const MAX_HELD_BYTES: usize = 64 << 20;

/// One rule with its counters, written by the bus thread and read by `list`.
#[derive(Debug)]
pub(crate) struct ActiveRule {
    id: u64,
    rule: FaultRule,
    matched: AtomicU64,
    dropped: AtomicU64,
    delayed: AtomicU64,
}

impl ActiveRule {
    fn info(&self) -> FaultRuleInfo {
        FaultRuleInfo {
            id: self.id,
            rule: self.rule.clone(),
            matched: self.matched.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            delayed: self.delayed.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Default)]
struct Rules {
    next_id: u64,
    list: Vec<Arc<ActiveRule>>,
}

/// The rules, shared by the router (writer) and the bus thread (reader).
#[derive(Debug, Default)]
pub(crate) struct FaultTable {
    allowed: bool,
    rules: Mutex<Rules>,
    generation: AtomicU64,
}

impl FaultTable {
    /// An empty table; `allowed` is the broker's `allow_faults`.
    pub(crate) fn new(allowed: bool) -> Self {
        FaultTable {
            allowed,
            ..FaultTable::default()
        }
    }

    fn rules(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers one `zhub.fault` request body: the reply body, or the status and reason of a
    /// refusal. Never panics, whatever the bytes.
    pub(crate) fn handle(&self, request: &[u8]) -> Result<Vec<u8>, (Status, String)> {
        if !self.allowed {
            return Err((
                Status::Rejected,
                "fault injection is off on this broker: start it with --allow-faults \
                 (allow_faults = true in its config file) to use zhub.fault"
                    .to_owned(),
            ));
        }
        let request: FaultRequest =
            body::decode(request).map_err(|e| (Status::BadRequest, e.to_string()))?;
        let encoded = match request {
            FaultRequest::Add { rule } => {
                rule.check().map_err(|e| (Status::BadRequest, e))?;
                let mut rules = self.rules();
                if rules.list.len() >= MAX_RULES {
                    return Err((
                        Status::Rejected,
                        format!("the broker holds {MAX_RULES} fault rules already"),
                    ));
                }
                rules.next_id += 1;
                let active = Arc::new(ActiveRule {
                    id: rules.next_id,
                    rule,
                    matched: AtomicU64::new(0),
                    dropped: AtomicU64::new(0),
                    delayed: AtomicU64::new(0),
                });
                let info = active.info();
                rules.list.push(active);
                self.generation.fetch_add(1, Ordering::Release);
                body::encode(&info)
            }
            FaultRequest::List => {
                let infos: Vec<FaultRuleInfo> =
                    self.rules().list.iter().map(|r| r.info()).collect();
                body::encode(&infos)
            }
            FaultRequest::Clear { id } => {
                let mut rules = self.rules();
                let before = rules.list.len();
                rules.list.retain(|r| id.is_some_and(|id| r.id != id));
                let removed = (before - rules.list.len()) as u64;
                self.generation.fetch_add(1, Ordering::Release);
                body::encode(&removed)
            }
        };
        encoded.map_err(|e| (Status::Internal, e.to_string()))
    }

    /// The rules, if they changed since generation `seen` (which is then brought up to date).
    fn changed(&self, seen: &mut u64) -> Option<Vec<Arc<ActiveRule>>> {
        let now = self.generation.load(Ordering::Acquire);
        if now == *seen {
            return None;
        }
        *seen = now;
        Some(self.rules().list.clone())
    }
}

/// SplitMix64: a rule's own small generator, so that a seed gives the same drops.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi].
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.next() % span,
            None => self.next(),
        }
    }
}

#[derive(Debug)]
struct GateRule {
    rule: Arc<ActiveRule>,
    rng: Rng,
}

/// What becomes of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Delivered now.
    Pass,
    /// Dropped by a rule.
    Drop,
    /// Held back until then.
    Hold(Instant),
}

/// A delayed message.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Held {
    due: Instant,
    seq: u64,
    /// The whole bus frame.
    pub(crate) frame: Vec<u8>,
}

/// The bus thread's side of the rules. See the module docs.
#[derive(Debug)]
pub(crate) struct FaultGate {
    table: Arc<FaultTable>,
    seen: u64,
    rules: Vec<GateRule>,
    held: BinaryHeap<Reverse<Held>>,
    held_bytes: usize,
    seq: u64,
}

impl FaultGate {
    pub(crate) fn new(table: Arc<FaultTable>) -> Self {
        FaultGate {
            table,
            seen: 0,
            rules: Vec::new(),
            held: BinaryHeap::new(),
            held_bytes: 0,
            seq: 0,
        }
    }

    fn refresh(&mut self) {
        let Some(list) = self.table.changed(&mut self.seen) else {
            return;
        };
        let mut old = std::mem::take(&mut self.rules);
        self.rules = list
            .into_iter()
            .map(|rule| {
                // A rule kept across a change keeps its generator where it was.
                match old.iter().position(|g| g.rule.id == rule.id) {
                    Some(at) => old.swap_remove(at),
                    None => {
                        let seed = rule.rule.seed ^ rule.id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                        GateRule {
                            rule,
                            rng: Rng(seed),
                        }
                    }
                }
            })
            .collect();
    }

    /// Whether any rule may be in force (checked before reading the clock for [`Self::judge`]);
    /// a cheap atomic load when nothing changed.
    pub(crate) fn has_rules(&self) -> bool {
        !self.rules.is_empty() || self.table.generation.load(Ordering::Acquire) != self.seen
    }

    /// Judges a message on `topic` arriving at `now` (see [`zhub_protocol::fault`]).
    pub(crate) fn judge(&mut self, topic: &[u8], now: Instant) -> Verdict {
        self.refresh();
        if self.rules.is_empty() || topic.first() == Some(&b'$') {
            return Verdict::Pass;
        }
        let mut dropped = false;
        let mut delay = Duration::ZERO;
        for gate in &mut self.rules {
            let active = &gate.rule;
            if !subject::matches(active.rule.pattern.as_bytes(), topic) {
                continue;
            }
            active.matched.fetch_add(1, Ordering::Relaxed);
            if active.rule.drop > 0.0 && gate.rng.unit() < active.rule.drop {
                active.dropped.fetch_add(1, Ordering::Relaxed);
                dropped = true;
                continue;
            }
            let (lo, hi) = (active.rule.delay_min, active.rule.delay_max);
            if hi > Duration::ZERO {
                let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                let drawn = Duration::from_nanos(gate.rng.between(nanos(lo), nanos(hi)));
                if drawn > Duration::ZERO {
                    active.delayed.fetch_add(1, Ordering::Relaxed);
                    delay = delay.max(drawn);
                }
            }
        }
        if dropped {
            Verdict::Drop
        } else if delay > Duration::ZERO {
            Verdict::Hold(now + delay)
        } else {
            Verdict::Pass
        }
    }

    /// Holds `frame` until `due`; false (and the frame is not kept) when the queue is full.
    pub(crate) fn hold(&mut self, due: Instant, frame: &[u8]) -> bool {
        if self.held.len() >= MAX_HELD || self.held_bytes + frame.len() > MAX_HELD_BYTES {
            return false;
        }
        self.seq += 1;
        self.held_bytes += frame.len();
        self.held.push(Reverse(Held {
            due,
            seq: self.seq,
            frame: frame.to_vec(),
        }));
        true
    }

    /// When the next held message is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.held.peek().map(|Reverse(h)| h.due)
    }

    /// The next held message due by `now`, earliest first (in the order held, for equal
    /// times).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Held> {
        if self.next_due()? > now {
            return None;
        }
        let Reverse(held) = self.held.pop()?;
        self.held_bytes -= held.frame.len();
        Some(held)
    }

    /// Messages held now.
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Arc<FaultTable> {
        Arc::new(FaultTable::new(true))
    }

    fn add(table: &FaultTable, rule: FaultRule) -> FaultRuleInfo {
        let request = FaultRequest::Add { rule };
        body::decode(&table.handle(&body::encode(&request).unwrap()).unwrap()).unwrap()
    }

    fn list(table: &FaultTable) -> Vec<FaultRuleInfo> {
        body::decode(
            &table
                .handle(&body::encode(&FaultRequest::List).unwrap())
                .unwrap(),
        )
        .unwrap()
    }

    fn clear(table: &FaultTable, id: Option<u64>) -> u64 {
        let request = FaultRequest::Clear { id };
        body::decode(&table.handle(&body::encode(&request).unwrap()).unwrap()).unwrap()
    }

    fn rule(pattern: &str, drop: f64, delay: (u64, u64)) -> FaultRule {
        FaultRule {
            pattern: pattern.into(),
            drop,
            delay_min: Duration::from_millis(delay.0),
            delay_max: Duration::from_millis(delay.1),
            seed: 1,
        }
    }

    #[test]
    fn a_drop_rule_drops_matching_topics_only_and_clear_restores_them() {
        let table = table();
        let mut gate = FaultGate::new(Arc::clone(&table));
        let now = Instant::now();
        assert_eq!(gate.judge(b"sim.r.n2.n1", now), Verdict::Pass);
        let id = add(&table, rule("sim.r.n2.*", 1.0, (0, 0))).id;
        assert_eq!(gate.judge(b"sim.r.n2.n1", now), Verdict::Drop);
        assert_eq!(gate.judge(b"sim.r.n3.n1", now), Verdict::Pass);
        assert_eq!(gate.judge(b"sim.r.n2", now), Verdict::Pass);
        let info = &list(&table)[0];
        assert_eq!((info.id, info.matched, info.dropped), (id, 1, 1));
        assert_eq!(clear(&table, Some(id + 1)), 0);
        assert_eq!(clear(&table, Some(id)), 1);
        assert_eq!(gate.judge(b"sim.r.n2.n1", now), Verdict::Pass);
    }

    #[test]
    fn a_chance_drops_about_that_share_and_the_same_seed_drops_the_same() {
        let runs: Vec<Vec<bool>> = (0..2)
            .map(|_| {
                let table = table();
                add(&table, rule("t.>", 0.3, (0, 0)));
                let mut gate = FaultGate::new(table);
                let now = Instant::now();
                (0..10_000)
                    .map(|_| gate.judge(b"t.x", now) == Verdict::Drop)
                    .collect()
            })
            .collect();
        assert_eq!(runs[0], runs[1]);
        let dropped = runs[0].iter().filter(|d| **d).count();
        assert!((2700..3300).contains(&dropped), "{dropped}");
    }

    #[test]
    fn delays_fall_in_their_range_and_held_messages_come_out_in_due_order() {
        let table = table();
        add(&table, rule("slow.", 0.0, (5, 20)));
        let mut gate = FaultGate::new(table);
        let now = Instant::now();
        let mut dues = Vec::new();
        for i in 0..100u8 {
            let Verdict::Hold(due) = gate.judge(b"slow.a", now) else {
                panic!("not held");
            };
            assert!(due >= now + Duration::from_millis(5));
            assert!(due <= now + Duration::from_millis(20));
            assert!(gate.hold(due, &[i]));
            dues.push(due);
        }
        assert_eq!(gate.held(), 100);
        assert_eq!(gate.next_due(), dues.iter().min().copied());
        assert!(gate.pop_due(now).is_none());
        let mut out = Vec::new();
        while let Some(held) = gate.pop_due(now + Duration::from_millis(20)) {
            out.push(held.due);
        }
        assert_eq!(out.len(), 100);
        assert!(out.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(gate.held(), 0);
    }

    #[test]
    fn the_held_queue_is_bounded() {
        let mut gate = FaultGate::new(table());
        let now = Instant::now();
        let big = vec![0u8; MAX_HELD_BYTES / 2 + 1];
        assert!(gate.hold(now, &big));
        assert!(!gate.hold(now, &big));
        assert_eq!(gate.held(), 1);
    }

    #[test]
    fn own_topics_are_never_matched_and_bad_requests_are_answered() {
        let table = table();
        add(&table, rule("s", 1.0, (0, 0)));
        let mut gate = FaultGate::new(Arc::clone(&table));
        assert_eq!(gate.judge(b"$zhub.probe.s", Instant::now()), Verdict::Pass);
        for bad in [&b""[..], b"\xc1", b"\x93\x01\x02\x03"] {
            let (status, _) = table.handle(bad).unwrap_err();
            assert_eq!(status, Status::BadRequest);
        }
        let (status, reason) = table
            .handle(
                &body::encode(&FaultRequest::Add {
                    rule: rule("", 0.0, (0, 0)),
                })
                .unwrap(),
            )
            .unwrap_err();
        assert_eq!(status, Status::BadRequest, "{reason}");
    }

    #[test]
    fn a_broker_without_allow_faults_refuses_every_request() {
        let table = FaultTable::new(false);
        let (status, reason) = table
            .handle(&body::encode(&FaultRequest::List).unwrap())
            .unwrap_err();
        assert_eq!(status, Status::Rejected);
        assert!(reason.contains("--allow-faults"), "{reason}");
    }
}
