//! The body conventions of `zhub request` and `zhub serve`: plain bytes by default,
//! JSON or MessagePack when asked, the same three on both sides.
//!
//! | flag        | `request` sends BODY as          | `request` prints the reply          |
//! |-------------|----------------------------------|-------------------------------------|
//! | (none)      | its bytes, as typed              | its bytes, as they came             |
//! | `--json`    | JSON text (checked, as typed)    | JSON (the reply must be JSON text)  |
//! | `--msgpack` | JSON parsed, one MessagePack value | JSON (the reply must be one MessagePack value) |
//!
//! | flag        | `serve` gives the command (or `--echo`) | `serve` answers with           |
//! |-------------|------------------------------------------|--------------------------------|
//! | (none)      | the request's bytes                      | the command's stdout bytes     |
//! | `--json`    | JSON: a body that is JSON text as it is, else one MessagePack value as JSON | stdout, which must be JSON, as JSON text |
//! | `--msgpack` | JSON: the body must be one MessagePack value | stdout, which must be JSON, as one MessagePack value |
//!
//! Plain is the default so that Majordomo peers in any language see what a person typed.
//! A `serve --json` worker takes JSON text before MessagePack because a short JSON text can
//! also read as a MessagePack value (`1` is the byte 0x31, the MessagePack integer 49).

use anyhow::{bail, Context};
use serde_json::Value;

use crate::render;

/// How bodies are encoded on the wire; chosen by `--json` / `--msgpack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyMode {
    /// Bytes as they are.
    Plain,
    /// JSON text.
    Json,
    /// One MessagePack value, shown as JSON.
    MsgPack,
}

/// The `--json` / `--msgpack` flags, shared by `request` and `serve`.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct BodyFlags {
    /// Bodies are JSON text (see "Bodies" below).
    #[arg(long, conflicts_with = "msgpack")]
    json: bool,
    /// Bodies are MessagePack, written and shown as JSON (see "Bodies" below).
    #[arg(long)]
    msgpack: bool,
}

impl BodyFlags {
    /// The mode the flags select.
    pub(crate) fn mode(self) -> BodyMode {
        match (self.json, self.msgpack) {
            (true, _) => BodyMode::Json,
            (_, true) => BodyMode::MsgPack,
            _ => BodyMode::Plain,
        }
    }
}

/// What `zhub request` sends for the BODY a person typed.
pub(crate) fn request_body(mode: BodyMode, text: &str) -> anyhow::Result<Vec<u8>> {
    Ok(match mode {
        BodyMode::Plain => text.as_bytes().to_vec(),
        BodyMode::Json => {
            serde_json::from_str::<Value>(text).context("BODY is not valid JSON")?;
            text.as_bytes().to_vec()
        }
        BodyMode::MsgPack => {
            let value: Value = serde_json::from_str(text).context("BODY is not valid JSON")?;
            rmp_serde::to_vec_named(&value)?
        }
    })
}

/// What `zhub request` prints for a reply (without the final newline).
pub(crate) fn reply_output(mode: BodyMode, reply: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(match mode {
        BodyMode::Plain => reply.to_vec(),
        BodyMode::Json => match serde_json::from_slice::<Value>(reply) {
            Ok(value) => value.to_string().into_bytes(),
            Err(_) => bail!("the reply is not JSON: {}", shown(reply)),
        },
        BodyMode::MsgPack => match render::strict_msgpack(reply) {
            Some(value) => value.to_string().into_bytes(),
            None => bail!("the reply is not one MessagePack value: {}", shown(reply)),
        },
    })
}

/// What `zhub serve` gives its command (or echoes) for a request body.
pub(crate) fn command_input(mode: BodyMode, body: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(match mode {
        BodyMode::Plain => body.to_vec(),
        BodyMode::Json => match serde_json::from_slice::<Value>(body) {
            Ok(_) => body.to_vec(),
            Err(_) => match render::strict_msgpack(body) {
                Some(value) => value.to_string().into_bytes(),
                None => bail!(
                    "the request is neither JSON nor MessagePack: {}",
                    shown(body)
                ),
            },
        },
        BodyMode::MsgPack => match render::strict_msgpack(body) {
            Some(value) => value.to_string().into_bytes(),
            None => bail!("the request is not one MessagePack value: {}", shown(body)),
        },
    })
}

/// What `zhub serve` answers for its command's stdout (or the echoed input).
pub(crate) fn serve_reply(mode: BodyMode, output: &[u8]) -> anyhow::Result<Vec<u8>> {
    if mode == BodyMode::Plain {
        return Ok(output.to_vec());
    }
    let value: Value = serde_json::from_slice(output)
        .with_context(|| format!("the output is not JSON: {}", shown(output)))?;
    Ok(match mode {
        BodyMode::MsgPack => rmp_serde::to_vec_named(&value)?,
        _ => value.to_string().into_bytes(),
    })
}

/// A body in an error message: its text, or hex when not UTF-8, cut short when long.
fn shown(body: &[u8]) -> String {
    const MAX: usize = 80;
    let text = match render::body_value(zhub_client::Encoding::Raw, body) {
        Value::String(s) => s,
        other => other.to_string(),
    };
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_is_bytes_both_ways() {
        assert_eq!(request_body(BodyMode::Plain, "hello").unwrap(), b"hello");
        assert_eq!(reply_output(BodyMode::Plain, b"\xa5x").unwrap(), b"\xa5x");
        assert_eq!(command_input(BodyMode::Plain, b"\xff").unwrap(), b"\xff");
        assert_eq!(serve_reply(BodyMode::Plain, b"out\n").unwrap(), b"out\n");
    }

    #[test]
    fn json_and_msgpack_are_symmetric() {
        let packed = request_body(BodyMode::MsgPack, r#"{"k":[1,2]}"#).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<Value>(&packed).unwrap(),
            json!({"k": [1, 2]})
        );
        // A JSON worker reads both; JSON text first, so `1` stays 1.
        assert_eq!(
            command_input(BodyMode::Json, &packed).unwrap(),
            br#"{"k":[1,2]}"#
        );
        assert_eq!(command_input(BodyMode::Json, b"1").unwrap(), b"1");
        assert_eq!(
            command_input(BodyMode::MsgPack, &packed).unwrap(),
            br#"{"k":[1,2]}"#
        );
        assert_eq!(
            serve_reply(BodyMode::MsgPack, b"[1]\n").unwrap(),
            packed_of(json!([1]))
        );
        assert_eq!(serve_reply(BodyMode::Json, b" [1]\n").unwrap(), b"[1]");
        assert_eq!(
            reply_output(BodyMode::MsgPack, &packed).unwrap(),
            br#"{"k":[1,2]}"#
        );
        assert_eq!(
            reply_output(BodyMode::Json, b"{ \"a\": 1 }").unwrap(),
            br#"{"a":1}"#
        );
    }

    #[test]
    fn wrong_formats_are_refused_saying_what_came() {
        assert!(request_body(BodyMode::Json, "{").is_err());
        let e = reply_output(BodyMode::Json, b"plain words").unwrap_err();
        assert!(e.to_string().contains("plain words"), "{e}");
        assert!(reply_output(BodyMode::MsgPack, b"HELLO").is_err());
        assert!(command_input(BodyMode::MsgPack, b"HELLO").is_err());
        assert!(serve_reply(BodyMode::Json, b"not json").is_err());
    }

    fn packed_of(value: Value) -> Vec<u8> {
        rmp_serde::to_vec_named(&value).unwrap()
    }
}
