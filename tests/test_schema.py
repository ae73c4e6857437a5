"""The configuration schema's lists of choices are the package's own (one home for each list), and its
defaults are the default config's."""

from __future__ import annotations

import yaml
from helpers import REPO

from brightflow import detrend, filters, segment, threshold


def _schema():
    return yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())["properties"]


def _enum(node):
    """The allowed strings of a schema node (an enum, or the string enum of a oneOf)."""
    if "enum" in node:
        return list(node["enum"])
    return [value for option in node["oneOf"] if option.get("type") == "string" for value in option["enum"]]


def test_the_schemas_choices_are_the_packages():
    schema = _schema()
    nb_keys = schema["nb"]["properties"]
    assert sorted(_enum(schema["bleach_correction"]["properties"]["method"])) == sorted(detrend.METHODS)
    assert sorted(_enum(nb_keys["threshold"])) == sorted(("none",) + tuple(threshold.METHODS))
    assert sorted(_enum(nb_keys["filter"])) == sorted(("none",) + tuple(filters.FILTERS))
    assert sorted(_enum(nb_keys["convention"])) == sorted(threshold.CONVENTIONS)
    segmentation = schema["segmentation"]["properties"]["threshold"]["properties"]
    assert sorted(_enum(segmentation["method"])) == sorted(segment.THRESHOLD_METHODS)


def test_the_default_config_is_the_schemas_defaults():
    """config/config.yaml states every default the schema applies, with the same value."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())

    def compare(node, values, path):
        for key, child in node.get("properties", {}).items():
            if key not in values:
                continue
            if child.get("type") == "object" and "properties" in child:
                compare(child, values[key], f"{path}{key}.")
            elif "default" in child:
                assert values[key] == child["default"], (
                    f"{path}{key}: config.yaml {values[key]!r}, schema {child['default']!r}"
                )

    compare({"properties": _schema()}, config, "")
