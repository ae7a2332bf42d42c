//! The cluster link between peer brokers (`ZHL01`): greetings, heartbeats, service capacity,
//! and requests forwarded to a peer's workers with their answers.
//!
//! A broker binds a ROUTER at its cluster endpoint; for each peer it is told of, it connects
//! a DEALER there. Either side of a link may send any command; a link is in use once the
//! connecting side's `HELLO` was answered with `WELCOME`. The bodies of `HELLO`, `WELCOME` and
//! `CAPACITY` are MessagePack; every other field is a fixed-size big-endian integer.
//!
//! | frame | HELLO / WELCOME | HEARTBEAT           | CAPACITY    | FORWARD        | ANSWER        | BYE |
//! |-------|-----------------|---------------------|-------------|----------------|---------------|-----|
//! | 0     | `ZHL01`         | `ZHL01`             | `ZHL01`     | `ZHL01`        | `ZHL01`       | `ZHL01` |
//! | 1     | `0x01` / `0x02` | `0x03`              | `0x04`      | `0x05`         | `0x06`        | `0x07` |
//! | 2     | [`PeerHello`]   | sent at, µs (8)     | [`Capacity`]| token (8)      | token (8)     |     |
//! | 3     |                 | echoed stamp, µs (8)|             | timeout, ms (4)| status (2)    |     |
//! | 4     |                 | held for, µs (8)    |             | hops (1)       | body...       |     |
//! | 5     |                 |                     |             | service        |               |     |
//! | 6...  |                 |                     |             | body...        |               |     |
//!
//! A heartbeat echoes the stamp of the last heartbeat its sender heard on that link and how
//! long it held it, so that each side measures the link's round trip without clocks agreeing.
//! A forwarded request's token is the forwarding broker's own; its answer carries it back.
//!
//! # Zones
//! Brokers of one zone form a full mesh, and inside it a request crosses one link: a broker
//! never passes a request from a zone mate to another zone mate. Brokers of different zones
//! that link are gateways. What a broker offers a peer in `CAPACITY` depends on the peer's
//! zone: to a zone mate, its own services and the routes it learned from other zones; to a
//! broker of another zone, everything it can reach whose path does not already hold that
//! zone, with its own zone put in front of the path ([`Capacity::paths`]). A broker drops an
//! offer whose path holds its own zone (path vectors, as BGP's AS paths), and a forwarded
//! request counts its `hops`, which may not pass [`MAX_HOPS`], as a second guard.

use serde::{Deserialize, Serialize};

use crate::names::check_service;
use crate::{body, ProtocolError, Status};

/// First frame of every cluster-link message.
pub const SIGNATURE: &[u8] = b"ZHL01";
/// Version of the link protocol a broker speaks, in [`PeerHello::version`]. A greeting of
/// another version is refused (version 2 added zone paths and hop counts; version 3, zone
/// paths on the bus's peer interests and peer copies, [`crate::delivery`]).
pub const VERSION: u32 = 3;

const CMD_HELLO: u8 = 0x01;
const CMD_WELCOME: u8 = 0x02;
const CMD_HEARTBEAT: u8 = 0x03;
const CMD_CAPACITY: u8 = 0x04;
const CMD_FORWARD: u8 = 0x05;
const CMD_ANSWER: u8 = 0x06;
const CMD_BYE: u8 = 0x07;

/// Longest broker or zone name.
pub const MAX_NAME_LEN: usize = 64;
/// Most services one `CAPACITY` message may carry.
pub const MAX_CAPACITY_ENTRIES: usize = 10_000;
/// Most zones a route's path may name.
pub const MAX_PATH_ZONES: usize = 16;
/// Most links a forwarded request may cross; a broker refuses to forward it further. Room
/// for the longest path an offer may name, with an entry and an exit gateway in each zone.
pub const MAX_HOPS: u8 = 2 * MAX_PATH_ZONES as u8 + 2;

