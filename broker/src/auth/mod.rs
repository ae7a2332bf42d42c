//! Who may connect, and what each may do.
//!
//! With an auth file (`--auth auth.toml`, see [`config`]) every endpoint the broker binds
//! asks the ZAP handler ([`zap`], a thread of its own) whether a new connection may proceed:
//! PLAIN (user and password, checked against an argon2 hash) or CURVE (a public key on the
//! allow-list). ZeroMQ then stamps every message from that connection with the user's name
//! (`User-Id`), and the router and the bus thread check what the message asks
//! ([`actions`]) against the user's permissions ([`policy`]). Without an auth file none of
//! this runs and the request path does nothing new.
//!
//! The policy is shared as an `Arc` swapped whole on reload ([`AuthReloader`], on SIGHUP):
//! each thread keeps its own `Arc` and looks at a generation counter per message, so a
//! reload costs the hot path one atomic load and connected users get the new permissions on
//! their next message.
//!
//! # Layout
//! - [`config`] — the auth file, read into a [`config::Policy`].
//! - [`policy`] — patterns and permissions, deny winning over allow.
//! - [`actions`] — what a request or a topic asks, in terms of permissions.
//! - [`zap`] — the ZAP handler: requests, decisions, the thread.
//! - `setup` — the file read and the sockets made ready at start.
//! - `gate` — each thread's view of the policy, and what it does with a refusal.

pub mod actions;
pub mod config;
mod gate;
pub mod policy;
mod setup;
pub mod zap;

pub(crate) use gate::{recv_with_user, refusal_answer, Gate};
pub(crate) use setup::Setup;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, SaltString};

use config::{Policy, User};
use policy::{Kind, Pattern, Permissions};

/// The user the broker's own HTTP thread logs in as (a name no auth file may hold).
pub(crate) const INTERNAL_USER: &str = "$zhub.internal";

/// The user peer brokers log in as, on the cluster and deliver endpoints only.
pub(crate) const PEER_USER: &str = "$zhub.peer";

/// Between a user's name and its CURVE key in the user id of a CURVE login (see [`zap`]); no
/// user name holds a control character.
const KEY_SEPARATOR: char = '\n';

/// The user id the ZAP handler gives a login: the user's name, and for a CURVE login the
/// key (Z85) it used.
pub(crate) fn user_id(name: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("{name}{KEY_SEPARATOR}{key}"),
        None => name.to_owned(),
    }
}

/// A user id's name, and its CURVE key when it has one.
pub(crate) fn split_user_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once(KEY_SEPARATOR) {
        Some((name, key)) => (name, Some(key)),
        None => (id, None),
    }
}

/// Why the auth file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The file cannot be read, or is not a valid auth file.
    #[error("auth file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A password could not be hashed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// The file names a CURVE key pair, and this libzmq was built without CURVE.
    #[error("auth file {path}: it sets [curve], and this broker's libzmq has no CURVE support")]
    NoCurve {
        /// The file.
        path: PathBuf,
    },
}

/// Hashes `password` for the auth file: argon2id with the crate's default (OWASP) cost and
/// a random salt, as a PHC string (`$argon2id$v=19$...`).
///
/// # Errors
/// [`AuthError::Hash`] if the hasher fails (it does not for any password of sane length).
pub fn hash_password(password: &[u8]) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// The auth file's current policy, shared by the ZAP handler, the router and the bus thread.
pub(crate) struct AuthState {
    path: PathBuf,
    current: RwLock<Arc<Policy>>,
    generation: AtomicU64,
    /// Checked for unknown users, so that they take as long to refuse as known ones.
    dummy: String,
    /// The `[curve]` the broker started with: its endpoints are CURVE or PLAIN servers, with
    /// that key pair, until it stops, so a reload may not change it.
    curve: Option<config::ServerKeys>,
    /// The internal user's login, random per start: a password (PLAIN) or, with `[curve]`,
    /// whose endpoints take no password, a key pair.
    internal: zhub_client::Login,
    /// The hash of the internal user's password, without `[curve]`.
    internal_hash: Option<String>,
    /// The `[cluster]` secret the broker started with: its links to peers log in with it,
    /// so a reload may not change it.
    cluster_secret: Option<config::ClusterSecret>,
    /// What this broker presents to its peers, and their login here: the `[curve]` key pair,
    /// or the `[cluster]` secret as [`PEER_USER`]'s password; `None` when the file sets
    /// neither.
    peer: Option<zhub_client::Login>,
    /// The hash of the `[cluster]` secret.
    peer_hash: Option<String>,
}

