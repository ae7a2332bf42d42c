//! zhub-broker: the zhub broker as a library, started by the `zhub-broker` binary and by
//! tests alike.
//!
//! ```
//! use zhub_broker::{Broker, Config};
//!
//! // The embedded defaults are tcp://127.0.0.1:5555 to 5558 and ./zhub-data (what
//! // `Config::default()` gives); here, ipc endpoints and the state in a directory of their own.
//! let dir = tempfile::tempdir()?;
//! let config = Config::local_ipc(dir.path());
//! // Binds the four endpoints, recovers the event log and the store, starts the threads.
//! let broker = Broker::start(&config)?;
//! println!("clients connect to {}", broker.info().main);
//! // Stops every thread, closes every socket and releases the data directory.
//! broker.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The binary calls [`run`] instead, which starts the broker the same way and stops it at the
//! first message on its shutdown channel (sent on SIGINT or SIGTERM).
//!
//! ```text
//!  publishers --> XSUB ==== proxy ====> XPUB --> subscribers        (thread "zhub-bus")
//!                                  \===> XPUB --> zhub subscribers, addressed copies
//!  clients    <-> ROUTER (main endpoint)                           (thread "zhub-router")
//!  workers    <->   services, FIFO queues, LRU workers, heartbeats; zhub.*, mmi.* built-ins
//!                   zhub.log, zhub.kv --inproc--> storage thread ("zhub-storage"):
//!                   event log and key-value store, group commit
//!  bus thread --journal tap--> storage thread --republish--> bus thread   (durable topics)
//!  HTTP (--http) <-> /metrics, /api, dashboard: a client of the main endpoint  ("zhub-http")
//!  peer brokers <-> ROUTER (cluster endpoint) / DEALER per peer: driven by the router thread;
//!                   the bus thread subscribes to each peer's deliver endpoint (federation)
//! ```
//!
//! # Layout
//! - [`config`] — settings from defaults, a TOML file and flags.
//! - [`endpoint`] — endpoint checks and binding.
//! - `bus` — the publish/subscribe proxy loop and its counters; `bus::peers`, its links to
//!   peer brokers' deliver endpoints; `bus::raw`, ZeroMQ messages below the `zmq` crate.
//! - `cluster` — federation: the cluster link's sockets; `cluster::links`, its sessions,
//!   greetings and heartbeats.
//! - `interest` — the bus's table of subscribers and prefixes, and topic matching.
//! - `router` — the request loop on the main endpoint and the built-in services.
//! - `services` — named services: queues, workers, heartbeats, deadlines, retries;
//!   `services::peers`, peer brokers as workers of the services they serve.
//! - `groups` — process groups (`zhub.group`): arrival ranks, views, heartbeats.
//! - `storage` — the storage thread serving `zhub.log` with group commit.
//! - `consumers` — consumer groups' committed positions.
//! - `journal` — durable topics: the routes and the bus thread's tap.
//! - `fault_rules` — `zhub.fault`: rules that drop or delay bus messages, and the bus
//!   thread's queue of delayed ones (only with `allow_faults`).
//! - `kv` — the `zhub.kv` service over the key-value store, run by the storage thread.
//! - `limits` — the open file limit, raised at start, and the streams kept open under it.
//! - `http` — the HTTP endpoint: `/metrics`, `/api/...` and the dashboard.
//! - [`auth`] — logins (the ZAP handler), the auth file and permissions.
//! - `wake` — poll timeouts from deadlines, shared by every poll loop.
//! - `ratelimit` — sparse logging of faults peers can repeat at will.
//! - [`error`](mod@error) — [`BrokerError`].
#![deny(missing_docs)]

pub mod auth;
mod bus;
mod cluster;
pub mod config;
mod consumers;
pub mod endpoint;
pub mod error;
mod fault_rules;
#[cfg(feature = "fault-injection")]
mod faults;
mod filters;
mod groups;
mod http;
mod interest;
mod journal;
mod kv;
mod limits;
mod link;
mod memory;
mod ratelimit;
mod router;
mod services;
mod storage;
mod wake;

