//! The HTTP endpoint (`--http IP:PORT`): `/metrics` in the Prometheus text format, `/api/...`
//! as JSON and the dashboard at `/`, served by one thread of its own.
//!
//! That thread is a client of the broker like any other: it asks `zhub.info`, `zhub.stats`,
//! `zhub.services`, `zhub.log`, `zhub.kv` and `zhub.group` on the main endpoint, once per HTTP request, so
//! the request path never waits on HTTP and holds no state for it. A scrape costs five small
//! requests: three served by the router (`zhub.stats`, `zhub.services`, `zhub.group`), two
//! by the storage thread (`zhub.log` streams and `zhub.storage`).
//!
//! | path | reply |
//! |------|-------|
//! | `/` | the dashboard (HTML; its CSS and JavaScript at `/dashboard.css`, `/dashboard.js`) |
//! | `/metrics` | every counter and gauge, Prometheus text format 0.0.4 |
//! | `/api/info` | `zhub.info` |
//! | `/api/stats` | `zhub.stats` |
//! | `/api/services` | `zhub.services` |
//! | `/api/streams` | the event log's streams |
//! | `/api/peers` | `zhub.peers`: links to peer brokers, their state, zone and round trip |
//! | `/api/storage` | `zhub.storage`: key-value and log requests by operation, sync times |
//! | `/api/kv?prefix=P&limit=N&after=K` | one page of keys (`limit` 1 to 1000, default 100) |
//! | `/api/groups?prefix=P&limit=N&after=G` | one page of process groups: members by rank (16 hex digits), view version, token holder (`limit` 1 to 1000, default 100) |
//!
//! Other paths are answered 404, bad parameters 400, methods other than GET and HEAD 405,
//! and a broker that does not answer 503.

mod api;
mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tiny_http::{Header, Method, Request, Response, Server};
use tracing::{info, warn};
use zhub_client::{Client, ClientOptions};

use crate::BrokerError;

/// How long the HTTP thread waits for the broker to answer one of its requests.
const BROKER_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks an `http` setting: an `IP:PORT` socket address (no host names: the broker binds
/// exactly what it is told, and a name could resolve to several addresses).
///
/// # Errors
/// The reason, for [`BrokerError::Setting`].
pub(crate) fn check_address(address: &str) -> Result<SocketAddr, String> {
    address
        .parse::<SocketAddr>()
        .map_err(|_| format!("{address:?} is not IP:PORT (e.g. 127.0.0.1:8222)"))
}

/// The HTTP endpoint: bound by [`HttpServer::bind`], served once [`HttpServer::serve`] has
/// started its thread, stopped by [`HttpServer::stop`] (or on drop).
pub(crate) struct HttpServer {
    server: Arc<Server>,
    address: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds the HTTP endpoint at `address` (checked by [`check_address`]).
    ///
    /// # Errors
    /// [`BrokerError::HttpBind`] when the address cannot be bound.
    pub(crate) fn bind(address: &str) -> Result<HttpServer, BrokerError> {
        let refuse = |reason: String| BrokerError::HttpBind {
            address: address.to_owned(),
            reason,
        };
        let wanted = check_address(address).map_err(refuse)?;
        let server = Server::http(wanted).map_err(|e| refuse(e.to_string()))?;
        let address = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| refuse("bound to no IP address".to_owned()))?;
        info!(endpoint = %format!("http://{address}"), "http endpoint listening");
        Ok(HttpServer {
            server: Arc::new(server),
            address,
            thread: None,
        })
    }

    /// The address as bound, any port 0 resolved.
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Starts the thread ("zhub-http") answering HTTP requests from the broker whose main
    /// endpoint is `main`.
    ///
    /// # Errors
    /// [`BrokerError::Thread`] when the thread cannot be started.
    pub(crate) fn serve(&mut self, main: &str, options: ClientOptions) -> Result<(), BrokerError> {
        let server = Arc::clone(&self.server);
        let mut broker = BrokerSource::new(main, options);
        let thread = std::thread::Builder::new()
            .name("zhub-http".to_owned())
            .spawn(move || {
                // Ends when `unblock` is called, at stop.
                for request in server.incoming_requests() {
                    answer(request, &mut broker);
                }
            })
            .map_err(|cause| BrokerError::Thread {
                name: "zhub-http",
                cause,
            })?;
        self.thread = Some(thread);
        Ok(())
    }

    /// Stops answering and joins the thread.
    pub(crate) fn stop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!(thread = "zhub-http", "broker thread panicked");
            }
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The HTTP thread's connection to the broker, made at first use and made again after a
/// failure (the broker may have been busy past the timeout; the next scrape tries anew).
pub(crate) struct BrokerSource {
    main: String,
    /// The connect options: the timeout, and the broker's internal login under auth.
    options: ClientOptions,
    client: Option<Client>,
}

