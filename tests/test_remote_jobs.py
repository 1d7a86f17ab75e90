"""The app's heavy jobs on Ray (`PURIFY_LAB_RAY`): the same items as in the server, errors as one line, Stop cancels.

Without the setting, Ray is never imported (checked by making `import ray` fail). With it, a tiny
purification streamed from a local Ray started by the test (2 CPUs) yields the same steps and
the same purified weights as the same job run here.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import types
from functools import partial
from pathlib import Path

import pytest
import torch

from purify_core.config import DataConfig, scenario_preset
from purify_core.errors import UserInputError
from purify_core.method.purify import PurifyConfig, purify
from purify_core.store.backdoored import BuildProgress, train_and_save, train_scenario
from purify_core.store.model_store import load_or_train
from ui import remote_jobs
from ui.remote_jobs import job_steps

from app_helpers import open_page

ROOT = Path(__file__).resolve().parent.parent
FAST = PurifyConfig(epochs=2, eval_every=2)


def test_without_the_setting_a_job_runs_here_and_ray_is_never_imported(monkeypatch):
    monkeypatch.delenv(remote_jobs.ENV, raising=False)
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # any `import ray` now fails
    assert list(job_steps(partial(iter, [1, 2, 3]))) == [1, 2, 3]
    monkeypatch.setenv(remote_jobs.ENV, "  ")
    assert remote_jobs.ray_address() is None, "an empty setting is no setting"


def test_a_job_that_cannot_be_shipped_runs_here_even_with_the_setting(monkeypatch):
    monkeypatch.setenv(remote_jobs.ENV, "auto")
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    assert list(job_steps(lambda: iter("ab"))) == ["a", "b"], "a lambda reads the page's session: it stays in the server"


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield ray
    ray.shutdown()


@pytest.fixture
def shipped(local_ray, monkeypatch):
    """The setting on, and a count of the jobs sent to Ray (so a job that quietly ran here fails the test)."""
    monkeypatch.setenv(remote_jobs.ENV, "auto")
    calls, real = [], remote_jobs._on_ray
    monkeypatch.setattr(remote_jobs, "_on_ray", lambda job, address: (calls.append(job), real(job, address))[1])
    return calls


def _untimed(item):
    """A step or summary with its wall-clock seconds left out (the only field that may differ), as exact text (step 0's loss is NaN)."""
    return repr(dataclasses.replace(item, seconds=0.0))


def test_a_purification_streamed_from_ray_yields_the_same_items_as_here(case, shipped):
    backdoored, splits, evaluator = case
    job = partial(purify, backdoored.model, splits.clean, FAST, evaluator)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a Ray worker with one CPU: the same sums in the same order
    try:
        here = list(job())
    finally:
        torch.set_num_threads(threads)
    there = list(job_steps(job))
    assert shipped == [job]
    assert len(there) == len(here) > 3
    *steps_here, result_here = here
    *steps_there, result_there = there
    assert [_untimed(s) for s in steps_there] == [_untimed(s) for s in steps_here]
    assert _untimed(result_there.summary) == _untimed(result_here.summary)
    for key, value in result_here.model.state_dict().items():
        assert torch.equal(result_there.model.state_dict()[key], value), key


def test_a_job_error_on_ray_arrives_as_the_jobs_own_one_line_error(shipped):
    missing = dataclasses.replace(scenario_preset("tiny"), data=DataConfig(dataset="cifar10", root="/nonexistent/cifar"))
    with pytest.raises(UserInputError) as error:
        list(job_steps(partial(train_scenario, missing, False, "cpu")))
    assert type(error.value) is UserInputError and "\n" not in str(error.value) and "ray::" not in str(error.value)
    assert len(shipped) == 1


def test_stopping_a_stream_cancels_its_ray_task(case, local_ray, shipped, monkeypatch):
    backdoored, splits, evaluator = case
    cancelled, real_cancel = [], local_ray.cancel
    monkeypatch.setattr(local_ray, "cancel", lambda refs, **kw: (cancelled.append(refs), real_cancel(refs, **kw)))
    # a job that cannot end before the stream is closed (1000 epochs, the most a config allows: half a minute here):
    # 50 epochs (1.6 s) once ran to their end first on a busy machine, since Ray's streaming task does not wait for its
    # reader, and then there was nothing left to cancel
    stream = job_steps(partial(purify, backdoored.model, splits.clean, PurifyConfig(epochs=1000), evaluator))
    next(stream), next(stream)
    stream.close()  # what Stop does to the page's loop
    assert len(shipped) == 1 and len(cancelled) == 1
    # the task stops: its stream ends in a TaskCancelledError or, when Ray handles the cancel before the next item
    # (seen once on a busy machine), simply ends; either way long before its 1000 epochs' steps
    received = 0
    try:
        for ref in cancelled[0]:
            local_ray.get(ref)
            received += 1
    except local_ray.exceptions.TaskCancelledError:
        pass
    all_steps = 1000 * -(-len(splits.clean) // PurifyConfig().batch_size)
    assert received < all_steps // 10, f"{received} of {all_steps} steps came after the cancel"


_PAGE_THREAD = """
import threading, time
from functools import partial
import ray
from ui.remote_jobs import job_steps

real_init = ray.init
def init(*args, **kwargs):  # no cluster to join (not even another test's): this process starts its own
    if kwargs.get("address") == "auto":
        raise ConnectionError("no running Ray instance")
    return real_init(*args, **kwargs)
ray.init = init

out = []
page = threading.Thread(target=lambda: out.append(list(job_steps(partial(iter, [1, 2, 3])))))  # a script run
page.start()
page.join()
time.sleep(2)  # the thread that started Ray has ended
out.append(list(job_steps(partial(iter, [4, 5]))))
print(out)
"""


def test_a_local_ray_started_by_one_page_run_serves_the_next_runs():
    pytest.importorskip("ray")
    env = {**os.environ, remote_jobs.ENV: "auto", "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    child = subprocess.run([sys.executable, "-c", _PAGE_THREAD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip().splitlines()[-1] == "[[1, 2, 3], [4, 5]]"


def test_a_training_stopped_midway_closes_the_stream_it_was_reading(tmp_path):
    closed = []

    def runner(job):
        assert isinstance(job, partial) and job.func is train_scenario, "the training is handed over as a shippable job"
        try:
            while True:  # a remote training's steps, as they arrive
                yield BuildProgress("backdoored model", 0.1)
        finally:
            closed.append(True)

    def stop(item):
        raise KeyboardInterrupt  # what a Stop click does to the page's progress callback (StopException is not an Exception)

    with pytest.raises(KeyboardInterrupt):
        train_and_save(scenario_preset("tiny"), tmp_path / "m.safetensors", tmp_path / "m.json", False, stop, "cpu", run=runner)
    assert closed == [True] and not (tmp_path / "m.json").exists()


def test_a_model_trained_on_ray_comes_back_and_is_saved_here(shipped, tmp_path):
    scenario = dataclasses.replace(scenario_preset("tiny"), train=dataclasses.replace(scenario_preset("tiny").train, epochs=1))
    seen = []
    trained = load_or_train(scenario, cache_dir=tmp_path, on_progress=seen.append, device="cpu", run=job_steps)
    assert len(shipped) == 1 and len(seen) > 2 and seen[-1].result is not None
    again = load_or_train(scenario, cache_dir=tmp_path, device="cpu")  # from the cache: the pair written here
    assert again.card == trained.card
    assert all(torch.equal(again.model.state_dict()[k], v) for k, v in trained.model.state_dict().items())


class _FakeRay(types.ModuleType):
    """A stand-in for `ray` that fails the way a cluster does: it cannot be reached, or it loses the job's worker."""

    class RayError(Exception):
        pass

    class RayTaskError(RayError):
        pass

    class WorkerCrashedError(RayError):
        pass

    def __init__(self, reachable: bool) -> None:
        super().__init__("ray")
        self.reachable, self.cancelled = reachable, []
        self.exceptions = types.SimpleNamespace(RayError=self.RayError, RayTaskError=self.RayTaskError)

    def is_initialized(self) -> bool:
        return self.reachable

    def init(self, **kwargs) -> None:
        raise ConnectionError("Could not find any running Ray instance.\nPlease specify the one to connect to")

    def remote(self, **options):
        return lambda fn: types.SimpleNamespace(options=lambda **o: types.SimpleNamespace(remote=lambda job: ["ref"]))

    def get(self, ref):
        raise self.WorkerCrashedError("The worker died unexpectedly while executing this task.")

    def cancel(self, refs) -> None:
        self.cancelled.append(refs)


@pytest.mark.parametrize("reachable, message", [(False, "PURIFY_LAB_RAY=auto: cannot reach a Ray cluster (ConnectionError: Could "),
                                                (True, "the Ray cluster lost this job (WorkerCrashedError); run it again")])
def test_a_cluster_that_cannot_be_reached_or_loses_the_worker_is_one_line(monkeypatch, reachable, message):
    fake = _FakeRay(reachable)
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setenv(remote_jobs.ENV, "auto")
    remote_jobs._remote.cache_clear()
    try:
        with pytest.raises(UserInputError) as error:
            list(job_steps(partial(iter, [1])))
    finally:
        remote_jobs._remote.cache_clear()  # never keep the fake's remote function
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert fake.cancelled == ([["ref"]] if reachable else []), "a lost job is cancelled too"


def test_the_purify_page_shows_a_lost_ray_job_as_one_line_and_keeps_the_run(monkeypatch):
    fake = _FakeRay(True)
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setenv(remote_jobs.ENV, "auto")
    monkeypatch.setenv("PURIFY_LAB_REPLAYS", "off")
    remote_jobs._remote.cache_clear()
    try:
        at = open_page("app_pages/purify.py")
        at.slider(key="purify_epochs").set_value(1).run()
        at.button(key="purify_run").click().run()
    finally:
        remote_jobs._remote.cache_clear()
    assert not at.exception
    assert any("the Ray cluster lost this job (WorkerCrashedError)" in e.value for e in at.error), [e.value for e in at.error]
    assert len(at.session_state["purify_runs"]) == 1 and fake.cancelled == [["ref"]]
