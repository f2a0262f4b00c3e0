//! SQL text shared by the Postgres and SQLite backends.
//!
//! Both backends use the same tables; the read queries differ only in how parameters are
//! written, so they are built here once.
//!
//! Each value is stored once, in the change log `trellis_events` (one row per revision). An
//! object row in `trellis_objects` (primary key `(resource, cluster, namespace, name)`) holds
//! only the revision of the object's current state; an event's `prev_rev` is the revision of
//! the state it replaced. Lists read the current objects joined to their state and, for a past
//! snapshot, the first change after it of every key, joined to the state it replaced.

use crate::key::{ListPosition, ListScope};

/// How a backend writes the n-th (1-based) parameter.
#[derive(Clone, Copy)]
pub(crate) enum Placeholder {
    Dollar,
    Question,
}

/// A parameter value of a generated query.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

pub(crate) struct Query {
    pub sql: String,
    pub params: Vec<Param>,
}

struct Builder {
    style: Placeholder,
    params: Vec<Param>,
}

impl Placeholder {
    /// How the n-th (1-based) parameter is written.
    fn param(self, n: usize) -> String {
        match self {
            Placeholder::Dollar => format!("${n}"),
            Placeholder::Question => format!("?{n}"),
        }
    }
}

impl Builder {
    fn push(&mut self, p: Param) -> String {
        self.params.push(p);
        self.style.param(self.params.len())
    }

    /// `resource = … [AND cluster = …] [AND namespace = …] [AND (cluster, namespace, name) > …]`
    fn scope(&mut self, scope: &ListScope, after: Option<&ListPosition>, alias: &str) -> String {
        let mut sql = format!(
            "{alias}resource = {}",
            self.push(Param::Text(scope.resource.clone()))
        );
        if let Some(cluster) = &scope.cluster {
            sql += &format!(
                " AND {alias}cluster = {}",
                self.push(Param::Text(cluster.clone()))
            );
        }
        if let Some(namespace) = &scope.namespace {
            sql += &format!(
                " AND {alias}namespace = {}",
                self.push(Param::Text(namespace.clone()))
            );
        }
        if let Some(after) = after {
            let (c, ns, n) = (
                self.push(Param::Text(after.cluster.clone())),
                self.push(Param::Text(after.namespace.clone())),
                self.push(Param::Text(after.name.clone())),
            );
            sql +=
                &format!(" AND ({alias}cluster, {alias}namespace, {alias}name) > ({c}, {ns}, {n})");
        }
        sql
    }

    fn limit(&mut self, limit: Option<usize>) -> String {
        match limit {
            Some(l) => format!(" LIMIT {}", self.push(Param::Int(l as i64 + 1))),
            None => String::new(),
        }
    }
}

/// The current objects, each joined to the log row holding its state. Every query reading it
/// addresses the log by primary key, one row per object.
pub(crate) const OBJECTS_FROM: &str =
    "trellis_objects o JOIN trellis_events e ON e.rev = o.mod_rev";

/// An object's columns in [`OBJECTS_FROM`].
pub(crate) const OBJECT_COLUMNS: &str =
    "o.resource, o.cluster, o.namespace, o.name, e.uid, e.create_rev, o.mod_rev, e.value";

/// The current object at one key (parameters 1–4: resource, cluster, namespace, name).
pub(crate) fn get_object(style: Placeholder) -> String {
    let [p1, p2, p3, p4] = [1, 2, 3, 4].map(|n| style.param(n));
    format!(
        "SELECT {OBJECT_COLUMNS} FROM {OBJECTS_FROM} \
         WHERE o.resource = {p1} AND o.cluster = {p2} AND o.namespace = {p3} AND o.name = {p4}"
    )
}

/// Current objects in scope (with `max_rev`: only those unchanged since it), in list order.
pub(crate) fn list_objects(
    style: Placeholder,
    scope: &ListScope,
    after: Option<&ListPosition>,
    max_rev: Option<u64>,
    limit: Option<usize>,
) -> Query {
    let mut b = Builder {
        style,
        params: Vec::new(),
    };
    let mut sql = format!(
        "SELECT {OBJECT_COLUMNS} FROM {OBJECTS_FROM} WHERE {}",
        b.scope(scope, after, "o.")
    );
    if let Some(rev) = max_rev {
        sql += &format!(" AND o.mod_rev <= {}", b.push(Param::Int(rev as i64)));
    }
    sql += " ORDER BY o.cluster, o.namespace, o.name";
    sql += &b.limit(limit);
    Query {
        sql,
        params: b.params,
    }
}

