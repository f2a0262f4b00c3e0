//! Kubernetes `Status` errors: every failure a client sees is one of these, built here and
//! nowhere else, with the code and reason clients branch on.

use serde::Serialize;

/// A `metav1.Status` with `status: Failure`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub metadata: EmptyMetadata,
    pub status: &'static str,
    pub message: String,
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Box<StatusDetails>>,
    pub code: u16,
}

/// A Status's `metadata`: always `{}` here, and zero bytes in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmptyMetadata;

impl Serialize for EmptyMetadata {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        serializer.serialize_map(Some(0))?.end()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
}

/// One cause of a failure. Its kind goes on the wire as `reason` (Go's `StatusCause.Type`
/// is tagged `json:"reason"`), which client-go's `HasStatusCause` and the other clients read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusCause {
    #[serde(rename = "reason", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// What a `Status` is about: group and kind (plural resource for kube-apiserver's
/// messages) and the object name.
#[derive(Clone, Debug, Default)]
pub struct Subject<'a> {
    pub group: &'a str,
    /// The resource as kube-apiserver names it in messages, e.g. `configmaps`.
    pub resource: &'a str,
    pub name: &'a str,
}

impl<'a> Subject<'a> {
    /// `configmaps` or `deployments.apps`, as in kube-apiserver's messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// Details naming the subject (name, group, resource), as kube-apiserver's Statuses do.
    pub fn details(&self) -> StatusDetails {
        StatusDetails {
            name: self.name.to_string(),
            group: self.group.to_string(),
            kind: self.resource.to_string(),
            ..StatusDetails::default()
        }
    }
}

