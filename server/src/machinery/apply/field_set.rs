//! Field sets: which parts of an object a manager owns, and their `fieldsV1` encoding.
//!
//! A set is a tree. Each node maps path elements to child sets, and separately records which
//! elements are *members*, i.e. owned themselves rather than only through their children. In
//! `fieldsV1` a member leaf is `{}` and a member that also has children carries `".": {}`.
//! Elements order as structured-merge-diff orders them (field names, then keys, then values,
//! then indexes), and that is the order the encoding is written in, so that what we store is
//! byte for byte what kube-apiserver would store.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// Field sets nest one level per path element; deeper input is refused rather than recursed
/// into, so a hostile `fieldsV1` cannot exhaust the stack.
pub const MAX_DEPTH: usize = 64;

/// One step of a path into an object.
#[derive(Clone, Debug, PartialEq)]
pub enum PathElement {
    /// A map key or struct field: `f:name`.
    Field(String),
    /// An element of a list keyed by some of its fields: `k:{"name":"c"}`. Sorted by name.
    Key(Vec<(String, Value)>),
    /// An element of a set-like list, identified by its value: `v:"x"`.
    Value(Value),
    /// An element of a list by position: `i:0`. Only read, never produced: atomic lists are
    /// owned whole.
    Index(i64),
}

