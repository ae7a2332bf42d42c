//! Discovery (`--discover`): the broker broadcasts its beacon ([`zhub_protocol::beacon`])
//! on a UDP port every heartbeat, and links to the brokers of its zone whose beacons it
//! hears, as if they were listed with `--peer`.
//!
//! Of two brokers that hear each other, the one with the smaller id opens the link, so a
//! pair has one link, not two. The socket shares its port with every other broker and client
//! on the host ([`zhub_client::beacon_socket`]); it is polled with the cluster's sockets by
//! the router thread and never blocks it.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use tracing::{debug, info};
use zhub_protocol::beacon::{Beacon, MAX_BEACON};

/// The beacon socket and what it heard.
pub(crate) struct Discovery {
    socket: UdpSocket,
    target: SocketAddr,
    beacon: Vec<u8>,
    me: Beacon,
    interval: Duration,
    next: Instant,
    /// Brokers already linked to because of their beacons.
    linked: HashSet<u64>,
}

impl Discovery {
    /// Binds the beacon port; beacons go to `address` (a broadcast address) on it.
    pub(crate) fn new(
        me: Beacon,
        address: &str,
        port: u16,
        interval: Duration,
    ) -> std::io::Result<Self> {
        let socket = zhub_client::beacon_socket(port)?;
        socket.set_nonblocking(true)?;
        let target: SocketAddr = format!("{address}:{port}").parse().map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{address}: {e}"))
        })?;
        let beacon = me
            .encode()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        info!(%target, "broadcasting discovery beacons");
        Ok(Discovery {
            socket,
            target,
            beacon,
            me,
            interval,
            next: Instant::now(),
            linked: HashSet::new(),
        })
    }

    /// The socket, for the poll.
    pub(crate) fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// When the next beacon is due.
    pub(crate) fn next_wakeup(&self) -> Instant {
        self.next
    }

    /// Sends the beacon when it is due.
    pub(crate) fn tick(&mut self, now: Instant) {
        if now < self.next {
            return;
        }
        self.next = now + self.interval;
        if let Err(e) = self.socket.send_to(&self.beacon, self.target) {
            debug!(target = %self.target, error = %e, "beacon not sent");
        }
    }

    /// Reads the waiting datagrams; returns the brokers of this zone this broker should link
    /// to now, that `known` (the peers in session) does not already hold.
    pub(crate) fn read(&mut self, known: &dyn Fn(u64) -> bool) -> Vec<Beacon> {
        let mut out = Vec::new();
        let mut buffer = [0u8; MAX_BEACON + 1];
        for _ in 0..64 {
            let Ok((n, _)) = self.socket.recv_from(&mut buffer) else {
                break;
            };
            let Ok(beacon) = Beacon::decode(&buffer[..n]) else {
                continue;
            };
            let ours = beacon.zone == self.me.zone && !beacon.cluster.is_empty();
            if !ours || beacon.id <= self.me.id || known(beacon.id) {
                continue;
            }
            if self.linked.insert(beacon.id) {
                info!(broker = %beacon.name, endpoint = %beacon.cluster, "discovered a peer by its beacon");
                out.push(beacon);
            }
        }
        out
    }
}
