//! Finding brokers on the LAN by their UDP beacons (see [`zhub_protocol::beacon`]): the
//! socket every party to discovery binds, and [`Client::discover`].

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use zhub_protocol::beacon::{Beacon, MAX_BEACON};

use crate::{Client, ConnectError, ConnectErrorKind};

/// A UDP socket bound to `port` on every address, sharing the port with every other process
/// on the host that binds it this way (`SO_REUSEADDR`: each gets its own copy of every
/// broadcast datagram), and allowed to send broadcasts.
///
/// # Errors
/// The operating system's error when the socket cannot be made or bound.
pub fn beacon_socket(port: u16) -> std::io::Result<UdpSocket> {
    // SAFETY: plain socket calls on a descriptor made and owned here; every pointer passed is
    // to a live local of the size given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let socket = UdpSocket::from_raw_fd(fd);
        let one: libc::c_int = 1;
        for option in [libc::SO_REUSEADDR, libc::SO_BROADCAST] {
            let rc = libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        let address = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(Ipv4Addr::UNSPECIFIED).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::bind(
            fd,
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(socket)
    }
}

/// Listens on UDP `port` for `timeout` and returns the first beacon heard (from a broker
/// started with `--discover`); `None` when none came.
///
/// # Errors
/// [`ConnectErrorKind::Transport`] when the port cannot be bound.
pub fn listen_for_broker(port: u16, timeout: Duration) -> Result<Option<Beacon>, ConnectError> {
    let socket = beacon_socket(port).map_err(|e| {
        ConnectError::new(
            ConnectErrorKind::Transport,
            format!("cannot listen for beacons on UDP port {port}: {e}"),
        )
    })?;
    let until = Instant::now() + timeout;
    let mut buffer = [0u8; MAX_BEACON + 1];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        // A zero read timeout would mean "block forever".
        let _ = socket.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match socket.recv_from(&mut buffer) {
            Ok((n, _)) => {
                if let Ok(beacon) = Beacon::decode(&buffer[..n]) {
                    if !beacon.main.is_empty() {
                        return Ok(Some(beacon));
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                return Err(ConnectError::new(
                    ConnectErrorKind::Transport,
                    format!("listening for beacons: {e}"),
                ))
            }
        }
    }
}

impl Client {
    /// Finds a broker by its beacon on the default port
    /// ([`zhub_protocol::beacon::DEFAULT_PORT`]) and connects to it; see
    /// [`Client::discover_on`].
    ///
    /// # Errors
    /// As for [`Client::discover_on`].
    pub fn discover(timeout: Duration) -> Result<Client, ConnectError> {
        Self::discover_on(zhub_protocol::beacon::DEFAULT_PORT, timeout)
    }

    /// Listens on UDP `port` for a broker's beacon for at most `timeout`, then connects to
    /// the main endpoint it names.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let client = zhub_client::Client::discover(Duration::from_secs(3))?;
    /// println!("found {}", client.info().name);
    /// # Ok::<(), zhub_client::ConnectError>(())
    /// ```
    ///
    /// # Errors
    /// [`ConnectErrorKind::TimedOut`] when no beacon came, and the errors of
    /// [`Client::connect`].
    pub fn discover_on(port: u16, timeout: Duration) -> Result<Client, ConnectError> {
        match listen_for_broker(port, timeout)? {
            Some(beacon) => Client::connect(&beacon.main),
            None => Err(ConnectError::new(
                ConnectErrorKind::TimedOut,
                format!("no broker beacon on UDP port {port} within {timeout:?}"),
            )),
        }
    }
}
