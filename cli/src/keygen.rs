//! `zhub keygen`: a new CURVE key pair, printed or written to a secret and a public key file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::bail;
use zhub_client::CurveKeyPair;

/// Arguments of `zhub keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// Write the key pair to PATH (public and secret, mode 0600) and the public key alone to
    /// PATH.pub, and print only the public key; without it, print both keys.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// With --out, replace files that already exist.
    #[arg(long, requires = "out")]
    force: bool,
}

/// `PATH.pub`: the public key file beside the secret one (`broker.key` -> `broker.key.pub`).
fn public_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".pub");
    PathBuf::from(name)
}

pub(crate) fn run(args: &KeygenArgs) -> anyhow::Result<()> {
    let keys = CurveKeyPair::generate()?;
    let Some(path) = &args.out else {
        // The same lines as a secret key file holds, so the output can be saved as one.
        println!("public = \"{}\"", keys.public());
        println!("secret = \"{}\"", keys.secret());
        return Ok(());
    };
    let public = public_path(path);
    if !args.force {
        // Both checked before either is written, so a refusal leaves nothing half done.
        for existing in [path, &public] {
            if existing.exists() {
                bail!(
                    "{} already exists; pass --force to replace it",
                    existing.display()
                );
            }
        }
    }
    keys.save(path)?;
    keys.save_public(&public)?;
    println!("public = \"{}\"", keys.public());
    Ok(())
}
