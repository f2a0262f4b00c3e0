//! `trellis ws` (also installed as the kubectl plugin `kubectl-ws`): move between
//! workspaces by rewriting the current kubeconfig context's server URL, as kcp's plugin
//! does.
//!
//! ```text
//! kubectl ws                      print the current workspace (also `kubectl ws .`)
//! kubectl ws <path>               enter a workspace: absolute (`root:a:b`) or relative (`b`)
//! kubectl ws ..                   enter the parent
//! kubectl ws -                    go back to the previous workspace
//! kubectl ws tree                 show the workspaces under the current one
//! kubectl ws create <name> [--type T] [--enter]
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

/// Where the previous workspace's URL is kept, in the kubeconfig.
const PREVIOUS_CLUSTER: &str = "workspace.trellis.dev/previous";

/// A server URL split into the hub's base URL and the workspace path.
#[derive(Debug, PartialEq, Eq)]
pub struct ServerUrl {
    pub base: String,
    pub workspace: String,
}

impl ServerUrl {
    pub fn parse(url: &str) -> anyhow::Result<ServerUrl> {
        let trimmed = url.trim_end_matches('/');
        match trimmed.split_once("/clusters/") {
            Some((base, workspace)) if !workspace.is_empty() && !workspace.contains('/') => {
                Ok(ServerUrl {
                    base: base.to_string(),
                    workspace: workspace.to_string(),
                })
            }
            _ => bail!(
                "the current server URL {url:?} does not name a workspace (…/clusters/<path>)"
            ),
        }
    }

    pub fn url(&self) -> String {
        format!("{}/clusters/{}", self.base, self.workspace)
    }
}

/// The workspace `arg` names, seen from `current`: absolute paths start with `root`,
/// `..` is the parent, anything else is a child path.
pub fn target_path(current: &str, arg: &str) -> anyhow::Result<String> {
    if arg == ".." {
        return match current.rsplit_once(':') {
            Some((parent, _)) => Ok(parent.to_string()),
            None => bail!("the root workspace has no parent"),
        };
    }
    if arg == "root" || arg.starts_with("root:") {
        return Ok(arg.to_string());
    }
    let mut path = current.to_string();
    for segment in arg.split(':') {
        if segment == ".." {
            path = target_path(&path, "..")?;
        } else if segment.is_empty() {
            bail!("invalid workspace path {arg:?}");
        } else {
            path = format!("{path}:{segment}");
        }
    }
    Ok(path)
}

fn kubeconfig_path() -> PathBuf {
    if let Some(paths) = std::env::var_os("KUBECONFIG") {
        if let Some(first) = std::env::split_paths(&paths).find(|p| !p.as_os_str().is_empty()) {
            return first;
        }
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    PathBuf::from(home).join(".kube").join("config")
}

/// The kubeconfig as a document, edited in place so everything else in it survives.
struct KubeconfigFile {
    path: PathBuf,
    doc: Value,
}

impl KubeconfigFile {
    fn load() -> anyhow::Result<KubeconfigFile> {
        let path = kubeconfig_path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let doc: Value = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("parsing {}", path.display()))?;
        Ok(KubeconfigFile { path, doc })
    }

    fn current_cluster_name(&self) -> anyhow::Result<String> {
        let context = self.doc["current-context"]
            .as_str()
            .ok_or_else(|| anyhow!("the kubeconfig has no current context"))?;
        self.doc["contexts"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == context))
            .and_then(|c| c["context"]["cluster"].as_str())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("context {context:?} names no cluster"))
    }

    fn cluster_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.doc["clusters"]
            .as_array_mut()?
            .iter_mut()
            .find(|c| c["name"] == name)
    }

    fn server(&self) -> anyhow::Result<String> {
        let name = self.current_cluster_name()?;
        self.doc["clusters"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name.as_str()))
            .and_then(|c| c["cluster"]["server"].as_str())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("cluster {name:?} has no server"))
    }

    fn previous(&self) -> Option<String> {
        self.doc["clusters"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == PREVIOUS_CLUSTER)
            .and_then(|c| c["cluster"]["server"].as_str())
            .map(str::to_string)
    }

    /// Points the current context at `url`, remembering where it pointed before.
    fn switch(&mut self, url: &str) -> anyhow::Result<()> {
        let name = self.current_cluster_name()?;
        let old = self.server()?;
        let current = self
            .cluster_mut(&name)
            .ok_or_else(|| anyhow!("no cluster {name:?}"))?;
        let mut previous = current.clone();
        current["cluster"]["server"] = json!(url);
        previous["name"] = json!(PREVIOUS_CLUSTER);
        previous["cluster"]["server"] = json!(old);
        match self.cluster_mut(PREVIOUS_CLUSTER) {
            Some(entry) => *entry = previous,
            None => {
                if let Some(clusters) = self.doc["clusters"].as_array_mut() {
                    clusters.push(previous);
                }
            }
        }
        let text = serde_yaml_ng::to_string(&self.doc)?;
        std::fs::write(&self.path, text).with_context(|| format!("writing {}", self.path.display()))
    }
}