use std::fs::{File, OpenOptions, TryLockError};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::{error, info};
use zhub_protocol::builtin::BrokerInfo;

pub use config::Config;
pub use error::BrokerError;

/// A running broker. Dropping it stops it, as [`Broker::shutdown`] does.
pub struct Broker {
    info: BrokerInfo,
    /// One control socket per thread, by name; a message on it asks the thread to stop.
    controls: Vec<(&'static str, zmq::Socket)>,
    /// Where each thread's watchdog says that its thread stopped on a failure; and where
    /// [`Broker::serve`] passes on its stop signal, so that it waits on both at once.
    events: (Sender<Event>, Receiver<Event>),
    threads: Vec<JoinHandle<()>>,
    /// The HTTP endpoint, when configured; a client of the router, so stopped first.
    http: Option<http::HttpServer>,
    /// The auth file's policy, when there is one.
    auth: Option<Arc<auth::AuthState>>,
    _lock: File,
    // Declared last so it is dropped last: terminating a context waits for its sockets.
    context: zmq::Context,
}

impl Broker {
    /// Checks the config, locks the data directory, binds the three endpoints and starts the
    /// broker's threads. Returns once every endpoint is bound: clients may connect at once.
    ///
    /// # Errors
    /// A [`BrokerError`] saying which setting or endpoint is at fault.
    pub fn start(config: &Config) -> Result<Broker, BrokerError> {
        config.validate()?;
        let lock = lock_data_dir(config)?;
        let open_files = limits::raise_open_files();
        // Recovery runs here, so that a damaged log is an error at start, not later. Streams
        // hold no descriptor until used, so any number of them opens under any limit.
        let log_dir = config.data_dir.join("log");
        let mut log = zhub_eventlog::EventLog::open(&log_dir)?;
        log.set_max_open_streams(limits::open_streams_budget(open_files));
        let consumers = consumers::Consumers::open(&config.data_dir.join("consumers"))?;
        let kv = kv::KvService::open(
            &config.data_dir.join("kv"),
            storage::fsync_from(config.kv_fsync),
        )?;

        let context = zmq::Context::new();
        context.set_io_threads(config.io_threads)?;
        // The ZAP handler's socket is bound before any endpoint, so that no connection is
        // ever checked without it.
        let auth = auth::Setup::start(config, &context)?;

        let router = context.socket(zmq::ROUTER)?;
        router.set_linger(0)?;
        router.set_router_mandatory(true)?;
        router.set_sndhwm(config.request_hwm)?;
        router.set_rcvhwm(config.request_hwm)?;
        router.set_maxmsgsize(router::frame_ceiling(config.max_message))?;
        let xsub = context.socket(zmq::XSUB)?;
        xsub.set_linger(0)?;
        xsub.set_rcvhwm(config.publish_hwm)?;
        let xpub = context.socket(zmq::XPUB)?;
        xpub.set_linger(0)?;
        xpub.set_sndhwm(config.subscribe_hwm)?;
        let deliver = context.socket(zmq::XPUB)?;
        deliver.set_linger(0)?;
        deliver.set_sndhwm(config.subscribe_hwm)?;
        if config.cluster.is_some() {
            // What a peer broker declared here leaves with its connection: pings close a
            // connection whose far end went silent (a half-open link after a partition), so
            // that its interest does not outlive it.
            let ping = i32::try_from(config.cluster_heartbeat.as_millis()).unwrap_or(i32::MAX);
            deliver.set_heartbeat_ivl(ping)?;
            deliver.set_heartbeat_timeout(ping.saturating_mul(config.cluster_liveness as i32))?;
        }
        bus::limit(&xsub, &xpub, &deliver, bus::max_frame(config.max_message))?;
        let cluster_socket = match &config.cluster {
            Some(_) => {
                let socket = context.socket(zmq::ROUTER)?;
                socket.set_linger(0)?;
                socket.set_router_mandatory(true)?;
                // A peer whose connection dropped and came back takes its routing id over at
                // once, instead of being refused until the old connection times out.
                socket.set_router_handover(true)?;
                socket.set_maxmsgsize(router::frame_ceiling(config.max_message))?;
                socket.set_sndhwm(cluster::LINK_HWM)?;
                socket.set_rcvhwm(cluster::LINK_HWM)?;
                Some(socket)
            }
            None => None,
        };
        let broker_id = zhub_protocol::ids::random_u64();
        let name = config
            .name
            .clone()
            .unwrap_or_else(|| format!("zhub-{:06x}", broker_id >> 40));
        let federated = cluster_socket.is_some() || !config.peer.is_empty();
        if let Some(auth) = &auth {
            auth.secure([&router, &xsub, &xpub, &deliver])?;
            if federated {
                auth.secure_cluster(cluster_socket.as_ref())?;
            }
        }
        // What this broker's links to its peers, and its bus's subscriptions at their
        // deliver endpoints, log in with.
        let peer_login = auth.as_ref().and_then(|a| a.state.peer_login().cloned());
        let mut http = config
            .http
            .as_deref()
            .map(http::HttpServer::bind)
            .transpose()?;

        let info = BrokerInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            main: endpoint::bind(&router, "main", &config.listen)?,
            publish: endpoint::bind(&xsub, "publish", &config.publish)?,
            subscribe: endpoint::bind(&xpub, "subscribe", &config.subscribe)?,
            deliver: endpoint::bind(&deliver, "deliver", &config.deliver)?,
            max_message: config.max_message as u64,
            http: http
                .as_ref()
                .map(|h| format!("http://{}", h.address()))
                .unwrap_or_default(),
            name: name.clone(),
            zone: config.zone.clone(),
            cluster: match (&cluster_socket, &config.cluster) {
                (Some(socket), Some(endpoint)) => endpoint::bind(socket, "cluster", endpoint)?,
                _ => String::new(),
            },
        };
        info!(endpoint = %info.main, "main endpoint listening");
        info!(endpoint = %info.publish, "publish endpoint listening");
        info!(endpoint = %info.subscribe, "subscribe endpoint listening");
        info!(endpoint = %info.deliver, "deliver endpoint listening");
        if !info.cluster.is_empty() {
            info!(endpoint = %info.cluster, broker = %info.name, zone = %info.zone, "cluster endpoint listening");
        }
        bus::setup(&xsub)?;

