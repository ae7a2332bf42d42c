//! [`CurveKeyPair`]: CURVE keys as Z85 text, and the key files that hold them.
//!
//! ZeroMQ's CURVE mechanism encrypts a connection and authenticates both ends with
//! Curve25519 keys. Each key is 32 bytes, written as 40 characters of Z85 (ZeroMQ's base-85
//! text encoding), the form libzmq's socket options, `zmq_curve_keypair` and ZeroMQ tools
//! use. Files are TOML:
//!
//! | file | contents | mode |
//! | --- | --- | --- |
//! | secret (`PATH`) | `public = "…"` and `secret = "…"` | `0600` |
//! | public (`PATH.pub` by convention) | `public = "…"` | as the umask gives |

use std::ffi::CString;
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::raw::{c_char, c_int};
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, KeyError, KeyErrorKind};

/// Length of a CURVE key in Z85 text.
pub const CURVE_KEY_Z85_LEN: usize = 40;

/// Z85's alphabet, in digit order (ZeroMQ RFC 32).
const Z85_DIGITS: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// A CURVE key pair: the public key to hand out, and the secret key to keep.
///
/// Both are held as validated Z85 text ([`CURVE_KEY_Z85_LEN`] characters), which libzmq's
/// `set_curve_publickey`, `set_curve_secretkey` and `set_curve_serverkey` take as they are,
/// and the public key is checked to belong to the secret key. `Debug` never shows the secret.
///
/// ```no_run
/// use zhub_client::CurveKeyPair;
/// let keys = CurveKeyPair::generate()?;
/// keys.save("broker.key")?; // public and secret, mode 0600
/// keys.save_public("broker.key.pub")?; // public only, to hand out
/// let server_public = CurveKeyPair::load_public("broker.key.pub")?;
/// assert_eq!(server_public, keys.public());
/// # Ok::<(), zhub_client::KeyError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct CurveKeyPair {
    public: String,
    secret: String,
}

/// A key file as read: `public`, and `secret` in a secret-key file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    public: String,
    secret: Option<String>,
}

