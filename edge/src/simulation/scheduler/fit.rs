//! The scheduler's decisions, as pure functions: whether a pod fits a node (filters in
//! kube-scheduler's order: cordon, readiness, node selector, pod count, `nvidia.com/gpu`, DRA
//! devices), which feasible node scores best (least allocated GPUs, as kube-scheduler's
//! default `LeastAllocated` spreads), and the `0/4 nodes are available: …` message of a pod
//! that fits nowhere.

use std::collections::{BTreeMap, BTreeSet};

/// What the scheduler knows of a node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeInfo {
    pub labels: BTreeMap<String, String>,
    /// Its Ready condition is True.
    pub ready: bool,
    /// Cordoned (`spec.unschedulable`).
    pub unschedulable: bool,
    /// Allocatable `nvidia.com/gpu` (0 in DRA mode).
    pub gpus: i64,
    /// Allocatable pods.
    pub pods: i64,
    /// Its GPUs as DRA devices (names in its ResourceSlice's pool).
    pub devices: Vec<String>,
}

/// What the pods on a node hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    pub gpus: i64,
    pub pods: i64,
    /// DRA devices allocated to claims.
    pub devices: BTreeSet<String>,
}

/// What a pod asks of its node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Demand {
    pub gpus: i64,
    pub node_selector: BTreeMap<String, String>,
    /// `spec.nodeName`-like pinning: the node its allocated claims are on.
    pub node: Option<String>,
    /// DRA devices its unallocated claims ask for.
    pub devices: i64,
}

/// Why a pod does not fit a node; the text is kube-scheduler's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unfit {
    Unschedulable,
    NotReady,
    NodeSelector,
    ClaimNode,
    TooManyPods,
    InsufficientGpu,
    InsufficientDevices,
}

impl Unfit {
    pub fn reason(self) -> &'static str {
        match self {
            Unfit::Unschedulable => "node(s) were unschedulable",
            Unfit::NotReady => "node(s) had untolerated taint {node.kubernetes.io/not-ready: }",
            Unfit::NodeSelector => "node(s) didn't match Pod's node affinity/selector",
            Unfit::ClaimNode => "node(s) didn't match the node selector of allocated claims",
            Unfit::TooManyPods => "Too many pods",
            Unfit::InsufficientGpu => "Insufficient nvidia.com/gpu",
            Unfit::InsufficientDevices => "cannot allocate all claims",
        }
    }
}

/// Whether a pod demanding `demand` fits node `name` holding `usage`.
pub fn fit(name: &str, node: &NodeInfo, usage: &Usage, demand: &Demand) -> Result<(), Unfit> {
    if node.unschedulable {
        return Err(Unfit::Unschedulable);
    }
    if !node.ready {
        return Err(Unfit::NotReady);
    }
    if demand
        .node_selector
        .iter()
        .any(|(k, v)| node.labels.get(k) != Some(v))
    {
        return Err(Unfit::NodeSelector);
    }
    if demand.node.as_deref().is_some_and(|n| n != name) {
        return Err(Unfit::ClaimNode);
    }
    if usage.pods + 1 > node.pods {
        return Err(Unfit::TooManyPods);
    }
    if demand.gpus > 0 && usage.gpus + demand.gpus > node.gpus {
        return Err(Unfit::InsufficientGpu);
    }
    if demand.devices > 0 && free_devices(node, usage).count() < demand.devices as usize {
        return Err(Unfit::InsufficientDevices);
    }
    Ok(())
}

/// The node's devices no claim holds, in order.
pub fn free_devices<'a>(node: &'a NodeInfo, usage: &'a Usage) -> impl Iterator<Item = &'a String> {
    node.devices.iter().filter(|d| !usage.devices.contains(*d))
}

/// How good a feasible node is for `demand` (higher is better): the share of its GPUs (or,
/// for pods without GPUs, of its pod slots) left free after placing the pod, in percent.
pub fn score(node: &NodeInfo, usage: &Usage, demand: &Demand) -> i64 {
    let left = |total: i64, used: i64| {
        if total <= 0 {
            0
        } else {
            (total - used).max(0) * 100 / total
        }
    };
    let devices = node.devices.len() as i64;
    if demand.gpus > 0 {
        left(node.gpus, usage.gpus + demand.gpus)
    } else if demand.devices > 0 {
        left(devices, usage.devices.len() as i64 + demand.devices)
    } else {
        left(node.pods, usage.pods + 1)
    }
}

/// The outcome of looking for a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Placement {
    Node(String),
    /// No node fits; why, per node count.
    Nowhere(BTreeMap<Unfit, usize>),
}

/// Picks a node for `demand` among `nodes` (in the order given: callers rotate the start, as
/// kube-scheduler does), scoring the first `enough` feasible ones and taking the best (the
/// first of equals).
pub fn choose<'a>(
    nodes: impl Iterator<Item = (&'a String, &'a NodeInfo)>,
    usage: impl Fn(&str) -> Option<&'a Usage>,
    demand: &Demand,
    enough: usize,
) -> Placement {
    let empty = Usage::default();
    let mut best: Option<(i64, &String)> = None;
    let mut feasible = 0;
    let mut why: BTreeMap<Unfit, usize> = BTreeMap::new();
    for (name, node) in nodes {
        let used = usage(name).unwrap_or(&empty);
        match fit(name, node, used, demand) {
            Ok(()) => {
                let score = score(node, used, demand);
                if best.is_none_or(|(b, _)| score > b) {
                    best = Some((score, name));
                }
                feasible += 1;
                if feasible >= enough {
                    break;
                }
            }
            Err(unfit) => *why.entry(unfit).or_default() += 1,
        }
    }
    match best {
        Some((_, name)) => Placement::Node(name.clone()),
        None => Placement::Nowhere(why),
    }
}

