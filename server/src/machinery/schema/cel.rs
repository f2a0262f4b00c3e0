//! `x-kubernetes-validations`: CEL rules on schema nodes, compiled once when the schema is read
//! and run against each object (and, for transition rules, the object it replaces).
//!
//! The interpreter is the `cel` crate. It is dynamically typed: a rule that refers to a field
//! the schema does not have compiles here and fails when run (kube-apiserver rejects it when
//! the CRD is written). Rules have no cost budget here; the work is bounded by the object's size.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, LazyLock};

use cel::objects::{Key, OptionalValue};
use cel::{Context, Env, Program, Value as Cel};
use serde_json::Value;

use super::field_error::{child, key, FieldError, DUPLICATE, FORBIDDEN, INVALID, REQUIRED};
use super::structural::{AdditionalProperties, Structural};

/// The CEL environment every rule compiles and runs in: the standard library, macros and the
/// strings/lists/math extensions, plus Kubernetes' list library from [`super::kube_lists`].
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    // An extension that fails to register only makes its functions unknown at run time.
    let _ = env.add_extension(cel::extensions::strings);
    let _ = env.add_extension(cel::extensions::lists);
    let _ = env.add_extension(cel::extensions::math);
    let _ = env.add_extension(super::kube_lists::extension);
    Arc::new(env)
});

/// Deeper brackets than this are refused before parsing: the parser recurses per level.
const MAX_RULE_NESTING: usize = 32;
/// Values nested deeper than this are not handed to CEL (serde_json's own limit is 128).
const MAX_VALUE_DEPTH: usize = 128;

const REASONS: [&str; 4] = [DUPLICATE, FORBIDDEN, INVALID, REQUIRED];

/// The evaluation work one object may cost, kube-apiserver's per-object CEL budget. The crate
/// cannot meter a running program, so each run is charged up front by an estimate: the size
/// of the value it sees, raised to the rule's comprehension nesting (`all` inside `all` over
/// n items is n² steps). A rule that would overdraw is not run.
const COST_BUDGET: u64 = 10_000_000;

const BUDGET_EXHAUSTED: &str =
    "validation failed due to running out of cost budget, no further validation rules will be run";

/// One compiled `x-kubernetes-validations` entry.
#[derive(Debug)]
pub struct Rule {
    pub rule: String,
    pub message: Option<String>,
    pub message_expression: Option<Program>,
    /// One of the `FieldValue*` cause types; `FieldValueInvalid` unless `reason` says otherwise.
    pub reason: &'static str,
    /// Where the error points, below the node, e.g. `.spec.replicas`.
    pub field_path: Option<String>,
    pub optional_old_self: bool,
    /// Uses `oldSelf`: only run on updates, where an old value exists.
    pub transition: bool,
    /// How deeply comprehensions (`all`, `map`, ...) nest in the rule; prices a run.
    comprehension_depth: u32,
    program: Program,
}