impl AuthState {
    /// Reads `path`.
    pub(crate) fn load(path: &Path) -> Result<AuthState, AuthError> {
        let policy = Policy::from_file(path)?;
        let no_curve = || AuthError::NoCurve {
            path: path.to_owned(),
        };
        let (internal, internal_hash) = match &policy.curve {
            Some(server) => {
                if !zmq::has("curve").unwrap_or(false) {
                    return Err(no_curve());
                }
                let keys = zhub_client::CurveKeyPair::generate().map_err(|_| no_curve())?;
                (zhub_client::Login::curve(&server.public, keys), None)
            }
            None => {
                let password = SaltString::generate(&mut OsRng).as_str().to_owned();
                let hash = hash_password(password.as_bytes())?;
                (
                    zhub_client::Login::plain(INTERNAL_USER, password),
                    Some(hash),
                )
            }
        };
        let (peer, peer_hash) = match (&policy.curve, &policy.cluster_secret) {
            (Some(server), _) => {
                let keys = zhub_client::CurveKeyPair::from_z85(&server.public, &server.secret)
                    .map_err(|e| AuthError::File {
                        path: path.to_owned(),
                        reason: format!("curve: {e}"),
                    })?;
                (Some(zhub_client::Login::curve(&server.public, keys)), None)
            }
            (None, Some(secret)) => {
                let login = zhub_client::Login::plain(PEER_USER, secret.0.clone());
                (Some(login), Some(hash_password(secret.0.as_bytes())?))
            }
            (None, None) => (None, None),
        };
        let mut state = AuthState {
            path: path.to_owned(),
            current: RwLock::new(Arc::new(Policy::default())),
            generation: AtomicU64::new(0),
            dummy: hash_password(b"")?,
            curve: policy.curve.clone(),
            internal,
            internal_hash,
            cluster_secret: policy.cluster_secret.clone(),
            peer,
            peer_hash,
        };
        state.current = RwLock::new(Arc::new(state.complete(policy)?));
        Ok(state)
    }

    /// Checks a policy just read against what the broker started with, and adds the internal
    /// user and the peers' user.
    fn complete(&self, mut policy: Policy) -> Result<Policy, AuthError> {
        let fail = |reason: String| AuthError::File {
            path: self.path.clone(),
            reason,
        };
        if let Some(name) = policy.users.keys().find(|name| name.starts_with('$')) {
            return Err(fail(format!(
                "users.{name:?}: names starting with '$' are the broker's"
            )));
        }
        if policy.curve != self.curve {
            return Err(fail(
                "[curve] differs from the one the broker started with; the endpoints keep the mechanism and key pair they started with until the broker restarts".to_owned(),
            ));
        }
        if policy.cluster_secret != self.cluster_secret {
            return Err(fail(
                "[cluster] differs from the one the broker started with; its links to peers keep the secret they started with until the broker restarts".to_owned(),
            ));
        }
        if let zhub_client::Login::Curve { keys, .. } = &self.internal {
            policy
                .keys
                .insert(keys.public().to_owned(), INTERNAL_USER.to_owned());
        }
        policy.users.insert(
            INTERNAL_USER.to_owned(),
            User {
                password: self.internal_hash.clone(),
                permissions: everything(),
            },
        );
        if let Some(peer) = &self.peer {
            if let zhub_client::Login::Curve { keys, .. } = peer {
                if let Some(user) = policy.keys.get(keys.public()) {
                    return Err(fail(format!(
                        "users.{user}.curve_keys: the broker's own public key is for its peers only"
                    )));
                }
                policy
                    .keys
                    .insert(keys.public().to_owned(), PEER_USER.to_owned());
            }
            policy.users.insert(
                PEER_USER.to_owned(),
                User {
                    password: self.peer_hash.clone(),
                    permissions: everything(),
                },
            );
        }
        Ok(policy)
    }

