//! The router's and the bus thread's side of auth: each thread's view of the policy, the
//! `User-Id` of received messages, and the answer to a refused message.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::config::Policy;
use super::policy::{Permissions, Refusal};
use super::{actions, AuthState};

/// One thread's view of the policy: its own `Arc`, refreshed when the generation moves.
pub(crate) struct Gate {
    state: Arc<AuthState>,
    seen: u64,
    policy: Arc<Policy>,
}

impl Gate {
    pub(crate) fn new(state: Arc<AuthState>) -> Gate {
        let seen = state.generation.load(Ordering::Acquire);
        let policy = state.policy();
        Gate {
            state,
            seen,
            policy,
        }
    }

    /// The shared state this view follows.
    #[cfg(test)]
    pub(crate) fn state(&self) -> &AuthState {
        &self.state
    }

    /// The current policy (one atomic load when unchanged).
    pub(crate) fn policy(&mut self) -> &Policy {
        let now = self.state.generation.load(Ordering::Acquire);
        if now != self.seen {
            self.policy = self.state.policy();
            self.seen = now;
        }
        &self.policy
    }

    /// The permissions of `user` (the message's `User-Id`, see [`super::user_id`]), or the
    /// refusal for a message with none, from a user the file no longer holds, or sent with a
    /// CURVE key the file no longer gives that user.
    pub(crate) fn permissions(&mut self, user: Option<&str>) -> Result<&Permissions, Refusal> {
        let Some(user) = user.filter(|u| !u.is_empty()) else {
            return Err(Refusal("this broker requires a login".to_owned()));
        };
        let (name, key) = super::split_user_id(user);
        let policy = self.policy();
        if let Some(key) = key {
            if policy.keys.get(key).map(String::as_str) != Some(name) {
                return Err(Refusal(format!(
                    "user '{name}' logged in with CURVE key {key}, which the auth file no longer holds"
                )));
            }
        }
        match policy.users.get(name) {
            Some(entry) => Ok(&entry.permissions),
            None => Err(Refusal(format!("user '{name}' is not in the auth file"))),
        }
    }

    /// Checks a message on the main endpoint (frames after the envelope).
    pub(crate) fn check_message(
        &mut self,
        user: Option<&str>,
        rest: &[Vec<u8>],
    ) -> Result<(), Refusal> {
        let (name, _) = super::split_user_id(user.unwrap_or_default());
        let perms = self.permissions(user)?;
        actions::check_message(perms, name, rest)
    }
}

/// Receives one multipart message and the `User-Id` ZAP gave its connection: the frames as
/// `Message`s, which keep the metadata `recv_multipart` drops. (A ROUTER's routing id frame
/// carries none in libzmq 4.3.4; the frames after it do.)
pub(crate) fn recv_with_user(
    socket: &zmq::Socket,
    flags: i32,
) -> Result<(Vec<Vec<u8>>, Option<String>), zmq::Error> {
    let mut frames = Vec::new();
    let mut user = None;
    let mut message = socket.recv_msg(flags)?;
    loop {
        if user.is_none() {
            user = message.gets("User-Id").map(str::to_owned);
        }
        let more = message.get_more();
        frames.push(message.to_vec());
        if !more {
            return Ok((frames, user));
        }
        message = socket.recv_msg(0)?;
    }
}

/// The answer to a refused message on the main endpoint, and whether it goes to a client:
/// `403 Forbidden` to a native request whose id can be read, DISCONNECT to a Majordomo
/// worker (its READY was refused); nothing to a Majordomo client, which MDP gives no error
/// replies.
pub(crate) fn refusal_answer(rest: &[Vec<u8>], refusal: &Refusal) -> Option<(Vec<Vec<u8>>, bool)> {
    use zhub_protocol::mdp;
    use zhub_protocol::request::{REQUEST_COMMAND, SIGNATURE};
    match rest.first().map(Vec::as_slice) {
        Some(SIGNATURE) if rest.get(1).map(Vec::as_slice) == Some(&[REQUEST_COMMAND][..]) => {
            let id = rest
                .get(2)
                .and_then(|f| <[u8; 8]>::try_from(f.as_slice()).ok())?;
            let reply = zhub_protocol::Reply::error(
                u64::from_be_bytes(id),
                zhub_protocol::Status::Forbidden,
                refusal.0.clone(),
            );
            Some((reply.encode(), true))
        }
        Some(mdp::WORKER) => Some((mdp::WorkerCommand::Disconnect.encode(), false)),
        _ => None,
    }
}
