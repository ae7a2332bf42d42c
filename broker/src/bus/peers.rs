//! The bus's side of federation: one SUB socket connected to the deliver endpoint of every
//! peer broker in session, on which this broker is a zhub subscriber with peer interests.
//!
//! Interest propagates, never messages nobody wants: the socket declares, as peer
//! interests ([`zhub_protocol::delivery::peer_interest`]), exactly the filters this broker's
//! own subscribers hold, changed as they come and go. ZeroMQ sends a SUB socket's
//! subscriptions to every endpoint it connects to, and again after every reconnect, so a peer
//! that restarts learns them all anew. A peer sends on a peer interest only what was
//! published at that peer, so what comes in here goes to local subscribers only.
//!
//! The router thread, which holds the cluster link, says which peers are in session: one
//! frame per change on an inproc PUSH, `+endpoint` to connect and `-endpoint` to disconnect.

use std::collections::HashSet;

use tracing::{debug, info};
use zhub_protocol::delivery;

/// Where the router thread tells the bus thread which peers' deliver endpoints to use.
pub(crate) const PEER_LINKS_ENDPOINT: &str = "inproc://bus-peers";

/// The bus thread's sockets towards peers.
pub(crate) struct PeerLinks {
    /// Connected to every peer's deliver endpoint.
    pub(crate) sub: zmq::Socket,
    /// Changes of the peers in session, from the router thread (PULL).
    pub(crate) control: zmq::Socket,
    /// This broker's subscriber id at its peers.
    me: u64,
    connected: HashSet<String>,
}

impl PeerLinks {
    /// Makes the sockets; `control` is bound at [`PEER_LINKS_ENDPOINT`] before the router
    /// thread connects there. With `login`, the subscriptions log in to the peers' deliver
    /// endpoints with it.
    pub(crate) fn new(
        context: &zmq::Context,
        hwm: i32,
        login: Option<&zhub_client::Login>,
    ) -> Result<Self, zmq::Error> {
        let sub = context.socket(zmq::SUB)?;
        sub.set_linger(0)?;
        sub.set_rcvhwm(hwm)?;
        if let Some(login) = login {
            login.apply(&sub)?;
        }
        let me = zhub_protocol::ids::random_u64();
        sub.set_subscribe(&delivery::address(me))?;
        let control = context.socket(zmq::PULL)?;
        control.set_linger(0)?;
        control.bind(PEER_LINKS_ENDPOINT)?;
        Ok(PeerLinks {
            sub,
            control,
            me,
            connected: HashSet::new(),
        })
    }

    /// Applies the waiting changes of the peers in session.
    pub(crate) fn read_control(&mut self) -> Result<(), zmq::Error> {
        loop {
            let frame = match self.control.recv_bytes(zmq::DONTWAIT) {
                Ok(frame) => frame,
                Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => return Ok(()),
                Err(e) => return Err(e),
            };
            let Some((&op, endpoint)) = frame.split_first() else {
                continue;
            };
            let endpoint = String::from_utf8_lossy(endpoint).into_owned();
            match op {
                b'+' if !self.connected.contains(&endpoint) => match self.sub.connect(&endpoint) {
                    Ok(()) => {
                        info!(%endpoint, "subscribed to a peer's deliver endpoint");
                        self.connected.insert(endpoint);
                    }
                    Err(e) => debug!(%endpoint, error = %e, "peer's deliver endpoint refused"),
                },
                b'-' if self.connected.remove(&endpoint) => {
                    // The endpoint may have gone already; nothing else can fail here.
                    let _ = self.sub.disconnect(&endpoint);
                    info!(%endpoint, "unsubscribed from a peer's deliver endpoint");
                }
                _ => {}
            }
        }
    }

    /// Declares to every peer the filters that came or went among this broker's own
    /// subscribers.
    pub(crate) fn declare(&mut self, changes: Vec<(bool, Box<[u8]>)>) -> Result<(), zmq::Error> {
        for (held, filter) in changes {
            let subscription = delivery::peer_interest(self.me, &filter);
            if held {
                self.sub.set_subscribe(&subscription)?;
            } else {
                self.sub.set_unsubscribe(&subscription)?;
            }
        }
        Ok(())
    }
}

/// The router thread's end: tells the bus thread which peers are in session.
pub(crate) struct PeerLinksHandle {
    push: zmq::Socket,
}

impl PeerLinksHandle {
    /// Connects to the bus thread's [`PeerLinks`], which must exist already.
    pub(crate) fn connect(context: &zmq::Context) -> Result<Self, zmq::Error> {
        let push = context.socket(zmq::PUSH)?;
        push.set_linger(0)?;
        push.connect(PEER_LINKS_ENDPOINT)?;
        Ok(PeerLinksHandle { push })
    }

    /// Starts receiving what is published at the peer whose deliver endpoint is `endpoint`.
    pub(crate) fn connect_peer(&self, endpoint: &str) {
        self.send(b'+', endpoint);
    }

    /// Stops receiving from that peer.
    pub(crate) fn disconnect_peer(&self, endpoint: &str) {
        self.send(b'-', endpoint);
    }

    fn send(&self, op: u8, endpoint: &str) {
        let mut frame = Vec::with_capacity(1 + endpoint.len());
        frame.push(op);
        frame.extend_from_slice(endpoint.as_bytes());
        // An inproc PUSH to a live PULL queues up to its HWM: a change is lost only when the
        // bus thread has stopped, and then nothing is delivered anyway.
        if let Err(e) = self.push.send(frame, zmq::DONTWAIT) {
            debug!(error = %e, "peer link change not passed to the bus thread");
        }
    }
}
