//! Names on every plane, and the one rule each kind of name follows.
//!
//! Names travel in requests from any peer and end up in logs, error replies, file names and
//! bus topics, so each kind has one checker here, used by clients before they send and by
//! the broker on every request that carries a name. No rule admits a control character
//! (C0, DEL or C1: NUL, newline, ESC...), so that no name can forge a log line or a
//! terminal escape; every length is bounded.
//!
//! | kind                  | checker            | bytes      | allowed                                   |
//! |-----------------------|--------------------|------------|-------------------------------------------|
//! | service               | [`check_service`]  | 1..=255    | UTF-8 without control characters          |
//! | topic                 | [`check_topic`]    | 1..=1024   | UTF-8 without control characters; no `*` or `>` token |
//! | topic filter          | [`check_prefix`]   | 0..=1024   | a prefix or a subject pattern ([`crate::subject`]); empty matches every topic |
//! | queue group           | [`check_queue`]    | 1..=255    | UTF-8 without control characters          |
//! | event log stream      | [`check_stream`]   | 1..=200    | ASCII letters, digits, `.` `_` `-`; no leading `.` |
//! | consumer group        | [`check_consumer`] | 1..=200    | UTF-8 without control characters          |
//! | key-value key         | [`check_key`]      | 1..=1024   | UTF-8 without control characters          |
//! | key prefix            | [`check_key_prefix`] | 0..=1024 | as a key; empty matches every key         |
//! | process group         | [`check_group`]    | 1..=200    | UTF-8 without control characters          |
//!
//! Stream names are stricter because each is a directory name on disk. Whether a name is
//! reserved (`zhub.*` and `mmi.*` services, `$` topics) is the caller's decision: the rules
//! here say only what a well-formed name is. Requests that carry names implement [`Named`].

use crate::{subject, ProtocolError};

/// Longest service name, in bytes.
pub const MAX_SERVICE_LEN: usize = 255;
/// Longest topic (and topic prefix), in bytes.
pub const MAX_TOPIC_LEN: usize = 1024;
/// Longest event log stream name, in bytes.
pub const MAX_STREAM_LEN: usize = 200;
/// Longest consumer group name, in bytes.
pub const MAX_CONSUMER_LEN: usize = 200;
/// Longest key-value key (and key prefix), in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Longest process group name, in bytes. Group topics (`$zhub.group.NAME.m.ID`) stay well
/// within [`MAX_TOPIC_LEN`].
pub const MAX_GROUP_LEN: usize = 200;

/// Longest part of an offending name quoted in an error, so that an error about a huge name
/// is not itself huge.
const QUOTED: usize = 64;

/// A request that carries names.
pub trait Named {
    /// Checks every name the request carries against its kind's rule.
    ///
    /// # Errors
    /// [`ProtocolError::InvalidName`] for the first name that breaks its rule.
    fn check_names(&self) -> Result<(), ProtocolError>;
}

fn invalid(what: &'static str, name: &str, reason: &'static str) -> ProtocolError {
    let mut end = name.len().min(QUOTED);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    ProtocolError::InvalidName {
        what,
        name: name[..end].to_owned(),
        reason,
    }
}

/// The rule of free-text names: `min..=max` bytes without control characters.
fn free_text(
    what: &'static str,
    name: &str,
    min: usize,
    max: usize,
    too_long: &'static str,
) -> Result<(), ProtocolError> {
    if name.len() < min {
        Err(invalid(what, name, "empty"))
    } else if name.len() > max {
        Err(invalid(what, name, too_long))
    } else if name.chars().any(char::is_control) {
        Err(invalid(what, name, "contains a control character"))
    } else {
        Ok(())
    }
}

/// Checks a service name: 1..=[`MAX_SERVICE_LEN`] bytes without control characters.
///
/// # Errors
/// [`ProtocolError::InvalidName`] naming the rule broken.
pub fn check_service(name: &str) -> Result<(), ProtocolError> {
    free_text("service", name, 1, MAX_SERVICE_LEN, "longer than 255 bytes")
}

/// Checks a topic: 1..=[`MAX_TOPIC_LEN`] bytes without control characters (so no NUL, which
/// ends the topic in a bus frame), and no wildcard token (`*` or `>` between dots: a topic
/// names one subject, a pattern many).
///
/// # Errors
/// [`ProtocolError::InvalidName`] naming the rule broken.
pub fn check_topic(topic: &str) -> Result<(), ProtocolError> {
    free_text("topic", topic, 1, MAX_TOPIC_LEN, "longer than 1024 bytes")?;
    if subject::tokens(topic.as_bytes()).any(subject::is_wildcard) {
        return Err(invalid(
            "topic",
            topic,
            "has a wildcard token ('*' or '>'): those are for subscriptions",
        ));
    }
    Ok(())
}

/// Checks a topic filter (a subscription, a journal route): a prefix or a subject pattern
/// ([`crate::subject`]) of 0..=[`MAX_TOPIC_LEN`] bytes without control characters; empty
/// matches every topic.
///
/// # Errors
/// [`ProtocolError::InvalidName`] naming the rule broken.
pub fn check_prefix(prefix: &str) -> Result<(), ProtocolError> {
    free_text(
        "topic filter",
        prefix,
        0,
        MAX_TOPIC_LEN,
        "longer than 1024 bytes",
    )?;
    subject::check_filter(prefix)
}

/// Longest queue group name, in bytes (its length travels in one byte).
pub const MAX_QUEUE_LEN: usize = 255;

