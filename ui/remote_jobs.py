"""The app's heavy jobs on a shared Ray cluster, when the server is started with `PURIFY_LAB_RAY`.

Several app servers behind one load balancer can share one pool of workers: each runs its
training and purification jobs as Ray tasks that stream their steps back (Ray's streaming
generators), so a page draws the same items, step by step, as when the job runs in the server.
Unset (the default), nothing changes and Ray is never imported.

A job is a `functools.partial` of a generator function and its arguments (for example
`partial(purify, model, clean, config, evaluator)`): a partial names an importable function and
carries its arguments, so it can be shipped to a worker as is. Any other callable (a lambda that
reads the page's session) runs here. Closing the stream (Stop, leaving the page) cancels the task.

Streamlit-free, like `job_slots`: the heavy-job slots still bound how many jobs one server starts.
"""

from __future__ import annotations

import os
import queue
import threading
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from purify_core.errors import UserInputError

__all__ = ["ENV", "ray_address", "job_steps"]

#: `auto` (join the Ray cluster on this machine, or start one) or a cluster's address (`ray://host:10001`, `host:6379`).
ENV = "PURIFY_LAB_RAY"
ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")
_CONNECT = threading.Lock()


def ray_address() -> str | None:
    """`$PURIFY_LAB_RAY` when set and not empty, else None (jobs run in this server)."""
    return os.environ.get(ENV, "").strip() or None


def job_steps(job: Callable[[], Iterator[T]]) -> Iterator[T]:
    """The items of `job()`: from a Ray task when `$PURIFY_LAB_RAY` is set and `job` can be shipped, else from here."""
    address = ray_address()
    if address is None or not isinstance(job, partial):
        yield from job()
        return
    yield from _on_ray(job, address)


def _steps(job: Callable[[], Iterator[Any]]) -> Iterator[Any]:
    """What a Ray worker runs: the job's items, one by one (a plain loop: Ray resumes this generator with `send`)."""
    for item in job():
        yield item


def _wants_gpu(job: partial) -> bool:
    """Whether the job works on a GPU here: a model on CUDA or a `cuda` device among its arguments."""
    import torch

    def on_cuda(value: Any) -> bool:
        if isinstance(value, torch.nn.Module):
            return any(p.is_cuda for p in value.parameters())
        return isinstance(value, (str, torch.device)) and str(value).startswith("cuda")

    return any(on_cuda(v) for v in (*job.args, *job.keywords.values()))


def _connect(address: str) -> Any:
    """Ray, connected once per server process: `auto` joins this machine's cluster (`ray start --head`) or starts one."""
    import ray  # only here: without PURIFY_LAB_RAY the app never imports Ray

    with _CONNECT:
        if not ray.is_initialized():
            outcome: queue.Queue = queue.Queue()
            threading.Thread(target=_hold, args=(ray, address, outcome), name="purify-lab-ray", daemon=True).start()
            error = outcome.get()
            if error is not None:
                raise error
    return ray


def _hold(ray: Any, address: str, outcome: queue.Queue) -> None:
    """Connect (or start a local Ray) in a thread that lives as long as the server.

    The processes of a local Ray die with the thread that started them (they ask Linux for a
    signal when their parent thread ends), and a Streamlit script thread ends with every rerun.
    """
    env = {k: v for k, v in os.environ.items() if k.startswith("PURIFY_LAB_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    try:
        if address == "auto":
            try:
                ray.init(address="auto", log_to_driver=False)
            except ConnectionError:  # no cluster on this machine: a local one, with this server's code and settings
                ray.init(include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
        else:
            ray.init(address=address, log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 - handed to the caller, which raises it as one line
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        outcome.put(UserInputError(f"{ENV}={address}: cannot reach a Ray cluster ({type(exc).__name__}{': ' + text if text else ''}); "
                                   "start one (ray start --head) or unset it to run jobs in this server"))
        return
    outcome.put(None)
    threading.Event().wait()


@lru_cache(maxsize=2)
def _remote(gpu: bool) -> Any:
    """The remote version of `_steps`, made once per process (one core each, a GPU when the job wants one)."""
    import ray

    return ray.remote(num_cpus=1, num_gpus=1 if gpu else 0, max_retries=0)(_steps)


def _on_ray(job: partial, address: str) -> Iterator[Any]:
    ray = _connect(address)
    refs = _remote(_wants_gpu(job)).options(num_returns="streaming").remote(job)
    finished = False
    try:
        for ref in refs:
            try:
                item = ray.get(ref)
            except ray.exceptions.RayTaskError as error:
                cause = error.cause  # the job's own error (a UserInputError the page shows as one line), without Ray's traceback
                raise (cause if isinstance(cause, Exception) else error) from None
            except ray.exceptions.RayError as error:  # a worker or node lost (memory, a reboot): one line on the page
                raise UserInputError(f"the Ray cluster lost this job ({type(error).__name__}); run it again") from None
            yield item
        finished = True
    finally:
        if not finished:  # Stop, a closed page or an error here: the worker stops too
            ray.cancel(refs)
