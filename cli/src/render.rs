//! Message bodies and headers as text and JSON for the terminal.

use std::io::Write;

use serde_json::{json, Value};
use zhub_client::{Encoding, Message};

/// The body as a JSON value: MessagePack decoded, raw bytes as a string when UTF-8, else as
/// `0x`-prefixed hex.
pub(crate) fn body_value(encoding: Encoding, body: &[u8]) -> Value {
    match encoding {
        Encoding::MsgPack => match rmp_serde::from_slice::<Value>(body) {
            Ok(value) => value,
            Err(_) => Value::String(hex(body)),
        },
        Encoding::Raw => match std::str::from_utf8(body) {
            Ok(text) => Value::String(text.to_owned()),
            Err(_) => Value::String(hex(body)),
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    format!("0x{}", zhub_protocol::ids::hex(bytes))
}

/// A body as a MessagePack value, only when the whole body is exactly one value (so raw
/// text is never mistaken for a MessagePack number that happens to start it).
pub(crate) fn strict_msgpack(body: &[u8]) -> Option<Value> {
    let mut reader = body;
    let value = {
        let mut de = rmp_serde::Deserializer::new(&mut reader);
        serde::Deserialize::deserialize(&mut de).ok()?
    };
    reader.is_empty().then_some(value)
}

/// A reply for a person: a MessagePack string as its text, another value as JSON, anything
/// else as text (or hex when not UTF-8).
pub(crate) fn reply_text(body: &[u8]) -> String {
    match strict_msgpack(body) {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => match body_value(Encoding::Raw, body) {
            Value::String(s) => s,
            other => other.to_string(),
        },
    }
}

/// One line for a person: the topic, a space, and the body (strings unquoted).
pub(crate) fn text_line(message: &Message) -> String {
    match body_value(message.header().encoding, message.body()) {
        Value::String(s) => format!("{} {}", message.topic(), s),
        other => format!("{} {}", message.topic(), other),
    }
}

/// One JSON object: topic, header and body.
pub(crate) fn json_line(message: &Message) -> String {
    let h = message.header();
    json!({
        "topic": message.topic(),
        "header": {
            "publisher": format!("{:016x}", h.publisher),
            "seq": h.seq,
            "timestamp_us": h.timestamp_us,
            "lamport": h.lamport,
            "encoding": match h.encoding { Encoding::MsgPack => "msgpack", Encoding::Raw => "raw" },
        },
        "body": body_value(h.encoding, message.body()),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_render() {
        let packed = rmp_serde::to_vec_named(&json!({"a": 1})).unwrap();
        assert_eq!(body_value(Encoding::MsgPack, &packed), json!({"a": 1}));
        assert_eq!(body_value(Encoding::Raw, b"hi"), json!("hi"));
        assert_eq!(body_value(Encoding::Raw, &[0xff, 0x00]), json!("0xff00"));
        assert_eq!(body_value(Encoding::MsgPack, &[0xc1]), json!("0xc1"));
        // "HELLO" starts with 'H' (0x48), a MessagePack fixint: not taken as one.
        assert_eq!(reply_text(b"HELLO"), "HELLO");
        assert_eq!(reply_text(&rmp_serde::to_vec(&"hi").unwrap()), "hi");
        assert_eq!(reply_text(&rmp_serde::to_vec(&42).unwrap()), "42");
    }
}

/// A stored value (log record, key-value entry) as JSON: one MessagePack value decoded, else
/// raw bytes as text or hex.
pub(crate) fn value_json(value: &[u8]) -> Value {
    strict_msgpack(value).unwrap_or_else(|| body_value(Encoding::Raw, value))
}

/// How a command-line value is stored (`zhub log append`, `zhub kv put`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BodyFormat {
    /// A MessagePack string.
    String,
    /// JSON, stored as a MessagePack value.
    Json,
    /// The bytes as given.
    Raw,
}

impl BodyFormat {
    /// The bytes to store for `text`.
    pub(crate) fn encode(self, text: &str) -> anyhow::Result<Vec<u8>> {
        Ok(match self {
            BodyFormat::Raw => text.as_bytes().to_vec(),
            BodyFormat::Json => {
                let v: Value = serde_json::from_str(text)
                    .map_err(|e| anyhow::anyhow!("not valid JSON: {e}"))?;
                rmp_serde::to_vec_named(&v)?
            }
            BodyFormat::String => rmp_serde::to_vec_named(text)?,
        })
    }
}

/// Prints a line on stdout at once (commands that follow a stream print as they go);
/// `false` once stdout is closed (`zhub sub x | head -1`), which ends such a command quietly.
pub(crate) fn print_line(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").and_then(|()| out.flush()).is_ok()
}
