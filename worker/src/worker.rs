//! [`Worker`]: receive requests for a service and reply to them.

use std::thread::JoinHandle;
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};
use tracing::warn;
use zhub_protocol::builtin::BUILTIN_PREFIX;
use zhub_protocol::mdp::MMI_PREFIX;

use crate::io::{self, Session, REQUEST_MARK};
use crate::{WorkerError, WorkerOptions};

/// A request handed to this worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    client: Vec<u8>,
    body: Vec<Vec<u8>>,
}

impl Request {
    /// The body (its first frame; zhub clients send one).
    pub fn body(&self) -> &[u8] {
        self.body.first().map(Vec::as_slice).unwrap_or_default()
    }

    /// Every body frame, for multi-frame Majordomo clients.
    pub fn frames(&self) -> &[Vec<u8>] {
        &self.body
    }
}

/// Stops a [`Worker`] from another thread: the worker tells the broker DISCONNECT, and its
/// `run`, `recv` or `recv_timeout` returns. Cheap to clone; stopping twice is harmless.
#[derive(Clone)]
pub struct Stopper {
    context: zmq::Context,
}

/// The worker's stop channel (PULL, bound by the worker; every stop is a PUSH to it).
const STOP_ENDPOINT: &str = "inproc://worker-stop";
/// The application side of the threaded mode.
const APP_ENDPOINT: &str = "inproc://worker-app";
/// Where [`Waker`]s wake a waiting `recv_timeout` (PULL, bound by the worker).
const WAKE_ENDPOINT: &str = "inproc://worker-wake";

/// Makes a [`Worker::recv_timeout`] in progress, or the next one, return `Ok(None)` at once,
/// so that an application can wait for requests and for its other events (messages taken on
/// another thread, say) in one loop: the other thread queues its event, then wakes the
/// worker. Made by [`Worker::waker`]; `Send`, for use on one other thread. Wakes that come
/// while nobody waits are merged into one.
pub struct Waker {
    socket: zmq::Socket,
}

impl Waker {
    /// Wakes the worker.
    pub fn wake(&self) {
        // A full queue holds wakes already: nothing is lost by dropping this one.
        let _ = self.socket.send(&b""[..], zmq::DONTWAIT);
    }
}

impl Stopper {
    /// Asks the worker to stop.
    pub fn stop(&self) {
        if let Ok(socket) = self.context.socket(zmq::PUSH) {
            let _ = socket.set_linger(100);
            if socket.connect(STOP_ENDPOINT).is_ok() {
                let _ = socket.send(&b"stop"[..], zmq::DONTWAIT);
            }
        }
    }
}

/// The background I/O thread of the threaded mode, and its application socket.
struct Threaded {
    app: zmq::Socket,
    io: JoinHandle<()>,
}

/// A worker serving one named service.
///
/// Two ways to serve:
/// - [`Worker::run`] / [`Worker::run_typed`] call a handler for each request on the calling
///   thread, with heartbeats between requests: the fastest way, for handlers that finish well
///   within `liveness` x `heartbeat` (7.5 s by default). A handler that takes longer looks
///   silent to the broker, which then retries its request on another worker.
/// - [`Worker::recv`] / [`Worker::reply`] move the broker connection to a background thread
///   that keeps heartbeating while the application works on a request as long as it likes.
///
/// With [`WorkerOptions::concurrency`] above 1 the broker keeps that many requests in flight
/// to the worker: `run` serves them on that many handler threads (the calling thread keeps
/// the connection and its heartbeats), and `recv` returns each as it comes, to be answered
/// with `reply` in any order.
///
/// Several workers (of the same or different services) may run in one process, each on its
/// own thread. A worker registers when it starts serving and tells the broker DISCONNECT
/// when stopped or dropped.
pub struct Worker {
    session: Session,
    /// Taken by whichever mode starts serving.
    stop: Option<zmq::Socket>,
    threaded: Option<Threaded>,
    stopper: Stopper,
    /// Wakes from [`Waker`]s.
    wake: zmq::Socket,
    served: u64,
}

fn valid_url(url: &str) -> bool {
    match url.split_once("://") {
        Some(("tcp", rest)) => {
            matches!(rest.rsplit_once(':'), Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok())
        }
        Some(("ipc" | "inproc", rest)) => !rest.is_empty(),
        _ => false,
    }
}

