"""The mmtc GNN and its data: the differentiable rates equal the evaluator, the dense layer is
eqs. (39)-(41) on the explicit line graph, the network is permutation equivariant, datasets
resume exactly, training lowers the loss, and the shipped weights load safely and beat UPC."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cfbench import dataset as ds  # noqa: E402
from cfbench.executors import LocalExecutor  # noqa: E402
from cfbench.api import CfbenchError  # noqa: E402
from cfbench.learning import load_checkpoint  # noqa: E402
from cfbench.plugins import mmtc_baselines as bl  # noqa: E402
from cfbench.plugins import mmtc_gnn as gnn  # noqa: E402
from cfbench.problems import mmtc as mm  # noqa: E402
from cfbench.problems import mmtc_torch as mt  # noqa: E402
from cfbench.testing import check_solver  # noqa: E402

from conftest import assert_compile_fails_in_one_line, run_cli  # noqa: E402

PROBLEM = mm.Mmtc()


def test_torch_rates_and_ee_equal_the_evaluator():
    inst = PROBLEM.sample("ku2-kd10-m10-ms5", 6, seed=4)
    p = inst.params
    rng = np.random.default_rng(1)
    user = p.user_max_power_w * np.exp(rng.uniform(np.log(1e-8), 0, (6, p.n_users)))
    device = p.device_max_power_w * np.exp(rng.uniform(np.log(1e-6), 0, (6, p.n_devices)))
    reference = PROBLEM.performance(inst, user, device)
    c = mt.coefficient_tensors(mm.coefficients(inst))
    got = mt.performance(p, c, torch.as_tensor(user), torch.as_tensor(device))
    for key in ("user_sinr", "device_sinr", "user_rate_bps", "device_rate_bps", "device_ee_bit_per_j"):
        np.testing.assert_allclose(got[key].numpy(), reference[key], rtol=1e-10, atol=1e-12, err_msg=key)
    assert (reference["device_spectral_rate"] == 0).any()  # the clipped branch of (20) is covered too


def _reference_layer(layer, x, active, heads):
    """Eqs. (38)-(41) edge by edge on the explicit line graph (loops, no dense tricks)."""
    out = {}
    M = x["user"].shape[1]
    K = {t: x[t].shape[2] for t in x}
    width = layer.width
    c = width // heads
    types = [(name, src, dst, axis) for dst, ts in gnn.EDGE_TYPES.items() for name, src, axis in ts]
    for dst in gnn.EDGE_TYPES:
        total = layer.root[dst](x[dst][0])                        # (M, K, width): the summed Lambda^1
        for name, src, d2, axis in types:
            if d2 != dst:
                continue
            i = [n for n, _, d, _ in types if d == dst].index(name)
            j = [n for n, s, _, _ in types if s == src].index(name)
            wq = layer.query[dst].weight[i * width:(i + 1) * width]
            bq = layer.query[dst].bias[i * width:(i + 1) * width]
            wk = layer.key_value[src].weight[j * width:(j + 1) * width]
            bk = layer.key_value[src].bias[j * width:(j + 1) * width]
            wv = layer.key_value[src].weight[(3 + j) * width:(4 + j) * width]
            bv = layer.key_value[src].bias[(3 + j) * width:(4 + j) * width]
            edge = layer.edge[name]                               # (4, width), rows by 2 a_src + a_dst
            for m in range(M):
                for k in range(K[dst]):
                    h_i = x[dst][0, m, k]
                    if axis == "terminal":
                        neighbours = [(m, k2) for k2 in range(K[src]) if not (src == dst and k2 == k)]
                    else:
                        neighbours = [(m2, k) for m2 in range(M) if m2 != m]
                    if not neighbours:
                        continue
                    q = wq @ h_i + bq
                    keys, values = [], []
                    for (m2, k2) in neighbours:
                        attr = torch.zeros(4)
                        attr[2 * int(active[src][0, m2, k2]) + int(active[dst][0, m, k])] = 1.0
                        e = attr @ edge
                        keys.append(wk @ x[src][0, m2, k2] + bk + e)
                        values.append(wv @ x[src][0, m2, k2] + bv + e)
                    keys, values = torch.stack(keys), torch.stack(values)
                    message = []
                    for h in range(heads):
                        s = slice(h * c, (h + 1) * c)
                        a = torch.softmax(keys[:, s] @ q[s] / math.sqrt(c), dim=0)
                        message.append(a @ values[:, s])
                    total[m, k] = total[m, k] + torch.cat(message)
        out[dst] = layer.norm[dst](torch.relu(total))[None]
    return out


@pytest.mark.parametrize("scenario", ["tiny", "ku1-kd5-m10-ms5"])
def test_dense_layer_is_eqs_39_to_41_on_the_line_graph(scenario):
    torch.manual_seed(0)
    net = gnn.build_network()
    inst = PROBLEM.sample(scenario, 1, seed=2)
    features, active = gnn.network_inputs(inst, gnn.input_statistics(inst.user_gain, inst.device_gain))
    x = {t: f.unsqueeze(-1) for t, f in features.items()}
    x = net.layers[0](x, active)                                   # a 32-wide input for the second layer
    with torch.no_grad():
        dense = net.layers[1](x, active)
        loops = _reference_layer(net.layers[1], x, active, gnn.HEADS)
    assert not active["user"].all() and active["device"].any()   # both attribute kinds occur
    for t in dense:
        np.testing.assert_allclose(dense[t].numpy(), loops[t].numpy(), rtol=1e-4, atol=1e-5)


def _per_edge_type_forward(net, features, active):
    """The network as it was computed before the layers were fused: one attention per edge
    type with the Table I terms added to the scores and messages separately (kept to check
    that the fused forward is the same function)."""
    types = [(name, src, dst, axis) for dst, ts in gnn.EDGE_TYPES.items() for name, src, axis in ts]

    def attend(q, k, v, e, active_dst, active_src, exclude_self):
        D, c = q.shape[2], q.shape[-1]
        a_d = active_dst.long()
        e_inactive, e_active = e[a_d], e[2 + a_d]
        s_act = active_src[:, :, None, None, :]
        score = torch.einsum("bgdhc,bgshc->bghds", q, k)
        qe0 = (q * e_inactive).sum(-1).permute(0, 1, 3, 2).unsqueeze(-1)
        qe1 = (q * e_active).sum(-1).permute(0, 1, 3, 2).unsqueeze(-1)
        score = (score + qe0 + (qe1 - qe0) * s_act) / math.sqrt(c)
        if exclude_self:
            score = score.masked_fill(torch.eye(D, dtype=torch.bool), float("-inf"))
        weight = torch.softmax(score, dim=-1)
        message = torch.einsum("bghds,bgshc->bgdhc", weight, v)
        w_act = (weight * s_act).sum(-1).permute(0, 1, 3, 2).unsqueeze(-1)
        return message + e_inactive + (e_active - e_inactive) * w_act

    def layer_forward(layer, x):
        B, M = x["user"].shape[:2]
        H, c = gnn.HEADS, layer.head_size
        q = {t: layer.query[t](x[t]).view(B, M, -1, 3, H, c) for t in gnn.EDGE_TYPES}
        kv = {t: layer.key_value[t](x[t]).view(B, M, -1, 2, 3, H, c) for t in gnn.EDGE_TYPES}
        out = {t: layer.root[t](x[t]) for t in gnn.EDGE_TYPES}
        for name, src, dst, axis in types:
            i = [n for n, _, d, _ in types if d == dst].index(name)
            j = [n for n, s, _, _ in types if s == src].index(name)
            qi, ki, vi = q[dst][:, :, :, i], kv[src][:, :, :, 0, j], kv[src][:, :, :, 1, j]
            e = layer.edge[name].view(4, H, c)
            if axis == "terminal":
                if src == dst and ki.shape[2] == 1:
                    continue
                m = attend(qi, ki, vi, e, active[dst], active[src], src == dst)
            else:
                m = attend(qi.transpose(1, 2), ki.transpose(1, 2), vi.transpose(1, 2), e,
                           active[dst].transpose(1, 2), active[src].transpose(1, 2), src == dst).transpose(1, 2)
            out[dst] = out[dst] + m.reshape(B, M, -1, H * c)
        return {t: layer.norm[t](torch.relu(out[t])) for t in gnn.EDGE_TYPES}

    x = {t: f.unsqueeze(-1) for t, f in features.items()}
    for layer in net.layers:
        x = layer_forward(layer, x)
    return {t: net.out[t](x[t]).squeeze(-1).mean(dim=1) for t in gnn.EDGE_TYPES}


@pytest.mark.parametrize("scenario", ["ku2-kd10-m10-ms5", "ku1-kd5-m10-ms5", "ku2-kd10-m5-ms5", "tiny"])
def test_fused_forward_is_the_per_edge_type_forward(scenario):
    """Same function: in float64 to 1e-12 (random and shipped weights); in float32, as the
    solver runs, the output powers to 1e-5 relative: the logits are about 15 in magnitude,
    where one float32 step is 1e-6, and the earlier code itself is 2e-6 from its float64 value."""
    torch.manual_seed(4)
    inst = PROBLEM.sample(scenario, 5, seed=11)
    shipped = gnn.network_from_checkpoint(load_checkpoint(gnn.WEIGHTS_DIR / gnn.SHIPPED_WEIGHTS)).eval()
    stats = load_checkpoint(gnn.WEIGHTS_DIR / gnn.SHIPPED_WEIGHTS)["input"]
    f, a = gnn.network_inputs(inst, stats)
    for net in (gnn.build_network().eval(), shipped):
        with torch.inference_mode():
            new, old = net(f, a), _per_edge_type_forward(net, f, a)
            for t in new:
                power_ratio = torch.exp(new[t].double() - old[t].double()) - 1
                assert float(power_ratio.abs().max()) < 1e-5, t
            net64 = copy.deepcopy(net).double()
            f64, a64 = ({t: v.double() for t, v in d.items()} for d in (f, a))
            new, old = net64(f64, a64), _per_edge_type_forward(net64, f64, a64)
            for t in new:
                np.testing.assert_allclose(new[t].numpy(), old[t].numpy(), rtol=1e-12, atol=1e-12)
        assert net(f, a)["device"].std() > 1e-3


@pytest.mark.parametrize("scenario", ["ku2-kd10-m10-ms5", "ku1-kd5-m10-ms5", "ku2-kd10-m5-ms5", "tiny"])
def test_feature_major_forward_is_the_forward(scenario):
    """The compiled forward's layout (``forward_feature_major``, run here eagerly) computes the
    same function, for a batch and for one drop (its own shapes): in float64 to 1e-12; in float32
    as accurately as the eager forward, both within 2e-6 of the largest logit of the float64 truth
    (float rounding of sums in different orders: the eager float32 forward itself is 1.2e-6 off on
    one of these drops on an AMD EPYC, where the BLAS blocks one drop differently from a batch).
    ``tiny`` has an edge type without neighbours."""
    torch.manual_seed(6)
    inst = PROBLEM.sample(scenario, 6, seed=12)
    checkpoint = load_checkpoint(gnn.WEIGHTS_DIR / gnn.SHIPPED_WEIGHTS)
    shipped = gnn.network_from_checkpoint(checkpoint).eval()
    f, a = gnn.network_inputs(inst, checkpoint["input"])
    live = gnn.live_edge_types({t: v.shape[2] for t, v in f.items()}, f["user"].shape[1])
    one = slice(2, 3)
    for net in (gnn.build_network().eval(), shipped):
        runs = {}
        for dtype in (torch.float32, torch.float64):
            n = copy.deepcopy(net).to(dtype)
            fd, ad = ({t: v.to(dtype) for t, v in d.items()} for d in (f, a))
            f1, a1 = ({t: v[one] for t, v in d.items()} for d in (fd, ad))
            with torch.inference_mode():
                maps = n.feature_major_maps(live)
                major = {label: [gnn.feature_major(d) for d in pair] for label, pair in (("batch", (fd, ad)), ("one", (f1, a1)))}
                runs[dtype] = {("eager", "batch"): n(fd, ad), ("feature-major", "batch"): n.forward_feature_major(*major["batch"], maps),
                               ("eager", "one"): n(f1, a1), ("feature-major", "one"): n.forward_feature_major(*major["one"], maps)}
        truth = {"batch": runs[torch.float64]["eager", "batch"], "one": {t: v[one] for t, v in runs[torch.float64]["eager", "batch"].items()}}
        for (form, label), got in runs[torch.float64].items():
            for t in got:
                np.testing.assert_allclose(got[t].numpy(), truth[label][t].numpy(), rtol=1e-12, atol=1e-12)
        for (form, label), got in runs[torch.float32].items():
            for t in got:
                assert got[t].shape == truth[label][t].shape
                error = (got[t].double() - truth[label][t]).abs().max() / truth[label][t].abs().max()
                assert float(error) < 2e-6, (form, label, t, float(error))
        assert truth["batch"]["device"].std() > 1e-3


def test_fused_forward_trains_like_the_per_edge_type_forward():
    """Gradients flow to the parameters through the fused maps (rebuilt while recording);
    an edge type without neighbours (K_u = 1 in ``tiny``) gets zero gradients, not none."""
    torch.manual_seed(5)
    net = gnn.build_network().double()
    inst = PROBLEM.sample("tiny", 3, seed=1)
    f, a = gnn.network_inputs(inst, gnn.input_statistics(inst.user_gain, inst.device_gain))
    f, a = ({t: v.double() for t, v in d.items()} for d in (f, a))
    grads = []
    for forward in (net, lambda f, a: _per_edge_type_forward(net, f, a)):
        net.zero_grad()
        out = forward(f, a)
        (out["user"].sum() + 2 * out["device"].sum()).backward()
        grads.append({k: torch.zeros_like(p) if p.grad is None else p.grad.clone() for k, p in net.named_parameters()})
    for k in grads[0]:
        np.testing.assert_allclose(grads[0][k].numpy(), grads[1][k].numpy(), rtol=1e-9, atol=1e-12, err_msg=k)


def test_network_is_equivariant_to_users_devices_and_aps():
    torch.manual_seed(1)
    net = gnn.build_network()
    inst = PROBLEM.sample("ku2-kd10-m10-ms5", 3, seed=5)
    f, a = gnn.network_inputs(inst, gnn.input_statistics(inst.user_gain, inst.device_gain))
    g = torch.Generator().manual_seed(3)
    pu, pd, pm = (torch.randperm(n, generator=g) for n in (2, 10, 10))

    def permute(d):
        return {"user": d["user"][:, pm][:, :, pu], "device": d["device"][:, pm][:, :, pd]}

    with torch.no_grad():
        out, out_p = net(f, a), net(permute(f), permute(a))
    np.testing.assert_allclose(out_p["user"].numpy(), out["user"][:, pu].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out_p["device"].numpy(), out["device"][:, pd].numpy(), rtol=1e-5, atol=1e-5)
    assert out["device"].std() > 1e-3  # the outputs differ across devices, so the check has teeth


def test_one_network_serves_every_table_ii_setting():
    net = gnn.build_network()
    for scenario in gnn.TABLE_II:
        inst = PROBLEM.sample(scenario, 2, seed=0)
        f, a = gnn.network_inputs(inst, gnn.input_statistics(inst.user_gain, inst.device_gain))
        with torch.no_grad():
            out = net(f, a)
        assert out["user"].shape == (2, inst.params.n_users) and out["device"].shape == (2, inst.params.n_devices)
        assert torch.isfinite(out["user"]).all() and torch.isfinite(out["device"]).all()


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """A small labelled dataset (G-FPC labels: cheap; the pipeline does not care who labels)."""
    out = tmp_path_factory.mktemp("data")
    ds.build(PROBLEM, "g-fpc", {}, "tiny", 96, out, seed=7, shard_size=16, executor=LocalExecutor(2))
    return out


def test_dataset_format_and_exact_resume(tiny_dataset, tmp_path):
    folder = tiny_dataset / "tiny"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["samples"] == 96 and manifest["labels"] == "g-fpc" and manifest["seed"] == 7
    data = ds.load(PROBLEM, folder)
    fresh = PROBLEM.sample("tiny", 96, seed=7)
    np.testing.assert_array_equal(data.instances.index, np.arange(96))
    np.testing.assert_array_equal(data.instances.device_gain, fresh.device_gain)
    score = PROBLEM.evaluate(fresh, {k + "_power_w": data.labels[k + "_power_w"] for k in ("user", "device")})
    np.testing.assert_allclose(data.label_objective, score.objective)
    # an interrupted build (a missing middle shard) is completed to the same bytes of data
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_dataset, copy)
    ds.shard_path(copy / "tiny", 2).unlink()
    assert ds.load(PROBLEM, copy / "tiny", 32).instances.index[-1] == 31
    with pytest.raises(CfbenchError, match="resume"):
        ds.load(PROBLEM, copy / "tiny", 96)
    ds.build(PROBLEM, "g-fpc", {}, "tiny", 96, copy, seed=7, shard_size=16, executor=LocalExecutor(1))
    again = ds.load(PROBLEM, copy / "tiny")
    np.testing.assert_array_equal(again.labels["device_power_w"], data.labels["device_power_w"])
    with pytest.raises(CfbenchError, match="seed = 7"):
        ds.build(PROBLEM, "g-fpc", {}, "tiny", 96, copy, seed=8, shard_size=16)


def test_dataset_cli_resumes_and_rejects_bad_input(tmp_path):
    args = ["dataset", "--problem", "mmtc", "--scenario", "tiny", "--labels", "upc", "--samples", "8",
            "--shard-size", "4", "--out", str(tmp_path), "--quiet"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "8 samples" in first.stdout
    stamp = ds.shard_path(tmp_path / "tiny", 0).stat().st_mtime_ns
    second = run_cli(*[a if a != "8" else "12" for a in args])                 # extend 8 -> 12
    assert second.returncode == 0, second.stderr
    assert ds.shard_path(tmp_path / "tiny", 0).stat().st_mtime_ns == stamp      # kept, not recomputed
    assert ds.labelled_samples(tmp_path / "tiny") == 12
    bad = run_cli("dataset", "--problem", "mmtc", "--scenario", "tiny", "--labels", "nope", "--samples", "4",
                  "--out", str(tmp_path))
    assert bad.returncode == 2 and "unknown solver 'nope'" in bad.stderr and "opc-fast" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_training_lowers_the_loss_and_the_dual_ascent_is_projected(tiny_dataset, tmp_path):
    path = gnn.train(PROBLEM, ["tiny"], seed=0, out=tmp_path / "w.pt", data=str(tiny_dataset), epochs=4,
                     lr=3e-3)
    ckpt = load_checkpoint(path)
    history = ckpt["training"]["history"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert history[-1]["val_l_theta"] < history[0]["val_l_theta"]
    assert all(h.get("multiplier", 0.0) >= 0.0 for h in history)
    feasible = ds.load(PROBLEM, tiny_dataset / "tiny").label_feasible    # 80/10/10, infeasible labels left out
    assert 0 < feasible[76:86].sum() < 10 or feasible[:76].sum() < 76        # the filter is exercised
    assert ckpt["trained_on"]["n_train"]["tiny"] == feasible[:76].sum()
    assert ckpt["trained_on"]["n_validation"]["tiny"] == feasible[76:86].sum()


def test_max_min_term_is_one_minus_the_min_ee_ratio_weighted_by_gamma(tiny_dataset):
    """Option ``min_ee_weight``: the loss grows by exactly gamma (1 - mean min-EE ratio)."""
    data = ds.load(PROBLEM, tiny_dataset / "tiny")
    data = data.subset([i for i in range(16) if data.label_feasible[i]])
    stats = gnn.input_statistics(data.instances.user_gain, data.instances.device_gain)
    batch = gnn._tensors(data, stats)
    torch.manual_seed(0)
    net = gnn.build_network().double()
    batch = {k: ({t: x.double() if x.is_floating_point() else x for t, x in v.items()} if isinstance(v, dict)
                 else (v.double() if v.is_floating_point() else v)) for k, v in batch.items()}
    with torch.no_grad():
        plain = gnn.loss_terms(net, batch, data.instances.params, {**gnn.DEFAULTS}, 2.0)
        weighted = gnn.loss_terms(net, batch, data.instances.params, {**gnn.DEFAULTS, "min_ee_weight": 3.0}, 2.0)
    assert abs(float(plain["l_min_ee"]) - (1.0 - float(plain["min_ee_ratio"]))) < 1e-12
    assert abs(float(weighted["loss"] - plain["loss"]) - 3.0 * float(plain["l_min_ee"])) < 1e-10
    assert float(plain["l_min_ee"]) != 0.0     # the term is not trivially zero on these drops


def test_training_rejects_unknown_options_and_missing_data(tmp_path):
    with pytest.raises(CfbenchError, match="unknown option 'bogus' of het-gnn training"):
        gnn.train(PROBLEM, ["tiny"], data=str(tmp_path), bogus=1)
    with pytest.raises(CfbenchError, match="constraints must be one of"):
        gnn.train(PROBLEM, ["tiny"], data=str(tmp_path), constraints="c9")
    with pytest.raises(CfbenchError, match="cfbench dataset"):
        gnn.train(PROBLEM, ["tiny"], data=str(tmp_path))


def test_shipped_checkpoint_loads_safely():
    ckpt = load_checkpoint(gnn.WEIGHTS_DIR / gnn.SHIPPED_WEIGHTS)
    assert ckpt["trained_on"]["scenarios"] == list(gnn.TABLE_II)
    net = gnn.network_from_checkpoint(ckpt)
    assert sum(p.numel() for p in net.parameters()) > 100_000


def test_solver_conforms_on_tiny():
    check_solver(gnn.HeterogeneousGnn, problem="mmtc", scenario="tiny")


def test_chunk_plan_covers_every_drop_once_in_compiled_sizes():
    for chunk in (1, 2, 5, 16):
        for n in range(1, 3 * chunk + 2):
            plan = gnn.chunk_plan(n, chunk)
            assert [d for start, size in plan for d in range(start, start + size)] == list(range(n))
            assert all(size == chunk or size == 1 or chunk // 2 <= size < chunk for _, size in plan)
    assert gnn.chunk_plan(40, 16) == [(0, 16), (16, 16), (32, 8)]
    assert gnn.chunk_plan(39, 16) == [(0, 16), (16, 16), (32, 1), (33, 1), (34, 1), (35, 1), (36, 1), (37, 1),
                                      (38, 1)]


def test_compiled_forward_gives_the_eager_powers_and_compiles_only_in_setup(tmp_path, monkeypatch):
    """``compile=true`` (inductor, no dynamo: ``compile_graph``): the eager powers to float32
    rounding for a batch of whole chunks and a padded one, whole chunks and single drops, single
    drops only, and one drop, on ``tiny`` (K_u = 1: an edge type without neighbours); nothing
    compiled after ``setup``. On two torch threads the pieces of a batch run on two threads at once:
    the same powers to the bit, every time, and torch's thread count left as it was. A two-layer
    network of random weights keeps the cold compile short (inductor's time grows with the
    layers, not the sizes)."""
    import torch._inductor
    from torch._dynamo.utils import counters

    from cfbench.learning import save_checkpoint

    torch.manual_seed(8)
    weights = save_checkpoint(tmp_path / "small.pt", {
        "model": {"widths": [8, 8], "heads": 4}, "state_dict": gnn.build_network((8, 8), 4).state_dict(),
        "input": load_checkpoint(gnn.WEIGHTS_DIR / gnn.SHIPPED_WEIGHTS)["input"]})
    inst = PROBLEM.sample("tiny", 200, seed=6)
    eager = gnn.HeterogeneousGnn(weights=str(weights))
    eager.setup(PROBLEM, "tiny")
    compiled = gnn.HeterogeneousGnn(weights=str(weights), compile=True)
    compiled.setup(PROBLEM, "tiny")
    assert compiled.forward is not compiled.network and eager.forward is eager.network
    assert gnn.COMPILED_CHUNK_DROPS == 16 and 200 % 16 == 8                  # 12 chunks and a padded one

    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled after setup")

    monkeypatch.setattr(torch._inductor, "compile", no_compiling)
    monkeypatch.setattr(torch, "compile", no_compiling)
    graphs = counters["stats"]["unique_graphs"]
    runs = {"chunks": (inst, slice(None)), "chunk and drops": (inst[:19], slice(0, 19)),
            "drops": (inst[:7], slice(0, 7)), "one": (inst[3], slice(3, 4))}
    ref = eager.solve(inst)
    one_thread = {}
    for label, (part, rows) in runs.items():
        one_thread[label] = compiled.solve(part)
        for key in ref:
            np.testing.assert_allclose(one_thread[label][key], ref[key][rows], rtol=1e-5, atol=0,
                                       err_msg=f"{label} {key}")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for _ in range(3):
            for label, (part, _) in runs.items():
                two_threads = compiled.solve(part)
                for key in ref:
                    np.testing.assert_array_equal(two_threads[key], one_thread[label][key], err_msg=f"{label} {key}")
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert counters["stats"]["unique_graphs"] == graphs                       # dynamo never ran
    assert np.ptp(np.log(ref["device_power_w"])) > 0.1          # powers that differ: the comparison has teeth


def test_compiled_graph_refuses_other_shapes():
    """The compiled graph fits its example's shapes only: anything else is refused before the
    compiled code sees it (it would read out of bounds)."""
    from cfbench.learning import compile_graph

    weight = torch.randn(3, 4)
    graph = compile_graph("test", lambda x: (torch.mm(x, weight),), (torch.zeros(2, 3),))
    x = torch.randn(2, 3)
    np.testing.assert_allclose(graph(x)[0].numpy(), (x @ weight).numpy(), rtol=1e-6)
    np.testing.assert_allclose(graph(x.t().contiguous().t())[0].numpy(), (x @ weight).numpy(), rtol=1e-6)
    for bad in (torch.zeros(3, 3), torch.zeros(2, 3, dtype=torch.float64)):
        with pytest.raises(ValueError, match=r"^test: the compiled graph takes \[\(\(2, 3\), torch.float32\)\]"):
            graph(bad)


def test_compile_without_a_working_compiler_fails_in_one_line(monkeypatch):
    assert_compile_fails_in_one_line(monkeypatch, gnn.HeterogeneousGnn, PROBLEM, "tiny")


def test_shipped_weights_beat_upc_on_the_default_setting():
    inst = PROBLEM.sample("ku2-kd10-m10-ms5", 24, seed=11)
    scores = {}
    for cls in (bl.UniformPowerControl, gnn.HeterogeneousGnn):
        solver = cls()
        solver.setup(PROBLEM, "ku2-kd10-m10-ms5")
        scores[cls.name] = PROBLEM.evaluate(inst, solver.solve(inst))
    upc, net = scores["upc"], scores["het-gnn"]
    both = upc.feasible & net.feasible
    assert both.sum() >= 12
    assert np.median(net.objective[both]) > 2 * np.median(upc.objective[both])
    assert net.feasible.mean() >= upc.feasible.mean()


@pytest.mark.parametrize("setting", gnn.TABLE_II)
def test_shipped_weights_reach_95_percent_of_opc_in_the_median_drop(setting):
    """The fast-paths issue's bar on drops of a seed used neither in training (the dataset
    stream) nor in choosing the weights (seed 7) nor in the README's Table II (seeds 0, 1):
    the GNN's min EE is at least 0.95 of the fast OPC's (the labels' solver, the global
    optimum) in the median drop, and it is feasible wherever OPC is, but for at most 1 in 24."""
    from cfbench.plugins import mmtc_fixed_point as fp

    inst = PROBLEM.sample(setting, 48, seed=13)
    scores = {}
    for cls in (fp.FixedPointMaxMin, gnn.HeterogeneousGnn):
        solver = cls()
        solver.setup(PROBLEM, setting)
        out = solver.solve(inst)
        scores[cls.name] = PROBLEM.evaluate(inst, out.decision if hasattr(out, "decision") else out)
    opc, net = scores["opc-fast"], scores["het-gnn"]
    assert opc.feasible.sum() >= 40
    ratio = net.objective[opc.feasible] / opc.objective[opc.feasible]
    assert np.median(ratio) >= 0.95
    assert (opc.feasible & ~net.feasible).sum() <= 2
