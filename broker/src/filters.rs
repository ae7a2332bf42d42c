//! A table of topic filters (prefixes and subject patterns, see [`zhub_protocol::subject`]) and
//! who holds each, matched against one topic at a time on the bus thread's hot path.
//!
//! Prefixes sit in a hash map with the distinct prefix lengths beside it, so a topic is looked
//! up once per length held (usually one or two lookups). Patterns sit in a token trie: a topic
//! walks it one token at a time, down the literal branch and the `*` branch, collecting the
//! holders of `>` on the way, so its cost grows with the topic's tokens and the wildcards
//! held, not with the number of patterns. While no pattern is held, a topic is not even split.
//!
//! Pure state; the bounds on what a peer may add are the caller's ([`crate::interest`]).

use std::collections::HashMap;

use zhub_protocol::subject::{self, Filter, ANY_TOKEN, REST, SEPARATOR};

/// Who holds filters: copied, compared and sorted when a topic matches several.
pub(crate) trait Holder: Copy + Ord {}
impl<T: Copy + Ord> Holder for T {}

/// The table. See the module docs.
#[derive(Debug)]
pub(crate) struct Filters<T> {
    /// Prefix -> its holders.
    prefixes: HashMap<Box<[u8]>, Vec<T>>,
    /// Distinct prefix lengths in `prefixes`, ascending, with how many prefixes have each.
    lengths: Vec<(usize, usize)>,
    patterns: Node<T>,
    /// Distinct patterns held.
    pattern_count: usize,
}

impl<T> Default for Filters<T> {
    fn default() -> Self {
        Filters {
            prefixes: HashMap::new(),
            lengths: Vec::new(),
            patterns: Node::default(),
            pattern_count: 0,
        }
    }
}

/// One level of the pattern trie: the tokens that may come next.
#[derive(Debug)]
struct Node<T> {
    literal: HashMap<Box<[u8]>, Node<T>>,
    any: Option<Box<Node<T>>>,
    /// Holders of patterns ending here with `>`: they match one or more further tokens.
    rest: Vec<T>,
    /// Holders of patterns ending here.
    end: Vec<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            literal: HashMap::new(),
            any: None,
            rest: Vec::new(),
            end: Vec::new(),
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.any.is_none() && self.rest.is_empty() && self.end.is_empty()
    }
}

impl<T: Holder> Node<T> {
    /// Adds `holder` for the pattern `tokens`; true when the pattern is new.
    fn add<'a>(&mut self, mut tokens: impl Iterator<Item = &'a [u8]>, holder: T) -> bool {
        let list = match tokens.next() {
            None => &mut self.end,
            Some(REST) => &mut self.rest,
            Some(ANY_TOKEN) => {
                return self
                    .any
                    .get_or_insert_with(Box::default)
                    .add(tokens, holder);
            }
            Some(token) => {
                return self
                    .literal
                    .entry(token.into())
                    .or_default()
                    .add(tokens, holder);
            }
        };
        let new = list.is_empty();
        list.push(holder);
        new
    }

    /// Removes `holder` for the pattern `tokens`, pruning what is left empty; true when the
    /// pattern's last holder went.
    fn remove<'a>(&mut self, mut tokens: impl Iterator<Item = &'a [u8]>, holder: T) -> bool {
        let list = match tokens.next() {
            None => &mut self.end,
            Some(REST) => &mut self.rest,
            Some(ANY_TOKEN) => {
                let Some(child) = self.any.as_mut() else {
                    return false;
                };
                let gone = child.remove(tokens, holder);
                if child.is_empty() {
                    self.any = None;
                }
                return gone;
            }
            Some(token) => {
                let Some(child) = self.literal.get_mut(token) else {
                    return false;
                };
                let gone = child.remove(tokens, holder);
                if child.is_empty() {
                    self.literal.remove(token);
                }
                return gone;
            }
        };
        let Some(at) = list.iter().position(|&h| h == holder) else {
            return false;
        };
        list.swap_remove(at);
        list.is_empty()
    }

    /// Collects the holders of patterns matching `topic`, the part of the topic not yet
    /// walked (`None` once every token has been). Returns how many holder lists it took from.
    fn collect(&self, topic: Option<&[u8]>, first: bool, out: &mut Vec<T>) -> usize {
        let Some(topic) = topic else {
            out.extend_from_slice(&self.end);
            return usize::from(!self.end.is_empty());
        };
        let (token, rest) = match topic.iter().position(|&b| b == SEPARATOR) {
            Some(at) => (&topic[..at], Some(&topic[at + 1..])),
            None => (topic, None),
        };
        // A wildcard in the first token does not match zhub's own `$` topics.
        let wild = !(first && token.first() == Some(&b'$'));
        let mut lists = 0;
        if wild && !self.rest.is_empty() {
            out.extend_from_slice(&self.rest);
            lists += 1;
        }
        if let Some(child) = self.literal.get(token) {
            lists += child.collect(rest, false, out);
        }
        if wild {
            if let Some(child) = &self.any {
                lists += child.collect(rest, false, out);
            }
        }
        lists
    }
}

impl<T: Holder> Filters<T> {
    /// Adds `holder` for `filter`. A holder adding the same filter twice is the caller's to
    /// prevent (it would match twice, and need two removals).
    pub(crate) fn add(&mut self, filter: &[u8], holder: T) {
        match subject::classify(filter) {
            Filter::Prefix(prefix) => {
                let holders = self.prefixes.entry(prefix.into()).or_default();
                if holders.is_empty() {
                    count_length(&mut self.lengths, prefix.len(), true);
                }
                holders.push(holder);
            }
            Filter::Pattern(pattern) => {
                if self.patterns.add(subject::tokens(pattern), holder) {
                    self.pattern_count += 1;
                }
            }
        }
    }