impl Worker {
    /// Prepares a worker for `service` at the broker whose main endpoint is `url`, with
    /// default options. It registers when it starts serving (`run` or the first `recv`);
    /// every reconnection registers again by itself.
    ///
    /// # Errors
    /// [`WorkerError::InvalidUrl`], [`WorkerError::InvalidService`] (empty, too long, or
    /// reserved: `zhub.*`, `mmi.*`), [`WorkerError::InvalidOption`], or a ZeroMQ failure.
    pub fn connect(url: &str, service: &str) -> Result<Worker, WorkerError> {
        Self::connect_with(url, service, WorkerOptions::default())
    }

    pub(crate) fn connect_with(
        url: &str,
        service: &str,
        options: WorkerOptions,
    ) -> Result<Worker, WorkerError> {
        if !valid_url(url) {
            return Err(WorkerError::InvalidUrl(url.to_owned()));
        }
        options.validate()?;
        zhub_protocol::request::check_service(service)
            .map_err(|e| WorkerError::InvalidService(e.to_string()))?;
        if service.starts_with(BUILTIN_PREFIX) || service.starts_with(MMI_PREFIX) {
            return Err(WorkerError::InvalidService(format!(
                "{service:?} is reserved for the broker"
            )));
        }
        // inproc names are per context, and every worker has its own.
        let context = zmq::Context::new();
        let stop = context.socket(zmq::PULL)?;
        stop.set_linger(0)?;
        stop.bind(STOP_ENDPOINT)?;
        // Default high-water marks: with a queue of one, a wake sent just after the worker
        // drained the queue can be refused before the pipe learns it has room again, and be
        // lost while the worker waits. Wakes are drained whole, so many cost one return.
        let wake = context.socket(zmq::PULL)?;
        wake.set_linger(0)?;
        wake.bind(WAKE_ENDPOINT)?;
        Ok(Worker {
            wake,
            stopper: Stopper {
                context: context.clone(),
            },
            session: Session {
                context,
                url: url.to_owned(),
                service: service.to_owned(),
                options,
            },
            stop: Some(stop),
            threaded: None,
            served: 0,
        })
    }

    /// The service this worker serves.
    pub fn service(&self) -> &str {
        &self.session.service
    }

    /// Requests answered so far through [`Worker::reply`].
    pub fn served(&self) -> u64 {
        self.served
    }

    /// A handle that stops this worker from another thread.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// A handle that wakes this worker's [`Worker::recv_timeout`] from another thread.
    ///
    /// # Errors
    /// A ZeroMQ failure.
    pub fn waker(&self) -> Result<Waker, WorkerError> {
        let socket = self.session.context.socket(zmq::PUSH)?;
        socket.set_linger(0)?;
        socket.connect(WAKE_ENDPOINT)?;
        Ok(Waker { socket })
    }

    /// Starts the background I/O thread of the threaded mode, once.
    fn threaded(&mut self) -> Result<&Threaded, WorkerError> {
        if self.threaded.is_none() {
            let stop = self.stop.take().ok_or(WorkerError::Stopped)?;
            let context = &self.session.context;
            let app = context.socket(zmq::PAIR)?;
            app.set_linger(0)?;
            app.bind(APP_ENDPOINT)?;
            let io_app = context.socket(zmq::PAIR)?;
            io_app.set_linger(0)?;
            io_app.connect(APP_ENDPOINT)?;
            let session = self.session.clone();
            let io = std::thread::Builder::new()
                .name(format!("zhub-worker-{}", session.service))
                .spawn(move || {
                    let mut forward = |client: &[u8], body: Vec<Vec<u8>>| {
                        let mut message = vec![REQUEST_MARK.to_vec(), client.to_vec()];
                        message.extend(body);
                        io_app.send_multipart(message, 0)?;
                        Ok(None)
                    };
                    if let Err(e) = io::serve(&session, &stop, Some(&io_app), &mut forward) {
                        warn!(service = %session.service, error = %e, "worker I/O thread stopped on an error");
                    }
                })
                .map_err(WorkerError::Thread)?;
            self.threaded = Some(Threaded { app, io });
        }
        self.threaded.as_ref().ok_or(WorkerError::Stopped)
    }

