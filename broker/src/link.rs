//! The link between the router and the storage thread: whom to answer, and the two frame
//! layouts that carry requests one way and replies the other, in one place.
//!
//! | direction         | frames                                                   |
//! |-------------------|----------------------------------------------------------|
//! | router -> storage | client identity, request id (u64 BE), service (1 byte), body |
//! | storage -> router | client identity, request id (u64 BE), status (u16 BE), body  |
//!
//! The service byte is [`StorageService::Log`], [`StorageService::Kv`] or
//! [`StorageService::Stats`]; a reply's body is the MessagePack reply on `200 OK` and the
//! reason, as UTF-8, on any other status.
//!
//! The link is bounded ([`crate::config::Config::storage_queue`] requests each way, set on
//! both sockets): the router sends without blocking, and a request that finds the link full
//! is answered `Busy` at once, so that a slow disk never stalls routing.

use std::collections::HashSet;

use tracing::error;
use zhub_protocol::Status;

/// Endpoint of the router-storage pair.
pub(crate) const ENDPOINT: &str = "inproc://storage";
/// Endpoint where the router hears that the storage thread has stopped.
pub(crate) const DOWN_ENDPOINT: &str = "inproc://storage-down";

/// Whom to answer: the client's connection and its request's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Ticket {
    /// The client's ROUTER identity.
    pub(crate) client: Vec<u8>,
    /// The id the client gave its request.
    pub(crate) id: u64,
}

/// Which built-in service of the storage thread a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StorageService {
    /// `zhub.log`.
    Log = 1,
    /// `zhub.kv`.
    Kv = 2,
    /// `zhub.storage`: the thread's counters.
    Stats = 3,
}

impl StorageService {
    /// The service a request's name asks for, if the storage thread serves it.
    pub(crate) fn named(service: &str) -> Option<Self> {
        match service {
            zhub_protocol::log::LOG_SERVICE => Some(StorageService::Log),
            zhub_protocol::kv::KV_SERVICE => Some(StorageService::Kv),
            zhub_protocol::builtin::STORAGE_SERVICE => Some(StorageService::Stats),
            _ => None,
        }
    }
}

/// A request on its way to the storage thread.
#[derive(Debug)]
pub(crate) struct StorageRequest {
    /// Whom to answer.
    pub(crate) ticket: Ticket,
    /// Which service.
    pub(crate) service: StorageService,
    /// The request's MessagePack body.
    pub(crate) body: Vec<u8>,
}

/// A reply on its way back to the router.
#[derive(Debug)]
pub(crate) struct StorageReply {
    /// Whom to answer.
    pub(crate) ticket: Ticket,
    /// The status.
    pub(crate) status: Status,
    /// The MessagePack reply, or the reason of an error.
    pub(crate) body: Vec<u8>,
}

fn id_frame(frame: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(frame).ok().map(u64::from_be_bytes)
}

impl StorageRequest {
    /// The frames, as the router sends them.
    pub(crate) fn into_frames(self) -> [Vec<u8>; 4] {
        [
            self.ticket.client,
            self.ticket.id.to_be_bytes().to_vec(),
            vec![self.service as u8],
            self.body,
        ]
    }

    /// Reads the frames the router sent; `None` when they are not a request (which only a
    /// bug could make: the router is the only sender).
    pub(crate) fn decode(frames: Vec<Vec<u8>>) -> Option<Self> {
        let [client, id, service, body] = <[Vec<u8>; 4]>::try_from(frames).ok()?;
        let service = match service.as_slice() {
            [1] => StorageService::Log,
            [2] => StorageService::Kv,
            [3] => StorageService::Stats,
            _ => return None,
        };
        Some(StorageRequest {
            ticket: Ticket {
                client,
                id: id_frame(&id)?,
            },
            service,
            body,
        })
    }
}

impl StorageReply {
    /// The frames, as the storage thread sends them.
    pub(crate) fn into_frames(self) -> [Vec<u8>; 4] {
        [
            self.ticket.client,
            self.ticket.id.to_be_bytes().to_vec(),
            self.status.code().to_be_bytes().to_vec(),
            self.body,
        ]
    }

    /// Reads the frames the storage thread sent; `None` when they are not a reply.
    pub(crate) fn decode(frames: Vec<Vec<u8>>) -> Option<Self> {
        let [client, id, status, body] = <[Vec<u8>; 4]>::try_from(frames).ok()?;
        let status = <[u8; 2]>::try_from(status.as_slice())
            .ok()
            .and_then(|s| Status::from_code(u16::from_be_bytes(s)).ok())?;
        Some(StorageReply {
            ticket: Ticket {
                client,
                id: id_frame(&id)?,
            },
            status,
            body,
        })
    }
}