/// kube-scheduler's message for a pod that fits none of `total` nodes:
/// `0/4 nodes are available: 1 node(s) were unschedulable, 3 Insufficient nvidia.com/gpu.`
pub fn unschedulable_message(total: usize, why: &BTreeMap<Unfit, usize>) -> String {
    let mut reasons: Vec<String> = why
        .iter()
        .map(|(unfit, n)| format!("{n} {}", unfit.reason()))
        .collect();
    reasons.sort();
    if reasons.is_empty() {
        format!("0/{total} nodes are available.")
    } else {
        format!("0/{total} nodes are available: {}.", reasons.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(gpus: i64) -> NodeInfo {
        NodeInfo {
            labels: [(
                "nvidia.com/gpu.product".to_string(),
                "NVIDIA-H200".to_string(),
            )]
            .into(),
            ready: true,
            unschedulable: false,
            gpus,
            pods: 110,
            devices: Vec::new(),
        }
    }

    fn gpus(n: i64) -> Demand {
        Demand {
            gpus: n,
            ..Demand::default()
        }
    }

    #[test]
    fn gpus_fit_while_the_node_has_them_free() {
        let used = Usage {
            gpus: 6,
            pods: 3,
            ..Usage::default()
        };
        assert_eq!(fit("n", &node(8), &used, &gpus(2)), Ok(()));
        assert_eq!(
            fit("n", &node(8), &used, &gpus(3)),
            Err(Unfit::InsufficientGpu)
        );
        assert_eq!(fit("n", &node(0), &Usage::default(), &gpus(0)), Ok(()));
    }

    #[test]
    fn cordoned_not_ready_and_unmatched_nodes_are_filtered_first() {
        let mut cordoned = node(8);
        cordoned.unschedulable = true;
        assert_eq!(
            fit("n", &cordoned, &Usage::default(), &gpus(1)),
            Err(Unfit::Unschedulable)
        );
        let mut down = node(8);
        down.ready = false;
        assert_eq!(
            fit("n", &down, &Usage::default(), &gpus(1)),
            Err(Unfit::NotReady)
        );
        let picky = Demand {
            node_selector: [(
                "nvidia.com/gpu.product".to_string(),
                "NVIDIA-B200".to_string(),
            )]
            .into(),
            ..gpus(1)
        };
        assert_eq!(
            fit("n", &node(8), &Usage::default(), &picky),
            Err(Unfit::NodeSelector)
        );
    }

    #[test]
    fn devices_fit_when_enough_are_unallocated() {
        let mut dra = node(0);
        dra.devices = vec!["gpu-0".into(), "gpu-1".into()];
        let used = Usage {
            devices: ["gpu-0".to_string()].into(),
            ..Usage::default()
        };
        let two = Demand {
            devices: 2,
            ..Demand::default()
        };
        let one = Demand {
            devices: 1,
            ..Demand::default()
        };
        assert_eq!(fit("n", &dra, &used, &two), Err(Unfit::InsufficientDevices));
        assert_eq!(fit("n", &dra, &used, &one), Ok(()));
        assert_eq!(free_devices(&dra, &used).collect::<Vec<_>>(), ["gpu-1"]);
        let pinned = Demand {
            node: Some("other".into()),
            ..one
        };
        assert_eq!(fit("n", &dra, &used, &pinned), Err(Unfit::ClaimNode));
    }

    #[test]
    fn the_least_allocated_node_wins() {
        let nodes: Vec<(String, NodeInfo)> = vec![
            ("a".into(), node(8)),
            ("b".into(), node(8)),
            ("c".into(), node(8)),
        ];
        let usage: BTreeMap<String, Usage> = [
            (
                "a".to_string(),
                Usage {
                    gpus: 4,
                    pods: 1,
                    ..Usage::default()
                },
            ),
            (
                "b".to_string(),
                Usage {
                    gpus: 1,
                    pods: 1,
                    ..Usage::default()
                },
            ),
        ]
        .into();
        let placed = choose(
            nodes.iter().map(|(n, i)| (n, i)),
            |n| usage.get(n),
            &gpus(2),
            100,
        );
        assert_eq!(placed, Placement::Node("c".into()));
        // With only the first two scored, the better of them.
        let placed = choose(
            nodes.iter().map(|(n, i)| (n, i)),
            |n| usage.get(n),
            &gpus(2),
            2,
        );
        assert_eq!(placed, Placement::Node("b".into()));
    }

    #[test]
    fn a_pod_that_fits_nowhere_says_why_as_kube_scheduler_does() {
        let mut cordoned = node(8);
        cordoned.unschedulable = true;
        let nodes: Vec<(String, NodeInfo)> = vec![
            ("a".into(), node(8)),
            ("b".into(), node(8)),
            ("c".into(), node(8)),
            ("d".into(), cordoned),
        ];
        let placed = choose(nodes.iter().map(|(n, i)| (n, i)), |_| None, &gpus(16), 100);
        let Placement::Nowhere(why) = placed else {
            panic!("{placed:?}")
        };
        assert_eq!(
            unschedulable_message(4, &why),
            "0/4 nodes are available: 1 node(s) were unschedulable, 3 Insufficient nvidia.com/gpu."
        );
        let all = choose(
            nodes[..3].iter().map(|(n, i)| (n, i)),
            |_| None,
            &gpus(9),
            100,
        );
        let Placement::Nowhere(why) = all else {
            panic!()
        };
        assert_eq!(
            unschedulable_message(3, &why),
            "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
        );
    }
}
