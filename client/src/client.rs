//! [`Client`]: one connection to a broker for requests, publishing and subscribing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use serde::{de::DeserializeOwned, Serialize};
use tracing::debug;
use zhub_protocol::builtin::{
    BrokerInfo, Stats, StorageStats, INFO_SERVICE, STATS_SERVICE, STORAGE_SERVICE,
};
use zhub_protocol::bus::{Encoding, PROBE_PREFIX};
use zhub_protocol::delivery;
use zhub_protocol::ids::random_u64;
use zhub_protocol::{body, names, Reply, Request, Status};

use crate::error::{
    refused_name, ConnectError, ConnectErrorKind, PublishError, PublishErrorKind, RequestError,
    RequestErrorKind, SubscribeError, SubscribeErrorKind, WithKind,
};
use crate::options::{millis, ClientOptions, RequestOptions};
use crate::publisher::Publisher;
use crate::subscriber::{Incoming, Subscriber, Subscription};
use crate::util::{connectable, valid_url, LamportClock};
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
    /// Requests sent and not yet answered, with the time after which this client stops
    /// waiting for them.
    outstanding: HashMap<u64, Instant>,
    /// Replies that arrived while the client waited for another one.
    stash: HashMap<u64, Reply>,
    /// The peer broker whose built-in services this client's requests go to ([`Client::at`]).
    home: Option<String>,
    // Declared last so it is dropped after the sockets above.
    context: Arc<zmq::Context>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("broker", &self.info)
            .field("publisher_id", &format_args!("{:016x}", self.publisher_id))
            .finish_non_exhaustive()
    }
}

/// A socket that becomes readable when the socket monitored at `endpoint` (see
/// [`Client::open`]) has a login refused. libzmq tries again at every reconnection, so a
/// refusal made before this socket connected is seen at the next.
fn login_refusals(context: &zmq::Context, endpoint: &str) -> Result<zmq::Socket, ConnectError> {
    const SETUP: &str = "login monitor setup failed";
    let socket = context
        .socket(zmq::PAIR)
        .kind(ConnectErrorKind::Transport, SETUP)?;
    socket
        .set_linger(0)
        .kind(ConnectErrorKind::Transport, SETUP)?;
    socket
        .connect(endpoint)
        .kind(ConnectErrorKind::Transport, SETUP)?;
    Ok(socket)
}

