"""api/openapi_viewer.yaml documents every route of the viewer modules, in
the layout of api/openapi.yaml: merged into it, the document stays valid and
every $ref resolves. (Once the fragment is folded into api/openapi.yaml this
test still passes: merging is idempotent for routes already there.)"""
import glob
import os
import re

from helpers import ROOT

ROUTE_RE = re.compile(r'router_add\(\s*\w+\s*,\s*"([A-Z]+)"\s*,\s*"([^"]+)"')
PARAM_RE = re.compile(r"\{\*?[^}]*\}")
VIEWER_SOURCES = ["viewer_tokens.c", "access_codes.c", "events_api.c", "player.c"]


def normalize(path):
    return PARAM_RE.sub("{}", path)


def viewer_routes():
    routes = set()
    for name in VIEWER_SOURCES:
        with open(os.path.join(ROOT, "api", name), encoding="utf-8") as f:
            for method, pattern in ROUTE_RE.findall(f.read()):
                routes.add((method, normalize(pattern)))
    return routes


def sections(text):
    """Top-level key → its indented block of lines."""
    out, key = {}, None
    for line in text.splitlines():
        m = re.match(r"^(\w+):", line)
        if m:
            key = m.group(1)
            out.setdefault(key, [])
            continue
        if key and not line.startswith("#"):
            out[key].append(line)
    return out


def merged_document():
    with open(os.path.join(ROOT, "api", "openapi.yaml"), encoding="utf-8") as f:
        main = f.read()
    fragment = os.path.join(ROOT, "api", "openapi_viewer.yaml")
    if not os.path.exists(fragment):  # folded into openapi.yaml
        return main
    with open(fragment, encoding="utf-8") as f:
        frag = sections(f.read())
    lines = main.splitlines()
    # paths: insert the fragment's paths before `components:`
    at = lines.index("components:")
    lines[at:at] = frag["paths"]
    # components: each sub-section's entries go right after its header
    comp = {}
    sub = None
    for line in frag["components"]:
        m = re.match(r"^  (\w+):\s*$", line)
        if m:
            sub = m.group(1)
            comp[sub] = []
        elif sub:
            comp[sub].append(line)
    start = lines.index("components:")
    for sub, body in comp.items():
        header = lines.index(f"  {sub}:", start)
        lines[header + 1:header + 1] = body
    return "\n".join(lines) + "\n"


def test_fragment_documents_every_viewer_route():
    text = merged_document()
    documented = set()
    current, in_paths = None, False
    for line in text.splitlines():
        if re.match(r"^\S", line):
            in_paths = line.startswith("paths:")
            continue
        if not in_paths:
            continue
        m = re.match(r"^  (/\S*):\s*$", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"^    (get|post|put|patch|delete):", line)
        if m and current:
            documented.add((m.group(1).upper(), normalize(current)))
    routes = viewer_routes()
    assert len(routes) >= 12, routes
    missing = sorted(routes - documented)
    assert not missing, f"viewer routes missing from api/openapi.yaml: {missing}"


def test_merged_document_is_valid_yaml_with_resolvable_refs():
    try:
        import yaml
    except ImportError:
        return
    text = merged_document()
    doc = yaml.safe_load(text)
    assert doc["openapi"].startswith("3.")
    for kind, name in set(re.findall(r'\$ref: "#/components/(\w+)/(\w+)"', text)):
        assert name in doc["components"][kind], (kind, name)
    assert "/v2/apps/me/video-rooms/{videoRoomId}/tokens" in doc["paths"]
