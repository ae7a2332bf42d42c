//! Auth at start: reading the file, binding the ZAP handler's socket before any endpoint,
//! making the endpoints' sockets ask for logins; and the warning for a broker open beyond
//! loopback without them.

use std::sync::Arc;

use super::{zap, AuthState};

/// The auth parts made at start: the ZAP handler's socket, bound, and the shared state.
pub(crate) struct Setup {
    pub(crate) socket: zmq::Socket,
    pub(crate) state: Arc<AuthState>,
}

impl Setup {
    /// Reads the auth file and binds the ZAP handler's socket, when `config` names a file;
    /// otherwise warns if the broker is about to listen beyond loopback with no login.
    pub(crate) fn start(
        config: &crate::Config,
        context: &zmq::Context,
    ) -> Result<Option<Setup>, crate::BrokerError> {
        let Some(path) = &config.auth else {
            for (role, endpoint) in [
                ("main", &config.listen),
                ("publish", &config.publish),
                ("subscribe", &config.subscribe),
                ("deliver", &config.deliver),
            ] {
                if !is_local(endpoint) {
                    tracing::warn!(
                        role,
                        %endpoint,
                        "listening beyond loopback without --auth: anyone who reaches this endpoint may publish, subscribe, serve and read or change any data"
                    );
                }
            }
            return Ok(None);
        };
        let state = Arc::new(AuthState::load(path)?);
        let socket = context.socket(zmq::ROUTER)?;
        socket.set_linger(0)?;
        socket.bind(zap::ENDPOINT)?;
        let policy = state.policy();
        // The broker's own users (`$zhub...`) are not the file's.
        let users = policy.users.keys().filter(|u| !u.starts_with('$')).count();
        let client_keys = policy.keys.values().filter(|u| !u.starts_with('$')).count();
        match state.curve() {
            Some(keys) => tracing::info!(
                file = %path.display(),
                users,
                keys = client_keys,
                server_key = %keys.public,
                "CURVE logins required on every endpoint (the file sets [curve]: no password logins)"
            ),
            None => tracing::info!(
                file = %path.display(),
                users,
                "PLAIN logins required on every endpoint (the file sets no [curve]: no CURVE logins)"
            ),
        }
        Ok(Some(Setup { socket, state }))
    }

    /// Makes the cluster endpoint's socket ask peer brokers for their login, before it
    /// binds; an error when the file gives peers no way to log in.
    pub(crate) fn secure_cluster(
        &self,
        socket: Option<&zmq::Socket>,
    ) -> Result<(), crate::BrokerError> {
        if self.state.peer_login().is_none() {
            return Err(crate::BrokerError::Setting {
                name: "auth",
                reason: format!(
                    "{}: brokers that peer log in to each other, and this file sets neither [curve] (every broker of the cluster with the same key pair) nor [cluster] with a secret",
                    self.state.path.display()
                ),
            });
        }
        if let Some(socket) = socket {
            secure_server(socket, zap::DOMAIN_CLUSTER, &self.state)?;
        }
        Ok(())
    }

    /// Makes the four endpoint sockets (main, publish, subscribe, deliver) ask for logins;
    /// before they bind.
    pub(crate) fn secure(&self, sockets: [&zmq::Socket; 4]) -> Result<(), zmq::Error> {
        let domains = [
            zap::DOMAIN_MAIN,
            zap::DOMAIN_PUBLISH,
            zap::DOMAIN_SUBSCRIBE,
            zap::DOMAIN_DELIVER,
        ];
        for (socket, domain) in sockets.into_iter().zip(domains) {
            secure_server(socket, domain, &self.state)?;
        }
        Ok(())
    }
}

/// Whether an endpoint is reachable only from this machine: ipc, inproc, or TCP on a
/// loopback address.
pub(crate) fn is_local(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("tcp://") else {
        return true;
    };
    let host = rest.rsplit_once(':').map_or(rest, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Makes `socket` a server that asks the ZAP handler about each connection, under
/// `domain`: CURVE when the auth file has a key pair, else PLAIN.
pub(crate) fn secure_server(
    socket: &zmq::Socket,
    domain: &str,
    state: &AuthState,
) -> Result<(), zmq::Error> {
    socket.set_zap_domain(domain)?;
    match state.curve() {
        Some(keys) => {
            socket.set_curve_server(true)?;
            socket.set_curve_secretkey(keys.secret.as_bytes())?;
        }
        None => socket.set_plain_server(true)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_ipc_and_inproc_are_local() {
        for local in [
            "tcp://127.0.0.1:5555",
            "tcp://127.0.0.1:*",
            "tcp://[::1]:5555",
            "tcp://localhost:1",
            "ipc:///tmp/x",
            "inproc://x",
        ] {
            assert!(is_local(local), "{local}");
        }
        for open in [
            "tcp://0.0.0.0:5555",
            "tcp://*:5555",
            "tcp://10.0.0.1:1",
            "tcp://eth0:1",
        ] {
            assert!(!is_local(open), "{open}");
        }
    }
}
