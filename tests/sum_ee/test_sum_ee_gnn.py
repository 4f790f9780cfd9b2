"""The sum-ee GNN: the torch objective equals the evaluator, the factored SINRnet layer is
eq. (11) on the explicit channel categories, the network is equivariant to UEs and APs,
outputs respect the budget and can be exactly zero, kappa follows eq. (8), training raises
the objective, bad options fail in one line, and the shipped weights load safely."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from cfbench.api import CfbenchError  # noqa: E402
from cfbench.learning import load_checkpoint  # noqa: E402
from cfbench.plugins import sum_ee_gnn as gnn  # noqa: E402
from cfbench.plugins.sum_ee_sca import SCADinkelbach  # noqa: E402
from cfbench.problems import sum_ee_torch as st  # noqa: E402
from cfbench.problems.sum_ee import SumEE  # noqa: E402
from cfbench.testing import check_solver  # noqa: E402

from conftest import assert_compile_fails_in_one_line, run_cli  # noqa: E402

PROBLEM = SumEE()
SHIPPED = gnn.WEIGHTS_DIR / gnn.SHIPPED_WEIGHTS
REPOSITORY = Path(__file__).resolve().parents[2]
ABLATIONS = ("gnn-sum-ee-24ep.pt", "gnn-sum-ee-no-kappa.pt", "gnn-sum-ee-deterministic.pt", "gnn-sum-ee-48ep.pt")


def _stats(inst):
    return gnn.input_statistics(inst.gain_over_noise, 0.0, 0.0)


@pytest.mark.parametrize("scenario", ["tiny", "15ap-15ue"])
def test_torch_objective_equals_the_evaluator(scenario):
    inst = PROBLEM.sample(scenario, 6, seed=3)
    p = inst.params
    rng = np.random.default_rng(0)
    power = rng.uniform(0, p.ap_power_budget_w / p.n_ues, (6, p.n_ues, p.n_aps))
    power *= rng.random(power.shape) < 0.3                                  # exact zeros, as at the optimum
    power[0] = 0.0                                                          # and an all-off instance
    reference = PROBLEM.evaluate(inst, {"power_w": power}).objective
    got = st.sum_ee(p, torch.as_tensor(inst.gain_over_noise), torch.as_tensor(power)).numpy()
    np.testing.assert_allclose(got, reference, rtol=1e-10, atol=1e-12)
    stacked = st.sum_ee(p, torch.as_tensor(inst.gain_over_noise), torch.as_tensor(np.stack([power, power])))
    np.testing.assert_allclose(stacked.numpy(), np.stack([reference, reference]), rtol=1e-10)   # sample axis


def _dense_category_means(z, K):
    """Eq. (11)'s four category means for every entry (k, j), by explicit sets (loops)."""
    w = z.shape[-1] // 4
    out = torch.zeros(K, K, 4 * w, dtype=z.dtype)
    for k in range(K):
        for j in range(K):
            sets = [{(k, k), (j, j)},
                    {(k, jj) for jj in range(K) if jj != k},
                    {(kk, j) for kk in range(K) if kk != j},
                    {(kk, jj) for kk in range(K) for jj in range(K) if kk != jj}]
            for c, s in enumerate(sets):
                out[k, j, c * w:(c + 1) * w] = torch.stack([z[a, b, c * w:(c + 1) * w] for a, b in s]).mean(0)
    return out


def _materialise(f, K):
    d, r, c, g = f
    return torch.cat([0.5 * (d[:, None] + d[None, :]), r[:, None].expand(K, K, -1), c[None, :].expand(K, K, -1),
                      g[None, None].expand(K, K, -1)], dim=-1)


def _np(t):
    return t.detach().numpy()


