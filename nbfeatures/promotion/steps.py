"""The steps the promotion notebook runs, one method per tagged cell of the template.

The template (``nbfeatures/templates/promote.ipynb``) stays a thin, readable script: each cell
calls one method of ``PromotionRun`` and prints what it did, so the archived notebook reads as
the promotion's log. Each method also adds its results to a JSON file the caller reads after
the run (``results_path``), so a failed run still tells what it had done.

Nothing here changes what production serves until ``flip``; every earlier step writes only
the new version's offline folder and online keyspace.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbfeatures.config import Settings, load_settings
from nbfeatures.errors import PromotionFailed

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from nbfeatures.catalog import Catalog, FamilyVersion
    from nbfeatures.online.store import FamilyLayout, OnlineStore


class PromotionRun:
    """The state the template's cells share inside the kernel."""

    def __init__(
        self,
        settings: Settings,
        family: str,
        version: int | None,
        run_id: str,
        results_path: str = "",
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        engine: str = "auto",
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.family = family
        self.requested_version = version
        self.run_id = run_id
        self.results_path = Path(results_path) if results_path else None
        self.start = start
        self.end = end
        self.results: dict[str, Any] = {"family": family, "run_id": run_id}
        self._catalog: Catalog | None = None
        self._store: OnlineStore | None = None
        self._fv: FamilyVersion | None = None
        self._layout: FamilyLayout | None = None
        self.expected: int | None = None

    @classmethod
    def open(
        cls,
        workspace: str,
        family: str,
        version: int | None,
        run_id: str,
        *,
        settings_overrides: dict[str, Any] | None = None,
        results_path: str = "",
        start: str | None = None,
        end: str | None = None,
        engine: str = "auto",
    ) -> PromotionRun:
        """Build the run from the template's parameters; the notebook is an edge."""
        settings = load_settings(workspace, **(settings_overrides or {}))
        return cls(
            settings,
            family,
            int(version) if version is not None else None,
            run_id,
            results_path,
            dt.datetime.fromisoformat(start) if start else None,
            dt.datetime.fromisoformat(end) if end else None,
            engine,
        )

    # ----------------------------------------------------------------- shared parts

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            from nbfeatures.catalog import Catalog

            self._catalog = Catalog.from_settings(self.settings)
        return self._catalog

    @property
    def store(self) -> OnlineStore:
        if self._store is None:
            from nbfeatures.online.store import OnlineStore

            self._store = OnlineStore.from_settings(self.settings)
        return self._store

    @property
    def fv(self) -> FamilyVersion:
        if self._fv is None:
            raise PromotionFailed(self.family, 0, "load", "the load step has not run")
        return self._fv

    @property
    def layout(self) -> FamilyLayout:
        if self._layout is None:
            from nbfeatures.online.store import FamilyLayout

            self._layout = FamilyLayout.of(self.fv.family, self.fv.version)
        return self._layout

    def _spark(self) -> Any:
        return spark_for(self.settings)

    def _save(self, step: str, values: dict[str, Any], started: float) -> dict[str, Any]:
        values = {**values, "seconds": round(time.perf_counter() - started, 3)}
        self.results[step] = values
        if self.results_path is not None:
            tmp = self.results_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.results, indent=2, default=str))
            tmp.replace(self.results_path)
        return values

    # ----------------------------------------------------------------- the steps

    def load(self) -> dict[str, Any]:
        """Read the definition from the catalog and the live version from the online store."""
        started = time.perf_counter()
        self._fv = self.catalog.get(self.family, self.requested_version)
        self.expected = self.store.live_version(self.family)
        return self._save(
            "load",
            {
                "version": self.fv.version,
                "hash": self.fv.hash,
                "live_before": self.expected,
                "features": list(self.fv.family.feature_names),
            },
            started,
        )

    def compute(self, *, recompute: bool = False, restore: bool = False) -> dict[str, Any]:
        """Compute the offline feature set over the sources' full range (or ``start``/``end``),
        unless the version's offline set is current (``promotion.reuse``): then it is reused.

        ``recompute`` always computes; ``restore`` reuses any offline set of this definition.
        """
        from nbfeatures.engine.offline_store import read_manifest
        from nbfeatures.promotion.reuse import choose_offline, covered_text

        started = time.perf_counter()
        manifest = read_manifest(self.settings, self.family, self.fv.version)
        choice = choose_offline(
            manifest,
            self.fv.hash,
            self.fv.family.sources,
            self.start,
            self.end,
            recompute=recompute,
            restore=restore,
        )
        if manifest is not None and choice.reuse:
            at = manifest.updated_at
            return self._save(
                "compute",
                {
                    "reused": True,
                    "rows": manifest.rows,
                    "entities": manifest.entities,
                    "start": manifest.covered[0][0].isoformat(),
                    "end": manifest.covered[-1][1].isoformat(),
                    "computed_at": manifest.updated_at.isoformat(),
                    "offline": (
                        f"reused the offline set computed at {at:%Y-%m-%d %H:%M:%S} UTC "
                        f"covering {covered_text(manifest)} ({choice.reason})"
                    ),
                },
                started,
            )
        return self._compute(started, choice.reason)

    def _compute(self, started: float, why: str) -> dict[str, Any]:
        from nbfeatures.engine.spark.offline import write_offline
        from nbfeatures.engine.spark.spark_api import functions
        from nbfeatures.engine.spark.transform import run_transformation
        from nbfeatures.promotion.reuse import covered_text

        spark = self._spark()
        family = self.fv.family
        frame, used = run_transformation(spark, family.name, family.transformation, family.sources)
        start, end = self.start, self.end
        if start is None or end is None:
            # The full available range needs the data's own bounds: keep the result in
            # memory so finding them and writing it run the transformation once.
            frame = frame.persist()
            F = functions(spark)
            ts = F.col(family.timestamp).cast("timestamp")
            bounds = frame.agg(F.min(ts).alias("lo"), F.max(ts).alias("hi")).collect()[0]
            if bounds["lo"] is None:
                raise PromotionFailed(
                    self.family, self.fv.version, "compute", "the sources hold no rows"
                )
            start = start or _utc(bounds["lo"])
            end = end or _utc(bounds["hi"]) + dt.timedelta(microseconds=1)
        # Without a range the run computes everything the sources hold: the manifest says
        # so, and a later promotion may reuse it (``promotion.reuse``).
        full = self.start is None and self.end is None
        try:
            manifest = write_offline(
                spark, self.settings, self.fv, frame, used, start, end, full=full
            )
        finally:
            frame.unpersist()
        return self._save(
            "compute",
            {
                "reused": False,
                "rows": manifest.rows,
                "entities": manifest.entities,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "computed_at": manifest.updated_at.isoformat(),
                "offline": f"recomputed the offline set, now covering {covered_text(manifest)} "
                f"({why})",
            },
            started,
        )

    def offline_latest(self) -> DataFrame:
        """The newest offline row of every entity: what the new keyspace must hold."""
        from nbfeatures.engine.spark.offline import read_offline
        from nbfeatures.promotion.verify import latest_per_entity

        frame = read_offline(self._spark(), self.settings, self.family, self.fv.version)
        return latest_per_entity(frame, self.fv.family)

    def materialize(self) -> dict[str, Any]:
        """Write the version's layout and its latest rows into its own, new keyspace."""
        from nbfeatures.materialization import materialize_version
        from nbfeatures.promotion.bookkeeping import KeyspaceAges

        started = time.perf_counter()
        store = self.store
        if self.fv.version == self.expected:
            raise PromotionFailed(
                self.family, self.fv.version, "materialize", "this version is already live"
            )
        KeyspaceAges(*_client_and_prefix(store), self.family).mark(self.fv.version, "written")
        # The packing (bucket count) is decided with the layout, once: size it for the
        # offline set's entities, not for an unknown count (4,096 buckets whatever the size).
        entities = self._offline_entities()
        target = store.write_layout(self.layout, entities)
        stats = materialize_version(self.settings, self.layout, engine=self.engine)
        return self._save(
            "materialize",
            {
                "rows": stats.rows,
                "entities": stats.entities,
                "buckets": None if target.packing is None else target.packing.buckets,
                "watermark": stats.watermark.isoformat() if stats.watermark else None,
                "engine": stats.engine,
            },
            started,
        )

    def _offline_entities(self) -> int | None:
        """How many entities the version's offline set holds (its manifest), if recorded."""
        from nbfeatures.engine.offline_store import read_manifest

        manifest = read_manifest(self.settings, self.family, self.fv.version)
        return manifest.entities if manifest is not None and manifest.entities > 0 else None

    def verify(
        self,
        sample_size: int = 100,
        *,
        allow_expired: bool = False,
        max_expired_share: float | None = None,
    ) -> dict[str, Any]:
        """Compare the keyspace with the offline set: counts, then values of a random sample.

        An empty keyspace, or one where more than ``max_expired_share`` (default one half) of
        the entities are past their ttl, fails unless ``allow_expired``.
        """
        from nbfeatures.promotion.verify import MAX_EXPIRED_SHARE, verify_keyspace

        started = time.perf_counter()
        report = verify_keyspace(
            self.store,
            self.layout,
            self.fv.family,
            self.offline_latest(),
            sample_size,
            allow_expired=allow_expired,
            max_expired_share=MAX_EXPIRED_SHARE if max_expired_share is None else max_expired_share,
        )
        values = self._save("verify", report.as_dict(), started)
        if not report.ok:
            raise PromotionFailed(self.family, self.fv.version, "verify", report.reason())
        return values

    def flip(self, *, restore: bool = False) -> dict[str, Any]:
        """Flip the live pointer and the ``production`` alias together (or neither).

        A ``restore`` puts the catalog's production version back: only the pointer moves and
        the alias, which already names the version, is left as it is.
        """
        from nbfeatures.promotion.switch import flip_together

        started = time.perf_counter()
        if restore:
            previous = self.store.flip(self.family, self.fv.version, self.expected)
            values = {"live": self.fv.version, "previous": previous, "restore": True}
            return self._save("flip", values, started)
        previous = flip_together(
            self.store, self.catalog, self.family, self.fv.version, self.expected
        )
        return self._save("flip", {"live": self.fv.version, "previous": previous}, started)

    def record(self) -> dict[str, Any]:
        """Log the promotion's params and metrics on its MLflow run (the caller adds the
        executed notebook and ends the run)."""
        from nbfeatures.promotion.tracking import log_results

        started = time.perf_counter()
        log_results(self.settings, self.run_id, self.results)
        return self._save("record", {"run_id": self.run_id}, started)


def spark_for(settings: Settings) -> Any:
    """The process's Spark session (its Python workers run on this interpreter)."""
    from nbfeatures.engine.spark.session import get_spark

    return get_spark(settings)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _client_and_prefix(store: OnlineStore) -> tuple[Any, str]:
    """The store's Redis client and key prefix, for promotion's own keys beside it."""
    return store.client, store.prefix
