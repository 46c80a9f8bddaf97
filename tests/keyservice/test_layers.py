"""The key service's layers import only downwards (issue 13): the audit log, authentication
and the catalog know nothing of HTTP or of the running service, and refusals are mapped to
answers in the API layer only. Read from the source, so a function-level import counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import keyservice

ROOT = Path(keyservice.__file__).parent
# Bottom to top; a module may import from its own layer and those before it.
LAYERS = (
    ("keyservice.errors", "keyservice.ids", "keyservice.caller", "keyservice.settings"),
    ("keyservice.db", "keyservice.policy", "keyservice.keys"),
    ("keyservice.audit",),
    ("keyservice.auth",),
    ("keyservice.catalog",),
    ("keyservice.state",),
)
HTTP = ("fastapi", "starlette")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _layer(name: str) -> int | None:
    for index, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(f"{p}.") for p in prefixes):
            return index
    return None


def _sources(*packages: str) -> list[Path]:
    paths = []
    for package in packages:
        path = ROOT.parent.joinpath(*package.split("."))
        paths.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")])
    return paths


def test_no_layer_imports_one_above_it_or_http() -> None:
    upward = []
    for prefixes in LAYERS:
        for path in _sources(*prefixes):
            own = _layer(_module(path))
            assert own is not None
            for imported in _imports(path):
                above = _layer(imported)
                if (above is not None and above > own) or imported.startswith(HTTP):
                    upward.append(f"{_module(path)} imports {imported}")
                # Nothing below the service state knows the API or its dependencies.
                if imported.startswith(("keyservice.api", "keyservice.deps", "keyservice.app")):
                    upward.append(f"{_module(path)} imports {imported}")
    assert upward == []


def test_the_audit_package_knows_nothing_of_http_or_the_service() -> None:
    """The loop audit -> state -> audit and the HTTP error inside the audit are gone."""
    for path in _sources("keyservice.audit"):
        imported = _imports(path)
        assert not {i for i in imported if i.startswith(HTTP)}, path
        assert not {i for i in imported if i.startswith("keyservice.state")}, path
        assert not {i for i in imported if i.startswith("keyservice.auth")}, path


def test_the_release_router_maps_no_refusal_itself() -> None:
    """Refusals are raised below as domain errors and answered by the API's handlers."""
    imported = _imports(ROOT / "api" / "release.py")
    assert "fastapi.HTTPException" not in imported
    assert "keyservice.errors.AuthenticationError" not in imported
