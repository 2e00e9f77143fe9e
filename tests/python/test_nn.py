"""needle.nn: Module (Python, as in Needle), Parameter, and the built-in layers against NumPy formulas, their
gradients against finite differences (float64), Needle's NumPy-seeded initial values, modes, state dicts
and devices."""

# ruff: noqa: NPY002 (Needle draws from NumPy's global random state: these tests seed it)

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle import init, nn

F64 = "float64"


def t64(a: np.ndarray, requires_grad: bool = True) -> ndl.Tensor:
    return ndl.Tensor(np.asarray(a, dtype=np.float64), dtype=F64, requires_grad=requires_grad)


def check_grads(loss: Callable[[], ndl.Tensor], tensors: Sequence[ndl.Tensor], eps: float = 1e-6) -> None:
    """Gradients of the scalar loss() w.r.t. each tensor against central finite differences."""
    for t in tensors:
        t.grad = None
    loss().backward()
    for t in tensors:
        assert t.grad is not None
        analytic = t.grad.numpy().copy()
        base = t.numpy().copy()
        numeric = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            values = []
            for sign in (1.0, -1.0):
                pert = base.copy()
                pert[idx] += sign * eps
                t.cached_data = nd.array(pert)
                with ndl.no_grad():
                    values.append(loss().item())
            numeric[idx] = (values[0] - values[1]) / (2 * eps)
        t.cached_data = nd.array(base)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


def weighted_sum(out: ndl.Tensor, seed: int = 7) -> ndl.Tensor:
    w = np.random.default_rng(seed).standard_normal(out.shape)
    return (out * t64(w, requires_grad=False)).sum()


# ---- Module in Python ------------------------------------------------------------------------------


class ListDictNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = [nn.Linear(3, 8, dtype=F64), nn.ReLU()]
        self.heads = {"out": nn.Linear(8, 2, dtype=F64)}
        self.scale = nn.Parameter(np.ones((1, 2)), dtype=F64)
        self.extra = [nn.Parameter(np.zeros((1, 2)), dtype=F64)]

    def forward(self, x: ndl.Tensor) -> ndl.Tensor:
        for block in self.blocks:
            x = block(x)
        out: ndl.Tensor = self.heads["out"](x) * self.scale + self.extra[0]
        return out


def test_python_module_finds_parameters_in_lists_dicts_and_layers() -> None:
    net = ListDictNet()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["blocks.0.weight", "blocks.0.bias", "heads.out.weight", "heads.out.bias", "scale", "extra.0"]
    params = net.parameters()
    assert len(params) == 6
    assert all(isinstance(p, nn.Parameter) for p in params)
    assert params[0] is net.blocks[0].weight  # type: ignore[attr-defined]
    assert [type(c).__name__ for c in net.children()] == ["Linear", "ReLU", "Linear"]
    assert set(net.state_dict()) == set(names)


def test_python_module_trains_with_sgd() -> None:
    np.random.seed(0)
    net = ListDictNet()
    rng = np.random.default_rng(0)
    x = t64(rng.standard_normal((16, 3)), requires_grad=False)
    y = ndl.Tensor((rng.standard_normal(16) > 0).astype(np.int64))
    opt = ndl.optim.SGD(net.parameters(), lr=0.5)
    losses = []
    for _ in range(10):
        opt.reset_grad()
        loss = nn.SoftmaxLoss()(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8


def test_shared_parameters_listed_once() -> None:
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(seq.parameters()) == 2
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]


def test_train_eval_reach_the_cpp_layers() -> None:
    drop = nn.Dropout(0.5)
    seq = nn.Sequential(nn.Identity(), drop)
    x = ndl.Tensor(np.ones((50, 50), dtype=np.float32))
    seq.eval()
    assert not drop.training
    np.testing.assert_array_equal(seq(x).numpy(), x.numpy())
    seq.train()
    y = seq(x).numpy()
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert 0.3 < (y == 0).mean() < 0.7
    drop.training = False  # set directly, as Needle code does
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())


# ---- Needle's initial values -------------------------------------------------------------------------


