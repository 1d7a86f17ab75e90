"""One sweep runner for every benchmark grid: the same jobs serially, on local worker processes or on Ray.

A grid is a list of `Job`s: a module-level function named by `module:function` and JSON-able keyword
arguments, so a job is plain data that any worker can run and its id is stable across runs. Each job
returns one JSON-able record. Every finished job is appended at once to a JSON-lines log keyed by that
id, so a stopped sweep started again skips what is done (and says how many). A job that raises is
recorded with its error; the others go on, and the summary lists the failures (they run again on the
next start). Every job runs with the same number of torch threads in every mode, so the records do not
depend on where a job ran. Ray is imported only in Ray mode: the app and the CLI never load it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import UserInputError

__all__ = ["Job", "SweepOptions", "SweepResult", "SweepIncomplete", "run_sweep", "execute", "read_log", "timing_free"]

#: Record keys that hold wall times (`seconds`, `*_seconds`): they differ from run to run and are left out when records are compared.
def is_timing(key: str) -> bool:
    return key == "seconds" or key.endswith("_seconds")


@dataclass(frozen=True)
class Job:
    """One cell of a grid: `fn` ("module:function") called with `args` (JSON-able) returns one record."""

    fn: str
    args: dict[str, Any]
    label: str = ""

    @property
    def id(self) -> str:
        """Readable label plus a hash of the function and every argument: the same job keeps its id."""
        digest = hashlib.sha256(json.dumps({"fn": self.fn, "args": self.args}, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.label or self.fn}#{digest}"


@dataclass(frozen=True)
class SweepOptions:
    """Where the jobs run. `ray`: None (local), "auto" (start a local Ray, or join RAY_ADDRESS) or a cluster address.

    `workers`: local processes (1 = serially in this process; 0 = one per core), or the CPUs of a local Ray.
    `threads`: torch threads per job, the same in every mode. `log`: the JSON-lines file that makes it resumable.
    """

    workers: int = 1
    ray: str | None = None
    gpus_per_job: float = 0.0
    threads: int = 1
    log: Path | None = None
    progress: bool = True

    def where(self) -> str:
        if self.ray:
            return f"Ray ({'local, ' + str(self.processes()) + ' CPUs' if self.ray == 'auto' else self.ray})"
        return "this process" if self.processes() == 1 else f"{self.processes()} local worker processes"

    def processes(self) -> int:
        """Local worker processes, or the CPUs a local Ray is started with."""
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)


@dataclass
class SweepResult:
    """Records by job id (read back from JSON, so a resumed sweep gives the same objects), times and failures."""

    records: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    ran: int = 0
    wall_seconds: float = 0.0

    def in_order(self, jobs: list[Job]) -> list[Any]:
        """The records of `jobs`, in the grid's order."""
        return [self.records[job.id] for job in jobs]


class SweepIncomplete(RuntimeError):
    """Some jobs failed; their errors are in the log and the next start runs only them (and any not run)."""

    def __init__(self, message: str, result: "SweepResult") -> None:
        super().__init__(message)
        self.result = result


def _resolve(fn: str) -> Callable[..., Any]:
    module, _, name = fn.partition(":")
    return getattr(importlib.import_module(module), name)


def _failed(exc: BaseException, seconds: float) -> dict[str, Any]:
    """A job's outcome when it raised, its worker died or its node was lost: the error, no record."""
    return {"record": None, "error": f"{type(exc).__name__}: {exc}", "seconds": seconds}


