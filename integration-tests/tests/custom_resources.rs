//! CustomResourceDefinitions and their objects through the real kubectl: registration,
//! discovery, explain, printer columns, the status and scale subresources, `kubectl wait`,
//! and cleanup when the CRD or the namespace goes.

use std::time::Duration;

use trellis_integration_tests::{on_both_stores, wait_until, write_file, Hub};

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
    categories: [all-widgets]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Color
      type: string
      jsonPath: .spec.color
      priority: 1
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        description: A widget the factory makes.
        properties:
          spec:
            type: object
            description: What the widget should be.
            x-kubernetes-validations:
            - rule: "self.replicas <= 10"
              message: a widget has at most 10 replicas
            properties:
              replicas:
                type: integer
                description: How many copies to make.
                minimum: 0
              color:
                type: string
              size:
                type: string
                enum: [small, large]
                default: small
          status:
            type: object
            properties:
              replicas:
                type: integer
              conditions:
                type: array
                items:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
"#;

const WIDGET: &str = r#"
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
  namespace: default
spec:
  replicas: 2
  color: red
"#;

/// Applies a CRD manifest and waits until it is established.
fn install_crd(hub: &Hub, dir: &std::path::Path, manifest: &str) {
    hub.ok(&["apply", "-f", &write_file(dir, "crd.yaml", manifest)]);
    hub.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
    ]);
}

/// `kubectl apply -f DIR` with a CRD and its objects. As on any cluster, objects of a kind
/// the server does not serve yet cannot be mapped on the first pass; once the CRD is
/// established, applying the directory again creates them.
async fn apply_a_directory_with_a_crd(hub: &Hub) {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "a-crd.yaml", CRD);
    write_file(dir.path(), "b-widget.yaml", WIDGET);
    let path = dir.path().display().to_string();
    let (_, out, err) = hub.kubectl(&["apply", "-f", &path]);
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"),
        "{out}{err}"
    );
    hub.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    let out = hub.ok(&["apply", "-f", &path]);
    assert!(out.contains("widget.example.com/w1 created"), "{out}");
    let out = hub.ok(&["apply", "-f", &path]);
    assert!(out.contains("widget.example.com/w1 unchanged"), "{out}");

    // Discovery and explain know the new kind.
    let resources = hub.ok(&["api-resources", "--api-group=example.com"]);
    assert!(
        resources.contains("widgets") && resources.contains("wd") && resources.contains("Widget"),
        "{resources}"
    );
    assert!(hub.ok(&["api-versions"]).contains("example.com/v1"));
    let explained = hub.ok(&["explain", "widgets.spec"]);
    assert!(
        explained.contains("What the widget should be.")
            && explained.contains("How many copies to make."),
        "{explained}"
    );
    let crd = hub.ok(&[
        "get",
        "crd",
        "widgets.example.com",
        "-o",
        "jsonpath={.status.acceptedNames.kind} {.status.storedVersions}",
    ]);
    assert_eq!(crd, "Widget [\"v1\"]");

    // Printer columns, by short name and by category.
    let table = hub.ok(&["get", "wd"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "REPLICAS", "AGE"], "{table}");
    assert!(table.lines().nth(1).unwrap().starts_with("w1"), "{table}");
    let wide = hub.ok(&["get", "widgets", "-o", "wide"]);
    assert!(wide.contains("COLOR") && wide.contains("red"), "{wide}");
    assert!(hub
        .ok(&["get", "all-widgets", "-o", "name"])
        .contains("widget.example.com/w1"));

    // The scale subresource drives spec.replicas.
    hub.ok(&["scale", "widget", "w1", "--replicas=5"]);
    let scaled = hub.ok(&[
        "get",
        "widget",
        "w1",
        "-o",
        "jsonpath={.spec.replicas} {.metadata.generation}",
    ]);
    assert_eq!(scaled, "5 2");
    let scale = hub.ok(&[
        "get",
        "--raw",
        "/apis/example.com/v1/namespaces/default/widgets/w1/scale",
    ]);
    assert!(
        scale.contains("\"kind\":\"Scale\"") && scale.contains("\"replicas\":5"),
        "{scale}"
    );

    // Status goes through /status only.
    hub.ok(&[
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":3}}"#,
    ]);
    hub.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"color":"blue"},"status":{"replicas":9}}"#,
    ]);
    let state = hub.ok(&[
        "get",
        "widget",
        "w1",
        "-o",
        "jsonpath={.spec.color} {.status.replicas}",
    ]);
    assert_eq!(state, "blue 3");

    // Custom resources take JSON and merge patches, not strategic ones.
    let err = hub.fails(&[
        "patch",
        "widget",
        "w1",
        "-p",
        r#"{"spec":{"color":"green"}}"#,
    ]);
    assert!(err.contains("strategic-merge-patch"), "{err}");
}

