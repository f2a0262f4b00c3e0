//! A GPU pool as a platform team publishes it: which targets it covers, the GPU classes it offers,
//! and which tenant workspaces may use how much of each class. This module owns the *matching*
//! rules (a class against a product, a workspace against tenant entries); the quota arithmetic is
//! in `quota.rs`.
//!
//! Rules chosen where the API leaves room:
//! - A tenant entry names a workspace path and covers its children: `root:acme` covers
//!   `root:acme` and `root:acme:ml`, not `root:acmecorp`. When several entries cover a workspace,
//!   the longest (most specific) path wins, and that entry's quota is the one charged: a child
//!   listed on its own has its own quota, separate from its parent's.
//! - Product names compare ignoring case and treating space, `-` and `_` alike, because the same
//!   GPU is `NVIDIA H200` to `nvidia-smi` and DRA but `NVIDIA-H200` in GPU feature discovery's
//!   labels; architectures compare ignoring case (`Hopper` and `hopper`).
//! - A class with a `partition` matches only MIG slices of that profile; a class without one only
//!   whole GPUs.
//! - Repeated names (classes, quota entries of one class) resolve to the first.
//! - `weight` is carried for fair sharing between borrowing tenants (Kueue's cohort fair sharing),
//!   which comes with preemption; admission today is strictly by creation order, so it does not
//!   yet change any decision.

use crate::inventory::GpuProduct;
use crate::selector::LabelSelector;

/// A `GPUPool`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuPool {
    pub name: String,
    /// The targets this pool's quota covers; empty selects every target.
    pub target_selector: LabelSelector,
    pub classes: Vec<GpuClass>,
    pub tenants: Vec<Tenant>,
}

/// A GPU class: which products a deployment asking for it may run on. Unset fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuClass {
    pub name: String,
    /// The product name (`NVIDIA H200`).
    pub product: Option<String>,
    /// The least memory per device, MiB.
    pub min_memory_mib: Option<u64>,
    /// `Hopper`.
    pub architecture: Option<String>,
    /// A MIG profile (`1g.18gb`); `None` means whole GPUs only.
    pub partition: Option<String>,
}

/// A tenant of a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenant {
    /// A workspace path; covers its children.
    pub workspace: String,
    /// For future fair sharing; see the module notes.
    pub weight: u32,
    pub quotas: Vec<Quota>,
}

/// A tenant's quota of one class, in GPUs (or slices, for a partition class).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quota {
    pub class: String,
    /// Guaranteed to the tenant, less what it lends out.
    pub nominal_quota: u32,
    /// The most it may use beyond its nominal quota, from what others lend; `None`: no limit of
    /// its own.
    pub borrowing_limit: Option<u32>,
    /// The most of its unused nominal quota others may borrow; `None`: all of it.
    pub lending_limit: Option<u32>,
}

impl GpuPool {
    /// A class by name, with its index.
    pub fn class(&self, name: &str) -> Option<(usize, &GpuClass)> {
        self.classes
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == name)
    }

    /// The tenant entry whose quota a workspace uses: the most specific one covering it.
    pub fn tenant_for(&self, workspace: &str) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (i, tenant) in self.tenants.iter().enumerate() {
            if workspace_covers(&tenant.workspace, workspace)
                && best.is_none_or(|(_, len)| tenant.workspace.len() > len)
            {
                best = Some((i, tenant.workspace.len()));
            }
        }
        best.map(|(i, _)| i)
    }
}

/// Whether a tenant entry's path covers a workspace: the same path or one of its descendants.
pub fn workspace_covers(entry: &str, workspace: &str) -> bool {
    match workspace.strip_prefix(entry) {
        Some(rest) => !entry.is_empty() && (rest.is_empty() || rest.starts_with(':')),
        None => false,
    }
}

impl GpuClass {
    /// Whether devices of this product belong to the class.
    pub fn matches(&self, product: &GpuProduct) -> bool {
        self.product
            .as_deref()
            .is_none_or(|name| same_product_name(name, &product.id.product))
            && self
                .min_memory_mib
                .is_none_or(|min| product.memory_mib >= min)
            && self.architecture.as_deref().is_none_or(|arch| {
                product
                    .architecture
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(arch))
            })
            && self.partition == product.id.partition
    }
}

/// Product names as the different sources spell them: case, spaces, `-` and `_` do not matter.
fn same_product_name(a: &str, b: &str) -> bool {
    fn canonical(c: char) -> char {
        match c {
            ' ' | '-' | '_' => ' ',
            c => c.to_ascii_lowercase(),
        }
    }
    a == b || a.chars().map(canonical).eq(b.chars().map(canonical))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::ProductId;

    fn h200() -> GpuProduct {
        GpuProduct {
            id: ProductId::whole("NVIDIA H200"),
            memory_mib: 143_771,
            architecture: Some("Hopper".into()),
        }
    }

    fn tenant(workspace: &str) -> Tenant {
        Tenant {
            workspace: workspace.into(),
            weight: 1,
            quotas: Vec::new(),
        }
    }

    #[test]
    fn tenant_entries_cover_children_and_the_most_specific_wins() {
        let pool = GpuPool {
            tenants: vec![
                tenant("root:acme"),
                tenant("root:acme:ml"),
                tenant("root:beta"),
            ],
            ..GpuPool::default()
        };
        assert_eq!(pool.tenant_for("root:acme"), Some(0));
        assert_eq!(pool.tenant_for("root:acme:web"), Some(0));
        assert_eq!(pool.tenant_for("root:acme:ml"), Some(1));
        assert_eq!(pool.tenant_for("root:acme:ml:team-a"), Some(1));
        assert_eq!(pool.tenant_for("root:acmecorp"), None);
        assert_eq!(pool.tenant_for("root"), None);
        assert_eq!(pool.tenant_for("root:gamma"), None);
        assert!(!workspace_covers("", "root"));
    }

    #[test]
    fn classes_match_the_fixture_h200_by_any_spelling() {
        let by_label = GpuClass {
            name: "h200".into(),
            product: Some("NVIDIA-H200".into()),
            ..GpuClass::default()
        };
        assert!(by_label.matches(&h200()));
        let by_memory = GpuClass {
            name: "big".into(),
            min_memory_mib: Some(141_000),
            architecture: Some("hopper".into()),
            ..GpuClass::default()
        };
        assert!(by_memory.matches(&h200()));
        let too_big = GpuClass {
            min_memory_mib: Some(143_772),
            ..by_memory.clone()
        };
        assert!(!too_big.matches(&h200()));
        let other = GpuClass {
            product: Some("NVIDIA H100 80GB HBM3".into()),
            ..GpuClass::default()
        };
        assert!(!other.matches(&h200()));
        let blackwell = GpuClass {
            architecture: Some("Blackwell".into()),
            ..GpuClass::default()
        };
        assert!(!blackwell.matches(&h200()));
    }

    #[test]
    fn partitions_and_whole_gpus_never_mix() {
        let slice = GpuProduct {
            id: ProductId::mig("NVIDIA H200", "1g.18gb"),
            memory_mib: 16_384,
            architecture: Some("Hopper".into()),
        };
        let whole = GpuClass {
            name: "h200".into(),
            product: Some("NVIDIA H200".into()),
            ..GpuClass::default()
        };
        let mig = GpuClass {
            partition: Some("1g.18gb".into()),
            ..whole.clone()
        };
        assert!(whole.matches(&h200()) && !whole.matches(&slice));
        assert!(mig.matches(&slice) && !mig.matches(&h200()));
    }
}
