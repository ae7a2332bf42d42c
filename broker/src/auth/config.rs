//! The auth file (`--auth auth.toml`): users, their password hashes, their CURVE public keys
//! and their permissions, read into a [`Policy`].
//!
//! ```toml
//! [users.app]
//! # From `zhub-broker --hash-password` (argon2id, PHC string format).
//! password = "$argon2id$v=19$m=19456,t=2,p=1$...$..."
//! # CURVE public keys (Z85, 40 characters) that log in as this user.
//! curve_keys = ["rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"]
//!
//! [users.app.allow]
//! publish = ["app.*"]
//! subscribe = ["app.*", "public.*"]
//! request = ["echo"]
//! serve = []
//! kv_read = ["app/*"]
//! kv_write = ["app/*"]
//! log_read = ["orders"]
//! log_append = ["orders"]
//! log_admin = []
//! group_join = ["app.*"]
//! admin = false
//!
//! [users.app.deny]
//! publish = ["app.secret.*"]
//! ```
//!
//! With a `[curve]` section (the broker's key pair, from `zhub keygen`) every endpoint is a
//! CURVE server and takes CURVE logins only: a ZeroMQ socket serves one mechanism, so a
//! user with a `password` is then an error, not a login that silently never works.
//!
//! ```toml
//! [curve]
//! public = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
//! secret = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
//! ```
//!
//! Brokers that peer (`--cluster`, `--peer`) log in to each other's cluster and deliver
//! endpoints too. With `[curve]`, every broker of the cluster holds the same key pair and
//! logs in with it; with passwords, they share a secret of at least 16 characters:
//!
//! ```toml
//! [cluster]
//! secret = "a long random string, the same in every broker's file"
//! ```
//!
//! A peer that logs in so is trusted with everything: a broker checks its own clients'
//! permissions before it passes their requests on, so the brokers of a cluster should hold
//! the same file.
//!
//! Every list holds patterns ([`crate::auth::policy::Pattern`]); a missing list allows (or
//! denies) nothing. Unknown keys are an error, so that a typo never opens a hole.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use super::policy::{Kind, Pattern, Permissions, Rules};
use super::AuthError;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    curve: Option<CurveFile>,
    #[serde(default)]
    cluster: Option<ClusterFile>,
    #[serde(default)]
    users: BTreeMap<String, UserFile>,
}

/// What brokers that peer present to each other, without `[curve]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    secret: String,
}

/// Fewest characters of a cluster secret.
const MIN_SECRET: usize = 16;

/// The broker's own CURVE key pair, Z85.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CurveFile {
    public: String,
    secret: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    curve_keys: Vec<String>,
    #[serde(default)]
    allow: RulesFile,
    #[serde(default)]
    deny: RulesFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    subscribe: Vec<String>,
    #[serde(default)]
    serve: Vec<String>,
    #[serde(default)]
    request: Vec<String>,
    #[serde(default)]
    kv_read: Vec<String>,
    #[serde(default)]
    kv_write: Vec<String>,
    #[serde(default)]
    log_read: Vec<String>,
    #[serde(default)]
    log_append: Vec<String>,
    #[serde(default)]
    log_admin: Vec<String>,
    #[serde(default)]
    group_join: Vec<String>,
    #[serde(default)]
    admin: bool,
}

impl RulesFile {
    fn rules(&self, user: &str, side: &str) -> Result<Rules, String> {
        let mut rules = Rules::default();
        let lists: [(Kind, &[String], &str); 10] = [
            (Kind::Publish, &self.publish, "publish"),
            (Kind::Subscribe, &self.subscribe, "subscribe"),
            (Kind::Serve, &self.serve, "serve"),
            (Kind::Request, &self.request, "request"),
            (Kind::KvRead, &self.kv_read, "kv_read"),
            (Kind::KvWrite, &self.kv_write, "kv_write"),
            (Kind::LogRead, &self.log_read, "log_read"),
            (Kind::LogAppend, &self.log_append, "log_append"),
            (Kind::LogAdmin, &self.log_admin, "log_admin"),
            (Kind::GroupJoin, &self.group_join, "group_join"),
        ];
        for (kind, texts, key) in lists {
            for text in texts {
                let pattern =
                    Pattern::parse(text).map_err(|e| format!("users.{user}.{side}.{key}: {e}"))?;
                rules.add(kind, pattern);
            }
        }
        rules.set_admin(self.admin);
        Ok(rules)
    }
}