/// The ZeroMQ context the process's clients share while any of them is alive.
///
/// A context owns an I/O thread: one per client, as there used to be, meant that eight
/// clients on two cores fought eight I/O threads for them. Sockets stay per client (and per
/// thread); the context is made for sharing. It is dropped with the last client that holds
/// it, and dropping it is what waits for sockets' queued messages to go (their linger), so a
/// process that publishes and exits still delivers what it published; a later client makes a
/// new one.
fn shared_context() -> Arc<zmq::Context> {
    static SHARED: Mutex<Weak<zmq::Context>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(context) = slot.upgrade() {
        return context;
    }
    let context = Arc::new(zmq::Context::new());
    *slot = Arc::downgrade(&context);
    context
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
        if let Some(login) = &options.login {
            login.check().map_err(|e| {
                ConnectError::new(ConnectErrorKind::InvalidKey, e.detail().to_owned())
            })?;
        }
        let unknown = BrokerInfo {
            version: String::new(),
            main: url.to_owned(),
            publish: String::new(),
            subscribe: String::new(),
            deliver: String::new(),
            max_message: 0,
            http: String::new(),
            ..BrokerInfo::default()
        };
        // With a login, the main socket's handshakes are watched: a refusal ends the wait
        // at once, with what happened, rather than as a broker that never answers.
        let watch = options
            .login
            .is_some()
            .then(|| format!("inproc://zhub-login-{}", random_u64()));
        let mut client = Client::open(shared_context(), unknown, options, watch.as_deref())?;
        let refusals = match &watch {
            Some(endpoint) => Some(login_refusals(&client.context, endpoint)?),
            None => None,
        };
        let info: BrokerInfo = client
            .first_info(refusals.as_ref())
            .inspect_err(|_| {
                // The only message queued is the `zhub.info` request nobody answered: drop
                // it with the socket, or the linger (2 s by default) would follow the timeout.
                let _ = client.main.set_linger(0);
            })
            .map_err(|e| match e.kind() {
                RequestErrorKind::Forbidden => ConnectError::new(
                    ConnectErrorKind::Refused,
                    format!("the broker at {url} refused the login (unknown user or key, or wrong password)"),
                ),
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
            deliver: connectable(&info.deliver, url),
            max_message: info.max_message,
            main: url.to_owned(),
            version: info.version,
            http: info.http,
            name: info.name,
            zone: info.zone,
            cluster: info.cluster,
        };
        debug!(broker = ?client.info, "connected");
        Ok(client)
    }

    /// The broker's `zhub.info`, the first request of a client; with `refusals` (see
    /// [`login_refusals`]), a refused login ends the wait at once as `Forbidden`.
    fn first_info(&mut self, refusals: Option<&zmq::Socket>) -> Result<BrokerInfo, RequestError> {
        let Some(refusals) = refusals else {
            return self.request(INFO_SERVICE, &());
        };
        let timeout = self.options.timeout;
        let body = body::encode(&()).kind(RequestErrorKind::Codec, "request body")?;
        let id = self.send_request_bytes(INFO_SERVICE, &body, timeout)?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RequestError::new(
                    RequestErrorKind::TimedOut,
                    "no reply in time",
                ));
            }
            let mut items = [
                self.main.as_poll_item(zmq::POLLIN),
                refusals.as_poll_item(zmq::POLLIN),
            ];
            zmq::poll(&mut items, millis(left).max(1).into())
                .kind(RequestErrorKind::Transport, "poll")?;
            if items[1].is_readable() {
                return Err(RequestError::new(
                    RequestErrorKind::Forbidden,
                    "the broker refused the login",
                ));
            }
            if items[0].is_readable() {
                let (got, outcome) = self.recv_reply()?;
                if got == id {
                    return body::decode(&outcome?).kind(RequestErrorKind::Codec, "reply body");
                }
            }
        }
    }

    /// A client of the broker `info` describes, its main socket connected, in `context`;
    /// with `watch`, the socket's refused logins are reported at that inproc endpoint.
    fn open(
        context: Arc<zmq::Context>,
        info: BrokerInfo,
        options: ClientOptions,
        watch: Option<&str>,
    ) -> Result<Client, ConnectError> {
        const SETUP: &str = "socket setup failed";
        let main = context
            .socket(zmq::DEALER)
            .kind(ConnectErrorKind::Transport, SETUP)?;
        main.set_linger(millis(options.linger))
            .kind(ConnectErrorKind::Transport, SETUP)?;
        main.set_sndtimeo(millis(options.timeout))
            .kind(ConnectErrorKind::Transport, SETUP)?;
        options
            .secure(&main)
            .kind(ConnectErrorKind::Transport, SETUP)?;
        if let Some(endpoint) = watch {
            main.monitor(endpoint, zmq::SocketEvent::HANDSHAKE_FAILED_AUTH as i32)
                .kind(ConnectErrorKind::Transport, SETUP)?;
        }
        main.connect(&info.main)
            .kind(ConnectErrorKind::Transport, SETUP)?;
        Ok(Client {
            info,
            main,
            publisher: None,
            publisher_id: random_u64(),
            clock: LamportClock::default(),
            next_request_id: random_u64() >> 16,
            outstanding: HashMap::new(),
            stash: HashMap::new(),
            home: None,
            options,
            context,
        })
    }

    /// Another connection to the same broker, for another thread: sockets, publisher id and
    /// clocks of its own, and this client's ZeroMQ context (a context is shared safely
    /// between threads, a socket is not), options and broker endpoints, so that it needs no
    /// `zhub.info` round trip of its own.
    ///
    /// # Errors
    /// [`ConnectErrorKind::Transport`] when the main socket cannot be set up.
    pub(crate) fn sibling(&self) -> Result<Client, ConnectError> {
        let mut sibling = Client::open(
            self.context.clone(),
            self.info.clone(),
            self.options.clone(),
            None,
        )?;
        sibling.home = self.home.clone();
        Ok(sibling)
    }

    /// Another connection to this client's broker whose requests to built-in services
    /// (`zhub.kv`, `zhub.log`, `zhub.group`, `zhub.stats`...) are served by the peer broker
    /// named `broker`, through the cluster link: the key-value store, event log and process
    /// groups a broker holds are reached from any broker peered with it. Requests to other
    /// services, and publishing and subscribing, stay as they are. Process groups joined
    /// through it ([`crate::Group::join`]) live on that broker, with members on any broker.
    ///
    /// ```no_run
    /// let client = zhub_client::Client::connect("tcp://127.0.0.1:5555")?;
    /// let mut b1 = client.at("B1")?;
    /// b1.kv().put("greeting", b"hello")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As for [`Client::connect`]. A broker with no peer of that name in session answers its
    /// requests [`RequestErrorKind::NoService`].
    pub fn at(&self, broker: &str) -> Result<Client, ConnectError> {
        let mut client = self.sibling()?;
        client.home = Some(broker.to_owned());
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

    /// What the broker's storage thread has done: key-value and event log requests by
    /// operation, and how long its syncs took.
    ///
    /// # Errors
    /// As for [`Client::request`].
    pub fn storage_stats(&mut self) -> Result<StorageStats, RequestError> {
        self.request(STORAGE_SERVICE, &())
    }

    /// The event log through this client's broker.
    pub fn log(&mut self) -> crate::Log<'_> {
        crate::Log::new(self)
    }

    /// The key-value store through this client's broker.
    pub fn kv(&mut self) -> crate::Kv<'_> {
        crate::Kv::new(self)
    }

    /// The client's default timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.options.timeout
    }

    /// The options this client was made with.
    pub(crate) fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// One request to a built-in service whose bodies are MessagePack (`zhub.log`,
    /// `zhub.kv`): encodes `request`, waits up to `timeout`, decodes the reply.
    pub(crate) fn call_builtin<Q: Serialize, P: DeserializeOwned>(
        &mut self,
        service: &str,
        request: &Q,
        timeout: Duration,
    ) -> Result<P, RequestError> {
        self.call_builtin_with(service, request, timeout, body::decode)
    }

    /// As [`Client::call_builtin`], the reply read by `decode` (a service with a reader of its
    /// own, as the log's for records).
    pub(crate) fn call_builtin_with<Q: Serialize, P>(
        &mut self,
        service: &str,
        request: &Q,
        timeout: Duration,
        decode: impl FnOnce(&[u8]) -> Result<P, zhub_protocol::ProtocolError>,
    ) -> Result<P, RequestError> {
        let bytes = body::encode(request)
            .kind_with(RequestErrorKind::Codec, || format!("{service} request"))?;
        let reply =
            self.request_bytes_with(service, &bytes, &RequestOptions::new().timeout(timeout))?;
        decode(&reply).kind_with(RequestErrorKind::Protocol, || format!("{service} reply"))
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
        let options = RequestOptions::new().timeout(self.options.timeout);
        self.request_with(service, body, &options)
    }

    /// Like [`Client::request`], with per-request options (timeout).
    ///
    /// # Errors
    /// As for [`Client::request`].
    pub fn request_with<T, R>(
        &mut self,
        service: &str,
        body: &T,
        options: &RequestOptions,
    ) -> Result<R, RequestError>
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let bytes = body::encode(body).kind(RequestErrorKind::Codec, "request body")?;
        let reply = self.request_bytes_with(service, &bytes, options)?;
        body::decode(&reply).kind(RequestErrorKind::Codec, "reply body")
    }

    /// Sends raw `body` to `service` and returns the raw reply, waiting up to the client's
    /// timeout.
    ///
    /// # Errors
    /// As for [`Client::request`].
    pub fn request_bytes(&mut self, service: &str, body: &[u8]) -> Result<Vec<u8>, RequestError> {
        let options = RequestOptions::new().timeout(self.options.timeout);
        self.request_bytes_with(service, body, &options)
    }

    /// Sends raw `body` to `service` with `options` and returns the raw reply.
    ///
    /// # Errors
    /// As for [`Client::request`].
    pub fn request_bytes_with(
        &mut self,
        service: &str,
        body: &[u8],
        options: &RequestOptions,
    ) -> Result<Vec<u8>, RequestError> {
        let reply = self.call(service, vec![body.to_vec()], options.timeout)?;
        Ok(reply.into_iter().next().unwrap_or_default())
    }

    /// Sends a request without waiting for its reply, so that many can be in flight on one
    /// client (pipelining). Returns the request id that [`Client::recv_reply`] reports with
    /// its reply. The broker answers `timeout` after sending at the latest.
    ///
    /// # Errors
    /// [`RequestErrorKind::BadRequest`] for a bad service name, [`RequestErrorKind::TimedOut`]
    /// when the broker does not take the request within `timeout`.
    pub fn send_request_bytes(
        &mut self,
        service: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<u64, RequestError> {
        self.send(service, vec![body.to_vec()], timeout)
    }

    /// Requests sent with [`Client::send_request_bytes`] and not yet reported by
    /// [`Client::recv_reply`].
    pub fn in_flight(&self) -> usize {
        self.outstanding.len()
    }

    /// Waits for the reply to any request in flight and returns its id with its outcome
    /// (the reply body, or why there is none).
    ///
    /// # Errors
    /// [`RequestErrorKind::BadRequest`] when nothing is in flight, [`RequestErrorKind::Transport`]
    /// or [`RequestErrorKind::Protocol`] when the connection fails.
    pub fn recv_reply(&mut self) -> Result<(u64, Result<Vec<u8>, RequestError>), RequestError> {
        loop {
            if let Some(&id) = self.stash.keys().next() {
                if let Some(reply) = self.stash.remove(&id) {
                    self.outstanding.remove(&id);
                    return Ok((id, outcome(reply).map(first_frame)));
                }
            }
            let Some((&id, &until)) = self.outstanding.iter().min_by_key(|(_, until)| **until)
            else {
                return Err(RequestError::new(
                    RequestErrorKind::BadRequest,
                    "no request in flight",
                ));
            };
            match self.next_reply(until)? {
                Some(reply) if self.outstanding.remove(&reply.id).is_some() => {
                    let reply_id = reply.id;
                    return Ok((reply_id, outcome(reply).map(first_frame)));
                }
                Some(reply) => debug!(
                    id = reply.id,
                    "late reply to an abandoned request discarded"
                ),
                None => {
                    self.outstanding.remove(&id);
                    let error = RequestError::new(RequestErrorKind::TimedOut, "no reply in time");
                    return Ok((id, Err(error)));
                }
            }
        }
    }

    /// Sends one request; returns its id.
    fn send(
        &mut self,
        service: &str,
        body: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Result<u64, RequestError> {
        zhub_protocol::request::check_service(service)
            .kind(RequestErrorKind::BadRequest, service)?;
        // The broker answers a request over its max_message with 413, but cuts off a
        // connection whose frame is far over it (ZeroMQ's own limit), and the request would
        // then only time out: refuse it here, at once, with the same answer. (Unknown, 0,
        // only for the `zhub.info` request that learns it.)
        let size: usize = body.iter().map(Vec::len).sum();
        let max = usize::try_from(self.info.max_message).unwrap_or(usize::MAX);
        if max > 0 && size > max {
            return Err(RequestError::new(
                RequestErrorKind::TooLarge,
                format!(
                    "{service}: a request of {size} bytes is over the broker's max_message of {max} bytes"
                ),
            ));
        }
        let id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        let on_wire = match &self.home {
            Some(broker) if service.starts_with(zhub_protocol::builtin::BUILTIN_PREFIX) => {
                zhub_protocol::builtin::at_home(service, broker)
            }
            _ => service.to_owned(),
        };
        let request = Request {
            id,
            service: on_wire,
            timeout,
            body,
        };
        let mut frames = vec![Vec::new()];
        frames.extend(request.encode());
        match self.main.send_multipart(frames, 0) {
            Ok(()) => {}
            Err(zmq::Error::EAGAIN) => {
                return Err(RequestError::new(
                    RequestErrorKind::TimedOut,
                    format!("{service}: the broker did not take the request within {timeout:?}"),
                ))
            }
            Err(e) => {
                return Err(RequestError::with_source(
                    RequestErrorKind::Transport,
                    service,
                    e,
                ))
            }
        }
        // The broker answers at the deadline itself (with "no service" or "timed out"); the
        // grace leaves time for that answer to arrive before this client gives up locally.
        let grace = Duration::from_millis(250) + timeout / 20;
        self.outstanding
            .insert(id, Instant::now() + timeout + grace);
        Ok(id)
    }

    /// Sends one request and waits for its reply, keeping replies to other requests in
    /// flight for [`Client::recv_reply`].
    fn call(
        &mut self,
        service: &str,
        body: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Vec<Vec<u8>>, RequestError> {
        let id = self.send(service, body, timeout)?;
        self.wait_reply(id, || format!("{service}: no reply within {timeout:?}"))
    }

    /// Waits for the reply to request `id` (sent with [`Client::send_request_bytes`] or by
    /// this client itself), keeping replies to other requests in flight for
    /// [`Client::recv_reply`]. When no reply comes before the request's deadline, the error
    /// says `timed_out()`.
    pub(crate) fn wait_reply(
        &mut self,
        id: u64,
        timed_out: impl FnOnce() -> String,
    ) -> Result<Vec<Vec<u8>>, RequestError> {
        if let Some(reply) = self.stash.remove(&id) {
            self.outstanding.remove(&id);
            return outcome(reply);
        }
        let Some(until) = self.outstanding.get(&id).copied() else {
            return Err(RequestError::new(
                RequestErrorKind::BadRequest,
                format!("request {id} is not in flight"),
            ));
        };
        loop {
            match self.next_reply(until)? {
                Some(reply) if reply.id == id => {
                    self.outstanding.remove(&id);
                    return outcome(reply);
                }
                Some(reply) if self.outstanding.contains_key(&reply.id) => {
                    self.stash.insert(reply.id, reply);
                }
                Some(reply) => debug!(
                    id = reply.id,
                    "late reply to an abandoned request discarded"
                ),
                None => {
                    self.outstanding.remove(&id);
                    return Err(RequestError::new(RequestErrorKind::TimedOut, timed_out()));
                }
            }
        }
    }

    /// The next reply from the broker, or `None` once `until` has passed.
    fn next_reply(&mut self, until: Instant) -> Result<Option<Reply>, RequestError> {
        let transport = |e| RequestError::with_source(RequestErrorKind::Transport, "recv", e);
        loop {
            match self.main.recv_multipart(zmq::DONTWAIT) {
                Ok(mut frames) => {
                    if frames.first().is_some_and(Vec::is_empty) {
                        frames.remove(0); // the delimiter
                    }
                    let reply = Reply::decode_owned(frames);
                    match reply {
                        Ok(reply) => return Ok(Some(reply)),
                        Err(e) => {
                            debug!(error = %e, "malformed reply from the broker discarded");
                            continue;
                        }
                    }
                }
                Err(zmq::Error::EAGAIN) => {}
                Err(e) => return Err(transport(e)),
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self.main.poll(zmq::POLLIN, i64::from(millis(left).max(1))) {
                Ok(_) | Err(zmq::Error::EINTR) => {}
                Err(e) => return Err(transport(e)),
            }
        }
    }

    fn publisher(&mut self) -> Result<&mut Publisher, PublishError> {
        if self.publisher.is_none() {
            let publisher = Publisher::connect(
                &self.context,
                &self.info.publish,
                self.publisher_id,
                self.info.max_message,
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
        let bytes = body::encode(value).kind(PublishErrorKind::Codec, topic)?;
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

    /// Publishes raw bytes on a topic reserved for zhub's own features (`$...`), numbered
    /// like a user message.
    pub(crate) fn publish_reserved(
        &mut self,
        topic: &str,
        body: &[u8],
    ) -> Result<(), PublishError> {
        let clock = self.clock.clone();
        self.publisher()?
            .publish_sequenced(topic, Encoding::Raw, body, &clock)
    }

    /// Subscribes to every topic one of `filters` matches: a prefix (`"orders."`; `""` takes
    /// every topic) or a subject pattern with `*` for one token and `>` for the rest
    /// (`"orders.*.new"`, `"orders.>"`; see [`zhub_protocol::subject`]).
    ///
    /// Returns only once the subscription is live end to end: a probe message sent through the
    /// broker on a topic of this subscriber's own has come back. Anything published after this
    /// returns is delivered.
    ///
    /// # Errors
    /// [`SubscribeErrorKind::InvalidTopic`] for a filter with a control character, over 1024
    /// bytes, or with `>` before its last token;
    /// [`SubscribeErrorKind::TimedOut`] when the probe does not come back within the timeout.
    ///
    /// # Example
    /// ```no_run
    /// let mut client = zhub_client::Client::connect("tcp://127.0.0.1:5555")?;
    /// let mut orders = client.subscribe(&["orders.*.new"])?;
    /// let message = orders.recv()?;
    /// println!("{}: {:?}", message.topic(), message.body());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn subscribe(&mut self, filters: &[&str]) -> Result<Subscriber, SubscribeError> {
        self.subscribe_as(None, filters)
    }

    /// Joins queue group `group` for the topics `filters` match (as for [`Client::subscribe`]):
    /// each message on them goes to one member of the group, each member in turn (skipping a
    /// member whose queue is full), rather than to every member, so that several processes
    /// can share a topic's load. Subscribers outside the group still get every message.
    ///
    /// # Errors
    /// As for [`Client::subscribe`], and [`SubscribeErrorKind::InvalidTopic`] for a group name
    /// that is empty, over 255 bytes or has a control character.
    ///
    /// # Example
    /// ```no_run
    /// let mut client = zhub_client::Client::connect("tcp://127.0.0.1:5555")?;
    /// // Start as many of these as the load needs: each job reaches one of them.
    /// let mut jobs = client.queue_subscribe("resizers", &["jobs.resize.>"])?;
    /// while let Ok(job) = jobs.recv() {
    ///     println!("resizing {}", job.topic());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn queue_subscribe(
        &mut self,
        group: &str,
        filters: &[&str],
    ) -> Result<Subscriber, SubscribeError> {
        names::check_queue(group).map_err(|e| refused_name(SubscribeErrorKind::InvalidTopic, e))?;
        self.subscribe_as(Some(group), filters)
    }

    fn subscribe_as(
        &mut self,
        group: Option<&str>,
        filters: &[&str],
    ) -> Result<Subscriber, SubscribeError> {
        for filter in filters {
            names::check_prefix(filter)
                .map_err(|e| refused_name(SubscribeErrorKind::InvalidTopic, e))?;
        }
        const SETUP: &str = "socket setup failed";
        let socket = self
            .context
            .socket(zmq::SUB)
            .kind(SubscribeErrorKind::Transport, SETUP)?;
        socket
            .set_linger(0)
            .kind(SubscribeErrorKind::Transport, SETUP)?;
        socket
            .set_rcvhwm(self.options.subscribe_hwm)
            .kind(SubscribeErrorKind::Transport, SETUP)?;
        self.options
            .secure(&socket)
            .kind(SubscribeErrorKind::Transport, SETUP)?;
        socket
            .connect(&self.info.deliver)
            .kind(SubscribeErrorKind::Transport, SETUP)?;
        // The address first: the broker sends this subscriber's copies to it, and learns of
        // the filters that follow (see `zhub_protocol::delivery`).
        let id = random_u64();
        socket
            .set_subscribe(&delivery::address(id))
            .kind(SubscribeErrorKind::Transport, SETUP)?;
        for filter in filters {
            let subscription = match group {
                None => delivery::interest(id, filter.as_bytes()),
                Some(group) => delivery::queue_interest(id, group.as_bytes(), filter.as_bytes()),
            };
            socket
                .set_subscribe(&subscription)
                .kind(SubscribeErrorKind::Transport, SETUP)?;
        }
        let probe_topic = format!("{PROBE_PREFIX}{:016x}", random_u64());
        let probe_interest = delivery::interest(id, probe_topic.as_bytes());
        socket
            .set_subscribe(&probe_interest)
            .kind(SubscribeErrorKind::Transport, SETUP)?;
        let mut subscriber = Subscriber::new(socket, id, self.clock.clone());
        self.confirm(&mut subscriber, &probe_topic)?;
        subscriber
            .socket()
            .set_unsubscribe(&probe_interest)
            .kind(SubscribeErrorKind::Transport, SETUP)?;
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
        const PROBE: &str = "cannot send probe";
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(SubscribeError::new(
                    SubscribeErrorKind::TimedOut,
                    format!("no probe came back through the broker within {timeout:?}"),
                ));
            }
            self.publisher()
                .kind(SubscribeErrorKind::Transport, PROBE)?
                .publish_system(probe_topic, &nonce, &clock)
                .kind(SubscribeErrorKind::Transport, PROBE)?;
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
                while let Ok(Some(incoming)) = subscriber.take() {
                    match incoming {
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

/// The reply's body frames, or the error its status says.
fn outcome(reply: Reply) -> Result<Vec<Vec<u8>>, RequestError> {
    let kind = match reply.status {
        Status::Ok => return Ok(reply.body),
        Status::NoService => RequestErrorKind::NoService,
        Status::Busy => RequestErrorKind::Busy,
        Status::TimedOut => RequestErrorKind::TimedOut,
        Status::WorkerFailed => RequestErrorKind::WorkerFailed,
        Status::BadRequest => RequestErrorKind::BadRequest,
        Status::TooLarge => RequestErrorKind::TooLarge,
        Status::Forbidden => RequestErrorKind::Forbidden,
        Status::Rejected => RequestErrorKind::Rejected,
        _ => RequestErrorKind::Internal,
    };
    Err(RequestError::new(kind, reply.reason()))
}

fn first_frame(frames: Vec<Vec<u8>>) -> Vec<u8> {
    frames.into_iter().next().unwrap_or_default()
}
