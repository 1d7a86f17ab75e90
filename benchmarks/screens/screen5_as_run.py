"""Screen 5 (issue 11): WaNet's accuracy at 80% pruned: weight averaging (EMA, SWA), label smoothing, turns and scalings (for the student alone: affs), a calibrated teacher, the pruned channels redrawn (patched knobs)."""
# Each job runs in a fresh process (maxtasksperchild=1): the patches below are applied per job and must not stack.
import json, os, sys, time, math
import multiprocessing as mp

BASE = {"threshold": 0.8}
VARIANTS = {
    "p80": {}, "ema98": {"_ema": 0.98}, "ema95": {"_ema": 0.95}, "swa50": {"_swa": 0.5}, "ls1": {"_ls": 0.1},
    "aff10": {"_aff": (10, 0.1)}, "aff5": {"_aff": (5, 0.05)}, "swa50aff10": {"_swa": 0.5, "_aff": (10, 0.1)},
    "swa25": {"_swa": 0.25}, "rm": {"_rm": "rand", "regularizer": "none"}, "rmz": {"_rm": "zero", "regularizer": "none"},
    "affc": {"_aff": (10, 0.1), "distill_view": "clean"}, "affs": {"_aff": (10, 0.1), "_teach_unrot": 1},
    "aff5s": {"_aff": (5, 0.05), "_teach_unrot": 1}, "aff5c": {"_aff": (5, 0.05), "distill_view": "clean"},
    "cal": {"_cal": 1}, "cal70": {"_cal": 1, "threshold": 0.7}, "cal_b16": {"_cal": 1, "batch_size": 16}, "ema98e45": {"_ema": 0.98, "epochs": 45},
}
MODELS = ["shipped:sig", "shipped:wanet"]

def patch(P, knobs, steps_total):
    import torch, types
    import torch.nn.functional as F
    if "_ls" in knobs:
        ls = knobs["_ls"]
        ns = types.SimpleNamespace(**{k: getattr(F, k) for k in dir(F) if not k.startswith("__")})
        ns.cross_entropy = lambda a, b, **kw: F.cross_entropy(a, b, label_smoothing=ls, **kw)
        P.F = ns
    if "_aff" in knobs:
        deg, sc = knobs["_aff"]
        shift0 = P.random_shift
        def aug(x, pixels, g):
            x = shift0(x, pixels, g)
            P._teacher_x = x
            n = x.shape[0]
            ang = (torch.rand(n, generator=g) * 2 - 1) * math.radians(deg)
            s = 1 + (torch.rand(n, generator=g) * 2 - 1) * sc
            theta = torch.zeros(n, 2, 3)
            theta[:, 0, 0] = torch.cos(ang) / s; theta[:, 0, 1] = -torch.sin(ang) / s
            theta[:, 1, 0] = torch.sin(ang) / s; theta[:, 1, 1] = torch.cos(ang) / s
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
        P.random_shift = aug
        if "_teach_unrot" in knobs:
            from purify_core.method import steps as S
            call0 = S.Distillation.__call__
            def call(self, x, logits, progress, index):
                return call0(self, P._teacher_x.contiguous(memory_format=torch.channels_last), logits, progress, index)
            S.Distillation.__call__ = call
    if "_rm" in knobs:
        re0 = P.reinitialise
        def re(model, reinit, mask, seed, classifier_init="default"):
            names = re0(model, reinit, mask, seed, classifier_init)
            re0(model, "marked", mask, seed + 1000)
            if knobs["_rm"] == "zero":
                with torch.no_grad():
                    for name, m in mask.items():
                        model.get_submodule(name).weight[m] = 0
            return names
        P.reinitialise = re
    if "_cal" in knobs:
        from purify_core.method import steps as S
        from purify_core.data.augment import random_shift
        orig = S.Distillation.from_original.__func__
        class AddBias(torch.nn.Module):
            def __init__(self, inner, b):
                super().__init__(); self.inner = inner; self.register_buffer("b", b)
            def forward(self, x):
                return self.inner(x) + self.b
        def fo(cls, original, weight, temperature, schedule, view="shifted", clean=None):
            t = __import__("copy").deepcopy(original).eval()
            g = torch.Generator().manual_seed(0)
            xs = [clean] + [random_shift(clean, 2, g) for _ in range(4)]
            with torch.no_grad():
                logits = torch.cat([t(x) for x in xs])
            ys = P._cal_y.repeat(len(xs))
            b = torch.zeros(logits.shape[1], requires_grad=True)
            opt = torch.optim.LBFGS([b], max_iter=100)
            def closure():
                opt.zero_grad(); loss = F.cross_entropy(logits + b, ys); loss.backward(); return loss
            opt.step(closure)
            P._cal_b = b.detach()
            return orig(cls, AddBias(t, b.detach().clone()), weight, temperature, schedule, view, clean)
        S.Distillation.from_original = classmethod(fo)
        P.Distillation = S.Distillation
    if "_ema" in knobs or "_swa" in knobs:
        build0 = P.build_regularizer
        def build(model, *a, **k):
            reg = build0(model, *a, **k)
            state = {"n": 0, "avg": None, "k": 0}
            after0 = reg.after_step
            def after():
                after0()
                state["n"] += 1
                cur = {n: t.detach().clone() for n, t in model.state_dict().items()}
                if "_ema" in knobs:
                    d = knobs["_ema"]
                    if state["avg"] is None:
                        state["avg"] = cur
                    else:
                        for n, t in cur.items():
                            if t.is_floating_point():
                                state["avg"][n].mul_(d).add_(t, alpha=1 - d)
                            else:
                                state["avg"][n] = t
                else:
                    if state["n"] > (1 - knobs["_swa"]) * steps_total:
                        state["k"] += 1
                        if state["avg"] is None:
                            state["avg"] = cur
                        else:
                            for n, t in cur.items():
                                if t.is_floating_point():
                                    state["avg"][n].mul_((state["k"] - 1) / state["k"]).add_(t, alpha=1 / state["k"])
                                else:
                                    state["avg"][n] = t
                if state["n"] == steps_total:
                    model.load_state_dict(state["avg"])
            reg.after_step = after
            return reg
        P.build_regularizer = build

