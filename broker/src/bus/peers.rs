//! The bus's side of federation: one SUB socket per peer broker in session, connected to that
//! peer's deliver endpoint, on which this broker is a zhub subscriber with peer interests.
//!
//! Interest propagates, never messages nobody wants. Each socket declares to its peer, as
//! peer interests ([`zhub_protocol::delivery::peer_interest`]), the filters this broker may
//! declare to that peer's zone, each with its zone path ([`crate::interest::zones`]), changed
//! as subscribers and peers come and go. One socket per peer, because what a peer is told
//! depends on its zone. ZeroMQ sends a SUB socket's subscriptions again after a reconnect, so
//! a peer that restarts learns them anew. What comes in carries the zones it has been in, and
//! goes to local subscribers and on to the peers that route allows.
//!
//! The router thread, which holds the cluster link, says which peers are in session: one
//! frame per change on an inproc PUSH: `+` or `-`, the peer's subscriber id here (8 bytes,
//! from its greeting), its zone and its name (each a length byte and the text), then its
//! deliver endpoint. The subscriber id is secret, told only over the cluster link: whoever
//! knew a broker's could subscribe to the copies meant for it.

use std::collections::HashMap;

use tracing::{debug, info};
use zhub_protocol::cluster::PeerHello;
use zhub_protocol::delivery;

use crate::interest::Interest;

/// Where the router thread tells the bus thread which peers' deliver endpoints to use.
pub(crate) const PEER_LINKS_ENDPOINT: &str = "inproc://bus-peers";

/// One peer's subscription socket and what it declared there.
pub(crate) struct PeerLink {
    /// The peer's subscriber id here.
    id: u64,
    name: String,
    zone: Box<str>,
    /// Connected to the peer's deliver endpoint.
    pub(crate) sub: zmq::Socket,
    /// Per filter, the subscription declaring it (with its path).
    declared: HashMap<Box<[u8]>, Vec<u8>>,
    /// Sessions in this link's name not yet ended (one but for a moment when the router
    /// thread tells of a new session before the end of the old one).
    sessions: usize,
}

/// The bus thread's sockets towards peers.
pub(crate) struct PeerLinks {
    context: zmq::Context,
    hwm: i32,
    /// Longest message a peer may send: an envelope, a zone path and a bus frame.
    max_copy: i64,
    login: Option<zhub_client::Login>,
    /// Changes of the peers in session, from the router thread (PULL).
    pub(crate) control: zmq::Socket,
    /// This broker's subscriber id at its peers.
    me: u64,
    pub(crate) links: Vec<PeerLink>,
}

impl PeerLinks {
    /// Binds `control` at [`PEER_LINKS_ENDPOINT`], before the router thread connects there.
    /// `me` is this broker's subscriber id at its peers. Peers may send bus frames of up to `max_frame` bytes. With
    /// `login`, the subscriptions log in to the peers' deliver endpoints with it.
    pub(crate) fn new(
        context: &zmq::Context,
        me: u64,
        hwm: i32,
        max_frame: i64,
        login: Option<zhub_client::Login>,
    ) -> Result<Self, zmq::Error> {
        let control = context.socket(zmq::PULL)?;
        control.set_linger(0)?;
        control.bind(PEER_LINKS_ENDPOINT)?;
        Ok(PeerLinks {
            context: context.clone(),
            hwm,
            max_copy: max_frame
                .saturating_add((delivery::ENVELOPE_LEN + delivery::MAX_PATH_LEN) as i64),
            login,
            control,
            me,
            links: Vec::new(),
        })
    }

    /// Applies the waiting changes of the peers in session; a new link is told at once what
    /// `interest` holds for its zone.
    pub(crate) fn read_control(&mut self, interest: &Interest) -> Result<(), zmq::Error> {
        loop {
            let frame = match self.control.recv_bytes(zmq::DONTWAIT) {
                Ok(frame) => frame,
                Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => return Ok(()),
                Err(e) => return Err(e),
            };
            let Some(change) = parse_change(&frame) else {
                continue;
            };
            let (zone, endpoint) = (change.zone, change.endpoint);
            // Keyed by the peer's subscriber id, counted: a session's `+` may come before the
            // `-` of the one it replaced.
            let known = self.links.iter().position(|l| l.id == change.id);
            match (change.op, known) {
                (b'+', Some(at)) => self.links[at].sessions += 1,
                (b'-', Some(at)) if self.links[at].sessions > 1 => self.links[at].sessions -= 1,
                (b'+', None) => match self.link(&change) {
                    Ok(mut link) => {
                        info!(%endpoint, %zone, "subscribed to a peer's deliver endpoint");
                        let filters = interest.zones().filters();
                        declare(self.me, &mut link, interest, &filters)?;
                        self.links.push(link);
                    }
                    Err(e) => debug!(%endpoint, error = %e, "peer's deliver endpoint refused"),
                },
                (b'-', Some(at)) => {
                    // Dropping the socket disconnects it; nothing else can fail here.
                    self.links.swap_remove(at);
                    info!(%endpoint, "unsubscribed from a peer's deliver endpoint");
                }
                _ => {}
            }
        }
    }

