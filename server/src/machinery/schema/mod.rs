//! CustomResourceDefinition schemas: what kube-apiserver's apiextensions does with a CRD's
//! `openAPIV3Schema`, as pure functions over `serde_json::Value`s.
//!
//! A schema is read once into a [`Structural`] (patterns and CEL rules compiled) and shared
//! behind an `Arc`; each custom resource written (create, update, patch, and the status
//! subresource alike) is then, in kube-apiserver's order, [pruned](Structural::prune),
//! [defaulted](Structural::apply_defaults) and [validated](Structural::validate).
//! [`Structural::check_structural`] gives the errors a CRD write gets for a schema that is not
//! structural or otherwise unusable; a schema that passes it always [parses](Structural::parse).
//!
//! The root's `metadata`, `apiVersion` and `kind` are the server's: they are never pruned, and
//! only `metadata.name`/`generateName` are checked here, against what the schema says of them.
//! Errors about the object as a whole carry the field `<nil>`, as kube-apiserver's do.
//!
//! CEL rules run on the `cel` crate, which has no type checker and no cost metering: rules are
//! checked against the schema when it is read (undeclared names and fields), and each run is
//! charged an estimated cost against kube-apiserver's per-object budget (see `cel.rs`).

mod cel;
mod check;
mod default;
pub mod field_error;
mod format;
mod kube_lists;
mod prune;
mod structural;
mod validate;

use serde_json::Value;

pub use field_error::FieldError;
pub use structural::Structural;

/// Where the schema sits in the CRD when none is given; `parse`'s errors are relative to it.
const DEFAULT_PREFIX: &str = "openAPIV3Schema";

/// The error kube-apiserver adds instead of running CEL rules on an object whose fields have
/// the wrong types: the rules would only fail confusingly.
const RULES_SKIPPED: &str =
    "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

fn read(schema: &Value, path_prefix: &str) -> (Structural, Vec<FieldError>) {
    let mut errs = Vec::new();
    let node = structural::parse_node(schema, path_prefix, 0, &mut errs);
    if errs.is_empty() {
        check::check(&node, path_prefix, &mut errs);
    }
    (node, errs)
}

impl Structural {
    /// Reads a CRD version's `openAPIV3Schema`. Fails with [`Structural::check_structural`]'s
    /// errors (paths under `openAPIV3Schema`) if the schema is not usable.
    pub fn parse(schema: &Value) -> Result<Structural, Vec<FieldError>> {
        let (node, errs) = read(schema, DEFAULT_PREFIX);
        if errs.is_empty() {
            Ok(node)
        } else {
            Err(errs)
        }
    }

    /// The errors for a CRD whose `openAPIV3Schema` is `schema`, found at `path_prefix` (e.g.
    /// `spec.versions[0].schema.openAPIV3Schema`); empty when the schema is usable. Sorted, as
    /// kube-apiserver sorts them.
    pub fn check_structural(schema: &Value, path_prefix: &str) -> Vec<FieldError> {
        let (_, mut errs) = read(schema, path_prefix);
        errs.sort_by_key(ToString::to_string);
        errs
    }

    /// Removes the fields the schema does not declare from `object` (a whole custom resource),
    /// returning their paths, e.g. `spec.foo`, for `fieldValidation` warnings or errors.
    pub fn prune(&self, object: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        prune::prune(self, object, "", true, &mut pruned);
        pruned
    }

    /// Fills in the schema's `default`s; call after [`Structural::prune`].
    pub fn apply_defaults(&self, object: &mut Value) {
        default::apply(self, object);
    }

