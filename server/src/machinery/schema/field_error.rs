//! Field errors in the shape kube-apiserver's `field.Error` prints them, so a client (kubectl,
//! controller tests matching on text) sees the same `StatusCause`s from Trellis.

use std::fmt;

use serde_json::Value;

/// One problem with one field. `kind` is the `StatusCause.type`; `message` is the whole
/// `field.Error.ErrorBody()` text (without the field), as kube-apiserver puts it in a cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, ...
    pub kind: &'static str,
    /// The path, e.g. `spec.replicas` or `spec.versions[0].schema.openAPIV3Schema.type`.
    pub field: String,
    /// e.g. `Invalid value: 11: spec.replicas in body should be less than or equal to 10`.
    pub message: String,
}

impl fmt::Display for FieldError {
    /// `field: message`, as `field.Error.Error()`; an error about the whole object has no field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

pub const INVALID: &str = "FieldValueInvalid";
pub const TYPE_INVALID: &str = "FieldValueTypeInvalid";
pub const REQUIRED: &str = "FieldValueRequired";
pub const NOT_SUPPORTED: &str = "FieldValueNotSupported";
pub const DUPLICATE: &str = "FieldValueDuplicate";
pub const FORBIDDEN: &str = "FieldValueForbidden";
pub const TOO_LONG: &str = "FieldValueTooLong";
pub const TOO_MANY: &str = "FieldValueTooMany";

/// A bad value as `field.Error` prints it: strings quoted, scalars bare, the rest as JSON.
pub fn show(value: &Value) -> String {
    match value {
        Value::String(s) => quote(s),
        other => other.to_string(),
    }
}

/// Go's `%q`, near enough: JSON string escaping is what `strconv.Quote` gives for the
/// printable strings these messages carry.
pub fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}

impl From<FieldError> for crate::machinery::status::StatusCause {
    fn from(e: FieldError) -> Self {
        crate::machinery::status::StatusCause {
            kind: e.kind.into(),
            message: e.message,
            field: e.field,
        }
    }
}

impl FieldError {
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> FieldError {
        FieldError {
            kind: INVALID,
            field: field.into(),
            message: with_detail(format!("Invalid value: {}", show(value)), detail),
        }
    }

    /// An invalid object or list: kube-apiserver leaves the value out of the message.
    pub fn invalid_omitting_value(field: impl Into<String>, detail: &str) -> FieldError {
        FieldError {
            kind: INVALID,
            field: field.into(),
            message: with_detail("Invalid value".to_string(), detail),
        }
    }

    pub fn type_invalid(field: impl Into<String>, value: &Value, detail: &str) -> FieldError {
        FieldError {
            kind: TYPE_INVALID,
            field: field.into(),
            message: with_detail(format!("Invalid value: {}", show(value)), detail),
        }
    }

    pub fn required(field: impl Into<String>, detail: &str) -> FieldError {
        FieldError {
            kind: REQUIRED,
            field: field.into(),
            message: with_detail("Required value".to_string(), detail),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: &str) -> FieldError {
        FieldError {
            kind: FORBIDDEN,
            field: field.into(),
            message: with_detail("Forbidden".to_string(), detail),
        }
    }

    /// `None` leaves the value out, as for objects and lists.
    pub fn duplicate(field: impl Into<String>, value: Option<&Value>) -> FieldError {
        FieldError {
            kind: DUPLICATE,
            field: field.into(),
            message: match value {
                Some(v) => format!("Duplicate value: {}", show(v)),
                None => "Duplicate value".to_string(),
            },
        }
    }

    /// `supported` are shown quoted, as kube-apiserver does even for numbers.
    pub fn not_supported(
        field: impl Into<String>,
        value: &Value,
        supported: &[String],
    ) -> FieldError {
        let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        let detail = if list.is_empty() {
            String::new()
        } else {
            format!("supported values: {}", list.join(", "))
        };
        FieldError {
            kind: NOT_SUPPORTED,
            field: field.into(),
            message: with_detail(format!("Unsupported value: {}", show(value)), &detail),
        }
    }

    /// The value itself is never echoed: it may be huge.
    pub fn too_long(field: impl Into<String>, max: u64) -> FieldError {
        let unit = if max == 1 { "byte" } else { "bytes" };
        FieldError {
            kind: TOO_LONG,
            field: field.into(),
            message: format!("Too long: may not be more than {max} {unit}"),
        }
    }

    pub fn too_many(field: impl Into<String>, actual: usize, max: u64) -> FieldError {
        let unit = if max == 1 { "item" } else { "items" };
        FieldError {
            kind: TOO_MANY,
            field: field.into(),
            message: format!("Too many: {actual}: must have at most {max} {unit}"),
        }
    }
}

/// Field paths as `field.Path` prints them: `a.b`, `a[0]`, `a[key]`.
pub fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

pub fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn messages_read_like_kube_apiserver() {
        let e = FieldError::invalid("spec.replicas", &json!(11), "too big");
        assert_eq!(e.to_string(), "spec.replicas: Invalid value: 11: too big");
        let e = FieldError::not_supported("spec.mode", &json!("x"), &["a".into(), "b".into()]);
        assert_eq!(
            e.message,
            r#"Unsupported value: "x": supported values: "a", "b""#
        );
        assert_eq!(
            FieldError::required("spec.image", "").message,
            "Required value"
        );
        assert_eq!(
            FieldError::too_long("spec.name", 1).message,
            "Too long: may not be more than 1 byte"
        );
        assert_eq!(
            FieldError::too_many("spec.items", 5, 3).message,
            "Too many: 5: must have at most 3 items"
        );
        assert_eq!(
            key(&child("openAPIV3Schema", "properties"), "spec"),
            "openAPIV3Schema.properties[spec]"
        );
        assert_eq!(index("spec.list", 2), "spec.list[2]");
    }
}
