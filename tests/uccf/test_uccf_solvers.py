"""``uccf`` solvers: the closed-form baselines (valid decisions, equal SINRs, DCC beats full
power), the cluster helpers, the ELU-CosFormer (torch closed forms equal the judge's, UE
permutation equivariance of every attention variant, shipped weights: quality bar, tau_p,
speed against ``cf-maxmin``) and the conformance kit."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from cfbench import Instances
from cfbench.plugins import uccf_baselines as bl
from cfbench.problems import uccf_model as um
from cfbench.problems.uccf import Uccf
from cfbench.runner import limit_threads
from cfbench.testing import check_solver

PROB = Uccf()
UE_AXIS = {"beta": 2, "gamma": 2, "pilot": 1, "master_ap": 1, "dcc_clusters": 2, "ue_xy_m": 1, "distance_m": 2}


def _solve(cls, instances, **options):
    s = cls(**options)
    s.setup(PROB, instances.scenario)
    return s.solve(instances)


@pytest.fixture(scope="module")
def k20() -> Instances:
    return PROB.sample("mr-k20", 12, seed=3)


# --- baselines -------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [bl.CfMaxMin, bl.DccMaxMin, bl.StrongestQMaxMin, bl.FullPower])
def test_baselines_pass_the_conformance_kit(cls):
    check_solver(cls, problem="uccf", scenario="tiny")


@pytest.mark.parametrize("cls", [bl.CfMaxMin, bl.DccMaxMin, bl.StrongestQMaxMin])
def test_closed_form_solvers_equalise_the_sinrs(cls, k20):
    d = _solve(cls, k20)
    assert PROB.check_decision(k20, d) is None
    t = PROB.performance(k20, d["clusters"], d["ul_power_mw"], d["dl_power_mw"])
    for link in ("ul_sinr", "dl_sinr"):
        np.testing.assert_allclose(t[link], t[link][:, :1] * np.ones_like(t[link]), rtol=1e-6)
    # the binding AP spends its whole DL budget, none spends more
    np.testing.assert_allclose(t["ap_power_mw"].max(axis=1), k20.params.rho_max_mw, rtol=1e-8)


def test_feasibility_of_the_baselines(k20):
    cf = PROB.evaluate(k20, _solve(bl.CfMaxMin, k20))
    assert not cf.feasible.any() and np.all(cf.violation["ap_load_ues"] > 0)   # K = 20 > tau_p: by design
    k10 = PROB.sample("mr-k10", 4, seed=3)
    assert PROB.evaluate(k10, _solve(bl.CfMaxMin, k10)).feasible.all()         # K = tau_p: allowed
    for cls in (bl.DccMaxMin, bl.StrongestQMaxMin, bl.FullPower):
        assert PROB.evaluate(k20, _solve(cls, k20)).feasible.all(), cls.name


def test_dcc_maxmin_beats_full_power_and_cf_beats_dcc_on_mr_k20():
    inst = PROB.sample("mr-k20", 40, seed=1)
    mean = {cls.name: PROB.evaluate(inst, _solve(cls, inst)).objective.mean()
            for cls in (bl.CfMaxMin, bl.DccMaxMin, bl.FullPower)}
    assert mean["dcc-maxmin"] > 1.5 * mean["full-power"]
    assert mean["cf-maxmin"] > mean["dcc-maxmin"]


def test_full_power_uses_p_max_and_fills_the_most_loaded_ap(k20):
    d = _solve(bl.FullPower, k20)
    np.testing.assert_array_equal(d["ul_power_mw"], k20.params.p_max_mw)
    np.testing.assert_array_equal(d["clusters"], k20.dcc_clusters)
    ap = um.uatf_coefficients(k20, d["clusters"]).dl_ap_power_mw(d["dl_power_mw"])
    np.testing.assert_allclose(ap.max(axis=1), k20.params.rho_max_mw, rtol=1e-10)


def test_strongest_q_clusters_prune_to_tau_p():
    inst = PROB.sample("mr-k60", 4, seed=2)
    tau_p = inst.params.tau_p
    raw = bl.strongest_q_clusters(inst.beta, 4, tau_p, prune=False)
    np.testing.assert_array_equal(raw.sum(axis=1), 4)
    assert raw.sum(axis=2).max() > tau_p                                       # the spec's warning (A.3, 5)
    pruned = bl.strongest_q_clusters(inst.beta, 4, tau_p)
    assert pruned.sum(axis=2).max() <= tau_p and pruned.sum(axis=1).min() >= 1
    assert np.all(pruned <= raw + (pruned.sum(axis=1, keepdims=True) == 1))    # only moved UEs get a new AP


def test_cluster_helpers():
    rng = np.random.default_rng(0)
    score = rng.random((3, 5, 12))
    top = bl.top_per_ap(score, 4)
    np.testing.assert_array_equal(top.sum(axis=2), 4)
    assert np.all(np.where(top > 0, score, 1).min(axis=2) >= np.where(top > 0, 0, score).max(axis=2))
    empty = np.zeros_like(score)
    empty[:, :, :3] = 1.0                                                      # 3 UEs per AP, 9 UEs unserved
    fixed = bl.serve_every_ue(empty, score, 4)
    assert fixed.sum(axis=1).min() >= 1 and fixed.sum(axis=2).max() <= 4
    full = bl.serve_every_ue(bl.top_per_ap(score, 4) * 0 + (np.arange(12) < 4), score, 4)
    assert full.sum(axis=1).min() >= 1 and full.sum(axis=2).max() <= 4       # needed evictions



def test_pilot_mask_keeps_copilot_ues_apart_within_tau_p_and_serves_everyone():
    inst = PROB.sample("mr-k60", 6, seed=4)
    rng = np.random.default_rng(1)
    pilot = np.asarray(inst.pilot)
    tau_p = inst.params.tau_p
    for score in (rng.random(inst.beta.shape), np.log(inst.beta), -np.log(inst.beta)):
        kept = bl.top_per_pilot(score, pilot)
        for clusters in (kept, bl.serve_every_ue(kept, score, tau_p, pilot=pilot)):
            per_pilot = np.einsum("nlk,nkt->nlt", clusters, (pilot[..., None] == np.arange(tau_p)).astype(float))
            assert per_pilot.max() <= 1 and clusters.sum(axis=2).max() <= tau_p
        assert clusters.sum(axis=1).min() >= 1                                  # every UE served
    # a copilot swap needed: UE 2 shares pilot 0 with UE 0, which holds it at both APs
    start = np.array([[[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]])
    fixed = bl.serve_every_ue(start, rng.random((1, 2, 4)), 2, pilot=np.array([[0, 1, 0, 1]]))
    assert fixed.sum(axis=1).min() >= 1 and fixed.sum(axis=2).max() <= 2
    assert fixed[0][:, [0, 2]].sum(axis=1).max() <= 1 and fixed[0][:, [1, 3]].sum(axis=1).max() <= 1


# --- the learned solver --------------------------------------------------------------------------

torch = pytest.importorskip("torch")
cf = pytest.importorskip("cfbench.plugins.uccf_cosformer")


def _permuted(instances: Instances, perm: np.ndarray) -> Instances:
    arrays = dict(instances.arrays)
    for name, axis in UE_AXIS.items():
        arrays[name] = np.take(arrays[name], perm, axis=axis)
    return dataclasses.replace(instances, arrays=arrays)


def test_torch_mr_closed_forms_equal_the_judge(k20):
    rng = np.random.default_rng(1)
    clusters = (rng.random(k20.beta.shape) < 0.4).astype(float)
    clusters[:, 0, :] = 1.0
    ref = um.uatf_coefficients(k20, clusters)
    beta, gamma, copilot = cf._tensors(k20)
    got = cf.mr_coefficients_torch(beta, gamma, copilot, torch.as_tensor(clusters), k20.params.n_antennas)
    for a, b in zip(got, (ref.signal, ref.interference, ref.noise, ref.ap_share)):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-12, atol=1e-300)
    p = rng.uniform(1, 100, (12, 20))
    rho = rng.uniform(1, 50, (12, 20))
    se_ul, se_dl = cf.min_se_torch(got, torch.as_tensor(p), torch.as_tensor(rho), k20.params)
    t = PROB.performance(k20, clusters, p, rho)
    np.testing.assert_allclose(se_ul.numpy(), t["ul_se_bit_per_hz"].min(axis=1), rtol=1e-10)
    np.testing.assert_allclose(se_dl.numpy(), t["dl_se_bit_per_hz"].min(axis=1), rtol=1e-10)


def test_differentiable_maxmin_sinr_equals_the_closed_form_and_its_gradient(k20):
    clusters = np.asarray(k20.dcc_clusters, float)
    label = um.maxmin_decision(k20, clusters)
    ref = um.maxmin_powers(um.uatf_coefficients(k20, clusters), k20.params.p_max_mw, k20.params.rho_max_mw)
    beta, gamma, copilot = cf._tensors(k20)
    d = torch.as_tensor(clusters).requires_grad_(True)
    coeffs = cf.mr_coefficients_torch(beta, gamma, copilot, d, k20.params.n_antennas)
    t_ul, t_dl = cf.maxmin_sinr_torch(coeffs, label, k20.params)
    np.testing.assert_allclose(t_ul.detach().numpy(), ref["ul_sinr"], rtol=1e-9)
    np.testing.assert_allclose(t_dl.detach().numpy(), ref["dl_sinr"], rtol=1e-9)
    (t_ul[0] + t_dl[0]).backward()
    # the gradient predicts the effect of a small change of one link weight (LSFD-like weights in [0, 1])
    l, k = np.argwhere(clusters[0] > 0)[0]
    bumped = clusters[:1].copy()
    bumped[0, l, k] = 1.0 - 1e-5
    t = um.maxmin_powers(um.uatf_coefficients(k20[0], bumped), k20.params.p_max_mw, k20.params.rho_max_mw)
    change = (t["ul_sinr"] + t["dl_sinr"])[0] - (ref["ul_sinr"] + ref["dl_sinr"])[0]
    np.testing.assert_allclose(change, -1e-5 * d.grad[0, l, k].item(), rtol=1e-2)


@pytest.mark.parametrize("attention", cf.ATTENTIONS)
def test_every_attention_is_equivariant_to_permuting_ues(attention, k20):
    torch.manual_seed(0)
    net = cf.build_network(16, d_model=32, heads=4, layers=2, attention=attention).eval()
    perm = np.random.default_rng(5).permutation(20)
    inst = k20[:3]
    with torch.inference_mode():
        a = net(*cf.network_inputs(inst.ap_xy_m, inst.ue_xy_m, inst.params))
        b = net(*cf.network_inputs(inst.ap_xy_m, inst.ue_xy_m[:, perm], inst.params))
    np.testing.assert_allclose(b[0].numpy(), a[0].numpy()[:, :, perm], rtol=1e-4, atol=1e-6)
    for x, y in zip(a[1:], b[1:]):
        np.testing.assert_allclose(y.numpy(), x.numpy()[:, perm], rtol=1e-4, atol=1e-6)


def test_lsf_inputs_are_equivariant_to_permuting_ues(k20):
    """With ``inputs=lsf`` the link features carry beta; permuting the UEs (positions and
    beta together) permutes every output."""
    torch.manual_seed(0)
    net = cf.build_network(16, d_model=32, heads=4, layers=2, attention="elu", inputs="lsf").eval()
    perm = np.random.default_rng(5).permutation(20)
    inst = k20[:3]
    with torch.inference_mode():
        x = cf.network_inputs(inst.ap_xy_m, inst.ue_xy_m, inst.params, inst.beta)
        a = net(*x)
        b = net(*cf.network_inputs(inst.ap_xy_m, inst.ue_xy_m[:, perm], inst.params, inst.beta[:, :, perm]))
    assert x[1].shape == (3, 16, 20, cf.N_LINK_FEATURES + cf.N_LSF_FEATURES)
    assert x[0].shape == (3, 20, 2 + (2 + cf.N_LINK_FEATURES + cf.N_LSF_FEATURES) * 16)
    np.testing.assert_allclose(b[0].numpy(), a[0].numpy()[:, :, perm], rtol=1e-4, atol=1e-6)
    for x, y in zip(a[1:], b[1:]):
        np.testing.assert_allclose(y.numpy(), x.numpy()[:, perm], rtol=1e-4, atol=1e-6)


def test_lsf_inputs_refuse_a_beta_of_the_wrong_shape(k20):
    inst = k20[:2]
    with pytest.raises(cf.CfbenchError, match="beta"):
        cf.network_inputs(inst.ap_xy_m, inst.ue_xy_m, inst.params, inst.beta[:, :, :-1])


@pytest.mark.parametrize("solver_option", [True, False])
def test_bad_inputs_value_is_a_one_line_error_naming_the_choices(solver_option):
    with pytest.raises(cf.CfbenchError) as error:
        if solver_option:
            cf.EluCosFormer(inputs="beta").setup(PROB, "mr-k20")
        else:
            cf.EluCosFormer.train(PROB, ["mr-k10"], samples=2, validation=1, epochs=1, inputs="beta")
    message = str(error.value)
    assert "\n" not in message and "inputs" in message and all(c in message for c in cf.INPUTS)


def test_linear_cosformer_attention_equals_its_quadratic_form():
    """The five-term linear attention is sum_j w_ij phi(q_i).phi(k_j) v_j / normaliser."""
    torch.manual_seed(0)
    net = cf.build_network(4, d_model=8, heads=2, layers=1, attention="elu").eval()
    att = net.layers[0].attention
    x, angles = torch.randn(2, 7, 8), torch.rand(2, 7, 2) * 6.3
    with torch.inference_mode():
        got = att(x, angles)
        q, k, v = att.qkv(x).view(2, 7, 3, 2, 4).permute(2, 0, 3, 1, 4)
        fq, fk = torch.nn.functional.elu(q) + 1, torch.nn.functional.elu(k) + 1
        d = angles[:, :, None, :] - angles[:, None, :, :]
        w = 0.5 + 0.25 * (torch.cos(d[..., 0]) + torch.cos(d[..., 1]))
        a = (fq @ fk.transpose(-1, -2)) * w[:, None]
        y = (a @ v) / (a.sum(-1, keepdim=True) + 1e-6)
        want = att.out(y.transpose(1, 2).reshape(2, 7, 8))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_shipped_weights_load_safely_and_are_small():
    path = cf.WEIGHTS_DIR / cf.SHIPPED_WEIGHTS["elu"]
    assert path.stat().st_size < 5e6
    checkpoint = cf.load_checkpoint(path)
    assert checkpoint["model"]["attention"] == "elu" and checkpoint["trained_on"]["n_aps"] == 16


def test_learned_solvers_pass_the_conformance_kit():
    check_solver(cf.EluCosFormer, problem="uccf", scenario="mr-k20")
    check_solver(cf.EluCosFormerOpt, problem="uccf", scenario="mr-k20")


def test_learned_solver_is_equivariant_to_permuting_ues(k20):
    inst, perm = k20[:4], np.random.default_rng(2).permutation(20)
    a, b = _solve(cf.EluCosFormer, inst), _solve(cf.EluCosFormer, _permuted(inst, perm))
    np.testing.assert_array_equal(b["clusters"], a["clusters"][:, :, perm])
    for f in ("ul_power_mw", "dl_power_mw"):
        np.testing.assert_allclose(b[f], a[f][:, perm], rtol=1e-4)


def test_shipped_model_meets_the_quality_bar_on_held_out_instances():
    """Held-out seed 7 at the default K = 40: every cluster respects tau_p and serves every UE,
    and the model's clusters with closed-form power reach 90 % of Optimal CF or beat DCC."""
    inst = PROB.sample("mr-k40", 30, seed=7)
    mean = {}
    for cls in (bl.CfMaxMin, bl.DccMaxMin, cf.EluCosFormerOpt, cf.EluCosFormer):
        d = _solve(cls, inst)
        s = PROB.evaluate(inst, d)
        mean[cls.name] = s.objective.mean()
        if cls.kind == "learned":
            assert s.feasible.all() and s.metrics["max_ap_load"].max() <= inst.params.tau_p, cls.name
    assert mean["elu-cosformer-opt"] >= 0.9 * mean["cf-maxmin"] or mean["elu-cosformer-opt"] > mean["dcc-maxmin"], mean


