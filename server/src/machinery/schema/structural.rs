//! A CRD's `openAPIV3Schema` (a JSONSchemaProps tree) read once into a typed tree, with its
//! patterns compiled and its CEL rules compiled, so every custom resource served under it is
//! checked without re-reading the schema.
//!
//! Reading never fails: what cannot be read (a keyword of the wrong JSON type, a bad regex, a
//! CEL rule that does not compile) is reported into the error list and left out of the tree.
//! Whether the tree is *structural* is decided afterwards, by `check.rs`.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use super::cel::{compile_rules, Rule};
use super::field_error::{child, index, key, FieldError};

/// How deep a schema may nest. Real CRDs stay far below; the cap keeps a hostile schema from
/// overflowing the stack in the recursive walks.
pub const MAX_SCHEMA_DEPTH: usize = 64;

/// A regex larger than this when compiled is refused rather than built: patterns are user input.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// `additionalProperties`: a schema for every value, or a plain yes/no.
#[derive(Debug)]
pub enum AdditionalProperties {
    Allowed(bool),
    Schema(Box<Structural>),
}

/// A compiled `pattern`.
#[derive(Debug)]
pub struct Pattern {
    pub source: String,
    pub regex: regex::Regex,
}

/// One node of a schema. Empty `ty` means no `type` was given.
#[derive(Debug, Default)]
pub struct Structural {
    pub ty: String,
    pub format: Option<String>,
    pub properties: BTreeMap<String, Structural>,
    pub items: Option<Box<Structural>>,
    pub additional_properties: Option<AdditionalProperties>,
    pub required: Vec<String>,
    pub enum_values: Option<Vec<Value>>,
    pub default: Option<Value>,
    pub nullable: bool,
    pub maximum: Option<Number>,
    pub exclusive_maximum: bool,
    pub minimum: Option<Number>,
    pub exclusive_minimum: bool,
    pub multiple_of: Option<Number>,
    pub max_length: Option<u64>,
    pub min_length: Option<u64>,
    pub pattern: Option<Pattern>,
    pub max_items: Option<u64>,
    pub min_items: Option<u64>,
    pub unique_items: bool,
    pub max_properties: Option<u64>,
    pub min_properties: Option<u64>,
    pub preserve_unknown_fields: bool,
    pub embedded_resource: bool,
    pub int_or_string: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub map_type: Option<String>,
    pub validations: Vec<Rule>,
    pub all_of: Vec<Structural>,
    pub any_of: Vec<Structural>,
    pub one_of: Vec<Structural>,
    pub not: Option<Box<Structural>>,
    /// Only kept to tell that a value validation (under `allOf`...) carries them, which a
    /// structural schema forbids.
    pub has_title: bool,
    pub has_description: bool,
    /// Whether this node or one below has CEL rules: lets validation skip rule-free subtrees.
    pub has_rules: bool,
}

impl Structural {
    /// The schema of the property `name`: declared, or from `additionalProperties`.
    pub fn property_schema(&self, name: &str) -> Option<&Structural> {
        match self.properties.get(name) {
            Some(s) => Some(s),
            None => match &self.additional_properties {
                Some(AdditionalProperties::Schema(s)) => Some(s),
                _ => None,
            },
        }
    }
}

