//! Offline rendering: HealthSystem manifests in, every child object the operator would create
//! out, through the same builders the controller uses. Input is validated as admission would
//! validate it; any problem fails the whole render so nothing partial is printed.

use std::fmt;

use serde_json::Value;

use crate::api::validation::{FieldError, validate};
use crate::config::Config;
use crate::resources::Desired;

/// One input: where it came from (a path, or "<stdin>") and its text.
pub struct Source {
    /// Shown in error messages.
    pub name: String,
    /// YAML, one or more documents.
    pub text: String,
}

/// Why a render failed, naming the file, the document (counted from 1) and the field.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The text is not YAML.
    #[error("{source_name}: not valid YAML: {message}")]
    Yaml {
        /// The input's name.
        source_name: String,
        /// The parser's message.
        message: String,
    },
    /// A document is not a valid HealthSystem.
    #[error("{}", Invalid(.0))]
    Invalid(Vec<InvalidDocument>),
    /// Every input was empty (or held only empty documents and comments).
    #[error("{0}: no HealthSystem to render (only empty documents)")]
    Empty(String),
    /// The output could not be written as YAML.
    #[error("cannot write YAML: {0}")]
    Output(String),
}

/// The problems of one document.
#[derive(Debug)]
pub struct InvalidDocument {
    /// The input's name.
    pub source_name: String,
    /// The document's position in its input, from 1.
    pub document: usize,
    /// The HealthSystem's name, when it has one.
    pub name: Option<String>,
    /// Every problem found.
    pub errors: Vec<FieldError>,
}

struct Invalid<'a>(&'a [InvalidDocument]);

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, doc) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let name = doc
                .name
                .as_deref()
                .map(|n| format!(" (HealthSystem {n})"))
                .unwrap_or_default();
            write!(f, "{}: document {}{name}:", doc.source_name, doc.document)?;
            for e in &doc.errors {
                write!(f, "\n  {e}")?;
            }
        }
        Ok(())
    }
}

/// The parser's limits: a whole fleet in one file (the default budget stops at 1,024
/// documents), still bounded against inputs built to exhaust memory (nesting, aliases and
/// duplicate keys keep the parser's strict defaults).
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: 100_000,
            max_nodes: 20_000_000,
            max_events: 40_000_000,
        },
    }
}

/// Renders every HealthSystem of `sources` to multi-document YAML.
pub fn render(sources: &[Source], config: &Config) -> Result<String, RenderError> {
    let mut systems = Vec::new();
    let mut invalid = Vec::new();
    for source in sources {
        let documents: Vec<Value> =
            serde_saphyr::from_multiple_with_options(&source.text, yaml_options()).map_err(
                |e| RenderError::Yaml {
                    source_name: source.name.clone(),
                    message: e.to_string(),
                },
            )?;
        for (i, document) in documents.into_iter().enumerate() {
            if document.is_null() {
                continue;
            }
            let checked = validate(&document).and_then(|system| {
                // What the CRD cannot know: the versions this platform has images for.
                match config.images.refuse_version(system.spec.database.version) {
                    Some(refusal) => Err(vec![FieldError {
                        field: "spec.database.version".into(),
                        message: refusal
                            .trim_start_matches("spec.database.version: ")
                            .to_string(),
                    }]),
                    None => Ok(system),
                }
            });
            match checked {
                Ok(system) => systems.push(system),
                Err(errors) => invalid.push(InvalidDocument {
                    source_name: source.name.clone(),
                    document: i + 1,
                    name: document
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    errors,
                }),
            }
        }
    }
    if !invalid.is_empty() {
        return Err(RenderError::Invalid(invalid));
    }
    if systems.is_empty() {
        let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
        return Err(RenderError::Empty(names.join(", ")));
    }
    let mut out = String::new();
    for system in &systems {
        for manifest in Desired::build(system, config).manifests() {
            out.push_str("---\n");
            out.push_str(
                &serde_saphyr::to_string(&manifest)
                    .map_err(|e| RenderError::Output(e.to_string()))?,
            );
        }
    }
    Ok(out)
}