def test_linear_initial_values_follow_needle() -> None:
    np.random.seed(3)
    lin = nn.Linear(5, 4)
    np.random.seed(3)
    w = init.kaiming_uniform(5, 4)
    b = init.kaiming_uniform(4, 1).reshape((1, 4))
    np.testing.assert_array_equal(lin.weight.numpy(), w.numpy())
    assert lin.bias is not None
    np.testing.assert_array_equal(lin.bias.numpy(), b.numpy())
    # The same numbers drawn by hand with Needle's formula (uniform in +-sqrt(2) * sqrt(3 / fan_in)).
    np.random.seed(3)
    bound = math.sqrt(2.0) * math.sqrt(3.0 / 5)
    raw = np.random.rand(5, 4).astype(np.float32) * (2 * bound) - bound
    np.testing.assert_allclose(lin.weight.numpy(), raw, rtol=1e-6, atol=1e-7)


def test_conv_rnn_embedding_initial_values_follow_needle() -> None:
    np.random.seed(1)
    conv = nn.Conv(2, 3, 3)
    np.random.seed(1)
    w = init.kaiming_uniform(2 * 9, 3 * 9, shape=(3, 3, 2, 3))
    b = init.rand(3, low=-1 / math.sqrt(18), high=1 / math.sqrt(18))
    np.testing.assert_array_equal(conv.weight.numpy(), w.numpy())
    assert conv.bias is not None
    np.testing.assert_array_equal(conv.bias.numpy(), b.numpy())

    np.random.seed(2)
    cell = nn.LSTMCell(3, 2)
    np.random.seed(2)
    k = math.sqrt(1 / 2)
    expected = [init.rand(*s, low=-k, high=k) for s in [(3, 8), (2, 8), (8,), (8,)]]
    for p, e in zip([cell.W_ih, cell.W_hh, cell.bias_ih, cell.bias_hh], expected, strict=True):
        assert p is not None
        np.testing.assert_array_equal(p.numpy(), e.numpy())

    np.random.seed(4)
    emb = nn.Embedding(6, 3)
    np.random.seed(4)
    np.testing.assert_array_equal(emb.weight.numpy(), init.randn(6, 3).numpy())


def test_composite_layers_draw_their_parts_in_registration_order() -> None:
    np.random.seed(6)
    model = nn.Transformer(5, 4, num_layers=1, num_heads=2, hidden_size=6, max_seq_len=7)
    np.random.seed(6)
    expected = [init.randn(5, 4), init.randn(7, 4)]
    expected += [init.kaiming_uniform(4, 4) for _ in range(4)]  # q, k, v, out projections (no bias)
    for fan_in, fan_out in [(4, 6), (6, 4), (4, 5)]:  # the MLP's two Linears, then the head
        expected += [init.kaiming_uniform(fan_in, fan_out), init.kaiming_uniform(fan_out, 1).reshape((1, fan_out))]
    drawn = [p for name, p in model.named_parameters() if not name.split(".")[-2].startswith(("ln", "norm"))]
    assert len(drawn) == len(expected)
    for p, e in zip(drawn, expected, strict=True):
        np.testing.assert_array_equal(p.numpy(), e.numpy())

    np.random.seed(7)
    lstm = nn.LSTM(3, 2, num_layers=2, bias=False)
    np.random.seed(7)
    k = math.sqrt(1 / 2)
    for p, shape in zip(lstm.parameters(), [(3, 8), (2, 8), (2, 8), (2, 8)], strict=True):
        np.testing.assert_array_equal(p.numpy(), init.rand(*shape, low=-k, high=k).numpy())


# ---- basic layers ------------------------------------------------------------------------------------


def test_linear_forward_and_gradients() -> None:
    lin = nn.Linear(3, 2, dtype=F64)
    x = t64(np.random.default_rng(0).standard_normal((4, 3)))
    assert lin.bias is not None
    expected = x.numpy() @ lin.weight.numpy() + lin.bias.numpy()
    np.testing.assert_allclose(lin(x).numpy(), expected, rtol=1e-12)
    check_grads(lambda: weighted_sum(lin(x)), [lin.weight, lin.bias, x])
    no_bias = nn.Linear(3, 2, bias=False, dtype=F64)
    assert no_bias.bias is None
    assert len(no_bias.parameters()) == 1


