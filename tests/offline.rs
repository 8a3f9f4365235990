//! Tests of the command line that need no cluster: the committed CRD matches the code, the
//! examples render, and every manifest of the invalid corpus is refused by `render` with
//! its field named and nothing printed.

use std::process::{Command, Output};

use corpus::{expectation, root, yaml_files};
use healthsystem_test_support::corpus;

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

/// A valid file of 2,000 systems (a whole region's manifests) renders;
/// it used to fail with the YAML parser's default budget of 1,024 documents.
#[test]
fn render_handles_a_file_of_two_thousand_systems() {
    let example = std::fs::read_to_string(root().join("examples/lab-biomedica.yaml")).unwrap();
    let documents: Vec<String> = (0..2000)
        .map(|i| example.replace("name: lab-biomedica", &format!("name: lab-{i:04}")))
        .collect();
    let out = operator(&["render"], Some(&documents.join("\n---\n")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("name: hs-lab-0000"));
    assert!(yaml.contains("name: hs-lab-1999"));
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

/// Input holding only empty documents is not a successful render of
/// nothing: it says there is nothing to render and fails.
#[test]
fn render_says_so_when_there_is_nothing_to_render() {
    let out = operator(&["render"], Some("---\n---\n# only comments\n"));
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no HealthSystem"), "{stderr}");
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

/// The versions offered are the keys of `images.postgres` (written as YAML numbers or
/// strings): `render` refuses another version naming the field and prints nothing.
#[test]
fn render_refuses_a_version_the_configuration_has_no_image_for() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("operator.yaml");
    std::fs::write(
        &config,
        "images:\n  postgres:\n    15: registry/postgres:15\n    \"17\": registry/postgres:17\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let example = |name: &str| root().join("examples").join(name);
    let sixteen = example("kc-kragujevac.yaml");
    let out = operator(
        &["render", "--config", config, sixteen.to_str().unwrap()],
        None,
    );
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.database.version: PostgreSQL 16 is not offered by this platform, which has images for 15, 17 only"),
        "{stderr}"
    );
    let seventeen = example("poliklinika-medicus.yaml");
    let out = operator(
        &["render", "--config", config, seventeen.to_str().unwrap()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("registry/postgres:17"));
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
    promtool(
        &[
            "check",
            "rules",
            "charts/healthsystem-operator/files/fleet-rules.yaml",
        ],
        root(),
    );
    promtool(
        &["test", "rules", "fleet-rules.test.yaml"],
        &root().join("monitoring/tests"),
    );
}

#[test]
fn rendered_system_alert_rules_pass_their_promtool_tests() {
    system_rules_pass("system-rules.test.yaml", None);
}

/// On CloudNativePG the same alerts read its exporter's series (`cnpg_`) and its claims.
#[test]
fn rendered_system_alert_rules_on_cloudnativepg_pass_their_promtool_tests() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("operator.yaml");
    std::fs::write(
        &config,
        "database:\n  engine: CloudNativePG\n  cloudNativePG:\n    apiServer: { cidrs: [10.96.0.1/32], ports: [{ port: 443 }] }\n",
    )
    .unwrap();
    system_rules_pass(
        "system-rules-cloudnativepg.test.yaml",
        Some(config.to_str().unwrap()),
    );
}

/// With archiving on, a CloudNativePG system's rules also watch its WAL archiver.
#[test]
fn rendered_system_alert_rules_with_archiving_pass_their_promtool_tests() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("operator.yaml");
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    std::fs::write(
        &config,
        format!(
            "database:\n  engine: CloudNativePG\n  cloudNativePG:\n    apiServer: {{ cidrs: [10.96.0.1/32], ports: [{{ port: 443 }}] }}\n\
             backup:\n  recipients: [{recipient}]\n  objectStore:\n    endpoint: https://s3.sdc.gov.rs\n    bucket: healthsystem-backups\n    network: {{ cidrs: [10.220.0.0/24], ports: [{{ port: 443 }}] }}\n  archiving:\n    enabled: true\n"
        ),
    )
    .unwrap();
    system_rules_pass(
        "system-rules-archiving.test.yaml",
        Some(config.to_str().unwrap()),
    );
}

/// Renders examples/lab-biomedica.yaml (with the operator configuration `config`, if any)
/// and runs promtool's `test` of `monitoring/tests/<tests>` on its PrometheusRule.
fn system_rules_pass(tests: &str, config: Option<&str>) {
    // Exactly what the operator ships: the spec of the PrometheusRule it renders.
    let example = root().join("examples/lab-biomedica.yaml");
    let mut args = vec!["render"];
    if let Some(config) = config {
        args.extend(["--config", config]);
    }
    args.push(example.to_str().unwrap());
    let out = operator(&args, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
        root().join("monitoring/tests").join(tests),
        dir.path().join(tests),
    )
    .unwrap();
    promtool(&["check", "rules", "system-rules.yaml"], dir.path());
    promtool(&["test", "rules", tests], dir.path());
}

/// Metrics documented by the PostgreSQL exporter (prometheus-community/postgres_exporter),
/// by CloudNativePG's exporter (its default queries; `tests/cnpg/engine.rs` scrapes them from a
/// live instance) and the kubelet that the per-system dashboard uses, plus Prometheus's own
/// `up`.
const EXTERNAL_METRICS: &[&str] = &[
    "pg_up",
    "pg_stat_database_numbackends",
    "pg_settings_max_connections",
    "pg_database_size_bytes",
    "cnpg_collector_up",
    "cnpg_backends_total",
    "cnpg_pg_settings_setting",
    "cnpg_pg_database_size_bytes",
    "kubelet_volume_stats_available_bytes",
    "kubelet_volume_stats_capacity_bytes",
    "up",
];

/// Every metric name the operator exposes, from a registry with a system in it.
fn operator_metric_names() -> std::collections::BTreeSet<String> {
    use healthsystem_operator::api::validation::validate;
    use healthsystem_operator::controller::status::{Observed, evaluate};
    use healthsystem_operator::metrics::Metrics;
    let metrics = Metrics::new();
    let mut system = validate(&corpus::read_manifest(
        &root().join("examples/lab-biomedica.yaml"),
    ))
    .unwrap();
    // As the API server sets it.
    system.metadata.creation_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let observed = Observed {
        last_success: Some(k8s_openapi::jiff::Timestamp::now()),
        // A system being migrated, so the migration series exist too.
        migration: Some(
            serde_json::from_value(serde_json::json!({
                "phase": "Importing", "attempt": 1, "reason": "Importing",
                "lastTransitionTime": "2026-11-29T10:00:00Z",
            }))
            .unwrap(),
        ),
        // A system whose backups were drilled, so the drill series exist too.
        drill: Some(
            serde_json::from_value(serde_json::json!({
                "time": "2026-11-29T10:00:00Z", "backup": "20261129T095900Z",
                "durationSeconds": 40, "tables": 2, "rows": 10, "result": "Passed",
                "message": "restored", "job": "drill-x",
            }))
            .unwrap(),
        ),
        drill_success: "2026-11-29T10:00:00Z".parse().ok(),
        // And whose archive a physical drill proved.
        physical_drill: Some(
            serde_json::from_value(serde_json::json!({
                "time": "2026-11-29T11:00:00Z", "backup": "archive",
                "durationSeconds": 48, "tables": 2, "rows": 10, "result": "Passed",
                "message": "recovered", "job": "pdrill-x-check",
            }))
            .unwrap(),
        ),
        physical_drill_success: "2026-11-29T11:00:00Z".parse().ok(),
        // A system whose backup runs, whose last one is in the store, and which archives.
        backup_running_since: Some(k8s_openapi::jiff::Timestamp::now()),
        last_backup: Some(
            serde_json::from_value(serde_json::json!({
                "id": "20261129T095900Z", "finishedAt": "2026-11-29T10:00:00Z",
                "size": 100, "tables": 2, "rows": 10, "durationSeconds": 60,
            }))
            .unwrap(),
        ),
        archive: Some(
            serde_json::from_value(serde_json::json!({
                "destination": "s3://b/hs-lab-biomedica/archive",
                "firstRecoverabilityPoint": "2026-11-29T10:00:00Z", "walArchiving": true,
            }))
            .unwrap(),
        ),
        ..Observed::default()
    };
    let status = evaluate(&system, &observed, k8s_openapi::jiff::Timestamp::now());
    metrics.set_system(&system, &status, 3600.0);
    metrics.errors.with_label_values(&["api_error"]).inc();
    metrics.writes.with_label_values(&["Namespace"]).inc();
    metrics
        .render()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
        .collect()
}

fn selector_names(expr: &promql_parser::parser::Expr, out: &mut Vec<String>) {
    use promql_parser::parser::Expr;
    match expr {
        Expr::Aggregate(e) => {
            selector_names(&e.expr, out);
            if let Some(p) = &e.param {
                selector_names(p, out);
            }
        }
        Expr::Unary(e) => selector_names(&e.expr, out),
        Expr::Binary(e) => {
            selector_names(&e.lhs, out);
            selector_names(&e.rhs, out);
        }
        Expr::Paren(e) => selector_names(&e.expr, out),
        Expr::Subquery(e) => selector_names(&e.expr, out),
        Expr::VectorSelector(vs) => out.extend(vs.name.clone()),
        Expr::MatrixSelector(ms) => out.extend(ms.vs.name.clone()),
        Expr::Call(call) => call.args.args.iter().for_each(|a| selector_names(a, out)),
        _ => {}
    }
}

/// The metric names `query` selects (it must parse and select at least one); `context`
/// says where it comes from.
fn selected_metrics(query: &str, context: &str) -> Vec<String> {
    let expr =
        promql_parser::parser::parse(query).unwrap_or_else(|e| panic!("{context}: {query}: {e}"));
    let mut names = Vec::new();
    selector_names(&expr, &mut names);
    assert!(!names.is_empty(), "{context}: {query} selects no metric");
    names
}

/// Every PromQL expression in a dashboard: panel targets and query variables.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<String> {
    let mut queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(String::from))
        .collect();
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        // label_values(SELECTOR, label): the selector is PromQL.
        if let Some(inner) = variable["query"]
            .as_str()
            .and_then(|q| q.strip_prefix("label_values("))
            .and_then(|q| q.rsplit_once(','))
        {
            queries.push(inner.0.to_string());
        }
    }
    queries
}

