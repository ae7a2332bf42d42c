//! Majordomo 0.1 (RFC 7/MDP) on the wire, so that existing Majordomo clients and workers in
//! any language work with a zhub broker unchanged.
//!
//! The broker's ROUTER sees `[identity, "", ...frames]`; REQ and DEALER peers send
//! `["", ...frames]`. The tables list the frames after the empty delimiter, which is what
//! these codecs take and return.
//!
//! # MDP/Client (`MDPC01`)
//!
//! | frame | request (client to broker) | reply (broker to client)  |
//! |-------|----------------------------|---------------------------|
//! | 0     | `"MDPC01"`                 | `"MDPC01"`                |
//! | 1     | service name               | service name              |
//! | 2..   | request body               | reply body                |
//!
//! # MDP/Worker (`MDPW01`)
//!
//! | frame | READY          | REQUEST (broker to worker) | REPLY (worker to broker) | HEARTBEAT | DISCONNECT |
//! |-------|----------------|----------------------------|--------------------------|-----------|------------|
//! | 0     | `"MDPW01"`     | `"MDPW01"`                 | `"MDPW01"`               | `"MDPW01"`| `"MDPW01"` |
//! | 1     | `0x01`         | `0x02`                     | `0x03`                   | `0x04`    | `0x05`     |
//! | 2     | service name   | client address (opaque)    | client address           |           |            |
//! | 3     | credit (zhub)  | `""`                       | `""`                     |           |            |
//! | 4..   |                | request body               | reply body               |           |            |
//!
//! The client address is opaque to workers, who echo it in their reply. A zhub broker puts
//! its own 8-byte request token there, which is how it matches a reply to the request, retries
//! a request whose worker died, and serves native (`ZHC01`) clients through plain MDP workers.
//!
//! ## Credit (a zhub extension of READY)
//!
//! A zhub worker that takes several requests at once says so in an optional fourth READY
//! frame: its credit, a big-endian `u32` in `1..=`[`MAX_CREDIT`], the most requests the
//! broker may have in flight to it. A READY of three frames, which is what every Majordomo
//! worker sends, means credit 1, so those workers work unchanged; and a zhub worker with
//! credit 1 sends the plain three-frame READY, so it still serves any Majordomo broker.
//! Requests and replies are unchanged: the client address already tells replies apart, so
//! they may come back in any order.
//!
//! ## Failure (a zhub extension)
//!
//! A zhub worker that could not serve a request (its command failed, say) may answer
//! FAILED instead of REPLY: frames `"MDPW01"`, `0x06`, client address, `""`, reason (UTF-8
//! text). The broker answers the client with a worker-failed error carrying the reason, does
//! not retry the request (the worker did run it; running it again could repeat its effects),
//! and counts it as `worker_failed`. A Majordomo client, which has no error replies, gets no
//! answer and sees its own timeout. Only zhub workers send FAILED, and only when asked to
//! (`Worker::fail`); a Majordomo broker would take it for a protocol error.
//!
//! # Service discovery (`mmi.service`)
//!
//! A request to `mmi.service` whose body is a service name is answered `"200"` when that
//! service has workers and `"404"` when not; any other `mmi.` name is answered `"501"`.

use crate::ProtocolError;

/// Signature of MDP/Client 0.1.
pub const CLIENT: &[u8] = b"MDPC01";
/// Signature of MDP/Worker 0.1.
pub const WORKER: &[u8] = b"MDPW01";
/// The service-discovery service.
pub const MMI_SERVICE: &str = "mmi.service";
/// Prefix of the Majordomo Management Interface services.
pub const MMI_PREFIX: &str = "mmi.";
/// The most requests a worker may ask to have in flight at once (its READY credit). The
/// broker keeps every request's body until it is answered, so a worker's credit is memory
/// the broker commits to it; this bounds what one READY can claim.
pub const MAX_CREDIT: u32 = 1024;

const READY: u8 = 0x01;
const REQUEST: u8 = 0x02;
const REPLY: u8 = 0x03;
const HEARTBEAT: u8 = 0x04;
const DISCONNECT: u8 = 0x05;
const FAILED: u8 = 0x06;

/// Longest failure reason the broker passes on, in bytes; a longer one is cut.
pub const MAX_REASON_LEN: usize = 1024;

/// A client request or reply (they share one layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessage {
    /// Service name.
    pub service: String,
    /// Body frames.
    pub body: Vec<Vec<u8>>,
}

impl ClientMessage {
    /// Encodes the frames (without the empty delimiter).
    pub fn encode(&self) -> Vec<Vec<u8>> {
        let mut frames = Vec::with_capacity(2 + self.body.len());
        frames.push(CLIENT.to_vec());
        frames.push(self.service.as_bytes().to_vec());
        frames.extend(self.body.iter().cloned());
        frames
    }

    /// Decodes the frames (without the empty delimiter).
    ///
    /// # Errors
    /// [`ProtocolError`] for a wrong signature, a missing service frame or a bad name.
    pub fn decode(frames: &[Vec<u8>]) -> Result<Self, ProtocolError> {
        let [signature, service, body @ ..] = frames else {
            return Err(ProtocolError::FrameCount {
                what: "MDP client message",
                expected: 2,
                got: frames.len(),
            });
        };
        if signature != CLIENT {
            return Err(ProtocolError::UnknownProtocol(signature.clone()));
        }
        Ok(ClientMessage {
            service: service_name(service)?,
            body: body.to_vec(),
        })
    }
}

