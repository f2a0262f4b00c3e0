//! A listed object on its way to a `Table` or a `PartialObjectMetadataList`: decoded, except
//! for `metadata.managedFields`, which only pass through to the answer and so are kept as the
//! stored JSON text.
//!
//! managedFields are the largest part of most objects' metadata (a map per field owned), and
//! neither the columns, the selectors nor the workspace annotation look at them: parsing them
//! into values and encoding them again was most of a Table list's own cost.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::machinery::object_meta;
use crate::machinery::status::Status;
use crate::registry::{conversion, ResourceType};

const MANAGED_FIELDS: &str = "managedFields";

/// An object as a list renders it.
#[derive(Debug)]
pub struct Listed {
    /// The object; without `metadata.managedFields` when [`Listed::managed_fields`] holds them.
    pub object: Value,
    /// `metadata.managedFields` as stored, unparsed.
    pub managed_fields: Option<Box<RawValue>>,
}

impl Listed {
    /// An object decoded whole.
    pub fn whole(object: Value) -> Listed {
        Listed {
            object,
            managed_fields: None,
        }
    }

    /// Decodes stored bytes as [`object_meta::decode`] does (the revision set, a custom
    /// resource shown in the version asked), but leaves managedFields unparsed. Kinds stored
    /// as another, which convert, and objects not in the usual shape are decoded whole.
    pub fn decode(value: &[u8], revision: u64, rt: &ResourceType) -> Result<Listed, Status> {
        if rt.stored_as.is_none() {
            let mut de = serde_json::Deserializer::from_slice(value);
            if let Ok((mut object, managed_fields)) = Level(KEPT_AS_TEXT).deserialize(&mut de) {
                if de.end().is_ok() {
                    let meta = object
                        .entry("metadata")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Some(meta) = meta.as_object_mut() {
                        meta.insert(
                            "resourceVersion".into(),
                            Value::String(revision.to_string()),
                        );
                    }
                    let mut object = Value::Object(object);
                    conversion::from_stored(rt, &mut object);
                    return Ok(Listed {
                        object,
                        managed_fields,
                    });
                }
            }
        }
        object_meta::decode(value, revision, rt).map(Listed::whole)
    }

    /// The object's metadata, to render: managedFields back in their place.
    pub fn into_metadata(mut self) -> Metadata {
        let fields = match self.object.get_mut("metadata").map(Value::take) {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        Metadata {
            fields,
            managed_fields: self.managed_fields,
        }
    }

    /// The whole object as a value (managedFields parsed back in).
    pub fn into_value(mut self) -> Value {
        if let Some(raw) = self.managed_fields.take() {
            if let Some(meta) = self
                .object
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
            {
                if let Ok(entries) = serde_json::from_str(raw.get()) {
                    meta.insert(MANAGED_FIELDS.into(), entries);
                }
            }
        }
        self.object
    }
}

/// An object's `metadata` for an answer, with managedFields that may still be JSON text.
/// Serialized with its keys in order, managedFields among them, as a [`Map`] would be.
#[derive(Debug)]
pub struct Metadata {
    fields: Map<String, Value>,
    managed_fields: Option<Box<RawValue>>,
}

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(
            self.fields.len() + usize::from(self.managed_fields.is_some()),
        ))?;
        let mut managed = self.managed_fields.as_deref();
        for (key, value) in &self.fields {
            if let Some(raw) = managed.filter(|_| key.as_str() > MANAGED_FIELDS) {
                map.serialize_entry(MANAGED_FIELDS, raw)?;
                managed = None;
            }
            map.serialize_entry(key, value)?;
        }
        if let Some(raw) = managed {
            map.serialize_entry(MANAGED_FIELDS, raw)?;
        }
        map.end()
    }
}

/// The path of the value kept as text.
const KEPT_AS_TEXT: &[&str] = &["metadata", MANAGED_FIELDS];

/// One level of a stored object on the way to [`KEPT_AS_TEXT`], whose rest is below it:
/// values, except the value at that path, kept as text. A level that is not an object fails,
/// and the caller decodes the whole object instead.
struct Level(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Level {
    type Value = (Map<String, Value>, Option<Box<RawValue>>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Level {
    type Value = (Map<String, Value>, Option<Box<RawValue>>);

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut level = Map::new();
        let mut kept = None;
        while let Some(key) = map.next_key::<String>()? {
            match self.0 {
                [name] if key == *name => kept = Some(map.next_value::<Box<RawValue>>()?),
                [name, rest @ ..] if key == *name => {
                    let (below, text) = map.next_value_seed(Level(rest))?;
                    level.insert(key, Value::Object(below));
                    kept = text;
                }
                _ => {
                    level.insert(key, map.next_value()?);
                }
            }
        }
        Ok((level, kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::scheme::test_lookup as lookup_builtin;
    use serde_json::json;

    fn stored(object: &Value) -> Vec<u8> {
        serde_json::to_vec(object).unwrap()
    }

    #[test]
    fn managed_fields_pass_through_unparsed_and_come_out_in_place() {
        let cm = lookup_builtin("", "v1", "configmaps").unwrap();
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "d", "labels": {"x": "y"}, "uid": "u",
                         "managedFields": [{"manager": "m", "operation": "Update",
                                            "fieldsType": "FieldsV1",
                                            "fieldsV1": {"f:data": {".": {}, "f:k": {}}}}]},
            "data": {"k": "v"}});
        let listed = Listed::decode(&stored(&object), 7, cm).unwrap();
        assert!(listed.managed_fields.is_some());
        assert!(listed.object["metadata"].get(MANAGED_FIELDS).is_none());
        assert_eq!(listed.object["metadata"]["resourceVersion"], "7");
        assert_eq!(listed.object["data"], json!({"k": "v"}));

        let mut expected = object["metadata"].clone();
        expected["resourceVersion"] = json!("7");
        let again = Listed::decode(&stored(&object), 7, cm).unwrap();
        let text = serde_json::to_string(&again.into_metadata()).unwrap();
        // The same text a parsed map gives: managedFields between labels and name.
        assert_eq!(text, serde_json::to_string(&expected).unwrap());

        let mut whole = object.clone();
        whole["metadata"]["resourceVersion"] = json!("7");
        assert_eq!(
            Listed::decode(&stored(&object), 7, cm)
                .unwrap()
                .into_value(),
            whole
        );
    }

    #[test]
    fn odd_shapes_are_decoded_whole() {
        let cm = lookup_builtin("", "v1", "configmaps").unwrap();
        for object in [
            json!({"metadata": "not an object", "data": {}}),
            json!({"data": {"k": "v"}}),
            json!({"metadata": {"name": "last", "managedFields": null}}),
        ] {
            let listed = Listed::decode(&stored(&object), 3, cm).unwrap();
            let text = serde_json::to_string(&listed.into_value()).unwrap();
            let decoded = object_meta::decode(&stored(&object), 3, cm).unwrap();
            assert_eq!(text, serde_json::to_string(&decoded).unwrap(), "{object}");
        }
        let bad = Listed::decode(b"{not json", 1, cm);
        assert!(bad.is_err());
    }
}