def job(args):
    variant, model, draw, seed = args
    import torch
    torch.set_num_threads(1)
    from dataclasses import replace
    import purify_core.method.purify as P
    from purify_core.bench.common import load_own, case_for
    from purify_core.study import case_of, evaluator_for, purification_result
    over = dict(BASE); over.update(VARIANTS[variant])
    knobs = {k: over.pop(k) for k in list(over) if k.startswith("_")}
    kind, name = model.split(":")
    if kind == "held":
        b = load_own(f"/tmp/heldout/models/{name}.safetensors", f"/tmp/heldout/models/{name}.json"); case = case_of(b, draw)
    else:
        case = case_for(f"mnist5k-smallcnn-{name}", draw); b = case.backdoored
    cfg = replace(P.purify_preset("default"), eval_every=10**6, seed=seed, **over)
    P._cal_y = case.splits.clean.y
    patch(P, knobs, cfg.epochs * math.ceil(len(case.splits.clean) / cfg.batch_size))
    ev = evaluator_for(b.attack, case.splits.test)
    t0 = time.perf_counter()
    r = purification_result(P.purify(b.model, case.splits.clean, cfg, ev)).summary
    return {"variant": variant, "model": name, "draw": draw, "seed": seed, "acc_before": 100 * r.before.acc, "acc": 100 * r.after.acc,
            "asr_before": 100 * r.before.asr, "asr": 100 * r.after.asr, "seconds": time.perf_counter() - t0, "cal": [round(float(v), 3) for v in getattr(P, "_cal_b", [])]}

if __name__ == "__main__":
    out = sys.argv[3]
    workers = int(sys.argv[1])
    names = sys.argv[2].split(",")
    models = sys.argv[4].split(",") if len(sys.argv) > 4 else MODELS
    done = set()
    if os.path.exists(out):
        for line in open(out):
            r = json.loads(line); done.add((r["variant"], r["model"], r["draw"], r["seed"]))
    jobs = [(v, m, d, k) for v in names for m in models for d in (0, 1, 2) for k in (0, 1, 2)
            if (v, m.split(":")[1], d, k) not in done]
    print(len(jobs), "jobs", flush=True)
    t0 = time.time()
    with mp.get_context("spawn").Pool(workers, maxtasksperchild=1) as pool, open(out, "a") as f:
        for i, r in enumerate(pool.imap_unordered(job, jobs)):
            f.write(json.dumps(r) + "\n"); f.flush()
            print(i, round(time.time() - t0), r["variant"], r["model"], r["draw"], r["seed"], round(r["asr"], 2), round(r["acc_before"] - r["acc"], 2), flush=True)
    print("done", round(time.time() - t0), flush=True)
