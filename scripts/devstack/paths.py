"""Where things live. Everything the dev stack writes goes under .data/ (git-ignored)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("HUB_DATA_DIR", REPO_ROOT / ".data"))
LOG_DIR = DATA_DIR / "logs"
RUN_DIR = DATA_DIR / "run"  # pid files and the description of the running stack
VENV_BIN = REPO_ROOT / ".venv" / "bin"
