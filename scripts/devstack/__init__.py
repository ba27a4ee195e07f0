"""Run the Hub stack on one machine: PostgreSQL/Redis, migrations, subgraphs, worker, router.

Used by scripts/up, down, status, test (`python -m devstack ...` with PYTHONPATH=scripts)
and by the integration-test fixture, which imports `Stack` and `ensure_backing_services`.
"""

from .backing import Backing, BackingError, drop_databases, ensure_backing_services
from .paths import DATA_DIR, LOG_DIR, REPO_ROOT, RUN_DIR
from .ports import PortsInUse
from .processes import StartupFailed
from .stack import SUBGRAPHS, Stack, StackPorts

__all__ = [
    "DATA_DIR",
    "LOG_DIR",
    "REPO_ROOT",
    "RUN_DIR",
    "SUBGRAPHS",
    "Backing",
    "BackingError",
    "PortsInUse",
    "Stack",
    "StackPorts",
    "StartupFailed",
    "drop_databases",
    "ensure_backing_services",
]
