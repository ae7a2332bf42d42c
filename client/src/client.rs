//! [`Client`]: one connection to a broker for requests, publishing and subscribing.

use std::time::{Duration, Instant};

use serde::{de::DeserializeOwned, Serialize};
use tracing::debug;
use zhub_protocol::builtin::{BrokerInfo, Stats, INFO_SERVICE, STATS_SERVICE};
use zhub_protocol::bus::{self, Encoding, PROBE_PREFIX};
use zhub_protocol::{body, Reply, Request, Status};

use crate::error::{
    ConnectError, ConnectErrorKind, PublishError, PublishErrorKind, RequestError, RequestErrorKind,
    SubscribeError, SubscribeErrorKind,
};
use crate::options::{millis, ClientOptions};
use crate::publisher::Publisher;
use crate::subscriber::{Incoming, Subscriber, Subscription};
use crate::util::{connectable, random_u64, valid_url, LamportClock};
use crate::Message;

/// Longest wait between two subscription probes.
const PROBE_MAX_INTERVAL: Duration = Duration::from_millis(200);

/// A connection to a zhub broker.
///
/// It is given only the broker's main endpoint and learns the publish and subscribe endpoints
/// from the broker's `zhub.info` service. A client is used from one thread at a time (it owns
/// ZeroMQ sockets); make one per thread, or move it.
///
/// ```no_run
/// let mut client = zhub_client::Client::connect("tcp://127.0.0.1:5555")?;
/// let mut pongs = client.subscribe(&["pongs"])?;
/// client.publish("pings", &"ping")?;
/// let reply = pongs.recv()?;
/// println!("{}: {}", reply.topic(), reply.decode::<String>()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Client {
    options: ClientOptions,
    info: BrokerInfo,
    main: zmq::Socket,
    publisher: Option<Publisher>,
    publisher_id: u64,
    clock: LamportClock,
    next_request_id: u64,
    // Declared last so it is dropped after the sockets above.
    context: zmq::Context,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("broker", &self.info)
            .field("publisher_id", &format_args!("{:016x}", self.publisher_id))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the broker whose main endpoint is `url`, with default options.
    ///
    /// # Errors
    /// [`ConnectErrorKind::InvalidUrl`] for a malformed URL, [`ConnectErrorKind::TimedOut`]
    /// when no broker answers within the timeout (5 s by default).
    pub fn connect(url: &str) -> Result<Client, ConnectError> {
        Self::connect_with(url, ClientOptions::default())
    }

    pub(crate) fn connect_with(url: &str, options: ClientOptions) -> Result<Client, ConnectError> {
        if !valid_url(url) {
            return Err(ConnectError::new(
                ConnectErrorKind::InvalidUrl,
                format!("{url:?}: expected tcp://HOST:PORT, ipc://PATH or inproc://NAME"),
            ));
        }
        let setup =
            |e| ConnectError::with_source(ConnectErrorKind::Transport, "socket setup failed", e);
        let context = zmq::Context::new();
        let main = context.socket(zmq::DEALER).map_err(setup)?;
        main.set_linger(millis(options.linger)).map_err(setup)?;
        main.set_sndtimeo(millis(options.timeout)).map_err(setup)?;
        main.connect(url).map_err(setup)?;
        let mut client = Client {
            info: BrokerInfo {
                version: String::new(),
                main: url.to_owned(),
                publish: String::new(),
                subscribe: String::new(),
            },
            main,
            publisher: None,
            publisher_id: random_u64(),
            clock: LamportClock::default(),
            next_request_id: random_u64() >> 16,
            options,
            context,
        };
        let info: BrokerInfo = client
            .request(INFO_SERVICE, &())
            .map_err(|e| match e.kind() {
                RequestErrorKind::TimedOut => ConnectError::new(
                    ConnectErrorKind::TimedOut,
                    format!(
                        "no broker answered at {url} within {:?}",
                        client.options.timeout
                    ),
                ),
                RequestErrorKind::Transport => {
                    ConnectError::with_source(ConnectErrorKind::Transport, url, e)
                }
                _ => ConnectError::with_source(ConnectErrorKind::Protocol, url, e),
            })?;
        client.info = BrokerInfo {
            publish: connectable(&info.publish, url),
            subscribe: connectable(&info.subscribe, url),
            main: url.to_owned(),
            version: info.version,
        };
        debug!(broker = ?client.info, "connected");
        Ok(client)
    }

    /// The broker's version and endpoints, as learned at connect (wildcard hosts replaced by
    /// the host this client connected to).
    pub fn info(&self) -> &BrokerInfo {
        &self.info
    }

    /// The broker's counters (`zhub.stats`).
    ///
    /// # Errors
    /// As for [`Client::request`].
    pub fn stats(&mut self) -> Result<Stats, RequestError> {
        self.request(STATS_SERVICE, &())
    }

    /// This client's publisher id, carried in the header of every message it publishes.
    pub fn publisher_id(&self) -> u64 {
        self.publisher_id
    }

    /// The client's Lamport clock (shared with its subscribers).
    pub fn lamport(&self) -> u64 {
        self.clock.get()
    }

    /// Sends `body` (MessagePack) to `service` and decodes its MessagePack reply.
    ///
    /// # Errors
    /// A [`RequestError`] whose [`kind`](RequestError::kind) tells no service, busy, timed out,
    /// worker failed, bad request and codec errors apart.
    pub fn request<T, R>(&mut self, service: &str, body: &T) -> Result<R, RequestError>
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let bytes = body::encode(body)
            .map_err(|e| RequestError::with_source(RequestErrorKind::Codec, "request body", e))?;
        let reply = self.request_bytes(service, &bytes)?;
        body::decode(&reply)
            .map_err(|e| RequestError::with_source(RequestErrorKind::Codec, "reply body", e))
    }

    /// Sends raw `body` to `service` and returns the raw reply, waiting up to the client's
    /// timeout.
    ///
    /// # Errors
    /// As for [`Client::request`].
    pub fn request_bytes(&mut self, service: &str, body: &[u8]) -> Result<Vec<u8>, RequestError> {
        let reply = self.call(service, vec![body.to_vec()], self.options.timeout)?;
        Ok(reply.body.into_iter().next().unwrap_or_default())
    }

    /// Sends one request and waits for the reply with its id, discarding late replies to
    /// earlier requests that timed out.
    fn call(
        &mut self,
        service: &str,
        body: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Reply, RequestError> {
        zhub_protocol::request::check_service(service)
            .map_err(|e| RequestError::with_source(RequestErrorKind::BadRequest, service, e))?;
        let id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        let request = Request {
            id,
            service: service.to_owned(),
            timeout,
            body,
        };
        let mut frames = vec![Vec::new()];
        frames.extend(request.encode());
        let transport = |e| RequestError::with_source(RequestErrorKind::Transport, service, e);
        match self.main.send_multipart(frames, 0) {
            Ok(()) => {}
            Err(zmq::Error::EAGAIN) => {
                return Err(RequestError::new(
                    RequestErrorKind::TimedOut,
                    format!("{service}: the broker did not take the request within {timeout:?}"),
                ))
            }
            Err(e) => return Err(transport(e)),
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RequestError::new(
                    RequestErrorKind::TimedOut,
                    format!("{service}: no reply within {timeout:?}"),
                ));
            }
            match self.main.poll(zmq::POLLIN, i64::from(millis(left).max(1))) {
                Ok(0) | Err(zmq::Error::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(transport(e)),
            }
            let frames = self.main.recv_multipart(0).map_err(transport)?;
            let reply = match frames.split_first() {
                Some((delimiter, rest)) if delimiter.is_empty() => Reply::decode(rest),
                _ => Reply::decode(&frames),
            }
            .map_err(|e| RequestError::with_source(RequestErrorKind::Protocol, service, e))?;
            if reply.id != id {
                debug!(id = reply.id, "late reply to an earlier request discarded");
                continue;
            }
            let kind = match reply.status {
                Status::Ok => return Ok(reply),
                Status::NoService => RequestErrorKind::NoService,
                Status::Busy => RequestErrorKind::Busy,
                Status::TimedOut => RequestErrorKind::TimedOut,
                Status::WorkerFailed => RequestErrorKind::WorkerFailed,
                Status::BadRequest => RequestErrorKind::BadRequest,
                _ => RequestErrorKind::Internal,
            };
            return Err(RequestError::new(kind, reply.reason()));
        }
    }

    fn publisher(&mut self) -> Result<&mut Publisher, PublishError> {
        if self.publisher.is_none() {
            let publisher = Publisher::connect(
                &self.context,
                &self.info.publish,
                self.publisher_id,
                &self.options,
            )?;
            self.publisher = Some(publisher);
        }
        // Just set above when it was missing.
        self.publisher
            .as_mut()
            .ok_or_else(|| PublishError::new(PublishErrorKind::Transport, "no publisher"))
    }

    /// Publishes `value`, encoded as MessagePack, on `topic`.
    ///
    /// The first publish connects to the broker's publish endpoint and waits until the broker
    /// is ready to take messages, so even the first message is not lost. When the broker's
    /// queue for this client is full, this waits (up to the timeout) rather than dropping.
    ///
    /// # Errors
    /// [`PublishErrorKind::InvalidTopic`] for an empty, over-long or reserved (`$...`) topic,
    /// [`PublishErrorKind::Codec`], [`PublishErrorKind::TimedOut`].
    pub fn publish<T: Serialize + ?Sized>(
        &mut self,
        topic: &str,
        value: &T,
    ) -> Result<(), PublishError> {
        let bytes = body::encode(value)
            .map_err(|e| PublishError::with_source(PublishErrorKind::Codec, topic, e))?;
        let clock = self.clock.clone();
        self.publisher()?
            .publish(topic, Encoding::MsgPack, &bytes, &clock)
    }

    /// Publishes raw bytes on `topic`. See [`Client::publish`].
    ///
    /// # Errors
    /// As for [`Client::publish`].
    pub fn publish_bytes(&mut self, topic: &str, body: &[u8]) -> Result<(), PublishError> {
        let clock = self.clock.clone();
        self.publisher()?
            .publish(topic, Encoding::Raw, body, &clock)
    }

    /// Subscribes to every topic starting with one of `prefixes` (`""` takes every topic).
    ///
    /// Returns only once the subscription is live end to end: a probe message sent through the
    /// broker on a topic of this subscriber's own has come back. Anything published after this
    /// returns is delivered.
    ///
    /// # Errors
    /// [`SubscribeErrorKind::InvalidTopic`] for a prefix with a NUL byte or over 1024 bytes;
    /// [`SubscribeErrorKind::TimedOut`] when the probe does not come back within the timeout.
    pub fn subscribe(&mut self, prefixes: &[&str]) -> Result<Subscriber, SubscribeError> {
        for prefix in prefixes {
            if !prefix.is_empty() {
                bus::check_topic(prefix).map_err(|e| {
                    SubscribeError::with_source(SubscribeErrorKind::InvalidTopic, *prefix, e)
                })?;
            }
        }
        let setup = |e| {
            SubscribeError::with_source(SubscribeErrorKind::Transport, "socket setup failed", e)
        };
        let socket = self.context.socket(zmq::SUB).map_err(setup)?;
        socket.set_linger(0).map_err(setup)?;
        socket
            .set_rcvhwm(self.options.subscribe_hwm)
            .map_err(setup)?;
        socket.connect(&self.info.subscribe).map_err(setup)?;
        for prefix in prefixes {
            socket.set_subscribe(prefix.as_bytes()).map_err(setup)?;
        }
        let probe_topic = format!("{PROBE_PREFIX}{:016x}", random_u64());
        socket
            .set_subscribe(probe_topic.as_bytes())
            .map_err(setup)?;
        let mut subscriber = Subscriber::new(socket, self.clock.clone());
        self.confirm(&mut subscriber, &probe_topic)?;
        subscriber
            .socket()
            .set_unsubscribe(probe_topic.as_bytes())
            .map_err(setup)?;
        Ok(subscriber)
    }

    /// Sends probes on `probe_topic` until one comes back through the broker, keeping any
    /// user message that arrives meanwhile. Retries with a growing interval: a probe sent
    /// before the broker applied the subscription is dropped there.
    fn confirm(
        &mut self,
        subscriber: &mut Subscriber,
        probe_topic: &str,
    ) -> Result<(), SubscribeError> {
        let timeout = self.options.timeout;
        let deadline = Instant::now() + timeout;
        let nonce = random_u64().to_be_bytes();
        let mut interval = Duration::from_millis(5);
        let clock = self.clock.clone();
        let publish_failed = |e: PublishError| {
            SubscribeError::with_source(SubscribeErrorKind::Transport, "cannot send probe", e)
        };
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(SubscribeError::new(
                    SubscribeErrorKind::TimedOut,
                    format!("no probe came back through the broker within {timeout:?}"),
                ));
            }
            self.publisher()
                .map_err(publish_failed)?
                .publish_system(probe_topic, &nonce, &clock)
                .map_err(publish_failed)?;
            let wait_until = (now + interval).min(deadline);
            interval = (interval * 2).min(PROBE_MAX_INTERVAL);
            loop {
                let left = wait_until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let socket = subscriber.socket();
                match socket.poll(zmq::POLLIN, i64::from(millis(left).max(1))) {
                    Ok(0) | Err(zmq::Error::EINTR) => continue,
                    Ok(_) => {}
                    Err(e) => {
                        return Err(SubscribeError::with_source(
                            SubscribeErrorKind::Transport,
                            "poll failed",
                            e,
                        ))
                    }
                }
                while let Ok(frame) = subscriber.socket().recv_bytes(zmq::DONTWAIT) {
                    match subscriber.classify(frame) {
                        Incoming::Probe { topic, body }
                            if topic == probe_topic && body == nonce =>
                        {
                            return Ok(())
                        }
                        Incoming::Message(message) => subscriber.hold(message),
                        Incoming::Probe { .. } | Incoming::Nothing => {}
                    }
                }
            }
        }
    }

    /// Subscribes like [`Client::subscribe`] and calls `callback` with each message on a
    /// thread of the subscription's own, until the returned handle is unregistered or dropped.
    ///
    /// # Errors
    /// As for [`Client::subscribe`].
    pub fn subscribe_with<F>(
        &mut self,
        prefixes: &[&str],
        callback: F,
    ) -> Result<Subscription, SubscribeError>
    where
        F: FnMut(Message) + Send + 'static,
    {
        let subscriber = self.subscribe(prefixes)?;
        Subscription::spawn(&self.context, subscriber, callback)
    }
}
