//! The container image's recipe, checked without a container engine: the top-level Dockerfile
//! is parsed with a real Dockerfile parser, and its stages, user, health check, copied binaries
//! and build command are compared with what the workspace builds and what the README documents.

use std::path::{Path, PathBuf};

use dockerfile_parser::{Dockerfile, Instruction, ShellOrExecExpr};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dockerfile() -> Dockerfile {
    Dockerfile::parse(&read("Dockerfile")).expect("the Dockerfile parses")
}

/// A `Misc` instruction's name (USER, HEALTHCHECK, …) and its arguments.
fn misc(instruction: &Instruction) -> Option<(String, String)> {
    match instruction {
        Instruction::Misc(m) => Some((
            m.instruction.content.to_uppercase(),
            m.arguments.to_string().trim().to_string(),
        )),
        _ => None,
    }
}

fn shell(expr: &ShellOrExecExpr) -> String {
    match expr {
        ShellOrExecExpr::Shell(s) => s.to_string(),
        ShellOrExecExpr::Exec(a) => a.as_str_vec().join(" "),
    }
}

/// Collapses runs of whitespace (line continuations included).
fn words(s: &str) -> String {
    s.replace("\\\n", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The binaries a package builds: its `[[bin]]` names.
fn bins_of(manifest: &str) -> Vec<String> {
    let text = read(manifest);
    let mut bins = Vec::new();
    let mut in_bin = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin {
            if let Some(name) = line.strip_prefix("name = ") {
                bins.push(name.trim_matches('"').to_string());
            }
        }
    }
    bins
}

#[test]
fn two_stages_build_then_a_small_runtime() {
    let file = dockerfile();
    let stages: Vec<_> = file.iter_stages().collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    assert_eq!(stages[0].name.as_deref(), Some("build"));
    assert_eq!(stages[1].name.as_deref(), Some("runtime"));
    let images: Vec<String> = file
        .instructions
        .iter()
        .filter_map(Instruction::as_from)
        .map(|f| f.image.content.clone())
        .collect();
    assert!(images[0].starts_with("rust:"), "{images:?}");
    assert!(images[1].ends_with("-slim"), "{images:?}");
    // The toolchain is the workspace's rust-version.
    let rust_version = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("rust-version in Cargo.toml");
    let arg = file
        .global_args
        .iter()
        .find(|a| a.name.content == "RUST_VERSION")
        .and_then(|a| a.value.as_ref())
        .map(|v| v.content.clone());
    assert_eq!(arg.as_deref(), Some(rust_version.as_str()));
}

#[test]
fn the_build_command_is_the_readmes_and_builds_every_binary_copied() {
    let file = dockerfile();
    let stages: Vec<_> = file.iter_stages().collect();
    let builds: Vec<String> = stages[0]
        .instructions
        .iter()
        .filter_map(|i| i.as_run())
        .map(|r| words(&shell(&r.expr)))
        .filter(|c| c.starts_with("cargo "))
        .collect();
    assert_eq!(builds.len(), 1, "{builds:?}");
    let build = &builds[0];
    assert!(
        build.contains("--release") && build.contains("--locked"),
        "{build}"
    );
    assert!(
        read("README.md").contains(&format!("\n{build}\n")),
        "the README's Container image section shows the build command `{build}`"
    );

    // What the named packages build.
    let mut built = Vec::new();
    let args: Vec<&str> = build.split_whitespace().collect();
    for pair in args.windows(2).filter(|w| w[0] == "-p") {
        let manifest = match pair[1] {
            "trellis-server" => "server/Cargo.toml",
            "trellis-syncer" => "syncer/Cargo.toml",
            other => panic!("unexpected package {other}"),
        };
        built.extend(bins_of(manifest));
    }
    let copies: Vec<_> = stages[1]
        .instructions
        .iter()
        .filter_map(|i| match i {
            Instruction::Copy(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(copies.len(), 1, "one COPY of the binaries");
    let copy = copies[0];
    assert!(copy
        .flags
        .iter()
        .any(|f| f.name.content == "from" && f.value.content == "build"));
    let mut copied: Vec<String> = copy
        .sources
        .iter()
        .map(|s| {
            let path = s.content.as_str();
            let name = path
                .strip_prefix("/src/target/release/")
                .unwrap_or_else(|| panic!("{path} is not a release binary"));
            assert!(
                built.iter().any(|b| b == name),
                "{name} is not built by `{build}`"
            );
            name.to_string()
        })
        .collect();
    copied.sort();
    assert_eq!(copied, ["kubectl-ws", "trellis", "trellis-syncer"]);
    assert_eq!(copy.destination.content, "/usr/local/bin/");
}

#[test]
fn the_runtime_runs_unprivileged_with_data_in_var_lib_and_a_readiness_check() {
    let file = dockerfile();
    let stages: Vec<_> = file.iter_stages().collect();
    let runtime: Vec<(String, String)> = stages[1]
        .instructions
        .iter()
        .filter_map(|i| misc(i))
        .collect();
    let last = |name: &str| {
        runtime
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, args)| args.clone())
            .unwrap_or_else(|| panic!("no {name} in the runtime stage"))
    };
    let user = last("USER");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        !uid.is_empty() && uid != "root" && uid != "0",
        "runs as {user}"
    );
    let health = words(&last("HEALTHCHECK"));
    assert!(health.contains("CMD"), "{health}");
    assert!(health.contains("https://127.0.0.1:6443/readyz"), "{health}");
    assert!(last("VOLUME").contains("/var/lib/trellis"));
    assert_eq!(last("EXPOSE"), "6443");

    let entrypoint = stages[1]
        .instructions
        .iter()
        .find_map(|i| i.as_entrypoint())
        .map(|e| shell(&e.expr))
        .expect("ENTRYPOINT");
    assert_eq!(entrypoint, "trellis");
    let cmd = stages[1]
        .instructions
        .iter()
        .find_map(|i| match i {
            Instruction::Cmd(c) => Some(shell(&c.expr)),
            _ => None,
        })
        .expect("CMD");
    assert_eq!(
        cmd,
        "start --listen 0.0.0.0:6443 --data-dir /var/lib/trellis"
    );
    // The data directory belongs to the user the image runs as.
    let runs: Vec<String> = stages[1]
        .instructions
        .iter()
        .filter_map(|i| i.as_run())
        .map(|r| words(&shell(&r.expr)))
        .collect();
    assert!(
        runs.iter().any(|r| r.contains("useradd")
            && r.contains(&format!("--uid {uid}"))
            && r.contains("--home-dir /var/lib/trellis")
            && r.contains("--create-home")),
        "{runs:?}"
    );
}
