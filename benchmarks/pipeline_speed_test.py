"""The benchmark pages render every figure they are given, with the ratios computed from them."""

import pandas as pd
import pytest

from benchmarks import pipeline_speed, scale, tracking_journal

pytestmark = pytest.mark.unittest


def test_pipeline_speed_page_ratios_and_shares() -> None:
    figures = {"dvc repro -f": 40.0, "floor dvc repro -f": 16.0, "a tracked empty run": 0.4}
    figures |= {"dvc repro, nothing changed": 1.5, "first dvc repro": 41.0}
    for stage, (alone, floor, profiled, tracking) in zip(
        pipeline_speed.STAGES, [(8.0, 3.0, 10.0, 1.0), (16.0, 5.0, 20.0, 2.0), (16.0, 8.0, 24.0, 6.0)], strict=True
    ):
        figures |= {f"stage {stage}": alone, f"floor {stage}": floor}
        figures |= {f"profiled {stage}": profiled, f"profiled, in tracking {stage}": tracking}

    page = pipeline_speed.report(figures, repeats=3)

    assert "median of 3 runs" in page
    assert "| example / floor | 2.50 |" in page
    assert f"| {40 / pipeline_speed.ANCESTOR_SECONDS:.2f} |" in page
    # train_dnn_pytorch: 16 s alone, 8 s floor, 8 s on top; 6 of 24 profiled seconds in tracking.
    row = next(line for line in page.splitlines() if line.startswith("| train_dnn_pytorch"))
    assert [cell.strip() for cell in row.strip("|").split("|")] == [
        "train_dnn_pytorch", "16.00", "8.00", "8.00", "24.00", "6.00", "25%",
    ]  # fmt: skip
    assert "costs\n  0.40 s in each stage process, 3% of the forced run" in page
    assert "takes 1.50 s" in page and "24.00 s for" in page
    assert "| first dvc repro" in page  # every figure listed


def test_tracking_page_pairs_the_modes() -> None:
    names = ["dvc repro -f", *(f"{kind} {name}" for kind in ("stage", "floor") for name in pipeline_speed.STAGES)]
    figures = {(name, "direct"): 10.0 for name in names} | {(name, "journal"): 6.5 for name in names}
    figures[("sync after dvc repro -f", "journal")] = 0.25

    page = tracking_journal.report(figures, repeats=5)

    assert page.count("0.65x") == len(names)
    assert "Median of 5 paired runs" in page and "in 0.25 s more" in page


def test_scale_page_growth_against_the_previous_size() -> None:
    results = pd.DataFrame(
        [(stage, rows, rows / 1000, rows / 500) for stage in scale.STAGES for rows in (10_000, 100_000)],
        columns=["stage", "rows", "seconds", "mib"],
    )

    page = scale.report(results, repeats=1)

    assert page.count("| 10.0x ") == 2 * len(scale.STAGES)  # time and memory, each stage
    assert "| 100,000 |" in page and "--rows 10000 100000 --repeats 1" in page
