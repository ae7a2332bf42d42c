//! MessagePack bodies: the one encoding every typed zhub API uses.
//!
//! Structs are encoded as maps with field names (`rmp_serde::to_vec_named`), so that peers in
//! other languages, and the CLI's JSON view, see named fields rather than positional arrays.

use serde::{de::DeserializeOwned, Serialize};

use crate::ProtocolError;

/// Encodes `value` as a MessagePack body.
///
/// # Errors
/// [`ProtocolError::Encode`] when serde refuses the value (a map with non-string keys is fine;
/// a type whose `Serialize` impl fails is not).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ProtocolError> {
    rmp_serde::to_vec_named(value).map_err(|e| ProtocolError::Encode(e.to_string()))
}

/// Decodes a MessagePack body into `T`.
///
/// # Errors
/// [`ProtocolError::Decode`] when the bytes are not MessagePack or do not fit `T`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ProtocolError> {
    rmp_serde::from_slice(bytes).map_err(|e| ProtocolError::Decode(e.to_string()))
}