impl CurveKeyPair {
    /// A new random key pair, from libsodium through libzmq.
    ///
    /// # Errors
    /// [`KeyErrorKind::Unsupported`] if the linked libzmq was built without CURVE.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = zmq::CurveKeyPair::new().map_err(|e| {
            Error::with_source(KeyErrorKind::Unsupported, "generating a key pair", e)
        })?;
        let z85 = |key: &[u8]| {
            zmq::z85_encode(key).map_err(|e| {
                Error::new(KeyErrorKind::InvalidKey, format!("encoding a new key: {e}"))
            })
        };
        Self::from_z85(&z85(&pair.public_key)?, &z85(&pair.secret_key)?)
    }

    /// The key pair with these Z85 keys.
    ///
    /// # Errors
    /// [`KeyErrorKind::InvalidKey`] if either is not a Z85 CURVE key, and
    /// [`KeyErrorKind::Mismatch`] if `public` is not the secret key's public key.
    pub fn from_z85(public: &str, secret: &str) -> Result<Self, KeyError> {
        validate_key("public key", public)?;
        validate_key("secret key", secret)?;
        if public_of(secret)? != public {
            return Err(Error::new(
                KeyErrorKind::Mismatch,
                format!("{public} is not the public key of this secret key"),
            ));
        }
        Ok(CurveKeyPair {
            public: public.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// Checks that `key` is a CURVE key in Z85: [`CURVE_KEY_Z85_LEN`] characters of Z85's
    /// alphabet, each group of five a 32-bit value. For public keys given as text (an
    /// allow-list, a command-line flag).
    ///
    /// # Errors
    /// [`KeyErrorKind::InvalidKey`], saying what is wrong.
    pub fn validate_public(key: &str) -> Result<(), KeyError> {
        validate_key("public key", key)
    }

    /// The public key, in Z85.
    pub fn public(&self) -> &str {
        &self.public
    }

    /// The secret key, in Z85. Keep it out of logs.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Reads a secret-key file (`public = "…"`, `secret = "…"`).
    ///
    /// # Errors
    /// [`KeyErrorKind::Io`] if it cannot be read, [`KeyErrorKind::Format`] if it is not such
    /// a file (a public-key file included), and as [`CurveKeyPair::from_z85`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let file = read_key_file(path)?;
        let Some(secret) = file.secret else {
            return Err(Error::new(
                KeyErrorKind::Format,
                format!("{}: no `secret`: is it a public-key file?", path.display()),
            ));
        };
        Self::from_z85(&file.public, &secret).map_err(|e| in_file(path, e))
    }

    /// Reads the public key from a public-key file (`public = "…"`), or from a secret-key
    /// file, whose public half it is.
    ///
    /// # Errors
    /// [`KeyErrorKind::Io`] if it cannot be read, [`KeyErrorKind::Format`] if it is not a key
    /// file, [`KeyErrorKind::InvalidKey`] if the key is not a Z85 CURVE key.
    pub fn load_public(path: impl AsRef<Path>) -> Result<String, KeyError> {
        let path = path.as_ref();
        let file = read_key_file(path)?;
        validate_key("public key", &file.public).map_err(|e| in_file(path, e))?;
        Ok(file.public)
    }

    /// Writes the secret-key file, `public` and `secret`, readable by its owner only (mode
    /// `0600`). An existing file at `path` is replaced whole: the keys go to a new file
    /// beside it, which is then renamed over it, so a reader never sees half a file and an
    /// old file's looser mode is not kept.
    ///
    /// # Errors
    /// [`KeyErrorKind::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        let text = format!(
            "public = \"{}\"\nsecret = \"{}\"\n",
            self.public, self.secret
        );
        write_replacing(path.as_ref(), &text, Some(0o600))
    }

    /// Writes the public-key file, `public` only, with the mode the umask gives; replaces an
    /// existing file as [`CurveKeyPair::save`] does.
    ///
    /// # Errors
    /// [`KeyErrorKind::Io`] if the file cannot be written.
    pub fn save_public(&self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        write_replacing(
            path.as_ref(),
            &format!("public = \"{}\"\n", self.public),
            None,
        )
    }
}

impl fmt::Debug for CurveKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurveKeyPair")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Checks one Z85 key; `what` names it in the error.
fn validate_key(what: &str, key: &str) -> Result<(), KeyError> {
    let invalid =
        |detail: String| Error::new(KeyErrorKind::InvalidKey, format!("{what}: {detail}"));
    if let Some((at, c)) = key
        .char_indices()
        .find(|&(_, c)| !c.is_ascii() || !Z85_DIGITS.contains(&(c as u8)))
    {
        return Err(invalid(format!(
            "{c:?} at byte {at} is not a Z85 character"
        )));
    }
    if key.len() != CURVE_KEY_Z85_LEN {
        return Err(invalid(format!(
            "{} characters, a Z85 CURVE key has {CURVE_KEY_Z85_LEN}",
            key.len()
        )));
    }
    // Five Z85 digits can spell up to 85^5 - 1, more than the 32 bits they stand for.
    for (group, digits) in key.as_bytes().chunks(5).enumerate() {
        let value = digits.iter().fold(0u64, |value, digit| {
            let d = Z85_DIGITS.iter().position(|z| z == digit).unwrap_or(0);
            value * 85 + d as u64
        });
        if value > u64::from(u32::MAX) {
            return Err(invalid(format!(
                "characters {}..{} are past 32 bits",
                group * 5,
                group * 5 + 5
            )));
        }
    }
    Ok(())
}

// libzmq's own (since 4.2.1), linked through zmq-sys, whose crate root does not re-export it.
extern "C" {
    fn zmq_curve_public(z85_public_key: *mut c_char, z85_secret_key: *const c_char) -> c_int;
}

