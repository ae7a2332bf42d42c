//! The native request/reply protocol (`ZHC01`) spoken by zhub clients on the main endpoint.
//!
//! It sits beside Majordomo (7/MDP) on the same ROUTER socket and is told apart by its
//! signature frame. Over MDP it adds a request id (so one client can have many requests in
//! flight and match replies), a timeout carried with the request (so the broker never hands an
//! expired request to anyone), and a status code on every reply.
//!
//! The broker's ROUTER socket sees `[identity, "", ...frames]`; a client's DEALER socket sends
//! and receives `["", ...frames]`. The tables below list the frames after the empty delimiter;
//! [`split_envelope`] peels the envelope off. Integers are big-endian.
//!
//! # Request (client to broker)
//!
//! | frame | content                                                         |
//! |-------|-----------------------------------------------------------------|
//! | 0     | `"ZHC01"` ([`SIGNATURE`])                                       |
//! | 1     | `0x01` (REQUEST)                                                |
//! | 2     | request id, `u64`, chosen by the client                         |
//! | 3     | service name, UTF-8, 1..=[`MAX_SERVICE_LEN`] bytes              |
//! | 4     | timeout in milliseconds, `u32`: the request is dropped after it |
//! | 5..   | body frames (zero or more)                                      |
//!
//! # Reply (broker to client)
//!
//! | frame | content                                                         |
//! |-------|-----------------------------------------------------------------|
//! | 0     | `"ZHC01"`                                                       |
//! | 1     | `0x02` (REPLY)                                                  |
//! | 2     | the request id it answers                                       |
//! | 3     | status code, `u16` ([`Status`])                                 |
//! | 4..   | body frames; for an error status, one UTF-8 frame saying why    |

use std::time::Duration;

pub use crate::names::{check_service, MAX_SERVICE_LEN};
use crate::ProtocolError;

/// Signature frame of the native client protocol, version 1.
pub const SIGNATURE: &[u8] = b"ZHC01";

/// Command byte of a request (frame 1).
pub const REQUEST_COMMAND: u8 = 0x01;
const CMD_REQUEST: u8 = REQUEST_COMMAND;
const CMD_REPLY: u8 = 0x02;

/// The outcome of a request, as carried by every reply.
///
/// The codes follow HTTP's meanings so that a capture reads naturally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// 200: the service answered; the body is its reply.
    Ok,
    /// 400: the broker could not accept the request (bad name, bad body).
    BadRequest,
    /// 403: the broker's auth file does not let this user do this; the body says what was
    /// refused and why.
    Forbidden,
    /// 404: no such service.
    NoService,
    /// 413: the request is larger than the broker accepts (its `max_message`).
    TooLarge,
    /// 422: the service understood the request and refused it (for example: no such
    /// stream); the body says why.
    Rejected,
    /// 500: the broker failed while serving a built-in service.
    Internal,
    /// 502: the worker failed to produce a reply.
    WorkerFailed,
    /// 503: the service's queue is full; retry later.
    Busy,
    /// 504: the request's timeout passed before a reply.
    TimedOut,
}

impl Status {
    /// The numeric code on the wire.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NoService => 404,
            Status::TooLarge => 413,
            Status::Rejected => 422,
            Status::Internal => 500,
            Status::WorkerFailed => 502,
            Status::Busy => 503,
            Status::TimedOut => 504,
        }
    }

    /// The status for a numeric code.
    ///
    /// # Errors
    /// [`ProtocolError::UnknownStatus`] for a code zhub does not define.
    pub fn from_code(code: u16) -> Result<Self, ProtocolError> {
        Ok(match code {
            200 => Status::Ok,
            400 => Status::BadRequest,
            403 => Status::Forbidden,
            404 => Status::NoService,
            413 => Status::TooLarge,
            422 => Status::Rejected,
            500 => Status::Internal,
            502 => Status::WorkerFailed,
            503 => Status::Busy,
            504 => Status::TimedOut,
            other => return Err(ProtocolError::UnknownStatus(other)),
        })
    }
}

/// A request for a named service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Client-chosen id, echoed in the reply.
    pub id: u64,
    /// The service asked for.
    pub service: String,
    /// How long the broker may take to deliver a reply.
    pub timeout: Duration,
    /// Body frames.
    pub body: Vec<Vec<u8>>,
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The id of the request answered.
    pub id: u64,
    /// The outcome.
    pub status: Status,
    /// Body frames: the service's reply, or a UTF-8 reason for an error status.
    pub body: Vec<Vec<u8>>,
}

/// Splits `[identity, "", rest...]` as received on a ROUTER socket.
///
/// # Errors
/// [`ProtocolError::FrameCount`] when there is no identity or no empty delimiter after it.
pub fn split_envelope(frames: &[Vec<u8>]) -> Result<(&[u8], &[Vec<u8>]), ProtocolError> {
    match frames {
        [identity, delimiter, rest @ ..] if delimiter.is_empty() => Ok((identity, rest)),
        _ => Err(ProtocolError::FrameCount {
            what: "envelope",
            expected: 2,
            got: frames.len(),
        }),
    }
}

