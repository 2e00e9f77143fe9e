"""Layer, loss, module and functional cases, written once against the PyTorch API (see cases_tensor.py):
tests/python/test_torch_nn.py compares each under needle.torch with real PyTorch. Parameters are set from
NumPy with fixed seeds, so both run the same weights."""

import numpy as np


def _rng(seed=0):
    return np.random.default_rng(seed)


def _input(torch, shape, seed=0, requires_grad=True):
    return torch.tensor(_rng(seed).standard_normal(shape).astype("float32"), requires_grad=requires_grad)


def _set_params(torch, module, seed=1, scale=0.3):
    rng = _rng(seed)
    with torch.no_grad():
        for _, p in module.named_parameters():
            p.copy_(torch.tensor((rng.standard_normal(tuple(p.shape)) * scale).astype("float32")))
    return module


def _np(t):
    return t.detach().numpy()


def _grads(module):
    return {f"grad.{name}": p.grad.numpy() for name, p in module.named_parameters() if p.grad is not None}


def _run(torch, module, x, seed=2):
    """Forward, a weighted sum as the loss, backward: the output and every gradient."""
    out = module(x)
    weights = torch.tensor(_rng(seed).standard_normal(tuple(out.shape)).astype("float32"))
    (out * weights).sum().backward()
    result = {"out": _np(out), **_grads(module)}
    if x.requires_grad:
        result["grad.input"] = x.grad.numpy()
    return result


# ---- layers ------------------------------------------------------------------------------------------------
def case_linear(torch):
    layer = _set_params(torch, torch.nn.Linear(5, 3))
    result = _run(torch, layer, _input(torch, (4, 5)))
    result["weight_shape"] = np.array(layer.weight.shape)
    return result


def case_linear_3d_no_bias(torch):
    return _run(torch, _set_params(torch, torch.nn.Linear(4, 6, bias=False)), _input(torch, (2, 3, 4)))


def case_conv2d_basic(torch):
    conv = _set_params(torch, torch.nn.Conv2d(3, 4, 3))
    result = _run(torch, conv, _input(torch, (2, 3, 7, 6)))
    result["weight_shape"] = np.array(conv.weight.shape)
    return result


def case_conv2d_stride_padding(torch):
    return _run(torch, _set_params(torch, torch.nn.Conv2d(2, 3, 3, stride=2, padding=1)), _input(torch, (2, 2, 9, 8)))


def case_conv2d_same_even_kernel(torch):
    return _run(torch, _set_params(torch, torch.nn.Conv2d(2, 2, 4, padding="same")), _input(torch, (1, 2, 6, 7)))


def case_conv2d_rectangular_kernel_tuple_padding(torch):
    conv = torch.nn.Conv2d(3, 2, (2, 3), padding=(1, 0), bias=False)
    return _run(torch, _set_params(torch, conv), _input(torch, (2, 3, 5, 6)))


def case_conv2d_dilation(torch):
    return _run(torch, _set_params(torch, torch.nn.Conv2d(2, 3, 3, dilation=2, padding=2)), _input(torch, (1, 2, 8, 8)))


def case_conv2d_groups(torch):
    return _run(torch, _set_params(torch, torch.nn.Conv2d(4, 6, 3, groups=2, padding=1)), _input(torch, (2, 4, 5, 5)))


def case_conv2d_depthwise_strided(torch):
    conv = torch.nn.Conv2d(3, 3, 3, stride=2, groups=3)
    return _run(torch, _set_params(torch, conv), _input(torch, (2, 3, 7, 7)))


def case_conv2d_wrong_channels(torch):
    torch.nn.Conv2d(3, 4, 3)(torch.zeros(1, 2, 5, 5))


def case_batchnorm2d_train_then_eval(torch):
    bn = _set_params(torch, torch.nn.BatchNorm2d(3))
    result = _run(torch, bn, _input(torch, (4, 3, 5, 5)))
    bn(_input(torch, (4, 3, 5, 5), seed=5, requires_grad=False))
    bn.eval()
    result["eval_out"] = _np(bn(_input(torch, (2, 3, 5, 5), seed=6, requires_grad=False)))
    result["running_mean"] = bn.running_mean.numpy()
    result["running_var"] = bn.running_var.numpy()
    result["num_batches_tracked"] = bn.num_batches_tracked.numpy()
    return result


