//! Permissions: what one user may do, as allow and deny patterns per kind of action, deny
//! winning over allow. Pure: no sockets, no files.
//!
//! A pattern is a name (`"orders"`: that name only) or a prefix ending in `*` (`"orders.*"`:
//! every name starting with `orders.`; `"*"`: every name). An action on one name is allowed
//! when an allow pattern matches the name and no deny pattern does. An action on every name
//! under a prefix (listing keys, reading a snapshot, following changes) is allowed only when
//! one allow prefix covers the whole of it and no deny pattern reaches into it, so that a
//! prefix request never returns a name the user may not see one by one.

use std::fmt;

/// A kind of action a permission names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Publish on a topic.
    Publish,
    /// Receive messages on a topic.
    Subscribe,
    /// Register as a worker of a service.
    Serve,
    /// Send a request to a service.
    Request,
    /// Read a key of the key-value store.
    KvRead,
    /// Write (put, delete, compare-and-set, increment) a key.
    KvWrite,
    /// Read a stream of the event log (and commit consumer positions in it).
    LogRead,
    /// Append to a stream.
    LogAppend,
    /// Create, delete or republish a stream.
    LogAdmin,
    /// Join (and use) a process group.
    GroupJoin,
}

impl Kind {
    /// How an error message says the action: "user 'app' may not {verb} 'x'".
    fn verb(self) -> &'static str {
        match self {
            Kind::Publish => "publish to",
            Kind::Subscribe => "subscribe to",
            Kind::Serve => "serve",
            Kind::Request => "request",
            Kind::KvRead => "read key",
            Kind::KvWrite => "write key",
            Kind::LogRead => "read stream",
            Kind::LogAppend => "append to stream",
            Kind::LogAdmin => "administer stream",
            Kind::GroupJoin => "join group",
        }
    }

    /// The verb for a request over every name under a prefix.
    fn prefix_verb(self) -> &'static str {
        match self {
            Kind::Publish => "publish under",
            Kind::Subscribe => "subscribe under",
            Kind::Serve => "serve services under",
            Kind::Request => "request services under",
            Kind::KvRead => "read keys under",
            Kind::KvWrite => "write keys under",
            Kind::LogRead => "read streams under",
            Kind::LogAppend => "append to streams under",
            Kind::LogAdmin => "administer streams under",
            Kind::GroupJoin => "use groups under",
        }
    }
}

/// One pattern: a name, or a prefix (written with a trailing `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Exactly this name.
    Exact(String),
    /// Every name starting with this (empty: every name).
    Prefix(String),
}

impl Pattern {
    /// Reads `"name"` or `"prefix*"`.
    ///
    /// # Errors
    /// A message when a `*` appears anywhere but at the end, or the pattern is empty.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let (body, prefix) = match text.strip_suffix('*') {
            Some(body) => (body, true),
            None => (text, false),
        };
        if body.contains('*') {
            return Err(format!(
                "pattern {text:?}: '*' may only end a pattern (a prefix)"
            ));
        }
        if !prefix && body.is_empty() {
            return Err("empty pattern: write \"*\" for every name".to_owned());
        }
        Ok(if prefix {
            Pattern::Prefix(body.to_owned())
        } else {
            Pattern::Exact(body.to_owned())
        })
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(exact) => exact == name,
            Pattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }

    /// Whether this pattern matches every name starting with `prefix`.
    fn covers(&self, prefix: &str) -> bool {
        match self {
            Pattern::Exact(_) => false,
            Pattern::Prefix(own) => prefix.starts_with(own.as_str()),
        }
    }

    /// Whether this pattern matches some name starting with `prefix`.
    fn reaches_into(&self, prefix: &str) -> bool {
        match self {
            Pattern::Exact(exact) => exact.starts_with(prefix),
            Pattern::Prefix(own) => own.starts_with(prefix) || prefix.starts_with(own.as_str()),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(name) => f.write_str(name),
            Pattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// Patterns per kind of action, and whether the admin operations are named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    patterns: Vec<(Kind, Pattern)>,
    admin: bool,
}

impl Rules {
    /// Adds a pattern for `kind`.
    pub fn add(&mut self, kind: Kind, pattern: Pattern) {
        self.patterns.push((kind, pattern));
    }

    /// Names (or not) the admin operations: stats, journals, fault rules.
    pub fn set_admin(&mut self, admin: bool) {
        self.admin = admin;
    }

    fn of(&self, kind: Kind) -> impl Iterator<Item = &Pattern> {
        self.patterns
            .iter()
            .filter(move |(k, _)| *k == kind)
            .map(|(_, p)| p)
    }
}

/// What a user may do: allow rules, and deny rules that win over them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// What is allowed.
    pub allow: Rules,
    /// What is refused even when allowed.
    pub deny: Rules,
}

