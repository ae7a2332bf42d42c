//! Message bodies and headers as text and JSON for the terminal.

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
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("0x");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
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
    }
}
