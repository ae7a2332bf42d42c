//! The MDP/Worker session: owns the socket to the broker, registers, heartbeats, and
//! reconnects with backoff (the ZeroMQ guide's Paranoid Pirate, on 7/MDP).
//!
//! One loop, [`serve`], serves both ways of working:
//! - **inline** ([`crate::Worker::run`]): the loop runs on the caller's thread and calls the
//!   handler for each request. No thread hop, so the lowest latency; heartbeats go out between
//!   requests.
//! - **threaded** ([`crate::Worker::recv`] and `reply`): the loop runs on a background thread
//!   and passes requests to the application over an inproc PAIR socket,
//!   `["R", client address, body frames...]`, taking replies back as
//!   `[client address, body frames...]`. Heartbeats continue while the application works on
//!   a request for as long as it likes.
//! - **pooled** ([`crate::Worker::run`] with a concurrency above 1): the loop runs on the
//!   caller's thread and passes requests to a pool of handler threads (see `pool.rs`), which
//!   send their replies back on a PULL socket in the same `[client address, body...]` shape.
//!
//! Either way the loop stops when anything arrives on its `stop` socket, after telling the
//! broker DISCONNECT.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};
use zhub_protocol::mdp::WorkerCommand;

use crate::WorkerOptions;

/// Marker frame of a request passed to the application in threaded mode.
pub(crate) const REQUEST_MARK: &[u8] = b"R";

/// Where and how a worker connects.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) context: zmq::Context,
    pub(crate) url: String,
    pub(crate) service: String,
    pub(crate) options: WorkerOptions,
}

/// What to do with a request: answer it now (inline), or `None` when the answer will come
/// later on the application socket (threaded).
pub(crate) type OnRequest<'a> =
    dyn FnMut(&[u8], Vec<Vec<u8>>) -> Result<Option<Vec<Vec<u8>>>, zmq::Error> + 'a;

fn send_command(socket: &zmq::Socket, command: &WorkerCommand) -> Result<(), zmq::Error> {
    let mut frames = vec![Vec::new()];
    frames.extend(command.encode());
    socket.send_multipart(frames, zmq::DONTWAIT)
}

impl Session {
    fn connect(&self) -> Result<zmq::Socket, zmq::Error> {
        let socket = self.context.socket(zmq::DEALER)?;
        socket.set_linger(0)?;
        if let Some(login) = &self.options.login {
            login.apply(&socket)?;
        }
        socket.connect(&self.url)?;
        // A DEALER queues this until the connection is up.
        let mut frames = vec![Vec::new()];
        frames.extend(
            WorkerCommand::Ready {
                service: self.service.clone(),
                credit: self.options.concurrency,
            }
            .encode(),
        );
        socket.send_multipart(frames, 0)?;
        Ok(socket)
    }
}

/// Sends the broker every reply (or failure) waiting on `app`.
fn forward_replies(app: &zmq::Socket, broker: &zmq::Socket) -> Result<(), zmq::Error> {
    while let Ok(mut frames) = app.recv_multipart(zmq::DONTWAIT) {
        if frames.is_empty() {
            continue;
        }
        let client = frames.remove(0);
        let command = if client.is_empty() {
            // [empty, client, reason]: `Worker::fail`.
            let mut parts = frames.into_iter();
            WorkerCommand::Failed {
                client: parts.next().unwrap_or_default(),
                reason: String::from_utf8_lossy(&parts.next().unwrap_or_default()).into_owned(),
            }
        } else {
            WorkerCommand::Reply {
                client,
                body: frames,
            }
        };
        send_command(broker, &command)?;
    }
    Ok(())
}

/// Runs the worker session until `stop` receives a message (or a socket fails).
///
/// `app`, in threaded mode, is the socket replies come back on: `[client, body...]`, or
/// `["", client, reason]` for a failure.
pub(crate) fn serve(
    session: &Session,
    stop: &zmq::Socket,
    app: Option<&zmq::Socket>,
    on_request: &mut OnRequest<'_>,
) -> Result<(), zmq::Error> {
    let options = &session.options;
    let heartbeat = options.heartbeat;
    let mut broker = session.connect()?;
    let mut liveness = options.liveness;
    let mut backoff = options.reconnect_min;
    let mut next_heartbeat = Instant::now() + heartbeat;
    loop {
        let timeout = next_heartbeat.saturating_duration_since(Instant::now());
        let mut items = vec![
            broker.as_poll_item(zmq::POLLIN),
            stop.as_poll_item(zmq::POLLIN),
        ];
        if let Some(app) = app {
            items.push(app.as_poll_item(zmq::POLLIN));
        }
        match zmq::poll(&mut items, millis(timeout)) {
            Ok(_) | Err(zmq::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
        let (from_broker, stopping) = (items[0].is_readable(), items[1].is_readable());
        let from_app = items.get(2).is_some_and(|i| i.is_readable());
        drop(items);
        if stopping {
            // Replies given before the stop go first: a worker dropped right after its last
            // reply still delivers it.
            if let Some(app) = app {
                let _ = forward_replies(app, &broker);
            }
            let _ = send_command(&broker, &WorkerCommand::Disconnect);
            return Ok(());
        }
        let mut reconnect = false;
        if from_broker {
            while let Ok(frames) = broker.recv_multipart(zmq::DONTWAIT) {
                liveness = options.liveness;
                backoff = options.reconnect_min;
                let rest = match frames.split_first() {
                    Some((delimiter, rest)) if delimiter.is_empty() => rest,
                    _ => &frames[..],
                };
                match WorkerCommand::decode(rest) {
                    Ok(WorkerCommand::Request { client, body }) => {
                        if let Some(reply) = on_request(&client, body)? {
                            send_command(
                                &broker,
                                &WorkerCommand::Reply {
                                    client,
                                    body: reply,
                                },
                            )?;
                        }
                    }
                    Ok(WorkerCommand::Heartbeat) => {}
                    Ok(WorkerCommand::Disconnect) => {
                        info!(service = %session.service, "broker asked to reconnect");
                        reconnect = true;
                    }
                    Ok(other) => debug!(command = ?other, "unexpected command from broker ignored"),
                    Err(e) => warn!(error = %e, "malformed message from broker ignored"),
                }
            }
        }
        if let (true, Some(app)) = (from_app, app) {
            forward_replies(app, &broker)?;
        }
        if Instant::now() >= next_heartbeat {
            next_heartbeat = Instant::now() + heartbeat;
            send_command(&broker, &WorkerCommand::Heartbeat).or_else(ignore_full)?;
            if !from_broker {
                liveness = liveness.saturating_sub(1);
                if liveness == 0 {
                    warn!(service = %session.service, retry_in = ?backoff, "broker silent; reconnecting");
                    // Wait out the backoff, still answering a stop at once.
                    if stop.poll(zmq::POLLIN, millis(backoff))? > 0 {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(options.reconnect_max);
                    reconnect = true;
                }
            }
        }
        if reconnect {
            broker = session.connect()?;
            liveness = options.liveness;
            next_heartbeat = Instant::now() + heartbeat;
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
