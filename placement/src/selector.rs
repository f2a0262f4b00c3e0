//! Kubernetes label selectors (`matchLabels` plus `matchExpressions` with `In`, `NotIn`, `Exists`,
//! `DoesNotExist`) evaluated against a target's labels. A pool narrows the targets its quota covers
//! with one, a deployment narrows the targets it accepts with another; both must match.
//!
//! The operators carry their values (`In(values)`), so "Exists with values" cannot be written.
//! Semantics are Kubernetes': all terms are ANDed, `NotIn` matches a target that lacks the key, an
//! empty selector matches every target, and `In` with no values matches none (the API server
//! rejects such a selector; here it simply selects nothing rather than everything).

use std::collections::BTreeMap;

/// A Kubernetes `LabelSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Every key must be present with exactly this value.
    pub match_labels: BTreeMap<String, String>,
    /// Every requirement must hold.
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
}

/// A `matchExpressions` operator with its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// The label is present and its value is one of these.
    In(Vec<String>),
    /// The label is absent, or present with a value not among these.
    NotIn(Vec<String>),
    /// The label is present, whatever its value.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl LabelSelector {
    /// The empty selector: matches every target.
    pub fn everything() -> Self {
        Self::default()
    }

    /// A selector of `matchLabels` only.
    pub fn labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            match_labels: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            match_expressions: Vec::new(),
        }
    }

    /// Whether a target with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    pub fn new(key: impl Into<String>, operator: Operator) -> Self {
        Self {
            key: key.into(),
            operator,
        }
    }

    /// Whether labels satisfy this one term.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match &self.operator {
            Operator::In(values) => value.is_some_and(|v| values.contains(v)),
            Operator::NotIn(values) => value.is_none_or(|v| !values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::everything().matches(&labels(&[])));
        assert!(LabelSelector::everything().matches(&labels(&[("region", "eu-west")])));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = LabelSelector::labels([("region", "eu-west"), ("tier", "gold")]);
        assert!(s.matches(&labels(&[
            ("region", "eu-west"),
            ("tier", "gold"),
            ("x", "y")
        ])));
        assert!(!s.matches(&labels(&[("region", "eu-west")])));
        assert!(!s.matches(&labels(&[("region", "eu-west"), ("tier", "silver")])));
    }

    #[test]
    fn operators_follow_kubernetes() {
        let eu = labels(&[("region", "eu-west")]);
        let bare = labels(&[]);
        let in_eu = Requirement::new("region", Operator::In(strings(&["eu-west", "eu-north"])));
        assert!(in_eu.matches(&eu));
        assert!(!in_eu.matches(&bare), "In needs the key");

        let not_us = Requirement::new("region", Operator::NotIn(strings(&["us-east"])));
        assert!(not_us.matches(&eu));
        assert!(
            not_us.matches(&bare),
            "NotIn matches a target without the key"
        );
        assert!(!not_us.matches(&labels(&[("region", "us-east")])));

        assert!(Requirement::new("region", Operator::Exists).matches(&eu));
        assert!(!Requirement::new("region", Operator::Exists).matches(&bare));
        assert!(Requirement::new("region", Operator::DoesNotExist).matches(&bare));
        assert!(!Requirement::new("region", Operator::DoesNotExist).matches(&eu));

        assert!(!Requirement::new("region", Operator::In(Vec::new())).matches(&eu));
    }

    #[test]
    fn labels_and_expressions_are_anded() {
        let s = LabelSelector {
            match_labels: labels(&[("nvidia.com/gpu.family", "hopper")]),
            match_expressions: vec![Requirement::new(
                "region",
                Operator::NotIn(strings(&["us-east"])),
            )],
        };
        assert!(s.matches(&labels(&[
            ("nvidia.com/gpu.family", "hopper"),
            ("region", "eu")
        ])));
        assert!(!s.matches(&labels(&[
            ("nvidia.com/gpu.family", "hopper"),
            ("region", "us-east")
        ])));
        assert!(!s.matches(&labels(&[("region", "eu")])));
    }
}