/// `kubectl wait` for a condition a controller sets and for deletion.
async fn wait_for_conditions_and_deletion(hub: &Hub) {
    let dir = tempfile::tempdir().unwrap();
    install_crd(hub, dir.path(), CRD);
    hub.ok(&["apply", "-f", &write_file(dir.path(), "w.yaml", WIDGET)]);

    // A "controller" marks the widget Ready a moment after kubectl starts waiting.
    let kubeconfig = hub.kubeconfig().to_path_buf();
    let marker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let (ok, _, err) = trellis_integration_tests::kubectl_with_kubeconfig(
            &kubeconfig,
            &[
                "patch",
                "widget",
                "w1",
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Built"}]}}"#,
            ],
        );
        assert!(ok, "{err}");
    });
    let out = hub.ok(&[
        "wait",
        "--for=condition=Ready",
        "widget/w1",
        "--timeout=20s",
    ]);
    assert!(out.contains("widget.example.com/w1 condition met"), "{out}");
    marker.join().unwrap();

    let (ok, _, err) = hub.kubectl(&[
        "wait",
        "--for=condition=Missing",
        "widget/w1",
        "--timeout=1s",
    ]);
    assert!(!ok && err.contains("timed out"), "{err}");

    // Deleting the CRD deletes its objects first; `wait --for=delete` sees both go.
    hub.ok(&["delete", "crd", "widgets.example.com", "--wait=false"]);
    hub.ok(&[
        "wait",
        "--for=delete",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    // kubectl's discovery cache may still know the kind: either way the server has none.
    let err = hub.fails(&["get", "widgets"]);
    assert!(
        err.contains("the server doesn't have a resource type")
            || err.contains("the server could not find the requested resource"),
        "{err}"
    );
}

/// A namespaced custom resource goes with its namespace; a CRD that is invalid or clashes
/// is refused or not accepted.
async fn namespaces_and_bad_definitions(hub: &Hub) {
    let dir = tempfile::tempdir().unwrap();
    install_crd(hub, dir.path(), CRD);
    hub.ok(&["create", "namespace", "shop"]);
    let widget = WIDGET.replace("namespace: default", "namespace: shop");
    hub.ok(&["apply", "-f", &write_file(dir.path(), "w.yaml", &widget)]);
    hub.ok(&["delete", "namespace", "shop", "--timeout=20s"]);
    wait_until(|| !hub.kubectl(&["get", "namespace", "shop"]).0);
    assert!(hub
        .ok(&["get", "widgets", "-A", "-o", "name"])
        .trim()
        .is_empty());

    let bad = CRD.replace("name: widgets.example.com", "name: gizmos.example.com");
    let err = hub.fails(&["apply", "-f", &write_file(dir.path(), "bad.yaml", &bad)]);
    assert!(
        err.contains("must be spec.names.plural+\".\"+spec.group"),
        "{err}"
    );

    // Same kind and short name in the same group: stored, but its names are not accepted.
    let clash = CRD
        .replace("name: widgets.example.com", "name: gadgets.example.com")
        .replace("plural: widgets", "plural: gadgets")
        .replace("singular: widget", "singular: gadget");
    hub.ok(&["apply", "-f", &write_file(dir.path(), "clash.yaml", &clash)]);
    wait_until(|| {
        hub.ok(&[
            "get",
            "crd",
            "gadgets.example.com",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"NamesAccepted\")].status}",
        ]) == "False"
    });
    let err = hub.fails(&["get", "gadgets"]);
    assert!(
        err.contains("the server doesn't have a resource type"),
        "{err}"
    );
}

/// Custom resources are pruned, defaulted and validated against their schema and its CEL
/// rules, with kube-apiserver's status codes and wording.
async fn schemas_and_rules(hub: &Hub) {
    let dir = tempfile::tempdir().unwrap();
    install_crd(hub, dir.path(), CRD);
    hub.ok(&["apply", "-f", &write_file(dir.path(), "w.yaml", WIDGET)]);
    assert_eq!(
        hub.ok(&["get", "widget", "w1", "-o", "jsonpath={.spec.size}"]),
        "small",
        "defaults apply"
    );

    let wrong_type = WIDGET.replace("replicas: 2", "replicas: many");
    let err = hub.fails(&[
        "apply",
        "-f",
        &write_file(dir.path(), "t.yaml", &wrong_type),
    ]);
    assert!(
        err.contains("spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""),
        "{err}"
    );
    let negative = WIDGET.replace("replicas: 2", "replicas: -1");
    let err = hub.fails(&["apply", "-f", &write_file(dir.path(), "n.yaml", &negative)]);
    assert!(
        err.contains("spec.replicas in body should be greater than or equal to 0"),
        "{err}"
    );
    let bad_enum = WIDGET.replace("color: red", "color: red\n  size: huge");
    let err = hub.fails(&["apply", "-f", &write_file(dir.path(), "e.yaml", &bad_enum)]);
    assert!(
        err.contains("spec.size: Unsupported value: \"huge\""),
        "{err}"
    );
    let too_many = WIDGET.replace("replicas: 2", "replicas: 11");
    let err = hub.fails(&["apply", "-f", &write_file(dir.path(), "c.yaml", &too_many)]);
    assert!(err.contains("a widget has at most 10 replicas"), "{err}");
    let unknown = WIDGET.replace("color: red", "color: red\n  shape: round");
    let err = hub.fails(&["apply", "-f", &write_file(dir.path(), "u.yaml", &unknown)]);
    assert!(
        err.contains("strict decoding error: unknown field \"spec.shape\""),
        "{err}"
    );
    let (ok, _, err) = hub.kubectl(&[
        "apply",
        "--validate=warn",
        "-f",
        &write_file(dir.path(), "u.yaml", &unknown),
    ]);
    assert!(ok && err.contains("unknown field \"spec.shape\""), "{err}");
    assert_eq!(
        hub.ok(&["get", "widget", "w1", "-o", "jsonpath={.spec.shape}"]),
        "",
        "pruned"
    );
    // The server kept serving through all of it.
    assert_eq!(
        hub.ok(&["get", "widget", "w1", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );

    let bad_rule = CRD.replace("self.replicas <= 10", "self.replicas <=");
    let err = hub.fails(&["apply", "-f", &write_file(dir.path(), "r.yaml", &bad_rule)]);
    assert!(err.contains("x-kubernetes-validations[0].rule"), "{err}");
}

/// A CRD served in two versions: objects written in one read in the other (conversion
/// `None`), and the deprecated one warns.
async fn several_versions(hub: &Hub) {
    let dir = tempfile::tempdir().unwrap();
    // A create answers with kube-apiserver's defaults and the status started, before the
    // controller has run.
    let minimal = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "gizmos", "kind": "Gizmo"},
          "versions": [{"name": "v2", "served": true, "storage": true,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}"#;
    let created = hub.ok(&[
        "create",
        "-f",
        &write_file(dir.path(), "gizmos.json", minimal),
        "-o",
        "jsonpath={.spec.names.singular} {.spec.names.listKind} {.spec.conversion.strategy} {.status.storedVersions} {.status.acceptedNames.plural}|",
    ]);
    assert_eq!(created, r#"gizmo GizmoList None ["v2"] |"#);
    let two_versions = CRD.replace(
        "  versions:\n  - name: v1\n",
        "  versions:\n  - name: v1beta1\n    served: true\n    storage: false\n    deprecated: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n  - name: v1\n",
    );
    install_crd(hub, dir.path(), &two_versions);
    let old = WIDGET.replace("example.com/v1", "example.com/v1beta1");
    let (ok, _, err) = hub.kubectl(&["apply", "-f", &write_file(dir.path(), "w.yaml", &old)]);
    assert!(ok, "{err}");
    assert!(
        err.contains("example.com/v1beta1 Widget is deprecated"),
        "{err}"
    );
    assert_eq!(
        hub.ok(&[
            "get",
            "widgets.v1.example.com",
            "w1",
            "-o",
            "jsonpath={.apiVersion} {.spec.color}"
        ]),
        "example.com/v1 red"
    );
    let (_, out, _) = hub.kubectl(&[
        "get",
        "widgets.v1beta1.example.com",
        "w1",
        "-o",
        "jsonpath={.apiVersion}",
    ]);
    assert_eq!(out, "example.com/v1beta1");
    assert!(hub.ok(&["api-versions"]).contains("example.com/v1beta1"));
}

on_both_stores!(
    apply_a_directory_with_a_crd,
    several_versions,
    schemas_and_rules,
    wait_for_conditions_and_deletion,
    namespaces_and_bad_definitions,
);
