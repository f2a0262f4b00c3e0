//! Kubernetes' CEL list library (`isSorted`, `sum`, `min`, `max`, `indexOf`, `lastIndexOf`),
//! which CRD rules use and the `cel` crate does not ship. Values go through the crate's
//! `Value` form: simple, and these lists are small.

use cel::common::types::{DYN_TYPE, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError, Value as Cel};
use std::cmp::Ordering;

/// Registers the functions on `env`.
pub fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_member_overload("isSorted", "list.isSorted()", LIST_TYPE, vec![], is_sorted)?;
    env.add_member_overload("sum", "list.sum()", LIST_TYPE, vec![], sum)?;
    env.add_member_overload("min", "list.min()", LIST_TYPE, vec![], min)?;
    env.add_member_overload("max", "list.max()", LIST_TYPE, vec![], max)?;
    env.add_member_overload(
        "indexOf",
        "list.indexOf(dyn)",
        LIST_TYPE,
        vec![DYN_TYPE],
        index_of,
    )?;
    env.add_member_overload(
        "lastIndexOf",
        "list.lastIndexOf(dyn)",
        LIST_TYPE,
        vec![DYN_TYPE],
        last_index_of,
    )?;
    Ok(())
}

fn args<const N: usize>(args: Vec<CowVal<'_, '_>>) -> Result<[Cel; N], ExecutionError> {
    let values: Result<Vec<Cel>, ExecutionError> =
        args.iter().map(|a| Cel::try_from(a.as_ref())).collect();
    let values = values?;
    let got = values.len();
    values
        .try_into()
        .map_err(|_| ExecutionError::invalid_argument_count(N, got))
}

fn list(value: Cel) -> Result<Vec<Cel>, ExecutionError> {
    match value {
        Cel::List(items) => Ok(items.to_vec()),
        other => Err(ExecutionError::unsupported_target_type(other)),
    }
}

fn owned<'b, 'v>(value: Cel) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let boxed: Box<dyn Val> = value.try_into()?;
    Ok(CowVal::from(boxed))
}

/// Order of two list elements of one comparable type.
fn compare(a: &Cel, b: &Cel) -> Result<Ordering, ExecutionError> {
    let ordering = match (a, b) {
        (Cel::Int(x), Cel::Int(y)) => x.partial_cmp(y),
        (Cel::UInt(x), Cel::UInt(y)) => x.partial_cmp(y),
        (Cel::Float(x), Cel::Float(y)) => x.partial_cmp(y),
        (Cel::String(x), Cel::String(y)) => x.partial_cmp(y),
        (Cel::Bool(x), Cel::Bool(y)) => x.partial_cmp(y),
        _ => None,
    };
    ordering.ok_or_else(|| ExecutionError::ValuesNotComparable(a.clone(), b.clone()))
}

fn is_sorted<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [target] = args(a)?;
    let items = list(target)?;
    for pair in items.windows(2) {
        if compare(&pair[0], &pair[1])? == Ordering::Greater {
            return owned(Cel::Bool(false));
        }
    }
    owned(Cel::Bool(true))
}

fn sum<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [target] = args(a)?;
    let items = list(target)?;
    let overflow = || ExecutionError::function_error("sum", "integer overflow");
    let total = match items.first() {
        None => Cel::Int(0),
        Some(Cel::Int(_)) => Cel::Int(items.iter().try_fold(0i64, |acc, v| match v {
            Cel::Int(i) => acc.checked_add(*i).ok_or_else(overflow),
            other => Err(ExecutionError::unsupported_target_type(other.clone())),
        })?),
        Some(Cel::UInt(_)) => Cel::UInt(items.iter().try_fold(0u64, |acc, v| match v {
            Cel::UInt(i) => acc.checked_add(*i).ok_or_else(overflow),
            other => Err(ExecutionError::unsupported_target_type(other.clone())),
        })?),
        Some(Cel::Float(_)) => Cel::Float(items.iter().try_fold(0f64, |acc, v| match v {
            Cel::Float(f) => Ok(acc + f),
            other => Err(ExecutionError::unsupported_target_type(other.clone())),
        })?),
        Some(other) => return Err(ExecutionError::unsupported_target_type(other.clone())),
    };
    owned(total)
}

fn extreme<'b, 'v>(
    a: Vec<CowVal<'b, 'v>>,
    name: &str,
    keep: Ordering,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [target] = args(a)?;
    let mut items = list(target)?.into_iter();
    let Some(mut best) = items.next() else {
        return Err(ExecutionError::function_error(
            name,
            format!("{name} called on empty list"),
        ));
    };
    for item in items {
        if compare(&item, &best)? == keep {
            best = item;
        }
    }
    owned(best)
}

fn min<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme(a, "min", Ordering::Less)
}

fn max<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme(a, "max", Ordering::Greater)
}

fn position<'b, 'v>(a: Vec<CowVal<'b, 'v>>, last: bool) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [target, needle] = args(a)?;
    let items = list(target)?;
    let found = if last {
        items.iter().rposition(|v| *v == needle)
    } else {
        items.iter().position(|v| *v == needle)
    };
    owned(Cel::Int(
        found.and_then(|i| i64::try_from(i).ok()).unwrap_or(-1),
    ))
}

fn index_of<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    position(a, false)
}

fn last_index_of<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    position(a, true)
}
