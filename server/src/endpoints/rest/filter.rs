//! The label and field selectors of a list or watch request, applied to objects.

use serde_json::Value;

use crate::machinery::selectors::{FieldSelector, LabelSelector};
use crate::machinery::status::Status;
use crate::registry::ResourceType;
use crate::serving::query::Query;

#[derive(Clone, Debug, Default)]
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub fn from_query(query: &Query, rt: &ResourceType) -> Result<Filter, Status> {
        let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())
            .map_err(|e| Status::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(
            query.get("fieldSelector").unwrap_or_default(),
            &rt.selectable_fields(),
        )
        .map_err(|e| {
            Status::bad_request(format!(
                "{e}; {} objects can be selected by {}",
                &rt.kind,
                rt.selectable_fields().join(", ")
            ))
        })?;
        Ok(Filter { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches_object(object) && self.fields.matches_object(object)
    }
}
