"""Every time setting is a Duration that accepts "2m" in a real monitor.yaml; settings.py is a leaf module."""

from __future__ import annotations

import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo

from monitor.config import Config, load_config
from monitor.settings import parse_duration

# A number field with such a name is a time: it must be a Duration, or be listed below with the reason it is not.
TIME_NAME = re.compile(r"(timeout|interval|idle|grace|backoff|after|ttl|seconds|days|tick|delay|age|retention|lease|"
                       r"throttle|window|base|period|expiry)$")
NOT_DURATIONS = {
    ("StorySettings", "retention_days"): "counted in days (dedup.retention_days: 30 is thirty days)",
    ("ArchiveSettings", "retention_days"): "counted in days (archive.retention_days: 30 is thirty days)",
    ("PipelineSettings", "articles_failing_after"): "a count of page failures in a row, not a time",
}
# values for the required fields of a model the walk has to write (a feed needs its url, a directory its path)
REQUIRED = {"url": "https://example.org/rss.xml", "path": "seeds"}


def _annotated_duration(annotation: Any) -> bool:
    metadata = getattr(annotation, "__metadata__", ())
    if any(isinstance(m, BeforeValidator) and m.func is parse_duration for m in metadata):
        return True
    return any(_annotated_duration(arg) for arg in typing.get_args(annotation))


def is_duration(info: FieldInfo) -> bool:
    return any(isinstance(m, BeforeValidator) and m.func is parse_duration for m in info.metadata) or \
        _annotated_duration(info.annotation)


def _is_number(annotation: Any) -> bool:
    return annotation in (int, float) or any(_is_number(a) for a in typing.get_args(annotation))


def _nested(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """('model' | 'list' | 'dict', the model) for a field that holds settings models."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model", annotation
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return "list", args[0]
    if origin is dict and len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], BaseModel):
        return "dict", args[1]
    for arg in args:  # X | None
        found = _nested(arg)
        if found:
            return found
    return None


def walk(model: type[BaseModel], path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], type[BaseModel], str,
                                                                         FieldInfo]]:
    """Every field of every settings model under `model`: (path in monitor.yaml, model, name, field).
    A list is entered at item 0, a dict at key "desk"."""
    out = []
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        out.append(((*path, name), model, name, info))
        nested = _nested(info.annotation)
        if nested:
            kind, inner = nested
            step = {"model": (), "list": (0,), "dict": ("desk",)}[kind]
            out += walk(inner, (*path, name, *step))
    return out


def duration_paths() -> list[tuple[Any, ...]]:
    return [path for path, _, _, info in walk(Config) if is_duration(info)]


def yaml_setting(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """The smallest monitor.yaml data that sets `path` to `value` (required fields of list items filled in)."""
    def build(model: type[BaseModel], rest: tuple[Any, ...]) -> dict[str, Any]:
        data = {n: REQUIRED[n] for n, i in model.model_fields.items() if i.is_required()}
        name, *more = rest
        if not more:
            data[name] = value
            return data
        kind, inner = _nested(model.model_fields[name].annotation)
        if kind == "model":
            data[name] = build(inner, tuple(more))
        elif kind == "list":
            data[name] = [build(inner, tuple(more[1:]))]
        else:
            data[name] = {more[0]: build(inner, tuple(more[1:]))}
        return data

    return build(Config, path)


def read_back(config: Any, path: tuple[Any, ...]) -> Any:
    node = config
    for step in path:
        node = node[step] if isinstance(step, (int,)) or isinstance(node, dict) else getattr(node, step)
    return node


def test_the_walk_finds_the_time_settings_of_every_section():
    paths = {".".join(map(str, p)) for p in duration_paths()}
    for expected in ("pipeline.claim_idle", "alerts.claim_idle", "alerts.send_timeout", "fetch.timeout",
                     "fetch.max_retry_after", "extract.timeout", "sources.feeds.0.interval",
                     "channels.desk.throttle", "redis.connect_timeout", "service.shutdown_grace"):
        assert expected in paths


def test_every_number_setting_named_like_a_time_is_a_duration():
    offenders = [f"{'.'.join(map(str, path))} ({model.__name__}.{name}: {info.annotation})"
                 for path, model, name, info in walk(Config)
                 if TIME_NAME.search(name) and _is_number(info.annotation) and not is_duration(info)
                 and (model.__name__, name) not in NOT_DURATIONS]
    assert not offenders, "time settings that are not a Duration (make them one, or list them with the reason)"


def test_the_exceptions_still_exist():
    """An exception for a field that was renamed or removed would hide nothing, but would mislead readers."""
    fields = {(model.__name__, name) for _, model, name, _ in walk(Config)}
    assert set(NOT_DURATIONS) <= fields


@pytest.mark.parametrize("path", duration_paths(), ids=lambda p: ".".join(map(str, p)))
def test_every_time_setting_accepts_2m_in_monitor_yaml(tmp_path, path):
    file = tmp_path / "monitor.yaml"
    file.write_text(yaml.safe_dump(yaml_setting(path, "2m"), sort_keys=False))
    assert read_back(load_config(file, environ={}), path) == 120


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("2m", 120), ("1h", 3600), (45, 45), ("500ms", 0.5),
                                          ("1w", 604800), ("0", 0)])
def test_one_duration_parser(text, seconds):
    assert parse_duration(text) == seconds


def test_a_digest_window_reads_durations_alike(tmp_path):
    file = tmp_path / "monitor.yaml"
    file.write_text("channels:\n  desk: {urls: ['json://127.0.0.1/x'], digest: 2m}\n")
    assert load_config(file, environ={}).channels["desk"].digest_schedule().interval == 120


def test_a_negative_time_names_file_line_and_key(tmp_path):
    file = tmp_path / "monitor.yaml"
    file.write_text("alerts:\n  claim_idle: -2m\n")
    with pytest.raises(Exception) as info:
        load_config(file, environ={})
    [problem] = info.value.problems
    assert problem.startswith(f"{file}:2:") and "alerts.claim_idle: not a duration: '-2m'" in problem


STAGES = ("monitor.net", "monitor.extract", "monitor.dedup", "monitor.archive", "monitor.rules", "monitor.alerts",
          "monitor.store", "monitor.pipeline", "monitor.daemon")


def _loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('monitor')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    return set(out.split())


def test_settings_is_a_leaf_and_reading_the_configuration_loads_no_stage():
    assert _loaded_after("monitor.settings") <= {"monitor", "monitor.settings", "monitor.errors"}
    loaded = _loaded_after("monitor.config")
    assert not [m for m in loaded if m.startswith(STAGES)], loaded