def execute(fn: str, args: dict[str, Any], threads: int) -> dict[str, Any]:
    """Run one job with `threads` torch threads: its record or its error, and its wall time.

    Only `Exception` becomes a recorded failure: an interrupt stops the sweep (what finished is kept)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        record = _resolve(fn)(**args)
        json.dumps(record)  # a record that cannot be written is the job's failure, not the runner's
        return {"record": record, "error": None, "seconds": time.perf_counter() - start}
    except Exception as exc:  # noqa: BLE001 - every failure is recorded with its message, and the sweep goes on
        return _failed(exc, time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)


def read_log(path: Path | None) -> dict[str, dict[str, Any]]:
    """The finished jobs in a sweep log, by id (a later line wins; a torn last line is ignored)."""
    done: dict[str, dict[str, Any]] = {}
    if path is None or not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short when the sweep was killed mid-write: that job runs again
        if isinstance(entry, dict) and "id" in entry:
            done[entry["id"]] = entry
    return done


def _serial(jobs: list[Job], options: SweepOptions) -> Iterator[tuple[Job, dict[str, Any]]]:
    for job in jobs:
        yield job, execute(job.fn, job.args, options.threads)


def _local(jobs: list[Job], options: SweepOptions) -> Iterator[tuple[Job, dict[str, Any]]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(options.processes(), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(execute, job.fn, job.args, options.threads): job for job in jobs}
        try:
            for future in as_completed(futures):
                try:
                    outcome = future.result()
                except Exception as exc:  # noqa: BLE001 - a worker that died (memory, signal) fails its job, not the sweep
                    outcome = _failed(exc, 0.0)
                yield futures[future], outcome
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _ray(jobs: list[Job], options: SweepOptions) -> Iterator[tuple[Job, dict[str, Any]]]:
    try:
        import ray  # only here: the app, the CLI and the other modes never import Ray
    except ImportError:
        raise UserInputError("--ray needs the ray package: pip install -r requirements.txt") from None

    started = not ray.is_initialized()
    if started:
        local = options.ray == "auto" and not os.environ.get("RAY_ADDRESS")
        if local:  # this machine's cache folder reaches the local workers; a cluster's nodes keep their own
            ray.init(num_cpus=options.processes(), include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("PURIFY_LAB_")}})
        else:
            ray.init(address=None if options.ray == "auto" else options.ray, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=options.threads, num_gpus=options.gpus_per_job, max_retries=0)(execute)
        pending = {remote.remote(job.fn, job.args, options.threads): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - a lost worker or node fails its job, not the sweep
                outcome = _failed(exc, 0.0)
            yield job, outcome
    finally:
        if started:
            ray.shutdown()


def run_sweep(name: str, jobs: list[Job], options: SweepOptions = SweepOptions(),
              log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> SweepResult:
    """Run every job of `jobs` not already finished in `options.log`; raise `SweepIncomplete` if any failed."""
    from tqdm import tqdm

    ids = [job.id for job in jobs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"sweep {name}: two jobs have the same id")  # a bug in the grid, not user input
    result, wanted = SweepResult(), set(ids)
    for job_id, entry in read_log(options.log).items():
        if job_id in wanted and entry.get("error") is None:
            result.records[job_id], result.seconds[job_id] = entry["record"], entry.get("seconds", 0.0)
    result.skipped = len(result.records)
    todo = [job for job in jobs if job.id not in result.records]
    log(f"sweep {name}: {len(jobs)} jobs, {result.skipped} already done"
        + (f" in {options.log} (skipped)" if result.skipped else "") + f", {len(todo)} to run in {options.where()}")
    start = time.perf_counter()
    runner = _serial if not options.ray and options.processes() == 1 else _ray if options.ray else _local
    if options.log is not None:
        options.log.parent.mkdir(parents=True, exist_ok=True)
        if options.log.exists() and not options.log.read_bytes().endswith(b"\n") and options.log.stat().st_size:
            with options.log.open("a") as out:
                out.write("\n")  # after a torn last line, the next entry starts on its own line
    with tqdm(total=len(jobs), initial=result.skipped, desc=name, unit="job", disable=not options.progress or not todo,
              file=sys.stderr, dynamic_ncols=True) as bar:
        for job, outcome in runner(todo, options) if todo else ():
            entry = {"id": job.id, "label": job.label, "fn": job.fn, "args": job.args, **outcome}
            line = json.dumps(entry)
            if options.log is not None:
                with options.log.open("a") as out:
                    out.write(line + "\n")
            entry = json.loads(line)  # the same objects a resumed sweep reads back (tuples become lists)
            result.ran += 1
            if entry["error"] is None:
                result.records[job.id], result.seconds[job.id] = entry["record"], entry["seconds"]
            else:
                result.failures[job.id] = entry["error"]
                bar.write(f"failed: {job.label or job.id}: {entry['error']}")
            bar.update(1)
    result.wall_seconds = time.perf_counter() - start
    log(f"sweep {name}: {result.ran} ran in {result.wall_seconds:.1f} s, {result.skipped} skipped, {len(result.failures)} failed")
    if result.failures:
        listed = "; ".join(f"{j}: {e}" for j, e in result.failures.items())
        raise SweepIncomplete(f"{len(result.failures)} of {len(jobs)} jobs failed ({listed}); "
                              "start the same sweep again to run only them" + (f" (log: {options.log})" if options.log else ""), result)
    return result


def timing_free(record: Any) -> Any:
    """`record` without its wall times (`is_timing` keys, at any depth): what must match across modes."""
    if isinstance(record, dict):
        return {k: timing_free(v) for k, v in record.items() if not is_timing(k)}
    if isinstance(record, list):
        return [timing_free(v) for v in record]
    return record