/// How deeply comprehensions nest in `expr`. A bound on the walk keeps a pathological
/// expression from overflowing the stack; past it, the rule is priced as deep.
fn comprehension_depth(expr: &cel::IdedExpr, budget: u32) -> u32 {
    use cel::common::ast::{EntryExpr, Expr};
    if budget == 0 {
        return u32::MAX / 2;
    }
    let sub = |e: &cel::IdedExpr| comprehension_depth(e, budget - 1);
    match &expr.expr {
        Expr::Comprehension(c) => {
            let inner = [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ];
            let deepest = inner.iter().map(|e| sub(e)).max().unwrap_or(0);
            // The range is evaluated once, outside the loop.
            sub(&c.iter_range).max(deepest.saturating_add(1).min(u32::MAX / 2))
        }
        Expr::Call(call) => call
            .target
            .iter()
            .map(|t| sub(t))
            .chain(call.args.iter().map(sub))
            .max()
            .unwrap_or(0),
        Expr::List(list) => list.elements.iter().map(sub).max().unwrap_or(0),
        Expr::Map(map) => map
            .entries
            .iter()
            .map(|e| match &e.expr {
                EntryExpr::MapEntry(m) => sub(&m.key).max(sub(&m.value)),
                EntryExpr::StructField(f) => sub(&f.value),
            })
            .max()
            .unwrap_or(0),
        Expr::Struct(st) => st
            .entries
            .iter()
            .map(|e| match &e.expr {
                EntryExpr::MapEntry(m) => sub(&m.key).max(sub(&m.value)),
                EntryExpr::StructField(f) => sub(&f.value),
            })
            .max()
            .unwrap_or(0),
        Expr::Select(select) => sub(&select.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => 0,
    }
}

/// Names a rule may use without declaring them: its variables, type names and the
/// namespaces of library functions.
const KNOWN_IDENTS: [&str; 18] = [
    "self",
    "oldSelf",
    "bool",
    "bytes",
    "double",
    "int",
    "uint",
    "string",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
    "optional",
    "math",
    "strings",
    "lists",
    "null",
];

/// What the rule's references get wrong against its node's schema, as kube-apiserver's type
/// checker would say it when the CRD is written: names that are not declared, and fields of
/// `self`/`oldSelf` the schema does not have. The crate is untyped, so without this such a
/// rule would only fail on every request.
pub fn reference_errors(rule: &Rule, schema: &Structural, is_root: bool) -> Vec<String> {
    let mut bound = Vec::new();
    collect_bound(rule.program.expression(), &mut bound, 64);
    let mut errors = Vec::new();
    let mut exprs = vec![(rule.program.expression(), 0usize)];
    if let Some(m) = &rule.message_expression {
        collect_bound(m.expression(), &mut bound, 64);
        exprs.push((m.expression(), 0));
    }
    while let Some((expr, depth)) = exprs.pop() {
        if depth > 256 {
            continue;
        }
        if let Some(err) = select_error(expr, schema, is_root) {
            if !errors.contains(&err) {
                errors.push(err);
            }
        }
        if let cel::common::ast::Expr::Ident(name) = &expr.expr {
            if !KNOWN_IDENTS.contains(&name.as_str()) && !bound.contains(name) {
                let err = format!("undeclared reference to '{name}'");
                if !errors.contains(&err) {
                    errors.push(err);
                }
            }
        }
        for child in children(expr) {
            exprs.push((child, depth + 1));
        }
    }
    errors
}

fn entry_children(e: &cel::common::ast::EntryExpr) -> Vec<&cel::IdedExpr> {
    use cel::common::ast::EntryExpr;
    match e {
        EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
        EntryExpr::StructField(f) => vec![&f.value],
    }
}

fn children(expr: &cel::IdedExpr) -> Vec<&cel::IdedExpr> {
    use cel::common::ast::Expr;
    match &expr.expr {
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::Call(call) => call
            .target
            .iter()
            .map(|t| t.as_ref())
            .chain(call.args.iter())
            .collect(),
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .flat_map(|e| entry_children(&e.expr))
            .collect(),
        Expr::Struct(st) => st
            .entries
            .iter()
            .flat_map(|e| entry_children(&e.expr))
            .collect(),
        Expr::Select(select) => vec![select.operand.as_ref()],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

/// The variables comprehensions bind anywhere in `expr`.
fn collect_bound(expr: &cel::IdedExpr, bound: &mut Vec<String>, budget: u32) {
    if budget == 0 {
        return;
    }
    if let cel::common::ast::Expr::Comprehension(c) = &expr.expr {
        bound.push(c.iter_var.clone());
        bound.extend(c.iter_var2.clone());
        bound.push(c.accu_var.clone());
    }
    for child in children(expr) {
        collect_bound(child, bound, budget - 1);
    }
}

/// For `self.a.b` (or `has(self.a.b)`): the first step the schema does not declare.
fn select_error(expr: &cel::IdedExpr, schema: &Structural, is_root: bool) -> Option<String> {
    use cel::common::ast::Expr;
    let Expr::Select(_) = &expr.expr else {
        return None;
    };
    // Unwind the chain down to its root identifier.
    let mut fields = Vec::new();
    let mut cur = expr;
    while let Expr::Select(select) = &cur.expr {
        fields.push(select.field.as_str());
        cur = &select.operand;
    }
    let Expr::Ident(root) = &cur.expr else {
        return None;
    };
    if root != "self" && root != "oldSelf" {
        return None;
    }
    let mut node = schema;
    let mut top = true;
    for field in fields.iter().rev() {
        if ((top && is_root) || node.embedded_resource)
            && matches!(*field, "apiVersion" | "kind" | "metadata")
        {
            return None;
        }
        top = false;
        if node.preserve_unknown_fields || node.int_or_string || node.ty.is_empty() {
            return None;
        }
        if let Some(sub) = node.properties.get(*field) {
            node = sub;
            continue;
        }
        match &node.additional_properties {
            Some(AdditionalProperties::Schema(sub)) => node = sub,
            Some(AdditionalProperties::Allowed(true)) => return None,
            _ if node.ty == "object" => return Some(format!("undefined field '{field}'")),
            // Selecting from a scalar or a list is a type error.
            _ => {
                return Some(format!(
                    "type '{}' does not support field selection",
                    node.ty
                ))
            }
        }
    }
    None
}

/// The JSON nodes in `value`, counted without recursion.
fn node_count(value: &Value) -> u64 {
    let mut count = 0u64;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        count += 1;
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(fields) => stack.extend(fields.values()),
            _ => {}
        }
    }
    count
}

/// What is left of the object's budget.
struct Budget {
    left: u64,
    exhausted: bool,
}

fn compile(source: &str) -> Result<Program, String> {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    for c in source.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_RULE_NESTING {
        return Err(format!("nesting deeper than {MAX_RULE_NESTING} levels"));
    }
    // The parser is third-party code fed user input; a panic in it must not take a request down.
    match catch_unwind(AssertUnwindSafe(|| ENV.compile(source))) {
        Ok(Ok(program)) => Ok(program),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the expression could not be parsed".to_string()),
    }
}

/// Reads and compiles the `x-kubernetes-validations` list at `path`.
pub fn compile_rules(raw: &Value, path: &str, errs: &mut Vec<FieldError>) -> Vec<Rule> {
    let Some(entries) = raw.as_array() else {
        errs.push(FieldError::invalid(path, raw, "must be an array"));
        return Vec::new();
    };
    let mut rules = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if let Some(rule) = compile_rule(entry, &at, errs) {
            rules.push(rule);
        }
    }
    rules
}

