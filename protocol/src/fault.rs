//! The `zhub.fault` built-in service: rules that make the broker drop or delay bus messages
//! on chosen topics, to test a distributed program under real faults (`zhub fault`, and the
//! partitions of `zhub sim serve`).
//!
//! The service answers only on a broker started with faults allowed (`--allow-faults`, or
//! `allow_faults = true` in its TOML); elsewhere every request is answered `422` (rejected)
//! with a reason saying so. Requests and replies are MessagePack bodies of native (`ZHC01`)
//! requests:
//!
//! | request ([`FaultRequest`], tagged by `op`) | reply body                              |
//! |--------------------------------------------|-----------------------------------------|
//! | `{"op":"add","rule":FaultRule}`            | the new rule as a [`FaultRuleInfo`]     |
//! | `{"op":"list"}`                            | every rule, `[FaultRuleInfo]`, by id    |
//! | `{"op":"clear","id":N}` / `{"op":"clear"}` | how many rules were removed (integer)   |
//!
//! A malformed request, or a rule that [`FaultRule::check`] refuses, is answered `400`.
//!
//! # What a rule does
//! A rule applies to every bus message a publisher sends whose topic its `pattern` matches
//! (a prefix or a pattern with `*` and `>`, as subscriptions read them; see
//! [`crate::subject`]). Every matching rule applies: the message is dropped if one of them
//! drops it (each with its own chance, drawn from the rule's generator seeded by `seed`),
//! and otherwise held back by the longest delay the matching rules draw (uniform from
//! `delay_min` to `delay_max`), then delivered as if just published. zhub's own traffic
//! (topics starting with `$`) is never matched. Requests to services are not faulted.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The fault rules' service name.
pub const FAULT_SERVICE: &str = "zhub.fault";
/// Longest delay a rule may ask for: a held message costs the broker memory.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Most rules a broker holds at once.
pub const MAX_RULES: usize = 10_000;

/// A request to [`FAULT_SERVICE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FaultRequest {
    /// Adds a rule.
    Add {
        /// The rule.
        rule: FaultRule,
    },
    /// Lists the rules.
    List,
    /// Removes the rule `id`, or every rule when `id` is absent.
    Clear {
        /// The rule to remove.
        #[serde(default)]
        id: Option<u64>,
    },
}

/// What a rule does to the messages it matches. See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultRule {
    /// The topics: a prefix, or a pattern with `*` and `>`.
    pub pattern: String,
    /// The chance, from 0 to 1, that a matching message is dropped.
    pub drop: f64,
    /// The shortest delay of a matching message that is not dropped.
    pub delay_min: Duration,
    /// The longest (equal to `delay_min` for a fixed delay).
    pub delay_max: Duration,
    /// The seed of the rule's generator.
    pub seed: u64,
}

impl Default for FaultRule {
    /// An empty pattern (refused by [`FaultRule::check`]), no drops, no delay, seed 0.
    fn default() -> Self {
        FaultRule {
            pattern: String::new(),
            drop: 0.0,
            delay_min: Duration::ZERO,
            delay_max: Duration::ZERO,
            seed: 0,
        }
    }
}

impl FaultRule {
    /// Checks the rule: a pattern that is a valid filter, not empty and not on zhub's own
    /// `$` topics; a chance from 0 to 1; `delay_min <= delay_max <= MAX_DELAY`.
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.pattern.is_empty() {
            return Err("a rule needs a pattern (a prefix, or a pattern like sim.*.n1.>)".into());
        }
        if self.pattern.starts_with('$') {
            return Err(format!(
                "pattern {:?}: zhub's own '$' topics are never faulted",
                self.pattern
            ));
        }
        crate::names::check_prefix(&self.pattern).map_err(|e| e.to_string())?;
        crate::subject::check_filter(&self.pattern).map_err(|e| e.to_string())?;
        if !(0.0..=1.0).contains(&self.drop) {
            return Err(format!("drop is a chance from 0 to 1, not {}", self.drop));
        }
        if self.delay_min > self.delay_max {
            return Err(format!(
                "delay {:?}..{:?}: the shortest is longer than the longest",
                self.delay_min, self.delay_max
            ));
        }
        if self.delay_max > MAX_DELAY {
            return Err(format!(
                "delay {:?} is over the broker's limit of {MAX_DELAY:?}",
                self.delay_max
            ));
        }
        Ok(())
    }
}

/// A rule as the broker holds it, with what it did so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultRuleInfo {
    /// The rule's id, for `clear`.
    pub id: u64,
    /// The rule.
    pub rule: FaultRule,
    /// Messages its pattern matched.
    pub matched: u64,
    /// Messages it dropped.
    pub dropped: u64,
    /// Messages it delayed (held back for a nonzero time).
    pub delayed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str) -> FaultRule {
        FaultRule {
            pattern: pattern.into(),
            ..FaultRule::default()
        }
    }

    #[test]
    fn rules_are_checked() {
        assert!(rule("sim.r1.>").check().is_ok());
        assert!(rule("orders.").check().is_ok());
        for bad in ["", "$zhub.kv.>", "a.>.b", "a\nb"] {
            assert!(rule(bad).check().is_err(), "{bad:?}");
        }
        let mut r = rule("a");
        r.drop = 1.5;
        assert!(r.check().is_err());
        r.drop = f64::NAN;
        assert!(r.check().is_err());
        r.drop = 1.0;
        r.delay_min = Duration::from_millis(5);
        assert!(r.check().is_err(), "min over max");
        r.delay_max = Duration::from_secs(61);
        assert!(r.check().is_err(), "over the limit");
        r.delay_max = Duration::from_millis(5);
        assert!(r.check().is_ok());
    }

    #[test]
    fn requests_read_as_documented() {
        let add = FaultRequest::Add {
            rule: FaultRule {
                drop: 0.5,
                ..rule("a.>")
            },
        };
        let bytes = crate::body::encode(&add).unwrap();
        assert_eq!(crate::body::decode::<FaultRequest>(&bytes).unwrap(), add);
        #[derive(Serialize)]
        struct Bare {
            op: &'static str,
        }
        let clear: FaultRequest =
            crate::body::decode(&crate::body::encode(&Bare { op: "clear" }).unwrap()).unwrap();
        assert_eq!(clear, FaultRequest::Clear { id: None });
        assert!(crate::body::decode::<FaultRequest>(b"\xc1").is_err());
    }
}
