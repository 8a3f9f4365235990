//! Tests of the command line that need no cluster: the committed CRD matches the code, the
//! examples render, and every manifest of the invalid corpus is refused by `render` with
//! its field named and nothing printed.

use std::process::{Command, Output};

#[path = "support/corpus.rs"]
mod corpus;
use corpus::{expectation, root, yaml_files};

/// Runs the operator binary with `args`, feeding `stdin`.
fn operator(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_healthsystem-operator"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn committed_crd_matches_the_code() {
    let out = operator(&["crd"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).unwrap();
    let committed =
        std::fs::read_to_string(root().join("crds/healthsystem.yaml")).unwrap_or_default();
    assert!(
        generated == committed,
        "crds/healthsystem.yaml is stale: run `cargo run -- crd > crds/healthsystem.yaml` and commit it"
    );
}

#[test]
fn every_example_renders() {
    let examples = yaml_files("examples");
    assert!(examples.len() >= 3, "at least three examples");
    for example in examples {
        let out = operator(&["render", example.to_str().unwrap()], None);
        assert!(
            out.status.success(),
            "{}: {}",
            example.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let yaml = String::from_utf8(out.stdout).unwrap();
        assert!(yaml.contains("kind: Namespace"), "{yaml}");
        assert!(yaml.contains("kind: NetworkPolicy"), "{yaml}");
    }
}

#[test]
fn render_reads_several_documents_from_stdin() {
    let a = std::fs::read_to_string(root().join("examples/lab-biomedica.yaml")).unwrap();
    let b = std::fs::read_to_string(root().join("examples/poliklinika-medicus.yaml")).unwrap();
    let out = operator(&["render"], Some(&format!("{a}\n---\n{b}")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("name: hs-lab-biomedica"));
    assert!(yaml.contains("name: hs-poliklinika-medicus"));
}

#[test]
fn render_refuses_every_invalid_manifest_naming_the_field() {
    let corpus = yaml_files("tests/invalid");
    assert!(
        corpus.len() >= 30,
        "the invalid corpus has at least 30 manifests"
    );
    for path in corpus {
        let expected = expectation(&path);
        let out = operator(&["render", path.to_str().unwrap()], None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{} was accepted", path.display());
        assert!(
            out.stdout.is_empty(),
            "{} printed output: {}",
            path.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains("document 1"),
            "{stderr}"
        );
        assert!(
            stderr.contains(&expected.field),
            "{}: expected field {}: {stderr}",
            path.display(),
            expected.field
        );
        assert!(
            stderr.contains(&expected.message),
            "{}: expected {:?}: {stderr}",
            path.display(),
            expected.message
        );
    }
}

#[test]
fn one_bad_document_prints_nothing_for_the_good_ones() {
    let good = std::fs::read_to_string(root().join("examples/lab-biomedica.yaml")).unwrap();
    let bad = std::fs::read_to_string(root().join("tests/invalid/10-tier-unknown.yaml")).unwrap();
    let out = operator(&["render", "-"], Some(&format!("{good}\n---\n{bad}")));
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("<stdin>: document 2 (HealthSystem invalid-10)"),
        "{stderr}"
    );
}

#[test]
fn render_reports_yaml_syntax_errors_with_the_file() {
    let out = operator(&["render"], Some("spec: [unclosed"));
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("<stdin>: not valid YAML"));
}

#[test]
fn a_bad_configuration_stops_the_operator_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("operator.yaml");
    std::fs::write(&path, "tiers:\n  small:\n    cpu: lots\n").unwrap();
    let out = operator(&["run", "--config", path.to_str().unwrap()], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A partial tier is refused by its missing keys; a typo'd value by its key.
    assert!(
        stderr.contains("configuration") && stderr.contains("tiers"),
        "{stderr}"
    );

    std::fs::write(&path, "monitoring:\n  namespace: Not_A_Namespace\n").unwrap();
    let out = operator(&["run", "--config", path.to_str().unwrap()], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("monitoring.namespace"), "{stderr}");
}

/// Runs promtool (Debian package `prometheus`; `.ci/run` installs it) and fails on any
/// complaint.
fn promtool(args: &[&str], dir: &std::path::Path) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool is installed (Debian package prometheus; bash .ci/run installs it)");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fleet_alert_rules_pass_their_promtool_tests() {
    let dir = root().join("monitoring");
    promtool(&["check", "rules", "fleet-rules.yaml"], &dir);
    promtool(&["test", "rules", "tests/fleet-rules.test.yaml"], &dir);
}

#[test]
fn rendered_system_alert_rules_pass_their_promtool_tests() {
    // Exactly what the operator ships: the spec of the PrometheusRule it renders.
    let out = operator(
        &[
            "render",
            root().join("examples/lab-biomedica.yaml").to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success());
    let objects: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let rule = objects
        .iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("a PrometheusRule is rendered");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("system-rules.yaml"),
        serde_saphyr::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        root().join("monitoring/tests/system-rules.test.yaml"),
        dir.path().join("system-rules.test.yaml"),
    )
    .unwrap();
    promtool(&["check", "rules", "system-rules.yaml"], dir.path());
    promtool(&["test", "rules", "system-rules.test.yaml"], dir.path());
}