impl Eq for PathElement {}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        use PathElement::*;
        match (self, other) {
            (Field(a), Field(b)) => a.cmp(b),
            (Key(a), Key(b)) => a
                .iter()
                .zip(b)
                .map(|((an, av), (bn, bv))| an.cmp(bn).then_with(|| compare_values(av, bv)))
                .find(|o| o.is_ne())
                .unwrap_or_else(|| a.len().cmp(&b.len())),
            (Value(a), Value(b)) => compare_values(a, b),
            (Index(a), Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The `fieldsV1` key of the field `name`: `f:name`.
    pub fn field_key(name: &str) -> String {
        format!("f:{name}")
    }

    /// The field a `fieldsV1` key names, if it names a field.
    pub fn field_name(key: &str) -> Option<&str> {
        key.strip_prefix("f:")
    }

    /// The `fieldsV1` key of this element.
    pub fn encode(&self) -> String {
        match self {
            PathElement::Field(name) => PathElement::field_key(name),
            PathElement::Key(fields) => {
                let body: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{}:{}", Value::from(name.as_str()), value))
                    .collect();
                format!("k:{{{}}}", body.join(","))
            }
            PathElement::Value(value) => format!("v:{value}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `fieldsV1` key.
    pub fn decode(key: &str) -> Result<PathElement, FieldSetError> {
        let bad = || FieldSetError(format!("invalid path element {key:?}"));
        let (kind, body) = key.split_once(':').ok_or_else(bad)?;
        match kind {
            "f" => Ok(PathElement::Field(body.to_string())),
            "k" => match serde_json::from_str::<Value>(body) {
                Ok(Value::Object(map)) if !map.is_empty() => {
                    // serde_json's map iterates sorted, which is the order keys compare in.
                    Ok(PathElement::Key(map.into_iter().collect()))
                }
                _ => Err(bad()),
            },
            "v" => serde_json::from_str(body)
                .map(PathElement::Value)
                .map_err(|_| bad()),
            "i" => body.parse().map(PathElement::Index).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

/// The path notation of kube-apiserver's conflict messages: `.spec.containers[name="c"].image`.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(value) => write!(f, "[={value}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Renders a path as kube-apiserver prints it in conflicts.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// structured-merge-diff's value order: numbers, strings, booleans, lists, maps, null. Only
/// used to sort set elements, so it needs to be total and stable, not meaningful.
fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(p, q)| compare_values(p, q))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .zip(y)
            .map(|((kp, p), (kq, q))| kp.cmp(kq).then_with(|| compare_values(p, q)))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A `fieldsV1` that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldSetError(pub String);

/// A set of field paths. Children are never empty: every operation prunes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Adds `path` as a member. The empty path is the object itself, which no set records.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether `path` is a member.
    #[cfg(test)]
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether `element` is a member of this level.
    pub fn has_member(&self, element: &PathElement) -> bool {
        self.members.contains(element)
    }

    /// The set below `element`, if anything there is in the set.
    pub fn child(&self, element: &PathElement) -> Option<&FieldSet> {
        self.children.get(element)
    }

    /// Whether `element` or anything below it is in the set.
    pub fn touches(&self, element: &PathElement) -> bool {
        self.members.contains(element) || self.children.contains_key(element)
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, mine)| {
                let both = mine.intersection(other.children.get(pe)?);
                (!both.is_empty()).then(|| (pe.clone(), both))
            })
            .collect();
        FieldSet { members, children }
    }

    /// The paths of `self` that are not in `other`; `other`'s members do not remove
    /// `self`'s children (see [`FieldSet::recursive_difference`] for that).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, mine)| {
                let rest = match other.children.get(pe) {
                    Some(theirs) => mine.difference(theirs),
                    None => mine.clone(),
                };
                (!rest.is_empty()).then(|| (pe.clone(), rest))
            })
            .collect();
        FieldSet { members, children }
    }

    /// Like [`FieldSet::difference`], but a member of `other` also removes everything below it.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter(|(pe, _)| !other.members.contains(pe))
            .filter_map(|(pe, mine)| {
                let rest = match other.children.get(pe) {
                    Some(theirs) => mine.recursive_difference(theirs),
                    None => mine.clone(),
                };
                (!rest.is_empty()).then(|| (pe.clone(), rest))
            })
            .collect();
        FieldSet { members, children }
    }

    /// Removes `other`'s paths, in place: [`FieldSet::difference`] without copying what stays.
    pub fn remove(&mut self, other: &FieldSet) {
        self.remove_below(other, false);
    }

    /// Removes `other`'s paths and everything below its members, in place:
    /// [`FieldSet::recursive_difference`] without copying what stays.
    pub fn remove_recursive(&mut self, other: &FieldSet) {
        self.remove_below(other, true);
    }

    fn remove_below(&mut self, other: &FieldSet, recursive: bool) {
        if other.is_empty() {
            return;
        }
        self.members.retain(|pe| !other.members.contains(pe));
        if recursive {
            self.children.retain(|pe, _| !other.members.contains(pe));
        }
        for (pe, mine) in self.children.iter_mut() {
            if let Some(theirs) = other.children.get(pe) {
                mine.remove_below(theirs, recursive);
            }
        }
        self.children.retain(|_, child| !child.is_empty());
    }

    /// Every member path, members of a level before its children, in element order: the
    /// order structured-merge-diff reports conflicts in.
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for pe in &self.members {
            prefix.push(pe.clone());
            out.push(prefix.clone());
            prefix.pop();
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// Reads a `fieldsV1` object.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, FieldSetError> {
        let map = value
            .as_object()
            .ok_or_else(|| FieldSetError("fieldsV1 must be a JSON object".into()))?;
        FieldSet::decode_level(map, 0)
    }

    fn decode_level(map: &Map<String, Value>, depth: usize) -> Result<FieldSet, FieldSetError> {
        if depth > MAX_DEPTH {
            return Err(FieldSetError("fieldsV1 is nested too deeply".into()));
        }
        let mut set = FieldSet::new();
        for (key, value) in map {
            if key == "." {
                // Membership of this level is recorded by the parent.
                continue;
            }
            let pe = PathElement::decode(key)?;
            let inner = value
                .as_object()
                .ok_or_else(|| FieldSetError(format!("{key:?} must map to a JSON object")))?;
            if inner.is_empty() || inner.contains_key(".") {
                set.members.insert(pe.clone());
            }
            let child = FieldSet::decode_level(inner, depth + 1)?;
            if !child.is_empty() {
                set.children.insert(pe, child);
            }
        }
        Ok(set)
    }

    /// The `fieldsV1` JSON text, exactly as kube-apiserver writes it: `"."` first, then
    /// elements in structured-merge-diff order, `{}` for leaves. (What is stored is
    /// [`FieldSet::to_fields_v1`], the same text parsed: the tests hold the two together.)
    #[cfg(test)]
    pub fn to_json_string(&self) -> String {
        let mut out = String::new();
        self.write_level(false, &mut out);
        out
    }

    #[cfg(test)]
    fn write_level(&self, include_self: bool, out: &mut String) {
        out.push('{');
        let mut first = true;
        let mut entry = |out: &mut String, key: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&Value::from(key).to_string());
            out.push(':');
        };
        if include_self {
            entry(out, ".");
            out.push_str("{}");
        }
        let mut elements: Vec<&PathElement> =
            self.members.iter().chain(self.children.keys()).collect();
        elements.sort();
        elements.dedup();
        for pe in elements {
            entry(out, &pe.encode());
            match self.children.get(pe) {
                Some(child) => child.write_level(self.members.contains(pe), out),
                None => out.push_str("{}"),
            }
        }
        out.push('}');
    }

    /// The `fieldsV1` value, for storing in an object: what parsing
    /// [`FieldSet::to_json_string`] gives, built directly (every write of an object builds
    /// one). serde_json's maps sort their keys, so once serialized this puts `i:` before `k:`
    /// and `v:10` before `v:2`, where [`FieldSet::to_json_string`] keeps structured-merge-diff's
    /// order; clients read either.
    pub fn to_fields_v1(&self) -> Value {
        self.level_value(false)
    }

    fn level_value(&self, include_self: bool) -> Value {
        let mut map = Map::new();
        if include_self {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        let mut elements: Vec<&PathElement> =
            self.members.iter().chain(self.children.keys()).collect();
        elements.sort();
        elements.dedup();
        for pe in elements {
            let value = match self.children.get(pe) {
                Some(child) => child.level_value(self.members.contains(pe)),
                None => Value::Object(Map::new()),
            };
            map.insert(pe.encode(), value);
        }
        Value::Object(map)
    }
}

