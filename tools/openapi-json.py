#!/usr/bin/env python3
"""openapi-json.py -- doc/openapi.yaml to the JSON the daemon serves.

    python3 tools/openapi-json.py doc/openapi.yaml doc/openapi.json

Needs PyYAML (Debian: python3-yaml).  Only at build time from a git
checkout: the tarball carries the JSON.  YAML's own types that JSON has
not (dates, sets) are refused, so the JSON says what the YAML says; keys
keep their order.
"""

import json
import os
import sys

try:
    import yaml
except ImportError:
    sys.exit("openapi-json.py: PyYAML is missing (apt-get install "
             "python3-yaml), needed to make doc/openapi.json from "
             "doc/openapi.yaml")


class Loader(yaml.SafeLoader):
    """SafeLoader without timestamps: "2026-01-01" stays a string."""


Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: openapi-json.py IN.yaml OUT.json")
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = yaml.load(f, Loader=Loader)
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    os.replace(tmp, sys.argv[2])


if __name__ == "__main__":
    main()
