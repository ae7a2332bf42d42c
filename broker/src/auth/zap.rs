//! The ZAP handler (ZeroMQ RFC 27): libzmq asks it, over `inproc://zeromq.zap.01`, whether
//! each new connection to a server socket may proceed, and under which user id.
//!
//! Request, after the ROUTER's envelope (all frames text unless said):
//!
//! | frame | content                                                        |
//! |-------|----------------------------------------------------------------|
//! | 0     | version, `1.0`                                                 |
//! | 1     | request id (opaque, echoed)                                    |
//! | 2     | domain: the socket's `ZMQ_ZAP_DOMAIN` (which endpoint)         |
//! | 3     | peer address                                                   |
//! | 4     | routing id (opaque)                                            |
//! | 5     | mechanism: `NULL`, `PLAIN` or `CURVE`                          |
//! | 6..   | credentials: PLAIN user name and password; CURVE public key (32 bytes) |
//!
//! Reply: version, request id, status code (`200` ok, `400` refused, `500` malformed),
//! status text, user id (what each message then carries as `User-Id`), metadata (empty).
//!
//! The user id of a PLAIN login is the user's name; that of a CURVE login is the name, a
//! line feed and the key in Z85 (`user_id` in the auth module). A name holds no control character, so
//! the two cannot be confused; and since every message then says which key it came with,
//! a key taken out of the file on reload stops working on the connections already open,
//! not only on new ones.
//!
//! Parsing and deciding are pure ([`parse`], [`decide`]) and never panic; the loop (`run`)
//! only moves frames. A request too broken to carry a request id cannot be answered in a way
//! libzmq would match, and is dropped (libzmq only sends well-formed ones).

use std::sync::Arc;

use tracing::{info, warn};

use super::config::Policy;
use super::policy::Kind;
use super::AuthState;
use crate::ratelimit::{peer_fault, Sparse};

/// Where libzmq sends ZAP requests; the handler binds it before any endpoint binds.
pub(crate) const ENDPOINT: &str = "inproc://zeromq.zap.01";

/// ZAP domain of each endpoint's socket, so the handler knows where a peer connects.
pub(crate) const DOMAIN_MAIN: &str = "zhub.main";
/// Domain of the publish endpoint (XSUB).
pub(crate) const DOMAIN_PUBLISH: &str = "zhub.publish";
/// Domain of the plain subscribe endpoint (XPUB).
pub(crate) const DOMAIN_SUBSCRIBE: &str = "zhub.subscribe";
/// Domain of the deliver endpoint (XPUB of zhub subscribers).
pub(crate) const DOMAIN_DELIVER: &str = "zhub.deliver";
/// Domain of the cluster endpoint (ROUTER of peer brokers).
pub(crate) const DOMAIN_CLUSTER: &str = "zhub.cluster";

/// How a peer presents itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism<'a> {
    /// No security.
    Null,
    /// User name and password, in clear.
    Plain {
        /// The user name.
        user: &'a [u8],
        /// The password.
        password: &'a [u8],
    },
    /// A CURVE public key (32 bytes).
    Curve {
        /// The key.
        key: &'a [u8],
    },
}

/// One ZAP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZapRequest<'a> {
    /// Echoed in the reply.
    pub request_id: &'a [u8],
    /// The endpoint's domain.
    pub domain: &'a [u8],
    /// The peer's address, for the log.
    pub address: &'a [u8],
    /// What the peer presented.
    pub mechanism: Mechanism<'a>,
}

/// Why a request cannot be read; with the request id when it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed<'a> {
    /// The request id, when frame 1 exists.
    pub request_id: Option<&'a [u8]>,
    /// What is wrong.
    pub reason: &'static str,
}

/// Reads a request's frames (the ROUTER envelope removed).
///
/// # Errors
/// [`Malformed`] for anything RFC 27 does not allow.
pub fn parse(frames: &[Vec<u8>]) -> Result<ZapRequest<'_>, Malformed<'_>> {
    let request_id = frames.get(1).map(Vec::as_slice);
    let bad = |reason| Malformed { request_id, reason };
    if frames.len() < 6 {
        return Err(bad("fewer than six frames"));
    }
    if frames[0] != b"1.0" {
        return Err(bad("unknown ZAP version"));
    }
    let credentials = &frames[6..];
    let mechanism = match (frames[5].as_slice(), credentials) {
        (b"NULL", []) => Mechanism::Null,
        (b"PLAIN", [user, password]) => Mechanism::Plain { user, password },
        (b"CURVE", [key]) if key.len() == 32 => Mechanism::Curve { key },
        (b"NULL" | b"PLAIN" | b"CURVE", _) => return Err(bad("wrong credentials for mechanism")),
        _ => return Err(bad("unknown mechanism")),
    };
    Ok(ZapRequest {
        request_id: &frames[1],
        domain: &frames[2],
        address: &frames[3],
        mechanism,
    })
}

