//! Endpoint URLs: checked before binding, so a typo is a clear error rather than `EINVAL`.

use std::os::unix::net::UnixStream;

use crate::BrokerError;

/// Checks that `endpoint` is `tcp://HOST:PORT` (PORT a number or `*`), `ipc://PATH` or
/// `inproc://NAME`.
///
/// # Errors
/// [`BrokerError::InvalidEndpoint`] saying what is wrong.
pub fn check(role: &'static str, endpoint: &str) -> Result<(), BrokerError> {
    let invalid = |reason: &str| BrokerError::InvalidEndpoint {
        role,
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    if let Some(rest) = endpoint.strip_prefix("tcp://") {
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected tcp://HOST:PORT"))?;
        if host.is_empty() {
            return Err(invalid("expected tcp://HOST:PORT (HOST is empty)"));
        }
        if port != "*" && port.parse::<u16>().is_err() {
            return Err(invalid("PORT must be a number from 0 to 65535, or *"));
        }
        Ok(())
    } else if let Some(path) = endpoint.strip_prefix("ipc://") {
        if path.is_empty() {
            return Err(invalid("expected ipc://PATH"));
        }
        Ok(())
    } else if let Some(name) = endpoint.strip_prefix("inproc://") {
        if name.is_empty() {
            return Err(invalid("expected inproc://NAME"));
        }
        Ok(())
    } else {
        Err(invalid(
            "expected tcp://HOST:PORT, ipc://PATH or inproc://NAME",
        ))
    }
}

/// Binds `socket` to `endpoint`, refusing an `ipc://` path that a live process still serves
/// (libzmq would silently take the path over, leaving the other process unreachable).
///
/// Returns the endpoint as bound, with a wildcard port resolved.
///
/// # Errors
/// [`BrokerError::IpcInUse`] or [`BrokerError::Bind`].
pub fn bind(
    socket: &zmq::Socket,
    role: &'static str,
    endpoint: &str,
) -> Result<String, BrokerError> {
    if let Some(path) = endpoint.strip_prefix("ipc://") {
        if UnixStream::connect(path).is_ok() {
            return Err(BrokerError::IpcInUse {
                role,
                endpoint: endpoint.to_owned(),
            });
        }
    }
    socket.bind(endpoint).map_err(|cause| BrokerError::Bind {
        role,
        endpoint: endpoint.to_owned(),
        cause,
    })?;
    let bound = socket
        .get_last_endpoint()?
        .unwrap_or_else(|raw| String::from_utf8_lossy(&raw).into_owned());
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_the_three_transports() {
        for ok in [
            "tcp://127.0.0.1:5555",
            "tcp://*:0",
            "tcp://127.0.0.1:*",
            "tcp://[::1]:5555",
            "ipc:///tmp/zhub.sock",
            "inproc://bus",
        ] {
            assert!(check("main", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed_urls() {
        for bad in [
            "",
            "127.0.0.1:5555",
            "tcp://127.0.0.1",
            "tcp://:5555",
            "tcp://host:99999",
            "tcp://host:port",
            "ipc://",
            "udp://127.0.0.1:1",
        ] {
            let err = check("main", bad).unwrap_err().to_string();
            assert!(err.contains("invalid main endpoint"), "{bad}: {err}");
        }
    }
}