def test_lsf_weights_load_safely_and_the_solver_picks_them_by_option(k20):
    path = cf.WEIGHTS_DIR / cf.SHIPPED_INPUTS["lsf"]
    assert path.stat().st_size < 5e6
    checkpoint = cf.load_checkpoint(path)
    assert checkpoint["model"]["inputs"] == "lsf" and checkpoint["training"]["cluster_weight"] > 0
    default, lsf = cf.EluCosFormer(), cf.EluCosFormer(inputs="lsf")
    for s in (default, lsf):
        s.setup(PROB, "mr-k20")
    assert default.inputs == "positions" and lsf.inputs == "lsf"
    assert lsf.network.cluster[0].in_features == 64 + cf.N_LINK_FEATURES + cf.N_LSF_FEATURES
    with pytest.raises(cf.CfbenchError, match="inputs=positions"):
        cf.EluCosFormer(weights=str(path), inputs="positions").setup(PROB, "mr-k20")
    inst, perm = k20[:4], np.random.default_rng(2).permutation(20)
    a, b = lsf.solve(inst), lsf.solve(_permuted(inst, perm))
    np.testing.assert_array_equal(b["clusters"], a["clusters"][:, :, perm])


def test_lsf_model_meets_the_quality_bar_on_held_out_instances():
    """Held-out seed 7 at K = 40: the lsf model's learned clusters with closed-form power
    beat DCC's and the untrained distance prior's (the positions model's clusters)."""
    inst = PROB.sample("mr-k40", 30, seed=7)
    mean = {}
    for name, cls, options in (("dcc", bl.DccMaxMin, {}), ("prior", cf.EluCosFormerOpt, {}),
                               ("lsf", cf.EluCosFormerOpt, {"inputs": "lsf"}),
                               ("lsf-own", cf.EluCosFormer, {"inputs": "lsf"})):
        s = PROB.evaluate(inst, _solve(cls, inst, **options))
        mean[name] = s.objective.mean()
        assert s.feasible.all() and s.metrics["max_ap_load"].max() <= inst.params.tau_p, name
    assert mean["lsf"] >= mean["dcc"] and mean["lsf"] > mean["prior"], mean