/// The public key of a valid Z85 secret key, by libzmq (`zmq_curve_public`).
fn public_of(secret: &str) -> Result<String, KeyError> {
    let secret = CString::new(secret)
        .map_err(|_| Error::new(KeyErrorKind::InvalidKey, "secret key: contains a NUL byte"))?;
    let mut public = [0 as c_char; CURVE_KEY_Z85_LEN + 1];
    // SAFETY: `public` has room for 40 characters and the NUL that zmq_curve_public writes;
    // `secret` is a NUL-terminated 40-character Z85 key, as it requires.
    let rc = unsafe { zmq_curve_public(public.as_mut_ptr(), secret.as_ptr()) };
    if rc != 0 {
        let e = zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() });
        return Err(Error::with_source(
            KeyErrorKind::Unsupported,
            "deriving the public key",
            e,
        ));
    }
    Ok(public[..CURVE_KEY_Z85_LEN]
        .iter()
        .map(|&c| c as u8 as char)
        .collect())
}

/// Reads and parses a key file. A TOML error's message is kept without the excerpt of the
/// file that its `Display` adds, which could be a secret key.
fn read_key_file(path: &Path) -> Result<KeyFile, KeyError> {
    let text = fs::read_to_string(path).map_err(|e| {
        Error::with_source(KeyErrorKind::Io, format!("reading {}", path.display()), e)
    })?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| format!(" (line {})", text[..span.start].lines().count().max(1)))
            .unwrap_or_default();
        Error::new(
            KeyErrorKind::Format,
            format!("{}{line}: {}", path.display(), e.message().trim_end()),
        )
    })
}

/// Names the file in a key error that arose from its contents.
fn in_file(path: &Path, e: KeyError) -> KeyError {
    Error::new(e.kind(), format!("{}: {}", path.display(), e.detail()))
}