impl Status {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Status {
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: EmptyMetadata,
            status: "Failure",
            message: message.into(),
            reason,
            details: None,
            code,
        }
    }

    fn with_details(mut self, details: StatusDetails) -> Status {
        self.details = Some(Box::new(details));
        self
    }

    pub fn not_found(subject: &Subject) -> Status {
        Status::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", subject.qualified(), subject.name),
        )
        .with_details(subject.details())
    }

    pub fn already_exists(subject: &Subject) -> Status {
        Status::new(
            409,
            "AlreadyExists",
            format!(
                "{} \"{}\" already exists",
                subject.qualified(),
                subject.name
            ),
        )
        .with_details(subject.details())
    }

    pub fn conflict(subject: &Subject, why: &str) -> Status {
        Status::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {why}",
                subject.qualified(),
                subject.name
            ),
        )
        .with_details(subject.details())
    }

    /// The message clients print for a stale resourceVersion.
    pub const MODIFIED: &'static str =
        "the object has been modified; please apply your changes to the latest version and try again";

    pub fn invalid(subject: &Subject, kind: &str, causes: Vec<StatusCause>) -> Status {
        // Each problem once, as kube-apiserver's message (its causes keep repeats: an RBAC
        // update validates the new object twice).
        let mut summary: Vec<String> = Vec::new();
        for c in &causes {
            let line = if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            };
            if !summary.contains(&line) {
                summary.push(line);
            }
        }
        let mut details = subject.details();
        details.kind = kind.to_string();
        details.causes = causes;
        // The kind qualified by its group, as kube-apiserver's message has it (`ConfigMap`,
        // `Role.rbac.authorization.k8s.io`); kubectl prints its own line from the details.
        let qualified = if subject.group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{}", subject.group)
        };
        Status::new(
            422,
            "Invalid",
            format!(
                "{qualified} \"{}\" is invalid: {}",
                subject.name,
                summary.join(", ")
            ),
        )
        .with_details(details)
    }

    /// A server-side apply refused because other managers own fields it would change; one
    /// `FieldManagerConflict` cause per field.
    pub fn apply_conflict(message: impl Into<String>, causes: Vec<StatusCause>) -> Status {
        Status::new(409, "Conflict", message).with_details(StatusDetails {
            causes,
            ..StatusDetails::default()
        })
    }

    pub fn bad_request(message: impl Into<String>) -> Status {
        Status::new(400, "BadRequest", message)
    }

    pub fn not_found_path() -> Status {
        Status::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn forbidden(subject: &Subject, why: &str) -> Status {
        Status::new(
            403,
            "Forbidden",
            format!(
                "{} \"{}\" is forbidden: {why}",
                subject.qualified(),
                subject.name
            ),
        )
        .with_details(subject.details())
    }

    /// Adds `details` naming `subject` (group, resource, name).
    pub fn with_subject_details(self, subject: &Subject) -> Status {
        self.with_details(subject.details())
    }

    /// A request without credentials the hub accepts.
    pub fn unauthorized() -> Status {
        Status::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Status {
        Status::new(405, "MethodNotAllowed", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Status {
        Status::new(406, "NotAcceptable", message)
    }

    pub fn gone(message: impl Into<String>) -> Status {
        Status::new(410, "Expired", message)
    }

    pub fn too_large(limit_bytes: usize) -> Status {
        Status::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body is larger than the limit of {limit_bytes} bytes"),
        )
    }

    pub fn unsupported_media_type(given: &str, accepted: &[&str]) -> Status {
        Status::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}; got {given:?}",
                accepted.join(", ")
            ),
        )
    }

    pub fn internal(message: impl Into<String>) -> Status {
        Status::new(500, "InternalError", message)
    }

    pub fn unavailable(message: impl Into<String>, retry_after_seconds: u32) -> Status {
        let mut status = Status::new(503, "ServiceUnavailable", message);
        status.details = Some(Box::new(StatusDetails {
            retry_after_seconds: Some(retry_after_seconds),
            ..StatusDetails::default()
        }));
        status
    }

    pub fn timeout(message: impl Into<String>) -> Status {
        Status::new(504, "Timeout", message)
    }

    /// Maps a storage failure about `subject` to what kube-apiserver answers for it.
    pub fn from_storage(err: &trellis_storage::StorageError, subject: &Subject) -> Status {
        use trellis_storage::StorageError as E;
        match err {
            E::NotFound(_) => Status::not_found(subject),
            E::AlreadyExists(_) => Status::already_exists(subject),
            E::Conflict { reason, .. } if reason.starts_with("Precondition failed") => {
                Status::conflict(subject, reason)
            }
            E::Conflict { .. } => Status::conflict(subject, Status::MODIFIED),
            E::Expired { requested, .. } => {
                Status::gone(format!("too old resource version: {requested}"))
            }
            E::TooLargeRevision { requested, current } => {
                // kube-apiserver's `NewTooLargeResourceVersionError`: client-go's reflector
                // knows it by the cause.
                let mut status = Status::timeout(format!(
                    "Timeout: Too large resource version: {requested}, current: {current}"
                ));
                status.details = Some(Box::new(StatusDetails {
                    causes: vec![StatusCause {
                        kind: "ResourceVersionTooLarge".into(),
                        message: "Too large resource version".into(),
                        field: String::new(),
                    }],
                    retry_after_seconds: Some(1),
                    ..StatusDetails::default()
                }));
                status
            }
            E::InvalidContinue(why) => {
                Status::bad_request(format!("invalid continue token: {why}"))
            }
            E::InvalidKey(why) | E::InvalidValue(why) => Status::bad_request(why.clone()),
            E::Unavailable(why) | E::UnknownOutcome(why) => {
                Status::unavailable(format!("storage is unavailable: {why}"), 1)
            }
            E::Internal(why) => Status::internal(why.clone()),
            // Refused when the store is opened, before any request; here for completeness.
            E::SchemaTooNew { .. } => Status::internal(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_reads_like_kube_apiserver() {
        let s = Status::not_found(&Subject {
            group: "",
            resource: "configmaps",
            name: "cm1",
        });
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["message"], "configmaps \"cm1\" not found");
        assert_eq!(json["reason"], "NotFound");
        assert_eq!(json["code"], 404);
        assert_eq!(json["details"]["kind"], "configmaps");
        assert_eq!(json["kind"], "Status");
        assert_eq!(json["status"], "Failure");
        assert_eq!(json["metadata"], serde_json::json!({}));
        let s = Status::already_exists(&Subject {
            group: "apps",
            resource: "deployments",
            name: "web",
        });
        assert_eq!(s.message, "deployments.apps \"web\" already exists");
    }

    #[test]
    fn stale_writes_are_conflicts_with_the_standard_message() {
        let err = trellis_storage::StorageError::Conflict {
            key: "k".into(),
            reason: "expected revision 1, object is at 2".into(),
        };
        let s = Status::from_storage(
            &err,
            &Subject {
                group: "",
                resource: "configmaps",
                name: "x",
            },
        );
        assert_eq!(s.code, 409);
        assert_eq!(s.reason, "Conflict");
        assert!(s.message.ends_with(Status::MODIFIED));
    }

    #[test]
    fn invalid_lists_causes() {
        let s = Status::invalid(
            &Subject { group: "", resource: "configmaps", name: "Bad_Name" },
            "ConfigMap",
            vec![StatusCause {
                kind: "FieldValueInvalid".into(),
                message: "Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters".into(),
                field: "metadata.name".into(),
            }],
        );
        assert_eq!(s.code, 422);
        assert!(s
            .message
            .starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value"));
        assert_eq!(s.details.as_ref().unwrap().causes.len(), 1);

        // A kind with a group is named with it, the details keep the plain kind.
        let widget = |causes| {
            Status::invalid(
                &Subject {
                    group: "example.com",
                    resource: "widgets",
                    name: "w",
                },
                "Widget",
                causes,
            )
        };
        let required = StatusCause {
            kind: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: "spec.color".into(),
        };
        let s = widget(vec![required.clone()]);
        assert_eq!(
            s.message,
            "Widget.example.com \"w\" is invalid: spec.color: Required value"
        );
        assert_eq!(s.details.as_ref().unwrap().kind, "Widget");

        // A repeated problem is listed once in the message, every time in the causes.
        let s = widget(vec![required.clone(), required]);
        assert_eq!(
            s.message,
            "Widget.example.com \"w\" is invalid: spec.color: Required value"
        );
        assert_eq!(s.details.as_ref().unwrap().causes.len(), 2);
    }

    #[test]
    fn causes_go_on_the_wire_as_kube_apiserver_writes_them() {
        let cause = |kind: &str, field: &str| StatusCause {
            kind: kind.into(),
            message: "Required value".into(),
            field: field.into(),
        };
        let wire = serde_json::to_value(vec![cause("FieldValueRequired", "spec.x"), cause("", "")])
            .unwrap();
        assert_eq!(
            wire,
            serde_json::json!([
                {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.x"},
                {"message": "Required value"},
            ])
        );
    }

    #[test]
    fn a_revision_ahead_of_the_store_is_a_timeout_with_its_cause() {
        let err = trellis_storage::StorageError::TooLargeRevision {
            requested: 90,
            current: 12,
        };
        let wire = serde_json::to_value(Status::from_storage(&err, &Subject::default())).unwrap();
        assert_eq!(wire["code"], 504);
        assert_eq!(wire["reason"], "Timeout");
        assert_eq!(
            wire["message"],
            "Timeout: Too large resource version: 90, current: 12"
        );
        assert_eq!(
            wire["details"],
            serde_json::json!({
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                "retryAfterSeconds": 1,
            })
        );
    }
}