def case_batchnorm1d_momentum_no_affine(torch):
    bn = torch.nn.BatchNorm1d(4, momentum=0.3, affine=False, eps=1e-3)
    result = _run(torch, bn, _input(torch, (6, 4)))
    result["running_var"] = bn.running_var.numpy()
    result["keys"] = np.array(list(bn.state_dict().keys()))
    return result


def case_layernorm(torch):
    ln = _set_params(torch, torch.nn.LayerNorm(6))
    return _run(torch, ln, _input(torch, (3, 4, 6)))


def case_layernorm_two_dims(torch):
    ln = _set_params(torch, torch.nn.LayerNorm((3, 4), eps=1e-4))
    return _run(torch, ln, _input(torch, (2, 3, 4)))


def case_embedding_padding_idx(torch):
    emb = _set_params(torch, torch.nn.Embedding(7, 3, padding_idx=2))
    return _run(torch, emb, torch.tensor([[0, 2, 5], [2, 6, 0]]))


def case_pools(torch):
    x = _input(torch, (2, 3, 8, 8))
    results = {}
    for name, layer in {
        "max2": torch.nn.MaxPool2d(2),
        "max3s2p1": torch.nn.MaxPool2d(3, stride=2, padding=1),
        "avg2": torch.nn.AvgPool2d(2),
        "avg3s1p1": torch.nn.AvgPool2d(3, 1, 1),
        "adaptive1": torch.nn.AdaptiveAvgPool2d((1, 1)),
        "adaptive4": torch.nn.AdaptiveAvgPool2d(4),
    }.items():
        x.grad = None
        out = _run(torch, layer, x)
        results[name] = out["out"]
        results[name + ".grad"] = out["grad.input"]
    return results


def case_activations(torch):
    x = _input(torch, (3, 7))
    results = {}
    layers = {
        "relu": torch.nn.ReLU(),
        "leaky": torch.nn.LeakyReLU(0.2),
        "gelu": torch.nn.GELU(),
        "gelu_tanh": torch.nn.GELU(approximate="tanh"),
        "silu": torch.nn.SiLU(),
        "sigmoid": torch.nn.Sigmoid(),
        "tanh": torch.nn.Tanh(),
        "softplus": torch.nn.Softplus(),
        "softmax": torch.nn.Softmax(dim=1),
        "log_softmax": torch.nn.LogSoftmax(dim=0),
        "identity": torch.nn.Identity(),
        "flatten": torch.nn.Flatten(0),
    }
    for name, layer in layers.items():
        x.grad = None
        out = _run(torch, layer, x)
        results[name] = out["out"]
        results[name + ".grad"] = out["grad.input"]
    return results


def case_dropout_eval_and_p0(torch):
    x = _input(torch, (4, 5), requires_grad=False)
    drop = torch.nn.Dropout(0.5)
    drop.eval()
    kept = torch.nn.functional.dropout(x, 0.0, training=True)
    torch.manual_seed(0)
    train = torch.nn.Dropout(0.5)(torch.ones(1000))
    values = set(np.unique(train.numpy()).tolist())
    return {"eval": drop(x).numpy(), "p0": kept.numpy(), "train_values": np.array(sorted(values))}


# ---- losses -------------------------------------------------------------------------------------------------
def _logits_and_labels(torch, n=6, c=5, seed=3):
    logits = _input(torch, (n, c), seed)
    labels = torch.tensor(_rng(seed + 1).integers(0, c, n))
    return logits, labels


def _loss_case(torch, loss, *args):
    value = loss(*args)
    value.sum().backward() if value.dim() else value.backward()
    return {"loss": _np(value), "grad": args[0].grad.numpy()}


def case_cross_entropy_plain(torch):
    logits, labels = _logits_and_labels(torch)
    return _loss_case(torch, torch.nn.CrossEntropyLoss(), logits, labels)


def case_cross_entropy_sum_none(torch):
    logits, labels = _logits_and_labels(torch)
    total = torch.nn.CrossEntropyLoss(reduction="sum")(logits, labels)
    each = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    (total + (each * each).sum()).backward()
    return {"total": _np(total), "each": _np(each), "grad": logits.grad.numpy()}


def case_cross_entropy_weight_ignore_smoothing(torch):
    logits, labels = _logits_and_labels(torch, n=8)
    labels[1] = -100
    labels[5] = 3
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.25])
    return _loss_case(torch, torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=0.1), logits, labels)


