// zhub: this build script differs from upstream zmq-sys 0.12.0 only in
// passing a libsodium location to zeromq-src, so that libzmq is built with
// CURVE. See ../README.md.

use std::env;
use std::path::PathBuf;

/// Where `libsodium-sys-stable` put the static libsodium it built from its
/// bundled source, read from its `links = "sodium"` metadata.
fn libsodium() -> zeromq_src::LibLocation {
    let var = |name: &str| -> PathBuf {
        println!("cargo:rerun-if-env-changed={name}");
        match env::var_os(name) {
            Some(value) => PathBuf::from(value),
            // libsodium-sys-stable emits both only when it builds libsodium
            // itself or finds it by pkg-config, not under SODIUM_LIB_DIR.
            // (Edition 2015: panic! takes the arguments explicitly.)
            None => panic!(
                "{} is not set: libsodium-sys-stable did not report where libsodium is; \
                 unset SODIUM_LIB_DIR so that it builds its bundled copy",
                name
            ),
        }
    };
    let lib_dir = var("DEP_SODIUM_LIB");
    let include_dir = var("DEP_SODIUM_INCLUDE");
    // zeromq-src prints its own link-search for this directory, but quoted
    // (`{:?}`), which the linker never finds; say it plainly here.
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    zeromq_src::LibLocation::new(lib_dir, include_dir)
}

pub fn configure() {
    println!("cargo:rerun-if-changed=build/main.rs");
    println!("cargo:rerun-if-env-changed=PROFILE");

    // Note that by default `libzmq` builds without `libsodium` by instead
    // relying on `tweetnacl`. However since this `tweetnacl` [has never been
    // audited nor is ready for production](https://github.com/zeromq/libzmq/issues/3006),
    // we link against `libsodium` to enable `ZMQ_CURVE`.
    zeromq_src::Build::new()
        .with_libsodium(Some(libsodium()))
        .build();
}

fn main() {
    configure()
}