        let mut broker = Broker {
            info: info.clone(),
            controls: Vec::new(),
            events: std::sync::mpsc::channel(),
            threads: Vec::new(),
            http: None,
            auth: auth.as_ref().map(|a| Arc::clone(&a.state)),
            _lock: lock,
            context,
        };
        // Inproc pairs: the binding end first, as inproc requires.
        let journal_in = broker.context.socket(zmq::PULL)?;
        journal_in.set_linger(0)?;
        journal_in.set_rcvhwm(journal::QUEUE)?;
        journal_in.bind(journal::ENDPOINT)?;
        let journal_out = broker.context.socket(zmq::PUSH)?;
        journal_out.set_linger(0)?;
        journal_out.set_sndhwm(journal::QUEUE)?;
        journal_out.connect(journal::ENDPOINT)?;
        let republish_in = broker.context.socket(zmq::PULL)?;
        republish_in.set_linger(0)?;
        republish_in.bind(bus::REPUBLISH_ENDPOINT)?;
        let republish_out = broker.context.socket(zmq::PUSH)?;
        republish_out.set_linger(0)?;
        republish_out.set_sndhwm(config.publish_hwm)?;
        republish_out.connect(bus::REPUBLISH_ENDPOINT)?;

        let journals = Arc::new(journal::JournalTable::default());
        let fault_table = Arc::new(fault_rules::FaultTable::new(config.allow_faults));
        let counters = Arc::new(bus::BusCounters::default());
        let (router_gate, bus_gate) = broker
            .auth
            .as_ref()
            .map(|s| {
                (
                    auth::Gate::new(Arc::clone(s)),
                    auth::Gate::new(Arc::clone(s)),
                )
            })
            .unzip();
        if let Some(auth::Setup { socket, state }) = auth {
            broker.spawn("zhub-zap", move |control| {
                auth::zap::run(socket, control, state)
            })?;
        }
        let bus_counters = Arc::clone(&counters);
        let topics = Arc::new(bus::TopicRoutes::default());
        // The bus's subscriber id at peers: secret (see `PeerHello::subscriber`).
        let bus_subscriber = zhub_protocol::ids::random_u64();
        let peer_links = bus::peers::PeerLinks::new(
            &broker.context,
            bus_subscriber,
            config.subscribe_hwm,
            bus::max_frame(config.max_message),
            peer_login.clone(),
        )?;
        let bus_sockets = bus::BusSockets {
            xsub,
            xpub,
            deliver,
            republish: republish_in,
            tap: journal::JournalTap::new(Arc::clone(&journals), journal_out),
            faults: fault_rules::FaultGate::new(Arc::clone(&fault_table)),
            peers: peer_links,
            auth: bus_gate,
            zone: config.zone.clone(),
            topics: Arc::clone(&topics),
        };
        broker.spawn("zhub-bus", move |control| {
            bus::run(bus_sockets, control, bus_counters)
        })?;
        let services = services::ServiceConfig {
            heartbeat: config.heartbeat,
            liveness: config.liveness,
            max_queue: config.service_queue,
            max_queue_bytes: config.service_queue_bytes,
            max_deadline: config.max_deadline,
            max_attempts: config.max_attempts,
            mdp_timeout: config.mdp_timeout,
            zone: config.zone.clone(),
        };
        let hwm = i32::try_from(config.storage_queue).unwrap_or(i32::MAX);
        let (storage_socket, router_storage) = link::pair(&broker.context, hwm)?;
        // Where the router hears that the storage thread has stopped (bound before the
        // watchdog's end connects, as inproc requires).
        let storage_down = broker.context.socket(zmq::PAIR)?;
        storage_down.set_linger(0)?;
        storage_down.bind(link::DOWN_ENDPOINT)?;
        let storage_watch = broker.context.socket(zmq::PAIR)?;
        storage_watch.set_linger(0)?;
        storage_watch.connect(link::DOWN_ENDPOINT)?;
        let parts = storage::StorageParts {
            log_dir,
            consumers,
            journals,
            journal_in,
            republish: republish_out,
            kv,
            max_streams: config.max_streams,
        };
        let storage = storage::Storage::new(log, storage_socket, parts, &config.journal)?;
        broker.spawn_watched("zhub-storage", Some(storage_watch), move |control| {
            storage.run(control)
        })?;
        let cluster = if federated {
            let me = zhub_protocol::cluster::PeerHello {
                version: zhub_protocol::cluster::VERSION,
                id: broker_id,
                session: zhub_protocol::ids::random_u64(),
                name,
                zone: config.zone.clone(),
                deliver: info.deliver.clone(),
                heartbeat_ms: u64::try_from(config.cluster_heartbeat.as_millis())
                    .unwrap_or(u64::MAX),
                subscriber: bus_subscriber,
            };
            let endpoints = config.peer.iter().map(|p| p.endpoint.clone()).collect();
            let links = cluster::links::Links::new(
                me,
                endpoints,
                config.cluster_heartbeat,
                config.cluster_liveness,
                std::time::Instant::now(),
            );
            let discovery = if config.discover {
                let beacon = zhub_protocol::beacon::Beacon {
                    id: broker_id,
                    name: info.name.clone(),
                    zone: info.zone.clone(),
                    main: info.main.clone(),
                    cluster: info.cluster.clone(),
                };
                let d = cluster::discovery::Discovery::new(
                    beacon,
                    &config.discover_address,
                    config.discover_port,
                    config.cluster_heartbeat,
                )
                .map_err(|e| BrokerError::Setting {
                    name: "discover_port",
                    reason: format!("UDP port {}: {e}", config.discover_port),
                })?;
                Some(d)
            } else {
                None
            };
            Some(cluster::Cluster::new(
                broker.context.clone(),
                cluster_socket,
                links,
                discovery,
                peer_login,
            )?)
        } else {
            None
        };
        let router = router::Router::new(router::RouterParts {
            socket: router,
            info,
            bus: counters,
            config: services,
            storage: link::StorageLink::new(router_storage, storage_down, hwm),
            max_message: config.max_message,
            fault_rules: fault_table,
            cluster,
            topics,
        })
        .with_auth(router_gate);
        broker.spawn("zhub-router", move |control| router.run(control))?;
        if let Some(mut server) = http.take() {
            let options = zhub_client::ClientOptions::new()
                .login(broker.auth.as_ref().map(|state| state.internal_login()));
            server.serve(&broker.info.main, options)?;
            broker.http = Some(server);
        }
        Ok(broker)
    }