/// An action refused, with the message the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Permissions {
    /// Whether `kind` is allowed on `name`.
    pub fn allows(&self, kind: Kind, name: &str) -> bool {
        self.allow.of(kind).any(|p| p.matches(name)) && !self.deny.of(kind).any(|p| p.matches(name))
    }

    /// Whether `kind` is allowed on every name starting with `prefix`.
    pub fn allows_prefix(&self, kind: Kind, prefix: &str) -> bool {
        self.allow.of(kind).any(|p| p.covers(prefix))
            && !self.deny.of(kind).any(|p| p.reaches_into(prefix))
    }

    /// Whether the admin operations (stats, journals, fault rules) are allowed.
    pub fn allows_admin(&self) -> bool {
        self.allow.admin && !self.deny.admin
    }

    /// [`Self::allows`], or the refusal naming `user`, the action and why.
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn check(&self, user: &str, kind: Kind, name: &str) -> Result<(), Refusal> {
        if self.allows(kind, name) {
            return Ok(());
        }
        let why = match self.deny.of(kind).find(|p| p.matches(name)) {
            Some(p) => format!("denied by '{p}'"),
            None => "no allow rule matches".to_owned(),
        };
        Err(Refusal(format!(
            "user '{user}' may not {} '{name}' ({why})",
            kind.verb()
        )))
    }

    /// [`Self::allows_prefix`], or the refusal.
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn check_prefix(&self, user: &str, kind: Kind, prefix: &str) -> Result<(), Refusal> {
        if self.allows_prefix(kind, prefix) {
            return Ok(());
        }
        let why = match self.deny.of(kind).find(|p| p.reaches_into(prefix)) {
            Some(p) => format!("'{p}' is denied"),
            None => "no allow rule covers all of it".to_owned(),
        };
        Err(Refusal(format!(
            "user '{user}' may not {} '{prefix}' ({why})",
            kind.prefix_verb()
        )))
    }

    /// [`Self::allows_admin`], or the refusal naming the operation.
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn check_admin(&self, user: &str, operation: &str) -> Result<(), Refusal> {
        if self.allows_admin() {
            return Ok(());
        }
        Err(Refusal(format!(
            "user '{user}' may not {operation} (admin only)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(allow: &[(Kind, &str)], deny: &[(Kind, &str)]) -> Permissions {
        let mut p = Permissions::default();
        for (kind, text) in allow {
            p.allow.add(*kind, Pattern::parse(text).unwrap());
        }
        for (kind, text) in deny {
            p.deny.add(*kind, Pattern::parse(text).unwrap());
        }
        p
    }

    #[test]
    fn patterns_are_names_or_trailing_star_prefixes() {
        assert_eq!(Pattern::parse("a.b"), Ok(Pattern::Exact("a.b".into())));
        assert_eq!(Pattern::parse("a.*"), Ok(Pattern::Prefix("a.".into())));
        assert_eq!(Pattern::parse("*"), Ok(Pattern::Prefix(String::new())));
        assert!(Pattern::parse("a*b").is_err());
        assert!(Pattern::parse("**").is_err());
        assert!(Pattern::parse("").is_err());
        assert_eq!(Pattern::Prefix("a.".into()).to_string(), "a.*");
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let p = Permissions::default();
        assert!(!p.allows(Kind::Publish, "a"));
        assert!(!p.allows_prefix(Kind::KvRead, ""));
        assert!(!p.allows_admin());
    }

    #[test]
    fn deny_wins_over_allow() {
        let p = perms(
            &[(Kind::Publish, "app.*"), (Kind::Publish, "admin.ok")],
            &[(Kind::Publish, "app.secret.*")],
        );
        assert!(p.allows(Kind::Publish, "app.x"));
        assert!(p.allows(Kind::Publish, "admin.ok"));
        assert!(!p.allows(Kind::Publish, "admin.x"));
        assert!(!p.allows(Kind::Publish, "app.secret.k"));
        // Another kind is not touched by these rules.
        assert!(!p.allows(Kind::Subscribe, "app.x"));
        let err = p.check("app", Kind::Publish, "admin.x").unwrap_err();
        assert_eq!(
            err.0,
            "user 'app' may not publish to 'admin.x' (no allow rule matches)"
        );
        let err = p.check("app", Kind::Publish, "app.secret.k").unwrap_err();
        assert!(err.0.contains("denied by 'app.secret.*'"), "{err}");
    }

    #[test]
    fn a_prefix_is_allowed_only_when_all_of_it_is() {
        let p = perms(
            &[(Kind::KvRead, "app/*"), (Kind::KvRead, "cfg")],
            &[(Kind::KvRead, "app/private/*"), (Kind::KvRead, "app/pin")],
        );
        assert!(p.allows_prefix(Kind::KvRead, "app/public/"));
        // Under it are denied names.
        assert!(!p.allows_prefix(Kind::KvRead, "app/"));
        assert!(!p.allows_prefix(Kind::KvRead, "app/p"));
        assert!(!p.allows_prefix(Kind::KvRead, "app/private/x"));
        // Wider than the allow rule, or only an exact name.
        assert!(!p.allows_prefix(Kind::KvRead, "ap"));
        assert!(!p.allows_prefix(Kind::KvRead, "cfg"));
        assert!(p.allows(Kind::KvRead, "cfg"));
        let err = p.check_prefix("app", Kind::KvRead, "app/").unwrap_err();
        assert!(
            err.0
                .starts_with("user 'app' may not read keys under 'app/'"),
            "{err}"
        );
    }

    #[test]
    fn admin_is_allowed_and_denied_as_a_whole() {
        let mut p = Permissions::default();
        p.allow.set_admin(true);
        assert!(p.allows_admin());
        assert!(p.check_admin("ops", "read stats").is_ok());
        p.deny.set_admin(true);
        let err = p.check_admin("ops", "read stats").unwrap_err();
        assert_eq!(err.0, "user 'ops' may not read stats (admin only)");
    }
}
