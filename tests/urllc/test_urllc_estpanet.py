"""U-ESTPANet: the differentiable objective equals the evaluator, the network's
symmetries and output range, training lowers the loss, and the shipped weights
load safely and beat the baselines."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cfbench.api import CfbenchError  # noqa: E402
from cfbench.learning import load_checkpoint  # noqa: E402
from cfbench.plugins import urllc_baselines as bl  # noqa: E402
from cfbench.plugins import urllc_estpanet as est  # noqa: E402
from cfbench.problems import urllc as u  # noqa: E402
from cfbench.problems import urllc_torch as ut  # noqa: E402
from cfbench.testing import check_solver  # noqa: E402

from conftest import run_cli  # noqa: E402

PROBLEM = u.Urllc()


def test_torch_objective_equals_the_evaluator():
    inst = PROBLEM.sample("stress-k20", 4, seed=3)
    rng = np.random.default_rng(0)
    power = np.exp(rng.uniform(np.log(1e-3), 0.0, size=(4, 20)))
    power[0] = 1e-3  # p_min everywhere: several terminals above eps_QoS on stress
    score = PROBLEM.evaluate(inst, {"power_w": power})
    reference = PROBLEM.terms(inst, power)
    coefficients = ut.coefficient_tensors(u.SinrCoefficients.from_instances(inst))
    p = torch.as_tensor(power)
    sinr = ut.sinr(coefficients, p, inst.params.n_pilot)
    terms = ut.tradeoff_terms(inst.params, sinr, p, torch.as_tensor(inst.aerial))
    np.testing.assert_allclose(sinr.numpy(), reference["sinr"], rtol=1e-10)
    np.testing.assert_allclose(terms["eps"].numpy(), reference["eps"], rtol=1e-8, atol=1e-300)
    np.testing.assert_allclose(terms["rate"].numpy(), reference["rate"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(terms["omega"].numpy(), score.objective, rtol=1e-10)
    assert score.metrics["n_violating_eps"][0] > 0  # the check covers violating terminals too


def test_violation_term_is_the_mean_excess_over_violating_terminals():
    eps = torch.tensor([[1e-6, 3e-5, 1e-3, 1e-5], [1e-7, 1e-6, 1e-8, 1e-9]], dtype=torch.float64)
    got = ut.violation_mean(eps, 1e-5).numpy()
    np.testing.assert_allclose(got, [((3e-5 - 1e-5) + (1e-3 - 1e-5)) / 2, 0.0])


def test_inputs_are_instance_normalised_channels_plus_log_beta():
    inst = PROBLEM.sample("tiny", 2, seed=1)
    x, aerial = est.network_inputs(inst, log10_beta_mean=1.0, log10_beta_std=2.0)
    n, K, M, L = 2, 4, 4, 2
    assert x.shape == (n, K, M, 2 * L + 1) and x.dtype == torch.float32
    channels = x[..., :-1].double()
    np.testing.assert_allclose(channels.mean(-1).numpy(), 0.0, atol=1e-5)       # per AP row
    np.testing.assert_allclose(channels.var(-1, unbiased=False).numpy(), 1.0, rtol=1e-3)
    expected = (np.log10(np.transpose(inst.beta, (0, 2, 1))) - 1.0) / 2.0
    np.testing.assert_allclose(x[..., -1].numpy(), expected, rtol=1e-5)
    np.testing.assert_array_equal(aerial.numpy(), inst.aerial)
    # against torch's InstanceNorm (the APs as channels) on the features in the trained order
    h = np.transpose(inst.channel_estimate, (0, 2, 1, 3))
    raw = torch.as_tensor(np.concatenate([h.real, h.imag], -1), dtype=torch.float32).reshape(n * K, M, 2 * L)
    expected_channels = torch.nn.functional.instance_norm(raw).reshape(n, K, M, 2 * L)
    np.testing.assert_allclose(x[..., :-1].numpy(), expected_channels.numpy(), rtol=1e-5, atol=1e-5)
    # the interleaved layout holds the same features, its columns permuted as ``interleaved_columns`` says
    xi, _ = est.network_inputs(inst, log10_beta_mean=1.0, log10_beta_std=2.0, interleaved=True)
    columns = est.interleaved_columns(L)
    assert sorted(columns) == list(range(2 * L + 1)) and columns != list(range(2 * L + 1))
    np.testing.assert_array_equal(xi.numpy(), x[..., columns].numpy())


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    net = est.build_network(in_features=9, d_cnn=16, transformer_layers=2)
    net.eval()
    return net


def test_network_is_equivariant_over_terminals_and_invariant_over_aps(network):
    inst = PROBLEM.sample("stress-k20", 2, seed=5)
    x, aerial = est.network_inputs(inst, 0.0, 1.0)
    with torch.no_grad():
        out = network(x, aerial)
        perm = torch.randperm(20, generator=torch.Generator().manual_seed(1))
        moved = network(x[:, perm], aerial[:, perm])
        np.testing.assert_allclose(moved.numpy(), out[:, perm].numpy(), rtol=1e-4, atol=1e-6)
        ap_perm = torch.randperm(16, generator=torch.Generator().manual_seed(2))
        np.testing.assert_allclose(network(x[:, :, ap_perm], aerial).numpy(), out.numpy(), rtol=1e-4, atol=1e-6)
        # the two streams are different functions: relabelling a GT as an AT changes its power
        flipped = aerial.clone()
        flipped[:, 0] = ~flipped[:, 0]
        assert not torch.allclose(network(x, flipped)[:, 0], out[:, 0])


def test_inference_path_equals_the_forward_pass_and_bfloat16_stays_close():
    """``predict`` (blocks, fused products) computes ``forward``; small blocks split the
    terminals across several blocks, so the block boundaries are exercised."""
    solver = est.EstpaNet()
    solver.setup(PROBLEM, "k10")
    inst = PROBLEM.sample("k10", 5, seed=71)
    stats = solver.checkpoint["input"]
    x, aerial = est.network_inputs(inst, stats["log10_beta_mean"], stats["log10_beta_std"])
    with torch.inference_mode():
        reference = solver.network(x, aerial)
        xi, _ = est.network_inputs(inst, stats["log10_beta_mean"], stats["log10_beta_std"], interleaved=True)
        for block_rows in (64, 1000, est.INFERENCE_BLOCK_ROWS):
            fast = solver.network.predict(x, aerial, block_rows=block_rows)
            np.testing.assert_allclose(fast.numpy(), reference.numpy(), rtol=1e-6, atol=1e-6)
            fast = solver.network.predict(xi, aerial, block_rows=block_rows, interleaved=True)
            np.testing.assert_allclose(fast.numpy(), reference.numpy(), rtol=1e-6, atol=1e-6)
        low = solver.network.predict(x, aerial, torch.bfloat16)
    assert low.dtype == torch.float32
    np.testing.assert_allclose(low.numpy(), reference.numpy(), atol=2e-3)
    assert not torch.equal(low, reference)  # the option does change the arithmetic
    # the solver's chunked solve gives the same powers as one forward pass
    p = inst.params
    np.testing.assert_allclose(solver.solve(inst)["power_w"],
                               est.power_from_output(reference.double().numpy(), p.p_min_w, p.p_max_w),
                               rtol=1e-6)


def test_fused_linear_relu_equals_addmm_then_relu(monkeypatch):
    x, w, b = torch.randn(50, 9), torch.randn(16, 9), torch.randn(16)
    expected = torch.relu(x @ w.t() + b)
    np.testing.assert_allclose(est.linear_relu(x, w, b).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(est, "_FUSED_LINEAR_RELU", False)
    np.testing.assert_allclose(est.linear_relu(x, w, b).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_precision_option_is_checked():
    with pytest.raises(CfbenchError, match="precision.*float32, bfloat16.*'half'"):
        est.EstpaNet(precision="half")


def test_power_mapping_is_eq_18():
    p = est.power_from_output(torch.tensor([0.0, 0.5, 1.0]), 0.001, 1.0)
    np.testing.assert_allclose(p.numpy(), [0.001, 0.5005, 1.0])


def test_training_lowers_the_loss(tmp_path):
    history = []
    path = est.train(PROBLEM, ["tiny"], seed=3, out=tmp_path / "w.pt", report=history.append,
                     epochs=4, samples=80, d_cnn=32)
    assert history[-1]["epoch"] == 4
    best = min(h["val_loss"] for h in history[1:])
    assert best < history[0]["val_loss"]
    checkpoint = load_checkpoint(path)
    assert checkpoint["trained_on"]["scenarios"] == ["tiny"]
    assert checkpoint["training"]["n_train_per_scenario"] == 72
    # training is reproducible from its seed
    again = est.train(PROBLEM, ["tiny"], seed=3, out=tmp_path / "w2.pt", epochs=1, samples=40, d_cnn=32)
    twice = est.train(PROBLEM, ["tiny"], seed=3, out=tmp_path / "w3.pt", epochs=1, samples=40, d_cnn=32)
    a, b = load_checkpoint(again)["state_dict"], load_checkpoint(twice)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_rejects_unknown_options_and_mixed_shapes():
    with pytest.raises(CfbenchError, match="unknown option .epochz. of estpanet training"):
        est.train(PROBLEM, ["tiny"], epochz=3)
    with pytest.raises(CfbenchError, match="differ in M, L"):
        est.train(PROBLEM, ["tiny", "k10"], epochs=1)


def test_every_shipped_checkpoint_loads_safely_and_fits_its_scenarios():
    for scenario, filename in est.SHIPPED_WEIGHTS.items():
        checkpoint = load_checkpoint(est.WEIGHTS_DIR / filename)
        assert scenario in checkpoint["trained_on"]["scenarios"] or (
            scenario == "alpha0.25" and "k50" in checkpoint["trained_on"]["scenarios"])
        est.network_from_checkpoint(checkpoint, PROBLEM.scenario_params(scenario))
    assert set(est.SHIPPED_WEIGHTS) == set(PROBLEM.scenarios)
    for scenario, filename in est.NARROW_WEIGHTS.items():
        checkpoint = load_checkpoint(est.WEIGHTS_DIR / filename)
        assert checkpoint["model"]["d_cnn"] < 128    # narrower than the paper's CNN
        est.network_from_checkpoint(checkpoint, PROBLEM.scenario_params(scenario))


def test_narrow_option_picks_the_narrow_weights_and_names_where_they_exist():
    solver = est.EstpaNet(cnn="narrow")
    solver.setup(PROBLEM, "k50")
    assert solver.checkpoint["model"]["d_cnn"] < 128
    with pytest.raises(CfbenchError, match="no narrow estpanet weights for scenario 'stress-k20'; shipped for: k10,"):
        est.EstpaNet(cnn="narrow").setup(PROBLEM, "stress-k20")
    with pytest.raises(CfbenchError, match="cnn.*paper, narrow.*'wide'"):
        est.EstpaNet(cnn="wide")


def test_a_checkpoint_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": np.random.default_rng(0)}, path)  # an arbitrary pickled object
    with pytest.raises(CfbenchError, match="refusing to load") as refused:
        load_checkpoint(path)
    assert "numpy.random" in str(refused.value) and "GLOBAL" in str(refused.value)  # names what was refused


def test_solver_conforms_and_beats_p_max_with_shipped_weights_on_tiny():
    check_solver(est.EstpaNet, problem="urllc", scenario="tiny")
    inst = PROBLEM.sample("tiny", 64, seed=0)
    scores = {}
    for cls in (est.EstpaNet, bl.PMax, bl.BestUniformPower):
        solver = cls()
        solver.setup(PROBLEM, "tiny")
        scores[cls.name] = PROBLEM.evaluate(inst, solver.solve(inst))
    omega = {k: s.objective[s.feasible].mean() for k, s in scores.items()}
    assert scores["estpanet"].feasible.mean() >= scores["p-max"].feasible.mean()
    assert omega["estpanet"] > omega["p-max"]


def test_missing_weights_and_wrong_shapes_are_clear_errors(tmp_path):
    solver = est.EstpaNet(weights=tmp_path / "none.pt")
    with pytest.raises(CfbenchError, match="no weight file"):
        solver.setup(PROBLEM, "tiny")
    solver = est.EstpaNet(weights=est.WEIGHTS_DIR / est.SHIPPED_WEIGHTS["tiny"])
    with pytest.raises(CfbenchError, match="trained for M = 4 APs x L = 2"):
        solver.setup(PROBLEM, "k10")


def test_train_cli_errors_are_one_line():
    res = run_cli("train", "--solver", "sca", "--problem", "urllc", "--scenario", "tiny")
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0
    assert "solver 'sca' is not trainable; trainable for 'urllc': estpanet" in res.stderr
    res = run_cli("train", "--solver", "estpanet", "--problem", "urllc", "--scenario", "k10,nope")
    assert res.returncode == 2 and "unknown scenario 'nope'" in res.stderr


def test_train_cli_writes_a_checkpoint(tmp_path):
    out = tmp_path / "cli.pt"
    res = run_cli("train", "--solver", "estpanet", "--problem", "urllc", "--scenario", "tiny", "--epochs", "1",
                  "--samples", "20", "--set", "d_cnn=8", "--threads", "1", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert f"weights: {out}" in res.stdout
    assert load_checkpoint(out)["model"]["d_cnn"] == 8


def _scores(scenario, n, solvers, seed=0):
    inst = PROBLEM.sample(scenario, n, seed=seed)
    out = {}
    for cls in solvers:
        solver = cls()
        solver.setup(PROBLEM, scenario)
        out[cls.name] = PROBLEM.evaluate(inst, solver.solve(inst))
    return out


@pytest.mark.parametrize("scenario", ["stress-k20", "stress-k60"])
def test_shipped_weights_beat_the_baselines_where_reliability_binds(scenario):
    """The shipped stress model, on test instances (seed 0; training used another stream)."""
    scores = _scores(scenario, 24, (est.EstpaNet, bl.PMax, bl.BestUniformPower))
    violating = {k: s.metrics["n_violating_eps"].mean() for k, s in scores.items()}
    assert violating["estpanet"] < violating["best-uniform"]
    feasible = {k: s.feasible.mean() for k, s in scores.items()}
    assert feasible["estpanet"] >= feasible["best-uniform"]
    est_s = scores["estpanet"]
    for base in ("p-max", "best-uniform"):
        both = est_s.feasible & scores[base].feasible
        if both.any():  # paired, on the instances both solve
            assert est_s.objective[both].mean() > scores[base].objective[both].mean()


@pytest.mark.parametrize("scenario", ["k10", "k60", "alpha0.1", "alpha0.4"])
def test_shipped_weights_beat_p_max_and_best_uniform_on_the_paper_settings(scenario):
    scores = _scores(scenario, 8, (est.EstpaNet, bl.PMax, bl.BestUniformPower))
    omega = {k: s.objective[s.feasible].mean() for k, s in scores.items()}
    assert scores["estpanet"].feasible.all()
    assert omega["estpanet"] > omega["best-uniform"] > omega["p-max"]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["stress-k40", "k30"])
def test_quality_bars_against_sca(scenario):
    """Issue bars on 32 instances (the README's 256-instance runs are the reference)."""
    from cfbench.plugins import urllc_sca

    inst = PROBLEM.sample(scenario, 32, seed=0)
    decisions = {}
    for cls in (est.EstpaNet, urllc_sca.SCA, bl.PMax, bl.BestUniformPower):
        solver = cls()
        solver.setup(PROBLEM, scenario)
        out = solver.solve(inst)
        decisions[cls.name] = out.decision if hasattr(out, "decision") else out
    scores = {k: PROBLEM.evaluate(inst, d) for k, d in decisions.items()}
    omega = {k: s.objective[s.feasible].mean() for k, s in scores.items()}
    for s in ("sca", "estpanet"):
        assert omega[s] > max(omega["p-max"], omega["best-uniform"])
    served = {k: PROBLEM.terms(inst, decisions[k]["power_w"])["eps"] <= 1e-5 * (1 + 1e-6) for k in ("sca", "estpanet")}
    assert (served["estpanet"] & served["sca"]).sum() >= 0.99 * served["sca"].sum()
