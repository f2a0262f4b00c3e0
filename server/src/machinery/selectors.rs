//! Label and field selectors: parsing (`?labelSelector=`, `?fieldSelector=`) and matching.
//! Pure functions, no I/O.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::machinery::names::{label_value_problems, qualified_name_problems};
use crate::machinery::schema::field_error::{self, FieldError};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits on commas outside parentheses.
fn terms(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

/// Why `key` is not a label key (`[prefix/]name`), if it is not.
fn key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c))
    });
    (!(name_ok && prefix_ok)).then(|| format!("invalid label key {key:?}"))
}

fn value_problem(value: &str) -> Option<String> {
    let ok = value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()));
    (!ok).then(|| format!("invalid label value {value:?}"))
}

fn checked_key(key: &str) -> Result<String, String> {
    match key_problem(key) {
        Some(p) => Err(p),
        None => Ok(key.to_string()),
    }
}

fn checked_values(list: &str) -> Result<Vec<String>, String> {
    let inner = list
        .trim()
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesized list, found {list:?}"))?;
    inner
        .split(',')
        .map(str::trim)
        .map(|v| match value_problem(v) {
            Some(p) => Err(p),
            None => Ok(v.to_string()),
        })
        .collect()
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        for term in terms(s) {
            let requirement = if let Some(key) = term.strip_prefix('!') {
                Requirement::NotExists(checked_key(key.trim())?)
            } else if let Some((key, values)) = split_word(term, "notin") {
                Requirement::NotIn(checked_key(key)?, checked_values(values)?)
            } else if let Some((key, values)) = split_word(term, "in") {
                Requirement::In(checked_key(key)?, checked_values(values)?)
            } else if let Some((key, value)) = term.split_once("!=") {
                Requirement::NotIn(checked_key(key.trim())?, vec![checked_value(value)?])
            } else if let Some((key, value)) =
                term.split_once("==").or_else(|| term.split_once('='))
            {
                Requirement::In(checked_key(key.trim())?, vec![checked_value(value)?])
            } else if let Some((key, n)) = term.split_once('>') {
                Requirement::Gt(checked_key(key.trim())?, number(n)?)
            } else if let Some((key, n)) = term.split_once('<') {
                Requirement::Lt(checked_key(key.trim())?, number(n)?)
            } else {
                Requirement::Exists(checked_key(term)?)
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector(requirements))
    }

    /// From an API object's `LabelSelector` (`matchLabels`, `matchExpressions`).
    pub fn from_structured(selector: &Value) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
            for (key, value) in labels {
                let value = value
                    .as_str()
                    .ok_or_else(|| format!("matchLabels[{key:?}] must be a string"))?;
                requirements.push(Requirement::In(
                    checked_key(key)?,
                    vec![checked_value(value)?],
                ));
            }
        }
        for expression in selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = checked_key(expression["key"].as_str().unwrap_or_default())?;
            let values = expression["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or("values must be strings")
                })
                .collect::<Result<Vec<_>, _>>()?;
            requirements.push(match expression["operator"].as_str() {
                Some("In") => Requirement::In(key, values),
                Some("NotIn") => Requirement::NotIn(key, values),
                Some("Exists") => Requirement::Exists(key),
                Some("DoesNotExist") => Requirement::NotExists(key),
                other => {
                    return Err(format!(
                        "unknown selector operator {:?}",
                        other.unwrap_or_default()
                    ))
                }
            });
        }
        Ok(LabelSelector(requirements))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Gt(k, n) => labels
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            Requirement::Lt(k, n) => labels
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }

    pub fn matches_object(&self, object: &Value) -> bool {
        self.is_empty() || self.matches(&labels_of(object))
    }
}

fn checked_value(v: &str) -> Result<String, String> {
    let v = v.trim();
    match value_problem(v) {
        Some(p) => Err(p),
        None => Ok(v.to_string()),
    }
}

fn number(n: &str) -> Result<i64, String> {
    n.trim()
        .parse()
        .map_err(|_| format!("{n:?} is not an integer"))
}

/// `key in (a,b)` → (`key`, `(a,b)`), for the word operators.
fn split_word<'a>(term: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    let needle = format!(" {word} ");
    if let Some(i) = term.find(&needle) {
        return Some((term[..i].trim(), term[i + needle.len()..].trim()));
    }
    let needle = format!(" {word}(");
    term.find(&needle)
        .map(|i| (term[..i].trim(), term[i + needle.len() - 1..].trim()))
}

