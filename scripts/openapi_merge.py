"""openapi_merge.py FRAGMENT... — merges OpenAPI fragments (top-level `paths:`
and `schemas:` blocks, plus an optional `tags:` list) into api/openapi.yaml,
textually, so the hand-written layout and comments of openapi.yaml stay.
Each fragment is then deleted: openapi.yaml is the one document."""
import os
import re
import sys

import yaml

DOC = os.path.join(os.path.dirname(__file__), "..", "api", "openapi.yaml")


def blocks(text):
    """Top-level key -> list of its indented lines."""
    out, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z]+):\s*$", line)
        if m:
            cur = m.group(1)
            out[cur] = []
        elif cur and (line.startswith(" ") or not line.strip()):
            out[cur].append(line)
    return out


def main():
    doc = open(DOC).read()
    for frag_path in sys.argv[1:]:
        frag = blocks(open(frag_path).read())
        lines = doc.splitlines()
        name = os.path.basename(frag_path).split(".")[0]
        # paths: insert before the top-level components:
        ci = lines.index("components:")
        lines[ci:ci] = [l for l in frag.get("paths", []) if l.strip()] + [""]
        # schemas: after "  schemas:"
        si = lines.index("  schemas:") + 1
        lines[si:si] = ["  " + l if l.strip() else l for l in frag.get("schemas", []) if l.strip()]
        # tag
        ti = lines.index("tags:") + 1
        tag = name.replace("_", "-")
        if f"  - name: {tag}" not in lines:
            lines.insert(ti, f"  - name: {tag}")
        doc = "\n".join(lines) + "\n"
        yaml.safe_load(doc)  # must stay valid
        os.remove(frag_path)
    open(DOC, "w").write(doc)


if __name__ == "__main__":
    main()
