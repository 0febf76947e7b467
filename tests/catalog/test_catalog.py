"""The catalog against real MLflow: embedded SQLite and a tracking server on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from servers import free_port

from nbfeatures.catalog import Catalog, FamilyDeprecatedWarning
from nbfeatures.config import load_settings
from nbfeatures.definitions import Entity, FeatureFamily, FeatureRef, Source
from nbfeatures.errors import (
    CatalogUnavailable,
    DefinitionError,
    FamilySunset,
    FeatureNotFound,
    RegistrationFailed,
    TransformationError,
)

Make = Callable[..., FeatureFamily]
NewName = Callable[[], str]


def test_register_then_get_returns_the_definition(
    catalog: Catalog, new_name: NewName, family: Make
) -> None:
    fam = family(new_name(), features={"clicks": "int64", "ratio": "float64"}, tags=("growth",))
    registration = catalog.register(fam, stats={"rows": 12, "clicks": {"mean": 1.5}})

    assert registration.created
    assert registration.previous is None
    assert registration.changes == ()
    found = catalog.get(fam.name)
    assert found.version == 1
    assert found.hash == fam.version_hash
    assert found.family == fam
    assert found.status == "draft"
    assert found.aliases == ()
    assert found.stats == {"rows": 12, "clicks": {"mean": 1.5}}
    assert found.created_at.tzinfo is not None
    assert abs(dt.datetime.now(dt.UTC) - found.created_at) < dt.timedelta(hours=1)
    assert found.run_id == registration.version.run_id != ""
    assert found.deprecation is None


def test_artifacts_and_tags_are_in_mlflow(
    catalog: Catalog, new_name: NewName, family: Make
) -> None:
    fam = family(new_name(), owner="ben")
    version = catalog.register(fam, stats={"rows": 3}).version
    client = catalog._connection.client

    model_version = client.get_model_version(catalog.model_name(fam.name), "1")
    assert {k: model_version.tags[k] for k in ("family", "version", "hash", "owner", "status")} == {
        "family": fam.name,
        "version": "1",
        "hash": fam.version_hash,
        "owner": "ben",
        "status": "draft",
    }
    artifacts = {a.path for a in client.list_artifacts(version.run_id)}
    assert artifacts == {"definition.yaml", "transformation.sql", "stats.json"}
    local = Path(client.download_artifacts(version.run_id, "definition.yaml"))
    assert FeatureFamily.from_dict(yaml.safe_load(local.read_text())) == fam
    stats = Path(client.download_artifacts(version.run_id, "stats.json"))
    assert json.loads(stats.read_text()) == {"rows": 3}
    model = client.get_registered_model(catalog.model_name(fam.name))
    assert model.tags["owner"] == "ben"


@pytest.mark.parametrize(
    "body",
    [
        "BEGIN\n  DROP TABLE events;\nEND",
        "FROM events INSERT OVERWRITE DIRECTORY '/tmp/nbf-never' SELECT *",
    ],
)
def test_registration_refuses_a_sql_body_that_is_not_a_read_only_query(
    catalog: Catalog, new_name: NewName, family: Make, body: str
) -> None:
    name = new_name()
    with pytest.raises(TransformationError, match="nothing was run") as raised:
        catalog.register(family(name, sql=body))
    assert raised.value.family == name
    assert catalog.latest(name) is None  # nothing was written


def test_python_transformation_is_logged_as_python(
    catalog: Catalog, new_name: NewName, family: Make
) -> None:
    body = "def compute(df):\n    return df\n"
    version = catalog.register(family(new_name(), python=body)).version
    client = catalog._connection.client
    assert {a.path for a in client.list_artifacts(version.run_id)} == {
        "definition.yaml",
        "transformation.py",
    }
    assert version.stats is None


def test_same_content_is_idempotent(catalog: Catalog, new_name: NewName, family: Make) -> None:
    fam = family(new_name())
    first = catalog.register(fam)
    # Formatting and comments do not change the normalized SQL, so not the hash either.
    reformatted = family(
        fam.name,
        sql="SELECT user_id,  ts, count(*) AS clicks -- c\nFROM events GROUP BY user_id, ts",
    )
    again = catalog.register(reformatted)

    assert again.created is False
    assert again.version.version == first.version.version == 1
    assert again.previous is not None and again.previous.version == 1
    assert [v.version for v in catalog.history(fam.name)] == [1]


def test_metadata_only_change_keeps_the_version_and_updates_metadata(
    catalog: Catalog, new_name: NewName, family: Make
) -> None:
    fam = family(new_name(), owner="ana", description="clicks", tags=("a",))
    catalog.register(fam)
    changed = fam.with_metadata(owner="ben", description="clicks per user", tags=["b", "c"])
    registration = catalog.register(changed)

    assert registration.created is False
    assert registration.version.version == 1
    assert registration.version.family.owner == "ben"
    assert registration.version.family.description == "clicks per user"
    assert registration.version.family.tags == ("b", "c")
    assert catalog.get(fam.name).family.owner == "ben"
    assert len(catalog.history(fam.name)) == 1


def test_new_content_is_next_version_with_changes(
    catalog: Catalog, new_name: NewName, family: Make
) -> None:
    name = new_name()
    catalog.register(family(name, features={"clicks": "int64", "views": "int64"}))
    second = family(
        name,
        features={"clicks": "float64", "sessions": "int32"},
        sql="SELECT user_id, ts, 1.0 AS clicks, 2 AS sessions FROM events",
        sources=(Source.infer("events", "data/events_v2.parquet", "ts"),),
        entity=Entity("user", "uid"),
    )
    registration = catalog.register(second)

    assert registration.created
    assert registration.version.version == 2
    assert registration.previous is not None and registration.previous.version == 1
    assert set(registration.changes) == {
        "feature added: sessions (int32)",
        "feature removed: views",
        "feature retyped: clicks int64 -> float64",
        "transformation changed (sql)",
        "source changed: events (location data/events.parquet -> data/events_v2.parquet)",
        "entity changed from user(user_id) to user(uid)",
    }
    assert [v.version for v in catalog.history(name)] == [1, 2]
    assert catalog.latest(name) is not None and catalog.latest(name).version == 2  # type: ignore[union-attr]
    assert catalog.get(name, 1).family.feature_names == ("clicks", "views")
    # Going back to earlier content finds the earlier version, not a third one.
    back = catalog.register(family(name, features={"clicks": "int64", "views": "int64"}))
    assert (back.created, back.version.version) == (False, 1)


def test_history_overlays_current_metadata(
    catalog: Catalog, new_name: NewName, family: Make
) -> None:
    name = new_name()
    catalog.register(family(name, owner="ana"))
    catalog.register(family(name, owner="ana", features={"views": "int64"}))
    catalog.set_metadata(name, owner="carla", description="now documented", tags=["x"])

    history = catalog.history(name)
    assert [v.version for v in history] == [1, 2]
    assert {v.family.owner for v in history} == {"carla"}
    assert {v.family.description for v in history} == {"now documented"}
    assert history[0].created_at <= history[1].created_at


def test_set_metadata_makes_no_version(catalog: Catalog, new_name: NewName, family: Make) -> None:
    name = new_name()
    catalog.register(family(name, tags=("old",)))
    updated = catalog.set_metadata(name, tags=["fresh", "new"])

    assert updated.version == 1
    assert updated.family.tags == ("fresh", "new")
    assert updated.family.owner == "ana"  # untouched fields stay
    assert len(catalog.history(name)) == 1
    with pytest.raises(DefinitionError):
        catalog.set_metadata(name, owner=" ")


def test_list_and_search(catalog: Catalog, new_name: NewName, family: Make) -> None:
    stem = new_name()
    first = family(f"{stem}_a", owner="dora", description="Revenue per basket", tags=("finance",))
    second = family(f"{stem}_b", owner="eli", features={"dwell_seconds": "float64"})
    catalog.register(first)
    catalog.register(second)
    catalog.register(family(f"{stem}_b", owner="eli", features={"dwell_seconds": "float32"}))

    listed = {s.name: s for s in catalog.list() if s.name.startswith(stem)}
    assert set(listed) == {first.name, second.name}
    assert listed[second.name].latest_version == 2
    assert listed[second.name].features == ("dwell_seconds",)
    assert listed[first.name].entity == "user"
    assert listed[first.name].tags == ("finance",)
    assert listed[first.name].status == "draft"
    assert listed[first.name].production_version is None

    def names(found: list) -> set[str]:  # type: ignore[type-arg]
        return {s.name for s in found if s.name.startswith(stem)}

    assert names(catalog.search(text="revenue")) == {first.name}
    assert names(catalog.search(text="DWELL")) == {second.name}
    assert names(catalog.search(text=stem)) == {first.name, second.name}
    assert names(catalog.search(owner="eli")) == {second.name}
    assert names(catalog.search(tag="finance")) == {first.name}
    assert names(catalog.search(name=f"{stem}_a")) == {first.name}
    assert names(catalog.search(text="revenue", owner="eli")) == set()


def test_lock_models_are_not_families(catalog: Catalog, new_name: NewName, family: Make) -> None:
    name = new_name()
    catalog.register(family(name))
    client = catalog._connection.client
    assert client.search_registered_models(f"name = '{catalog.model_name(name)}.lock'") == []
    assert all(not s.name.endswith("lock") for s in catalog.list())


def test_unknown_names_raise_feature_not_found(
    catalog: Catalog, new_name: NewName, family: Make
) -> None:
    missing = new_name()
    with pytest.raises(FeatureNotFound) as raised:
        catalog.get(missing)
    assert raised.value.name == missing
    assert catalog.latest(missing) is None
    with pytest.raises(FeatureNotFound):
        catalog.history(missing)
    with pytest.raises(FeatureNotFound):
        catalog.set_metadata(missing, owner="x")
    with pytest.raises(FeatureNotFound):
        catalog.deprecate(missing, reason="gone")
    with pytest.raises(FeatureNotFound):
        catalog.get("Not A Name")

    name = new_name()
    catalog.register(family(name))
    with pytest.raises(FeatureNotFound) as raised:
        catalog.get(name, 7)
    assert (raised.value.name, raised.value.version) == (name, 7)
    assert str(raised.value) == f"feature family {name}@v7 not found"
    with pytest.raises(FeatureNotFound):
        catalog.get(name, alias="production")
    with pytest.raises(FeatureNotFound):
        catalog.set_alias(name, "production", 3)
    with pytest.raises(FeatureNotFound) as no_feature:
        catalog.resolve(f"{name}:nope")
    assert (
        str(no_feature.value) == f"feature {name}@v1:nope not found (family {name} v1 has: clicks)"
    )
    assert (no_feature.value.feature, no_feature.value.known) == ("nope", ("clicks",))
    with pytest.raises(FeatureNotFound):
        catalog.resolve(f"{name}@v9:clicks")
    with pytest.raises(FeatureNotFound):
        catalog.resolve(f"{missing}:clicks")


def test_resolve_prefers_pin_then_production_then_latest(
    catalog: Catalog, new_name: NewName, family: Make
) -> None:
    name = new_name()
    catalog.register(family(name))
    catalog.register(family(name, features={"clicks": "int64", "views": "int64"}))

    assert catalog.resolve(f"{name}:clicks").version == 2  # no production yet: latest
    catalog.set_alias(name, "production", 1)
    assert catalog.resolve(f"{name}:clicks").version == 1
    assert catalog.resolve(FeatureRef.parse(f"{name}:*")).version == 1
    assert catalog.resolve(name).version == 1
    assert catalog.resolve(f"{name}@v2:views").version == 2
    with pytest.raises(FeatureNotFound):
        catalog.resolve(f"{name}:views")  # production v1 has no `views`

    production = catalog.get(name, alias="production")
    assert (production.version, production.status, production.aliases) == (
        1,
        "production",
        ("production",),
    )
    assert catalog.get(name, 2).status == "draft"
    summary = next(s for s in catalog.list() if s.name == name)
    assert (summary.production_version, summary.status) == (1, "production")

    catalog.set_alias(name, "production", 2)
    client = catalog._connection.client
    model_name = catalog.model_name(name)
    assert client.get_model_version(model_name, "2").tags["status"] == "production"
    assert client.get_model_version(model_name, "1").tags["status"] == "draft"
    assert catalog.get(name, 1).aliases == ()


def test_deprecation_warns_and_sunset_refuses_training(
    catalog: Catalog, new_name: NewName, family: Make
) -> None:
    name = new_name()
    catalog.register(family(name))
    catalog.register(family(name, features={"views": "int64"}))
    sunset = dt.date(2030, 6, 30)
    deprecated = catalog.deprecate(
        name, reason="double counts", replacement="clicks_v2", sunset=sunset
    )

    assert deprecated.status == "deprecated"
    assert deprecated.deprecation is not None
    assert (deprecated.deprecation.reason, deprecated.deprecation.replacement) == (
        "double counts",
        "clicks_v2",
    )
    assert all(v.status == "deprecated" for v in catalog.history(name))
    summary = next(s for s in catalog.list() if s.name == name)
    assert summary.status == "deprecated"

    before = dt.date(2030, 6, 30)
    with pytest.warns(FamilyDeprecatedWarning, match="double counts.*clicks_v2"):
        assert catalog.resolve(f"{name}@v1:clicks", purpose="training", today=before).version == 1
    after = dt.date(2030, 7, 1)
    with pytest.warns(FamilyDeprecatedWarning):
        assert catalog.resolve(f"{name}:views", purpose="read", today=after).version == 2
    with pytest.raises(FamilySunset) as raised:
        catalog.resolve(f"{name}:views", purpose="training", today=after)
    assert (raised.value.name, raised.value.version, raised.value.sunset) == (name, 2, sunset)
    assert raised.value.replacement == "clicks_v2"


def test_not_deprecated_resolves_without_warning(
    catalog: Catalog, new_name: NewName, family: Make
) -> None:
    name = new_name()
    catalog.register(family(name))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert catalog.resolve(f"{name}:clicks", purpose="training").version == 1


def test_failed_registration_leaves_nothing(
    backend: object, catalog: Catalog, new_name: NewName, family: Make, tmp_path: Path
) -> None:
    # A path under a regular file cannot be created, not even by root.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    broken = Catalog(
        catalog.tracking_uri,
        (blocker / "artifacts").as_uri(),
        experiment_name=f"broken-{new_name()}",
    )
    fam = family(new_name())
    with pytest.raises(RegistrationFailed) as raised:
        broken.register(fam, stats={"rows": 1})
    assert raised.value.step == "logging artifacts"

    client = catalog._connection.client
    assert client.search_registered_models(f"name = '{catalog.model_name(fam.name)}'") == []
    assert client.search_model_versions(f"name = '{catalog.model_name(fam.name)}'") == []
    experiment = client.get_experiment_by_name(broken.experiment_name)
    assert experiment is not None
    assert client.search_runs([experiment.experiment_id]) == []  # active runs only
    with pytest.raises(FeatureNotFound):
        catalog.get(fam.name)
    # The same family registers normally afterwards, as v1.
    assert catalog.register(fam).version.version == 1


def test_unreachable_catalog_raises_catalog_unavailable(family: Make, new_name: NewName) -> None:
    port = free_port()  # nothing listens there
    uri = f"http://127.0.0.1:{port}"
    before = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_HTTP")}
    catalog = Catalog(uri, timeout=2, retries=0)
    started = time.monotonic()
    with pytest.raises(CatalogUnavailable) as raised:
        catalog.register(family(new_name()))
    assert raised.value.uri == uri
    assert "refused" in raised.value.reason.lower()
    with pytest.raises(CatalogUnavailable):
        catalog.list()
    assert time.monotonic() - started < 30  # a bound against minutes of retries, not a benchmark
    assert {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_HTTP")} == before


def test_unopenable_sqlite_raises_catalog_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    uri = f"sqlite:///{blocker / 'mlflow.db'}"
    with pytest.raises(CatalogUnavailable) as raised:
        Catalog(uri).list()
    assert raised.value.uri == uri


def test_from_settings_uses_the_workspace(tmp_path: Path, family: Make, new_name: NewName) -> None:
    settings = load_settings(tmp_path, environ={}, registered_model_prefix="team.")
    catalog = Catalog.from_settings(settings)
    fam = family(new_name())
    catalog.register(fam)

    assert (tmp_path / ".nbfeatures" / "mlflow.db").is_file()
    assert catalog.model_name(fam.name) == f"team.{fam.name}"
    client = catalog._connection.client
    assert client.get_registered_model(f"team.{fam.name}").name == f"team.{fam.name}"
    run_dir = tmp_path / ".nbfeatures" / "artifacts"
    assert any(run_dir.rglob("definition.yaml"))
