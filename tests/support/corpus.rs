//! The manifests the tests feed in: `examples/` (valid) and `tests/invalid/` (each with the
//! field and the message that both `render` and the API server must report).
// Each test binary uses only some of these helpers.

use std::path::{Path, PathBuf};

pub fn root() -> &'static Path {
    crate::repo_root()
}

/// The `.yaml` files of a directory of the repository, sorted.
pub fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// What must be said about an invalid manifest, from its `# field:` and `# message:` lines.
pub struct Expectation {
    pub field: String,
    pub message: String,
}

pub fn expectation(path: &Path) -> Expectation {
    let text = std::fs::read_to_string(path).unwrap();
    let header = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
            .unwrap_or_else(|| panic!("{} has no '# {key}:' line", path.display()))
            .to_string()
    };
    Expectation {
        field: header("field"),
        message: header("message"),
    }
}

/// The single YAML document of a manifest file as JSON.
pub fn read_manifest(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