fn string_field(entry: &Value, name: &str, at: &str, errs: &mut Vec<FieldError>) -> Option<String> {
    match entry.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => {
            errs.push(FieldError::invalid(
                child(at, name),
                other,
                "must be a string",
            ));
            None
        }
    }
}

fn compile_rule(entry: &Value, at: &str, errs: &mut Vec<FieldError>) -> Option<Rule> {
    if !entry.is_object() {
        errs.push(FieldError::invalid(at, entry, "must be an object"));
        return None;
    }
    let before = errs.len();
    let source = string_field(entry, "rule", at, errs).unwrap_or_default();
    if source.trim().is_empty() {
        errs.push(FieldError::required(
            child(at, "rule"),
            "rule is not specified",
        ));
    }
    let message = string_field(entry, "message", at, errs);
    if let Some(m) = &message {
        if m.contains('\n') {
            errs.push(FieldError::invalid(
                child(at, "message"),
                &Value::String(m.clone()),
                "message must not contain line breaks",
            ));
        }
    }
    let reason = match string_field(entry, "reason", at, errs) {
        None => INVALID,
        Some(r) => match REASONS.iter().find(|known| **known == r) {
            Some(known) => known,
            None => {
                let supported: Vec<String> = REASONS.iter().map(|s| s.to_string()).collect();
                errs.push(FieldError::not_supported(
                    child(at, "reason"),
                    &Value::String(r),
                    &supported,
                ));
                INVALID
            }
        },
    };
    let field_path = string_field(entry, "fieldPath", at, errs);
    if let Some(fp) = &field_path {
        if field_path_segments(fp).is_none() {
            errs.push(FieldError::invalid(
                child(at, "fieldPath"),
                &Value::String(fp.clone()),
                "must be a valid path",
            ));
        }
    }
    let optional_old_self = match entry.get("optionalOldSelf") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            errs.push(FieldError::invalid(
                child(at, "optionalOldSelf"),
                other,
                "must be a boolean",
            ));
            false
        }
    };
    let program = if source.trim().is_empty() {
        None
    } else {
        match compile(&source) {
            Ok(p) => Some(p),
            Err(e) => {
                errs.push(FieldError::invalid(
                    child(at, "rule"),
                    &Value::String(source.clone()),
                    &format!("compilation failed: {e}"),
                ));
                None
            }
        }
    };
    let transition = program
        .as_ref()
        .is_some_and(|p| p.references().has_variable("oldSelf"));
    if optional_old_self && !transition {
        errs.push(FieldError::invalid(
            child(at, "optionalOldSelf"),
            &Value::Bool(true),
            "may not be set if the rule does not use oldSelf",
        ));
    }
    let message_expression = match string_field(entry, "messageExpression", at, errs) {
        None => None,
        Some(src) => match compile(&src) {
            Ok(p) => Some(p),
            Err(e) => {
                errs.push(FieldError::invalid(
                    child(at, "messageExpression"),
                    &Value::String(src),
                    &format!("messageExpression compilation failed: {e}"),
                ));
                None
            }
        },
    };
    if errs.len() != before {
        return None;
    }
    let program = program?;
    let depth = comprehension_depth(program.expression(), 64).max(
        message_expression
            .as_ref()
            .map_or(0, |m| comprehension_depth(m.expression(), 64)),
    );
    Some(Rule {
        comprehension_depth: depth,
        rule: source,
        message,
        message_expression,
        reason,
        field_path,
        optional_old_self,
        transition,
        program,
    })
}