    /// Validates a whole custom resource against the schema and its CEL rules. `old` is the
    /// stored object on an update (transition rules run only then).
    pub fn validate(&self, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        validate::validate(self, object, "", &mut errs);
        if let (Some(meta_schema), Some(meta)) =
            (self.properties.get("metadata"), object.get("metadata"))
        {
            // The schema may restrict these two, and only these two, metadata fields.
            for name in ["name", "generateName"] {
                if let (Some(s), Some(v)) = (meta_schema.properties.get(name), meta.get(name)) {
                    validate::validate(s, v, &format!("metadata.{name}"), &mut errs);
                }
            }
        }
        if !self.has_rules {
            return errs;
        }
        if errs.iter().any(|e| BLOCKING.contains(&e.kind)) {
            errs.push(FieldError::invalid("<nil>", &Value::Null, RULES_SKIPPED));
            return errs;
        }
        if self.validations.is_empty() {
            cel::validate(self, object, old, "", &mut errs);
        } else {
            // Rules at the root see only the metadata fields a schema may describe.
            let object = with_visible_metadata(object);
            let old = old.map(with_visible_metadata);
            cel::validate(self, &object, old.as_ref(), "", &mut errs);
        }
        for e in &mut errs {
            // kube-apiserver's path for the object itself.
            if e.field.is_empty() {
                e.field = "<nil>".to_string();
            }
        }
        errs
    }
}

/// Errors after which the object is not in the shape its rules were written for.
const BLOCKING: [&str; 5] = [
    field_error::NOT_SUPPORTED,
    field_error::REQUIRED,
    field_error::TOO_LONG,
    field_error::TOO_MANY,
    field_error::TYPE_INVALID,
];

fn with_visible_metadata(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(Value::Object(meta)) = object.get_mut("metadata") {
        meta.retain(|k, _| k == "name" || k == "generateName");
    }
    object
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The order the server uses: prune, default, validate.
    #[test]
    fn write_path_end_to_end() {
        let s = match Structural::parse(&json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "required": ["image"],
            "x-kubernetes-validations": [{"rule": "self.replicas <= 5", "message": "at most 5"}],
            "properties": {
                "image": {"type": "string"},
                "replicas": {"type": "integer", "default": 1},
            },
        }}})) {
            Ok(s) => s,
            Err(e) => panic!("{e:?}"),
        };
        let mut obj = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "x"}, "spec": {"image": "i", "bogus": 1}});
        assert_eq!(s.prune(&mut obj), vec!["spec.bogus"]);
        s.apply_defaults(&mut obj);
        assert_eq!(obj["spec"], json!({"image": "i", "replicas": 1}));
        assert!(s.validate(&obj, None).is_empty());

        obj["spec"]["replicas"] = json!(9);
        let errs: Vec<String> = s
            .validate(&obj, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs, vec!["spec: Invalid value: at most 5"]);

        obj["spec"]["replicas"] = json!("nine");
        let errs = s.validate(&obj, None);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].kind, "FieldValueTypeInvalid");
        assert_eq!(
            errs[1].to_string(),
            format!("<nil>: Invalid value: null: {RULES_SKIPPED}")
        );
    }

    #[test]
    fn root_rules_see_name_but_not_labels() {
        let s = match Structural::parse(&json!({
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.metadata.name.startsWith('a')", "message": "name"},
                {"rule": "!has(self.metadata.labels)", "message": "labels"},
            ],
            "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 3}}}},
        })) {
            Ok(s) => s,
            Err(e) => panic!("{e:?}"),
        };
        let obj = json!({"metadata": {"name": "bcde", "labels": {"x": "y"}}});
        let errs: Vec<String> = s
            .validate(&obj, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs, vec!["metadata.name: Too long: may not be more than 3 bytes", "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"]);
        let obj = json!({"metadata": {"name": "bcd", "labels": {"x": "y"}}});
        let errs: Vec<String> = s
            .validate(&obj, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs, vec!["<nil>: Invalid value: name"]);
    }

    #[test]
    fn parse_reports_paths_under_openapiv3schema() {
        let errs = match Structural::parse(&json!({"type": "object", "properties": {"spec": {}}})) {
            Ok(_) => panic!("a property without a type was accepted"),
            Err(e) => e,
        };
        assert_eq!(errs[0].field, "openAPIV3Schema.properties[spec].type");
        assert_eq!(errs[0].kind, "FieldValueRequired");
    }
}
