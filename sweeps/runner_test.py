import pytest

from sweeps.runner import THREAD_VARIABLES, worker_env


@pytest.mark.unittest
@pytest.mark.parametrize(("jobs", "cpus", "threads"), [(1, 2, "2"), (2, 2, "1"), (3, 2, "1"), (2, 16, "8")])
def test_each_worker_gets_its_share_of_the_cores(
    monkeypatch: pytest.MonkeyPatch, jobs: int, cpus: int, threads: str
) -> None:
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = worker_env(jobs, cpus)
    assert {env[name] for name in THREAD_VARIABLES} == {threads}


@pytest.mark.unittest
def test_a_thread_count_set_by_the_user_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("PATH", "/somewhere")
    env = worker_env(2, 2)
    assert env["OMP_NUM_THREADS"] == "3"
    assert env["PATH"] == "/somewhere"