/// Reads `schema` at `path` into a node, pushing what cannot be read onto `errs`.
pub fn parse_node(
    schema: &Value,
    path: &str,
    depth: usize,
    errs: &mut Vec<FieldError>,
) -> Structural {
    let mut node = Structural::default();
    if depth > MAX_SCHEMA_DEPTH {
        errs.push(FieldError::forbidden(
            path,
            &format!("must not nest more than {MAX_SCHEMA_DEPTH} levels deep"),
        ));
        return node;
    }
    let Some(obj) = schema.as_object() else {
        errs.push(FieldError::invalid(
            path,
            schema,
            "must be a JSON schema object",
        ));
        return node;
    };
    {
        let mut r = Reader { obj, path, errs };
        node.ty = r.string("type").unwrap_or_default();
        node.format = r.string("format");
        node.nullable = r.bool("nullable");
        node.exclusive_maximum = r.bool("exclusiveMaximum");
        node.exclusive_minimum = r.bool("exclusiveMinimum");
        node.unique_items = r.bool("uniqueItems");
        node.preserve_unknown_fields = r.bool("x-kubernetes-preserve-unknown-fields");
        node.embedded_resource = r.bool("x-kubernetes-embedded-resource");
        node.int_or_string = r.bool("x-kubernetes-int-or-string");
        node.maximum = r.number("maximum");
        node.minimum = r.number("minimum");
        node.multiple_of = r.number("multipleOf");
        node.max_length = r.count("maxLength");
        node.min_length = r.count("minLength");
        node.max_items = r.count("maxItems");
        node.min_items = r.count("minItems");
        node.max_properties = r.count("maxProperties");
        node.min_properties = r.count("minProperties");
        node.list_type = r.string("x-kubernetes-list-type");
        node.map_type = r.string("x-kubernetes-map-type");
        node.required = r.strings("required");
        node.list_map_keys = r.strings("x-kubernetes-list-map-keys");
    }
    node.has_title = obj.contains_key("title");
    node.has_description = obj.contains_key("description");
    node.default = obj.get("default").cloned();
    match obj.get("enum") {
        None => {}
        Some(Value::Array(values)) => node.enum_values = Some(values.clone()),
        Some(other) => errs.push(FieldError::invalid(
            child(path, "enum"),
            other,
            "must be an array",
        )),
    }
    if let Some(source) = node_pattern(obj, path, errs) {
        node.pattern = Some(source);
    }

    if let Some(props) = obj.get("properties") {
        match props.as_object() {
            Some(props) => {
                for (name, sub) in props {
                    let sub_path = key(&child(path, "properties"), name);
                    node.properties
                        .insert(name.clone(), parse_node(sub, &sub_path, depth + 1, errs));
                }
            }
            None => errs.push(FieldError::invalid(
                child(path, "properties"),
                props,
                "must be an object",
            )),
        }
    }
    match obj.get("items") {
        None => {}
        Some(Value::Array(_)) => errs.push(FieldError::forbidden(
            child(path, "items"),
            "items must be a schema object and not an array",
        )),
        Some(items) => {
            node.items = Some(Box::new(parse_node(
                items,
                &child(path, "items"),
                depth + 1,
                errs,
            )));
        }
    }
    match obj.get("additionalProperties") {
        None => {}
        Some(Value::Bool(b)) => {
            node.additional_properties = Some(AdditionalProperties::Allowed(*b))
        }
        Some(sub) => {
            let sub = parse_node(sub, &child(path, "additionalProperties"), depth + 1, errs);
            node.additional_properties = Some(AdditionalProperties::Schema(Box::new(sub)));
        }
    }
    for (word, list) in [
        ("allOf", &mut node.all_of),
        ("anyOf", &mut node.any_of),
        ("oneOf", &mut node.one_of),
    ] {
        match obj.get(word) {
            None => {}
            Some(Value::Array(subs)) => {
                for (i, sub) in subs.iter().enumerate() {
                    list.push(parse_node(
                        sub,
                        &index(&child(path, word), i),
                        depth + 1,
                        errs,
                    ));
                }
            }
            Some(other) => errs.push(FieldError::invalid(
                child(path, word),
                other,
                "must be an array",
            )),
        }
    }
    if let Some(sub) = obj.get("not") {
        node.not = Some(Box::new(parse_node(
            sub,
            &child(path, "not"),
            depth + 1,
            errs,
        )));
    }
    if let Some(rules) = obj.get("x-kubernetes-validations") {
        node.validations = compile_rules(rules, &child(path, "x-kubernetes-validations"), errs);
    }
    // JSON-Schema keywords a CRD schema may not use at all.
    for word in [
        "$ref",
        "$schema",
        "id",
        "definitions",
        "dependencies",
        "patternProperties",
        "additionalItems",
    ] {
        if obj.contains_key(word) {
            errs.push(FieldError::forbidden(
                child(path, word),
                &format!("{word} is not supported"),
            ));
        }
    }
    node.has_rules = !node.validations.is_empty()
        || node.properties.values().any(|p| p.has_rules)
        || node.items.as_ref().is_some_and(|i| i.has_rules)
        || matches!(&node.additional_properties, Some(AdditionalProperties::Schema(s)) if s.has_rules);
    node
}

fn node_pattern(
    obj: &Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<Pattern> {
    let raw = obj.get("pattern")?;
    let field = child(path, "pattern");
    let Some(source) = raw.as_str() else {
        errs.push(FieldError::invalid(field, raw, "must be a string"));
        return None;
    };
    match regex::RegexBuilder::new(source)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
    {
        Ok(regex) => Some(Pattern {
            source: source.to_string(),
            regex,
        }),
        Err(e) => {
            errs.push(FieldError::invalid(
                field,
                raw,
                &format!("must be a valid regular expression, but isn't: {e}"),
            ));
            None
        }
    }
}

/// Typed access to one schema object's keywords, reporting wrong JSON types.
struct Reader<'a> {
    obj: &'a Map<String, Value>,
    path: &'a str,
    errs: &'a mut Vec<FieldError>,
}

impl Reader<'_> {
    fn wrong(&mut self, word: &str, value: &Value, want: &str) {
        self.errs.push(FieldError::invalid(
            child(self.path, word),
            value,
            &format!("must be {want}"),
        ));
    }

    fn string(&mut self, word: &str) -> Option<String> {
        match self.obj.get(word)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong(word, other, "a string");
                None
            }
        }
    }

    fn bool(&mut self, word: &str) -> bool {
        match self.obj.get(word) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.wrong(word, other, "a boolean");
                false
            }
        }
    }

    fn number(&mut self, word: &str) -> Option<Number> {
        match self.obj.get(word)? {
            Value::Number(n) => Some(n.clone()),
            other => {
                self.wrong(word, other, "a number");
                None
            }
        }
    }

    fn count(&mut self, word: &str) -> Option<u64> {
        match self.obj.get(word)? {
            Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
            other => {
                self.wrong(word, other, "a non-negative integer");
                None
            }
        }
    }

    fn strings(&mut self, word: &str) -> Vec<String> {
        match self.obj.get(word) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
            Some(other) => {
                self.wrong(word, other, "an array of strings");
                Vec::new()
            }
        }
    }
}