    /// Removes `holder` for `filter`, if it held it.
    pub(crate) fn remove(&mut self, filter: &[u8], holder: T) {
        match subject::classify(filter) {
            Filter::Prefix(prefix) => {
                if let Some(holders) = self.prefixes.get_mut(prefix) {
                    holders.retain(|&h| h != holder);
                    if holders.is_empty() {
                        self.prefixes.remove(prefix);
                        count_length(&mut self.lengths, prefix.len(), false);
                    }
                }
            }
            Filter::Pattern(pattern) => {
                if self.patterns.remove(subject::tokens(pattern), holder) {
                    self.pattern_count -= 1;
                }
            }
        }
    }

    /// Appends to `out` the holders of every filter matching `topic`, each once (a holder
    /// of both `a` and `ab` gets `abc` once). `out` is sorted when it had to be deduplicated.
    pub(crate) fn matching(&self, topic: &[u8], out: &mut Vec<T>) {
        let start = out.len();
        let mut lists = 0;
        for &(len, _) in &self.lengths {
            if len > topic.len() {
                break;
            }
            if let Some(holders) = self.prefixes.get(&topic[..len]) {
                out.extend_from_slice(holders);
                lists += 1;
            }
        }
        if self.pattern_count > 0 {
            lists += self.patterns.collect(Some(topic), true, out);
        }
        if lists > 1 {
            out[start..].sort_unstable();
            let mut kept = start;
            for at in start..out.len() {
                if kept == start || out[kept - 1] != out[at] {
                    out[kept] = out[at];
                    kept += 1;
                }
            }
            out.truncate(kept);
        }
    }

    /// Distinct filters held.
    pub(crate) fn distinct(&self) -> usize {
        self.prefixes.len() + self.pattern_count
    }

    /// Whether no filter is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.prefixes.is_empty() && self.pattern_count == 0
    }
}

fn count_length(lengths: &mut Vec<(usize, usize)>, len: usize, add: bool) {
    match lengths.binary_search_by_key(&len, |&(l, _)| l) {
        Ok(at) if add => lengths[at].1 += 1,
        Ok(at) => {
            lengths[at].1 -= 1;
            if lengths[at].1 == 0 {
                lengths.remove(at);
            }
        }
        Err(at) if add => lengths.insert(at, (len, 1)),
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matching(table: &Filters<u64>, topic: &str) -> Vec<u64> {
        let mut out = Vec::new();
        table.matching(topic.as_bytes(), &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn prefixes_and_patterns_match_together_once_each() {
        let mut t = Filters::default();
        t.add(b"a.", 1);
        t.add(b"a.*", 1);
        t.add(b"a.>", 2);
        t.add(b"*.b", 3);
        t.add(b"a.b", 4);
        t.add(b"", 5);
        assert_eq!(matching(&t, "a.b"), vec![1, 2, 3, 4, 5]);
        assert_eq!(matching(&t, "a.b.c"), vec![1, 2, 4, 5]);
        assert_eq!(matching(&t, "x.b"), vec![3, 5]);
        assert_eq!(matching(&t, "a"), vec![5]);
        assert_eq!(matching(&t, "$zhub.b"), vec![5], "wildcards skip $ topics");
        assert_eq!(t.distinct(), 6);

        t.remove(b"a.*", 1);
        assert_eq!(matching(&t, "a.b"), vec![1, 2, 3, 4, 5]);
        t.remove(b"a.", 1);
        assert_eq!(matching(&t, "a.b"), vec![2, 3, 4, 5]);
        for (filter, holder) in [(&b"a.>"[..], 2), (b"*.b", 3), (b"a.b", 4), (b"", 5)] {
            t.remove(filter, holder);
        }
        assert!(t.is_empty());
        assert!(t.patterns.is_empty(), "the trie is pruned");
        assert!(t.lengths.is_empty());
        assert_eq!(matching(&t, "a.b"), Vec::<u64>::new());
    }

    #[test]
    fn removing_what_was_never_held_changes_nothing() {
        let mut t = Filters::default();
        t.add(b"a.*.c", 1);
        t.remove(b"a.*.c", 2);
        t.remove(b"a.*.d", 1);
        t.remove(b"a.>", 1);
        t.remove(b"nothing", 1);
        assert_eq!(matching(&t, "a.b.c"), vec![1]);
        assert_eq!(t.distinct(), 1);
    }

    #[test]
    fn patterns_agree_with_the_protocols_rule() {
        let patterns = [
            "*", ">", "a.*", "a.>", "*.*", "a.*.c", "$zhub.>", "*.b.>", "a..*",
        ];
        let topics = [
            "a", "a.b", "a.b.c", "b.b.c", "a..c", "$zhub.x", "$zhub", "x.b", "x.b.y",
        ];
        let mut t = Filters::default();
        for (holder, p) in patterns.iter().enumerate() {
            t.add(p.as_bytes(), holder);
        }
        for topic in topics {
            let mut got = Vec::new();
            t.matching(topic.as_bytes(), &mut got);
            got.sort_unstable();
            let want: Vec<usize> = (0..patterns.len())
                .filter(|&h| subject::matches(patterns[h].as_bytes(), topic.as_bytes()))
                .collect();
            assert_eq!(got, want, "topic {topic}");
        }
    }
}