fn workspaces_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("tenancy.trellis.dev", "v1alpha1", "Workspace"),
        "workspaces",
    )
}

/// A client for the workspace at `url`, with the kubeconfig's credentials.
async fn client_for(url: &str) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path())?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.cluster_url = url.parse()?;
    Ok(kube::Client::try_from(config)?)
}

/// The Workspace object of `path` (read in its parent), or an error saying why not.
async fn workspace(base: &str, path: &str) -> anyhow::Result<DynamicObject> {
    let (parent, name) = path
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("{path:?} has no parent"))?;
    let client = client_for(&format!("{base}/clusters/{parent}")).await?;
    let api: Api<DynamicObject> = Api::all_with(client, &workspaces_resource());
    api.get(name).await.map_err(|e| match e {
        kube::Error::Api(status) if status.code == 404 => {
            anyhow!("workspace {path:?} not found")
        }
        other => api_error(other),
    })
}

/// The server's message, not the client's debug dump of it.
fn api_error(e: kube::Error) -> anyhow::Error {
    match e {
        kube::Error::Api(status) => anyhow!("{}", status.message),
        other => anyhow!(other),
    }
}

fn type_of(ws: &DynamicObject) -> String {
    let t = &ws.data["spec"]["type"];
    format!(
        "{}:{}",
        t["path"].as_str().unwrap_or("root"),
        t["name"].as_str().unwrap_or("universal")
    )
}

async fn enter(file: &mut KubeconfigFile, current: &ServerUrl, path: &str) -> anyhow::Result<()> {
    let described = if path == "root" {
        String::new()
    } else {
        let ws = workspace(&current.base, path).await?;
        if ws.data["status"]["phase"] != "Ready" {
            bail!("workspace {path:?} is not ready yet");
        }
        format!(" (type {})", type_of(&ws))
    };
    let target = ServerUrl {
        base: current.base.clone(),
        workspace: path.to_string(),
    };
    file.switch(&target.url())?;
    println!("Current workspace is \"{path}\"{described}.");
    Ok(())
}

async fn tree(base: &str, path: &str) -> anyhow::Result<()> {
    // Read the whole tree first, then print it depth first.
    let mut children: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut pending = vec![path.to_string()];
    while let Some(at) = pending.pop() {
        let client = client_for(&format!("{base}/clusters/{at}")).await?;
        let api: Api<DynamicObject> = Api::all_with(client, &workspaces_resource());
        let listed = api.list(&ListParams::default()).await.map_err(api_error)?;
        let names: Vec<String> = listed
            .items
            .iter()
            .filter_map(|w| w.metadata.name.clone())
            .collect();
        pending.extend(names.iter().map(|n| format!("{at}:{n}")));
        children.insert(at, names);
    }
    print!("{}", render_tree(path, &children));
    Ok(())
}

/// The tree under `root` as `tree` prints it.
fn render_tree(root: &str, children: &std::collections::BTreeMap<String, Vec<String>>) -> String {
    fn walk(
        at: &str,
        prefix: &str,
        children: &std::collections::BTreeMap<String, Vec<String>>,
        out: &mut String,
    ) {
        let names = children.get(at).map(Vec::as_slice).unwrap_or_default();
        for (i, name) in names.iter().enumerate() {
            let last = i + 1 == names.len();
            out.push_str(&format!(
                "{prefix}{} {name}\n",
                if last { "└──" } else { "├──" }
            ));
            let deeper = format!("{prefix}{}", if last { "    " } else { "│   " });
            walk(&format!("{at}:{name}"), &deeper, children, out);
        }
    }
    let mut out = format!(".\n└── {}\n", root.rsplit(':').next().unwrap_or(root));
    walk(root, "    ", children, &mut out);
    out
}

