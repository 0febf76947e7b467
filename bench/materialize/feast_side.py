"""Feast's side; run with the Feast virtual environment's Python.

``repo REPO PARQUET PORT SKIP_DEDUP KEY_TTL``: write a Feast repo folder
(``feature_store.yaml`` with the Redis online store on 127.0.0.1:PORT, ``skip_dedup`` true or
false, ``key_ttl_seconds`` KEY_TTL or, with ``none``, unset so Feast sets no key expiry; and
the entity and feature view over the Parquet file). The caller runs ``feast apply`` and then
``feast materialize START END`` in it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for feast_view
from feast_view import write_feast_repo

FEATURES = tuple(f"f{i}" for i in range(10))


CONFIG = """project: nbf_bench
registry: data/registry.db
provider: local
online_store:
  type: redis
  connection_string: "127.0.0.1:{port}"
  skip_dedup: {skip_dedup}{key_ttl}
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def write_repo(
    repo: Path, parquet: str, port: int, skip_dedup: bool, key_ttl: int | None = None
) -> None:
    flag = "true" if skip_dedup else "false"
    ttl = f"\n  key_ttl_seconds: {key_ttl}" if key_ttl else ""
    config = CONFIG.format(port=port, skip_dedup=flag, key_ttl=ttl)
    write_feast_repo(repo, parquet, FEATURES, config, online=True, generated_by="bench/materialize")


if __name__ == "__main__":
    if sys.argv[1] == "repo":
        ttl = None if len(sys.argv) < 7 or sys.argv[6] == "none" else int(sys.argv[6])
        write_repo(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5] == "true", ttl)
