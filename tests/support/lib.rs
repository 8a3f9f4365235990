//! What the operator's test binaries and its fleet benchmark share: the local cluster, the
//! operator process, HealthSystems and their conditions, the real node's images and pods, the
//! object store, an admission webhook, fuzzing strategies and bounded waits. A crate of its own,
//! so each binary takes what it uses and nothing is compiled into every one.

use std::path::{Path, PathBuf};

pub mod archiving;
pub mod barman;
pub mod certificate;
pub mod chart;
pub mod cluster;
pub mod cnpg;
pub mod corpus;
pub mod fuzzing;
pub mod node;
pub mod objectstore;
pub mod operator;
pub mod pods;
pub mod restore;
pub mod settings;
pub mod systems;
pub mod wait;
pub mod webhook;

/// The repository's root (this crate is `tests/support` in it).
pub fn repo_root() -> &'static Path {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().and_then(Path::parent).unwrap_or(manifest)
}

/// The build directory of the running test binary or benchmark (`target/debug`,
/// `target/release`): Cargo puts them in its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running test binary has a path");
    let deps = exe.parent().expect("a test binary lives in a directory");
    deps.parent().unwrap_or(deps).to_path_buf()
}

/// The operator binary Cargo builds beside every integration test and benchmark.
pub fn operator_binary() -> PathBuf {
    profile_dir().join("healthsystem-operator")
}

/// A directory for the tests' own files (logs, a local cluster's state), as Cargo's
/// `CARGO_TARGET_TMPDIR` is for integration tests: `target/tmp`.
pub fn target_tmpdir() -> PathBuf {
    let dir = profile_dir()
        .parent()
        .map_or_else(|| profile_dir().join("tmp"), |target| target.join("tmp"));
    std::fs::create_dir_all(&dir).expect("target/tmp can be made");
    dir
}
