//! Client-side admission for `render`: the checks the API server makes on a HealthSystem,
//! from the very CRD schema we publish (types, enums, bounds, required and unknown fields,
//! set-lists) and its CEL rules (evaluated by kube's CEL validator), so `render` refuses what
//! `kubectl apply` would refuse and names the field. Transition rules (immutability) need the
//! stored object and are left to the API server.

use std::fmt;
use std::sync::OnceLock;

use kube::CustomResourceExt;
use kube::core::cel;
use serde_json::{Map, Value};

use super::HealthSystem;

/// One reason a manifest is invalid, at a field path such as `spec.database.storage`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the offending field, with `[i]` for list items.
    pub field: String,
    /// What is wrong, in words a platform engineer can act on.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// The openAPIV3Schema of the generated CRD, computed once.
fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let crd = HealthSystem::crd();
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        serde_json::to_value(schema).unwrap_or(Value::Null)
    })
}

/// Validates one manifest as the API server would on create and returns the typed object.
/// Every problem found is returned, not just the first.
pub fn validate(object: &Value) -> Result<HealthSystem, Vec<FieldError>> {
    let mut normalized = object.clone();
    normalize(&mut normalized);
    let object = &normalized;
    let mut errors = Vec::new();
    let api_version = object.get("apiVersion").and_then(Value::as_str);
    let kind = object.get("kind").and_then(Value::as_str);
    if api_version != Some("sdc.gov.rs/v1alpha1") || kind != Some("HealthSystem") {
        return Err(vec![error(
            "apiVersion/kind",
            format!(
                "expected sdc.gov.rs/v1alpha1 HealthSystem, found {} {}",
                api_version.unwrap_or("(none)"),
                kind.unwrap_or("(none)")
            ),
        )]);
    }
    match object.pointer("/metadata/name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => {}
        _ => errors.push(error("metadata.name", "Required value: name is required")),
    }
    check(schema(), object, "", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let system: HealthSystem = serde_json::from_value(object.clone())
        .map_err(|e| vec![error("spec", format!("cannot be read: {e}"))])?;
    // The CRD's CEL rules, compiled once per thread (kube's `validate_cel` compiles them on
    // every call: a 470-row onboarding spent 2 s doing that).
    thread_local! {
        static CEL: (cel::Validator, cel::CompiledSchema) =
            (cel::Validator::new(), cel::compile_schema(schema()));
    }
    let typed = serde_json::to_value(&system)
        .map_err(|e| vec![error("spec", format!("cannot be read: {e}"))])?;
    CEL.with(|(validator, compiled)| validator.validate_compiled(compiled, &typed, None))
        .map_err(|errs| {
            errs.into_vec()
                .into_iter()
                .map(|e| {
                    let field = if e.field_path.is_empty() {
                        "(root)".to_string()
                    } else {
                        e.field_path
                    };
                    error(&field, e.message)
                })
                .collect::<Vec<_>>()
        })?;
    Ok(system)
}

/// What the API server does to a manifest before it validates it: a field set to null is
/// dropped (then defaulted, as if absent), and a number with no fractional part (`8080.0`, as
/// some YAML tools write) is an integer.
fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(normalize);
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *value = Value::from(f as i64);
            }
        }
        _ => {}
    }
}

/// Walks `value` against a structural schema, collecting errors worded like the API server's.
fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        && schema.get("properties").is_none()
    {
        return;
    }
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            errors.push(error(path, "Invalid value: must be an integer or a string"));
        }
        return;
    }
    let here = if path.is_empty() { "(root)" } else { path };
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => match value {
            Value::Object(map) => check_object(schema, map, path, errors),
            _ => errors.push(error(
                here,
                format!(
                    "Invalid value: must be of type object, found {}",
                    type_name(value)
                ),
            )),
        },
        Some("array") => match value {
            Value::Array(items) => check_array(schema, items, path, errors),
            _ => errors.push(error(
                here,
                format!(
                    "Invalid value: must be of type array, found {}",
                    type_name(value)
                ),
            )),
        },
        Some("string") => match value.as_str() {
            Some(s) => check_string(schema, s, here, errors),
            None => errors.push(error(
                here,
                format!(
                    "Invalid value: must be of type string, found {}",
                    type_name(value)
                ),
            )),
        },
        Some("integer") => match value.as_i64() {
            Some(n) => check_number(schema, n as f64, here, errors),
            None => errors.push(error(
                here,
                format!(
                    "Invalid value: must be of type integer, found {}",
                    type_name(value)
                ),
            )),
        },
        Some("number") => match value.as_f64() {
            Some(n) => check_number(schema, n, here, errors),
            None => errors.push(error(
                here,
                format!(
                    "Invalid value: must be of type number, found {}",
                    type_name(value)
                ),
            )),
        },
        Some("boolean") if !value.is_boolean() => errors.push(error(
            here,
            format!(
                "Invalid value: must be of type boolean, found {}",
                type_name(value)
            ),
        )),
        _ => {}
    }
}

