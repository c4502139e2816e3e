"""Where things live, anchored at the project root, and the defaults that more than one module needs."""

from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = PROJ_ROOT / "params.yaml"
DEFAULT_EXPERIMENT = "reprolab-example"  # params.yaml: tracking.experiment, when it is not set
CHECKPOINTS_DIR = Path(".checkpoints")  # scratch state, per stage: CHECKPOINTS_DIR / <stage>