/// Who a broker is, sent on every new link (in `HELLO`, answered with the same in `WELCOME`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerHello {
    /// Link protocol version ([`VERSION`]).
    pub version: u32,
    /// The broker's random id, fixed for its process.
    pub id: u64,
    /// Random per start of the broker: a new session means every state learned from the
    /// old one is void.
    pub session: u64,
    /// The broker's name (`--name`).
    pub name: String,
    /// Its zone (`--zone`).
    pub zone: String,
    /// Its deliver endpoint, where the peer subscribes to what is published there.
    pub deliver: String,
    /// How often it heartbeats each link, in milliseconds.
    pub heartbeat_ms: u64,
    /// The subscriber id its bus uses at the peer's deliver endpoint ([`crate::delivery`]):
    /// random, and told only over the link, since whoever knows it could subscribe to the
    /// copies meant for the broker.
    pub subscriber: u64,
}

/// Services the sender offers the receiver and the credit behind each (requests it takes at
/// once: its own workers' and that of the routes it passes on); credit 0 means the service
/// is gone. With `reset`, the list replaces everything the peer knew of the sender's
/// services; without, it changes the services it names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capacity {
    /// Whether the list is complete.
    pub reset: bool,
    /// `(service, credit)` pairs.
    pub services: Vec<(String, u32)>,
    /// `(service, zones)`: the zones a request for the service may cross from the sender on,
    /// nearest first, for the services reached through another zone than the receiver's. A
    /// service not listed here is served in the receiver's own zone.
    pub paths: Vec<(String, Vec<String>)>,
}

impl Capacity {
    /// The message cut into messages of at most [`MAX_CAPACITY_ENTRIES`] services each, which
    /// a peer takes in turn as it would the whole: the first keeps `reset`, the others
    /// change what it said.
    #[must_use]
    pub fn into_messages(self) -> Vec<Capacity> {
        if self.services.len() <= MAX_CAPACITY_ENTRIES {
            return vec![self];
        }
        let paths: std::collections::HashMap<String, Vec<String>> =
            self.paths.into_iter().collect();
        let mut out: Vec<Capacity> = Vec::new();
        for chunk in self.services.chunks(MAX_CAPACITY_ENTRIES) {
            out.push(Capacity {
                reset: self.reset && out.is_empty(),
                paths: chunk
                    .iter()
                    .filter_map(|(s, _)| paths.get(s).map(|p| (s.clone(), p.clone())))
                    .collect(),
                services: chunk.to_vec(),
            });
        }
        out
    }

    /// The zones `service`'s offer crosses (empty: the receiver's own zone).
    #[must_use]
    pub fn path_of(&self, service: &str) -> &[String] {
        self.paths
            .iter()
            .find(|(s, _)| s == service)
            .map_or(&[], |(_, p)| p.as_slice())
    }
}

/// Timing stamps of a heartbeat (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Beat {
    /// When it was sent, in the sender's clock (µs).
    pub sent_us: u64,
    /// The `sent_us` of the last heartbeat the sender heard on this link (0: none yet).
    pub echo_us: u64,
    /// How long the sender held that echoed heartbeat before this one (µs).
    pub held_us: u64,
}

/// One cluster-link message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkMessage {
    /// The connecting side's greeting.
    Hello(PeerHello),
    /// The answer to a greeting.
    Welcome(PeerHello),
    /// Liveness and round trip.
    Heartbeat(Beat),
    /// Service capacity, complete or changed.
    Capacity(Capacity),
    /// A request for the receiver to serve: by its own workers, or, across zones, passed on.
    Forward {
        /// The sender's token for the request.
        token: u64,
        /// Time left before the request's deadline.
        timeout_ms: u32,
        /// Links the request crossed, this one included (at most [`MAX_HOPS`]).
        hops: u8,
        /// The service.
        service: String,
        /// The request body frames.
        body: Vec<Vec<u8>>,
    },
    /// The answer to a forwarded request: a reply (`Status::Ok`) or an error with its reason
    /// as the one body frame.
    Answer {
        /// The token of the `FORWARD`.
        token: u64,
        /// Its status.
        status: Status,
        /// Reply frames, or the reason.
        body: Vec<Vec<u8>>,
    },
    /// The sender closes this link.
    Bye,
}

fn word<const N: usize>(frame: &[u8], field: &'static str) -> Result<[u8; N], ProtocolError> {
    frame.try_into().map_err(|_| ProtocolError::FieldSize {
        field,
        expected: N,
        got: frame.len(),
    })
}