/// `.a.b['c']` as names; `None` when it is not such a path.
fn field_path_segments(path: &str) -> Option<Vec<String>> {
    let mut rest = path;
    let mut out = Vec::new();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']")?;
            out.push(after[..end].to_string());
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let name = &after[..end];
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return None;
            }
            out.push(name.to_string());
            rest = &after[end..];
        } else {
            return None;
        }
    }
    Some(out)
}

/// A JSON value as CEL sees it: `number` fields are doubles even when written as `2`.
fn to_cel(value: &Value, schema: Option<&Structural>, depth: usize) -> Result<Cel, String> {
    if depth > MAX_VALUE_DEPTH {
        return Err("value nested too deeply".to_string());
    }
    Ok(match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Number(n) => {
            let double = schema.is_some_and(|s| s.ty == "number");
            match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) if !double => Cel::Int(i),
                (None, Some(u), _) if !double => Cel::UInt(u),
                (_, _, Some(f)) => Cel::Float(f),
                _ => Cel::Null,
            }
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.items.as_deref());
            let list: Result<Vec<Cel>, String> = items
                .iter()
                .map(|v| to_cel(v, item_schema, depth + 1))
                .collect();
            Cel::List(Arc::new(list?))
        }
        Value::Object(fields) => {
            let mut map: HashMap<Key, Cel> = HashMap::with_capacity(fields.len());
            for (k, v) in fields {
                let sub = schema.and_then(|s| s.property_schema(k));
                map.insert(Key::from(k.as_str()), to_cel(v, sub, depth + 1)?);
            }
            Cel::Map(map.into())
        }
    })
}

/// What a rule run came to.
enum Outcome {
    Pass,
    Fail,
    Error(String),
}

fn bind(ctx: &mut Context<'_, '_>, name: &str, value: Cel) -> Result<(), String> {
    let val = value
        .try_into()
        .map_err(|e: cel::ExecutionError| e.to_string())?;
    ctx.add_variable_as_val(name, val);
    Ok(())
}

/// The context a node's rules run in: `self`, and `oldSelf` as the old value when there is
/// one, or (for `optionalOldSelf` rules) as an optional. Built once per node, not per rule.
fn context(
    schema: &Structural,
    value: &Value,
    old: Option<&Value>,
    optional_old_self: bool,
) -> Result<Context<'static, 'static>, String> {
    let mut ctx = Context::with_env(Arc::clone(&ENV));
    bind(&mut ctx, "self", to_cel(value, Some(schema), 0)?)?;
    let old = old.map(|o| to_cel(o, Some(schema), 0)).transpose()?;
    let bound = match (old, optional_old_self) {
        (Some(o), false) => Some(o),
        (Some(o), true) => Some(Cel::Opaque(Arc::new(OptionalValue::of(o)))),
        (None, true) => Some(Cel::Opaque(Arc::new(OptionalValue::none()))),
        (None, false) => None,
    };
    if let Some(bound) = bound {
        bind(&mut ctx, "oldSelf", bound)?;
    }
    Ok(ctx)
}

fn run(program: &Program, ctx: &Context<'_, '_>) -> Result<Cel, String> {
    match catch_unwind(AssertUnwindSafe(|| program.execute(ctx))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("internal error in the CEL interpreter".to_string()),
    }
}

fn evaluate(rule: &Rule, ctx: &Context<'_, '_>) -> Outcome {
    match run(&rule.program, ctx) {
        Ok(Cel::Bool(true)) => Outcome::Pass,
        Ok(Cel::Bool(false)) => Outcome::Fail,
        Ok(other) => Outcome::Error(format!(
            "rule did not evaluate to a bool: {:?}",
            other.type_of()
        )),
        Err(e) => Outcome::Error(e),
    }
}

/// The message of a failed rule: `messageExpression` if it yields a non-blank string, else
/// `message`, else `failed rule: <rule>`.
fn failure_message(rule: &Rule, ctx: &Context<'_, '_>) -> String {
    if let Some(expr) = &rule.message_expression {
        if let Ok(Cel::String(s)) = run(expr, ctx) {
            if !s.trim().is_empty() && !s.contains('\n') {
                return s.trim().to_string();
            }
        }
    }
    match &rule.message {
        Some(m) if !m.trim().is_empty() => m.trim().to_string(),
        _ => format!("failed rule: {}", rule.rule.trim()),
    }
}

