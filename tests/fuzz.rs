//! Issue 16, fuzzed input (property-based, proptest): `render` never panics, whatever it is
//! given (arbitrary bytes, YAML-like noise, deep nesting, huge documents), and answers in
//! bounded time; every manifest admission's schema and CEL accept (examples with fields
//! replaced by arbitrary values) builds its children without panic, and every one refused
//! names a field. Runs without a cluster; `PROPTEST_CASES=10000 cargo test --test fuzz` for a
//! longer run.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::Value;

use healthsystem_operator::api::validation::validate;
use healthsystem_operator::config::Config;
use healthsystem_operator::render::{Source, render};
use healthsystem_operator::resources::Desired;

fn render_text(text: String) -> Result<String, String> {
    render(
        &[Source {
            name: "fuzz.yaml".into(),
            text,
        }],
        &Config::default(),
    )
    .map_err(|e| e.to_string())
}

/// Every leaf path of a JSON value (object keys and array indexes), as JSON pointers.
fn pointers(value: &Value, prefix: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                pointers(
                    v,
                    format!("{prefix}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{prefix}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(prefix);
}

fn examples() -> Vec<Value> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut paths: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| serde_saphyr::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(|f| serde_json::json!(f)),
        ".{0,40}".prop_map(Value::String),
        prop::sample::select(vec![
            "",
            "0",
            "-1",
            "1Gi",
            "16Ti",
            "17Ti",
            "500m",
            "Standard",
            "PostgreSQL",
            "15",
            "Retain",
            "Delete",
            "0 2 * * *",
            "61 * * * *",
            "24h",
            "0h",
            "kube-system",
            "system:masters",
            "10.0.0.0/8",
            "not a cidr",
            "public.patients",
            "*",
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn render_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = render_text(String::from_utf8_lossy(&bytes).into_owned());
    }

    #[test]
    fn render_never_panics_on_yaml_like_noise(text in "([a-z]{0,6}(: |- |\n|  |\\{|\\}|\\[|\\]|,|&a |\\*a|!!str |---\n|'|\"|#|\\|)){0,80}") {
        let _ = render_text(text);
    }

    #[test]
    fn an_example_with_any_field_replaced_is_built_or_refused_naming_a_field(
        example in 0usize..3,
        pick in any::<prop::sample::Index>(),
        value in json_value(),
    ) {
        let mut manifest = examples()[example].clone();
        let mut leaves = Vec::new();
        pointers(&manifest, String::new(), &mut leaves);
        leaves.retain(|p| p.starts_with("/spec") || p.starts_with("/metadata"));
        let pointer = pick.get(&leaves).clone();
        *manifest.pointer_mut(&pointer).unwrap() = value;
        match validate(&manifest) {
            Ok(system) => {
                let desired = Desired::build(&system, &Config::default());
                prop_assert!(!desired.manifests().is_empty());
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for error in errors {
                    prop_assert!(!error.field.is_empty() && !error.message.is_empty(), "{error:?}");
                }
            }
        }
    }
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    for depth in [1_000, 100_000] {
        for (open, close) in [("[", "]"), ("{a: ", "}"), ("- ", "")] {
            let text = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            let start = Instant::now();
            assert!(render_text(text).is_err(), "depth {depth} of {open}");
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "depth {depth} of {open}"
            );
        }
    }
}

#[test]
fn huge_documents_are_refused_in_bounded_time() {
    let start = Instant::now();
    let long_string = format!("apiVersion: {}\n", "x".repeat(50 << 20));
    assert!(render_text(long_string).is_err());
    let many_keys: String = (0..200_000).map(|i| format!("k{i}: {i}\n")).collect();
    assert!(render_text(many_keys).is_err());
    let aliases = "a: &a [1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f]\n";
    assert!(render_text(aliases.into()).is_err());
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
}
