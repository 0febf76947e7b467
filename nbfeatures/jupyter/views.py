"""The JSON the panel's API answers with, built from catalog values (no I/O here).

The shapes are the panel's contract (see the README section on the server API): families
for the list, versions with their definitions for the detail view, and the changes between
consecutive versions as unified diffs of their definitions.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import yaml

from nbfeatures.catalog.changes import describe_changes

if TYPE_CHECKING:
    from nbfeatures.catalog import FamilySummary, FamilyVersion
    from nbfeatures.definitions import Deprecation, FeatureFamily
    from nbfeatures.lineage import RunUse


def summary_json(
    summary: FamilySummary, freshness: dict[str, Any], report_status: str | None
) -> dict[str, Any]:
    """One family of the list, with its freshness badge and worst latest report status."""
    return {
        "name": summary.name,
        "owner": summary.owner,
        "description": summary.description,
        "status": summary.status,
        "latest_version": summary.latest_version,
        "production_version": summary.production_version,
        "entity": summary.entity,
        "features": list(summary.features),
        "tags": list(summary.tags),
        "freshness": freshness,
        "report_status": report_status,
    }


def deprecation_json(deprecation: Deprecation | None) -> dict[str, Any] | None:
    if deprecation is None:
        return None
    return {
        "reason": deprecation.reason,
        "replacement": deprecation.replacement,
        "sunset": deprecation.sunset.isoformat() if deprecation.sunset else None,
    }


def version_json(found: FamilyVersion) -> dict[str, Any]:
    """One version: its identity, status and whole definition (transformation on its own)."""
    transformation = found.family.transformation
    return {
        "version": found.version,
        "hash": found.hash,
        "status": found.status,
        "aliases": list(found.aliases),
        "created_at": found.created_at.isoformat(),
        "deprecation": deprecation_json(found.deprecation),
        "language": transformation.kind.value,
        "transformation": transformation.text,
        "definition": found.family.to_dict(),
    }


def changes_json(versions: Sequence[FamilyVersion]) -> list[dict[str, Any]]:
    """What changed from each version to the next (oldest first): a unified diff of the two
    definitions and the catalog's one-sentence-per-difference summary."""
    out = []
    for old, new in itertools.pairwise(versions):
        diff = difflib.unified_diff(
            definition_text(old.family).splitlines(keepends=True),
            definition_text(new.family).splitlines(keepends=True),
            fromfile=f"{old.ref}/definition.yaml",
            tofile=f"{new.ref}/definition.yaml",
        )
        out.append(
            {
                "from": old.version,
                "to": new.version,
                "diff": "".join(diff),
                "summary": list(describe_changes(old.family, new.family)),
            }
        )
    return out


def lineage_json(shown: FamilyVersion, runs: Sequence[tuple[int, RunUse]]) -> dict[str, Any]:
    """Sources of the shown version (production, else latest) and the runs that used any
    version (each with the version it used and the model versions registered from it)."""
    return {
        "version": shown.version,
        "sources": [source.to_dict() for source in shown.family.sources],
        "runs": [
            {
                "run_id": use.run_id,
                "name": use.run_name,
                "experiment": use.experiment_name,
                "experiment_id": use.experiment_id,
                "version": version,
                "models": [{"name": name, "version": number} for name, number in use.models],
            }
            for version, use in runs
        ],
    }


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line text (a SQL body, a Python function) as a ``|`` block, so a diff
    of two definitions shows the changed lines of the transformation, not one long line."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _text)


def definition_text(family: FeatureFamily) -> str:
    """The definition as YAML, keys in definition order, text bodies as blocks."""
    data = family.to_dict()
    transformation = data.get("transformation", {})
    if isinstance(transformation, dict) and isinstance(transformation.get("text"), str):
        # Trailing spaces would force YAML's quoted style and hide the lines again.
        lines = transformation["text"].splitlines()
        transformation["text"] = "\n".join(line.rstrip() for line in lines) + "\n"
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)