fn failure(
    rule: &Rule,
    schema: &Structural,
    value: &Value,
    path: &str,
    message: String,
) -> FieldError {
    let field = match &rule.field_path {
        Some(fp) => field_path_target(schema, fp, path).unwrap_or_else(|_| path.to_string()),
        None => path.to_string(),
    };
    // Objects and lists are left out of the message; scalars are shown.
    let shown = match value {
        Value::Object(_) | Value::Array(_) => None,
        scalar => Some(scalar),
    };
    match (rule.reason, shown) {
        (REQUIRED, _) => FieldError::required(field, &message),
        (FORBIDDEN, _) => FieldError::forbidden(field, &message),
        (DUPLICATE, shown) => FieldError::duplicate(field, shown),
        (_, Some(v)) => FieldError::invalid(field, v, &message),
        (_, None) => FieldError::invalid_omitting_value(field, &message),
    }
}

/// The rule's message if it has one, else its source: how runtime errors name a rule.
fn rule_name(rule: &Rule) -> &str {
    match &rule.message {
        Some(m) if !m.trim().is_empty() => m.trim(),
        _ => rule.rule.trim(),
    }
}

/// `path` extended by a rule's `fieldPath`, resolved against the node's schema: declared
/// properties are names (`a.b`), keys of an `additionalProperties` map are keys (`a[k]`).
pub fn field_path_target(
    schema: &Structural,
    field_path: &str,
    path: &str,
) -> Result<String, &'static str> {
    let segments =
        field_path_segments(field_path).ok_or("expected [ or . at the start of each step")?;
    let mut node = schema;
    let mut out = path.to_string();
    for seg in segments {
        if !node.properties.is_empty() {
            node = node
                .properties
                .get(&seg)
                .ok_or("does not refer to a valid field")?;
            out = child(&out, &seg);
        } else if let Some(AdditionalProperties::Schema(sub)) = &node.additional_properties {
            node = sub;
            out = key(&out, &seg);
        } else {
            return Err("does not refer to a valid field");
        }
    }
    Ok(out)
}

/// Runs every rule of `schema` and below against `value`; `old` is the value this one replaces
/// on an update, correlated by property name and list-map key.
pub fn validate(
    schema: &Structural,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let mut budget = Budget {
        left: COST_BUDGET,
        exhausted: false,
    };
    walk(schema, value, old, path, errs, &mut budget);
}