fn fixed<const N: usize>(frame: &[u8], field: &'static str) -> Result<[u8; N], ProtocolError> {
    frame.try_into().map_err(|_| ProtocolError::FieldSize {
        field,
        expected: N,
        got: frame.len(),
    })
}

/// Checks signature, command and frame count, in that order, so that the error names the
/// most basic thing wrong.
fn expect_head(
    frames: &[Vec<u8>],
    what: &'static str,
    min: usize,
    command: u8,
) -> Result<(), ProtocolError> {
    let count_error = || ProtocolError::FrameCount {
        what,
        expected: min,
        got: frames.len(),
    };
    let [signature, cmd, ..] = frames else {
        return Err(count_error());
    };
    if signature != SIGNATURE {
        return Err(ProtocolError::UnknownProtocol(signature.clone()));
    }
    match cmd.as_slice() {
        [c] if *c == command => {}
        [c] => return Err(ProtocolError::UnknownCommand(*c)),
        other => {
            return Err(ProtocolError::FieldSize {
                field: "command",
                expected: 1,
                got: other.len(),
            })
        }
    }
    if frames.len() < min {
        return Err(count_error());
    }
    Ok(())
}

impl Request {
    /// Encodes the request's frames (without the empty delimiter).
    pub fn encode(&self) -> Vec<Vec<u8>> {
        let millis = u32::try_from(self.timeout.as_millis()).unwrap_or(u32::MAX);
        let mut frames = Vec::with_capacity(5 + self.body.len());
        frames.push(SIGNATURE.to_vec());
        frames.push(vec![CMD_REQUEST]);
        frames.push(self.id.to_be_bytes().to_vec());
        frames.push(self.service.as_bytes().to_vec());
        frames.push(millis.to_be_bytes().to_vec());
        frames.extend(self.body.iter().cloned());
        frames
    }

    /// Decodes a request from its frames (without the empty delimiter).
    ///
    /// # Errors
    /// A [`ProtocolError`] describing the first thing wrong with the frames.
    pub fn decode(frames: &[Vec<u8>]) -> Result<Self, ProtocolError> {
        expect_head(frames, "request", 5, CMD_REQUEST)?;
        let id = u64::from_be_bytes(fixed(&frames[2], "request id")?);
        let service = std::str::from_utf8(&frames[3]).map_err(|_| ProtocolError::InvalidName {
            what: "service",
            name: String::from_utf8_lossy(&frames[3]).into_owned(),
            reason: "not UTF-8",
        })?;
        check_service(service)?;
        let millis = u32::from_be_bytes(fixed(&frames[4], "timeout")?);
        Ok(Request {
            id,
            service: service.to_owned(),
            timeout: Duration::from_millis(u64::from(millis)),
            body: frames[5..].to_vec(),
        })
    }
}

impl Reply {
    /// A reply with status [`Status::Ok`].
    pub fn ok(id: u64, body: Vec<Vec<u8>>) -> Self {
        Reply {
            id,
            status: Status::Ok,
            body,
        }
    }

    /// An error reply whose body is one UTF-8 frame with `reason`.
    pub fn error(id: u64, status: Status, reason: impl Into<String>) -> Self {
        Reply {
            id,
            status,
            body: vec![reason.into().into_bytes()],
        }
    }

    /// Encodes the reply's frames (without the empty delimiter).
    pub fn encode(&self) -> Vec<Vec<u8>> {
        let mut frames = Vec::with_capacity(4 + self.body.len());
        frames.push(SIGNATURE.to_vec());
        frames.push(vec![CMD_REPLY]);
        frames.push(self.id.to_be_bytes().to_vec());
        frames.push(self.status.code().to_be_bytes().to_vec());
        frames.extend(self.body.iter().cloned());
        frames
    }

    /// Decodes a reply from its frames (without the empty delimiter).
    ///
    /// # Errors
    /// A [`ProtocolError`] describing the first thing wrong with the frames.
    pub fn decode(frames: &[Vec<u8>]) -> Result<Self, ProtocolError> {
        let (id, status) = Self::decode_head(frames)?;
        Ok(Reply {
            id,
            status,
            body: frames[4..].to_vec(),
        })
    }

    /// As [`Reply::decode`], taking the frames: the body's frames are moved, not copied (a
    /// megabyte of records read from the log, say).
    ///
    /// # Errors
    /// As for [`Reply::decode`].
    pub fn decode_owned(mut frames: Vec<Vec<u8>>) -> Result<Self, ProtocolError> {
        let (id, status) = Self::decode_head(&frames)?;
        let body = frames.split_off(4);
        Ok(Reply { id, status, body })
    }

    /// The request id and status of a reply's frames, checked.
    fn decode_head(frames: &[Vec<u8>]) -> Result<(u64, Status), ProtocolError> {
        expect_head(frames, "reply", 4, CMD_REPLY)?;
        let id = u64::from_be_bytes(fixed(&frames[2], "request id")?);
        let status = Status::from_code(u16::from_be_bytes(fixed(&frames[3], "status")?))?;
        Ok((id, status))
    }

    /// The error reason carried by a non-OK reply, lossily decoded.
    pub fn reason(&self) -> String {
        self.body
            .first()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .unwrap_or_default()
    }
}
