"""Where things live, anchored at the project root."""

from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = PROJ_ROOT / "params.yaml"