@pytest.mark.parametrize("gradients", [False, True], ids=["inference", "training"])
def test_factored_sinrnet_layer_is_eq_11_on_the_categories(gradients):
    """Both forms of the layers: one tensor split into views at inference, separate blocks
    while gradients are recorded."""
    torch.manual_seed(0)
    K, w = 5, 3
    net = gnn.build_network(width=w, layers=2).double()
    x = torch.randn(K, K, 2, dtype=torch.float64)
    first = net.rounds[0].phi                                     # dense input
    with torch.set_grad_enabled(gradients):
        f = first(x)
        z = torch.relu(first.full(x))
        np.testing.assert_allclose(_np(_materialise(f, K)), _np(_dense_category_means(z, K)), atol=1e-12)
        later = net.rounds[1].phi                                 # factored input
        f2 = later(f)
        dense_in = _materialise(f, K)
        weight = torch.cat([later.wd.weight, later.wr.weight, later.wc.weight, later.wg.weight], dim=1)
        z2 = torch.relu(dense_in @ weight.T + later.wg.bias)
        np.testing.assert_allclose(_np(_materialise(f2, K)), _np(_dense_category_means(z2, K)), atol=1e-12)
        gamma = net.rounds[0].gamma                               # dense input and a factored message
        message = tuple(torch.randn(t.shape, dtype=torch.float64) for t in f)
        z3 = torch.relu(gamma.full(torch.cat([x, _materialise(message, K)], dim=-1)))
        np.testing.assert_allclose(_np(_materialise(gamma(x, message), K)), _np(_dense_category_means(z3, K)),
                                   atol=1e-12)


