//! The body of a server-side apply. The API server reads it as YAML, and YAML refuses some
//! characters that JSON carries raw: DEL and the C1 controls are not printable in YAML, and
//! NEL, LS and PS are line breaks that a quoted YAML string folds into spaces. A spec with
//! one of them (an admin's name, a display name) built a child whose every apply failed
//! ("yaml: control characters are not allowed"). They are sent escaped (`\u007f`): the same
//! string, in a form both JSON and YAML read as it is.

use std::io;

use kube::api::Patch;
use serde::Serialize;
use serde::ser::Error as _;
use serde_json::value::RawValue;

/// `object` as a server-side apply patch, escaped as [`apply_body`] says.
pub fn apply_patch(object: &impl Serialize) -> kube::Result<Patch<Box<RawValue>>> {
    Ok(Patch::Apply(
        apply_body(object).map_err(kube::Error::SerdeError)?,
    ))
}

/// `object` as the body of a server-side apply.
pub fn apply_body(object: &impl Serialize) -> serde_json::Result<Box<RawValue>> {
    let mut bytes = Vec::new();
    object.serialize(&mut serde_json::Serializer::with_formatter(
        &mut bytes, YamlSafe,
    ))?;
    RawValue::from_string(String::from_utf8(bytes).map_err(serde_json::Error::custom)?)
}

/// Whether YAML cannot carry `c` raw inside a double-quoted string (JSON already escapes
/// the C0 controls).
fn escaped_for_yaml(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
    )
}

/// serde_json's compact output with those characters escaped.
struct YamlSafe;

impl serde_json::ser::Formatter for YamlSafe {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if escaped_for_yaml(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", u32::from(c))?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Escaped where YAML needs it, and still the same value for a JSON reader.
    #[test]
    fn yaml_unsafe_characters_are_escaped_and_the_value_is_unchanged() {
        let object = json!({ "subjects": [{ "name": "dba\u{7f}\u{85}\u{9f}\u{2028}x" }],
                             "k\u{80}": "é – ok\t\n" });
        let body = apply_body(&object).unwrap();
        let text = body.get();
        assert!(text.contains(r"dba\u007f\u0085\u009f\u2028x"), "{text}");
        assert!(text.contains(r"k\u0080"), "{text}");
        assert!(text.contains("é – ok"), "other characters stay raw: {text}");
        assert!(!text.chars().any(escaped_for_yaml), "{text}");
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), object);
    }

    /// What needs no escape is sent exactly as serde_json writes it.
    #[test]
    fn a_plain_manifest_is_sent_as_compact_json() {
        let object = json!({ "apiVersion": "v1", "kind": "ServiceAccount",
                             "metadata": { "name": "app", "labels": { "a": "b" } } });
        assert_eq!(
            apply_body(&object).unwrap().get(),
            serde_json::to_string(&object).unwrap()
        );
    }
}