fn count(frames: &[Vec<u8>], what: &'static str, min: usize) -> Result<(), ProtocolError> {
    if frames.len() < min {
        return Err(ProtocolError::FrameCount {
            what,
            expected: min,
            got: frames.len(),
        });
    }
    Ok(())
}

/// Checks a broker or zone name: 1 to [`MAX_NAME_LEN`] bytes, no control character and no
/// `@` (which separates a built-in service from the broker it names, `zhub.kv@B1`).
///
/// # Errors
/// [`ProtocolError::InvalidName`].
pub fn check_name(what: &'static str, name: &str) -> Result<(), ProtocolError> {
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name.chars().any(|c| c.is_control() || c == '@')
    {
        return Err(ProtocolError::InvalidName {
            what,
            name: name.chars().take(64).collect(),
            reason: "1 to 64 bytes without control characters or '@'",
        });
    }
    Ok(())
}

fn check_hello(hello: &PeerHello) -> Result<(), ProtocolError> {
    if hello.version != VERSION {
        return Err(ProtocolError::OutOfRange {
            field: "link protocol version",
            value: u64::from(hello.version),
            min: u64::from(VERSION),
            max: u64::from(VERSION),
        });
    }
    check_name("broker name", &hello.name)?;
    check_name("zone", &hello.zone)
}

fn check_capacity(capacity: &Capacity) -> Result<(), ProtocolError> {
    let entries = capacity.services.len().max(capacity.paths.len());
    if entries > MAX_CAPACITY_ENTRIES {
        return Err(ProtocolError::OutOfRange {
            field: "capacity entries",
            value: entries as u64,
            min: 0,
            max: MAX_CAPACITY_ENTRIES as u64,
        });
    }
    for (service, _) in &capacity.services {
        check_service(service)?;
    }
    for (service, path) in &capacity.paths {
        check_service(service)?;
        if path.len() > MAX_PATH_ZONES {
            return Err(ProtocolError::OutOfRange {
                field: "zones in a path",
                value: path.len() as u64,
                min: 0,
                max: MAX_PATH_ZONES as u64,
            });
        }
        for zone in path {
            check_name("zone", zone)?;
        }
    }
    Ok(())
}

impl LinkMessage {
    /// Encodes the message's frames.
    ///
    /// # Errors
    /// [`ProtocolError::Encode`] if a MessagePack body cannot be encoded.
    pub fn encode(&self) -> Result<Vec<Vec<u8>>, ProtocolError> {
        let head = |cmd: u8| vec![SIGNATURE.to_vec(), vec![cmd]];
        Ok(match self {
            LinkMessage::Hello(h) => [head(CMD_HELLO), vec![body::encode(h)?]].concat(),
            LinkMessage::Welcome(h) => [head(CMD_WELCOME), vec![body::encode(h)?]].concat(),
            LinkMessage::Heartbeat(b) => {
                let mut frames = head(CMD_HEARTBEAT);
                for v in [b.sent_us, b.echo_us, b.held_us] {
                    frames.push(v.to_be_bytes().to_vec());
                }
                frames
            }
            LinkMessage::Capacity(c) => [head(CMD_CAPACITY), vec![body::encode(c)?]].concat(),
            LinkMessage::Forward {
                token,
                timeout_ms,
                hops,
                service,
                body,
            } => {
                let mut frames = head(CMD_FORWARD);
                frames.push(token.to_be_bytes().to_vec());
                frames.push(timeout_ms.to_be_bytes().to_vec());
                frames.push(vec![*hops]);
                frames.push(service.as_bytes().to_vec());
                frames.extend(body.iter().cloned());
                frames
            }
            LinkMessage::Answer {
                token,
                status,
                body,
            } => {
                let mut frames = head(CMD_ANSWER);
                frames.push(token.to_be_bytes().to_vec());
                frames.push(status.code().to_be_bytes().to_vec());
                frames.extend(body.iter().cloned());
                frames
            }
            LinkMessage::Bye => head(CMD_BYE),
        })
    }