def test_network_is_equivariant_to_ues_and_aps():
    torch.manual_seed(1)
    net = gnn.build_network().double()
    inst = PROBLEM.sample("10ap-10ue", 3, seed=5)
    g = inst.gain_over_noise
    gen = np.random.default_rng(2)
    pu, pa = gen.permutation(10), gen.permutation(10)
    g_perm = g[:, pa][:, :, pu][:, :, :, pu]                     # same UE order for receivers and beams
    stats = _stats(inst)
    with torch.no_grad():
        za, zw = net(gnn.network_inputs(g, stats, torch.float64))
        za_p, zw_p = net(gnn.network_inputs(g_perm, stats, torch.float64))
    np.testing.assert_allclose(za_p.numpy(), za[:, pu][:, :, pa].numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(zw_p.numpy(), zw[:, pu][:, :, pa].numpy(), rtol=1e-9, atol=1e-12)
    assert za.std() > 1e-3   # the outputs differ across links, so the check has teeth


def test_one_network_serves_every_size():
    net = gnn.build_network()
    for scenario in ("tiny", *gnn.TABLE_II):
        inst = PROBLEM.sample(scenario, 2, seed=0)
        with torch.no_grad():
            za, zw = net(gnn.network_inputs(inst.gain_over_noise, _stats(inst)))
        assert za.shape == zw.shape == (2, inst.params.n_ues, inst.params.n_aps)


def _solver_with_bias(tmp_path, bias_a):
    """A checkpoint whose readout puts every link at ``z_a = bias_a``."""
    net = gnn.build_network(width=4, layers=2)
    with torch.no_grad():
        net.readout.weight.zero_()
        net.readout.bias.fill_(bias_a)
    path = tmp_path / f"b{bias_a}.pt"
    from cfbench.learning import save_checkpoint
    save_checkpoint(path, {"model": {"width": 4, "layers": 2}, "state_dict": net.state_dict(),
                           "input": {"mean": 2.0, "std": 1.0}})
    solver = gnn.SumEEGnn(weights=str(path))
    solver.setup(PROBLEM, "5ap-10ue")
    return solver


def test_budget_respected_and_exact_zeros_possible(tmp_path):
    inst = PROBLEM.sample("5ap-10ue", 4, seed=9)
    off = _solver_with_bias(tmp_path, -1.0).solve(inst)["power_w"]
    assert (off == 0.0).all()                                    # ReLU: exact zeros
    full = _solver_with_bias(tmp_path, 5.0).solve(inst)["power_w"]   # a = 5 P_max / K per link: over budget
    load = full.sum(axis=1)
    assert load.max() <= inst.params.ap_power_budget_w and np.allclose(load, inst.params.ap_power_budget_w)
    assert PROBLEM.evaluate(inst, {"power_w": full}).feasible.all()


def test_leaky_relu_grad_keeps_the_forward_and_lets_off_links_learn():
    p = PROBLEM.scenario_params("tiny")
    z = torch.tensor([[-1.0, 0.5]], requires_grad=True)
    exact, _ = gnn.support(z, torch.zeros(1, 2), p)
    leaky, _ = gnn.support(z, torch.zeros(1, 2), p, leak=0.1)
    assert torch.equal(exact, leaky) and exact[0, 0].item() == 0.0
    (grad,) = torch.autograd.grad(leaky.sum(), z)
    scale = p.ap_power_budget_w / p.n_ues
    np.testing.assert_allclose(grad.numpy(), [[0.1 * scale, scale]])


def test_kappa_follows_eq_8():
    h, dk = 3, 0.1
    assert gnn.kappa_update(0.5, [1.0, 1.0, 1.0], h, dk) == 0.0                  # i <= h: kappa = 0
    assert gnn.kappa_update(0.5, [1.0, 1.0, 1.0, 1.0], h, dk) == pytest.approx(0.6)   # support not shrinking
    assert gnn.kappa_update(0.5, [3.0, 3.0, 3.0, 1.0], h, dk) == pytest.approx(0.45)  # shrinking: - dk / 2
    assert gnn.kappa_update(0.02, [3.0, 3.0, 3.0, 1.0], h, dk) == 0.0            # never below 0


@pytest.mark.parametrize("mode, relu_grad", [(m, "exact") for m in gnn.MODES] + [("paper", "leaky")])
def test_short_training_on_tiny_raises_the_objective(tmp_path, mode, relu_grad):
    torch.set_num_threads(1)
    path = gnn.train(PROBLEM, ["tiny"], seed=0, out=tmp_path / "w.pt", samples=256, validation=32, epochs=4,
                     batch_size=32, mode=mode, h=5, relu_grad=relu_grad)
    ckpt = load_checkpoint(path)
    history = ckpt["training"]["history"]
    assert history[-1]["val_ee_tiny"] > history[0]["val_ee_tiny"]
    assert history[-1]["train_objective"] > history[1]["train_objective"]
    assert ckpt["trained_on"]["instance_seed"] == gnn.TRAIN_SEED_OFFSET
    if mode == "deterministic":
        assert all(h["support"] == 0.0 for h in history[1:])
    if mode != "paper":
        assert all(h["kappa"] == 0.0 for h in history[1:])


def test_relative_balance_weighs_every_configuration_by_its_starting_ee():
    assert gnn.balance_weights("none", [5.0, 10.0]) == [1.0, 1.0]
    w = gnn.balance_weights("relative", [5.0, 10.0, 15.0])
    np.testing.assert_allclose(np.multiply(w, [5.0, 10.0, 15.0]), 10.0)   # weight x EE: the same everywhere
    with pytest.raises(CfbenchError, match=r"positive validation EE on every configuration \(got \[5.0, 0.0\]\)"):
        gnn.balance_weights("relative", [5.0, 0.0])


def test_bad_training_options_fail_in_one_line(tmp_path):
    with pytest.raises(CfbenchError, match="unknown option 'bogus' of gnn training"):
        gnn.train(PROBLEM, ["tiny"], bogus=1)
    with pytest.raises(CfbenchError, match="mode must be one of paper, no-kappa, deterministic"):
        gnn.train(PROBLEM, ["tiny"], mode="stochastic")
    with pytest.raises(CfbenchError, match="relu_grad must be one of exact, leaky"):
        gnn.train(PROBLEM, ["tiny"], relu_grad="soft")
    with pytest.raises(CfbenchError, match="balance must be one of none, relative, got 'equal'"):
        gnn.train(PROBLEM, ["tiny"], balance="equal")
    bad = run_cli("train", "--solver", "gnn", "--problem", "sum-ee", "--scenario", "tiny", "--set", "mode=nope",
                  "--out", str(tmp_path / "w.pt"))
    assert bad.returncode != 0 and "mode must be one of" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    bad = run_cli("train", "--solver", "gnn", "--problem", "sum-ee", "--scenario", "tiny", "--set", "validation=0",
                  "--out", str(tmp_path / "w.pt"))
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "validation" in bad.stderr


@pytest.mark.parametrize("name", (gnn.SHIPPED_WEIGHTS, *gnn.SHIPPED_WEIGHTS_BY_SCENARIO.values(), *ABLATIONS))
def test_shipped_weights_load_safely_and_are_small(name):
    path = gnn.WEIGHTS_DIR / name
    assert path.stat().st_size < 5 * 2**20
    torch.load(path, map_location="cpu", weights_only=True)          # plain tensors and data only
    ckpt = load_checkpoint(path)
    fine_tuned_on = [s for s, n in gnn.SHIPPED_WEIGHTS_BY_SCENARIO.items() if n == name]
    assert ckpt["trained_on"]["scenarios"] == (fine_tuned_on or list(gnn.TABLE_II))
    assert ckpt["trained_on"]["instance_seed"] >= gnn.TRAIN_SEED_OFFSET    # disjoint from benchmark seeds
    gnn.network_from_checkpoint(ckpt)


def test_default_weights_are_the_configurations_fine_tune_else_the_joint_model(tmp_path):
    weights = {s: gnn.SumEEGnn.artifacts(s, {"weights": None})["weights"] for s in (*gnn.TABLE_II, "tiny")}
    assert weights["tiny"] == SHIPPED
    joint = weights["tiny"].read_bytes()
    for s in gnn.TABLE_II:
        assert weights[s] == gnn.WEIGHTS_DIR / f"gnn-sum-ee-{s}.pt"
        init = REPOSITORY / load_checkpoint(weights[s])["training"]["init"]     # where its training started:
        assert init.read_bytes() == joint                                        # the joint model, byte for byte
    assert gnn.SumEEGnn.artifacts("5ap-10ue", {"weights": str(tmp_path / "w.pt")})["weights"] == tmp_path / "w.pt"


@pytest.mark.parametrize("precision", gnn.PRECISIONS)
def test_solver_conforms_on_tiny(precision):
    check_solver(gnn.SumEEGnn, problem="sum-ee", scenario="tiny", options={"precision": precision})


@pytest.mark.parametrize("scenario", gnn.TABLE_II)
def test_float32_gives_float64s_links_and_objective_to_1e_5(scenario):
    """``precision=float32`` runs only the network in float32: the same links on (exact zeros), powers
    and objective within float32's resolution of the float64 ones (measured: EE within 8.3e-7)."""
    inst = PROBLEM.sample(scenario, 16, seed=4)
    powers = {}
    for precision in gnn.PRECISIONS:
        solver = gnn.SumEEGnn(precision=precision)
        solver.setup(PROBLEM, scenario)
        powers[precision] = solver.solve(inst)["power_w"]
    p64, p32 = powers["float64"], powers["float32"]
    assert p32.dtype == np.float64 and not np.array_equal(p32, p64)     # a different computation
    np.testing.assert_array_equal(p32 == 0.0, p64 == 0.0)
    np.testing.assert_allclose(p32, p64, rtol=1e-4, atol=1e-6 * inst.params.ap_power_budget_w)
    ee = {k: PROBLEM.evaluate(inst, {"power_w": v}) for k, v in powers.items()}
    assert ee["float32"].feasible.all()
    np.testing.assert_allclose(ee["float32"].objective, ee["float64"].objective, rtol=1e-5)


def test_compiled_network_gives_the_eager_powers_and_compiles_only_in_setup():
    """``compile=true`` (torch.compile, C++ kernels): the same powers as the eager network (float64, a
    batch and a single instance; the same links on) and no graph compiled after ``setup``, so no timed
    solve pays for compilation. A cold compile of the two graphs takes one to two minutes here."""
    from torch._dynamo.utils import counters

    inst = PROBLEM.sample("tiny", 5, seed=6)
    eager = gnn.SumEEGnn()
    eager.setup(PROBLEM, "tiny")
    compiled = gnn.SumEEGnn(compile=True)
    compiled.setup(PROBLEM, "tiny")
    assert compiled.network is not eager.network and hasattr(compiled.network, "_orig_mod")
    graphs = counters["stats"]["unique_graphs"]
    batch, ref = compiled.solve(inst)["power_w"], eager.solve(inst)["power_w"]
    single = compiled.solve(inst[2])["power_w"]
    assert counters["stats"]["unique_graphs"] == graphs
    np.testing.assert_array_equal(batch == 0.0, ref == 0.0)
    np.testing.assert_allclose(batch, ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(single[0], ref[2], rtol=1e-12, atol=1e-15)


def test_compile_without_a_working_compiler_fails_in_one_line(monkeypatch):
    assert_compile_fails_in_one_line(monkeypatch, gnn.SumEEGnn, PROBLEM, "tiny")


def test_shipped_weights_switch_links_off_and_stay_in_budget():
    inst = PROBLEM.sample("15ap-15ue", 8, seed=1)
    solver = gnn.SumEEGnn()
    solver.setup(PROBLEM, "15ap-15ue")
    power = solver.solve(inst)["power_w"]
    assert (power == 0.0).mean() > 0.5
    assert PROBLEM.evaluate(inst, {"power_w": power}).feasible.all()


def test_pruning_ues_only_zeroes_whole_rows_and_never_lowers_the_objective():
    inst = PROBLEM.sample("5ap-10ue", 16, seed=2)
    plain, pruned = gnn.SumEEGnn(), gnn.SumEEGnn(prune="ues")
    plain.setup(PROBLEM, "5ap-10ue")
    pruned.setup(PROBLEM, "5ap-10ue")
    before, after = plain.solve(inst)["power_w"], pruned.solve(inst)["power_w"]
    changed = np.any(before != after, axis=-1)                            # (n, K): rows the pruning touched
    assert changed.any()                                                  # it does act on the shipped model
    assert np.all(after[changed] == 0.0) and np.array_equal(after[~changed], before[~changed])
    s_before, s_after = PROBLEM.evaluate(inst, {"power_w": before}), PROBLEM.evaluate(inst, {"power_w": after})
    assert s_after.feasible.all()
    assert np.all(s_after.objective >= s_before.objective) and s_after.objective.mean() > s_before.objective.mean()
    one_by_one = np.concatenate([pruned.solve(inst[i:i + 1])["power_w"] for i in range(len(inst))])
    # a batch changes nothing: the same rows switched off, the powers to float64 rounding (the BLAS
    # blocks a batch and one instance differently on some CPUs: AMD EPYC, 5e-15 relative)
    np.testing.assert_array_equal(one_by_one == 0.0, after == 0.0)
    np.testing.assert_allclose(one_by_one, after, rtol=1e-12, atol=0.0)
    # no single UE left on can be switched off with a gain: a local optimum of the move
    for i in range(4):
        for k in np.flatnonzero(after[i].sum(-1) > 0):
            trial = after[i:i + 1].copy()
            trial[0, k] = 0.0
            assert PROBLEM.evaluate(inst[i:i + 1], {"power_w": trial}).objective[0] <= s_after.objective[i] * (1 + 1e-12)


@functools.lru_cache(maxsize=None)
def _gnn_and_sca(scenario, n=8):
    """Shipped gnn and converged SCA on held-out seed 1, each timed one instance at a time."""
    torch.set_num_threads(1)
    inst = PROBLEM.sample(scenario, n, seed=1)
    net, sca = gnn.SumEEGnn(), SCADinkelbach()
    net.setup(PROBLEM, scenario)
    sca.setup(PROBLEM, scenario)
    net.solve(inst[:1])
    t0 = time.perf_counter()
    net_power = np.concatenate([net.solve(inst[i:i + 1])["power_w"] for i in range(n)])
    t_net = time.perf_counter() - t0
    t0 = time.perf_counter()
    sca_power = np.concatenate([sca.solve(inst[i:i + 1]).decision["power_w"] for i in range(n)])
    t_sca = time.perf_counter() - t0
    return (PROBLEM.evaluate(inst, {"power_w": net_power}), PROBLEM.evaluate(inst, {"power_w": sca_power}),
            t_net, t_sca)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", gnn.TABLE_II)
def test_shipped_weights_feasible_fast_and_between_nearest_ap_and_sca(scenario):
    """What the shipped weights do reach (README): all feasible, >= 20x faster than SCA per
    instance, and at least 85 % of SCA's mean EE (measured 91.1 / 93.7 / 93.4 % on the 1,024
    seed-1 instances of the README's Table II, 93.0 / 93.8 / 95.0 % on these 8)."""
    s_net, s_sca, t_net, t_sca = _gnn_and_sca(scenario)
    assert s_net.feasible.all()
    assert t_sca >= 20 * t_net
    assert s_net.objective.mean() >= 0.85 * s_sca.objective.mean(), (s_net.objective.mean(), s_sca.objective.mean())


#: seed -> (folder of committed converged-SCA runs per configuration, their instance count): the README's
#: Table II (seed 1) and the second held-out seed (seed 2); training uses seeds from TRAIN_SEED_OFFSET
HELD_OUT_RUNS = {1: (REPOSITORY / "results" / "reference" / "sum-ee" / "table2-1024", 1024),
                 2: (REPOSITORY / "results" / "reference" / "sum-ee" / "gnn" / "seed2", 256)}


def _stored_sca(scenario, seed):
    """The converged SCA's rows of a committed run on held-out instances."""
    folder, n = HELD_OUT_RUNS[seed]
    runs = pd.read_parquet(folder / scenario / "results.parquet")
    sca = runs[runs.solver == "sca"].sort_values("instance")
    assert list(sca.instance) == list(range(n)) and set(sca.seed) == {seed} and (sca.status == "ok").all()
    return sca


@pytest.mark.parametrize("seed", HELD_OUT_RUNS)
@pytest.mark.parametrize("scenario", gnn.TABLE_II)
def test_quality_bar_90_percent_of_sca(scenario, seed):
    """The bar on held-out instances (the README's 1,024 of seed 1 and 256 of seed 2): the shipped gnn,
    run and judged here, against the committed converged-SCA run on the same instances. That run is
    checked first: its decisions re-scored by the evaluator give its objectives, and SCA rerun here on
    two of them gives the same."""
    torch.set_num_threads(1)
    sca = _stored_sca(scenario, seed)
    n = len(sca)
    inst = PROBLEM.sample(scenario, n, seed=seed)
    (field,) = PROBLEM.decision_fields(scenario)                         # the runner stores it flattened
    stored_power = np.stack([np.asarray(x, dtype=float) for x in sca.decision_power_w]).reshape(n, *field.shape)
    s_sca = PROBLEM.evaluate(inst, {"power_w": stored_power})
    np.testing.assert_allclose(s_sca.objective, sca.objective.to_numpy(), rtol=1e-9)
    assert s_sca.feasible.all()
    rerun = SCADinkelbach()
    rerun.setup(PROBLEM, scenario)
    again = PROBLEM.evaluate(inst[:2], rerun.solve(inst[:2]).decision)
    np.testing.assert_allclose(again.objective, s_sca.objective[:2], rtol=1e-6)

    net = gnn.SumEEGnn()
    net.setup(PROBLEM, scenario)
    s_net = PROBLEM.evaluate(inst, net.solve(inst))
    assert s_net.feasible.all()
    assert s_net.objective.mean() >= 0.9 * s_sca.objective.mean(), (s_net.objective.mean(), s_sca.objective.mean())


def test_registered_through_entry_points():
    from cfbench.registry import build_registry

    assert "gnn" in set(build_registry().solvers_for("sum-ee"))
    assert [c.name for c in gnn.cfbench_solvers()] == ["gnn"]
    assert gnn.SumEEGnn.kind == "learned" and gnn.SumEEGnn.solves_batches