    /// The name of the peer whose subscriber id here is `id` (its id in hex when it is not
    /// in session).
    pub(crate) fn name_of(&self, id: u64) -> String {
        self.links
            .iter()
            .find(|l| l.id == id)
            .map_or_else(|| format!("{id:016x}"), |l| l.name.clone())
    }

    fn link(&self, change: &Change<'_>) -> Result<PeerLink, zmq::Error> {
        let sub = self.context.socket(zmq::SUB)?;
        sub.set_linger(0)?;
        sub.set_rcvhwm(self.hwm)?;
        sub.set_maxmsgsize(self.max_copy)?;
        if let Some(login) = &self.login {
            login.apply(&sub)?;
        }
        sub.set_subscribe(&delivery::address(self.me))?;
        sub.connect(change.endpoint)?;
        Ok(PeerLink {
            id: change.id,
            name: change.name.to_owned(),
            zone: change.zone.into(),
            sub,
            declared: HashMap::new(),
            sessions: 1,
        })
    }

    /// Declares to every peer what changed for `filters` ([`Interest::take_changes`]).
    pub(crate) fn declare(
        &mut self,
        interest: &Interest,
        filters: &[Box<[u8]>],
    ) -> Result<(), zmq::Error> {
        if filters.is_empty() {
            return Ok(());
        }
        for link in &mut self.links {
            declare(self.me, link, interest, filters)?;
        }
        Ok(())
    }
}

/// Brings what `link` declared for `filters` up to what `interest` holds for its zone.
fn declare(
    me: u64,
    link: &mut PeerLink,
    interest: &Interest,
    filters: &[Box<[u8]>],
) -> Result<(), zmq::Error> {
    for filter in filters {
        let wanted = interest
            .zones()
            .path_for(filter, &link.zone)
            .map(|path| delivery::peer_interest(me, &path, filter));
        if wanted.as_ref() == link.declared.get(filter) {
            continue;
        }
        // The new path before the old one goes, so that the peer never holds neither.
        let old = match wanted {
            Some(new) => {
                link.sub.set_subscribe(&new)?;
                link.declared.insert(filter.clone(), new)
            }
            None => link.declared.remove(filter),
        };
        if let Some(old) = old {
            link.sub.set_unsubscribe(&old)?;
        }
    }
    Ok(())
}

/// A change of the peers in session, as the router thread sends it.
struct Change<'a> {
    op: u8,
    id: u64,
    zone: &'a str,
    name: &'a str,
    endpoint: &'a str,
}

fn parse_change(frame: &[u8]) -> Option<Change<'_>> {
    fn text(rest: &[u8]) -> Option<(&str, &[u8])> {
        let (&n, rest) = rest.split_first()?;
        let n = usize::from(n);
        Some((std::str::from_utf8(rest.get(..n)?).ok()?, &rest[n..]))
    }
    let (&op, rest) = frame.split_first()?;
    let id = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let (zone, rest) = text(&rest[8..])?;
    let (name, rest) = text(rest)?;
    let endpoint = std::str::from_utf8(rest).ok()?;
    Some(Change {
        op,
        id,
        zone,
        name,
        endpoint,
    })
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

    /// Starts exchanging messages with the peer that greeted with `hello`.
    pub(crate) fn connect_peer(&self, hello: &PeerHello) {
        self.send(b'+', hello);
    }

    /// Stops exchanging messages with that peer.
    pub(crate) fn disconnect_peer(&self, hello: &PeerHello) {
        self.send(b'-', hello);
    }

    fn send(&self, op: u8, hello: &PeerHello) {
        let mut frame = Vec::with_capacity(11 + hello.zone.len() + hello.name.len());
        frame.push(op);
        frame.extend_from_slice(&hello.subscriber.to_be_bytes());
        for text in [&hello.zone, &hello.name] {
            // Names are at most 64 bytes (checked in the greeting).
            let text = &text.as_bytes()[..text.len().min(255)];
            frame.push(text.len() as u8);
            frame.extend_from_slice(text);
        }
        frame.extend_from_slice(hello.deliver.as_bytes());
        // An inproc PUSH to a live PULL queues up to its HWM: a change is lost only when the
        // bus thread has stopped, and then nothing is delivered anyway.
        if let Err(e) = self.push.send(frame, zmq::DONTWAIT) {
            debug!(error = %e, "peer link change not passed to the bus thread");
        }
    }
}