    /// What reloads the auth file of a broker started with one (the binary calls it on
    /// SIGHUP); `None` without an auth file.
    pub fn auth_reloader(&self) -> Option<auth::AuthReloader> {
        self.auth
            .as_ref()
            .map(|s| auth::AuthReloader(Arc::clone(s)))
    }

    /// What clients learn from `zhub.info`: version and endpoints as bound.
    pub fn info(&self) -> &BrokerInfo {
        &self.info
    }

    /// Stops every thread, closes every socket and releases the data directory.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(mut http) = self.http.take() {
            http.stop();
        }
        // One thread at a time, each joined before the next is asked: storage first, while
        // the router still takes its replies (its sends block when the link is full) and the
        // bus its republished messages; then the router; then the rest.
        let rank = |name: &str| match name {
            "zhub-storage" => 0,
            "zhub-router" => 1,
            _ => 2,
        };
        let mut threads: Vec<_> = self
            .controls
            .drain(..)
            .zip(self.threads.drain(..))
            .collect();
        threads.sort_by_key(|((name, _), _)| rank(name));
        for ((name, control), thread) in threads {
            // The thread may have exited on an error already; nothing more to tell it then.
            let _ = control.send(&b"stop"[..], zmq::DONTWAIT);
            if thread.join().is_err() {
                error!(thread = name, "broker thread panicked");
            }
        }
    }

    /// Serves until `shutdown` receives a message or its sender is dropped, or until one of
    /// the broker's threads stops on a failure; then stops every thread.
    ///
    /// # Errors
    /// [`BrokerError::ThreadFailed`] when a thread failed (the broker stops the others rather
    /// than go on half working).
    pub fn serve(self, shutdown: Receiver<()>) -> Result<(), BrokerError> {
        let stop = self.events.0.clone();
        // Detached: it ends with the process, or when `shutdown`'s sender goes.
        let _ = std::thread::Builder::new()
            .name("zhub-signal".into())
            .spawn(move || {
                let _ = shutdown.recv();
                let _ = stop.send(Event::Stop);
            });
        let failed = match self.events.1.recv() {
            Ok(Event::Failed(name)) => Some(name),
            Ok(Event::Stop) | Err(_) => None,
        };
        info!("shutting down");
        self.shutdown();
        info!("stopped");
        match failed {
            Some(name) => Err(BrokerError::ThreadFailed { name }),
            None => Ok(()),
        }
    }

    /// Makes the thread called `name` fail as a bug would (it panics at its next turn), for
    /// the tests of what the broker does then.
    #[cfg(feature = "fault-injection")]
    pub fn crash_thread(&self, name: &str) {
        for (thread, control) in &self.controls {
            if *thread == name {
                let _ = control.send(faults::CRASH, zmq::DONTWAIT);
            }
        }
    }

    /// Starts a named thread running `body`, which owns its sockets and returns when its
    /// control socket (bound here, before the connect, as inproc requires) receives a message.
    fn spawn<F>(&mut self, name: &'static str, body: F) -> Result<(), BrokerError>
    where
        F: FnOnce(zmq::Socket) -> Result<(), zmq::Error> + Send + 'static,
    {
        self.spawn_watched(name, None, body)
    }

    /// As [`Self::spawn`], with a watchdog: if the thread ends other than by being asked to
    /// stop (an error, or a panic), the failure is reported to [`Self::serve`], and a message
    /// is sent on `notify` when one is given.
    fn spawn_watched<F>(
        &mut self,
        name: &'static str,
        notify: Option<zmq::Socket>,
        body: F,
    ) -> Result<(), BrokerError>
    where
        F: FnOnce(zmq::Socket) -> Result<(), zmq::Error> + Send + 'static,
    {
        let endpoint = format!("inproc://control/{name}");
        let control_rx = self.context.socket(zmq::PAIR)?;
        control_rx.set_linger(0)?;
        control_rx.bind(&endpoint)?;
        let control_tx = self.context.socket(zmq::PAIR)?;
        control_tx.set_linger(0)?;
        control_tx.connect(&endpoint)?;
        let events = self.events.0.clone();
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let mut watchdog = Watchdog {
                    name,
                    clean: false,
                    events,
                    notify,
                };
                match body(control_rx) {
                    Ok(()) => watchdog.clean = true,
                    Err(e) => {
                        error!(thread = name, error = %e, "broker thread stopped on an error")
                    }
                }
            })
            .map_err(|cause| BrokerError::Thread { name, cause })?;
        self.controls.push((name, control_tx));
        self.threads.push(handle);
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a broker's threads (and [`run`]'s signal) report.
enum Event {
    /// Stop, as asked.
    Stop,
    /// This thread stopped on a failure.
    Failed(&'static str),
}

/// Reports its thread's end unless the thread returned cleanly: runs on a panic's unwinding
/// too, so no failure goes unseen.
struct Watchdog {
    name: &'static str,
    clean: bool,
    events: Sender<Event>,
    notify: Option<zmq::Socket>,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if self.clean {
            return;
        }
        error!(thread = self.name, "broker thread stopped on a failure");
        if let Some(notify) = &self.notify {
            let _ = notify.send(self.name, zmq::DONTWAIT);
        }
        let _ = self.events.send(Event::Failed(self.name));
    }
}

/// Runs a broker until `shutdown` receives a message or its sender is dropped, or one of its
/// threads fails ([`Broker::serve`]); this is what the `zhub-broker` binary does between its
/// signal handler and its exit code.
///
/// # Errors
/// Whatever [`Broker::start`] and [`Broker::serve`] return.
pub fn run(config: &Config, shutdown: Receiver<()>) -> Result<(), BrokerError> {
    Broker::start(config)?.serve(shutdown)
}

/// Creates the data directory if needed and takes its lock file, proving it is writable and
/// that no other broker uses it.
fn lock_data_dir(config: &Config) -> Result<File, BrokerError> {
    let dir = &config.data_dir;
    let io_error = |cause| BrokerError::DataDir {
        path: dir.clone(),
        cause,
    };
    std::fs::create_dir_all(dir).map_err(io_error)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
        .map_err(io_error)?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(TryLockError::WouldBlock) => Err(BrokerError::DataDirLocked(dir.clone())),
        Err(TryLockError::Error(e)) => Err(io_error(e)),
    }
}