/// The state at `rev` of every key in scope changed after `rev` that existed at `rev`, in list
/// order, in the same column layout as [`OBJECT_COLUMNS`].
pub(crate) fn list_changed_since(
    style: Placeholder,
    scope: &ListScope,
    after: Option<&ListPosition>,
    rev: u64,
    limit: Option<usize>,
) -> Query {
    let mut b = Builder {
        style,
        params: Vec::new(),
    };
    let inner_scope = b.scope(scope, after, "");
    let rev_param = b.push(Param::Int(rev as i64));
    let mut sql = format!(
        "SELECT e.resource, e.cluster, e.namespace, e.name, p.uid, p.create_rev, p.rev, p.value \
         FROM trellis_events e JOIN ( \
           SELECT cluster, namespace, name, MIN(rev) AS first_rev FROM trellis_events \
           WHERE {inner_scope} AND rev > {rev_param} GROUP BY cluster, namespace, name \
         ) f ON e.rev = f.first_rev \
         JOIN trellis_events p ON p.rev = e.prev_rev \
         ORDER BY e.cluster, e.namespace, e.name"
    );
    sql += &b.limit(limit);
    Query {
        sql,
        params: b.params,
    }
}

/// An event's columns: its own row `e` and, for a change to an existing object, the row `p`
/// holding the state it replaced.
pub(crate) const EVENT_COLUMNS: &str =
    "e.rev, e.kind, e.resource, e.cluster, e.namespace, e.name, e.uid, e.create_rev, e.value, e.prev_rev, p.value";

/// The newest revision of the next stretch of the log a compaction sweep takes on: at most
/// `limit` revisions after `swept` (parameter 1), up to `compacted` (2); parameter 3 is the limit.
pub(crate) fn sweep_bound(style: Placeholder) -> String {
    let [p1, p2, p3] = [1, 2, 3].map(|n| style.param(n));
    format!(
        "SELECT MAX(rev) FROM (SELECT rev FROM trellis_events \
         WHERE rev > {p1} AND rev <= {p2} ORDER BY rev LIMIT {p3}) chunk"
    )
}

/// Removes what the revisions after `swept` (parameter 1) up to `upto` (2) superseded: the
/// states they name as `prev_rev`, and the deletions (kind, parameter 3) themselves.
pub(crate) fn sweep_delete(style: Placeholder) -> String {
    let [p1, p2, p3] = [1, 2, 3].map(|n| style.param(n));
    format!(
        "DELETE FROM trellis_events WHERE rev IN ( \
           SELECT prev_rev FROM trellis_events \
             WHERE rev > {p1} AND rev <= {p2} AND prev_rev IS NOT NULL \
           UNION ALL \
           SELECT rev FROM trellis_events WHERE rev > {p1} AND rev <= {p2} AND kind = {p3})"
    )
}

/// Events after `after`, optionally only those in `scope`, in revision order.
pub(crate) fn events_after(
    style: Placeholder,
    after: u64,
    scope: Option<&ListScope>,
    limit: usize,
) -> Query {
    let mut b = Builder {
        style,
        params: Vec::new(),
    };
    let mut sql = format!(
        "SELECT {EVENT_COLUMNS} FROM trellis_events e \
         LEFT JOIN trellis_events p ON p.rev = e.prev_rev WHERE e.rev > {}",
        b.push(Param::Int(after as i64))
    );
    if let Some(scope) = scope {
        sql += &format!(" AND {}", b.scope(scope, None, "e."));
    }
    sql += &format!(" ORDER BY e.rev LIMIT {}", b.push(Param::Int(limit as i64)));
    Query {
        sql,
        params: b.params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let scope = ListScope::namespace("c1", "core/configmaps", "default");
        let after = ListPosition {
            cluster: "c1".into(),
            namespace: "default".into(),
            name: "x".into(),
        };
        let q = list_objects(Placeholder::Dollar, &scope, Some(&after), Some(7), Some(10));
        assert!(q
            .sql
            .contains("o.resource = $1 AND o.cluster = $2 AND o.namespace = $3"));
        assert!(q
            .sql
            .contains("(o.cluster, o.namespace, o.name) > ($4, $5, $6)"));
        assert!(q.sql.contains("o.mod_rev <= $7"));
        assert!(q.sql.ends_with("LIMIT $8"));
        assert_eq!(q.params.len(), 8);
        assert_eq!(
            q.params[7],
            Param::Int(11),
            "one more than the limit tells if more exist"
        );

        let q = events_after(Placeholder::Question, 5, None, 100);
        assert_eq!(q.params, vec![Param::Int(5), Param::Int(100)]);
        assert!(q.sql.contains("e.rev > ?1") && q.sql.contains("LIMIT ?2"));
    }
}
