"""The Helm chart agrees with the code it deploys (no helm binary here to render it):
values it reads exist, the settings it passes are settings, its commands are commands, its
probes are routes, and its pre-install hook needs nothing the release creates later."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import yaml

from api.app import create_app
from core.cli import build_parser
from core.settings import Settings

CHART = Path(__file__).resolve().parents[2] / "helm" / "relais"
TEMPLATES = sorted((CHART / "templates").glob("*"))
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SETTINGS = {f"RELAIS_{f.name.upper()}" for f in msgspec.structs.fields(Settings)}


def _text(name: str) -> str:
    return (CHART / "templates" / name).read_text()


def test_chart_metadata_and_values_parse():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["name"] == "relais" and chart["apiVersion"] == "v2"
    assert {"image", "config", "api", "worker", "migrations"} <= VALUES.keys()


def test_every_value_a_template_reads_is_defined():
    missing = []
    for template in TEMPLATES:
        for path in re.findall(r"\.Values\.([A-Za-z0-9_.]+)", template.read_text()):
            node = VALUES
            for part in path.split("."):
                if not isinstance(node, dict) or part not in node:
                    missing.append(f"{template.name}: .Values.{path}")
                    break
                node = node[part]
    assert missing == []


def test_configuration_names_are_settings():
    configmap = _text("configmap.yaml")
    literal = set(re.findall(r"^\s+(RELAIS_[A-Z_]+):", configmap, re.M))
    documented_secrets = set(re.findall(r"#\s+(RELAIS_[A-Z_]+)",
                                        (CHART / "values.yaml").read_text()))
    names = literal | set(VALUES["config"]) | documented_secrets
    assert documented_secrets >= {"RELAIS_DATABASE_URL", "RELAIS_REDIS_URL",
                                  "RELAIS_SECRET_KEY", "RELAIS_MIGRATION_DATABASE_URL"}
    assert names - SETTINGS == set()


def test_container_commands_exist():
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    used = {arg for template in TEMPLATES
            for args in re.findall(r"args:\s*\[([^\]]*)\]", template.read_text())
            for arg in re.findall(r'"([^"]+)"', args)}
    assert used == {"serve", "worker", "migrate"} and used <= set(commands)


def test_probes_are_public_routes():
    app = create_app(Settings())
    paths = {route.path for route in app.routes}
    probes = set(re.findall(r"httpGet:\s*\{path:\s*([^,}]+)", _text("api.yaml")))
    assert probes == {"/readyz", "/healthz"} and probes <= paths


def test_hooks_need_only_what_exists_before_the_release():
    """A pre-install hook runs before the release's ConfigMap exists: it must not read it."""
    for template in TEMPLATES:
        text = template.read_text()
        if "helm.sh/hook" in text:
            assert 'include "relais.env"' not in text, template.name
            assert "configMapRef" not in text, template.name