#[test]
fn every_dashboard_query_parses_and_uses_real_metrics() {
    let known = operator_metric_names();
    for name in [
        "healthsystem_ready",
        "healthsystem_info",
        "healthsystem_operator_reconcile_duration_seconds_bucket",
        "process_resident_memory_bytes",
    ] {
        assert!(known.contains(name), "{name} not exposed: {known:?}");
    }
    let dashboards =
        std::fs::read_dir(root().join("charts/healthsystem-operator/files/dashboards")).unwrap();
    let mut checked = 0;
    for entry in dashboards {
        let path = entry.unwrap().path();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for query in dashboard_queries(&dashboard) {
            // Grafana's variables, as Grafana substitutes them.
            let promql = query
                .replace("$__rate_interval", "5m")
                .replace("$healthsystem", "dz-x")
                .replace("$namespace", "hs-dz-x");
            for name in selected_metrics(&promql, &path.display().to_string()) {
                assert!(
                    known.contains(&name) || EXTERNAL_METRICS.contains(&name.as_str()),
                    "{}: {query} uses {name}, which neither the operator nor the exporter exposes",
                    path.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} queries checked");
}

/// The fleet's alert rules select only what the operator exposes (and Prometheus's `up`): a
/// rule on a name nothing exposes never fires, and promtool's tests feed it series anyway.
#[test]
fn every_fleet_alert_rule_uses_real_metrics() {
    let known = operator_metric_names();
    let rules =
        corpus::read_manifest(&root().join("charts/healthsystem-operator/files/fleet-rules.yaml"));
    let mut checked = 0;
    for rule in rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
    {
        let query = rule["expr"].as_str().unwrap();
        for name in selected_metrics(query, &format!("alert {}", rule["alert"])) {
            assert!(
                known.contains(&name) || name == "up",
                "alert {}: {query} uses {name}, which the operator does not expose",
                rule["alert"]
            );
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} rules checked");
}

/// The inventory of 470 systems (`../shared/inventory/`, copied as test data).
fn inventory() -> std::path::PathBuf {
    root().join("tests/data/sdc-inventory.csv")
}

/// Runs `onboard` on `file` into a fresh directory: (output, the files written by name).
fn onboard(file: &std::path::Path) -> (Output, std::collections::BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let out = operator(
        &[
            "onboard",
            file.to_str().unwrap(),
            "--out",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    let files = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    (out, files)
}

#[test]
fn onboard_makes_a_valid_manifest_for_every_postgresql_row_and_reports_every_other() {
    let csv = std::fs::read_to_string(inventory()).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    let postgres = rows.iter().filter(|r| r.contains(",postgresql,")).count();
    let (out, files) = onboard(&inventory());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Two rows of the inventory share an id: both are refused, so the run fails.
    assert!(!out.status.success(), "{stderr}");
    let collisions: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(": system_id: ") && l.contains("is also the id of line"))
        .collect();
    assert_eq!(collisions.len(), 2, "{stderr}");
    let conversions = stderr
        .lines()
        .filter(|l| l.contains(": db_engine: ") && l.contains("needs a conversion"))
        .count();
    assert_eq!(conversions, rows.len() - postgres, "{stderr}");
    let prefix = format!("{}:", inventory().display());
    let colliding_postgres = collisions.iter().filter(|l| {
        let rest = l.strip_prefix(&prefix).unwrap();
        let line: usize = rest[..rest.find(' ').unwrap()].parse().unwrap();
        rows[line - 2].contains(",postgresql,")
    });
    assert_eq!(files.len(), postgres - colliding_postgres.count());
    assert!(stderr.contains("total"), "a summary: {stderr}");
    // Every manifest written is one admission accepts: `render` checks them the same way.
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all.yaml");
    std::fs::write(&all, files.values().cloned().collect::<String>()).unwrap();
    let rendered = operator(&["render", all.to_str().unwrap()], None);
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
}

#[test]
fn onboard_reads_the_inventory_as_a_serbian_spreadsheet_exports_it() {
    // BOM, CRLF, ';' between fields and decimal commas: the same manifests.
    let csv = std::fs::read_to_string(inventory()).unwrap();
    let mut exported = String::from("\u{feff}");
    for line in csv.lines() {
        let fields: Vec<String> = line
            .split(',')
            .enumerate()
            .map(|(i, f)| {
                if i == 10 {
                    f.replace('.', ",")
                } else {
                    f.to_string()
                }
            })
            .map(|f| {
                if f.contains([',', ';']) {
                    format!("\"{f}\"")
                } else {
                    f
                }
            })
            .collect();
        exported.push_str(&fields.join(";"));
        exported.push_str("\r\n");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory-sr.csv");
    std::fs::write(&path, exported).unwrap();
    let (_, from_export) = onboard(&path);
    let (_, from_original) = onboard(&inventory());
    assert!(!from_original.is_empty());
    assert_eq!(
        from_export.keys().collect::<Vec<_>>(),
        from_original.keys().collect::<Vec<_>>()
    );
    let differing: Vec<&String> = from_original
        .iter()
        .filter(|(name, text)| from_export[*name] != **text)
        .map(|(name, _)| name)
        .collect();
    assert!(differing.is_empty(), "differ: {differing:?}");
}
