"""The official Kubernetes Python client (PyPI `kubernetes`) against a Trellis workspace.

Run by python_client.rs with the kubeconfig of a hub whose current context is a workspace.
Prints one JSON object of what it saw, for the test to check; any exception fails the run.
"""

import json
import sys
import threading
import time

from kubernetes import client, config, dynamic, watch

config.load_kube_config(sys.argv[1])
seen = {"server": client.Configuration.get_default_copy().host}
v1 = client.CoreV1Api()

v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
seen["namespaces"] = sorted(n.metadata.name for n in v1.list_namespace().items)

created = v1.create_namespaced_config_map(
    "py",
    client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="c1", labels={"app": "x"}), data={"a": "1"}
    ),
)
seen["created_rv"] = created.metadata.resource_version

# A watch from the create's resourceVersion sees the later changes, in order.
events = []


def follow():
    stream = watch.Watch()
    for event in stream.stream(
        v1.list_namespaced_config_map,
        "py",
        resource_version=created.metadata.resource_version,
        timeout_seconds=10,
    ):
        events.append([event["type"], event["object"].metadata.name, event["object"].data])
        if event["type"] == "DELETED":
            stream.stop()


watcher = threading.Thread(target=follow)
watcher.start()
time.sleep(0.5)
# A dict body goes as a strategic merge patch.
v1.patch_namespaced_config_map("c1", "py", {"data": {"b": "2"}})
v1.delete_namespaced_config_map("c1", "py")
watcher.join()
seen["events"] = events

try:
    v1.read_namespaced_config_map("c1", "py")
    seen["read_after_delete"] = 200
except client.ApiException as e:
    seen["read_after_delete"] = e.status
    seen["read_after_delete_reason"] = json.loads(e.body)["reason"]

# Paging with limit and continue.
for i in range(5):
    v1.create_namespaced_config_map(
        "py", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"p{i}"))
    )
page = v1.list_namespaced_config_map("py", limit=2)
pages, names = 1, [c.metadata.name for c in page.items]
while page.metadata._continue:
    page = v1.list_namespaced_config_map("py", limit=2, _continue=page.metadata._continue)
    pages += 1
    names += [c.metadata.name for c in page.items]
seen["paged"] = {"pages": pages, "names": names}

# Optimistic concurrency: a stale resourceVersion is a 409 Conflict.
stale = v1.read_namespaced_config_map("p0", "py")
v1.patch_namespaced_config_map("p0", "py", {"data": {"x": "1"}})
try:
    v1.replace_namespaced_config_map("p0", "py", stale)
    seen["stale_replace"] = 200
except client.ApiException as e:
    seen["stale_replace"] = e.status

# A CRD, then its objects through CustomObjectsApi (a merge patch) and the dynamic client.
client.ApiextensionsV1Api().create_custom_resource_definition(
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.py.example.com"},
        "spec": {
            "group": "py.example.com",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer", "maximum": 10}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
)
objects = client.CustomObjectsApi()
gadget = {"apiVersion": "py.example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}}
for attempt in range(100):
    try:
        objects.create_namespaced_custom_object(
            "py.example.com", "v1", "py", "gadgets", {**gadget, "spec": {"size": 3}}
        )
        break
    except client.ApiException as e:
        if e.status != 404 or attempt == 99:
            raise
        time.sleep(0.1)  # the CRD is not established yet
objects.patch_namespaced_custom_object(
    "py.example.com", "v1", "py", "gadgets", "g", {"spec": {"size": 4}}
)
seen["gadget"] = objects.get_namespaced_custom_object(
    "py.example.com", "v1", "py", "gadgets", "g"
)["spec"]
try:
    objects.patch_namespaced_custom_object(
        "py.example.com", "v1", "py", "gadgets", "g", {"spec": {"size": 11}}
    )
    seen["too_big"] = 200
except client.ApiException as e:
    seen["too_big"] = e.status
    seen["too_big_message"] = json.loads(e.body)["message"]
    # The causes as the client's model reads them (V1StatusCause.reason, .field).
    causes = client.ApiClient().deserialize(e.body, "V1Status", "application/json").details.causes
    seen["too_big_causes"] = [[c.reason, c.field] for c in causes]

resources = dynamic.DynamicClient(client.ApiClient()).resources
seen["dynamic"] = [
    g.metadata.name
    for g in resources.get(api_version="py.example.com/v1", kind="Gadget")
    .get(namespace="py")
    .items
]
applied = resources.get(api_version="v1", kind="ConfigMap").server_side_apply(
    namespace="py",
    body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"k": "v"}},
    field_manager="python",
)
seen["ssa"] = {"data": dict(applied.data), "manager": applied.metadata.managedFields[0].manager}

print(json.dumps(seen))
