//! Bounds added to schemas of Kubernetes types the spec embeds (container resources, label
//! selectors), whose maps, lists and strings are unbounded: the API server estimates the
//! cost of a CEL rule over an unbounded one at the size limit of a whole request and refuses
//! the CRD. The bounds are far above what a system needs.

/// Sets `key` to `value` on the subschema at `pointer`, if there is one.
fn set(schema: &mut schemars::Schema, pointer: &str, key: &str, value: u64) {
    if let Some(object) = schema.pointer_mut(pointer).and_then(|s| s.as_object_mut()) {
        object.insert(key.into(), value.into());
    }
}

/// Container resources: at most 3 requests and 3 limits (cpu, memory, ephemeral-storage),
/// each of at most 64 characters.
pub fn resources(schema: &mut schemars::Schema) {
    for map in ["limits", "requests"] {
        set(schema, &format!("/properties/{map}"), "maxProperties", 3);
        set(
            schema,
            &format!("/properties/{map}/additionalProperties"),
            "maxLength",
            64,
        );
    }
}

/// A label selector: at most 16 labels and 16 expressions of 16 values each, keys of at most
/// 317 characters (a 253-character prefix, '/', a 63-character name), values of at most 63.
pub fn selector(schema: &mut schemars::Schema) {
    set(schema, "/properties/matchLabels", "maxProperties", 16);
    set(
        schema,
        "/properties/matchLabels/additionalProperties",
        "maxLength",
        63,
    );
    set(schema, "/properties/matchExpressions", "maxItems", 16);
    let expression = "/properties/matchExpressions/items/properties";
    set(schema, &format!("{expression}/key"), "maxLength", 317);
    set(schema, &format!("{expression}/operator"), "maxLength", 12);
    set(schema, &format!("{expression}/values"), "maxItems", 16);
    set(
        schema,
        &format!("{expression}/values/items"),
        "maxLength",
        63,
    );
}
