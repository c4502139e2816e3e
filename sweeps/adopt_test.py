"""adopt.py: tuned values written into params.yaml's network section by a round trip, comments and order kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lib.paths import PARAMS_FILE
from sweeps.adopt import AdoptError, adopt, main, set_section_values

pytestmark = pytest.mark.unittest

PARAMS = """\
# The params, with comments everywhere.
seed: 42

train_dnn_pytorch:
  # the architecture
  hidden_layers:
    - 32
    - 16
  dropout: 0.1  # between blocks
  lr: 0.001
  epochs: 50
  device: auto  # auto | cpu | cuda

# the next section
other:
  lr: 7  # not ours
"""
TUNED = {
    "section": "train_dnn_pytorch",
    "params": {"lr": 0.0031622776601683794, "hidden_layers": [64, 32], "weight_decay": 1.0e-05, "dropout": 0.25},
    "best_trial": 4,
    "metric": "val/log_loss",
    "best_value": 0.08,
}


def test_values_change_and_every_comment_and_other_line_stays() -> None:
    edited = adopt(PARAMS, TUNED, "params.yaml")

    assert edited == (
        "# The params, with comments everywhere.\n"
        "seed: 42\n"
        "\n"
        "train_dnn_pytorch:\n"
        "  # the architecture\n"
        "  hidden_layers:\n"
        "    - 64\n"
        "    - 32\n"
        "  dropout: 0.25 # between blocks\n"
        "  lr: 0.0031622776601683794\n"
        "  epochs: 50\n"
        "  device: auto  # auto | cpu | cuda\n"
        "  weight_decay: 1.0e-05\n"
        "\n"
        "# the next section\n"
        "other:\n"
        "  lr: 7  # not ours\n"
    )
    assert yaml.safe_load(edited)["train_dnn_pytorch"]["lr"] == TUNED["params"]["lr"]


def test_a_flow_list_stays_a_flow_list_and_a_new_list_is_one_line() -> None:
    text = "net:\n  widths: [8, 4]  # layers\n  lr: 0.1\n"

    edited = set_section_values(text, {"widths": [16, 8, 4], "extra": [1, 2]}, section="net")

    assert edited == "net:\n  widths: [16, 8, 4] # layers\n  lr: 0.1\n  extra: [1, 2]\n"  # the comment keeps its column


def test_the_committed_params_file_takes_tuned_values_keeping_its_comments() -> None:
    text = PARAMS_FILE.read_text(encoding="utf-8")

    edited = adopt(text, TUNED, "params.yaml")

    before, after = text.splitlines(), edited.splitlines()
    assert [line for line in before if "#" in line] == [line for line in after if "#" in line]
    assert list(yaml.safe_load(edited)) == list(yaml.safe_load(text))  # the sections' order
    assert list(yaml.safe_load(edited)["train_dnn_pytorch"])[: len(yaml.safe_load(text)["train_dnn_pytorch"])] == list(
        yaml.safe_load(text)["train_dnn_pytorch"]
    )  # the keys' order; a new key goes at the end
    section = yaml.safe_load(edited)["train_dnn_pytorch"]
    assert {key: section[key] for key in TUNED["params"]} == TUNED["params"]
    assert {k: v for k, v in yaml.safe_load(edited).items() if k != "train_dnn_pytorch"} == {
        k: v for k, v in yaml.safe_load(text).items() if k != "train_dnn_pytorch"
    }


def test_adopting_the_same_values_again_changes_nothing() -> None:
    once = adopt(PARAMS, TUNED, "params.yaml")

    assert adopt(once, TUNED, "params.yaml") == once


@pytest.mark.parametrize(
    ("tuned", "message"),
    [
        ({**TUNED, "params": {"lr": 0.01, "learning_rate": 0.1}}, "params.learning_rate: not a train_dnn_pytorch key"),
        ({**TUNED, "section": "train_standard_classifiers"}, "section: the tuned values are for"),
        ({**TUNED, "params": {}}, "params: the tuned file holds no params mapping"),
        (
            {**TUNED, "params": {"lr": 5.0}},
            "not valid: params.yaml: train_dnn_pytorch.lr: input",
        ),
    ],
)
def test_a_bad_tuned_file_is_one_line_naming_the_key(tuned: dict, message: str) -> None:
    with pytest.raises(AdoptError) as caught:
        adopt(PARAMS, tuned, "params.yaml")

    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_params_file_without_the_section_is_an_error() -> None:
    with pytest.raises(AdoptError, match=r"params\.yaml: no 'train_dnn_pytorch' section"):
        set_section_values("seed: 1\n", {"lr": 0.1}, source="params.yaml")


@pytest.mark.parametrize("value", [1.0e-05, 0.1, 3, True, "cosine", [64, 32], 2.5e20])
def test_values_read_back_as_the_same_value(value: object) -> None:
    edited = set_section_values(PARAMS, {"new": value}, source="params.yaml")

    assert yaml.safe_load(edited)["train_dnn_pytorch"]["new"] == value
    assert "\n  new: " in edited


def test_main_replaces_the_file_and_reports_the_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "params.yaml").write_text(PARAMS)
    (tmp_path / "best.yaml").write_text(yaml.safe_dump(TUNED))

    main([str(tmp_path / "best.yaml"), "--params", str(tmp_path / "params.yaml")])

    assert (tmp_path / "params.yaml").read_text() == adopt(PARAMS, TUNED, "params.yaml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.yaml", "params.yaml"]  # no temporary left
    out = capsys.readouterr().out
    assert "lr 0.001 -> 0.0031622776601683794" in out and "weight_decay (default) -> 1e-05" in out


def test_main_without_a_tuned_file_says_to_tune_first(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(PARAMS)

    with pytest.raises(AdoptError) as caught:
        main([str(tmp_path / "missing.yaml"), "--params", str(tmp_path / "params.yaml")])

    assert str(caught.value) == f"{tmp_path / 'missing.yaml'}: file not found (run make tune first)"
    assert (tmp_path / "params.yaml").read_text() == PARAMS