fn check_object(
    schema: &Value,
    map: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for key in required.iter().filter_map(Value::as_str) {
            if map.get(key).is_none_or(Value::is_null) {
                errors.push(error(&join(key), "Required value"));
            }
        }
    }
    for (key, value) in map {
        // The API server drops nulls of non-nullable fields before validating.
        if value.is_null() {
            continue;
        }
        // The API server checks these itself; the CRD schema leaves them out.
        if path.is_empty() && matches!(key.as_str(), "metadata" | "apiVersion" | "kind") {
            continue;
        }
        let field = join(key);
        if let Some(sub) = properties.and_then(|p| p.get(key)) {
            check(sub, value, &field, errors);
        } else if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            check(extra, value, &field, errors);
        } else if properties.is_some()
            && schema.get("x-kubernetes-preserve-unknown-fields").is_none()
        {
            errors.push(error(&field, format!("unknown field \"{field}\"")));
        }
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    let here = if path.is_empty() { "(root)" } else { path };
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && items.len() as u64 > max
    {
        errors.push(error(
            here,
            format!("Too many: {}: must have at most {max} items", items.len()),
        ));
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        errors.push(error(
            here,
            format!("Invalid value: must have at least {min} items"),
        ));
    }
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
        for (i, item) in items.iter().enumerate() {
            if items[..i].contains(item) {
                errors.push(error(
                    &format!("{path}[{i}]"),
                    format!("Duplicate value: {item}"),
                ));
            }
        }
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{path}[{i}]"), errors);
        }
    }
}

fn check_string(schema: &Value, s: &str, field: &str, errors: &mut Vec<FieldError>) {
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| a.as_str() == Some(s))
    {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        errors.push(error(
            field,
            format!(
                "Unsupported value: \"{s}\": supported values: {}",
                list.join(", ")
            ),
        ));
    }
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        errors.push(error(
            field,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        errors.push(error(
            field,
            format!("Invalid value: should be at least {min} chars long"),
        ));
    }
}

fn check_number(schema: &Value, n: f64, field: &str, errors: &mut Vec<FieldError>) {
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        errors.push(error(
            field,
            format!("Invalid value: {n}: should be less than or equal to {max}"),
        ));
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        errors.push(error(
            field,
            format!("Invalid value: {n}: should be greater than or equal to {min}"),
        ));
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest() -> Value {
        json!({
            "apiVersion": "sdc.gov.rs/v1alpha1",
            "kind": "HealthSystem",
            "metadata": { "name": "dz-test" },
            "spec": {
                "institution": { "displayName": "Dom zdravlja Test", "registryId": "07151950", "ownership": "Public" },
                "database": { "version": "16", "storage": "50Gi" }
            }
        })
    }

    fn errors_of(value: Value) -> Vec<String> {
        validate(&value)
            .expect_err("invalid")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_minimal_manifest_is_valid_and_defaulted() {
        let system = validate(&manifest()).unwrap();
        assert_eq!(system.spec.tier, super::super::Tier::Standard);
        assert_eq!(system.spec.backup.rpo, "24h");
        assert!(system.spec.monitoring.enabled);
    }

    #[test]
    fn schema_errors_name_the_field() {
        let mut m = manifest();
        m["spec"]["tier"] = json!("Huge");
        m["spec"]["database"]["colour"] = json!("blue");
        m["spec"]["application"] = json!({ "image": "x", "port": 80 });
        let errors = errors_of(m);
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("spec.tier: Unsupported value: \"Huge\"")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("unknown field \"spec.database.colour\"")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("spec.application.port: Invalid value: 80")),
            "{errors:?}"
        );
    }

    #[test]
    fn cel_errors_name_the_field_and_carry_the_rule_message() {
        let mut m = manifest();
        m["spec"]["database"]["storage"] = json!("500Mi");
        let errors = errors_of(m);
        assert!(
            errors
                .iter()
                .any(|e| e.contains("spec.database.storage") && e.contains("between 1Gi and 16Ti")),
            "{errors:?}"
        );
    }

    #[test]
    fn missing_required_fields_are_reported() {
        let mut m = manifest();
        m["spec"]["institution"]
            .as_object_mut()
            .unwrap()
            .remove("registryId");
        let errors = errors_of(m);
        assert!(
            errors
                .iter()
                .any(|e| e == "spec.institution.registryId: Required value"),
            "{errors:?}"
        );
    }

    #[test]
    fn another_kind_is_refused() {
        let errors = errors_of(
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "x" } }),
        );
        assert!(
            errors[0].contains("expected sdc.gov.rs/v1alpha1 HealthSystem"),
            "{errors:?}"
        );
    }
}
