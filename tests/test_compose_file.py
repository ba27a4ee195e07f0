"""compose.yaml cannot be run here (no Docker engine), so it is checked against the code:
every service, port and variable it sets must be one the settings actually read."""

from __future__ import annotations

import os
from unittest import mock

import pytest
import yaml
from conftest import ROOT, SERVICES

from subgraphs.catalog import SUBGRAPHS
from subgraphs.common.settings import HubSettings, ServiceSettings
from subgraphs.common.subgraph import Subgraph
from subgraphs.communication.settings import CommunicationSettings

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
ROUTER_VARIABLES = {
    "HUB_ROUTER_HOST",
    "HUB_ROUTER_PORT",
    "HUB_SUPERGRAPH",
    "HUB_ROUTER_DEDUPLICATE",
    *(f"HUB_{name.upper()}_URL" for name in SERVICES),
}
REDIS_PORTS = {"identity": 6380, "content": 6381, "communication": 6382, "workflow": 6383}
POSTGRES_PORTS = {"identity": 5433, "content": 5434, "communication": 5435, "workflow": 5436}


def known_variables() -> set[str]:
    known = {f"HUB_{field.upper()}" for field in HubSettings.model_fields}
    for subgraph in SUBGRAPHS:
        prefix = subgraph.settings_class.model_config["env_prefix"]
        known |= {f"{prefix}{field.upper()}" for field in subgraph.settings_class.model_fields}
    return known | ROUTER_VARIABLES


def published(service: str) -> dict[int, int]:
    """container port -> host port."""
    mapping = {}
    for entry in COMPOSE[service].get("ports", []):
        *_, host, container = str(entry).split(":")
        mapping[int(container)] = int(host)
    return mapping


def settings_in(service: str, subgraph: Subgraph) -> ServiceSettings:
    environment = {k: str(v) for k, v in COMPOSE[service]["environment"].items()}
    with mock.patch.dict(os.environ, environment, clear=True):
        return subgraph.settings()


def test_every_variable_compose_sets_is_read_by_the_code() -> None:
    known = known_variables()
    for name, service in COMPOSE.items():
        for variable in service.get("environment", {}):
            if variable.startswith("HUB_"):
                assert variable in known, f"{name}: {variable} is read by nothing"


@pytest.mark.parametrize("subgraph", SUBGRAPHS, ids=lambda s: s.name)
def test_each_subgraph_runs_on_its_port_with_its_own_database_and_redis(subgraph) -> None:
    service = COMPOSE[subgraph.name]
    assert service["command"] == ["python", "-m", subgraph.package]
    settings = settings_in(subgraph.name, subgraph)
    default = subgraph.settings_class.model_fields["port"].default
    assert settings.port == default and published(subgraph.name) == {default: default}
    assert settings.host == "0.0.0.0"

    database = COMPOSE[f"{subgraph.name}-db"]
    url = settings.database_dsn
    assert url.endswith(f"@{subgraph.name}-db:5432/{database['environment']['POSTGRES_DB']}")
    assert database["environment"]["POSTGRES_DB"] == settings.database_name
    assert published(f"{subgraph.name}-db") == {5432: POSTGRES_PORTS[subgraph.name]}

    assert settings.redis_dsn == f"redis://{subgraph.name}-redis:6379/0"
    assert published(f"{subgraph.name}-redis") == {6379: REDIS_PORTS[subgraph.name]}

    ready = f"http://127.0.0.1:{default}/ready"
    assert ready in " ".join(service["healthcheck"]["test"])


def test_router_reaches_every_subgraph_where_compose_runs_it() -> None:
    router = COMPOSE["router"]
    assert published("router") == {8000: 8000}
    for subgraph in SUBGRAPHS:
        port = subgraph.settings_class.model_fields["port"].default
        assert router["environment"][f"HUB_{subgraph.name.upper()}_URL"] == (
            f"http://{subgraph.name}:{port}"
        )
        assert router["depends_on"][subgraph.name]["condition"] == "service_healthy"


def test_worker_shares_communications_database_and_redis() -> None:
    worker = COMPOSE["communication-worker"]
    assert worker["command"][:3] == ["celery", "-A", "subgraphs.communication.tasks"]
    communication = next(s for s in SUBGRAPHS if s.name == "communication")
    worker_settings = settings_in("communication-worker", communication)
    api_settings = settings_in("communication", communication)
    assert worker_settings.database_dsn == api_settings.database_dsn
    assert worker_settings.redis_dsn == api_settings.redis_dsn


def test_workflow_worker_shares_workflows_database_and_redis() -> None:
    worker = COMPOSE["workflow-worker"]
    assert worker["command"][:3] == ["celery", "-A", "subgraphs.workflow.tasks"]
    workflow = next(s for s in SUBGRAPHS if s.name == "workflow")
    worker_settings = settings_in("workflow-worker", workflow)
    api_settings = settings_in("workflow", workflow)
    assert worker_settings.database_dsn == api_settings.database_dsn
    assert worker_settings.redis_dsn == api_settings.redis_dsn


def test_migrations_run_before_the_subgraphs_start() -> None:
    migrate = COMPOSE["migrate"]
    assert migrate["command"] == ["python", "-m", "subgraphs", "migrate"]
    for subgraph in SUBGRAPHS:
        condition = COMPOSE[subgraph.name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"
        migrate_env = {k: str(v) for k, v in migrate["environment"].items()}
        with mock.patch.dict(os.environ, migrate_env, clear=True):
            assert (
                subgraph.settings().database_dsn
                == settings_in(subgraph.name, subgraph).database_dsn
            )


def stream_of(service: str) -> tuple[str | None, str]:
    """(Redis URL, stream name) of the domain-event stream as `service` is configured."""
    environment = {k: str(v) for k, v in COMPOSE[service]["environment"].items()}
    with mock.patch.dict(os.environ, environment, clear=True):
        hub = HubSettings()
    return hub.events_redis_url, hub.events_stream


def test_event_consumer_reads_the_stream_every_service_publishes_to() -> None:
    events = COMPOSE["communication-events"]
    assert events["command"] == ["python", "-m", "subgraphs.communication", "consume-events"]
    assert events["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    communication = next(s for s in SUBGRAPHS if s.name == "communication")
    consumer = settings_in("communication-events", communication)
    api = settings_in("communication", communication)
    # It stores notifications where the API reads them and queues deliveries where the
    # worker takes them.
    assert consumer.database_dsn == api.database_dsn
    assert consumer.redis_dsn == api.redis_dsn
    assert isinstance(consumer, CommunicationSettings) and isinstance(api, CommunicationSettings)
    assert consumer.consumer_group == api.consumer_group
    stream = stream_of("communication-events")
    assert stream[0] is not None
    for subgraph in SUBGRAPHS:
        assert stream_of(subgraph.name) == stream, subgraph.name
    assert events["depends_on"]["communication-redis"]["condition"] == "service_healthy"
