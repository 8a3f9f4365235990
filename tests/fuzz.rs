//! Fuzzed input (property-based, proptest): `render` never panics, whatever it is
//! given (arbitrary bytes, YAML-like noise, deep nesting, huge documents), and answers in
//! bounded time; every manifest admission's schema and CEL accept (examples with fields
//! replaced by arbitrary values) builds its children without panic, and every one refused
//! names a field. Runs without a cluster; `PROPTEST_CASES=10000 cargo test --test fuzz` for a
//! longer run.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use healthsystem_test_support::fuzzing;

use fuzzing::{examples, json_value, with_a_leaf_replaced};
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
        let (manifest, _) = with_a_leaf_replaced(&examples()[example], &pick, |_| value);
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
