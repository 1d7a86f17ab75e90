"""Screen 4 (issue 11): larger pruned shares on top of the both-views default; 1 thread per job."""
import json, os, sys, time, itertools
import multiprocessing as mp

VARIANTS = {
    "d": {}, "p80": {"threshold": 0.8}, "p85": {"threshold": 0.85}, "p90": {"threshold": 0.9},
    "p80z": {"threshold": 0.8, "classifier_init": "zero"},
    "r3": {"reinit": ("net.conv3", "net.bn3", "net.fc1", "net.fc2")},
    "r3np": {"reinit": ("net.conv3", "net.bn3", "net.fc1", "net.fc2"), "regularizer": "none", "threshold": 0.0},
    "p80e50": {"threshold": 0.8, "epochs": 50},
    "p75": {"threshold": 0.75},
    "p80t1": {"threshold": 0.8, "temperature": 1.0}, "p80b16": {"threshold": 0.8, "batch_size": 16}, "p80wd0": {"threshold": 0.8, "weight_decay": 0.0},
    "p80lr02": {"threshold": 0.8, "lr": 0.02}, "p80e45": {"threshold": 0.8, "epochs": 45},
    "p80d06": {"threshold": 0.8, "distill": 0.6}, "p80d07": {"threshold": 0.8, "distill": 0.7},
}
MODELS = ["shipped:sig", "shipped:wanet", "held:mnist5k-smallcnn-blended-s32"]

def job(args):
    variant, model, draw, seed = args
    import torch
    torch.set_num_threads(1)
    from dataclasses import replace
    import purify_core.method.purify as P
    from purify_core.bench.common import load_own, case_for
    from purify_core.study import case_of, evaluator_for, purification_result
    over = dict(VARIANTS[variant])
    kind, name = model.split(":")
    if kind == "held":
        b = load_own(f"/tmp/heldout/models/{name}.safetensors", f"/tmp/heldout/models/{name}.json"); case = case_of(b, draw)
    else:
        case = case_for(f"mnist5k-smallcnn-{name}", draw); b = case.backdoored
    ev = evaluator_for(b.attack, case.splits.test)
    t0 = time.perf_counter()
    r = purification_result(P.purify(b.model, case.splits.clean, replace(P.purify_preset("default"), eval_every=10**6, seed=seed, **over), ev)).summary
    return {"variant": variant, "model": name, "draw": draw, "seed": seed, "acc_before": 100 * r.before.acc, "acc": 100 * r.after.acc,
            "asr_before": 100 * r.before.asr, "asr": 100 * r.after.asr, "seconds": time.perf_counter() - t0}

if __name__ == "__main__":
    out = sys.argv[3] if len(sys.argv) > 3 else "/tmp/scr/screen4.jsonl"
    workers = int(sys.argv[1])
    names = sys.argv[2].split(",")
    models = sys.argv[4].split(",") if len(sys.argv) > 4 else MODELS
    done = set()
    if os.path.exists(out):
        for line in open(out):
            r = json.loads(line); done.add((r["variant"], r["model"], r["draw"], r["seed"]))
    jobs = [(v, m, d, k) for v in names for m in models for d in (0, 1, 2) for k in (0, 1, 2)
            if (v, m.split(":")[1] if not m.startswith("shipped") else m.split(":")[1], d, k) not in done]
    print(len(jobs), "jobs", flush=True)
    t0 = time.time()
    with mp.get_context("spawn").Pool(workers) as pool, open(out, "a") as f:
        for i, r in enumerate(pool.imap_unordered(job, jobs)):
            f.write(json.dumps(r) + "\n"); f.flush()
            print(i, round(time.time() - t0), r["variant"], r["model"], r["draw"], r["seed"], round(r["asr"], 2), round(r["acc_before"] - r["acc"], 2), flush=True)
    print("done", round(time.time() - t0), flush=True)