    /// Hands a reply (or a failure) to the I/O thread. Once that thread has stopped nothing
    /// reads its socket, and a send would block for ever: `Stopped` instead.
    fn send_app(&mut self, frames: Vec<Vec<u8>>) -> Result<(), WorkerError> {
        self.threaded()?;
        let threaded = self.threaded.as_ref().ok_or(WorkerError::Stopped)?;
        loop {
            if threaded.io.is_finished() {
                return Err(WorkerError::Stopped);
            }
            // Wake every 100 ms to notice an I/O thread that ended.
            if threaded.app.poll(zmq::POLLOUT, 100)? > 0 {
                threaded.app.send_multipart(frames, 0)?;
                return Ok(());
            }
        }
    }

    /// Waits for the next request (threaded mode: heartbeats continue in the background
    /// until [`Worker::reply`]).
    ///
    /// # Errors
    /// [`WorkerError::Stopped`] once the worker is stopped.
    pub fn recv(&mut self) -> Result<Request, WorkerError> {
        loop {
            if let Some(request) = self.recv_timeout(Duration::from_secs(3600))? {
                return Ok(request);
            }
        }
    }

    /// Waits up to `timeout` for the next request; `Ok(None)` when none came, or when a
    /// [`Waker`] woke it.
    ///
    /// # Errors
    /// [`WorkerError::Stopped`] once the worker is stopped.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Request>, WorkerError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            self.threaded()?;
            let threaded = self.threaded.as_ref().ok_or(WorkerError::Stopped)?;
            if threaded.io.is_finished() {
                return Err(WorkerError::Stopped);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            // Wake at least every 100 ms to notice an I/O thread that ended.
            let slice = i64::try_from(left.as_millis()).unwrap_or(i64::MAX).min(100);
            let mut items = [
                threaded.app.as_poll_item(zmq::POLLIN),
                self.wake.as_poll_item(zmq::POLLIN),
            ];
            zmq::poll(&mut items, slice)?;
            let (request, woken) = (items[0].is_readable(), items[1].is_readable());
            if woken {
                while self.wake.recv_bytes(zmq::DONTWAIT).is_ok() {}
                if !request {
                    return Ok(None);
                }
            }
            if request {
                let mut frames = threaded.app.recv_multipart(0)?;
                if frames.len() >= 2 && frames[0] == REQUEST_MARK {
                    let body = frames.split_off(2);
                    let client = frames.pop().unwrap_or_default();
                    return Ok(Some(Request { client, body }));
                }
            } else if left.is_zero() {
                return Ok(None);
            }
        }
    }

    /// Sends the reply to `request`.
    ///
    /// # Errors
    /// A ZeroMQ failure.
    pub fn reply(&mut self, request: &Request, body: &[u8]) -> Result<(), WorkerError> {
        self.reply_frames(request, vec![body.to_vec()])
    }

    /// Answers `request` with a failure instead of a reply: the client gets a worker-failed
    /// error carrying `reason`, and the broker does not retry the request elsewhere (this
    /// worker did run it). Use it when the work itself failed (a command exited non-zero, a
    /// resource was missing), so that a client never takes an error text for a result.
    ///
    /// A zhub extension of Majordomo (see [`zhub_protocol::mdp`]): a Majordomo client gets no
    /// answer and sees its own timeout, and a broker other than zhub's would not understand it.
    ///
    /// # Errors
    /// A ZeroMQ failure.
    pub fn fail(&mut self, request: &Request, reason: &str) -> Result<(), WorkerError> {
        // An empty first frame tells the I/O thread this is a failure: no client address is
        // empty (ZeroMQ identities never are).
        let frames = vec![
            Vec::new(),
            request.client.clone(),
            reason.as_bytes().to_vec(),
        ];
        self.send_app(frames)?;
        Ok(())
    }

    /// Sends a multi-frame reply to `request`.
    ///
    /// # Errors
    /// A ZeroMQ failure.
    pub fn reply_frames(
        &mut self,
        request: &Request,
        body: Vec<Vec<u8>>,
    ) -> Result<(), WorkerError> {
        let mut frames = Vec::with_capacity(1 + body.len());
        frames.push(request.client.clone());
        frames.extend(body);
        self.send_app(frames)?;
        self.served += 1;
        Ok(())
    }

    /// Serves requests with `handler` (request body in, reply body out) until the worker is
    /// stopped through a [`Stopper`]; then returns `Ok(())`.
    ///
    /// With a concurrency of 1 (the default) the handler runs on this thread. With more
    /// ([`WorkerOptions::concurrency`]) each of that many handler threads calls its own clone
    /// of `handler`, while this thread keeps the broker connection and its heartbeats; the
    /// call returns once every handler has finished the request it held.
    ///
    /// # Errors
    /// A ZeroMQ failure, or [`WorkerError::Thread`] when a handler thread cannot start.
    pub fn run<F>(mut self, handler: F) -> Result<(), WorkerError>
    where
        F: FnMut(&[u8]) -> Vec<u8> + Clone + Send,
    {
        let Some(stop) = self.stop.take() else {
            return self.serve_threaded(handler);
        };
        let threads = self.session.options.concurrency as usize;
        if threads > 1 {
            return crate::pool::serve(&self.session, &stop, threads, handler);
        }
        self.serve_inline(&stop, handler)
    }

    /// Serves every request on the calling thread, whatever the concurrency: the broker
    /// still keeps up to [`WorkerOptions::concurrency`] requests in flight to the worker,
    /// queued at it, so a handler that returns quickly never waits for its next request
    /// (pipelining, as a raw ZeroMQ worker with credit does), and no request crosses to
    /// another thread. For a handler that blocks or takes long, use [`Worker::run`], which
    /// gives each request in flight a thread of its own.
    ///
    /// # Errors
    /// As for [`Worker::run`].
    pub fn run_inline<F>(mut self, handler: F) -> Result<(), WorkerError>
    where
        F: FnMut(&[u8]) -> Vec<u8>,
    {
        let Some(stop) = self.stop.take() else {
            return self.serve_threaded(handler);
        };
        self.serve_inline(&stop, handler)
    }

    /// `run` on a worker already serving in threaded mode (`recv` was called): goes on that
    /// way.
    fn serve_threaded<F>(&mut self, mut handler: F) -> Result<(), WorkerError>
    where
        F: FnMut(&[u8]) -> Vec<u8>,
    {
        loop {
            match self.recv() {
                Ok(request) => {
                    let reply = handler(request.body());
                    self.reply(&request, &reply)?;
                }
                Err(WorkerError::Stopped) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// The loop of [`Worker::run_inline`] (and of `run` with a concurrency of 1).
    fn serve_inline<F>(&self, stop: &zmq::Socket, mut handler: F) -> Result<(), WorkerError>
    where
        F: FnMut(&[u8]) -> Vec<u8>,
    {
        let mut inline = |_client: &[u8], body: Vec<Vec<u8>>| {
            let reply = handler(body.first().map(Vec::as_slice).unwrap_or_default());
            Ok(Some(vec![reply]))
        };
        io::serve(&self.session, stop, None, &mut inline)?;
        Ok(())
    }

    /// Serves requests whose bodies are MessagePack `T`, answering MessagePack `R`.
    ///
    /// A request that does not decode as `T` is logged and answered with an empty body
    /// (Majordomo has no error replies), so the client's decode fails clearly.
    ///
    /// # Errors
    /// As for [`Worker::run`].
    pub fn run_typed<T, R, F>(self, mut handler: F) -> Result<(), WorkerError>
    where
        T: DeserializeOwned,
        R: Serialize,
        F: FnMut(T) -> R + Clone + Send,
    {
        let service = self.session.service.clone();
        self.run(move |body| {
            let decoded = zhub_protocol::body::decode::<T>(body);
            match decoded.map(&mut handler).and_then(|r| zhub_protocol::body::encode(&r)) {
                Ok(bytes) => bytes,
                Err(e) => {
                    warn!(service = %service, error = %e, "request not understood; empty reply sent");
                    Vec::new()
                }
            }
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(threaded) = self.threaded.take() {
            self.stopper.stop();
            let _ = threaded.io.join();
        }
    }
}
