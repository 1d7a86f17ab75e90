"""Device exploration for issue 11: variants of the default on 4 shipped + 4 dev models, 3 draws x 3 seeds, 1 thread per job."""
import json, os, sys, time, itertools
os.environ["CUDA_VISIBLE_DEVICES"] = ""
import multiprocessing as mp

VARIANTS = {
    "d": {}, "d04": {"distill": 0.4}, "d03": {"distill": 0.3}, "b64": {"batch_size": 64}, "s1": {"shift": 1},
}
MODELS = ["shipped:sig", "shipped:wanet"]

ORIG = None

def job(args):
    variant, model, draw, seed = args
    import torch
    torch.set_num_threads(1)
    import torch.nn.functional as F
    from dataclasses import replace
    import purify_core.method.purify as P
    import purify_core.method.steps as S
    from purify_core.bench.common import load_own, case_for
    from purify_core.study import case_of, evaluator_for, purification_result
    over = dict(VARIANTS[variant]); both = over.pop("_both", 0); zero = over.pop("_zero", 0)
    global ORIG
    if ORIG is None:
        ORIG = (S.Distillation.from_original.__func__, S.reinitialise)
    orig_from, orig_reinit = ORIG
    if both:
        def from_original(cls, original, weight, temperature, schedule, view="shifted", clean=None):
            d = orig_from(cls, original, weight, temperature, schedule, "clean", clean)
            targets = d.targets
            def call(x, logits, progress, index):
                w = d.weight_at(progress); t = d.temperature
                with torch.no_grad():
                    target = 0.5 * (F.softmax(d.teacher(x) / t, dim=1) + targets[index])
                return 1.0 - w, w * t * t * F.kl_div(F.log_softmax(logits / t, dim=1), target, reduction="batchmean")
            return call
        P.Distillation.from_original = classmethod(from_original)
    else:
        P.Distillation.from_original = classmethod(orig_from)
    if zero:
        def reinit(model, reinit, mask, seed):
            done = orig_reinit(model, reinit, mask, seed)
            last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
            with torch.no_grad():
                last.weight.zero_(); last.bias.zero_()
            return done
        P.reinitialise = reinit
    else:
        P.reinitialise = orig_reinit
    kind, name = model.split(":")
    if kind == "dev":
        b = load_own(f".devx/models/{name}.safetensors", f".devx/models/{name}.json"); case = case_of(b, draw)
    else:
        case = case_for(f"mnist5k-smallcnn-{name}", draw); b = case.backdoored
    ev = evaluator_for(b.attack, case.splits.test)
    t0 = time.perf_counter()
    r = purification_result(P.purify(b.model, case.splits.clean, replace(P.purify_preset("default"), eval_every=10**6, seed=seed, **over), ev)).summary
    return {"variant": variant, "model": name, "draw": draw, "seed": seed, "acc_before": 100 * r.before.acc, "acc": 100 * r.after.acc,
            "asr_before": 100 * r.before.asr, "asr": 100 * r.after.asr, "seconds": time.perf_counter() - t0}

if __name__ == "__main__":
    out = os.path.join(os.environ.get("OUT", "/tmp"), "explore.jsonl")
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    names = sys.argv[2].split(",") if len(sys.argv) > 2 else list(VARIANTS)
    jobs = [(v, m, d, k) for k, d in itertools.product((0, 1, 2), (0, 1, 2)) for m in MODELS for v in names]
    print(len(jobs), "jobs", flush=True)
    t0 = time.time()
    with mp.get_context("spawn").Pool(workers) as pool, open(out, "a") as f:
        for i, r in enumerate(pool.imap_unordered(job, jobs)):
            f.write(json.dumps(r) + "\n"); f.flush()
            if i % 50 == 0:
                print(i, round(time.time() - t0), r, flush=True)
    print("done", round(time.time() - t0), flush=True)
