//! [`WorkerOptions`]: heartbeats, reconnection and concurrency, with every default documented.

use std::time::Duration;

use zhub_client::{CurveKeyPair, Login};

use crate::{Worker, WorkerError};

/// Settings for [`Worker`]; build with the methods, then [`WorkerOptions::connect`], which
/// refuses values that cannot work ([`WorkerOptions::HEARTBEAT`], [`WorkerOptions::RECONNECT`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct WorkerOptions {
    pub(crate) heartbeat: Duration,
    pub(crate) liveness: u32,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) concurrency: u32,
    pub(crate) login: Option<Login>,
}

impl Default for WorkerOptions {
    /// - `heartbeat`: 2.5 s between heartbeats (the broker's default too);
    /// - `liveness`: 3 heartbeats without any traffic from the broker before reconnecting;
    /// - `reconnect`: backoff from 1 s, doubling to at most 32 s;
    /// - `concurrency`: 1 request at a time (a plain Majordomo worker);
    /// - `login`: none, neither [`credentials`](Self::credentials) nor
    ///   [`curve`](Self::curve) (for a broker without an auth file).
    fn default() -> Self {
        WorkerOptions {
            heartbeat: Duration::from_millis(2500),
            liveness: 3,
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(32),
            concurrency: 1,
            login: None,
        }
    }
}

impl WorkerOptions {
    /// Allowed heartbeat intervals (the broker's `--heartbeat` has the same bounds).
    pub const HEARTBEAT: std::ops::RangeInclusive<Duration> =
        Duration::from_millis(10)..=Duration::from_secs(3600);
    /// Allowed reconnection backoffs, at either end.
    pub const RECONNECT: std::ops::RangeInclusive<Duration> =
        Duration::from_millis(1)..=Duration::from_secs(3600);
    /// Allowed concurrency: up to the broker's bound on a worker's credit.
    pub const CONCURRENCY: std::ops::RangeInclusive<u32> = 1..=zhub_protocol::mdp::MAX_CREDIT;

    /// Checks every option against its range.
    pub(crate) fn validate(&self) -> Result<(), WorkerError> {
        let check = |name, value: Duration, range: std::ops::RangeInclusive<Duration>| {
            if range.contains(&value) {
                Ok(())
            } else {
                Err(WorkerError::InvalidOption {
                    name,
                    reason: format!(
                        "{value:?} is out of range; allowed {:?}..={:?}",
                        range.start(),
                        range.end()
                    ),
                })
            }
        };
        check("heartbeat", self.heartbeat, Self::HEARTBEAT)?;
        check("reconnect", self.reconnect_min, Self::RECONNECT)?;
        check("reconnect", self.reconnect_max, Self::RECONNECT)?;
        if !Self::CONCURRENCY.contains(&self.concurrency) {
            return Err(WorkerError::InvalidOption {
                name: "concurrency",
                reason: format!(
                    "{} is out of range; allowed {}..={}",
                    self.concurrency,
                    Self::CONCURRENCY.start(),
                    Self::CONCURRENCY.end()
                ),
            });
        }
        if let Some(login) = &self.login {
            login.check().map_err(|e| WorkerError::InvalidOption {
                name: "curve",
                reason: format!("server key: {e}"),
            })?;
        }
        Ok(())
    }

    /// The defaults (see [`WorkerOptions::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Interval between heartbeats to the broker, within [`WorkerOptions::HEARTBEAT`]. Use the
    /// broker's `--heartbeat`.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// Heartbeat intervals without traffic from the broker before the worker reconnects.
    pub fn liveness(mut self, intervals: u32) -> Self {
        self.liveness = intervals.max(1);
        self
    }

    /// Logs in as `user` with `password` (ZeroMQ's PLAIN mechanism), for a broker started
    /// with an auth file without `[curve]`; the user must be allowed to serve the service
    /// (`serve = [...]`), or the broker disconnects the worker at its READY and logs why.
    /// Replaces a login set before ([`Self::curve`] included).
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.login = Some(Login::plain(user, password));
        self
    }

    /// Logs in with CURVE, for a broker whose auth file has `[curve]`: `server_public` is
    /// the broker's public key (Z85) and `keys` this worker's key pair, whose public key the
    /// auth file lists in the `curve_keys` of a user allowed to serve the service. As
    /// [`zhub_client::ClientOptions::curve`]; a server key that is not a Z85 CURVE key makes
    /// [`WorkerOptions::connect`] fail with [`WorkerError::InvalidOption`], a key the broker
    /// refuses makes the worker retry with its backoff, and the broker log why. Replaces a
    /// login set before ([`Self::credentials`] included).
    ///
    /// ```no_run
    /// use zhub_worker::{CurveKeyPair, WorkerOptions};
    /// let server = CurveKeyPair::load_public("broker.key.pub")?;
    /// let worker = WorkerOptions::new()
    ///     .curve(server, CurveKeyPair::load("echo-worker.key")?)
    ///     .connect("tcp://broker.example:5555", "echo")?;
    /// worker.run(|body| body.to_vec())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn curve(mut self, server_public: impl Into<String>, keys: CurveKeyPair) -> Self {
        self.login = Some(Login::curve(server_public, keys));
        self
    }

    /// Logs in as `login` says; `None` connects without a login.
    pub fn login(mut self, login: Option<Login>) -> Self {
        self.login = login;
        self
    }

    /// Backoff between reconnection attempts: from `min`, doubling up to `max`.
    pub fn reconnect(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    /// How many requests the worker takes at once, within [`WorkerOptions::CONCURRENCY`]: the
    /// broker keeps up to that many in flight to it. [`Worker::run`] then calls its handler
    /// on that many threads; [`Worker::recv`] hands requests out as they come and
    /// [`Worker::reply`] takes the replies in any order.
    ///
    /// With 1 (the default) the worker registers as a plain Majordomo worker and serves any
    /// Majordomo broker; with more it needs a zhub broker, which reads the credit from its
    /// READY.
    pub fn concurrency(mut self, requests: u32) -> Self {
        self.concurrency = requests;
        self
    }

    /// Registers a worker for `service` at the broker whose main endpoint is `url`.
    ///
    /// # Errors
    /// See [`Worker::connect`].
    pub fn connect(self, url: &str, service: &str) -> Result<Worker, WorkerError> {
        Worker::connect_with(url, service, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_that_cannot_work_are_refused_naming_the_option() {
        let url = "tcp://127.0.0.1:1";
        let err = WorkerOptions::new()
            .heartbeat(Duration::ZERO)
            .connect(url, "svc")
            .err()
            .expect("a zero heartbeat is refused");
        assert!(
            matches!(
                err,
                WorkerError::InvalidOption {
                    name: "heartbeat",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("heartbeat"), "{err}");
        let err = WorkerOptions::new()
            .reconnect(Duration::ZERO, Duration::ZERO)
            .connect(url, "svc")
            .err()
            .expect("a zero backoff is refused");
        assert!(err.to_string().contains("reconnect"), "{err}");
        for bad in [0, zhub_protocol::mdp::MAX_CREDIT + 1] {
            let err = WorkerOptions::new()
                .concurrency(bad)
                .connect(url, "svc")
                .err()
                .expect("a concurrency out of range is refused");
            assert!(err.to_string().contains("concurrency"), "{err}");
        }
        assert!(WorkerOptions::new().connect(url, "svc").is_ok());
    }
}