    /// Decodes a message from its frames. Everything from a peer is checked: names, counts
    /// and sizes.
    ///
    /// # Errors
    /// A [`ProtocolError`] describing the first thing wrong with the frames.
    pub fn decode(frames: &[Vec<u8>]) -> Result<Self, ProtocolError> {
        count(frames, "cluster message", 2)?;
        if frames[0] != SIGNATURE {
            return Err(ProtocolError::UnknownProtocol(frames[0].clone()));
        }
        let [cmd] = word::<1>(&frames[1], "command")?;
        Ok(match cmd {
            CMD_HELLO | CMD_WELCOME => {
                count(frames, "hello", 3)?;
                let hello: PeerHello = body::decode(&frames[2])?;
                check_hello(&hello)?;
                if cmd == CMD_HELLO {
                    LinkMessage::Hello(hello)
                } else {
                    LinkMessage::Welcome(hello)
                }
            }
            CMD_HEARTBEAT => {
                count(frames, "heartbeat", 5)?;
                let v = |i: usize, f| word::<8>(&frames[i], f).map(u64::from_be_bytes);
                LinkMessage::Heartbeat(Beat {
                    sent_us: v(2, "sent at")?,
                    echo_us: v(3, "echo")?,
                    held_us: v(4, "held for")?,
                })
            }
            CMD_CAPACITY => {
                count(frames, "capacity", 3)?;
                let capacity: Capacity = body::decode(&frames[2])?;
                check_capacity(&capacity)?;
                LinkMessage::Capacity(capacity)
            }
            CMD_FORWARD => {
                count(frames, "forward", 6)?;
                let [hops] = word::<1>(&frames[4], "hops")?;
                if hops == 0 || hops > MAX_HOPS {
                    return Err(ProtocolError::OutOfRange {
                        field: "hops",
                        value: u64::from(hops),
                        min: 1,
                        max: u64::from(MAX_HOPS),
                    });
                }
                let service =
                    std::str::from_utf8(&frames[5]).map_err(|_| ProtocolError::InvalidName {
                        what: "service",
                        name: String::from_utf8_lossy(&frames[5]).into_owned(),
                        reason: "not UTF-8",
                    })?;
                check_service(service)?;
                LinkMessage::Forward {
                    token: u64::from_be_bytes(word(&frames[2], "token")?),
                    timeout_ms: u32::from_be_bytes(word(&frames[3], "timeout")?),
                    hops,
                    service: service.to_owned(),
                    body: frames[6..].to_vec(),
                }
            }
            CMD_ANSWER => {
                count(frames, "answer", 4)?;
                LinkMessage::Answer {
                    token: u64::from_be_bytes(word(&frames[2], "token")?),
                    status: Status::from_code(u16::from_be_bytes(word(&frames[3], "status")?))?,
                    body: frames[4..].to_vec(),
                }
            }
            CMD_BYE => LinkMessage::Bye,
            other => return Err(ProtocolError::UnknownCommand(other)),
        })
    }
}

