"""api/openapi.yaml is served at GET /v2/openapi.yaml and lists every route
the server registers (found in the C sources: router_add calls in cli/ and api/)."""
import glob
import os
import re

from helpers import ROOT, http

ROUTE_RE = re.compile(r'router_add\(\s*\w+\s*,\s*"([A-Z]+)"\s*,\s*"([^"]+)"')
PARAM_RE = re.compile(r"\{\*?[^}]*\}")


def normalize(path):
    """Parameter names do not matter: /a/{id}/{*rest} → /a/{}/{}."""
    return PARAM_RE.sub("{}", path)


def registered_routes():
    routes = set()
    files = [os.path.join(ROOT, "cli", "serve.c")] + glob.glob(os.path.join(ROOT, "api", "*.c"))
    for path in files:
        with open(path, encoding="utf-8") as f:
            for method, pattern in ROUTE_RE.findall(f.read()):
                routes.add((method, normalize(pattern)))
    return routes


def documented_routes(text):
    """(METHOD, path) pairs from the `paths:` section (a small YAML reader for
    this file's layout; PyYAML is used to check it too when installed)."""
    routes, current, in_paths = set(), None, False
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
        m = re.match(r"^    (get|post|put|patch|delete|head|options):", line)
        if m and current:
            routes.add((m.group(1).upper(), normalize(current)))
    return routes


def test_openapi_is_served_as_yaml(castgate):
    r = http("GET", castgate.http_base + "/v2/openapi.yaml")
    assert r.status == 200
    assert r.headers.get("Content-Type", "").startswith("application/yaml")
    with open(os.path.join(ROOT, "api", "openapi.yaml"), "rb") as f:
        assert r.body == f.read()
    assert r.body.startswith(b"openapi: 3.")


def test_every_registered_route_is_documented():
    with open(os.path.join(ROOT, "api", "openapi.yaml"), encoding="utf-8") as f:
        text = f.read()
    documented = documented_routes(text)
    registered = registered_routes()
    assert len(registered) >= 20, registered
    missing = sorted(registered - documented)
    assert not missing, f"routes missing from api/openapi.yaml: {missing}"
    try:
        import yaml  # optional: python3-yaml
    except ImportError:
        return
    doc = yaml.safe_load(text)
    assert doc["openapi"].startswith("3.")
    parsed = {(m.upper(), normalize(p)) for p, ops in doc["paths"].items() for m in ops
              if m in ("get", "post", "put", "patch", "delete", "head", "options")}
    assert parsed == documented
    # every $ref resolves
    for ref in set(re.findall(r'\$ref: "#/components/(\w+)/(\w+)"', text)):
        assert ref[1] in doc["components"][ref[0]], ref