def test_activations_flatten_identity() -> None:
    x = np.random.default_rng(1).standard_normal((2, 3, 2))
    xt = t64(x)
    erf = np.vectorize(math.erf)
    cases: list[tuple[nn.Module, np.ndarray]] = [
        (nn.ReLU(), np.maximum(x, 0)),
        (nn.Tanh(), np.tanh(x)),
        (nn.Sigmoid(), 1 / (1 + np.exp(-x))),
        (nn.GELU(), 0.5 * x * (1 + erf(x / math.sqrt(2)))),
        (nn.Identity(), x),
        (nn.Flatten(), x.reshape(2, 6)),
    ]
    for layer, expected in cases:
        np.testing.assert_allclose(layer(xt).numpy(), expected, rtol=1e-10, atol=1e-12)
    for layer in (nn.Tanh(), nn.Sigmoid(), nn.GELU()):
        check_grads(lambda layer=layer: weighted_sum(layer(xt)), [xt])  # type: ignore[misc]


class Double(nn.Module):
    def forward(self, x: ndl.Tensor) -> ndl.Tensor:
        return x * 2.0


def test_sequential_and_residual_accept_python_modules() -> None:
    lin = nn.Linear(3, 3, dtype=F64)
    model = nn.Sequential(Double(), nn.Residual(nn.Sequential(lin, nn.ReLU())))
    x = t64(np.random.default_rng(2).standard_normal((2, 3)))
    assert lin.bias is not None
    h = 2 * x.numpy()
    expected = np.maximum(h @ lin.weight.numpy() + lin.bias.numpy(), 0) + h
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-12)
    assert [n for n, _ in model.named_parameters()] == ["1.fn.0.weight", "1.fn.0.bias"]
    assert len(model) == 2
    assert isinstance(model[1], nn.Residual)


def test_losses() -> None:
    rng = np.random.default_rng(3)
    logits = t64(rng.standard_normal((5, 4)))
    labels = ndl.Tensor(np.array([0, 3, 1, 1, 2]))
    z = logits.numpy()
    lse = np.log(np.exp(z).sum(axis=1))
    expected = np.mean(lse - z[np.arange(5), labels.numpy()])
    assert nn.SoftmaxLoss is nn.CrossEntropyLoss
    np.testing.assert_allclose(nn.SoftmaxLoss()(logits, labels).item(), expected, rtol=1e-12)
    check_grads(lambda: nn.SoftmaxLoss()(logits, labels), [logits])
    target = t64(rng.standard_normal((5, 4)), requires_grad=False)
    np.testing.assert_allclose(nn.MSELoss()(logits, target).item(), np.mean((z - target.numpy()) ** 2), rtol=1e-12)
    np.testing.assert_allclose(nn.functional.cross_entropy(logits, labels).item(), expected, rtol=1e-12)


def test_functional_aliases() -> None:
    rng = np.random.default_rng(4)
    x = t64(rng.standard_normal((2, 3)))
    w = t64(rng.standard_normal((4, 3)))
    b = t64(rng.standard_normal(4))
    np.testing.assert_allclose(nn.functional.linear(x, w, b).numpy(), x.numpy() @ w.numpy().T + b.numpy())
    z = x.numpy()
    sm = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(nn.functional.softmax(x, dim=-1).numpy(), sm, rtol=1e-12)
    np.testing.assert_allclose(nn.functional.log_softmax(x).numpy(), np.log(sm), rtol=1e-12)
    np.testing.assert_allclose(nn.functional.relu(x).numpy(), np.maximum(z, 0))
    ln = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(nn.functional.layer_norm(x, 3).numpy(), ln, rtol=1e-10)
    np.testing.assert_array_equal(nn.functional.dropout(x, 0.5, training=False).numpy(), z)


# ---- normalization and dropout ---------------------------------------------------------------------


def test_batchnorm1d_train_and_eval() -> None:
    bn = nn.BatchNorm1d(3, momentum=0.2, dtype=F64)
    x = np.random.default_rng(5).standard_normal((6, 3)) * 2 + 1
    xt = t64(x)
    mean, var = x.mean(0), x.var(0)
    np.testing.assert_allclose(bn(xt).numpy(), (x - mean) / np.sqrt(var + 1e-5), rtol=1e-10)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.2 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.8 + 0.2 * var, rtol=1e-12)
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var"]
    assert set(bn.state_dict()) == {"weight", "bias", "running_mean", "running_var"}
    bn.weight.cached_data = nd.array(np.array([1.0, 2.0, 0.5]))
    check_grads(lambda: weighted_sum(bn(xt)), [bn.weight, bn.bias, xt])
    bn.eval()
    rm, rv = bn.running_mean.numpy().copy(), bn.running_var.numpy().copy()
    expected = (x - rm) / np.sqrt(rv + 1e-5) * bn.weight.numpy() + bn.bias.numpy()
    np.testing.assert_allclose(bn(xt).numpy(), expected, rtol=1e-10)
    np.testing.assert_array_equal(bn.running_mean.numpy(), rm)