def case_cross_entropy_ignore_index_smoothing(torch):
    logits, labels = _logits_and_labels(torch, n=8)
    labels[0] = 4
    return _loss_case(torch, torch.nn.CrossEntropyLoss(ignore_index=4, label_smoothing=0.2), logits, labels)


def case_cross_entropy_probabilities(torch):
    logits, _ = _logits_and_labels(torch)
    probs = torch.softmax(_input(torch, (6, 5), seed=9, requires_grad=False), dim=1)
    return _loss_case(torch, torch.nn.CrossEntropyLoss(label_smoothing=0.05), logits, probs)


def case_cross_entropy_spatial(torch):
    logits = _input(torch, (2, 4, 3, 3))
    labels = torch.tensor(_rng(4).integers(0, 4, (2, 3, 3)))
    return _loss_case(torch, torch.nn.CrossEntropyLoss(), logits, labels)


def case_cross_entropy_bad_label(torch):
    logits, labels = _logits_and_labels(torch)
    labels[0] = 7
    torch.nn.functional.cross_entropy(logits, labels, reduction="sum")


def case_nll_loss(torch):
    logits, labels = _logits_and_labels(torch)
    logp = torch.log_softmax(logits, 1)
    loss = torch.nn.NLLLoss(weight=torch.tensor([1.0, 2.0, 1.0, 0.5, 1.0]))(logp, labels)
    loss.backward()
    return {"loss": _np(loss), "grad": logits.grad.numpy(), "non_leaf_grad_is_none": np.array(logp.grad is None)}


def case_regression_losses(torch):
    pred = _input(torch, (4, 3))
    target = _input(torch, (4, 3), seed=5, requires_grad=False)
    values = [
        torch.nn.MSELoss()(pred, target),
        torch.nn.L1Loss(reduction="sum")(pred, target),
        torch.nn.SmoothL1Loss(beta=0.5)(pred, target),
        torch.nn.functional.mse_loss(pred, target, reduction="none").sum(),
    ]
    total = sum(values)
    total.backward()
    return {"values": np.array([v.item() for v in values]), "grad": pred.grad.numpy()}


def case_binary_losses(torch):
    logits = _input(torch, (5, 2))
    target = torch.tensor(_rng(6).integers(0, 2, (5, 2)).astype("float32"))
    a = torch.nn.BCEWithLogitsLoss()(logits, target)
    b = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0, 0.5]), reduction="sum")(logits, target)
    c = torch.nn.BCELoss()(torch.sigmoid(logits), target)
    (a + b + c).backward()
    return {"values": np.array([a.item(), b.item(), c.item()]), "grad": logits.grad.numpy()}


# ---- modules ------------------------------------------------------------------------------------------------
def _net(torch):
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(4)
            self.register_buffer("scale", torch.ones(1))
            self.register_buffer("cache", torch.zeros(2), persistent=False)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x))) * self.scale

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(Block(), torch.nn.MaxPool2d(2))
            self.heads = torch.nn.ModuleList([torch.nn.Linear(4 * 3 * 3, 5), torch.nn.Linear(5, 2)])
            self.extra = torch.nn.ModuleDict({"out": torch.nn.Identity()})

        def forward(self, x):
            h = self.features(x).flatten(1)
            for head in self.heads:
                h = head(h)
            return self.extra["out"](h)

    return Net()


def case_module_structure(torch):
    net = _net(torch)
    return {
        "parameters": np.array([name for name, _ in net.named_parameters()]),
        "state_dict": np.array(list(net.state_dict().keys())),
        "buffers": np.array([name for name, _ in net.named_buffers()]),
        "modules": np.array([name for name, _ in net.named_modules()]),
        "children": np.array([name for name, _ in net.named_children()]),
        "count": np.array(sum(p.numel() for p in net.parameters())),
        "training": np.array([net.training, net.eval().features[0].bn.training, net.train().heads[1].training]),
    }


def case_module_forward_backward(torch):
    net = _set_params(torch, _net(torch))
    return _run(torch, net, _input(torch, (3, 1, 6, 6)))


def case_state_dict_round_trip(torch):
    source = _set_params(torch, _net(torch), seed=7)
    source(_input(torch, (3, 1, 6, 6), requires_grad=False))  # moves the running statistics
    target = _net(torch)
    result = target.load_state_dict(source.state_dict())
    x = _input(torch, (2, 1, 6, 6), seed=8, requires_grad=False)
    return {
        "same": np.array(
            [
                np.array_equal(a.numpy(), b.numpy())
                for a, b in zip(source.state_dict().values(), target.state_dict().values(), strict=True)
            ]
        ),
        "out": _np(target.eval()(x)),
        "missing": np.array(len(result.missing_keys)),
    }