async fn create(
    file: &mut KubeconfigFile,
    current: &ServerUrl,
    name: &str,
    type_name: Option<&str>,
    enter_it: bool,
) -> anyhow::Result<()> {
    let client = client_for(&current.url()).await?;
    let api: Api<DynamicObject> = Api::all_with(client, &workspaces_resource());
    let mut object = json!({
        "apiVersion": "tenancy.trellis.dev/v1alpha1",
        "kind": "Workspace",
        "metadata": {"name": name},
    });
    if let Some(t) = type_name {
        object["spec"] = json!({"type": {"name": t, "path": "root"}});
    }
    let object: DynamicObject = serde_json::from_value(object)?;
    let created = api
        .create(&PostParams::default(), &object)
        .await
        .map_err(api_error)?;
    println!(
        "Workspace \"{name}\" (type {}) created. Waiting for it to be ready...",
        type_of(&created)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ws = api.get(name).await?;
        if ws.data["status"]["phase"] == "Ready" {
            println!(
                "Workspace \"{name}\" (type {}) is ready to use.",
                type_of(&ws)
            );
            break;
        }
        if Instant::now() > deadline {
            bail!("workspace {name:?} did not become ready in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if enter_it {
        enter(file, current, &format!("{}:{name}", current.workspace)).await?;
    }
    Ok(())
}

/// What `kubectl ws --help` prints.
const USAGE: &str = "\
Move between Trellis workspaces (rewrites the current kubeconfig context's server URL).

Usage:
  kubectl ws                      print the current workspace (also `kubectl ws .`)
  kubectl ws <path>               enter a workspace: absolute (root:a:b) or relative (b)
  kubectl ws ..                   enter the parent
  kubectl ws -                    go back to the previous workspace
  kubectl ws tree                 show the workspaces under the current one
  kubectl ws create <name> [--type T] [--enter]
";

/// Runs `kubectl ws` with `args` (without the program name).
pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["-h" | "--help" | "help"] => {
            print!("{USAGE}");
            return Ok(());
        }
        // A flag is never a workspace name.
        [flag] if flag.starts_with('-') && *flag != "-" => {
            bail!("unknown flag {flag:?}\n\n{USAGE}")
        }
        _ => {}
    }
    let mut file = KubeconfigFile::load()?;
    let current = ServerUrl::parse(&file.server()?)?;
    match args.as_slice() {
        [] | ["."] => {
            println!("Current workspace is \"{}\".", current.workspace);
            Ok(())
        }
        ["-"] => {
            let previous = file
                .previous()
                .ok_or_else(|| anyhow!("there is no previous workspace"))?;
            let previous = ServerUrl::parse(&previous)?;
            enter(&mut file, &current, &previous.workspace).await
        }
        ["tree"] => tree(&current.base, &current.workspace).await,
        ["create", name, rest @ ..] => {
            let mut type_name = None;
            let mut enter_it = false;
            let mut rest = rest.iter();
            while let Some(flag) = rest.next() {
                match *flag {
                    "--enter" => enter_it = true,
                    "--type" => type_name = rest.next().copied(),
                    other => match other.strip_prefix("--type=") {
                        Some(t) => type_name = Some(t),
                        None => bail!("unknown flag {other:?}"),
                    },
                }
            }
            create(&mut file, &current, name, type_name, enter_it).await
        }
        [path] => {
            let target = target_path(&current.workspace, path)?;
            enter(&mut file, &current, &target).await
        }
        _ => bail!("{USAGE}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_like_kcp() {
        assert_eq!(target_path("root:a", "b").unwrap(), "root:a:b");
        assert_eq!(target_path("root:a", "b:c").unwrap(), "root:a:b:c");
        assert_eq!(target_path("root:a:b", "..").unwrap(), "root:a");
        assert_eq!(target_path("root:a", "root:x").unwrap(), "root:x");
        assert_eq!(target_path("root:a:b", "..:c").unwrap(), "root:a:c");
        assert!(target_path("root", "..").is_err());
        let url = ServerUrl::parse("https://127.0.0.1:6443/clusters/root:a").unwrap();
        assert_eq!(url.base, "https://127.0.0.1:6443");
        assert_eq!(url.workspace, "root:a");
        assert!(ServerUrl::parse("https://127.0.0.1:6443").is_err());
    }

    #[test]
    fn trees_print_depth_first() {
        let mut children = std::collections::BTreeMap::new();
        children.insert("root".to_string(), vec!["a".to_string(), "b".to_string()]);
        children.insert("root:a".to_string(), vec!["x".to_string()]);
        assert_eq!(
            render_tree("root", &children),
            ".\n└── root\n    ├── a\n    │   └── x\n    └── b\n"
        );
    }
}
