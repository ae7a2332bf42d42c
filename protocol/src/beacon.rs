//! Discovery beacons: the UDP datagram a broker started with `--discover` broadcasts every
//! heartbeat, so that brokers of one zone find each other and clients find a broker.
//!
//! | offset | size | field                                                        |
//! |--------|------|--------------------------------------------------------------|
//! | 0      | 3    | `ZHB`                                                        |
//! | 3      | 1    | version ([`VERSION`])                                        |
//! | 4      | 8    | the broker's id, big-endian                                  |
//! | 12     | rest | MessagePack map: `name`, `zone`, `main`, `cluster` (strings) |
//!
//! A datagram is at most [`MAX_BEACON`] bytes; anything else on the port is not a beacon.

use serde::{Deserialize, Serialize};

use crate::{body, ProtocolError};

/// First bytes of every beacon.
pub const MAGIC: &[u8; 3] = b"ZHB";
/// The beacon layout's version.
pub const VERSION: u8 = 1;
/// Largest beacon, in bytes.
pub const MAX_BEACON: usize = 1024;
/// UDP port brokers beacon on and clients listen on unless told otherwise.
pub const DEFAULT_PORT: u16 = 5670;

/// What a broker says of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Beacon {
    /// Its random id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its zone.
    pub zone: String,
    /// Its main endpoint, for clients.
    pub main: String,
    /// Its cluster endpoint, for peers.
    pub cluster: String,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct Fields {
    name: String,
    zone: String,
    main: String,
    cluster: String,
}

fn check_size(len: usize) -> Result<(), ProtocolError> {
    if len > MAX_BEACON {
        return Err(ProtocolError::OutOfRange {
            field: "beacon size",
            value: len as u64,
            min: 0,
            max: MAX_BEACON as u64,
        });
    }
    Ok(())
}

impl Beacon {
    /// The datagram.
    ///
    /// # Errors
    /// [`ProtocolError::OutOfRange`] when the fields make it longer than [`MAX_BEACON`].
    pub fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        let fields = Fields {
            name: self.name.clone(),
            zone: self.zone.clone(),
            main: self.main.clone(),
            cluster: self.cluster.clone(),
        };
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&body::encode(&fields)?);
        check_size(out.len())?;
        Ok(out)
    }

    /// Reads a datagram.
    ///
    /// # Errors
    /// A [`ProtocolError`] for anything that is not a beacon of this version.
    pub fn decode(datagram: &[u8]) -> Result<Beacon, ProtocolError> {
        check_size(datagram.len())?;
        if datagram.len() < 12 || &datagram[..3] != MAGIC {
            return Err(ProtocolError::UnknownProtocol(
                datagram[..datagram.len().min(3)].to_vec(),
            ));
        }
        if datagram[3] != VERSION {
            return Err(ProtocolError::UnsupportedVersion(datagram[3]));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&datagram[4..12]);
        let fields: Fields = body::decode(&datagram[12..])?;
        Ok(Beacon {
            id: u64::from_be_bytes(id),
            name: fields.name,
            zone: fields.zone,
            main: fields.main,
            cluster: fields.cluster,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beacons_round_trip_and_garbage_is_refused() {
        let b = Beacon {
            id: 0xfeed,
            name: "node1".into(),
            zone: "eu".into(),
            main: "tcp://10.0.0.1:5555".into(),
            cluster: "tcp://10.0.0.1:5560".into(),
        };
        let datagram = b.encode().unwrap();
        assert_eq!(Beacon::decode(&datagram).unwrap(), b);
        for n in 0..datagram.len() {
            let _ = Beacon::decode(&datagram[..n]);
        }
        assert!(Beacon::decode(b"ZHB\x02aaaaaaaa").is_err());
        assert!(Beacon::decode(b"hello, world").is_err());
        assert!(Beacon::decode(&vec![b'Z'; MAX_BEACON + 1]).is_err());
        let huge = Beacon {
            name: "x".repeat(MAX_BEACON),
            ..b
        };
        assert!(huge.encode().is_err());
    }
}