/// The handler's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `200`, `400` or `500`.
    pub status: &'static str,
    /// Why, for the log (libzmq does not pass it to the peer).
    pub text: String,
    /// The user, when accepted.
    pub user: String,
}

impl Decision {
    fn refuse(text: String) -> Decision {
        Decision {
            status: "400",
            text,
            user: String::new(),
        }
    }
}

/// Checks a password against a PHC hash string, in constant time (argon2's verify compares
/// the derived hashes with `subtle`).
pub fn verify_password(phc: &str, password: &[u8]) -> bool {
    use argon2::PasswordVerifier;
    match argon2::PasswordHash::new(phc) {
        Ok(hash) => argon2::Argon2::default()
            .verify_password(password, &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// Decides a request under `policy`. `dummy` is a hash checked for unknown users, so that
/// an unknown user takes as long to refuse as a wrong password (no user enumeration by
/// timing).
pub fn decide(policy: &Policy, request: &ZapRequest<'_>, dummy: &str) -> Decision {
    let user = match request.mechanism {
        Mechanism::Null => {
            return Decision::refuse("no credentials (this broker requires a login)".to_owned())
        }
        Mechanism::Plain { user, password } => {
            let name = String::from_utf8_lossy(user);
            match policy.users.get(name.as_ref()) {
                Some(entry) => match &entry.password {
                    Some(phc) if verify_password(phc, password) => name.into_owned(),
                    _ => return Decision::refuse(format!("wrong password for user '{name}'")),
                },
                None => {
                    verify_password(dummy, password);
                    return Decision::refuse(format!("unknown user '{name}'"));
                }
            }
        }
        Mechanism::Curve { key } => {
            let key = super::config::z85(key);
            match policy.keys.get(&key) {
                Some(name) => super::user_id(name, Some(&key)),
                None => return Decision::refuse(format!("unknown CURVE key {key}")),
            }
        }
    };
    let (name, _) = super::split_user_id(&user);
    // Peer brokers log in to the cluster endpoint, and to the deliver endpoint for what is
    // published here; nobody else logs in to the cluster endpoint.
    let cluster = request.domain == DOMAIN_CLUSTER.as_bytes();
    let deliver = request.domain == DOMAIN_DELIVER.as_bytes();
    if cluster && name != super::PEER_USER {
        return Decision::refuse(format!(
            "user '{name}' may not log in to the cluster endpoint: peer brokers only"
        ));
    }
    if name == super::PEER_USER && !(cluster || deliver) {
        return Decision::refuse(
            "the peer brokers' login serves the cluster and deliver endpoints only".to_owned(),
        );
    }
    // Plain subscribers get ZeroMQ's own fan-out, which the broker cannot filter per
    // subscriber: only users who may receive every topic connect there.
    if request.domain == DOMAIN_SUBSCRIBE.as_bytes() {
        let everything = policy
            .users
            .get(name)
            .is_some_and(|u| u.permissions.allows_prefix(Kind::Subscribe, ""));
        if !everything {
            return Decision::refuse(format!(
                "user '{name}' may not use the plain subscribe endpoint (it needs subscribe = [\"*\"]; use the deliver endpoint, as zhub clients do)"
            ));
        }
    }
    Decision {
        status: "200",
        text: "OK".to_owned(),
        user,
    }
}

/// The reply frames for `request_id`.
pub fn reply(request_id: &[u8], decision: &Decision) -> Vec<Vec<u8>> {
    vec![
        b"1.0".to_vec(),
        request_id.to_vec(),
        decision.status.as_bytes().to_vec(),
        decision.text.as_bytes().to_vec(),
        decision.user.as_bytes().to_vec(),
        Vec::new(),
    ]
}

/// Answers one request's frames, the ROUTER envelope included: the frames to send back, or
/// `None` when nothing can be answered.
pub(crate) fn answer(
    state: &AuthState,
    frames: &[Vec<u8>],
    faults: &mut Sparse,
) -> Option<Vec<Vec<u8>>> {
    // [routing id, "", request...]
    let delimiter = frames.iter().position(Vec::is_empty)?;
    let (envelope, request) = frames.split_at(delimiter + 1);
    let body = match parse(request) {
        Ok(request) => {
            let policy = state.policy();
            let decision = decide(&policy, &request, state.dummy_hash());
            let address = String::from_utf8_lossy(request.address);
            let domain = String::from_utf8_lossy(request.domain);
            if decision.status == "200" {
                let (user, key) = super::split_user_id(&decision.user);
                let key = key.unwrap_or_default();
                info!(%user, key, %domain, peer = %address, "login accepted");
            } else {
                peer_fault!(faults, "login refused", reason = %decision.text, %domain, peer = %address);
            }
            reply(request.request_id, &decision)
        }
        Err(Malformed { request_id, reason }) => {
            peer_fault!(faults, "malformed ZAP request", reason);
            let decision = Decision {
                status: "500",
                text: reason.to_owned(),
                user: String::new(),
            };
            reply(request_id?, &decision)
        }
    };
    let mut out = envelope.to_vec();
    out.extend(body);
    Some(out)
}

/// The handler thread: answers requests on `socket` (a ROUTER bound at [`ENDPOINT`]) until
/// a message arrives on `control`.
pub(crate) fn run(
    socket: zmq::Socket,
    control: zmq::Socket,
    state: Arc<AuthState>,
) -> Result<(), zmq::Error> {
    let mut faults = Sparse::default();
    loop {
        let mut items = [
            socket.as_poll_item(zmq::POLLIN),
            control.as_poll_item(zmq::POLLIN),
        ];
        match zmq::poll(&mut items, -1) {
            Ok(_) | Err(zmq::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
        if items[1].is_readable() {
            return Ok(());
        }
        if !items[0].is_readable() {
            continue;
        }
        loop {
            let frames = match socket.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => frames,
                Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => break,
                Err(e) => return Err(e),
            };
            if let Some(out) = answer(&state, &frames, &mut faults) {
                if let Err(e) = socket.send_multipart(out, zmq::DONTWAIT) {
                    warn!(error = %e, "ZAP reply not sent");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parts: &[&[u8]]) -> Vec<Vec<u8>> {
        parts.iter().map(|p| p.to_vec()).collect()
    }

    fn policy() -> Policy {
        let hash = super::super::hash_password(b"secret").unwrap();
        Policy::from_toml(&format!(
            "[users.app]\npassword = \"{hash}\"\n[users.app.allow]\nsubscribe = [\"app.*\"]\n\
             [users.all]\npassword = \"{hash}\"\n[users.all.allow]\nsubscribe = [\"*\"]\n\
             [users.keyed]\ncurve_keys = [\"{}\"]\n",
            zmq::z85_encode(&[7u8; 32]).unwrap()
        ))
        .unwrap()
    }

    fn plain<'a>(user: &'a [u8], password: &'a [u8], domain: &'a [u8]) -> ZapRequest<'a> {
        ZapRequest {
            request_id: b"1",
            domain,
            address: b"127.0.0.1",
            mechanism: Mechanism::Plain { user, password },
        }
    }

    #[test]
    fn well_formed_requests_are_read() {
        let f = frames(&[
            b"1.0",
            b"7",
            b"zhub.main",
            b"1.2.3.4",
            b"",
            b"PLAIN",
            b"u",
            b"p",
        ]);
        let r = parse(&f).unwrap();
        assert_eq!(r.request_id, b"7");
        assert_eq!(
            r.mechanism,
            Mechanism::Plain {
                user: b"u",
                password: b"p"
            }
        );
        let f = frames(&[b"1.0", b"7", b"d", b"a", b"", b"NULL"]);
        assert_eq!(parse(&f).unwrap().mechanism, Mechanism::Null);
        let key = [1u8; 32];
        let f = frames(&[b"1.0", b"7", b"d", b"a", b"", b"CURVE", &key]);
        assert_eq!(parse(&f).unwrap().mechanism, Mechanism::Curve { key: &key });
    }

    #[test]
    fn malformed_requests_are_errors_never_panics() {
        let cases: &[&[&[u8]]] = &[
            &[],
            &[b"1.0"],
            &[b"1.0", b"7", b"d", b"a", b""],
            &[b"2.0", b"7", b"d", b"a", b"", b"NULL"],
            &[b"1.0", b"7", b"d", b"a", b"", b"GSSAPI"],
            &[b"1.0", b"7", b"d", b"a", b"", b"PLAIN", b"only-user"],
            &[
                b"1.0", b"7", b"d", b"a", b"", b"PLAIN", b"u", b"p", b"extra",
            ],
            &[b"1.0", b"7", b"d", b"a", b"", b"CURVE", b"short key"],
            &[b"1.0", b"7", b"d", b"a", b"", b"NULL", b"cred"],
        ];
        for case in cases {
            let f = frames(case);
            let err = parse(&f).unwrap_err();
            assert_eq!(err.request_id.is_some(), case.len() > 1, "{case:?}");
        }
        // Every prefix of every byte string as frames: no panic.
        let full = frames(&[b"1.0", b"7", b"d", b"a", b"", b"PLAIN", b"u", b"p"]);
        for n in 0..full.len() {
            let _ = parse(&full[..n]);
        }
    }

    #[test]
    fn passwords_users_and_keys_are_checked() {
        let policy = policy();
        let dummy = super::super::hash_password(b"").unwrap();
        let ok = decide(&policy, &plain(b"app", b"secret", b"zhub.main"), &dummy);
        assert_eq!((ok.status, ok.user.as_str()), ("200", "app"));
        let wrong = decide(&policy, &plain(b"app", b"nope", b"zhub.main"), &dummy);
        assert_eq!(wrong.status, "400");
        assert!(wrong.user.is_empty());
        let unknown = decide(&policy, &plain(b"eve", b"secret", b"zhub.main"), &dummy);
        assert_eq!(unknown.status, "400");
        assert!(unknown.text.contains("unknown user 'eve'"));
        // Invalid UTF-8 names are just unknown.
        let bad = decide(&policy, &plain(&[0xff, 0xfe], b"x", b"zhub.main"), &dummy);
        assert_eq!(bad.status, "400");
        let null = ZapRequest {
            mechanism: Mechanism::Null,
            ..plain(b"", b"", b"zhub.main")
        };
        assert_eq!(decide(&policy, &null, &dummy).status, "400");
        let key = [7u8; 32];
        let curve = ZapRequest {
            mechanism: Mechanism::Curve { key: &key },
            ..plain(b"", b"", b"zhub.main")
        };
        let keyed = decide(&policy, &curve, &dummy).user;
        let z85 = zmq::z85_encode(&key).unwrap();
        assert_eq!(keyed, format!("keyed\n{z85}"));
        assert_eq!(super::super::split_user_id(&keyed), ("keyed", Some(&*z85)));
        let stranger = [8u8; 32];
        let curve = ZapRequest {
            mechanism: Mechanism::Curve { key: &stranger },
            ..plain(b"", b"", b"zhub.main")
        };
        assert_eq!(decide(&policy, &curve, &dummy).status, "400");
    }

    #[test]
    fn only_users_who_may_see_everything_use_the_plain_subscribe_endpoint() {
        let policy = policy();
        let dummy = super::super::hash_password(b"").unwrap();
        let app = decide(
            &policy,
            &plain(b"app", b"secret", b"zhub.subscribe"),
            &dummy,
        );
        assert_eq!(app.status, "400");
        assert!(
            app.text.contains("plain subscribe endpoint"),
            "{}",
            app.text
        );
        let all = decide(
            &policy,
            &plain(b"all", b"secret", b"zhub.subscribe"),
            &dummy,
        );
        assert_eq!(all.status, "200");
    }

    #[test]
    fn the_cluster_endpoint_is_the_peers_and_the_peers_login_goes_nowhere_else() {
        let mut policy = policy();
        let hash = super::super::hash_password(b"peer secret").unwrap();
        policy.users.insert(
            super::super::PEER_USER.to_owned(),
            super::super::User {
                password: Some(hash),
                permissions: super::super::everything(),
            },
        );
        let dummy = super::super::hash_password(b"").unwrap();
        let peer = |domain: &'static str| {
            decide(
                &policy,
                &plain(
                    super::super::PEER_USER.as_bytes(),
                    b"peer secret",
                    domain.as_bytes(),
                ),
                &dummy,
            )
        };
        assert_eq!(peer(DOMAIN_CLUSTER).status, "200");
        assert_eq!(peer(DOMAIN_DELIVER).status, "200");
        for domain in [DOMAIN_MAIN, DOMAIN_PUBLISH, DOMAIN_SUBSCRIBE] {
            let refused = peer(domain);
            assert_eq!(refused.status, "400", "{domain}");
            assert!(
                refused.text.contains("cluster and deliver"),
                "{}",
                refused.text
            );
        }
        let user = decide(
            &policy,
            &plain(b"all", b"secret", DOMAIN_CLUSTER.as_bytes()),
            &dummy,
        );
        assert_eq!(user.status, "400");
        assert!(user.text.contains("peer brokers only"), "{}", user.text);
    }

    #[test]
    fn replies_echo_the_request_id() {
        let d = Decision {
            status: "200",
            text: "OK".into(),
            user: "app".into(),
        };
        let r = reply(b"42", &d);
        assert_eq!(r, frames(&[b"1.0", b"42", b"200", b"OK", b"app", b""]));
    }
}
