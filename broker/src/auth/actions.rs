//! What each message asks to do, in terms of [`Permissions`]: requests on the main endpoint
//! (native and Majordomo, built-in services included) and topics on the bus. Pure.
//!
//! A message that cannot be decoded is let through here: the router answers it as malformed
//! as it does without auth, and a malformed message does nothing a refusal would prevent.

use zhub_protocol::builtin::{
    INFO_SERVICE, SERVICES_SERVICE, STATS_SERVICE, STORAGE_SERVICE, TOPICS_SERVICE,
};
use zhub_protocol::bus::PROBE_PREFIX;
use zhub_protocol::fault::FAULT_SERVICE;
use zhub_protocol::group::{GroupRequest, GROUP_SERVICE, TOPIC_PREFIX as GROUP_TOPICS};
use zhub_protocol::kv::{KvRequest, KV_SERVICE, WATCH_PREFIX};
use zhub_protocol::log::{LogRequest, LOG_SERVICE};
use zhub_protocol::mdp::{self, ClientMessage, WorkerCommand, MMI_PREFIX};
use zhub_protocol::request::SIGNATURE;
use zhub_protocol::{body, Request};

use super::policy::{Kind, Permissions, Refusal};

/// Checks the message `rest` (the frames after the envelope) from `user`.
///
/// # Errors
/// The [`Refusal`] to tell the peer.
pub fn check_message(perms: &Permissions, user: &str, rest: &[Vec<u8>]) -> Result<(), Refusal> {
    match rest.first().map(Vec::as_slice) {
        Some(SIGNATURE) => match Request::decode(rest) {
            Ok(request) => check_request(perms, user, &request.service, &request.body),
            Err(_) => Ok(()),
        },
        Some(mdp::CLIENT) => match ClientMessage::decode(rest) {
            Ok(request) => check_request(perms, user, &request.service, &request.body),
            Err(_) => Ok(()),
        },
        Some(mdp::WORKER) => match WorkerCommand::decode(rest) {
            Ok(WorkerCommand::Ready { service, .. }) => perms.check(user, Kind::Serve, &service),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Checks a request for `service` with body frames `body`.
///
/// # Errors
/// The [`Refusal`].
pub fn check_request(
    perms: &Permissions,
    user: &str,
    service: &str,
    body: &[Vec<u8>],
) -> Result<(), Refusal> {
    let first = body.first().map_or(&[][..], Vec::as_slice);
    // `zhub.kv@B1` is peer broker B1's store: checked here as this broker's would be, since
    // B1 trusts what its peers pass on.
    let service = zhub_protocol::builtin::split_home(service).map_or(service, |(name, _)| name);
    match service {
        // What every client asks first, and what Majordomo clients probe.
        INFO_SERVICE => Ok(()),
        s if s.starts_with(MMI_PREFIX) => Ok(()),
        STATS_SERVICE => perms.check_admin(user, "read the broker's stats"),
        STORAGE_SERVICE => perms.check_admin(user, "read the storage stats"),
        SERVICES_SERVICE => perms.check_admin(user, "list the services"),
        TOPICS_SERVICE => perms.check_admin(user, "list the topic routes"),
        FAULT_SERVICE => perms.check_admin(user, "set fault rules"),
        KV_SERVICE => match body::decode::<KvRequest>(first) {
            Ok(request) => check_kv(perms, user, &request),
            Err(_) => Ok(()),
        },
        LOG_SERVICE => match body::decode::<LogRequest>(first) {
            Ok(request) => check_log(perms, user, &request),
            Err(_) => Ok(()),
        },
        GROUP_SERVICE => match body::decode::<GroupRequest>(first) {
            Ok(request) => check_group(perms, user, &request),
            Err(_) => Ok(()),
        },
        // Any other `zhub.` name is answered "no such service".
        s if s.starts_with(zhub_protocol::builtin::BUILTIN_PREFIX) => Ok(()),
        other => perms.check(user, Kind::Request, other),
    }
}

fn check_kv(perms: &Permissions, user: &str, request: &KvRequest) -> Result<(), Refusal> {
    use KvRequest as R;
    match request {
        R::Get { key } | R::History { key, .. } => perms.check(user, Kind::KvRead, key),
        R::List { prefix, .. } | R::Snapshot { prefix } | R::Changes { prefix, .. } => {
            perms.check_prefix(user, Kind::KvRead, prefix)
        }
        R::GetMany { keys } => keys
            .iter()
            .try_for_each(|key| perms.check(user, Kind::KvRead, key)),
        R::Put { key, .. } | R::Delete { key } | R::Cas { key, .. } | R::Incr { key, .. } => {
            perms.check(user, Kind::KvWrite, key)
        }
        R::WriteMany { writes } => writes
            .iter()
            .try_for_each(|w| perms.check(user, Kind::KvWrite, w.key())),
    }
}

fn check_log(perms: &Permissions, user: &str, request: &LogRequest) -> Result<(), Refusal> {
    use LogRequest as R;
    match request {
        R::Read { stream, .. } | R::Commit { stream, .. } | R::Position { stream, .. } => {
            perms.check(user, Kind::LogRead, stream)
        }
        R::Streams => perms.check_prefix(user, Kind::LogRead, ""),
        R::Append { stream, .. } => perms.check(user, Kind::LogAppend, stream),
        R::Create { stream, .. } | R::Delete { stream } | R::Republish { stream, .. } => {
            perms.check(user, Kind::LogAdmin, stream)
        }
        R::Journal { .. } | R::Unjournal { .. } => perms.check_admin(user, "change journal routes"),
        R::Journals => perms.check_admin(user, "list journal routes"),
    }
}

fn check_group(perms: &Permissions, user: &str, request: &GroupRequest) -> Result<(), Refusal> {
    use GroupRequest as R;
    match request {
        R::Join { group, .. }
        | R::Heartbeat { group, .. }
        | R::Leave { group, .. }
        | R::View { group }
        | R::Lock { group, .. }
        | R::Unlock { group, .. } => perms.check(user, Kind::GroupJoin, group),
        R::List { prefix, .. } => perms.check_prefix(user, Kind::GroupJoin, prefix),
    }
}

/// What a bus topic is, for permissions: the broker's own topics stand for what they carry.
enum Topic<'a> {
    /// A subscription probe: every subscriber sends them to itself to prove its subscription
    /// live; they carry only a random nonce.
    Probe,
    /// A key-value watch topic: the key.
    KvWatch(&'a str),
    /// A group's topic: the group.
    Group(&'a str),
    /// Any other topic.
    Plain(&'a str),
}

fn classify(topic: &str) -> Topic<'_> {
    if topic.starts_with(PROBE_PREFIX) {
        return Topic::Probe;
    }
    if let Some(key) = topic.strip_prefix(WATCH_PREFIX) {
        return Topic::KvWatch(key);
    }
    if let Some(rest) = topic.strip_prefix(GROUP_TOPICS) {
        if let Some(group) = rest.strip_suffix(".all") {
            return Topic::Group(group);
        }
        if let Some((group, _member)) = rest.rsplit_once(".m.") {
            return Topic::Group(group);
        }
    }
    Topic::Plain(topic)
}

/// Whether `perms` may publish on `topic` (raw bytes: a topic not in UTF-8 is checked as
/// its lossy text, which no pattern of the file can name).
pub fn may_publish(perms: &Permissions, topic: &[u8]) -> bool {
    let text = String::from_utf8_lossy(topic);
    match classify(&text) {
        Topic::Probe => true,
        // Only the broker publishes key changes.
        Topic::KvWatch(_) => false,
        Topic::Group(group) => perms.allows(Kind::GroupJoin, group),
        Topic::Plain(topic) => perms.allows(Kind::Publish, topic),
    }
}

/// Whether `perms` may receive a message on `topic`.
pub fn may_receive(perms: &Permissions, topic: &[u8]) -> bool {
    let text = String::from_utf8_lossy(topic);
    match classify(&text) {
        Topic::Probe => true,
        Topic::KvWatch(key) => perms.allows(Kind::KvRead, key),
        Topic::Group(group) => perms.allows(Kind::GroupJoin, group),
        Topic::Plain(topic) => perms.allows(Kind::Subscribe, topic),
    }
}

#[cfg(test)]
mod tests {
    use super::super::policy::Pattern;
    use super::*;
    use zhub_protocol::group::{all_topic, member_topic};

    fn perms(allow: &[(Kind, &str)], deny: &[(Kind, &str)], admin: bool) -> Permissions {
        let mut p = Permissions::default();
        for (k, t) in allow {
            p.allow.add(*k, Pattern::parse(t).unwrap());
        }
        for (k, t) in deny {
            p.deny.add(*k, Pattern::parse(t).unwrap());
        }
        p.allow.set_admin(admin);
        p
    }

    fn native(service: &str, body: Vec<u8>) -> Vec<Vec<u8>> {
        Request {
            id: 1,
            service: service.into(),
            timeout: std::time::Duration::from_secs(1),
            body: vec![body],
        }
        .encode()
    }

    #[test]
    fn requests_map_to_their_permissions() {
        let p = perms(
            &[
                (Kind::Request, "echo"),
                (Kind::KvRead, "app/*"),
                (Kind::KvWrite, "app/*"),
                (Kind::LogRead, "orders"),
                (Kind::GroupJoin, "g.*"),
            ],
            &[(Kind::KvWrite, "app/ro/*")],
            false,
        );
        let ok = |frames: Vec<Vec<u8>>| check_message(&p, "app", &frames);
        assert!(ok(native("echo", vec![])).is_ok());
        let err = ok(native("other", vec![])).unwrap_err();
        assert_eq!(
            err.0,
            "user 'app' may not request 'other' (no allow rule matches)"
        );
        assert!(ok(native(INFO_SERVICE, vec![])).is_ok());
        assert!(ok(native(STATS_SERVICE, vec![])).is_err());
        assert!(ok(native(TOPICS_SERVICE, vec![])).is_err());
        // Another broker's built-ins are checked as this broker's, however the name is dressed.
        assert!(ok(native("zhub.fault@b1", vec![])).is_err());
        assert!(ok(native("zhub.fault@x@b1", vec![])).is_err());
        assert!(ok(native("zhub.stats@b1", vec![])).is_err());
        let kv = |r: KvRequest| native(KV_SERVICE, body::encode(&r).unwrap());
        assert!(ok(kv(KvRequest::Get {
            key: "app/a".into()
        }))
        .is_ok());
        assert!(ok(kv(KvRequest::Get {
            key: "other".into()
        }))
        .is_err());
        let put = |key: &str| KvRequest::Put {
            key: key.into(),
            value: vec![],
            ttl_ms: None,
        };
        assert!(ok(kv(put("app/a"))).is_ok());
        assert!(ok(kv(put("app/ro/a"))).is_err());
        let list = |prefix: &str| KvRequest::List {
            prefix: prefix.into(),
            after: None,
            limit: 10,
        };
        assert!(ok(kv(list("app/"))).is_ok());
        assert!(ok(kv(list(""))).is_err());
        let log = |r: LogRequest| native(LOG_SERVICE, body::encode(&r).unwrap());
        assert!(ok(log(LogRequest::Delete {
            stream: "orders".into()
        }))
        .is_err());
        assert!(ok(log(LogRequest::Streams)).is_err());
        assert!(ok(log(LogRequest::Position {
            stream: "orders".into(),
            group: "c".into()
        }))
        .is_ok());
        let group = |r: GroupRequest| native(GROUP_SERVICE, body::encode(&r).unwrap());
        assert!(ok(group(GroupRequest::View {
            group: "g.1".into()
        }))
        .is_ok());
        assert!(ok(group(GroupRequest::View { group: "h".into() })).is_err());
        // Undecodable bodies are the router's to refuse as malformed.
        assert!(ok(native(KV_SERVICE, b"\xc1junk".to_vec())).is_ok());
        assert!(check_message(&p, "app", &[b"junk".to_vec()]).is_ok());
        assert!(check_message(&p, "app", &[]).is_ok());
    }

    #[test]
    fn majordomo_clients_and_workers_are_checked_too() {
        let p = perms(
            &[(Kind::Request, "echo"), (Kind::Serve, "echo")],
            &[],
            false,
        );
        let client = |service: &str| {
            ClientMessage {
                service: service.into(),
                body: vec![b"x".to_vec()],
            }
            .encode()
        };
        assert!(check_message(&p, "w", &client("echo")).is_ok());
        assert!(check_message(&p, "w", &client("print")).is_err());
        let ready = |service: &str| {
            WorkerCommand::Ready {
                service: service.into(),
                credit: 1,
            }
            .encode()
        };
        assert!(check_message(&p, "w", &ready("echo")).is_ok());
        let err = check_message(&p, "w", &ready("print")).unwrap_err();
        assert_eq!(
            err.0,
            "user 'w' may not serve 'print' (no allow rule matches)"
        );
        assert!(check_message(&p, "w", &WorkerCommand::Heartbeat.encode()).is_ok());
    }

    #[test]
    fn broker_topics_stand_for_keys_and_groups() {
        let p = perms(
            &[
                (Kind::Subscribe, "app.*"),
                (Kind::Publish, "*"),
                (Kind::KvRead, "cfg/*"),
                (Kind::GroupJoin, "g"),
            ],
            &[],
            false,
        );
        assert!(may_receive(&p, b"app.x"));
        assert!(!may_receive(&p, b"other"));
        assert!(may_receive(&p, b"$zhub.kv.cfg/a"));
        assert!(!may_receive(&p, b"$zhub.kv.secret"));
        assert!(!may_publish(&p, b"$zhub.kv.cfg/a"));
        assert!(may_receive(&p, all_topic("g").as_bytes()));
        assert!(may_publish(&p, member_topic("g", 5).as_bytes()));
        assert!(!may_receive(&p, all_topic("h").as_bytes()));
        assert!(may_publish(&p, b"anything"));
        assert!(may_publish(&perms(&[], &[], false), b"$zhub.probe.00ff"));
        assert!(may_receive(&perms(&[], &[], false), b"$zhub.probe.00ff"));
        assert!(!may_receive(&p, &[0xff, b'a']));
    }
}