/// Writes `text` to a new file beside `path` (with `mode`, where given), syncs it and renames
/// it over `path`.
fn write_replacing(path: &Path, text: &str, mode: Option<u32>) -> Result<(), KeyError> {
    let io = |what: &str, e| {
        Error::with_source(KeyErrorKind::Io, format!("{what} {}", path.display()), e)
    };
    let name = path.file_name().ok_or_else(|| {
        Error::new(
            KeyErrorKind::Io,
            format!("{}: not a file name", path.display()),
        )
    })?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = path.with_file_name(temp_name);

    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| fs::rename(&temp, path)) {
        let _ = fs::remove_file(&temp);
        return Err(io("writing", e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn generated_keys_are_z85_and_belong_together() {
        let keys = CurveKeyPair::generate().unwrap();
        assert_eq!(keys.public().len(), CURVE_KEY_Z85_LEN);
        assert_eq!(keys.secret().len(), CURVE_KEY_Z85_LEN);
        assert_ne!(keys.public(), keys.secret());
        assert_eq!(public_of(keys.secret()).unwrap(), keys.public());
        assert_ne!(CurveKeyPair::generate().unwrap(), keys);
    }

    #[test]
    fn known_pair_from_the_zeromq_rfc_is_accepted() {
        // The client's pair from ZeroMQ RFC 26 (CurveZMQ) test vectors, as in zmq_curve(7).
        let keys = CurveKeyPair::from_z85(
            "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
            "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs",
        )
        .unwrap();
        assert_eq!(keys.public(), "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID");
    }

    #[test]
    fn bad_keys_are_refused_with_what_is_wrong() {
        let keys = CurveKeyPair::generate().unwrap();
        let short = &keys.public()[..39];
        let e = CurveKeyPair::from_z85(short, keys.secret()).unwrap_err();
        assert_eq!(e.kind(), KeyErrorKind::InvalidKey);
        assert_eq!(
            e.to_string(),
            "invalid CURVE key: public key: 39 characters, a Z85 CURVE key has 40"
        );

        let with_quote = format!("\"{}", &keys.secret()[1..]);
        let e = CurveKeyPair::from_z85(keys.public(), &with_quote).unwrap_err();
        assert_eq!(e.kind(), KeyErrorKind::InvalidKey);
        assert!(
            e.to_string()
                .contains("secret key: '\"' at byte 0 is not a Z85"),
            "{e}"
        );

        // "#####" is 85^5 - 1, past 32 bits.
        let too_big = format!("#####{}", &keys.public()[5..]);
        let e = CurveKeyPair::validate_public(&too_big).unwrap_err();
        assert_eq!(e.kind(), KeyErrorKind::InvalidKey);
        assert!(
            e.to_string().contains("characters 0..5 are past 32 bits"),
            "{e}"
        );

        let e = CurveKeyPair::validate_public("é").unwrap_err();
        assert_eq!(e.kind(), KeyErrorKind::InvalidKey);
    }

    #[test]
    fn a_public_key_from_another_pair_is_a_mismatch() {
        let a = CurveKeyPair::generate().unwrap();
        let b = CurveKeyPair::generate().unwrap();
        let e = CurveKeyPair::from_z85(b.public(), a.secret()).unwrap_err();
        assert_eq!(e.kind(), KeyErrorKind::Mismatch);
        assert!(!e.to_string().contains(a.secret()));
    }

    #[test]
    fn debug_hides_the_secret() {
        let keys = CurveKeyPair::generate().unwrap();
        let shown = format!("{keys:?}");
        assert!(shown.contains(keys.public()));
        assert!(!shown.contains(keys.secret()));
    }

    #[test]
    fn files_round_trip_with_owner_only_secret_files() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("k");
        let public = dir.path().join("k.pub");
        let keys = CurveKeyPair::generate().unwrap();
        keys.save(&secret).unwrap();
        keys.save_public(&public).unwrap();

        assert_eq!(
            fs::read_to_string(&secret).unwrap(),
            format!(
                "public = \"{}\"\nsecret = \"{}\"\n",
                keys.public(),
                keys.secret()
            )
        );
        assert_eq!(
            fs::read_to_string(&public).unwrap(),
            format!("public = \"{}\"\n", keys.public())
        );
        assert_eq!(CurveKeyPair::load(&secret).unwrap(), keys);
        assert_eq!(CurveKeyPair::load_public(&public).unwrap(), keys.public());
        assert_eq!(CurveKeyPair::load_public(&secret).unwrap(), keys.public());
        #[cfg(unix)]
        assert_eq!(mode(&secret), 0o600);

        // A public-key file is not a key pair.
        let e = CurveKeyPair::load(&public).unwrap_err();
        assert_eq!(e.kind(), KeyErrorKind::Format);
        // No temporary files are left beside them.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn saving_over_a_readable_file_leaves_it_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let keys = CurveKeyPair::generate().unwrap();
        keys.save(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(CurveKeyPair::load(&path).unwrap(), keys);
    }

    #[test]
    fn malformed_files_say_where_without_showing_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let keys = CurveKeyPair::generate().unwrap();

        fs::write(
            &path,
            format!(
                "public = \"{}\"\nsecret = {}\n",
                keys.public(),
                keys.secret()
            ),
        )
        .unwrap();
        let e = CurveKeyPair::load(&path).unwrap_err();
        assert_eq!(e.kind(), KeyErrorKind::Format);
        assert!(e.to_string().contains("(line 2)"), "{e}");
        assert!(!format!("{e} {e:?}").contains(keys.secret()), "{e}");

        fs::write(&path, "public = \"x\"\nsecert = \"y\"\n").unwrap();
        let e = CurveKeyPair::load(&path).unwrap_err();
        assert_eq!(e.kind(), KeyErrorKind::Format);
        assert!(e.to_string().contains("secert"), "{e}");

        fs::write(&path, format!("public = \"{}\"\n", &keys.public()[1..])).unwrap();
        let e = CurveKeyPair::load_public(&path).unwrap_err();
        assert_eq!(e.kind(), KeyErrorKind::InvalidKey);
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");

        let e = CurveKeyPair::load(dir.path().join("missing")).unwrap_err();
        assert_eq!(e.kind(), KeyErrorKind::Io);
    }
}