def test_batchnorm2d_and_layernorm() -> None:
    x = np.random.default_rng(6).standard_normal((2, 3, 2, 2))
    bn = nn.BatchNorm2d(3, dtype=F64)
    mean, var = x.mean((0, 2, 3), keepdims=True), x.var((0, 2, 3), keepdims=True)
    np.testing.assert_allclose(bn(t64(x)).numpy(), (x - mean) / np.sqrt(var + 1e-5), rtol=1e-10)
    ln = nn.LayerNorm1d(4, dtype=F64)
    assert nn.LayerNorm is nn.LayerNorm1d
    y = np.random.default_rng(7).standard_normal((3, 4))
    yt = t64(y)
    expected = (y - y.mean(1, keepdims=True)) / np.sqrt(y.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln(yt).numpy(), expected, rtol=1e-10)
    check_grads(lambda: weighted_sum(ln(yt)), [ln.weight, ln.bias, yt])


def test_dropout_scaling() -> None:
    ndl.manual_seed(0)
    x = ndl.Tensor(np.ones((100, 100), dtype=np.float32))
    y = nn.Dropout(0.25)(x).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.03


# ---- convolution and pooling -----------------------------------------------------------------------


def conv_nchw(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, padding: int) -> np.ndarray:
    """Direct loop; w is (K, K, C_in, C_out) as Needle stores it."""
    n, _, h, wd = x.shape
    k, cout = w.shape[0], w.shape[3]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = (h + 2 * padding - k) // stride + 1, (wd + 2 * padding - k) // stride + 1
    out = np.zeros((n, cout, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            out[:, :, i, j] = np.einsum("ncij,ijco->no", patch, w)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def test_conv_forward_and_gradients() -> None:
    rng = np.random.default_rng(8)
    conv = nn.Conv(2, 3, 3, stride=1, dtype=F64)
    x = t64(rng.standard_normal((2, 2, 4, 4)))
    assert conv.bias is not None
    expected = conv_nchw(x.numpy(), conv.weight.numpy(), conv.bias.numpy(), 1, 1)
    np.testing.assert_allclose(conv(x).numpy(), expected, rtol=1e-10, atol=1e-12)
    small = nn.Conv(1, 2, 3, stride=2, dtype=F64)
    xs = t64(rng.standard_normal((1, 1, 5, 5)))
    assert small.bias is not None
    check_grads(lambda: weighted_sum(small(xs)), [small.weight, small.bias, xs])
    c2 = nn.Conv2d(2, 2, 3, stride=1, padding=0, bias=False, dtype=F64)
    assert c2.padding == 0
    np.testing.assert_allclose(c2(x).numpy(), conv_nchw(x.numpy(), c2.weight.numpy(), None, 1, 0), rtol=1e-10)


def test_pooling() -> None:
    x = np.random.default_rng(9).standard_normal((1, 2, 4, 4))
    mx = nn.MaxPool2d(2)(t64(x)).numpy()
    av = nn.AvgPool2d(2)(t64(x)).numpy()
    blocks = x.reshape(1, 2, 2, 2, 2, 2)
    np.testing.assert_allclose(mx, blocks.max(axis=(3, 5)))
    np.testing.assert_allclose(av, blocks.mean(axis=(3, 5)), rtol=1e-12)


# ---- recurrent layers ------------------------------------------------------------------------------


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def test_rnn_cell_and_rnn_against_numpy() -> None:
    rng = np.random.default_rng(10)
    rnn = nn.RNN(3, 4, num_layers=2, nonlinearity="relu", dtype=F64)
    x = rng.standard_normal((5, 2, 3))
    h0 = rng.standard_normal((2, 2, 4))
    out, hn = rnn(t64(x), t64(h0))
    params = dict(rnn.named_parameters())
    seq = x
    finals = []
    for layer in range(2):
        p = {k.split(".")[-1]: v.numpy() for k, v in params.items() if k.startswith(f"rnn_cells.{layer}.")}
        h = h0[layer]
        outs = []
        for t in range(5):
            h = np.maximum(seq[t] @ p["W_ih"] + p["bias_ih"] + h @ p["W_hh"] + p["bias_hh"], 0)
            outs.append(h)
        seq = np.stack(outs)
        finals.append(h)
    np.testing.assert_allclose(out.numpy(), seq, rtol=1e-10)
    np.testing.assert_allclose(hn.numpy(), np.stack(finals), rtol=1e-10)

    cell = nn.RNNCell(3, 2, dtype=F64)
    xc = t64(rng.standard_normal((2, 3)))
    h = cell(xc)
    assert cell.bias_ih is not None
    assert cell.bias_hh is not None
    expected = np.tanh(xc.numpy() @ cell.W_ih.numpy() + cell.bias_ih.numpy() + cell.bias_hh.numpy())
    np.testing.assert_allclose(h.numpy(), expected, rtol=1e-12)
    check_grads(lambda: weighted_sum(cell(xc)), [cell.W_ih, cell.bias_ih, xc])


def test_lstm_against_numpy_and_gradients() -> None:
    rng = np.random.default_rng(11)
    lstm = nn.LSTM(2, 3, num_layers=1, dtype=F64)
    x = t64(rng.standard_normal((4, 2, 2)))
    out, (hn, cn) = lstm(x)
    p = {k.split(".")[-1]: v.numpy() for k, v in lstm.named_parameters()}
    h = np.zeros((2, 3))
    c = np.zeros((2, 3))
    outs = []
    for t in range(4):
        g = x.numpy()[t] @ p["W_ih"] + p["bias_ih"] + h @ p["W_hh"] + p["bias_hh"]
        i, f, gg, o = sigmoid(g[:, :3]), sigmoid(g[:, 3:6]), np.tanh(g[:, 6:9]), sigmoid(g[:, 9:])
        c = f * c + i * gg
        h = o * np.tanh(c)
        outs.append(h)
    np.testing.assert_allclose(out.numpy(), np.stack(outs), rtol=1e-10)
    np.testing.assert_allclose(hn.numpy(), h[None], rtol=1e-10)
    np.testing.assert_allclose(cn.numpy(), c[None], rtol=1e-10)
    cell = nn.LSTMCell(2, 2, dtype=F64)
    xc = t64(rng.standard_normal((1, 2)))
    h0 = t64(rng.standard_normal((1, 2)))
    check_grads(lambda: weighted_sum(cell(xc, (h0, None))[0]), [cell.W_hh, xc, h0])
    small = nn.LSTM(2, 2, dtype=F64)
    xs = t64(rng.standard_normal((2, 1, 2)))
    check_grads(lambda: weighted_sum(small(xs)[0]), [small.parameters()[0], xs])


def test_embedding() -> None:
    emb = nn.Embedding(5, 3, dtype=F64)
    idx = ndl.Tensor(np.array([[0, 4], [2, 2]]))
    np.testing.assert_array_equal(emb(idx).numpy(), emb.weight.numpy()[idx.numpy()])
    check_grads(lambda: weighted_sum(emb(idx)), [emb.weight])


# ---- attention and transformers --------------------------------------------------------------------


def attention_numpy(mha: nn.MultiHeadAttention, q: np.ndarray, kv: np.ndarray, causal: bool) -> np.ndarray:
    p = {k: v.numpy() for k, v in mha.named_parameters()}
    b, lq, d = q.shape
    heads = mha.num_heads
    dh = d // heads

    def split(z: np.ndarray) -> np.ndarray:
        return z.reshape(b, -1, heads, dh).transpose(0, 2, 1, 3)

    qh = split(q @ p["q_projection.weight"])
    kh = split(kv @ p["k_projection.weight"])
    vh = split(kv @ p["v_projection.weight"])
    scores = qh @ kh.transpose(0, 1, 3, 2) / math.sqrt(dh)
    if causal:
        mask = np.triu(np.ones((lq, kv.shape[1]), dtype=bool), k=1)
        scores = np.where(mask, -np.inf, scores)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    joined = (probs @ vh).transpose(0, 2, 1, 3).reshape(b, lq, d)
    out: np.ndarray = joined @ p["out_projection.weight"]
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_multihead_attention_against_numpy(causal: bool) -> None:
    rng = np.random.default_rng(12)
    mha = nn.MultiHeadAttention(4, 2, causal=causal, dtype=F64)
    x = rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(mha(t64(x)).numpy(), attention_numpy(mha, x, x, causal), rtol=1e-10)
    if not causal:
        kv = rng.standard_normal((2, 5, 4))
        out = mha(t64(x), t64(kv), t64(kv)).numpy()
        np.testing.assert_allclose(out, attention_numpy(mha, x, kv, False), rtol=1e-10)
    xt = t64(rng.standard_normal((1, 2, 4)))
    check_grads(lambda: weighted_sum(mha(xt)), [mha.parameters()[0], xt])


def test_transformer_layer_and_model() -> None:
    rng = np.random.default_rng(13)
    layer = nn.TransformerLayer(4, 2, 8, dtype=F64)
    x = t64(rng.standard_normal((2, 3, 4)))
    y = layer(x)
    assert y.shape == (2, 3, 4)
    # Causal: the first position does not depend on later ones.
    x2 = x.numpy().copy()
    x2[:, 2] += 1.0
    np.testing.assert_allclose(layer(t64(x2)).numpy()[:, 0], y.numpy()[:, 0], rtol=1e-12)
    model = nn.Transformer(vocab_size=7, dim=4, num_layers=2, num_heads=2, hidden_size=8, max_seq_len=16)
    tokens = ndl.Tensor(np.array([[1, 2, 3], [4, 5, 6]]))
    logits = model(tokens)
    assert logits.shape == (2, 3, 7)
    loss = nn.SoftmaxLoss()(logits.reshape((6, 7)), ndl.Tensor(np.array([2, 3, 4, 5, 6, 0])))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert "layers.0.attn.q_projection.weight" in dict(model.named_parameters())


# ---- state dicts and devices -----------------------------------------------------------------------


def test_load_state_dict_validates_before_changing_anything() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    new = {k: nd.array(v + 1) for k, v in state.items()}
    model.load_state_dict(new)
    np.testing.assert_array_equal(model.state_dict()["0.weight"].numpy(), state["0.weight"] + 1)
    # The module holds copies: changing the given arrays later does not reach it.
    new["0.weight"][0, 0] = 100.0
    assert model.state_dict()["0.weight"].numpy()[0, 0] != 100.0

    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    bad_shape = dict(new)
    bad_shape["1.running_var"] = nd.array(np.ones(4, dtype=np.float32))
    with pytest.raises(ValueError, match=r"1\.running_var"):
        model.load_state_dict(bad_shape)
    bad_dtype = dict(new)
    bad_dtype["0.bias"] = nd.array(np.ones((1, 3)))  # float64
    with pytest.raises(ValueError, match=r"0\.bias.*dtype"):
        model.load_state_dict(bad_dtype)
    missing = {k: v for k, v in new.items() if k != "1.weight"}
    with pytest.raises(ValueError, match=r"missing key '1\.weight'"):
        model.load_state_dict(missing)
    with pytest.raises(ValueError, match="unexpected key 'nope'"):
        model.load_state_dict({**new, "nope": new["0.bias"]})
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    model.load_state_dict(missing, strict=False)


def test_to_device_keeps_tensor_objects_and_mixed_devices_raise() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    params = model.parameters()
    x = ndl.Tensor(np.ones((4, 2), dtype=np.float32))
    model(x).sum().backward()
    model.to(ndl.ref())
    assert all(a is b for a, b in zip(params, model.parameters(), strict=True))
    assert all(p.device == ndl.ref() for p in params)
    assert all(p.grad is not None and p.grad.device == ndl.ref() for p in params)
    assert all(b.device == ndl.ref() for b in model.buffers())
    with pytest.raises(RuntimeError, match=r"cpu.*ref|ref.*cpu"):
        model(x)
    y = model(x.to(ndl.ref()))
    assert y.device == ndl.ref()
    model.to("cpu")
    assert model(x).device == ndl.cpu()


def test_dropout_p_set_after_construction_is_the_one_forward_uses() -> None:
    layer = nn.Dropout(0.5)
    layer.p = 0.0
    assert layer.p == 0.0
    x = ndl.Tensor(np.ones((4, 8), dtype=np.float32))
    np.testing.assert_array_equal(layer(x).numpy(), np.ones((4, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="Dropout"):
        layer.p = 1.0


def test_layer_settings_are_read_from_and_written_to_the_cpp_layer() -> None:
    bn = nn.BatchNorm1d(3, eps=1e-3, momentum=0.2)
    assert (bn.dim, bn.eps, bn.momentum) == (3, 1e-3, 0.2)
    bn.momentum = 0.5
    bn.eps = 1e-2
    assert (bn._cpp.momentum, bn._cpp.eps) == (0.5, 1e-2)
    with pytest.raises(ValueError, match="momentum"):
        bn.momentum = 1.5
    ln = nn.LayerNorm1d(4)
    ln.eps = 0.5
    assert ln._cpp.eps == 0.5
    with pytest.raises(ValueError, match="eps"):
        ln.eps = -1.0
    with pytest.raises(ValueError, match="eps"):
        nn.LayerNorm1d(4, eps=-1.0)
    lin = nn.Linear(3, 2)
    assert (lin.in_features, lin.out_features) == (3, 2)
    with pytest.raises(AttributeError):
        lin.in_features = 5  # fixed when the layer is built
    rnn = nn.RNN(3, 4, num_layers=2)
    assert (rnn.input_size, rnn.hidden_size, rnn.num_layers) == (3, 4, 2)
    conv = nn.Conv2d(2, 3, 5, stride=2, padding=1)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding) == (2, 3, 5, 2, 1)
    attn = nn.MultiHeadAttention(4, 2, causal=True)
    assert (attn.embed_dim, attn.num_heads, attn.causal) == (4, 2, True)
    assert nn.RNNCell(2, 3, nonlinearity="relu").nonlinearity == "relu"
    assert nn.Transformer(9, 4, 1, 2, 8).vocab_size == 9


class Affine(nn.Module):
    """A module with a Python-held parameter next to a built-in layer."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(np.ones(2, dtype=np.float32))
        self.inner = nn.Linear(2, 2)

    def forward(self, x: ndl.Tensor) -> ndl.Tensor:
        out: ndl.Tensor = self.inner(x) * self.scale
        return out


def test_python_and_cpp_modules_share_the_state_dict_checks() -> None:
    model = Affine()
    state = model.state_dict()
    assert list(state) == ["scale", "inner.weight", "inner.bias"]
    # Python modules use the C++ modules' checks: the same messages, under the Python class's name.
    with pytest.raises(ValueError, match=r"^Affine\.load_state_dict: key 'scale' has shape \(3,\), expected \(2,\)$"):
        model.load_state_dict({**state, "scale": nd.array(np.ones(3, dtype=np.float32))})
    linear_message = r"^Linear\.load_state_dict: key 'weight' has shape \(3,\), expected \(2, 2\)$"
    with pytest.raises(ValueError, match=linear_message):
        model.inner._cpp.load_state_dict({"weight": nd.array(np.ones(3, dtype=np.float32))}, strict=False)
    with pytest.raises(ValueError, match=r"^Affine\.load_state_dict: missing key 'inner\.bias'$"):
        model.load_state_dict({k: v for k, v in state.items() if k != "inner.bias"})
    with pytest.raises(TypeError, match="key 'scale' holds a str"):
        model.load_state_dict({**state, "scale": "ones"})
    # Without strict, unknown keys are ignored whatever they hold; the known ones are loaded.
    model.load_state_dict({"scale": np.full(2, 3.0, dtype=np.float32), "other": object()}, strict=False)
    np.testing.assert_array_equal(model.scale.numpy(), [3.0, 3.0])
    assert ndl._core.check_state_dict("M", [("a", model.scale)], {"a": model.scale.cached_data}) == [0]


def test_layer_norm_backward_in_float32_keeps_small_gradients(device: nd.Device) -> None:
    # The gradient of sum(LayerNorm(x)**4) is a small difference of large terms; float32 sums lost it (0.6%).
    values = np.array([[2.1, 0.95, 3.45], [3.1, 2.45, 2.3], [3.3, 0.4, 1.2]])
    grads = {}
    for dtype in ("float32", "float64"):
        x = ndl.Tensor(values, device=device, dtype=dtype, requires_grad=True)
        (nn.LayerNorm1d(3, device=device, dtype=dtype)(x) ** 4).sum().backward()
        grads[dtype] = x.grad.numpy()
    np.testing.assert_allclose(grads["float32"], grads["float64"], rtol=0, atol=1e-5)
