#!/usr/bin/env python3
"""Turns CustomResourceDefinition YAML into the JSON schemas kubeconform reads.

    python3 deploy/schemas/crd2jsonschema.py OUT_DIR CRD.yaml...

writes OUT_DIR/<group>/<kind>_<version>.json for each served version (the
layout of kubeconform's -schema-location '{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json').
Like kubeconform's own openapi2jsonschema.py in strict mode: every object
that lists its properties, the root included, refuses unknown ones, so a
misspelt field fails validation instead of being ignored.
"""
import json
import os
import sys

import yaml


def strict(node):
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
    return node


def main(out, paths):
    for path in paths:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "CustomResourceDefinition"]
        for crd in docs:
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"].lower()
            for version in crd["spec"]["versions"]:
                schema = strict(version["schema"]["openAPIV3Schema"])
                target = os.path.join(out, group, f"{kind}_{version['name']}.json")
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w") as f:
                    json.dump(schema, f, indent=1, sort_keys=True)
                    f.write("\n")
                print(target)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
