//! Table columns of custom resources, from their CRD's `additionalPrinterColumns`: each cell
//! is the column's JSONPath evaluated on the object (`date` columns shown as ages), as
//! kube-apiserver's CRD table convertor does.

use serde_json::{json, Value};
use serde_json_path::JsonPath;

use crate::registry::PrinterColumn;

pub struct Columns<'a> {
    columns: Vec<(&'a PrinterColumn, Option<JsonPath>)>,
}

impl<'a> Columns<'a> {
    /// Parses each column's path once per table; a path that does not parse shows nothing.
    pub fn new(columns: &'a [PrinterColumn]) -> Columns<'a> {
        Columns {
            columns: columns.iter().map(|c| (c, parse(&c.json_path))).collect(),
        }
    }

    pub fn definitions(&self) -> Vec<Value> {
        let mut out = vec![json!({
            "name": "Name", "type": "string", "format": "name",
            "description": "Name must be unique within a namespace.", "priority": 0,
        })];
        out.extend(self.columns.iter().map(|(c, _)| {
            json!({
                "name": c.name,
                "type": c.type_,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        }));
        out
    }

    pub fn cells(&self, object: &Value) -> Vec<Value> {
        let mut out = vec![object
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null)];
        for (column, path) in &self.columns {
            let Some(path) = path else {
                out.push(Value::Null);
                continue;
            };
            let found: Vec<&Value> = path.query(object).all();
            out.push(match found.as_slice() {
                [] => Value::Null,
                [one] if column.type_ == "date" => json!(super::table::since(Some(one))),
                [one] => (*one).clone(),
                many => Value::String(
                    many.iter()
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            });
        }
        out
    }
}

/// Kubernetes JSONPath (`.spec.replicas`, `{.status.conditions[?(@.type=="Ready")].status}`)
/// as RFC 9535 JSONPath.
fn parse(path: &str) -> Option<JsonPath> {
    let inner = path.trim();
    let inner = inner
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(inner);
    let inner = inner.strip_prefix('$').unwrap_or(inner);
    JsonPath::parse(&format!("${inner}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, type_: &str, path: &str) -> PrinterColumn {
        PrinterColumn {
            name: name.into(),
            type_: type_.into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: path.into(),
        }
    }

    #[test]
    fn cells_follow_the_json_paths() {
        let columns = [
            column("Replicas", "integer", ".spec.replicas"),
            column(
                "Ready",
                "string",
                ".status.conditions[?(@.type==\"Ready\")].status",
            ),
            column("Missing", "string", ".spec.nothing"),
            column("Age", "date", ".metadata.creationTimestamp"),
        ];
        let table = Columns::new(&columns);
        let object = json!({
            "metadata": {"name": "w", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"replicas": 3},
            "status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}]},
        });
        let cells = table.cells(&object);
        assert_eq!(
            cells[..4],
            [json!("w"), json!(3), json!("True"), Value::Null]
        );
        assert!(
            cells[4].as_str().unwrap().ends_with('y') || cells[4].as_str().unwrap().ends_with('d'),
            "{}",
            cells[4]
        );
        assert_eq!(table.definitions()[1]["name"], "Replicas");
    }
}
