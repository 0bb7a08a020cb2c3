"""Cluster files checked with Ray's own validation, and against each other.

* ``cluster.yaml``: filled with defaults as ``ray up`` does (``prepare_config``), then
  validated against Ray's JSON schema (``validate_config``) and read by the v2 autoscaler's
  config class. The GCP provider module is never imported, so no cloud libraries or network.
* ``cluster/autoscaler-local.yaml``: the same, for the ``fake_multinode`` provider.
* ``cluster/serve_config.yaml``: parsed by ``ServeDeploySchema``; its settings must be real
  settings fields and agree with the image and the cluster's GPU node shape.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from aisubs.settings import Settings
from tests.support.paths import REPO

CLUSTER_YAML = REPO / "cluster.yaml"
LOCAL_YAML = REPO / "cluster" / "autoscaler-local.yaml"
SERVE_YAML = REPO / "cluster" / "serve_config.yaml"
DOCKERFILE = REPO / "cluster" / "Dockerfile.gpu"

autoscaler_util = pytest.importorskip("ray.autoscaler._private.util")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture
def fake_multinode_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wheel lacks fake_multi_node/example.yaml (the provider's defaults file); our
    local config spells every field out, so it serves as its own defaults."""
    from ray.autoscaler._private import providers

    monkeypatch.setitem(providers._DEFAULT_CONFIGS, "fake_multinode", lambda: str(LOCAL_YAML))


# ---------------------------------------------------------------- cluster.yaml (GCP)
def test_cluster_yaml_passes_ray_validation() -> None:
    prepared = autoscaler_util.prepare_config(copy.deepcopy(load(CLUSTER_YAML)))
    autoscaler_util.validate_config(prepared)
    assert prepared["provider"]["type"] == "gcp"
    assert prepared["head_node_type"] == "head_cpu"


def test_cluster_yaml_shape() -> None:
    cfg = load(CLUSTER_YAML)
    head = cfg["available_node_types"][cfg["head_node_type"]]
    gpu = cfg["available_node_types"]["gpu_l4"]
    assert head["resources"].get("GPU", 0) == 0  # GPU replicas never land on the head
    assert head["max_workers"] == 0
    assert gpu["node_config"]["machineType"] == "g2-standard-8"
    assert gpu["resources"] == {"CPU": 8, "GPU": 1}
    assert (gpu["min_workers"], gpu["max_workers"]) == (0, 5)
    assert cfg["max_workers"] >= gpu["max_workers"]
    assert cfg["idle_timeout_minutes"] > 0
    assert cfg["docker"]["image"]
    assert "--gpus all" in cfg["docker"]["worker_run_options"]
    head_start = " ".join(cfg["head_start_ray_commands"])
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head_start
    assert "--dashboard-host=0.0.0.0" in head_start
    # The DSN comes from Secret Manager, never from this file.
    assert "postgresql://" not in CLUSTER_YAML.read_text()


def test_cluster_yaml_read_by_v2_autoscaler() -> None:
    from ray.autoscaler.v2.instance_manager.config import AutoscalingConfig

    cfg = AutoscalingConfig(copy.deepcopy(load(CLUSTER_YAML)), skip_content_hash=True)
    node_types = cfg.get_node_type_configs()
    assert node_types["gpu_l4"].resources == {"CPU": 8, "GPU": 1}
    assert node_types["gpu_l4"].max_worker_nodes == 5
    assert cfg.get_max_num_worker_nodes() == 5
    assert cfg.get_idle_timeout_s() == 600


# ---------------------------------------------------------------- local fake cluster
def test_local_autoscaler_config_passes_ray_validation(fake_multinode_defaults: None) -> None:
    from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_TYPE

    raw = load(LOCAL_YAML)
    autoscaler_util.validate_config(copy.deepcopy(raw))
    prepared = autoscaler_util.prepare_config(copy.deepcopy(raw))
    autoscaler_util.validate_config(prepared)
    assert prepared["provider"]["type"] == "fake_multinode"
    assert prepared["head_node_type"] == FAKE_HEAD_NODE_TYPE
    gpu = prepared["available_node_types"]["gpu_l4"]
    assert gpu["resources"]["GPU"] == 1
    assert (gpu["min_workers"], gpu["max_workers"]) == (0, 5)