/// The token of an encoded `FORWARD`, without decoding the rest; `None` for any other
/// message.
pub fn forwarded_token(frames: &[Vec<u8>]) -> Option<u64> {
    match frames {
        [sig, cmd, token, ..] if sig == SIGNATURE && cmd[..] == [CMD_FORWARD] => {
            word::<8>(token, "token").ok().map(u64::from_be_bytes)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> PeerHello {
        PeerHello {
            version: VERSION,
            id: 7,
            session: 9,
            name: "B1".into(),
            zone: "eu".into(),
            deliver: "tcp://127.0.0.1:5557".into(),
            heartbeat_ms: 1000,
            subscriber: 11,
        }
    }

    #[test]
    fn every_message_round_trips() {
        let messages = [
            LinkMessage::Hello(hello()),
            LinkMessage::Welcome(hello()),
            LinkMessage::Heartbeat(Beat {
                sent_us: 1,
                echo_us: 2,
                held_us: 3,
            }),
            LinkMessage::Capacity(Capacity {
                reset: true,
                services: vec![("print".into(), 4), ("afficher".into(), 0)],
                paths: vec![("print".into(), vec!["eu".into(), "us".into()])],
            }),
            LinkMessage::Forward {
                token: 42,
                timeout_ms: 1500,
                hops: 3,
                service: "print".into(),
                body: vec![b"a".to_vec(), Vec::new()],
            },
            LinkMessage::Answer {
                token: 42,
                status: Status::TimedOut,
                body: vec![b"late".to_vec()],
            },
            LinkMessage::Bye,
        ];
        for m in messages {
            let frames = m.encode().unwrap();
            assert_eq!(LinkMessage::decode(&frames).unwrap(), m);
            let token = match m {
                LinkMessage::Forward { token, .. } => Some(token),
                _ => None,
            };
            assert_eq!(forwarded_token(&frames), token);
        }
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let good = LinkMessage::Forward {
            token: 1,
            timeout_ms: 1,
            hops: 1,
            service: "s".into(),
            body: vec![],
        }
        .encode()
        .unwrap();
        // Every prefix of a good message, and every frame cut or grown by a byte.
        for n in 0..good.len() {
            assert!(LinkMessage::decode(&good[..n]).is_err());
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i].push(0xff);
            let _ = LinkMessage::decode(&bad);
            bad[i].clear();
            let _ = LinkMessage::decode(&bad);
        }
        let mut bad_name = hello();
        bad_name.name = "x".repeat(MAX_NAME_LEN + 1);
        let frames = LinkMessage::Hello(bad_name).encode().unwrap();
        assert!(LinkMessage::decode(&frames).is_err());
        let garbage = vec![SIGNATURE.to_vec(), vec![CMD_HELLO], vec![0xc1, 0xff]];
        assert!(LinkMessage::decode(&garbage).is_err());
        assert!(LinkMessage::decode(&[SIGNATURE.to_vec(), vec![0x99]]).is_err());
        assert!(LinkMessage::decode(&[b"ZHC01".to_vec(), vec![CMD_BYE]]).is_err());
    }

    #[test]
    fn hops_paths_and_versions_are_bounded() {
        let forward = |hops| {
            LinkMessage::Forward {
                token: 1,
                timeout_ms: 1,
                hops,
                service: "s".into(),
                body: vec![],
            }
            .encode()
            .unwrap()
        };
        assert!(LinkMessage::decode(&forward(MAX_HOPS)).is_ok());
        assert!(LinkMessage::decode(&forward(0)).is_err());
        assert!(LinkMessage::decode(&forward(MAX_HOPS + 1)).is_err());
        let capacity = |path: Vec<String>| {
            LinkMessage::Capacity(Capacity {
                reset: true,
                services: vec![("s".into(), 1)],
                paths: vec![("s".into(), path)],
            })
            .encode()
            .unwrap()
        };
        assert!(LinkMessage::decode(&capacity(vec!["a".into(); MAX_PATH_ZONES])).is_ok());
        assert!(LinkMessage::decode(&capacity(vec!["a".into(); MAX_PATH_ZONES + 1])).is_err());
        assert!(LinkMessage::decode(&capacity(vec![String::new()])).is_err());
        let mut old = hello();
        old.version = 1;
        let frames = LinkMessage::Hello(old).encode().unwrap();
        assert!(LinkMessage::decode(&frames).is_err());
    }

    #[test]
    fn a_long_capacity_goes_in_messages_a_peer_accepts() {
        let n = MAX_CAPACITY_ENTRIES * 2 + 1;
        let services: Vec<(String, u32)> = (0..n).map(|i| (format!("s{i}"), 1)).collect();
        let paths = vec![(format!("s{}", n - 1), vec!["z".to_owned()])];
        let whole = Capacity {
            reset: true,
            services: services.clone(),
            paths,
        };
        let parts = whole.into_messages();
        assert_eq!(parts.len(), 3);
        assert!(parts[0].reset && !parts[1].reset && !parts[2].reset);
        assert_eq!(parts[2].path_of(&format!("s{}", n - 1)), ["z".to_owned()]);
        let joined: Vec<(String, u32)> = parts.iter().flat_map(|c| c.services.clone()).collect();
        assert_eq!(joined, services);
        for part in parts {
            let frames = LinkMessage::Capacity(part).encode().unwrap();
            assert!(LinkMessage::decode(&frames).is_ok());
        }
    }

    #[test]
    fn an_offer_without_a_path_is_in_the_receivers_zone() {
        let c = Capacity {
            reset: false,
            services: vec![("a".into(), 1), ("b".into(), 2)],
            paths: vec![("b".into(), vec!["z".into()])],
        };
        assert!(c.path_of("a").is_empty());
        assert_eq!(c.path_of("b"), ["z".to_owned()]);
    }
}