/// Builds a path of field names, for tests and fixed server paths.
pub fn field_path(names: &[&str]) -> Vec<PathElement> {
    names
        .iter()
        .map(|n| PathElement::Field(n.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A fieldsV1 as a Deployment's managedFields entry carries it, written the way
    /// kube-apiserver writes it.
    const DEPLOYMENT: &str = r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#;

    #[test]
    fn fields_v1_round_trips_byte_for_byte() {
        let set = FieldSet::from_fields_v1(&serde_json::from_str(DEPLOYMENT).unwrap()).unwrap();
        assert_eq!(set.to_json_string(), DEPLOYMENT);
        assert!(set.has(&field_path(&["metadata", "labels"])));
        assert!(!set.has(&field_path(&["metadata"])));
    }

    #[test]
    fn elements_sort_fields_keys_values_then_indexes() {
        let text = r#"{"f:b":{},"f:c":{},"k:{\"a\":1,\"b\":\"x\"}":{},"k:{\"a\":2}":{},"v:2":{},"v:10":{},"v:\"a\"":{},"i:3":{}}"#;
        let set = FieldSet::from_fields_v1(&serde_json::from_str(text).unwrap()).unwrap();
        assert_eq!(set.to_json_string(), text);
    }

    #[test]
    fn bad_fields_v1_is_an_error_not_a_panic() {
        for bad in [
            json!([]),
            json!({"x:y": {}}),
            json!({"f:a": 1}),
            json!({"k:[1]": {}}),
            json!({"v:nope": {}}),
        ] {
            assert!(FieldSet::from_fields_v1(&bad).is_err(), "{bad}");
        }
        let mut deep = json!({});
        for _ in 0..200 {
            deep = json!({ "f:a": deep });
        }
        assert!(FieldSet::from_fields_v1(&deep).is_err());
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::new();
        a.insert(&field_path(&["data", "x"]));
        a.insert(&field_path(&["data", "y"]));
        let mut b = FieldSet::new();
        b.insert(&field_path(&["data", "y"]));
        b.insert(&field_path(&["spec"]));
        assert_eq!(a.union(&b).paths().len(), 3);
        assert_eq!(a.intersection(&b).paths(), vec![field_path(&["data", "y"])]);
        assert_eq!(a.difference(&b).paths(), vec![field_path(&["data", "x"])]);
        let mut data = FieldSet::new();
        data.insert(&field_path(&["data"]));
        assert_eq!(a.difference(&data), a);
        assert!(a.recursive_difference(&data).is_empty());
    }

    /// The stored value is the parsed text, keys sorted as serde_json sorts them.
    #[test]
    fn fields_v1_values_are_the_parsed_text() {
        for text in [
            DEPLOYMENT,
            r#"{"f:b":{},"f:c":{},"k:{\"a\":1,\"b\":\"x\"}":{},"k:{\"a\":2}":{},"v:2":{},"v:10":{},"v:\"a\"":{},"i:3":{}}"#,
            r#"{"f:data":{".":{},"f:a\"b":{},"f:x":{".":{},"f:y":{}}}}"#,
            "{}",
        ] {
            let set = FieldSet::from_fields_v1(&serde_json::from_str(text).unwrap()).unwrap();
            let parsed: Value = serde_json::from_str(&set.to_json_string()).unwrap();
            assert_eq!(set.to_fields_v1(), parsed, "{text}");
            assert_eq!(
                serde_json::to_string(&set.to_fields_v1()).unwrap(),
                serde_json::to_string(&parsed).unwrap()
            );
        }
    }

    /// Removing in place leaves what the copying operations return.
    #[test]
    fn removing_in_place_matches_the_differences() {
        let set =
            |text: &str| FieldSet::from_fields_v1(&serde_json::from_str(text).unwrap()).unwrap();
        let a = set(DEPLOYMENT);
        for other in [
            set(r#"{"f:metadata":{}}"#),
            set(r#"{"f:metadata":{"f:labels":{}}}"#),
            set(r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{}}}"#),
            set(
                r#"{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{"f:image":{},"f:name":{}}}}}}}"#,
            ),
            set(DEPLOYMENT),
            FieldSet::new(),
        ] {
            let mut removed = a.clone();
            removed.remove(&other);
            assert_eq!(removed, a.difference(&other));
            let mut removed = a.clone();
            removed.remove_recursive(&other);
            assert_eq!(removed, a.recursive_difference(&other));
        }
    }

    #[test]
    fn paths_print_as_kube_apiserver_prints_them() {
        let path = vec![
            PathElement::Field("spec".into()),
            PathElement::Key(vec![("name".into(), json!("c"))]),
            PathElement::Field("image".into()),
        ];
        assert_eq!(path_string(&path), r#".spec[name="c"].image"#);
        assert_eq!(path_string(&[PathElement::Value(json!("x"))]), r#"[="x"]"#);
    }
}
