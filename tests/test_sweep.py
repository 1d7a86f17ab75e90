"""The sweep runner: resumable, failures recorded, the same records serially, on local workers and on Ray,
and Ray never imported by the app or the CLI."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from purify_core.bench.sweep import Job, SweepIncomplete, SweepOptions, read_log, run_sweep, timing_free

ROOT = Path(__file__).resolve().parent.parent


def square(x: int, calls: str, switch: str) -> dict:
    """A toy job: counts its executions in `calls`; while the file `switch` says so, x = 2 is interrupted or fails."""
    with open(calls, "a") as out:
        out.write(f"{x}\n")
    mode = Path(switch).read_text() if Path(switch).exists() else ""
    if x == 2 and mode == "interrupt":
        raise KeyboardInterrupt  # as Ctrl-C while this job runs
    if x == 2 and mode == "fail":
        raise ValueError(f"no square for {x}")
    return {"x": x, "square": x * x, "seconds": 0.001 * x}


def _jobs(tmp_path: Path, n: int = 5) -> list[Job]:
    return [Job(f"{__name__}:square", {"x": x, "calls": str(tmp_path / "calls"), "switch": str(tmp_path / "switch")}, f"x={x}")
            for x in range(n)]


def _ran(tmp_path: Path) -> list[int]:
    calls = tmp_path / "calls"
    return [int(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def test_a_job_id_is_stable_and_changes_with_any_argument(tmp_path):
    a, b = _jobs(tmp_path), _jobs(tmp_path)
    assert [j.id for j in a] == [j.id for j in b] and len({j.id for j in a}) == 5
    assert Job("m:f", {"x": 1, "y": 2}, "l").id == Job("m:f", {"y": 2, "x": 1}, "l").id != Job("m:f", {"x": 1, "y": 3}, "l").id


def test_an_interrupted_sweep_resumes_without_redoing_done_jobs(tmp_path):
    log, lines, jobs = tmp_path / "sweep.jsonl", [], _jobs(tmp_path)
    options = SweepOptions(log=log, progress=False)
    (tmp_path / "switch").write_text("interrupt")
    with pytest.raises(KeyboardInterrupt):
        run_sweep("toy", jobs, options, lines.append)
    assert _ran(tmp_path) == [0, 1, 2] and len(read_log(log)) == 2, "the two finished jobs are on disk"
    with log.open("a") as out:
        out.write('{"id": "x=3#torn')  # a line cut short when a process is killed mid-write
    (tmp_path / "switch").unlink()
    result = run_sweep("toy", jobs, options, lines.append)
    assert _ran(tmp_path) == [0, 1, 2, 2, 3, 4], "only the jobs not done ran again"
    assert result.skipped == 2 and result.ran == 3 and "5 jobs, 2 already done" in lines[-2]
    assert [r["square"] for r in result.in_order(jobs)] == [0, 1, 4, 9, 16]
    again = run_sweep("toy", jobs, options, lines.append)
    assert _ran(tmp_path) == [0, 1, 2, 2, 3, 4] and again.ran == 0 and again.in_order(jobs) == result.in_order(jobs)


def test_a_failing_job_is_recorded_and_the_others_finish(tmp_path):
    log, jobs = tmp_path / "sweep.jsonl", _jobs(tmp_path)
    (tmp_path / "switch").write_text("fail")
    with pytest.raises(SweepIncomplete, match=r"1 of 5 jobs failed \(x=2#\w+: ValueError: no square for 2\)") as failed:
        run_sweep("toy", jobs, SweepOptions(log=log, progress=False), lambda line: None)
    assert _ran(tmp_path) == [0, 1, 2, 3, 4] and len(failed.value.result.records) == 4
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["error"] for e in entries] == [None, None, "ValueError: no square for 2", None, None]
    (tmp_path / "switch").unlink()
    result = run_sweep("toy", jobs, SweepOptions(log=log, progress=False), lambda line: None)
    assert _ran(tmp_path) == [0, 1, 2, 3, 4, 2], "a re-start runs only the failed job"
    assert [r["square"] for r in result.in_order(jobs)] == [0, 1, 4, 9, 16]


def test_records_are_compared_without_their_wall_times():
    record = {"a": 1, "seconds": 2.0, "defend_seconds": 3.0, "rows": [{"b": 2, "seconds": 1.0, "secondsx": 4}]}
    assert timing_free(record) == {"a": 1, "rows": [{"b": 2, "secondsx": 4}]}


def _top_level_ray_imports(path: Path) -> list[int]:
    """Lines where `path` imports ray outside any function (module level, also under if/try)."""
    tree = ast.parse(path.read_text())
    inside = {id(n) for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(node)}
    return [node.lineno for node in ast.walk(tree) if id(node) not in inside and (
        (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "ray" for a in node.names))
        or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ray" and not node.level))]


def test_no_module_of_the_app_or_the_core_imports_ray_when_it_is_imported():
    files = [ROOT / "app.py", *(p for d in ("purify_core", "ui", "app_pages") for p in (ROOT / d).rglob("*.py"))]
    mention = [p for p in files if "ray" in p.read_text()]  # parse only the files that could import it
    found = {str(p.relative_to(ROOT)): lines for p in mention if (lines := _top_level_ray_imports(p))}
    assert found == {}, "Ray is imported only inside the function that runs a sweep on it"


def test_the_finder_finds_a_module_level_ray_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\ntry:\n    import ray.util\nexcept ImportError:\n    pass\ndef f():\n    import ray\n")
    assert _top_level_ray_imports(module) == [3]


def test_the_cli_help_and_a_bench_help_do_not_import_ray():
    code = ("import sys\nfrom purify_core.cli import main\n"
            "for argv in (['--help'], ['bench', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_a_tiny_grid_gives_the_same_records_serially_on_two_workers_and_on_ray(tiny_zoo):
    ray = pytest.importorskip("ray")
    from purify_core.bench.claims import claims_jobs
    from purify_core.method.purify import PurifyConfig, purify_preset

    zoo, name = tiny_zoo
    grid = claims_jobs([name], [1], purify_preset("default", epochs=1), replace(PurifyConfig(), epochs=1), zoo=zoo)
    jobs = [grid[(name, 1, key)] for key in ("rankings", "backdoored", "lab default")]
    serial = run_sweep("tiny", jobs, SweepOptions(workers=1, progress=False)).in_order(jobs)
    assert serial[1]["defense"] == "none (the backdoored model)" and {"salience", "activation", "magnitude"} <= {r["metric"] for r in serial[0]["rows"]}
    local = run_sweep("tiny", jobs, SweepOptions(workers=2, progress=False)).in_order(jobs)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_sweep("tiny", jobs, SweepOptions(workers=2, ray="auto", progress=False)).in_order(jobs)
    finally:
        ray.shutdown()
    assert timing_free(local) == timing_free(serial) == timing_free(on_ray)


def test_the_arena_and_the_re_activation_check_as_sweep_jobs_give_the_in_process_rows(tiny_zoo, tiny_backdoored, tmp_path, monkeypatch):
    from purify_core.bench.arena import arena_sweep, contenders, run_arena
    from purify_core.bench.reactivate import reactivate_rows, run_reactivate
    from purify_core.evaluation.clean_control import clean_model
    from purify_core.evaluation.reactivate import ReactivateConfig
    from purify_core.method.purify import purify_preset
    from purify_core.study import case_of

    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))  # where the jobs' clean control is trained once, then read
    zoo, name = tiny_zoo
    chosen, lines = contenders(["finetune"]), []
    swept = arena_sweep([name], [1], chosen, epochs=1, log=lines.append, zoo=zoo)
    assert any("clean control ready" in line for line in lines), "trained in the parent before the jobs"
    case = case_of(tiny_backdoored, 1)
    control = clean_model(tiny_backdoored.scenario, device="cpu")
    retune = ReactivateConfig(images=40, poisoned=4, epochs=1)
    config = purify_preset("default", epochs=1)
    raw = run_reactivate([name], [1], "default", config, retune, log=lines.append, zoo=zoo)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as every sweep job runs: the same threads give the same numbers
    try:
        direct = run_arena([case], chosen, lambda scenario: control, epochs=1, log=lines.append)
        rows, _ = reactivate_rows(case, config, retune, control)
    finally:
        torch.set_num_threads(threads)
    assert timing_free(swept["rows"]) == timing_free(direct["rows"]) and swept["rows"][0]["control_acc"] is not None
    assert timing_free(raw["rows"]) == timing_free(rows) and {r["model"] for r in rows} == {"purified", "finetune", "backdoored", "clean"}


def test_a_defaults_log_written_before_the_sweep_runner_counts_as_done(tmp_path):
    from purify_core.bench.defaults import RECIPES, _job, _upgrade_log
    from purify_core.method.purify import PurifyConfig

    recipe, base = next(iter(RECIPES)), PurifyConfig().to_dict()
    old = {"recipe": recipe, "scenario": "mnist5k-smallcnn-badnets", "draw": 1, "seed": 2, "seconds": 50.0, "acc": 96.3}
    log = tmp_path / "defaults.partial.jsonl"
    log.write_text(json.dumps(old) + "\n" + '{"recipe": "cut sh')
    _upgrade_log(log, base)
    done = read_log(log)
    assert list(done) == [_job(recipe, "mnist5k-smallcnn-badnets", 1, 2, base).id] and next(iter(done.values()))["record"] == old
    _upgrade_log(log, base)
    assert len(log.read_text().splitlines()) == 1, "upgraded once"


def test_bench_reports_failed_jobs_in_one_line_writes_nothing_then_resumes_and_drops_its_log(tmp_path, monkeypatch, capsys):
    from purify_core.bench import command
    from purify_core.cli import main

    def toy_run(args, log):
        records = run_sweep("toy", _jobs(tmp_path), command._sweep(args), log).in_order(_jobs(tmp_path))
        return {"squares": [r["square"] for r in records]}, "# toy"

    monkeypatch.setattr(command, "_run", toy_run)
    out, log = tmp_path / "out", tmp_path / "out" / "claims.partial.jsonl"
    (tmp_path / "switch").write_text("fail")
    assert main(["bench", "claims", "--workers", "1", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [next(line for line in err.splitlines() if "jobs failed" in line)]
    assert "Traceback" not in err and sorted(p.name for p in out.iterdir()) == ["claims.partial.jsonl"], "no report, the log kept"
    (tmp_path / "switch").unlink()
    assert main(["bench", "claims", "--workers", "1", "--out", str(out)]) == 0
    assert "4 already done" in capsys.readouterr().err and _ran(tmp_path) == [0, 1, 2, 3, 4, 2]
    assert json.loads((out / "claims.json").read_text()) == {"squares": [0, 1, 4, 9, 16]} and not log.exists()
    assert main(["bench", "claims", "--gpus-per-job", "1", "--out", str(out)]) == 1
    assert capsys.readouterr().err.strip() == "error: --gpus-per-job asks Ray for GPUs: give --ray auto or --ray ADDRESS too"


def slow_square(x: int, calls: str, delay: float) -> dict:
    """A toy job that takes `delay` seconds (so a sweep can be killed between two of them)."""
    import time

    with open(calls, "a") as out:
        out.write(f"{x}\n")
    time.sleep(delay)
    return {"x": x, "square": x * x}


def test_a_sweep_on_two_workers_killed_after_some_records_resumes_without_redoing_them(tmp_path):
    import os
    import signal
    import time

    calls, log = tmp_path / "calls", tmp_path / "sweep.jsonl"
    jobs = [Job(f"{__name__}:slow_square", {"x": x, "calls": str(calls), "delay": 1.0}, f"x={x}") for x in range(8)]
    code = ("import sys, json\nfrom pathlib import Path\nfrom purify_core.bench.sweep import Job, SweepOptions, run_sweep\n"
            "if __name__ == '__main__':\n"
            f"    jobs = [Job(**j) for j in json.loads({json.dumps([{'fn': j.fn, 'args': j.args, 'label': j.label} for j in jobs])!r})]\n"
            f"    run_sweep('toy', jobs, SweepOptions(workers=2, log=Path({str(log)!r}), progress=False))\n")
    script = tmp_path / "sweep_script.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while len(read_log(log)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its two workers, at once
        proc.wait()
    done = set(read_log(log))
    assert 2 <= len(done) < len(jobs), "killed part-way"
    ran_before = [int(x) for x in calls.read_text().splitlines()]
    result = run_sweep("toy", jobs, SweepOptions(workers=2, log=log, progress=False), lambda line: None)
    ran_after = [int(x) for x in calls.read_text().splitlines()][len(ran_before):]
    assert result.skipped == len(done) and not {j.args["x"] for j in jobs if j.id in done} & set(ran_after), "a logged job ran again"
    assert sorted(ran_after) == sorted(j.args["x"] for j in jobs if j.id not in done)
    assert [r["square"] for r in result.in_order(jobs)] == [x * x for x in range(8)]
