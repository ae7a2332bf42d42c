//! The handler pool of [`crate::Worker::run`] for a worker with a concurrency above 1.
//!
//! The session loop ([`io::serve`]) stays on the caller's thread and owns the broker socket.
//! Each request it receives goes over a channel to whichever handler thread is free; the
//! handler's reply comes back on a PUSH socket of its own, connected to the loop's PULL
//! socket, as `[client address, reply body]`, the shape the loop sends on to the broker.
//! Because the loop never runs a handler, heartbeats flow however long a handler takes.
//!
//! The channel is not bounded by its own capacity but by the broker: it never has more
//! requests in flight to a worker than the worker's credit, which is the pool's size. (Across
//! a reconnection a handler may still finish a request of the old session; its reply is then
//! for a request the broker no longer expects from this session, and is ignored there.)

use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;

use tracing::warn;

use crate::io::{self, Session};
use crate::WorkerError;

/// Where the handlers' replies come back (PULL, bound by the loop before any handler
/// connects). inproc names are per context, and every worker has its own.
const REPLIES_ENDPOINT: &str = "inproc://worker-pool";

/// A request for a handler: the address to answer and the body frames.
struct Job {
    client: Vec<u8>,
    body: Vec<Vec<u8>>,
}

/// Serves `session` with `threads` copies of `handler`, each on its own thread, until `stop`
/// receives a message; then waits for the handlers to finish what they hold.
pub(crate) fn serve<F>(
    session: &Session,
    stop: &zmq::Socket,
    threads: usize,
    handler: F,
) -> Result<(), WorkerError>
where
    F: FnMut(&[u8]) -> Vec<u8> + Clone + Send,
{
    let replies = session.context.socket(zmq::PULL)?;
    replies.set_linger(0)?;
    replies.bind(REPLIES_ENDPOINT)?;
    let (jobs, queue) = mpsc::channel::<Job>();
    // std's channel has one receiver; the handlers take turns at it.
    let queue = Mutex::new(queue);
    std::thread::scope(|scope| {
        // Owned by this closure, so that any return from it closes the channel and the scope
        // does not wait forever for handlers blocked on it.
        let jobs = jobs;
        for i in 0..threads {
            let handler = handler.clone();
            let (queue, context) = (&queue, &session.context);
            std::thread::Builder::new()
                .name(format!("zhub-handler-{}-{i}", session.service))
                .spawn_scoped(scope, move || {
                    if let Err(e) = handle(context, queue, handler) {
                        warn!(service = %session.service, error = %e, "worker handler thread stopped on an error");
                    }
                })
                .map_err(WorkerError::Thread)?;
        }
        let mut forward = |client: &[u8], body: Vec<Vec<u8>>| {
            let job = Job {
                client: client.to_vec(),
                body,
            };
            // Every handler has ended (each one's error is logged): stop serving.
            jobs.send(job).map_err(|_| zmq::Error::ETERM)?;
            Ok(None)
        };
        let served = io::serve(session, stop, Some(&replies), &mut forward);
        // Closing the channel ends each handler once it has finished its request.
        drop(jobs);
        served.map_err(WorkerError::from)
    })
}

/// One handler thread: take a request, answer it, until the channel closes.
fn handle<F>(
    context: &zmq::Context,
    queue: &Mutex<Receiver<Job>>,
    mut handler: F,
) -> Result<(), zmq::Error>
where
    F: FnMut(&[u8]) -> Vec<u8>,
{
    let replies = context.socket(zmq::PUSH)?;
    replies.set_linger(0)?;
    replies.connect(REPLIES_ENDPOINT)?;
    loop {
        // A handler that panicked does not hold the lock (it panics outside it), so a poisoned
        // lock still guards a sound receiver.
        let next = match queue.lock() {
            Ok(receiver) => receiver.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(Job { client, body }) = next else {
            return Ok(());
        };
        let reply = handler(body.first().map(Vec::as_slice).unwrap_or_default());
        replies.send_multipart([client, reply], 0)?;
    }
}