def case_load_state_dict_missing_key(torch):
    state = _net(torch).state_dict()
    del state["heads.0.bias"]
    _net(torch).load_state_dict(state)


def case_load_state_dict_non_strict(torch):
    state = _net(torch).state_dict()
    del state["heads.0.bias"]
    state["unused"] = torch.zeros(1)
    keys = _net(torch).load_state_dict(state, strict=False)
    return {"missing": np.array(keys.missing_keys), "unexpected": np.array(keys.unexpected_keys)}


def case_load_state_dict_wrong_shape(torch):
    state = _net(torch).state_dict()
    state["heads.1.weight"] = torch.zeros(3, 5)
    _net(torch).load_state_dict(state)


def case_zero_grad_and_requires_grad(torch):
    net = _set_params(torch, torch.nn.Linear(3, 2))
    net(_input(torch, (2, 3), requires_grad=False)).sum().backward()
    had = net.weight.grad is not None
    net.zero_grad(set_to_none=True)  # explicit: PyTorch 1's default zeroes instead
    cleared = net.weight.grad is None
    net.bias.requires_grad_(False)
    net(_input(torch, (2, 3), requires_grad=False)).sum().backward()
    return {"flags": np.array([had, cleared, net.bias.grad is None]), "grad": net.weight.grad.numpy()}


def case_functional_api(torch):
    F = torch.nn.functional
    x = _input(torch, (2, 3, 6, 6))
    w = _input(torch, (4, 3, 3, 3), seed=3)
    b = _input(torch, (4,), seed=4)
    y = F.conv2d(x, w, b, stride=1, padding=1)
    y = F.max_pool2d(F.relu(y), 2)
    y = F.avg_pool2d(y, kernel_size=3, stride=1, padding=1)
    z = F.linear(y.flatten(1), _input(torch, (5, 36), seed=5))
    z = F.layer_norm(z, (5,))
    p = F.pad(z, (1, 2), value=0.5)
    n = F.normalize(p, dim=1)
    oh = F.one_hot(torch.tensor([0, 2, 1]), 4)
    total = (n * n.detach()).sum() + F.gelu(z).sum()
    total.backward()
    return {"n": _np(n), "one_hot": oh.numpy(), "gx": x.grad.numpy(), "gw": w.grad.numpy(), "gb": b.grad.numpy()}


def case_clip_grad_norm(torch):
    net = _set_params(torch, torch.nn.Linear(4, 3))
    (net(_input(torch, (5, 4), requires_grad=False)) ** 2).sum().backward()
    total = torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=0.5)
    return {"total": _np(total), **_grads(net)}


def case_init_statistics(torch):
    torch.manual_seed(0)
    w = torch.empty(400, 300)
    torch.nn.init.xavier_uniform_(w)
    k = torch.empty(300, 200)
    torch.nn.init.kaiming_normal_(k, nonlinearity="relu")
    lin = torch.nn.Linear(250, 100)
    bound = 1 / np.sqrt(250)
    return {
        "xavier_bound": np.array(float(w.abs().max()) <= np.sqrt(6 / 700) + 1e-6),
        "kaiming_std": np.round(np.array(float(k.std())) / np.sqrt(2 / 200), 1),
        "linear_bound": np.array([float(lin.weight.abs().max()) <= bound, float(lin.bias.abs().max()) <= bound]),
        "gain": np.array([torch.nn.init.calculate_gain("relu"), torch.nn.init.calculate_gain("tanh")]),
    }


# ---- sequence layers ------------------------------------------------------------------------------------------
def _sequence_case(torch, layer, x, hx=None):
    _set_params(torch, layer, seed=21, scale=0.4)
    out, state = layer(x) if hx is None else layer(x, hx)
    states = state if isinstance(state, tuple) else (state,)
    weights = torch.tensor(_rng(22).standard_normal(tuple(out.shape)).astype("float32"))
    total = (out * weights).sum() + sum((s * s).sum() for s in states)
    total.backward()
    result = {"out": _np(out), **{f"state{i}": _np(s) for i, s in enumerate(states)}, **_grads(layer)}
    if x.requires_grad:
        result["grad.input"] = x.grad.numpy()
    result["names"] = np.array([name for name, _ in layer.named_parameters()])
    return result