/// A command on the worker side of MDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerCommand {
    /// The worker offers a service.
    Ready {
        /// The service.
        service: String,
        /// How many requests the worker takes at once, `1..=`[`MAX_CREDIT`]; Majordomo
        /// workers have credit 1.
        credit: u32,
    },
    /// The broker hands the worker a request.
    Request {
        /// Opaque address to echo in the reply.
        client: Vec<u8>,
        /// Body frames.
        body: Vec<Vec<u8>>,
    },
    /// The worker answers a request.
    Reply {
        /// The address from the request.
        client: Vec<u8>,
        /// Body frames.
        body: Vec<Vec<u8>>,
    },
    /// The worker could not serve a request (a zhub extension: see the module docs).
    Failed {
        /// The address from the request.
        client: Vec<u8>,
        /// Why, as text for the client.
        reason: String,
    },
    /// Either side is alive.
    Heartbeat,
    /// Either side ends the session.
    Disconnect,
}

impl WorkerCommand {
    /// Encodes the frames (without the empty delimiter).
    pub fn encode(&self) -> Vec<Vec<u8>> {
        let mut frames = vec![WORKER.to_vec()];
        match self {
            WorkerCommand::Ready { service, credit } => {
                frames.push(vec![READY]);
                frames.push(service.as_bytes().to_vec());
                // Credit 1 is plain Majordomo: no frame, byte for byte what MDP workers send.
                if *credit != 1 {
                    frames.push(credit.to_be_bytes().to_vec());
                }
            }
            WorkerCommand::Request { client, body } | WorkerCommand::Reply { client, body } => {
                let command = if matches!(self, WorkerCommand::Request { .. }) {
                    REQUEST
                } else {
                    REPLY
                };
                frames.push(vec![command]);
                frames.push(client.clone());
                frames.push(Vec::new());
                frames.extend(body.iter().cloned());
            }
            WorkerCommand::Failed { client, reason } => {
                frames.push(vec![FAILED]);
                frames.push(client.clone());
                frames.push(Vec::new());
                frames.push(reason.as_bytes().to_vec());
            }
            WorkerCommand::Heartbeat => frames.push(vec![HEARTBEAT]),
            WorkerCommand::Disconnect => frames.push(vec![DISCONNECT]),
        }
        frames
    }

    /// Decodes the frames (without the empty delimiter).
    ///
    /// # Errors
    /// [`ProtocolError`] for a wrong signature, an unknown command, or frames missing.
    pub fn decode(frames: &[Vec<u8>]) -> Result<Self, ProtocolError> {
        let count = |expected| ProtocolError::FrameCount {
            what: "MDP worker command",
            expected,
            got: frames.len(),
        };
        let [signature, command, rest @ ..] = frames else {
            return Err(count(2));
        };
        if signature != WORKER {
            return Err(ProtocolError::UnknownProtocol(signature.clone()));
        }
        let command = match command.as_slice() {
            [c] => *c,
            other => {
                return Err(ProtocolError::FieldSize {
                    field: "command",
                    expected: 1,
                    got: other.len(),
                })
            }
        };
        match (command, rest) {
            (READY, [service]) => Ok(WorkerCommand::Ready {
                service: service_name(service)?,
                credit: 1,
            }),
            (READY, [service, credit]) => Ok(WorkerCommand::Ready {
                service: service_name(service)?,
                credit: decode_credit(credit)?,
            }),
            (READY, _) => Err(count(3)),
            (REQUEST | REPLY, [client, delimiter, body @ ..]) if delimiter.is_empty() => {
                let (client, body) = (client.clone(), body.to_vec());
                Ok(if command == REQUEST {
                    WorkerCommand::Request { client, body }
                } else {
                    WorkerCommand::Reply { client, body }
                })
            }
            (REQUEST | REPLY, _) => Err(count(4)),
            (FAILED, [client, delimiter, reason]) if delimiter.is_empty() => {
                Ok(WorkerCommand::Failed {
                    client: client.clone(),
                    reason: printable_reason(reason),
                })
            }
            (FAILED, _) => Err(count(5)),
            (HEARTBEAT, []) => Ok(WorkerCommand::Heartbeat),
            (DISCONNECT, []) => Ok(WorkerCommand::Disconnect),
            (HEARTBEAT | DISCONNECT, _) => Err(count(2)),
            (other, _) => Err(ProtocolError::UnknownCommand(other)),
        }
    }
}

/// A peer's failure reason made safe to log and pass on: cut to [`MAX_REASON_LEN`] bytes,
/// invalid UTF-8 and control characters replaced.
fn printable_reason(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_REASON_LEN)];
    String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

fn decode_credit(frame: &[u8]) -> Result<u32, ProtocolError> {
    let bytes = <[u8; 4]>::try_from(frame).map_err(|_| ProtocolError::FieldSize {
        field: "credit",
        expected: 4,
        got: frame.len(),
    })?;
    let credit = u32::from_be_bytes(bytes);
    if !(1..=MAX_CREDIT).contains(&credit) {
        return Err(ProtocolError::OutOfRange {
            field: "credit",
            value: credit.into(),
            min: 1,
            max: MAX_CREDIT.into(),
        });
    }
    Ok(credit)
}

fn service_name(frame: &[u8]) -> Result<String, ProtocolError> {
    let name = std::str::from_utf8(frame).map_err(|_| ProtocolError::InvalidName {
        what: "service",
        name: String::from_utf8_lossy(frame).into_owned(),
        reason: "not UTF-8",
    })?;
    crate::request::check_service(name)?;
    Ok(name.to_owned())
}
