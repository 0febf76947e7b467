"""Feast's side; run with the Feast virtual environment's Python (never imported by ours).

repo REPO PARQUET PORT          write the repo folder (Redis online store on 127.0.0.1:PORT,
                                one entity and a 50-feature view over the Parquet file)
load REPO PARQUET               FeatureStore.write_to_online_store of every row
requests SETS_JSON COUNT OUT    GetOnlineFeaturesRequest messages of `feast listen`'s
                                GrpcFeatureServer, pickled as a list of bytes
check-grpc TARGET SETS_JSON COUNT PARQUET
                                one call to `feast listen`; its f0 values must be the file's
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for feast_view
from feast_view import write_feast_repo

FAMILY = "bench_features"
ENTITY_KEY = "entity_id"
FEATURES = tuple(f"f{i}" for i in range(50))
METHOD = "/GrpcFeatureServer/GetOnlineFeatures"


CONFIG = """project: nbf_bench_serving
registry: data/registry.db
provider: local
online_store:
  type: redis
  connection_string: "127.0.0.1:{port}"
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def write_repo(repo: Path, parquet: str, port: int) -> None:
    write_feast_repo(
        repo, parquet, FEATURES, CONFIG.format(port=port), online=True,
        generated_by="bench/serving",
    )  # fmt: skip


def load(repo: str, parquet: str) -> None:
    import pandas as pd
    from feast import FeatureStore

    store = FeatureStore(repo_path=repo)
    frame = pd.read_parquet(parquet)
    for start in range(0, len(frame), 10_000):
        store.write_to_online_store(FAMILY, frame.iloc[start : start + 10_000])


def refs(count: int) -> list[str]:
    return [f"{FAMILY}:{name}" for name in FEATURES[:count]]


def requests(sets: list[list[int]], count: int) -> list[bytes]:
    from feast.protos.feast.serving.ServingService_pb2 import FeatureList, GetOnlineFeaturesRequest
    from feast.protos.feast.types.Value_pb2 import RepeatedValue, Value

    out = []
    for ids in sets:
        message = GetOnlineFeaturesRequest(
            features=FeatureList(val=refs(count)),
            entities={ENTITY_KEY: RepeatedValue(val=[Value(int64_val=i) for i in ids])},
            full_feature_names=False,
        )
        out.append(message.SerializeToString())
    return out


def check_grpc(target: str, ids: list[int], count: int, parquet: str) -> None:
    import grpc
    import pandas as pd
    from feast.protos.feast.serving.ServingService_pb2 import GetOnlineFeaturesResponse

    frame = pd.read_parquet(parquet, columns=[ENTITY_KEY, "f0"]).set_index(ENTITY_KEY)
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(METHOD)
        raw = call(requests([ids], count)[0], timeout=30)
    response = GetOnlineFeaturesResponse.FromString(raw)
    names = list(response.metadata.feature_names.val)
    column = response.results[names.index("f0")]
    got = [v.double_val for v in column.values]
    want = [float(frame.loc[i, "f0"]) for i in ids]
    if got != want:
        raise SystemExit(f"feast listen answered wrong values: {got[:3]} vs {want[:3]}")


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "repo":
        write_repo(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    elif command == "load":
        load(sys.argv[2], sys.argv[3])
    elif command == "requests":
        sets = json.loads(Path(sys.argv[2]).read_text())
        Path(sys.argv[4]).write_bytes(pickle.dumps(requests(sets, int(sys.argv[3]))))
    elif command == "check-grpc":
        sets = json.loads(Path(sys.argv[3]).read_text())
        check_grpc(sys.argv[2], sets[0], int(sys.argv[4]), sys.argv[5])
    else:
        raise SystemExit(f"unknown command {command}")