def test_local_autoscaler_config_read_by_v2_autoscaler(fake_multinode_defaults: None) -> None:
    from ray.autoscaler.v2.instance_manager.config import AutoscalingConfig

    cfg = AutoscalingConfig(copy.deepcopy(load(LOCAL_YAML)), skip_content_hash=True)
    assert cfg.get_node_type_configs()["gpu_l4"].resources == {"CPU": 1, "GPU": 1}
    assert cfg.get_max_num_worker_nodes() == 5


# ---------------------------------------------------------------- serve_config.yaml
def test_serve_config_passes_serve_schema() -> None:
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(load(SERVE_YAML))
    (app,) = schema.applications
    assert app.import_path == "serve_app.app:build_app"
    assert app.name == "aisubs"


def _unknown_keys(model: type[BaseModel], data: dict[str, Any], prefix: str = "") -> list[str]:
    unknown = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            unknown.append(prefix + key)
            continue
        sub = field.annotation
        if isinstance(value, dict) and isinstance(sub, type) and issubclass(sub, BaseModel):
            unknown += _unknown_keys(sub, value, f"{prefix}{key}.")
    return unknown


def production_settings() -> Settings:
    args = load(SERVE_YAML)["applications"][0]["args"]
    assert _unknown_keys(Settings, args["settings"]) == []  # no typos silently ignored
    return Settings(**args["settings"])


def test_serve_config_settings_are_production_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AISUBS_STORE__POSTGRES_DSN", raising=False)
    settings = production_settings()
    assert settings.store.backend == "postgres"
    assert settings.asr.model == "/models/whisper-small"
    assert settings.asr.device == "cuda"
    assert settings.serve.transcriber_gpus == 0.25
    assert settings.serve.diarizer_gpus == 0.25
    assert (settings.serve.min_replicas, settings.serve.max_replicas) == (0, 5)
    # The DSN is not in the file: it comes from the environment of each node.
    assert "postgres_dsn" not in SERVE_YAML.read_text()
    monkeypatch.setenv("AISUBS_STORE__POSTGRES_DSN", "postgresql://u@db.internal/aisubs")
    assert production_settings().store.postgres_dsn == "postgresql://u@db.internal/aisubs"


def test_serve_config_fits_the_cluster_and_its_policy_loads() -> None:
    """The app's autoscaling config, built from these settings, is valid for Serve, loads
    the backlog policy, and only asks for resources a GPU node of cluster.yaml has."""
    from ray.serve.config import AutoscalingConfig

    from serve_app.app import autoscaling_config

    settings = production_settings()
    gpu_node = load(CLUSTER_YAML)["available_node_types"]["gpu_l4"]
    config = AutoscalingConfig(**autoscaling_config(settings, request_resources=True))
    assert (config.min_replicas, config.max_replicas) == (0, 5)
    policy = config.policy.get_policy()
    assert policy.__name__ == "BacklogAutoscalingPolicy"
    request = config.policy.policy_kwargs["resource_request"]
    assert request["max_nodes"] <= gpu_node["max_workers"]
    for resource, amount in request["per_replica"].items():
        assert amount <= request["node"][resource] <= gpu_node["resources"][resource]
    serve = settings.serve
    assert serve.transcriber_gpus + serve.diarizer_gpus <= gpu_node["resources"]["GPU"]


# ---------------------------------------------------------------- image
def test_dockerfile_pins_match_the_project() -> None:
    import ray

    text = DOCKERFILE.read_text()
    makefile = (REPO / "Makefile").read_text()
    torch_pin = re.search(r"torch==([\d.]+)", makefile)
    assert torch_pin is not None
    assert f"ARG TORCH_VERSION={torch_pin.group(1)}" in text
    assert f"rayproject/ray:{ray.__version__}-" in text
    assert "Systran/faster-whisper-small" in text
    assert "AISUBS_ASR__MODEL=/models/whisper-small" in text
    assert "HF_HUB_OFFLINE=1" in text