pub fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// One field selector term: its field, whether it asks for equality, and its value.
fn field_term(term: &str) -> Option<(&str, bool, &str)> {
    let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
        (f, false, v)
    } else {
        let (f, v) = term.split_once("==").or_else(|| term.split_once('='))?;
        (f, true, v)
    };
    Some((field.trim(), equal, value.trim()))
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`, ANDed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses, accepting only `supported` fields (kube-apiserver answers others with 400).
    pub fn parse(s: &str, supported: &[&str]) -> Result<FieldSelector, String> {
        let mut terms_out = Vec::new();
        for term in terms(s) {
            let (field, equal, value) =
                field_term(term).ok_or_else(|| format!("invalid field selector term {term:?}"))?;
            if !supported.contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            terms_out.push((field.to_string(), equal, value.to_string()));
        }
        Ok(FieldSelector(terms_out))
    }

    /// The value `selector` requires `field` to equal (`field=v` or `field==v`, ANDed with
    /// anything), whatever fields it names: kube-apiserver's `RequiresExactMatch`.
    pub fn required_value<'a>(selector: &'a str, field: &str) -> Option<&'a str> {
        terms(selector)
            .into_iter()
            .filter_map(field_term)
            .find_map(|(f, equal, value)| (equal && f == field).then_some(value))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches_object(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let actual = match object.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }
}

/// The problems of a structured `LabelSelector` (`matchLabels`, `matchExpressions`) at `path`,
/// as kube-apiserver's `ValidateLabelSelector` reports them. `allow_invalid_values` lets
/// expression values break the label value rules (an update keeping what an older server took).
pub fn validate_label_selector(
    selector: &Value,
    allow_invalid_values: bool,
    path: &str,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let labels_path = field_error::child(path, "matchLabels");
    for (key, value) in selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        errors.extend(label_name_errors(key, &labels_path));
        let value = value.as_str().unwrap_or_default();
        for problem in label_value_problems(value) {
            errors.push(FieldError::invalid(
                &labels_path,
                &Value::from(value),
                &problem,
            ));
        }
    }
    for (i, expression) in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = field_error::index(&field_error::child(path, "matchExpressions"), i);
        let values: Vec<&str> = expression
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let values_path = field_error::child(&at, "values");
        let operator = expression
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match operator {
            "In" | "NotIn" if values.is_empty() => errors.push(FieldError::required(
                &values_path,
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errors.push(FieldError::forbidden(
                &values_path,
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errors.push(FieldError::invalid(
                field_error::child(&at, "operator"),
                &Value::from(other),
                "not a valid selector operator",
            )),
        }
        let key = expression
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_default();
        errors.extend(label_name_errors(key, &field_error::child(&at, "key")));
        if !allow_invalid_values {
            for (j, value) in values.iter().enumerate() {
                for problem in label_value_problems(value) {
                    errors.push(FieldError::invalid(
                        field_error::index(&values_path, j),
                        &Value::from(*value),
                        &problem,
                    ));
                }
            }
        }
    }
    errors
}

/// Whether an expression of the selector has a value that is no label value (what lets an
/// update keep it, as `hasInvalidLabelValueInLabelSelector` decides).
pub fn has_invalid_label_value(selector: &Value) -> bool {
    selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("values").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .any(|v| !label_value_problems(v).is_empty())
}

/// `ValidateLabelName`: one error per problem of a label key.
fn label_name_errors(key: &str, path: &str) -> Vec<FieldError> {
    qualified_name_problems(key)
        .into_iter()
        .map(|problem| FieldError::invalid(path, &Value::from(key), &problem))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_operator() {
        let l = labels(&[("app", "web"), ("tier", "gpu"), ("replicas", "3")]);
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&l);
        assert!(m("app=web") && m("app==web") && m("app!=db") && m("app"));
        assert!(m("!missing") && !m("!app"));
        assert!(m("tier in (gpu, cpu)") && !m("tier notin (gpu)") && m("tier notin (cpu)"));
        assert!(m("replicas>2") && !m("replicas<3") && m("replicas<4"));
        assert!(m("app=web,tier in (gpu,tpu),!missing") && !m("app=web,tier=cpu"));
        assert!(
            m("missing!=x") && m("missing notin (x)"),
            "negations match objects without the key"
        );
        assert!(m(""), "the empty selector matches everything");
        assert!(
            !m("example.com/team"),
            "prefixed keys parse; this one is absent"
        );
    }

    #[test]
    fn invalid_selectors_are_errors() {
        for bad in ["app=we b", "a in b", "-bad=x", "x>y", "Bad.Prefix/x=1"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors() {
        let supported = ["metadata.name", "metadata.namespace", "type"];
        let secret = json!({"metadata": {"name": "s", "namespace": "default"}, "type": "Opaque"});
        let m = |s: &str| {
            FieldSelector::parse(s, &supported)
                .unwrap()
                .matches_object(&secret)
        };
        assert!(m("metadata.name=s") && m("metadata.name==s") && m("metadata.name!=t"));
        assert!(m("metadata.namespace=default,type=Opaque") && !m("type=kubernetes.io/tls"));
        assert_eq!(
            FieldSelector::parse("spec.foo=1", &supported).unwrap_err(),
            "field label not supported: spec.foo"
        );
    }
}