/// Checks a queue group name (subscribers sharing a topic's messages):
/// 1..=[`MAX_QUEUE_LEN`] bytes without control characters.
///
/// # Errors
/// [`ProtocolError::InvalidName`] naming the rule broken.
pub fn check_queue(name: &str) -> Result<(), ProtocolError> {
    free_text(
        "queue group",
        name,
        1,
        MAX_QUEUE_LEN,
        "longer than 255 bytes",
    )
}

/// Checks an event log stream name: 1..=[`MAX_STREAM_LEN`] bytes of ASCII letters, digits,
/// `.`, `_` and `-`, not starting with `.` (it names a directory).
///
/// # Errors
/// [`ProtocolError::InvalidName`] naming the rule broken.
pub fn check_stream(name: &str) -> Result<(), ProtocolError> {
    let what = "stream";
    if name.is_empty() {
        Err(invalid(what, name, "empty"))
    } else if name.len() > MAX_STREAM_LEN {
        Err(invalid(what, name, "longer than 200 bytes"))
    } else if name.starts_with('.') {
        Err(invalid(what, name, "starts with '.'"))
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Err(invalid(
            what,
            name,
            "has a byte other than A-Z, a-z, 0-9, '.', '_', '-'",
        ))
    } else {
        Ok(())
    }
}

/// Checks a consumer group name: 1..=[`MAX_CONSUMER_LEN`] bytes without control characters.
///
/// # Errors
/// [`ProtocolError::InvalidName`] naming the rule broken.
pub fn check_consumer(name: &str) -> Result<(), ProtocolError> {
    free_text(
        "consumer group",
        name,
        1,
        MAX_CONSUMER_LEN,
        "longer than 200 bytes",
    )
}

/// Checks a key-value key: 1..=[`MAX_KEY_LEN`] bytes without control characters.
///
/// # Errors
/// [`ProtocolError::InvalidName`] naming the rule broken.
pub fn check_key(key: &str) -> Result<(), ProtocolError> {
    free_text("key", key, 1, MAX_KEY_LEN, "longer than 1024 bytes")
}

/// Checks a key prefix (list, snapshot, changes): as [`check_key`], but it may be empty.
///
/// # Errors
/// [`ProtocolError::InvalidName`] naming the rule broken.
pub fn check_key_prefix(prefix: &str) -> Result<(), ProtocolError> {
    free_text(
        "key prefix",
        prefix,
        0,
        MAX_KEY_LEN,
        "longer than 1024 bytes",
    )
}

/// Checks a process group name: 1..=[`MAX_GROUP_LEN`] bytes without control characters.
///
/// # Errors
/// [`ProtocolError::InvalidName`] naming the rule broken.
pub fn check_group(name: &str) -> Result<(), ProtocolError> {
    free_text("group", name, 1, MAX_GROUP_LEN, "longer than 200 bytes")
}

/// Checks a group name prefix (list): as [`check_group`], but it may be empty.
///
/// # Errors
/// [`ProtocolError::InvalidName`] naming the rule broken.
pub fn check_group_prefix(prefix: &str) -> Result<(), ProtocolError> {
    free_text(
        "group prefix",
        prefix,
        0,
        MAX_GROUP_LEN,
        "longer than 200 bytes",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    type Checker = fn(&str) -> Result<(), ProtocolError>;

    fn reason(result: Result<(), ProtocolError>) -> &'static str {
        match result {
            Ok(()) => "ok",
            Err(ProtocolError::InvalidName { reason, .. }) => reason,
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn free_text_names_refuse_control_characters_and_bound_their_length() {
        let checkers: [(Checker, usize); 5] = [
            (check_service, MAX_SERVICE_LEN),
            (check_topic, MAX_TOPIC_LEN),
            (check_consumer, MAX_CONSUMER_LEN),
            (check_key, MAX_KEY_LEN),
            (check_group, MAX_GROUP_LEN),
        ];
        for (check, max) in checkers {
            assert_eq!(reason(check("orders.eu-1/été")), "ok");
            assert_eq!(reason(check(&"x".repeat(max))), "ok");
            assert_eq!(reason(check("")), "empty");
            assert!(reason(check(&"x".repeat(max + 1))).starts_with("longer than"));
            for bad in [
                "a\nERROR forged",
                "nul\0",
                "\x1b[31mred",
                "del\x7f",
                "c1\u{85}",
            ] {
                assert_eq!(
                    reason(check(bad)),
                    "contains a control character",
                    "{bad:?}"
                );
            }
        }
        assert_eq!(reason(check_prefix("")), "ok");
        assert_eq!(reason(check_key_prefix("")), "ok");
        assert_eq!(reason(check_prefix("a\rb")), "contains a control character");
    }

    #[test]
    fn stream_names_are_directory_names() {
        assert_eq!(reason(check_stream("orders.eu_1-a")), "ok");
        assert_eq!(reason(check_stream(&"s".repeat(MAX_STREAM_LEN))), "ok");
        assert_eq!(reason(check_stream(".hidden")), "starts with '.'");
        for bad in ["a/b", "a b", "été", "..\n", "a\0"] {
            assert_ne!(reason(check_stream(bad)), "ok", "{bad:?}");
        }
        assert_eq!(
            reason(check_stream(&"s".repeat(MAX_STREAM_LEN + 1))),
            "longer than 200 bytes"
        );
    }

    #[test]
    fn errors_quote_a_bounded_part_of_the_name() {
        let huge = format!("{}\n", "é".repeat(10_000));
        match check_topic(&huge) {
            Err(ProtocolError::InvalidName { name, .. }) => assert!(name.len() <= QUOTED),
            other => panic!("{other:?}"),
        }
    }
}