/// The broker's CURVE key pair, as libzmq takes it (Z85 text).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerKeys {
    /// Public key, Z85.
    pub public: String,
    /// Secret key, Z85.
    pub secret: String,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKeys")
            .field("public", &self.public)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// One user.
#[derive(Debug, Clone)]
pub struct User {
    /// The PHC string of the password's hash; `None`: no password login (CURVE only).
    pub password: Option<String>,
    /// What the user may do.
    pub permissions: Permissions,
}

/// Users, keys and permissions, as the broker consults them.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Users by name.
    pub users: HashMap<String, User>,
    /// The user each CURVE public key logs in as, by the key in canonical Z85 (40
    /// characters), the form the ZAP handler writes into each message's `User-Id`.
    pub keys: HashMap<String, String>,
    /// The broker's key pair, when CURVE is on.
    pub curve: Option<ServerKeys>,
    /// The secret peer brokers log in with, without CURVE (`[cluster]`).
    pub cluster_secret: Option<ClusterSecret>,
}

/// The secret of `[cluster]`, kept out of debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(pub String);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(<hidden>)")
    }
}

impl Policy {
    /// Reads and checks an auth file.
    ///
    /// # Errors
    /// [`AuthError::File`] naming the file and what is wrong in it.
    pub fn from_file(path: &Path) -> Result<Policy, AuthError> {
        let fail = |reason: String| AuthError::File {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        Policy::from_toml(&text).map_err(fail)
    }

    /// Reads the text of an auth file.
    ///
    /// # Errors
    /// What is wrong, naming the key.
    pub fn from_toml(text: &str) -> Result<Policy, String> {
        let file: AuthFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        let mut policy = Policy::default();
        if let Some(curve) = file.curve {
            for (name, key) in [("public", &curve.public), ("secret", &curve.secret)] {
                decode_key(key).map_err(|e| format!("curve.{name}: {e}"))?;
            }
            policy.curve = Some(ServerKeys {
                public: curve.public,
                secret: curve.secret,
            });
        }
        if let Some(cluster) = file.cluster {
            if policy.curve.is_some() {
                return Err("cluster.secret: this file sets [curve], and brokers that peer log in to each other with its key pair; remove [cluster]".to_owned());
            }
            if cluster.secret.chars().count() < MIN_SECRET {
                return Err(format!(
                    "cluster.secret: at least {MIN_SECRET} characters (a long random string, the same in every broker's file)"
                ));
            }
            policy.cluster_secret = Some(ClusterSecret(cluster.secret));
        }
        for (name, user) in file.users {
            if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
                return Err(format!(
                    "users.{name:?}: a user name is 1 to 255 printable characters"
                ));
            }
            if user.password.is_some() && policy.curve.is_some() {
                // A ZeroMQ socket is a CURVE server or a PLAIN server, not both: with a key
                // pair every endpoint is CURVE, and a password could never be used.
                return Err(format!(
                    "users.{name}.password: this file sets [curve], so every endpoint takes CURVE logins only and no password can log in; give the user curve_keys instead, or remove [curve] to log in with passwords"
                ));
            }
            if let Some(phc) = &user.password {
                argon2::PasswordHash::new(phc).map_err(|e| {
                    format!("users.{name}.password: not a PHC hash string ({e}); make one with `zhub-broker --hash-password`")
                })?;
            }
            for key in &user.curve_keys {
                let raw = decode_key(key).map_err(|e| format!("users.{name}.curve_keys: {e}"))?;
                if let Some(other) = policy.keys.insert(z85(&raw), name.clone()) {
                    return Err(format!(
                        "users.{name}.curve_keys: key {key} is also user '{other}''s"
                    ));
                }
            }
            let permissions = Permissions {
                allow: user.allow.rules(&name, "allow")?,
                deny: user.deny.rules(&name, "deny")?,
            };
            policy.users.insert(
                name,
                User {
                    password: user.password,
                    permissions,
                },
            );
        }
        Ok(policy)
    }
}

/// A key's 32 bytes in Z85: one spelling per key, whatever spelling the file used.
pub(crate) fn z85(raw: &[u8]) -> String {
    zmq::z85_encode(raw).unwrap_or_default()
}