fn walk(
    schema: &Structural,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
    budget: &mut Budget,
) {
    if !schema.has_rules || value.is_null() || budget.exhausted {
        return;
    }
    let size = node_count(value).saturating_add(old.map_or(0, node_count));
    let mut plain = None;
    let mut optional = None;
    for rule in &schema.validations {
        if rule.transition && old.is_none() && !rule.optional_old_self {
            continue;
        }
        let cost = size.saturating_pow(rule.comprehension_depth.max(1));
        if cost > budget.left {
            budget.exhausted = true;
            errs.push(FieldError::invalid(
                path,
                &Value::String(schema.ty.clone()),
                BUDGET_EXHAUSTED,
            ));
            return;
        }
        budget.left -= cost;
        let slot = if rule.optional_old_self {
            &mut optional
        } else {
            &mut plain
        };
        let ctx =
            match slot.get_or_insert_with(|| context(schema, value, old, rule.optional_old_self)) {
                Ok(ctx) => &*ctx,
                Err(e) => {
                    errs.push(FieldError::invalid(
                        path,
                        &Value::String(schema.ty.clone()),
                        &format!("{e} evaluating rule: {}", rule_name(rule)),
                    ));
                    continue;
                }
            };
        match evaluate(rule, ctx) {
            Outcome::Pass => {}
            Outcome::Fail => {
                let message = failure_message(rule, ctx);
                errs.push(failure(rule, schema, value, path, message));
            }
            Outcome::Error(e) => errs.push(FieldError::invalid(
                path,
                &Value::String(schema.ty.clone()),
                &format!("{e} evaluating rule: {}", rule_name(rule)),
            )),
        }
    }
    match value {
        Value::Object(fields) => {
            for (name, sub) in fields {
                if let Some(sub_schema) = schema.property_schema(name) {
                    let old_sub = old.and_then(|o| o.get(name));
                    walk(sub_schema, sub, old_sub, &child(path, name), errs, budget);
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = schema.items.as_deref() else {
                return;
            };
            for (i, item) in items.iter().enumerate() {
                let old_item = match (schema.list_type.as_deref(), old) {
                    (Some("map"), Some(Value::Array(olds))) => olds
                        .iter()
                        .find(|o| same_keys(&schema.list_map_keys, item, o)),
                    _ => None,
                };
                walk(
                    item_schema,
                    item,
                    old_item,
                    &format!("{path}[{i}]"),
                    errs,
                    budget,
                );
            }
        }
        _ => {}
    }
}

fn same_keys(keys: &[String], a: &Value, b: &Value) -> bool {
    keys.iter().all(|k| a.get(k) == b.get(k))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::Structural;
    use super::*;

    fn schema(s: Value) -> Structural {
        match Structural::parse(&s) {
            Ok(s) => s,
            Err(e) => panic!("schema did not parse: {e:?}"),
        }
    }

    fn spec_schema(rules: Value) -> Structural {
        schema(json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "x-kubernetes-validations": rules,
                "properties": {
                    "replicas": {"type": "integer"},
                    "min": {"type": "integer"},
                    "name": {"type": "string"},
                    "ratio": {"type": "number"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
            }},
        }))
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn failed_rule_reads_like_kube_apiserver() {
        let s = spec_schema(json!([{"rule": "self.replicas >= self.min"}]));
        let ok = json!({"spec": {"replicas": 3, "min": 1}});
        assert!(s.validate(&ok, None).is_empty());
        let bad = json!({"spec": {"replicas": 0, "min": 1}});
        assert_eq!(
            messages(&s.validate(&bad, None)),
            vec!["spec: Invalid value: failed rule: self.replicas >= self.min"]
        );
    }

    #[test]
    fn message_reason_and_field_path() {
        let s = spec_schema(json!([{
            "rule": "has(self.name)",
            "message": "name is needed",
            "reason": "FieldValueRequired",
            "fieldPath": ".name",
        }]));
        let errs = s.validate(&json!({"spec": {}}), None);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].kind, "FieldValueRequired");
        assert_eq!(
            errs[0].to_string(),
            "spec.name: Required value: name is needed"
        );
    }

    #[test]
    fn message_expression_wins_over_message() {
        let s = spec_schema(json!([{
            "rule": "self.replicas < 5",
            "message": "static",
            "messageExpression": "'replicas is ' + string(self.replicas)",
        }]));
        let errs = s.validate(&json!({"spec": {"replicas": 7}}), None);
        assert_eq!(messages(&errs), vec!["spec: Invalid value: replicas is 7"]);
    }

    #[test]
    fn macros_and_helpers() {
        let s = spec_schema(json!([
            {"rule": "self.tags.all(t, size(t) <= 3)"},
            {"rule": "self.tags.exists(t, t.startsWith('a'))"},
            {"rule": "self.tags.filter(t, t == 'x').size() == 0"},
            {"rule": "self.tags.map(t, t + '!').size() == size(self.tags)"},
            {"rule": "self.ratio > 0.5"},
        ]));
        let ok = json!({"spec": {"tags": ["ab", "b"], "ratio": 1}});
        assert_eq!(messages(&s.validate(&ok, None)), Vec::<String>::new());
        let bad = json!({"spec": {"tags": ["abcd", "x"], "ratio": 0}});
        assert_eq!(s.validate(&bad, None).len(), 3);
    }

    #[test]
    fn transition_rules_need_an_old_value() {
        let s = spec_schema(
            json!([{"rule": "self.name == oldSelf.name", "message": "name is immutable"}]),
        );
        let new = json!({"spec": {"name": "b"}});
        assert!(
            s.validate(&new, None).is_empty(),
            "creates skip transition rules"
        );
        let old = json!({"spec": {"name": "a"}});
        assert_eq!(
            messages(&s.validate(&new, Some(&old))),
            vec!["spec: Invalid value: name is immutable"]
        );
        assert!(s.validate(&new, Some(&new)).is_empty());
    }

    #[test]
    fn optional_old_self_runs_on_create() {
        let s = spec_schema(json!([{
            "rule": "oldSelf.hasValue() || self.replicas == 1",
            "optionalOldSelf": true,
        }]));
        assert_eq!(s.validate(&json!({"spec": {"replicas": 2}}), None).len(), 1);
        assert!(s
            .validate(&json!({"spec": {"replicas": 1}}), None)
            .is_empty());
        let old = json!({"spec": {"replicas": 5}});
        assert!(s
            .validate(&json!({"spec": {"replicas": 2}}), Some(&old))
            .is_empty());
    }

    #[test]
    fn plain_transition_and_optional_rules_on_one_node() {
        let s = spec_schema(json!([
            {"rule": "self.replicas >= 0", "message": "plain"},
            {"rule": "self.replicas >= oldSelf.replicas", "message": "no scale down"},
            {"rule": "!oldSelf.hasValue() || oldSelf.value().name == self.name", "message": "rename", "optionalOldSelf": true},
        ]));
        let create = json!({"spec": {"replicas": -1, "name": "a"}});
        assert_eq!(
            messages(&s.validate(&create, None)),
            vec!["spec: Invalid value: plain"]
        );
        let old = json!({"spec": {"replicas": 3, "name": "a"}});
        let update = json!({"spec": {"replicas": 2, "name": "b"}});
        assert_eq!(
            messages(&s.validate(&update, Some(&old))),
            vec![
                "spec: Invalid value: no scale down",
                "spec: Invalid value: rename"
            ]
        );
    }

    #[test]
    fn runtime_errors_name_the_message_when_there_is_one() {
        let s = spec_schema(json!([{"rule": "self.name == 'x'", "message": "needs missing"}]));
        let errs = s.validate(&json!({"spec": {}}), None);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].message.ends_with("evaluating rule: needs missing"),
            "{}",
            errs[0].message
        );
        assert!(
            errs[0].message.starts_with(r#"Invalid value: "object": "#),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn nested_comprehensions_over_big_lists_are_refused() {
        let s = spec_schema(json!([
            {"rule": "self.tags.all(a, self.tags.all(b, self.tags.all(c, size(a) + size(b) + size(c) > 0)))"},
        ]));
        let small = json!({"spec": {"tags": ["a", "b"]}});
        assert!(s.validate(&small, None).is_empty());
        let tags: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        let big = json!({"spec": {"tags": tags}});
        assert_eq!(
            messages(&s.validate(&big, None)),
            vec![format!(
                "spec: Invalid value: \"object\": {BUDGET_EXHAUSTED}"
            )]
        );
    }

    #[test]
    fn runtime_errors_fail_the_rule() {
        // `name` is optional: absent, selecting it fails at run time ("no such key").
        let s = spec_schema(json!([{"rule": "self.name == 'x'"}]));
        let errs = s.validate(&json!({"spec": {}}), None);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .message
                .contains("evaluating rule: self.name == 'x'"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn bad_rules_are_reported_when_read() {
        let raw = json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.a ==* 1"},
            {"rule": "self.a == 1", "reason": "Nope"},
            {"rule": "self.a == 1", "fieldPath": "a b"},
            {"rule": "self.a == 1", "optionalOldSelf": true},
            {"rule": &"(".repeat(40)},
        ]});
        let errs = match Structural::parse(&raw) {
            Ok(_) => panic!("bad rules accepted"),
            Err(e) => e,
        };
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "openAPIV3Schema.x-kubernetes-validations[0].rule",
                "openAPIV3Schema.x-kubernetes-validations[1].reason",
                "openAPIV3Schema.x-kubernetes-validations[2].fieldPath",
                "openAPIV3Schema.x-kubernetes-validations[3].optionalOldSelf",
                "openAPIV3Schema.x-kubernetes-validations[4].rule",
            ]
        );
        assert!(errs[0]
            .message
            .starts_with("Invalid value: \"self.a ==* 1\": compilation failed"));
    }

    #[test]
    fn rules_must_name_declared_fields_and_variables() {
        let raw = json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.replicaz > 0"},
                {"rule": "has(self.labels.anything) && self.replicas.x == 1"},
                {"rule": "slef.replicas > 0"},
                {"rule": "self.tags.all(t, t != '') && self.free.whatever == 1 && type(self.replicas) == int"},
            ],
            "properties": {
                "replicas": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            },
        }}});
        let errs = match Structural::parse(&raw) {
            Ok(_) => panic!("rules with unknown names accepted"),
            Err(e) => e,
        };
        let got: Vec<String> = errs.iter().map(ToString::to_string).collect();
        let at = "openAPIV3Schema.properties[spec].x-kubernetes-validations";
        assert_eq!(
            got,
            vec![
                format!(
                    r#"{at}[0].rule: Invalid value: "self.replicaz > 0": compilation failed: undefined field 'replicaz'"#
                ),
                format!(
                    r#"{at}[1].rule: Invalid value: "has(self.labels.anything) && self.replicas.x == 1": compilation failed: type 'integer' does not support field selection"#
                ),
                format!(
                    r#"{at}[2].rule: Invalid value: "slef.replicas > 0": compilation failed: undeclared reference to 'slef'"#
                ),
            ]
        );
    }

    #[test]
    fn list_map_items_see_their_old_item() {
        let s = schema(json!({
            "type": "object",
            "properties": {"list": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "x-kubernetes-validations": [{"rule": "self.v == oldSelf.v", "message": "immutable"}],
                    "properties": {"name": {"type": "string"}, "v": {"type": "integer"}},
                },
            }},
        }));
        let old = json!({"list": [{"name": "a", "v": 1}, {"name": "b", "v": 1}]});
        let new =
            json!({"list": [{"name": "b", "v": 1}, {"name": "a", "v": 2}, {"name": "c", "v": 9}]});
        let errs = s.validate(&new, Some(&old));
        assert_eq!(messages(&errs), vec!["list[1]: Invalid value: immutable"]);
    }

    #[test]
    fn structural_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Structural>();
    }
}

