//! Parsing request JSON while noticing duplicate fields, which `serde_json` silently
//! resolves by keeping the last. kube-apiserver reports each as `duplicate field "a.b"` and,
//! like it, the last value wins.

use std::fmt::{self, Write};

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// How deep objects may nest; deeper bodies are refused rather than risking the stack.
const MAX_DEPTH: usize = 100;

/// Parses `bytes`; the value and the dotted paths of fields given more than once.
pub fn parse(bytes: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let mut duplicates = Vec::new();
    let mut path = String::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Seed {
        path: &mut path,
        depth: 0,
        duplicates: &mut duplicates,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, duplicates))
}

struct Seed<'a> {
    /// The dotted path of the value being read: one buffer, extended on the way down and cut
    /// back on the way up, so a path is only copied out for a duplicate.
    path: &'a mut String,
    depth: usize,
    duplicates: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Seed<'_> {
    fn child(&mut self) -> Seed<'_> {
        Seed {
            path: self.path,
            depth: self.depth + 1,
            duplicates: self.duplicates,
        }
    }

    fn check_depth<E: serde::de::Error>(&self) -> Result<(), E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.check_depth()?;
        let mut items = Vec::new();
        let parent = self.path.len();
        loop {
            let _ = write!(self.path, "[{}]", items.len());
            let item = seq.next_element_seed(self.child())?;
            self.path.truncate(parent);
            match item {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        self.check_depth()?;
        let mut object = Map::new();
        let parent = self.path.len();
        while let Some(key) = map.next_key::<String>()? {
            if parent > 0 {
                self.path.push('.');
            }
            self.path.push_str(&key);
            if object.contains_key(&key) && !self.duplicates.contains(self.path) {
                self.duplicates.push(self.path.clone());
            }
            let value = map.next_value_seed(self.child())?;
            self.path.truncate(parent);
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicates_are_reported_and_the_last_wins() {
        let (value, duplicates) =
            parse(br#"{"data": {"a": "1", "a": "2"}, "kind": "x", "kind": "ConfigMap", "items": [{"n": 1, "n": 2}]}"#)
                .unwrap();
        assert_eq!(duplicates, ["data.a", "kind", "items[0].n"]);
        assert_eq!(
            value,
            json!({"data": {"a": "2"}, "kind": "ConfigMap", "items": [{"n": 2}]})
        );
        let (_, deep) =
            parse(br#"{"x": {"y": [{"z": 1}, {"z": 1, "z": 2}], "w": 1, "w": 2}, "v": 1, "v": 2}"#)
                .unwrap();
        assert_eq!(deep, ["x.y[1].z", "x.w", "v"]);
        let (_, in_list) = parse(br#"[{"a": 1}, [{"b": 1, "b": 2}]]"#).unwrap();
        assert_eq!(in_list, ["[1][0].b"]);
        let (same, none) = parse(br#"{"a": [1, 2.5, null, true], "b": {}}"#).unwrap();
        assert!(none.is_empty());
        assert_eq!(same, json!({"a": [1, 2.5, null, true], "b": {}}));
    }

    #[test]
    fn bad_input_is_an_error_not_a_crash() {
        assert!(parse(b"{").is_err());
        assert!(parse(b"{} {}").is_err());
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