def case_lstm(torch):
    return _sequence_case(torch, torch.nn.LSTM(4, 5), _input(torch, (6, 3, 4)))


def case_lstm_two_layers_batch_first_initial_state(torch):
    lstm = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True)
    h0 = _input(torch, (2, 2, 4), seed=5)
    c0 = _input(torch, (2, 2, 4), seed=6)
    return _sequence_case(torch, lstm, _input(torch, (2, 5, 3)), (h0, c0))


def case_lstm_bidirectional_unbatched(torch):
    return _sequence_case(torch, torch.nn.LSTM(3, 2, bidirectional=True), _input(torch, (4, 3)))


def case_gru(torch):
    return _sequence_case(torch, torch.nn.GRU(4, 3, num_layers=2), _input(torch, (5, 2, 4)))


def case_rnn_relu_bidirectional(torch):
    rnn = torch.nn.RNN(3, 4, nonlinearity="relu", bidirectional=True, batch_first=True)
    return _sequence_case(torch, rnn, _input(torch, (2, 4, 3)))


def case_lstm_wrong_input_size(torch):
    torch.nn.LSTM(3, 4)(torch.zeros(5, 2, 2))


def case_multihead_attention(torch):
    mha = _set_params(torch, torch.nn.MultiheadAttention(8, 2), seed=23)
    q = _input(torch, (4, 3, 8))
    kv = _input(torch, (5, 3, 8), seed=24)
    out, weights = mha(q, kv, kv)
    (out * out).sum().backward()
    return {
        "out": _np(out),
        "weights": _np(weights),
        "grad.q": q.grad.numpy(),
        "grad.kv": kv.grad.numpy(),
        **_grads(mha),
    }


# grad.in_proj_bias[0] is a float32 sum that cancels down to -7.7e-3: float32 results (two PyTorch builds
# among them) lie up to 1e-6 from its float64 value, -7.70234e-3, depending only on the order of the sum.
case_multihead_attention.tolerance = (1e-5, 2e-6)


def case_multihead_attention_masks_batch_first(torch):
    mha = _set_params(torch, torch.nn.MultiheadAttention(6, 3, batch_first=True), seed=25)
    x = _input(torch, (2, 5, 6))
    causal = torch.tensor(np.triu(np.ones((5, 5), dtype=bool), k=1))
    padding = torch.tensor([[False] * 5, [False, False, False, True, True]])
    out, weights = mha(x, x, x, attn_mask=causal, key_padding_mask=padding, average_attn_weights=False)
    float_mask = torch.nn.Transformer.generate_square_subsequent_mask(5)
    out2, _ = mha(x, x, x, attn_mask=float_mask, need_weights=False)
    (out.sum() + (out2 * out2).sum()).backward()
    return {"out": _np(out), "weights": _np(weights), "out2": _np(out2), "grad.x": x.grad.numpy(), **_grads(mha)}


def case_transformer_encoder(torch):
    layer = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
    encoder = _set_params(torch, torch.nn.TransformerEncoder(layer, 2), seed=26, scale=0.2)
    x = _input(torch, (5, 2, 8))
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5)
    out = encoder(x, mask=mask)
    (out * torch.arange(8.0)).sum().backward()
    return {"out": _np(out), "grad.x": x.grad.numpy(), **_grads(encoder)}


def case_transformer_layer_norm_first_gelu_batch_first(torch):
    layer = torch.nn.TransformerEncoderLayer(
        6, 3, 12, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
    )
    return _run(torch, _set_params(torch, layer, seed=27), _input(torch, (2, 4, 6)))


def case_unflatten_and_clip_grad_value(torch):
    layer = _set_params(torch, torch.nn.Linear(6, 4))
    x = _input(torch, (3, 6))
    out = torch.nn.Unflatten(1, (2, 2))(layer(x))
    (out * out * 10).sum().backward()
    torch.nn.utils.clip_grad_value_(layer.parameters(), 0.5)
    return {"out": _np(out), **_grads(layer)}


def case_trunc_normal_statistics(torch):
    torch.manual_seed(0)
    w = torch.empty(200, 100)
    torch.nn.init.trunc_normal_(w, std=0.5, a=-1.0, b=1.0)
    values = w.numpy()
    return {
        "within": np.array([values.min() >= -1.0, values.max() <= 1.0]),
        "std_close": np.array(abs(values.std() - 0.5) < 0.1),
    }
