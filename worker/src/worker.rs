//! [`Worker`]: receive requests for a service and reply to them.

use std::thread::JoinHandle;
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};
use tracing::warn;
use zhub_protocol::builtin::BUILTIN_PREFIX;
use zhub_protocol::mdp::MMI_PREFIX;

use crate::io::{Io, REQUEST_MARK};
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
/// `recv` or `run` returns. Cheap to clone.
#[derive(Clone)]
pub struct Stopper {
    context: zmq::Context,
    endpoint: String,
}

impl Stopper {
    /// Asks the worker to stop. Harmless if it already has.
    pub fn stop(&self) {
        if let Ok(socket) = self.context.socket(zmq::PAIR) {
            let _ = socket.set_linger(100);
            if socket.connect(&self.endpoint).is_ok() {
                let _ = socket.send(&b"stop"[..], zmq::DONTWAIT);
            }
        }
    }
}

/// A worker serving one named service.
///
/// Several workers (of the same or different services) may run in one process, each on its
/// own thread. Dropping a worker tells the broker DISCONNECT.
pub struct Worker {
    service: String,
    app: zmq::Socket,
    stopper: Stopper,
    io: Option<JoinHandle<()>>,
    served: u64,
    // Declared last so it is dropped after the sockets.
    _context: zmq::Context,
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
    /// Registers a worker for `service` at the broker whose main endpoint is `url`, with
    /// default options. Returns at once: registration and every reconnection happen on the
    /// worker's I/O thread.
    ///
    /// # Errors
    /// [`WorkerError::InvalidUrl`], [`WorkerError::InvalidService`] (empty, too long, or
    /// reserved: `zhub.*`, `mmi.*`), or a ZeroMQ failure.
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
        zhub_protocol::request::check_service(service)
            .map_err(|e| WorkerError::InvalidService(e.to_string()))?;
        if service.starts_with(BUILTIN_PREFIX) || service.starts_with(MMI_PREFIX) {
            return Err(WorkerError::InvalidService(format!(
                "{service:?} is reserved for the broker"
            )));
        }
        let context = zmq::Context::new();
        // inproc names are per context, and every worker has its own.
        let app_endpoint = "inproc://worker-app".to_owned();
        let stop_endpoint = "inproc://worker-stop".to_owned();
        let app = context.socket(zmq::PAIR)?;
        app.set_linger(0)?;
        app.bind(&app_endpoint)?;
        let io_app = context.socket(zmq::PAIR)?;
        io_app.set_linger(0)?;
        io_app.connect(&app_endpoint)?;
        let stop = context.socket(zmq::PAIR)?;
        stop.set_linger(0)?;
        stop.bind(&stop_endpoint)?;
        let io = Io {
            context: context.clone(),
            url: url.to_owned(),
            service: service.to_owned(),
            options,
            app: io_app,
            stop,
        };
        let thread_service = service.to_owned();
        let handle = std::thread::Builder::new()
            .name(format!("zhub-worker-{service}"))
            .spawn(move || {
                if let Err(e) = io.run() {
                    warn!(service = %thread_service, error = %e, "worker I/O thread stopped on an error");
                }
                // Dropping `io` closes its end of the application socket, which ends
                // `recv` with `Stopped`.
            })
            .map_err(WorkerError::Thread)?;
        Ok(Worker {
            service: service.to_owned(),
            app,
            stopper: Stopper {
                context: context.clone(),
                endpoint: stop_endpoint,
            },
            io: Some(handle),
            served: 0,
            _context: context,
        })
    }

    /// The service this worker serves.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Requests served so far.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// A handle that stops this worker from another thread.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Waits for the next request.
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

    /// Waits up to `timeout` for the next request; `Ok(None)` when none came.
    ///
    /// # Errors
    /// [`WorkerError::Stopped`] once the worker is stopped.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Request>, WorkerError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let io_alive = self.io.as_ref().is_some_and(|h| !h.is_finished());
            if !io_alive {
                return Err(WorkerError::Stopped);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            // Wake at least every 100 ms to notice an I/O thread that ended.
            let slice = i64::try_from(left.as_millis()).unwrap_or(i64::MAX).min(100);
            if self.app.poll(zmq::POLLIN, slice)? > 0 {
                let mut frames = self.app.recv_multipart(0)?;
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
        self.app.send_multipart(frames, 0)?;
        self.served += 1;
        Ok(())
    }

    /// Serves requests with `handler` (request body in, reply body out) until the worker is
    /// stopped. Returns `Ok(())` when stopped through a [`Stopper`].
    ///
    /// # Errors
    /// A ZeroMQ failure.
    pub fn run<F>(mut self, mut handler: F) -> Result<(), WorkerError>
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
        F: FnMut(T) -> R,
    {
        let service = self.service.clone();
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
        self.stopper.stop();
        if let Some(handle) = self.io.take() {
            let _ = handle.join();
        }
    }
}