/// Which of the CEL functions Kubernetes offers CRD rules work here; a crate upgrade that
/// changes the picture shows up as a failure.
#[cfg(test)]
mod library_tests {
    use super::*;

    fn eval(expr: &str) -> Result<bool, String> {
        let value =
            serde_json::json!({"name": "abc", "tags": [1, 2, 3], "m": {"a": 1}, "ratio": 2.5});
        let schema = Structural::default();
        let program = compile(expr)?;
        let mut ctx = Context::with_env(Arc::clone(&ENV));
        bind(&mut ctx, "self", to_cel(&value, Some(&schema), 0)?)?;
        match run(&program, &ctx)? {
            Cel::Bool(b) => Ok(b),
            other => Err(format!("not a bool: {other:?}")),
        }
    }

    #[test]
    fn supported_functions() {
        let exprs = [
            "self.name.matches('^[a-z]+$')",
            "self.name.lowerAscii() == 'abc' && self.name.upperAscii() == 'ABC'",
            "self.name.split('b').size() == 2 && self.name.indexOf('b') == 1",
            "self.name.replace('a', 'x') == 'xbc' && self.name.substring(1) == 'bc'",
            "self.name.startsWith('a') && self.name.endsWith('c') && self.name.contains('b')",
            "size(self.name) == 3 && self.name.size() == 3",
            "['a', 'b'].join('-') == 'a-b' && '%s'.format(['x']) == 'x'",
            "self.tags.isSorted() && self.tags.sum() == 6 && self.tags.min() == 1 && self.tags.max() == 3",
            "self.tags.indexOf(2) == 1 && [1, 2, 1].lastIndexOf(1) == 2 && self.tags.indexOf(9) == -1",
            "![2, 1].isSorted() && [1.5, 1.0].sum() == 2.5",
            "self.tags.all(x, x > 0) && self.tags.exists(x, x == 2) && self.tags.exists_one(x, x == 1)",
            "self.tags.map(x, x * 2)[0] == 2 && self.tags.filter(x, x > 1).size() == 2",
            "self.m.all(k, k.startsWith('a')) && 'a' in self.m && !('b' in self.m)",
            "has(self.name) && !has(self.missing)",
            "self.?missing.orValue(1) == 1 && self.?m.?a.hasValue()",
            "int('5') == 5 && string(5) == '5' && double(1) == 1.0",
            "self.ratio > 1 && self.tags[0] < 1.5",
            "math.greatest(1, 2) == 2",
            "self.name in ['abc'] && type(self.name) == string",
        ];
        for e in exprs {
            assert_eq!(eval(e), Ok(true), "{e}");
        }
    }

    #[test]
    fn runtime_errors_and_missing_libraries() {
        for e in [
            "9223372036854775807 + 1 > 0",
            "1 / 0 == 1",
            "[1, 2][5] == 1",
            "[].min() == 0",
            // Kubernetes libraries the crate lacks; the durations and timestamps would need
            // the crate's chrono feature.
            "url('https://x.io/p').getHost() == 'x.io'",
            "quantity('1Gi').isGreaterThan(quantity('1Mi'))",
            "isQuantity('1Gi')",
            "ip('1.2.3.4').family() == 4",
            "cidr('10.0.0.0/8').containsIP('10.1.2.3')",
            "duration('1h') > duration('1m')",
            "timestamp('2024-01-01T00:00:00Z') < timestamp('2025-01-01T00:00:00Z')",
            "base64.encode(b'a') == 'YQ=='",
        ] {
            assert!(eval(e).is_err(), "{e} should fail: {:?}", eval(e));
        }
    }
}