/// Makes the two ends of the link, each holding at most `hwm` requests or replies: the
/// storage thread's (bound) and the router's (connected).
pub(crate) fn pair(
    context: &zmq::Context,
    hwm: i32,
) -> Result<(zmq::Socket, zmq::Socket), zmq::Error> {
    let storage = context.socket(zmq::PAIR)?;
    storage.set_linger(0)?;
    storage.set_sndhwm(hwm)?;
    storage.set_rcvhwm(hwm)?;
    storage.bind(ENDPOINT)?;
    let router = context.socket(zmq::PAIR)?;
    router.set_linger(0)?;
    router.set_sndhwm(hwm)?;
    router.set_rcvhwm(hwm)?;
    router.connect(ENDPOINT)?;
    Ok((storage, router))
}

/// The router's end of the link: forwards requests without ever blocking, remembers whom it
/// owes an answer, and hears when the storage thread stops.
pub(crate) struct StorageLink {
    socket: zmq::Socket,
    /// Receives one message from the storage thread's watchdog if that thread ends other
    /// than by a stop ([`crate::Broker`]'s threads are watched).
    down: zmq::Socket,
    up: bool,
    /// Requests forwarded and not yet answered.
    held: HashSet<Ticket>,
    /// The link's bound, for the Busy reason.
    hwm: i32,
}

impl StorageLink {
    pub(crate) fn new(socket: zmq::Socket, down: zmq::Socket, hwm: i32) -> Self {
        StorageLink {
            socket,
            down,
            up: true,
            held: HashSet::new(),
            hwm,
        }
    }

    /// The two sockets to poll: replies, then the stop notice.
    pub(crate) fn poll_items(&self) -> [zmq::PollItem<'_>; 2] {
        [
            self.socket.as_poll_item(zmq::POLLIN),
            self.down.as_poll_item(zmq::POLLIN),
        ]
    }

    /// Hands a request to the storage thread, or says at once why it cannot: `Busy` when
    /// the link is full, `Internal` when the storage thread has stopped.
    pub(crate) fn forward(&mut self, request: StorageRequest) -> Result<(), (Status, String)> {
        if !self.up {
            return Err((
                Status::Internal,
                "the storage thread has stopped; the broker is shutting down".to_owned(),
            ));
        }
        let ticket = request.ticket.clone();
        match self.socket.send_multipart(request.into_frames(), zmq::DONTWAIT) {
            Ok(()) => {
                self.held.insert(ticket);
                Ok(())
            }
            Err(zmq::Error::EAGAIN) => Err((
                Status::Busy,
                format!(
                    "storage is busy: {} requests are waiting for the disk (storage_queue); try again",
                    self.hwm
                ),
            )),
            Err(e) => Err((Status::Internal, format!("storage unreachable: {e}"))),
        }
    }

    /// Takes the replies waiting on the link.
    pub(crate) fn replies(&mut self) -> Vec<StorageReply> {
        let mut out = Vec::new();
        while let Ok(frames) = self.socket.recv_multipart(zmq::DONTWAIT) {
            match StorageReply::decode(frames) {
                Some(reply) => {
                    self.held.remove(&reply.ticket);
                    out.push(reply);
                }
                None => error!("malformed reply from the storage thread dropped"),
            }
        }
        out
    }

    /// When the storage thread has stopped: every request it held, to be answered with an
    /// error, once (later requests are refused by [`Self::forward`]).
    pub(crate) fn failed(&mut self) -> Option<Vec<Ticket>> {
        if self.down.recv_bytes(zmq::DONTWAIT).is_err() || !self.up {
            return None;
        }
        self.up = false;
        error!(
            held = self.held.len(),
            "the storage thread has stopped: log and key-value requests fail from now on"
        );
        Some(self.held.drain().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_odd_ones_are_refused() {
        let ticket = Ticket {
            client: b"\0abc".to_vec(),
            id: 0x0102_0304_0506_0708,
        };
        let request = StorageRequest {
            ticket: ticket.clone(),
            service: StorageService::Kv,
            body: b"body".to_vec(),
        };
        let back = StorageRequest::decode(request.into_frames().to_vec()).unwrap();
        assert_eq!(
            (back.ticket, back.service, back.body),
            (ticket.clone(), StorageService::Kv, b"body".to_vec())
        );
        let reply = StorageReply {
            ticket: ticket.clone(),
            status: Status::Busy,
            body: b"why".to_vec(),
        };
        let back = StorageReply::decode(reply.into_frames().to_vec()).unwrap();
        assert_eq!((back.ticket, back.status), (ticket, Status::Busy));

        assert!(StorageRequest::decode(vec![vec![1]; 3]).is_none());
        assert!(StorageRequest::decode(vec![vec![1], vec![0; 8], vec![9], vec![]]).is_none());
        assert!(StorageRequest::decode(vec![vec![1], vec![0; 7], vec![1], vec![]]).is_none());
        assert!(StorageReply::decode(vec![vec![1], vec![0; 8], vec![0, 1], vec![]]).is_none());
        assert_eq!(StorageService::named("zhub.kv"), Some(StorageService::Kv));
        assert_eq!(StorageService::named("zhub.log"), Some(StorageService::Log));
        assert_eq!(
            StorageService::named("zhub.storage"),
            Some(StorageService::Stats)
        );
        assert_eq!(StorageService::named("echo"), None);
    }
}