@pytest.mark.slow
def test_model_is_faster_than_optimal_cf_at_the_largest_load():
    limit_threads(1)
    inst = PROB.sample("mr-k60", 12, seed=8)

    def per_instance(cls):
        s = cls()
        s.setup(PROB, "mr-k60")
        s.solve(inst[0])                                                      # warm-up
        times = []
        for i in range(1, len(inst)):
            t = time.perf_counter()
            s.solve(inst[i])
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    assert torch.get_num_threads() == 1
    assert per_instance(cf.EluCosFormer) < per_instance(bl.CfMaxMin)


@pytest.mark.slow
def test_training_runs_and_writes_a_loadable_checkpoint(tmp_path):
    limit_threads(1)
    path = cf.EluCosFormer.train(PROB, ["mr-k10", "mr-k20"], seed=1, out=tmp_path / "m.pt",
                                 samples=32, validation=8, epochs=1, d_model=16, heads=2, layers=1)
    s = cf.EluCosFormer(weights=str(path))
    s.setup(PROB, "mr-k20")
    inst = PROB.sample("mr-k20", 2, seed=0)
    assert PROB.check_decision(inst, s.solve(inst)) is None
    assert len(cf.load_checkpoint(path)["training"]["history"]) == 2


def test_pilot_mask_option_of_the_learned_solver():
    inst = PROB.sample("mr-k60", 4, seed=5)
    d = _solve(cf.EluCosFormerOpt, inst, mask="pilot")
    pilot = np.asarray(inst.pilot)
    per_pilot = np.einsum("nlk,nkt->nlt", d["clusters"], (pilot[..., None] == np.arange(10)).astype(float))
    assert per_pilot.max() <= 1 and PROB.evaluate(inst, d).feasible.all()
    with pytest.raises(cf.CfbenchError, match="top"):
        _solve(cf.EluCosFormerOpt, inst[:1], mask="nearest")


