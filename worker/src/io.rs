//! The worker's I/O thread: owns the socket to the broker, speaks MDP/Worker, heartbeats, and
//! reconnects with backoff (the ZeroMQ guide's Paranoid Pirate, on 7/MDP).
//!
//! It talks to the application thread over an inproc PAIR socket:
//! - to the application: `["R", client address, body frames...]` for a request;
//! - from the application: `[client address, body frames...]` for a reply;
//!
//! and stops when anything arrives on its `stop` socket, after telling the broker DISCONNECT.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};
use zhub_protocol::mdp::WorkerCommand;

use crate::WorkerOptions;

/// Marker frame of a request passed to the application.
pub(crate) const REQUEST_MARK: &[u8] = b"R";

pub(crate) struct Io {
    pub(crate) context: zmq::Context,
    pub(crate) url: String,
    pub(crate) service: String,
    pub(crate) options: WorkerOptions,
    pub(crate) app: zmq::Socket,
    pub(crate) stop: zmq::Socket,
}

fn send_command(socket: &zmq::Socket, command: &WorkerCommand) -> Result<(), zmq::Error> {
    let mut frames = vec![Vec::new()];
    frames.extend(command.encode());
    socket.send_multipart(frames, zmq::DONTWAIT)
}

impl Io {
    fn connect(&self) -> Result<zmq::Socket, zmq::Error> {
        let socket = self.context.socket(zmq::DEALER)?;
        socket.set_linger(0)?;
        socket.connect(&self.url)?;
        let ready = WorkerCommand::Ready {
            service: self.service.clone(),
        };
        // A DEALER queues this until the connection is up.
        let mut frames = vec![Vec::new()];
        frames.extend(ready.encode());
        socket.send_multipart(frames, 0)?;
        Ok(socket)
    }

    /// Runs until stopped, or until a socket fails.
    pub(crate) fn run(self) -> Result<(), zmq::Error> {
        let heartbeat = self.options.heartbeat;
        let mut broker = self.connect()?;
        let mut liveness = self.options.liveness;
        let mut backoff = self.options.reconnect_min;
        let mut next_heartbeat = Instant::now() + heartbeat;
        loop {
            let timeout = next_heartbeat.saturating_duration_since(Instant::now());
            let mut items = [
                broker.as_poll_item(zmq::POLLIN),
                self.app.as_poll_item(zmq::POLLIN),
                self.stop.as_poll_item(zmq::POLLIN),
            ];
            match zmq::poll(&mut items, millis(timeout)) {
                Ok(_) | Err(zmq::Error::EINTR) => {}
                Err(e) => return Err(e),
            }
            if items[2].is_readable() {
                let _ = send_command(&broker, &WorkerCommand::Disconnect);
                return Ok(());
            }
            let mut reconnect = false;
            if items[0].is_readable() {
                while let Ok(frames) = broker.recv_multipart(zmq::DONTWAIT) {
                    liveness = self.options.liveness;
                    backoff = self.options.reconnect_min;
                    let rest = match frames.split_first() {
                        Some((delimiter, rest)) if delimiter.is_empty() => rest,
                        _ => &frames[..],
                    };
                    match WorkerCommand::decode(rest) {
                        Ok(WorkerCommand::Request { client, body }) => {
                            let mut message = vec![REQUEST_MARK.to_vec(), client];
                            message.extend(body);
                            self.app.send_multipart(message, 0)?;
                        }
                        Ok(WorkerCommand::Heartbeat) => {}
                        Ok(WorkerCommand::Disconnect) => {
                            info!(service = %self.service, "broker asked to reconnect");
                            reconnect = true;
                        }
                        Ok(other) => {
                            debug!(command = ?other, "unexpected command from broker ignored")
                        }
                        Err(e) => warn!(error = %e, "malformed message from broker ignored"),
                    }
                }
            }
            if items[1].is_readable() {
                while let Ok(mut frames) = self.app.recv_multipart(zmq::DONTWAIT) {
                    if frames.is_empty() {
                        continue;
                    }
                    let client = frames.remove(0);
                    send_command(
                        &broker,
                        &WorkerCommand::Reply {
                            client,
                            body: frames,
                        },
                    )?;
                }
            }
            if Instant::now() >= next_heartbeat {
                next_heartbeat = Instant::now() + heartbeat;
                send_command(&broker, &WorkerCommand::Heartbeat).or_else(ignore_full)?;
                if !items[0].is_readable() {
                    liveness = liveness.saturating_sub(1);
                    if liveness == 0 {
                        warn!(service = %self.service, retry_in = ?backoff, "broker silent; reconnecting");
                        // Wait out the backoff, still answering a stop at once.
                        if self.stop.poll(zmq::POLLIN, millis(backoff))? > 0 {
                            return Ok(());
                        }
                        backoff = (backoff * 2).min(self.options.reconnect_max);
                        reconnect = true;
                    }
                }
            }
            if reconnect {
                broker = self.connect()?;
                liveness = self.options.liveness;
                next_heartbeat = Instant::now() + heartbeat;
            }
        }
    }
}

/// A heartbeat that does not fit in a full queue is simply not sent.
fn ignore_full(e: zmq::Error) -> Result<(), zmq::Error> {
    match e {
        zmq::Error::EAGAIN => Ok(()),
        other => Err(other),
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(i64::MAX)
}
