import math

import numpy as np
import torch

from lteval.dlsa import GMF, MADE, MAF, component_log_prob, fixed_means


def _warm(flow: torch.nn.Module, D: int, seed=0) -> None:
    """Non-trivial weights and batch-norm running statistics, then eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in flow.modules():
        if isinstance(m, MADE):
            torch.nn.init.normal_(m.net[-1].weight, std=0.3, generator=g)
            m.net[-1].apply_mask()  # weights are stored masked
    flow.train()
    for _ in range(5):
        flow(torch.randn(64, D, generator=g, dtype=torch.float64) * 2 + 1)
    flow.eval()


def test_logdet_matches_brute_force_jacobian():
    torch.manual_seed(0)
    D = 4
    flow = MAF(D, hidden=8).double()
    _warm(flow, D)
    for x in torch.randn(3, D, dtype=torch.float64):
        J = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0, 0], x)
        _, logabs = torch.linalg.slogdet(J)
        torch.testing.assert_close(flow(x[None])[1][0, 0], logabs)


def _autoregressive_jacobian(D: int, H: int, order: torch.Tensor) -> torch.Tensor:
    """du/dx (D, D) of a MADE with a non-trivial output layer, checked to be zero
    wherever input i comes after output j in ``order``."""
    made = MADE(D, H, order).double()
    torch.nn.init.normal_(made.net[-1].weight, std=0.5)
    made.net[-1].apply_mask()  # weights are stored masked: re-mask after a re-init
    J = torch.autograd.functional.jacobian(
        lambda v: made(v[None])[0][0, 0], torch.randn(D).double()
    )
    for j in range(D):
        for i in range(D):
            if order[i] > order[j]:
                assert J[j, i] == 0
    return J


def test_made_is_autoregressive_in_its_order():
    torch.manual_seed(1)
    J = _autoregressive_jacobian(5, 12, torch.arange(1, 6).flip(0))
    assert J.abs().sum() > J.diag().abs().sum()  # off-diagonal dependence exists


def test_matmul_mixture_equals_naive_formula():
    g = torch.Generator().manual_seed(0)
    u, mu = torch.randn(7, 6, generator=g), torch.randn(5, 6, generator=g)
    naive = torch.distributions.Normal(mu[None], 1.0).log_prob(u[:, None]).sum(-1)
    torch.testing.assert_close(component_log_prob(u, mu), naive, rtol=1e-5, atol=1e-4)


def test_density_integrates_to_one_in_2d():
    torch.manual_seed(2)
    gmf = GMF(2, num_clusters=4, hidden=6, prior_std=0.8, seed=0).double()
    _warm(gmf.flow, 2)
    grid = torch.linspace(-12, 12, 601, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    with torch.no_grad():
        dens = GMF.log_px(gmf(pts))[0].exp()
    step = (grid[1] - grid[0]).item()
    assert abs(dens.sum().item() * step**2 - 1) < 0.02


def test_prior_means_are_fixed_and_seeded():
    gmf = GMF(8, 10, seed=3)
    assert "means" not in dict(gmf.named_parameters())
    torch.testing.assert_close(gmf.means[0], fixed_means(10, 8, 0.05, 3))
    assert abs(gmf.means.std().item() - 0.05) < 0.02
    comp = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]]))
    assert math.isclose(GMF.log_px(comp).item(), math.log(0.25), rel_tol=1e-6)


def test_runs_on_the_given_device():
    dev = torch.device("cpu")  # stand-in: the same code path takes cuda devices
    gmf = GMF(3, 5).to(dev)
    assert gmf(torch.randn(4, 3, device=dev)).device == dev
    assert np.isfinite(gmf(torch.randn(4, 3)).detach().numpy()).all()


def test_masked_weights_stay_masked_through_training():
    from lteval.dlsa.flow import GMF, MaskedLinear

    torch.manual_seed(0)
    g = GMF(8, 5, None, 0.05, 0.9, 0)
    opt = torch.optim.SGD(g.parameters(), lr=0.5)
    x = torch.randn(64, 8)
    for _ in range(5):
        loss = -GMF.log_px(g(x)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    layers = [m for m in g.modules() if isinstance(m, MaskedLinear)]
    assert len(layers) == 6
    for m in layers:
        assert torch.all(m.weight[:, m.mask == 0] == 0)
        assert m.weight[:, m.mask == 1].abs().sum() > 0


def test_narrow_made_is_autoregressive_and_reaches_every_input():
    """With H < D - 1 the hidden degrees spread over 1..D-1: still autoregressive, and
    late inputs (degree > H) still feed later outputs."""
    from lteval.dlsa.flow import hidden_degrees

    assert hidden_degrees(12, 4).tolist() == [1, 3, 6, 9]
    J = _autoregressive_jacobian(12, 4, torch.arange(1, 13))
    assert J[:, 8].abs().sum() > 0  # input of degree 9 > H reaches the last output


def test_members_are_independent_flows_with_their_own_seeds():
    """Member r of an R-member GMF has the weights and prior of a one-member GMF seeded
    with its own seed, and computes what that flow computes on the same input."""
    from lteval.dlsa.flow import member_seeds

    ens = GMF(6, 5, hidden=9, seed=4, members=3)
    seeds = member_seeds(4, 3)
    assert seeds[0] == 4 and len(set(seeds)) == 3
    x = torch.randn(2, 10, 6)
    for r, s in enumerate(seeds):
        one = GMF(6, 5, hidden=9, seed=s, members=1)
        torch.testing.assert_close(ens.means[r], one.means[0])
        ens_state, one_state = ens.state_dict(), one.state_dict()
        for k in one_state:
            if not k.endswith(".mask"):
                torch.testing.assert_close(ens_state[k][r], one_state[k][0])
        with torch.no_grad():
            one.eval(), ens.eval()
            torch.testing.assert_close(ens(x[0])[r], one(x[0])[0])
    sub = ens.subset([2, 0])
    assert sub.members == 2 and sub.seeds == [seeds[2], seeds[0]]
    with torch.no_grad():
        torch.testing.assert_close(sub(x[0]), ens(x[0])[[2, 0]])
