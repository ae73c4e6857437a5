"""The configuration, checked before any data is read: types, names, finite numbers, physical ranges.

The workflow's config (config/config.yaml, ``--configfile``, ``--config``) is checked against its JSON
schema (workflow/schemas/config.schema.yaml) and against what a schema cannot say:

- values arrive as text from ``--config key='{a: 2}'`` and as YAML 1.1 readings from files, where
  ``1.0e9`` is text: :func:`typed` gives each value the type its key asks for;
- a key the schema does not know is refused, naming the nearest valid key (:func:`unknown_keys`);
- every number must be finite: ``.nan`` and ``.inf`` pass a schema's ``minimum`` (a comparison with
  NaN is false), then fail mid-run or silently change results (:func:`non_finite`);
- physical ranges that depend on another key: the bleach correction's parameter for its method
  (brightflow.detrend.methods: an exponential time constant of at least a frame, a whole boxcar
  half-width, ...) (:func:`check_physics`); and, once the stacks' headers are read, the ranges that
  depend on the recordings: a polynomial degree below the frames, windows of the time series no
  longer than a recording, an erosion smaller than the image (:func:`check_against_stacks`).

Every error is a :class:`ConfigError` naming the key, the value and the valid range. Nothing here
imports snakemake; the workflow turns a ConfigError into its own error at start.
"""

from __future__ import annotations

import difflib
import math

import jsonschema
import yaml

__all__ = [
    "ConfigError",
    "check_against_stacks",
    "check_physics",
    "config_error",
    "non_finite",
    "typed",
    "unknown_keys",
]


class ConfigError(ValueError):
    """A configuration value brightflow cannot use: the message names the key, the value and what it may be."""


def _fits(value, schema):
    return jsonschema.Draft202012Validator(schema).is_valid(value)


def _number(text):
    """A number written in text (``1.0e9``, ``2``, ``.5``), or None."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def typed(value, schema):
    """``value`` with the types ``schema`` asks for.

    snakemake's ``--config key='{a: 2}'`` delivers a nested override's values as text ('2', 'true',
    '0.5'), and YAML 1.1 reads ``1.0e9`` as text: each text that does not fit its key's schema, but
    whose YAML or number reading does, is replaced by that reading.
    """
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        return {key: typed(item, properties.get(key, {})) for key, item in value.items()}
    if isinstance(value, str) and schema and not _fits(value, schema):
        try:
            read = yaml.safe_load(value)
        except yaml.YAMLError:
            read = value
        number = _number(value.strip())
        if isinstance(read, str) and number is not None:
            read = number
        # a reading that fits, or that at least is not text (its own error, e.g. a minimum, is the clearer)
        if _fits(read, schema) or not isinstance(read, str):
            return read
    return value


def unknown_keys(values, schema, prefix=""):
    """ConfigError for the first key the schema does not know, naming the nearest valid one."""
    properties = schema.get("properties", {})
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in properties:
            if schema.get("additionalProperties") is False:
                near = difflib.get_close_matches(str(key), list(properties), n=1, cutoff=0.6)
                hint = f" Did you mean {prefix}{near[0]}?" if near else ""
                raise ConfigError(
                    f"config: unknown key {name!r}.{hint} Valid keys here: {', '.join(properties)} "
                    "(config/README.md describes each)."
                )
            continue
        if isinstance(value, dict) and "properties" in properties[key]:
            unknown_keys(value, properties[key], f"{name}.")


def config_error(error):
    """A jsonschema violation as one sentence naming the key, the value and what it may be."""
    key = ".".join(str(part) for part in error.absolute_path) or "(the config)"
    what = error.schema.get("description", "")
    allowed = error.schema.get("enum")
    if allowed is None and error.validator == "oneOf":
        allowed = [item for option in error.schema["oneOf"] for item in option.get("enum", [])]
    hint = ""
    if allowed and isinstance(error.instance, str):
        near = difflib.get_close_matches(error.instance, [str(item) for item in allowed], n=1, cutoff=0.5)
        hint = f" Did you mean {near[0]!r}?" if near else ""
    detail = f" ({what})" if what else ""
    return ConfigError(f"config key {key} is {error.instance!r}: {error.message}{detail}.{hint} See config/README.md.")


def non_finite(values, prefix=""):
    """ConfigError for the first number that is NaN or infinite (they pass a schema's ranges)."""
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            non_finite(value, f"{name}.")
        elif isinstance(value, (list, tuple)):
            non_finite({f"{key}[{index}]": item for index, item in enumerate(value)}, prefix)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"config key {name} is {value!r}: a finite number is needed (NaN and infinity are not values "
                "brightflow can compute with). See config/README.md."
            )


def check(values, schema):
    """The configuration with its types applied, checked against ``schema`` (unknown keys, schema
    violations, non-finite numbers); ConfigError for the first problem. Defaults are not filled in."""
    values = typed(values, schema)
    unknown_keys(values, schema)
    non_finite(values)  # first: NaN passes a schema's ranges, or fails them with a less clear message
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(values), key=lambda e: [str(p) for p in e.path])
    if errors:
        raise config_error(errors[0])
    return values


def check_physics(values):
    """The ranges a schema cannot express, on the complete configuration (defaults filled in)."""
    from .detrend import correction_named

    bleach = values["bleach_correction"]
    if bleach["parameter"] != "auto":
        correction = correction_named(bleach["method"])
        try:
            correction.check_parameter(bleach["parameter"], None)
        except ValueError as error:
            raise ConfigError(
                f"config key bleach_correction.parameter is {bleach['parameter']!r} with method "
                f"{bleach['method']}: {error}. See config/README.md."
            ) from None


def check_against_stacks(values, stacks):
    """The ranges that depend on the recordings, once their headers are read.

    Parameters
    ----------
    values : dict
        The complete configuration.
    stacks : dict of str -> (int, int, int)
        Each experiment's frames, height and width.

    Raises
    ------
    ConfigError
        Naming the key, the value, the experiment and the valid range.
    """
    from .detrend import correction_named

    bleach = values["bleach_correction"]
    windows = values["nb"]["timeseries"]["frames_per_set"]
    erosion = values["segmentation"]["erode_pixels"]
    for name, (frames, height, width) in stacks.items():
        if bleach["parameter"] != "auto":
            try:
                correction_named(bleach["method"]).check_parameter(bleach["parameter"], frames)
            except ValueError as error:
                raise ConfigError(
                    f"config key bleach_correction.parameter is {bleach['parameter']!r}, but experiment "
                    f"{name!r} has {frames} frames: {error}."
                ) from None
        if windows is not None and windows > frames:
            raise ConfigError(
                f"config key nb.timeseries.frames_per_set is {windows}, but experiment {name!r} has only {frames} "
                f"frames: a window must hold at most the recording (2 to {frames}), or set it to null."
            )
        if erosion and 2 * erosion >= min(height, width):
            raise ConfigError(
                f"config key segmentation.erode_pixels is {erosion}, but experiment {name!r} is {height} x {width} "
                f"pixels: an erosion of {erosion} pixels from every side leaves nothing of any cell (at most "
                f"{max(min(height, width) // 2 - 1, 0)})."
            )