/// A Z85 CURVE key (40 characters) as its 32 bytes.
fn decode_key(text: &str) -> Result<Vec<u8>, String> {
    if text.len() != 40 {
        return Err(format!("{text:?} is not a Z85 CURVE key (40 characters)"));
    }
    match zmq::z85_decode(text) {
        Ok(raw) if raw.len() == 32 => Ok(raw),
        _ => Err(format!("{text:?} is not a Z85 CURVE key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$ZmFrZWhhc2hmYWtlaGFzaGZha2VoYXNoZmFrZWg";

    #[test]
    fn a_cluster_secret_is_long_and_goes_with_passwords_only() {
        let policy = Policy::from_toml("[cluster]\nsecret = \"sixteen chars ok\"\n").unwrap();
        assert_eq!(
            policy.cluster_secret,
            Some(ClusterSecret("sixteen chars ok".into()))
        );
        assert!(
            !format!("{policy:?}").contains("sixteen"),
            "the secret stays out of logs"
        );
        let short = Policy::from_toml("[cluster]\nsecret = \"too short\"\n").unwrap_err();
        assert!(short.contains("at least 16"), "{short}");
        let with_curve = format!(
            "[curve]\npublic = \"{k}\"\nsecret = \"{k}\"\n[cluster]\nsecret = \"sixteen chars ok\"\n",
            k = zmq::z85_encode(&[7u8; 32]).unwrap()
        );
        let err = Policy::from_toml(&with_curve).unwrap_err();
        assert!(err.contains("remove [cluster]"), "{err}");
    }

    #[test]
    fn a_complete_file_is_read() {
        let text = r#"
[curve]
public = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
secret = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"

[users.app]
curve_keys = ["Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"]
[users.app.allow]
publish = ["app.*"]
admin = true
[users.app.deny]
publish = ["app.secret.*"]

[users.reader]
"#;
        let policy = Policy::from_toml(text).unwrap();
        assert!(policy.curve.is_some());
        let app = &policy.users["app"];
        assert!(app.permissions.allows(Kind::Publish, "app.x"));
        assert!(!app.permissions.allows(Kind::Publish, "app.secret.x"));
        assert!(app.permissions.allows_admin());
        assert_eq!(policy.keys.len(), 1);
        assert_eq!(
            policy.keys["Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"],
            "app"
        );
        assert!(app.password.is_none());
        let reader = &policy.users["reader"];
        assert!(reader.password.is_none());
        assert!(!reader.permissions.allows(Kind::Subscribe, "x"));
    }

    #[test]
    fn passwords_are_refused_beside_a_curve_key_pair() {
        let text = format!(
            "[curve]\npublic = \"rq:rM>}}U?@Lns47E1%kR.o@n%FcmmsL/@{{H8]yf7\"\n\
             secret = \"JTKVSB%%)wK0E.X)V>+}}o?pNmC{{O&4W4b!Ni{{Lh6\"\n\
             [users.app]\npassword = \"{HASH}\"\n"
        );
        let err = Policy::from_toml(&text).unwrap_err();
        assert!(
            err.contains("users.app.password") && err.contains("CURVE logins only"),
            "{err}"
        );
        // The same user without [curve] is a PLAIN user.
        let text = format!("[users.app]\npassword = \"{HASH}\"\n");
        assert!(Policy::from_toml(&text).is_ok());
    }

    #[test]
    fn mistakes_are_errors_naming_the_key() {
        let err = Policy::from_toml("[users.a]\npasword = \"x\"\n").unwrap_err();
        assert!(err.contains("pasword"), "{err}");
        let err = Policy::from_toml("[users.a]\npassword = \"plain text\"\n").unwrap_err();
        assert!(err.contains("users.a.password"), "{err}");
        let err = Policy::from_toml("[users.a.allow]\npublish = [\"a*b\"]\n").unwrap_err();
        assert!(err.contains("users.a.allow.publish"), "{err}");
        let err = Policy::from_toml("[users.a]\ncurve_keys = [\"short\"]\n").unwrap_err();
        assert!(err.contains("users.a.curve_keys"), "{err}");
        let err = Policy::from_toml("[users.a.deny]\nsubscrbe = []\n").unwrap_err();
        assert!(err.contains("subscrbe"), "{err}");
    }
}
