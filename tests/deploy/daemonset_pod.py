"""The shipped DaemonSet manifest, filled in as an operator fills it in.

Everything is the manifest's own but the security team's public key (the
Secret) and the bundles (a ConfigMap). With --without-host-pid, the same
DaemonSet under another name without hostPID, which the daemon must refuse.

usage: daemonset_pod.py MANIFEST KEY.pub BUNDLE OUT [--without-host-pid]
"""
import sys

import yaml

manifest, key, bundle, out = sys.argv[1:5]
without_host_pid = sys.argv[5:] == ["--without-host-pid"]
documents = []
for doc in yaml.safe_load_all(open(manifest)):
    kind, name = doc["kind"], doc["metadata"]["name"]
    if kind == "Secret":
        doc["stringData"] = {"security-team.pub": open(key).read()}
    elif kind == "ConfigMap" and name == "warrant-bundles":
        doc["data"] = {"demo.bundle": open(bundle).read()}
    elif kind == "DaemonSet" and without_host_pid:
        doc["metadata"]["name"] = name + "-without-hostpid"
        doc["spec"]["template"]["spec"]["hostPID"] = False
    documents.append(doc)
with open(out, "w") as f:
    yaml.safe_dump_all(documents, f)