    /// Reads the file again and swaps the policy in; on an error the old one stays.
    pub(crate) fn reload(&self) -> Result<(), AuthError> {
        let policy = Arc::new(self.complete(Policy::from_file(&self.path)?)?);
        // A poisoned lock only means a reader panicked holding it; the value is whole.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = policy;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// The current policy.
    pub(crate) fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn dummy_hash(&self) -> &str {
        &self.dummy
    }

    /// The broker's CURVE key pair, when the file set one at start.
    pub(crate) fn curve(&self) -> Option<&config::ServerKeys> {
        self.curve.as_ref()
    }

    /// The internal user's login, for the broker's own clients (the HTTP thread's).
    pub(crate) fn internal_login(&self) -> zhub_client::Login {
        self.internal.clone()
    }

    /// What this broker presents to its peers (see [`PEER_USER`]); `None` when the file
    /// sets neither `[curve]` nor `[cluster]`.
    pub(crate) fn peer_login(&self) -> Option<&zhub_client::Login> {
        self.peer.as_ref()
    }
}

/// Every permission: the internal user's.
fn everything() -> Permissions {
    let mut p = Permissions::default();
    for kind in [
        Kind::Publish,
        Kind::Subscribe,
        Kind::Serve,
        Kind::Request,
        Kind::KvRead,
        Kind::KvWrite,
        Kind::LogRead,
        Kind::LogAppend,
        Kind::LogAdmin,
        Kind::GroupJoin,
    ] {
        p.allow.add(kind, Pattern::Prefix(String::new()));
    }
    p.allow.set_admin(true);
    p
}

/// Reloads a running broker's auth file; see [`crate::Broker::auth_reloader`].
#[derive(Clone)]
pub struct AuthReloader(pub(crate) Arc<AuthState>);

impl AuthReloader {
    /// Reads the auth file again. New connections are checked against it at once; connected
    /// users get its permissions on their next message. On an error the old file stays in
    /// force.
    ///
    /// # Errors
    /// [`AuthError`] saying what is wrong with the file.
    pub fn reload(&self) -> Result<(), AuthError> {
        self.0.reload()
    }

    /// The file reloaded.
    pub fn path(&self) -> &Path {
        &self.0.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_their_password_only() {
        let hash = hash_password(b"pw").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(zap::verify_password(&hash, b"pw"));
        assert!(!zap::verify_password(&hash, b"pw "));
        assert!(!zap::verify_password("not a hash", b"pw"));
        // Salted: the same password hashes differently each time.
        assert_ne!(hash, hash_password(b"pw").unwrap());
    }

    #[test]
    fn a_bad_file_on_reload_leaves_the_old_policy_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.toml");
        std::fs::write(&path, "[users.a]\n").unwrap();
        let state = AuthState::load(&path).unwrap();
        let mut gate = Gate::new(std::sync::Arc::new(state));
        assert!(gate.permissions(Some("a")).is_ok());
        std::fs::write(&path, "[users.b]\nunknown = 1\n").unwrap();
        let err = gate.state().reload().unwrap_err().to_string();
        assert!(err.contains("unknown"), "{err}");
        assert!(gate.permissions(Some("a")).is_ok());
        std::fs::write(&path, "[users.b]\n").unwrap();
        gate.state().reload().unwrap();
        assert!(gate.permissions(Some("a")).is_err());
        assert!(gate.permissions(Some("b")).is_ok());
        // The broker's own user is always there; a file may not claim its name.
        assert!(gate.permissions(Some(INTERNAL_USER)).is_ok());
        assert!(gate.permissions(None).is_err());
        std::fs::write(&path, "[users.\"$x\"]\n").unwrap();
        assert!(gate.state().reload().is_err());
    }

    #[test]
    fn the_handler_answers_what_it_can_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.toml");
        std::fs::write(&path, "[users.a]\n").unwrap();
        let state = AuthState::load(&path).unwrap();
        let mut faults = crate::ratelimit::Sparse::default();
        let frames = |parts: &[&[u8]]| parts.iter().map(|p| p.to_vec()).collect::<Vec<_>>();
        // No envelope delimiter: nothing to answer to.
        assert!(zap::answer(&state, &frames(&[b"id", b"1.0"]), &mut faults).is_none());
        // Malformed, with a request id: answered 500 behind the envelope.
        let reply = zap::answer(&state, &frames(&[b"id", b"", b"1.0", b"7"]), &mut faults).unwrap();
        assert_eq!(reply[..5], frames(&[b"id", b"", b"1.0", b"7", b"500"])[..]);
        // A user without a password cannot log in with PLAIN.
        let request = frames(&[
            b"id",
            b"",
            b"1.0",
            b"7",
            b"zhub.main",
            b"a",
            b"",
            b"PLAIN",
            b"a",
            b"",
        ]);
        let reply = zap::answer(&state, &request, &mut faults).unwrap();
        assert_eq!(reply[4], b"400");
    }
}
