//! Subjects: topics read as `.`-separated tokens, and the two kinds of filter that select
//! them, as subscriptions, journal routes and KV watches use them.
//!
//! | filter            | kind    | matches                                                      |
//! |-------------------|---------|--------------------------------------------------------------|
//! | `orders.`         | prefix  | every topic starting with those bytes (`orders.eu.new`, ...) |
//! | `` (empty)        | prefix  | every topic                                                  |
//! | `orders.*.new`    | pattern | `orders.eu.new`, not `orders.new` nor `orders.eu.x.new`      |
//! | `orders.>`        | pattern | `orders.eu`, `orders.eu.new`, not `orders`                   |
//! | `*`               | pattern | every one-token topic not starting with `$`                  |
//!
//! A filter is a *pattern* when one of its tokens is exactly `*` (any one token) or `>` (one
//! or more tokens, the rest of the topic; only as the last token), as NATS subjects are;
//! otherwise it is a *prefix*, zhub's own rule, kept so that existing subscriptions mean what
//! they always meant. In a pattern every other token must equal the topic's token (`orders.eu`
//! as a pattern token matches only `eu`; `ord*` is the literal token `ord*`). A wildcard in
//! the first token does not match a topic starting with `$` (zhub's own traffic: group
//! messages, KV changes, probes), so `>` means every user topic; such topics are matched by
//! patterns that spell out their first token (`$zhub.kv.>`).
//!
//! Topics that are published may not contain a `*` or `>` token (see
//! [`crate::names::check_topic`]): a subject names one thing, a pattern many. Plain ZeroMQ SUB
//! sockets on the subscribe endpoint are matched by ZeroMQ itself, by prefix only.

use crate::ProtocolError;

/// Separates the tokens of a subject.
pub const SEPARATOR: u8 = b'.';
/// The token that matches any one token.
pub const ANY_TOKEN: &[u8] = b"*";
/// The last token that matches the rest of the subject (one or more tokens).
pub const REST: &[u8] = b">";

/// What a filter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter<'a> {
    /// Topics starting with these bytes.
    Prefix(&'a [u8]),
    /// Topics whose tokens match these, with `*` and `>` as wildcards.
    Pattern(&'a [u8]),
}

/// The tokens of a subject or pattern, split at every `.` (empty tokens included: `a..b` has
/// three).
pub fn tokens(subject: &[u8]) -> impl Iterator<Item = &[u8]> {
    subject.split(|&b| b == SEPARATOR)
}

/// Whether `token` is a wildcard.
pub fn is_wildcard(token: &[u8]) -> bool {
    token == ANY_TOKEN || token == REST
}

/// Reads a filter: a pattern if one of its tokens is a wildcard, a prefix otherwise.
pub fn classify(filter: &[u8]) -> Filter<'_> {
    if !filter.is_empty() && tokens(filter).any(is_wildcard) {
        Filter::Pattern(filter)
    } else {
        Filter::Prefix(filter)
    }
}

/// Checks the wildcards of a filter: `>` only as the last token. Lengths and characters are
/// [`crate::names::check_prefix`]'s to check.
///
/// # Errors
/// [`ProtocolError::InvalidName`] when `>` is followed by more tokens.
pub fn check_filter(filter: &str) -> Result<(), ProtocolError> {
    let mut seen_rest = false;
    for token in tokens(filter.as_bytes()) {
        if seen_rest {
            return Err(ProtocolError::InvalidName {
                what: "subject pattern",
                name: filter.chars().take(64).collect(),
                reason: "'>' must be the last token",
            });
        }
        seen_rest = token == REST;
    }
    Ok(())
}

/// Whether the pattern's tokens match the topic's (see the module docs). A pattern with `>`
/// before its last token matches nothing.
pub fn pattern_matches(pattern: &[u8], topic: &[u8]) -> bool {
    if topic.first() == Some(&b'$') && pattern.first() != Some(&b'$') {
        return false;
    }
    let mut topic_tokens = tokens(topic);
    let mut pattern_tokens = tokens(pattern).peekable();
    while let Some(want) = pattern_tokens.next() {
        if want == REST {
            return pattern_tokens.peek().is_none() && topic_tokens.next().is_some();
        }
        match topic_tokens.next() {
            Some(got) if want == ANY_TOKEN || want == got => {}
            _ => return false,
        }
    }
    topic_tokens.next().is_none()
}

/// Whether a filter of either kind matches the topic.
pub fn matches(filter: &[u8], topic: &[u8]) -> bool {
    match classify(filter) {
        Filter::Prefix(prefix) => topic.starts_with(prefix),
        Filter::Pattern(pattern) => pattern_matches(pattern, topic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_patterns_only_with_a_wildcard_token() {
        assert_eq!(classify(b""), Filter::Prefix(b""));
        assert_eq!(classify(b"orders."), Filter::Prefix(b"orders."));
        assert_eq!(classify(b"ord*"), Filter::Prefix(b"ord*"));
        assert_eq!(classify(b"a.b>"), Filter::Prefix(b"a.b>"));
        assert_eq!(classify(b"*"), Filter::Pattern(b"*"));
        assert_eq!(classify(b"a.*.c"), Filter::Pattern(b"a.*.c"));
        assert_eq!(classify(b"a.>"), Filter::Pattern(b"a.>"));
    }

    #[test]
    fn patterns_match_token_by_token() {
        let yes = [
            ("a.*.c", "a.b.c"),
            ("a.*.c", "a..c"),
            ("*", "a"),
            ("*.*", "a.b"),
            ("a.>", "a.b"),
            ("a.>", "a.b.c.d"),
            (">", "a"),
            (">", "a.b"),
            ("a.*.>", "a.b.c"),
            ("$zhub.kv.>", "$zhub.kv.users.ann"),
            ("$zhub.*.x", "$zhub.kv.x"),
            ("a.ord*", "a.ord*"),
        ];
        for (pattern, topic) in yes {
            assert!(
                matches(pattern.as_bytes(), topic.as_bytes()),
                "{pattern} should match {topic}"
            );
        }
        let no = [
            ("a.*.c", "a.b.c.d"),
            ("a.*.c", "a.c"),
            ("a.*.c", "a.b.cc"),
            ("a.*", "a"),
            ("a.*", "ab.c"),
            ("a.>", "a"),
            ("a.>", "ab.c"),
            ("*", "a.b"),
            (">", "$zhub.kv.x"),
            ("*.kv.x", "$zhub.kv.x"),
            ("a.>.c", "a.b.c"),
            ("a.ord*", "a.order"),
        ];
        for (pattern, topic) in no {
            assert!(
                !matches(pattern.as_bytes(), topic.as_bytes()),
                "{pattern} should not match {topic}"
            );
        }
    }

    #[test]
    fn prefixes_match_as_they_always_did() {
        assert!(matches(b"", b"$zhub.kv.x"));
        assert!(matches(b"orders.", b"orders.eu"));
        assert!(matches(b"orders", b"ordersx"));
        assert!(!matches(b"orders.", b"orders"));
    }

    #[test]
    fn rest_must_be_last() {
        assert!(check_filter("a.>").is_ok());
        assert!(check_filter(">").is_ok());
        assert!(check_filter("a.>.b").is_err());
        assert!(check_filter("a.b>.c").is_ok(), "b> is a literal token");
    }
}