@pytest.mark.parametrize("mask", ["top", "pilot"])
def test_search_labels_are_never_worse_than_their_start(mask):
    inst = PROB.sample("mr-k40", 6, seed=6)
    s = cf.EluCosFormerOpt(mask=mask)
    s.setup(PROB, "mr-k40")
    score = s.predict(inst)[0]
    start = s.clusters(inst, score)
    found, value, start_value = cf.search_clusters(inst, start, score, mask, rounds=2)
    judged = PROB.evaluate(inst, um.maxmin_decision(inst, found))
    np.testing.assert_allclose(judged.objective, value, rtol=1e-7)
    assert np.all(value >= start_value) and judged.feasible.all()
    if mask == "pilot":
        pilot = np.asarray(inst.pilot)
        assert np.einsum("nlk,nkt->nlt", found, (pilot[..., None] == np.arange(10)).astype(float)).max() <= 1


@pytest.mark.parametrize("option, value", [("cluster_loss", "labels"), ("mask", "nearest")])
def test_bad_training_options_are_one_line_errors_naming_the_choices(option, value):
    with pytest.raises(cf.CfbenchError) as error:
        cf.EluCosFormer.train(PROB, ["mr-k10"], samples=2, validation=1, epochs=1, **{option: value})
    message = str(error.value)
    assert "\n" not in message and option in message
    assert all(c in message for c in (cf.CLUSTER_LOSSES if option == "cluster_loss" else cf.MASKS))


def test_refined_clusters_are_feasible_and_never_worse_than_the_model_s():
    inst = PROB.sample("mr-k40", 4, seed=9)
    plain = PROB.evaluate(inst, _solve(cf.EluCosFormerOpt, inst))
    refined = PROB.evaluate(inst, _solve(cf.EluCosFormerOpt, inst, refine_rounds=2))
    assert refined.feasible.all() and np.all(refined.objective >= plain.objective * (1 - 1e-9))