impl BrokerSource {
    fn new(main: &str, options: ClientOptions) -> BrokerSource {
        // A wildcard host is where the broker listens, not an address to connect to.
        let main = main.replace("tcp://0.0.0.0:", "tcp://127.0.0.1:");
        BrokerSource {
            main,
            options: options.timeout(BROKER_TIMEOUT),
            client: None,
        }
    }

    /// Runs `ask` on the client, connecting first if needed.
    pub(crate) fn ask<T>(
        &mut self,
        ask: impl FnOnce(&mut Client) -> Result<T, zhub_client::RequestError>,
    ) -> Result<T, String> {
        if self.client.is_none() {
            let client = self
                .options
                .clone()
                .connect(&self.main)
                .map_err(|e| e.to_string())?;
            self.client = Some(client);
        }
        let client = self.client.as_mut().expect("connected above");
        ask(client).map_err(|e| {
            self.client = None;
            e.to_string()
        })
    }
}

/// An HTTP reply before it is sent.
pub(crate) struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
        }
    }

    /// A short plain-text error.
    pub(crate) fn error(status: u16, text: &str) -> Reply {
        Reply::new(status, "text/plain; charset=utf-8", format!("{text}\n"))
    }

    /// A JSON body.
    pub(crate) fn json(body: String) -> Reply {
        Reply::new(200, "application/json", body)
    }
}

const DASHBOARD_HTML: &str = include_str!("dashboard.html");
const DASHBOARD_CSS: &str = include_str!("dashboard.css");
const DASHBOARD_JS: &str = include_str!("dashboard.js");

fn answer(request: Request, broker: &mut BrokerSource) {
    let head = *request.method() == Method::Head;
    let reply = if head || *request.method() == Method::Get {
        route(request.url(), broker)
    } else {
        Reply::error(405, "method not allowed: GET or HEAD")
    };
    let mut response = Response::from_data(if head { Vec::new() } else { reply.body })
        .with_status_code(reply.status);
    for (name, value) in [
        ("Content-Type", reply.content_type),
        ("Cache-Control", "no-store"),
        ("Allow", "GET, HEAD"),
    ] {
        if let Ok(header) = Header::from_bytes(name, value) {
            response.add_header(header);
        }
    }
    if let Err(e) = request.respond(response) {
        // The peer went away: nothing to tell it.
        tracing::debug!(error = %e, "http reply not sent");
    }
}

/// The reply to a GET of `url` (path and query).
pub(crate) fn route(url: &str, broker: &mut BrokerSource) -> Reply {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let query = match api::Query::parse(query) {
        Ok(query) => query,
        Err(reason) => return Reply::error(400, &reason),
    };
    let result = match path {
        "/" | "/index.html" => Ok(Reply::new(200, "text/html; charset=utf-8", DASHBOARD_HTML)),
        "/dashboard.css" => Ok(Reply::new(200, "text/css; charset=utf-8", DASHBOARD_CSS)),
        "/dashboard.js" => Ok(Reply::new(
            200,
            "text/javascript; charset=utf-8",
            DASHBOARD_JS,
        )),
        "/metrics" => metrics::reply(broker),
        "/api/info" => api::info(broker),
        "/api/stats" => api::stats(broker),
        "/api/services" => api::services(broker),
        "/api/streams" => api::streams(broker),
        "/api/storage" => api::storage(broker),
        "/api/peers" => api::peers(broker),
        "/api/kv" => api::kv(&query, broker),
        "/api/groups" => api::groups(&query, broker),
        _ => return Reply::error(404, &format!("no such path: {path}")),
    };
    result.unwrap_or_else(|failure| failure)
}

/// The 503 reply when the broker did not answer.
pub(crate) fn unavailable(reason: String) -> Reply {
    warn!(reason = %reason, "http: broker did not answer");
    Reply::error(503, &format!("the broker did not answer: {reason}"))
}
