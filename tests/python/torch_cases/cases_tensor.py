"""Tensor cases, written once against the PyTorch API: tests/python/test_torch_tensor.py runs each under
needle.torch and compares with the same case under real PyTorch (torch_reference.py). Inputs come from
NumPy with fixed seeds; every case returns NumPy arrays, gradients included."""

import numpy as np


def _rng(seed=0):
    return np.random.default_rng(seed)


def _leaf(torch, shape, seed=0, dtype="float32"):
    return torch.tensor(_rng(seed).standard_normal(shape).astype(dtype), requires_grad=True)


def _np(t):
    return t.detach().numpy()


# ---- making tensors ---------------------------------------------------------------------------------------
def case_factories_dtypes(torch):
    made = {
        "ints": torch.tensor([1, 2, 3]),
        "floats": torch.tensor([1.0, 2.5]),
        "bools": torch.tensor([True, False]),
        "nested": torch.tensor([[1, 2], [3, 4]]),
        "f64_array": torch.tensor(np.array([1.5, 2.5])),
        "int32_array": torch.tensor(np.array([1, 2], dtype=np.int32)),
        "zeros": torch.zeros(2, 3),
        "ones_tuple": torch.ones((2, 1), dtype=torch.int64),
        "full_int": torch.full((2, 2), 7),
        "full_float": torch.full((2,), 0.5),
        "full_bool": torch.full((2,), True),
        "arange_int": torch.arange(5),
        "arange_float": torch.arange(0, 1, 0.25),
        "arange_range": torch.arange(2, 11, 3),
        "linspace": torch.linspace(0, 1, 5),
        "eye": torch.eye(3, 2),
        "zeros_like": torch.zeros_like(torch.tensor([[1, 2]])),
        "ones_like_f64": torch.ones_like(torch.tensor([1.0, 2.0]), dtype=torch.float64),
        "full_like": torch.full_like(torch.tensor([1.0, 2.0]), 3.0),
        "from_numpy": torch.from_numpy(np.arange(4, dtype=np.int64)),
        "as_tensor": torch.as_tensor([1.0, 2.0], dtype=torch.float64),
    }
    out = {k: v.numpy() for k, v in made.items()}
    out["shapes"] = np.array([tuple(torch.zeros(2, 3).shape) == (2, 3), torch.zeros(4).size(0) == 4])
    return out


def case_random_shapes_and_ranges(torch):
    torch.manual_seed(0)
    r = torch.rand(3, 4)
    n = torch.randn(2, 5, dtype=torch.float64)
    i = torch.randint(0, 10, (100,))
    p = torch.randperm(7)
    return {
        "rand_shape": np.array(r.shape),
        "rand_range": np.array([bool((r >= 0).all()), bool((r < 1).all())]),
        "randn_dtype": np.array(str(n.dtype)),
        "randint_range": np.array([int(i.min()), int(i.max()) < 10, str(i.dtype) == "torch.int64"]),
        "randperm_sorted": np.sort(p.numpy()),
    }


# ---- arithmetic and promotion -----------------------------------------------------------------------------
def case_arithmetic_promotion(torch):
    i = torch.tensor([1, 2, 3])
    f = torch.tensor([0.5, 1.5, 2.5])
    d = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    b = torch.tensor([True, False, True])
    return {
        "int_times_float_scalar": (i * 0.5).numpy(),
        "int_div_int": (i / 2).numpy(),
        "int_plus_int": (i + 1).numpy(),
        "int_plus_float_tensor": (i + f).numpy(),
        "f32_plus_f64": (f + d).numpy(),
        "f32_plus_0d_f64": (f + torch.tensor(1.0, dtype=torch.float64)).numpy(),
        "bool_plus_int": (b + i).numpy(),
        "rsub": (1 - f).numpy(),
        "rdiv": (1 / f).numpy(),
        "rpow": (2**f).numpy(),
        "pow": (f**2).numpy(),
        "neg_abs": (-f).abs().numpy(),
        "add_alpha": f.add(d.float(), alpha=2).numpy(),
        "sub_alpha": torch.sub(f, f, alpha=0.5).numpy(),
        "matmul_vec": (torch.ones(2, 3) @ f).numpy(),
        "clamp": f.clamp(min=1.0).numpy(),
        "clamp_both": torch.clamp(f, 0.7, 2.0).numpy(),
        "comparisons": np.stack([(f > 1).numpy(), (f <= 1.5).numpy(), (f == 0.5).numpy(), (f != 0.5).numpy()]),
        "logical": np.stack([(b & (f > 1)).numpy(), (b | (f > 2)).numpy(), (~b).numpy()]),
    }


def case_operator_operands(torch):
    # Every kind of operand +, -, * and / take: the common cases (one dtype, a Python float or int) and the
    # others (mixed dtypes, bool, NumPy scalars, ints beyond int64, Parameters, broadcasting), with gradients.
    f = _leaf(torch, (2, 3), seed=3)
    g = _leaf(torch, (3,), seed=4)
    p = torch.nn.Parameter(torch.tensor([[0.5], [2.0]]))
    i = torch.tensor([[1, 2, 3], [4, 5, 6]])
    out = {
        "tensors": f + g - f * g / (g * g + 1),
        "python_numbers": (f + 2) * 3 - 1.5 + (2 * f) / 4 + (0.5 + f) * 2.0 - (f - 1),
        "parameter": f * p + p / 2 + 1 * p,
        "int_tensor": i * 2 + i / 4 + (i + 0.5) * 2.5 + (i - 1),
        "int_by_int_tensor": i / i,
        "mixed_dtypes": f + i + f * i.double(),
        "bool_operand": (f + True) * False + i * True,
        "numpy_scalar": f * np.float32(2.0) + np.int64(3) + f / np.float64(2.0),
    }
    before = [out["tensors"].is_leaf, f.is_leaf, out["tensors"].grad_fn is None, out["int_tensor"].is_leaf]
    total = sum(v.sum() for k, v in out.items() if v.requires_grad)
    total.backward()
    result = {k: _np(v) for k, v in out.items()}
    result["leaf_flags"] = np.array([*before, out["tensors"].is_leaf, f.is_leaf])
    result["dtypes"] = np.array([str(v.dtype) for v in out.values()])
    result["grad_f"], result["grad_g"], result["grad_p"] = f.grad.numpy(), g.grad.numpy(), p.grad.numpy()
    try:
        f + 2**70
    except (OverflowError, RuntimeError):  # an int beyond int64 does not fit: OverflowError in PyTorch 2,
        result["overflow"] = np.array("refused")  # RuntimeError in PyTorch 1
    else:
        result["overflow"] = np.array("accepted")
    return result


def case_sum_and_backward_calls(torch):
    # sum() and backward() without arguments run in C++; every other call goes to the general methods.
    f = _leaf(torch, (2, 3), seed=5)
    d = _leaf(torch, (3,), seed=6, dtype="float64")
    p = torch.nn.Parameter(torch.tensor([[0.5, -1.0, 2.0]]))
    i = torch.tensor([[1, 2, 3], [4, 5, 6]], dtype=torch.int32)
    sums = {
        "float": f.sum(),
        "double": d.sum(),
        "parameter": p.sum(),
        "int32_to_int64": i.sum(),
        "bool_to_int64": (i > 2).sum(),
        "dim": f.sum(1),
        "dim_keepdim": f.sum(dim=0, keepdim=True),
        "dtype": f.sum(dtype=torch.float64),
        "empty": torch.ones(0, 3).sum(),
    }
    result = {k: _np(v) for k, v in sums.items()}
    result["dtypes"] = np.array([str(v.dtype) for v in sums.values()])
    y = (f * f).sum() + (d * 3).sum().float() + (p * f).sum()
    y.backward(retain_graph=True)
    result["grads_once"] = np.concatenate([f.grad.numpy().ravel(), d.grad.numpy().ravel(), p.grad.numpy().ravel()])
    y.backward()  # the retained graph, a second time: the gradients add up
    (f.sum() * 2).backward(torch.tensor(0.5))
    (f[0] * 3).backward(gradient=torch.ones(3))
    result["grads_after"] = np.concatenate([f.grad.numpy().ravel(), d.grad.numpy().ravel(), p.grad.numpy().ravel()])
    return result


def case_backward_of_tensor_without_grad_error(torch):
    torch.ones(()).backward()


def case_backward_of_released_graph_error(torch):
    y = (_leaf(torch, (2,)) * 2).sum()
    y.backward()
    y.backward()


def case_second_derivatives_with_create_graph(torch):
    # A gradient penalty: backward(create_graph=True) records the gradients, which are then differentiated.
    x = _leaf(torch, (3,), seed=11)
    w = _leaf(torch, (2, 3), seed=12)
    y = (x**3).sum() + (w * x.tanh()).sum()
    y.backward(create_graph=True)
    g = x.grad
    first = {"g": _np(g), "g_requires_grad": np.array(g.requires_grad), "w_grad": _np(w.grad)}
    x.grad, w.grad = None, None
    (g * g).sum().backward()
    return {**first, "x_second": x.grad.numpy(), "w_second": w.grad.numpy()}


def case_tensors_as_dict_keys(torch):
    # Tensors hash by identity: a key stays found after an in-place op records a new node for it.
    a = _leaf(torch, (2,), seed=1)
    t = a * 2
    table = {t: 1, a: 2}
    before = hash(t)
    t.add_(1)
    copy = t.clone()
    same_hash = hash(t) == before
    return {"found": np.array([same_hash, t in table, table.get(t, 0), table[a], copy in table, len({t, t, copy})])}


def case_elementwise_gradients(torch):
    x = torch.tensor(_rng(1).uniform(0.5, 2.0, (3, 4)).astype(np.float32), requires_grad=True)
    y = (x.exp() * x.log() + x.sqrt() - x.rsqrt() + x.tanh() * x.sigmoid() + x.relu() ** 3 + 1 / x).sum()
    y.backward()
    return {"y": _np(y), "grad": x.grad.numpy()}


# ---- reductions -------------------------------------------------------------------------------------------
def case_reductions(torch):
    x = _leaf(torch, (3, 4, 5))
    i = torch.tensor([[1, 5, 2], [7, 0, 3]])
    return {
        "sum_all": _np(x.sum()),
        "sum_dim": _np(x.sum(1)),
        "sum_dims_keep": _np(x.sum((0, 2), keepdim=True)),
        "sum_int": i.sum().numpy(),
        "sum_bool": (i > 2).sum().numpy(),
        "sum_dtype": _np(x.sum(dtype=torch.float64)),
        "mean_neg": _np(x.mean(-1)),
        "var": _np(x.var()),
        "var_dim_biased": _np(x.var(1, unbiased=False)),
        "std_dim_keep": _np(x.std(dim=2, keepdim=True)),
        "std_correction0": _np(x.std(0, correction=0)),
        "norm": _np(x.norm()),
        "norm_dim": _np(x.norm(dim=1)),
        "norm_p1": _np(x.norm(p=1, dim=(1, 2))),
        "amax": _np(x.amax(dim=(0, 1))),
        "logsumexp": _np(x.logsumexp(2)),
        "all_any": np.array([bool((i >= 0).all()), bool((i > 6).any()), bool((i > 7).any())]),
        "all_dim": (i > 1).all(dim=1).numpy(),
        "argmax": x.argmax().numpy(),
        "argmax_dim": x.argmax(dim=1).numpy(),
        "argmin_keep": x.argmin(dim=2, keepdim=True).numpy(),
    }


def case_reduction_gradients(torch):
    x = _leaf(torch, (4, 6), seed=2)
    total = x.sum(0).pow(2).sum() + x.mean(1).sum() + x.std(1).sum() + x.var(0, unbiased=False).sum() + x.norm()
    total = total + x.logsumexp(1).sum() + x.amax(1).sum()
    total.backward()
    return {"total": _np(total), "grad": x.grad.numpy()}


def case_max_min_with_dim(torch):
    x = _leaf(torch, (3, 5), seed=3)
    values, indices = x.max(dim=1)
    low = torch.min(x, 0, keepdim=True)
    (values.sum() * 2 + low.values.sum()).backward()
    whole = x.detach().max()
    return {
        "values": _np(values),
        "indices": indices.numpy(),
        "min_values": _np(low.values),
        "min_indices": low.indices.numpy(),
        "grad": x.grad.numpy(),
        "whole": whole.numpy(),
        "elementwise": torch.max(x.detach(), torch.zeros(3, 5)).numpy(),
    }


def case_softmax_family(torch):
    x = _leaf(torch, (2, 3, 4), seed=4)
    s = x.softmax(dim=1)
    ls = torch.log_softmax(x, -1)
    (s * torch.arange(4.0)).sum().backward()
    g1 = x.grad.numpy().copy()
    x.grad = None
    (ls[:, :, 0]).sum().backward()
    return {"softmax": _np(s), "log_softmax": _np(ls), "grad_softmax": g1, "grad_log_softmax": x.grad.numpy()}


# ---- shapes -----------------------------------------------------------------------------------------------
def case_shape_ops(torch):
    x = _leaf(torch, (2, 3, 4), seed=5)
    weights = torch.tensor(_rng(6).standard_normal((4, 3, 2)).astype(np.float32))
    y = x.permute(2, 1, 0) * weights
    z = x.transpose(0, 2).reshape(4, 6) @ torch.ones(6, 1)
    w = x.view(6, 4).t().unsqueeze(0).squeeze(0).flatten()
    e = x[:, :1, :].expand(2, 3, 4) * 2
    r = x[0].repeat(2, 1, 3)
    u = x.flatten(1).unflatten(1, (3, 4))
    total = y.sum() + z.sum() + (w * torch.arange(24.0)).sum() + e.sum() + (r * r).sum() + u.sum()
    total.backward()
    return {
        "total": _np(total),
        "grad": x.grad.numpy(),
        "shapes": np.array([list(y.shape), [*list(z.shape), 0], [w.shape[0], 0, 0], list(e.shape), list(r.shape)]),
        "squeeze_dim": np.array(torch.zeros(1, 3, 1).squeeze(0).shape),
        "squeeze_all": np.array(torch.zeros(1, 3, 1).squeeze().shape),
        "squeeze_keep": np.array(torch.zeros(2, 3).squeeze(0).shape),
        "T": np.array(x.T.shape),
    }


def case_cat_stack_split(torch):
    a = _leaf(torch, (2, 3), seed=7)
    b = _leaf(torch, (2, 3), seed=8)
    c = torch.cat([a, b], dim=1)
    s = torch.stack([a, b], dim=0)
    pieces = torch.split(c, 2, dim=1)
    listed = c.split([1, 5], dim=1)
    chunks = torch.chunk(s, 2, dim=2)
    total = sum((p * (i + 1)).sum() for i, p in enumerate(pieces)) + listed[1].pow(2).sum() + chunks[1].sum()
    total.backward()
    return {
        "cat": _np(c),
        "stack": _np(s),
        "piece_shapes": np.array([p.shape[1] for p in pieces]),
        "chunk_shapes": np.array([ch.shape[2] for ch in chunks]),
        "grad_a": a.grad.numpy(),
        "grad_b": b.grad.numpy(),
        "unbind": np.stack([t.numpy() for t in torch.unbind(torch.arange(6).reshape(2, 3), 1)]),
    }


def case_unpacking_and_unbind_gradients(torch):
    # q, k, v = qkv.view(...).permute(...): iteration unbinds dim 0; pieces used or not, once or twice.
    x = _leaf(torch, (2, 4, 6), seed=9)
    q, k, v = x.view(2, 4, 3, 2).permute(2, 0, 3, 1)
    rows = list(x[0])
    first, _, third = torch.unbind(x, 2)[:3]
    total = (q * k).sum() + (q.exp() * 2).sum() + rows[3].pow(2).sum() + (first * third).sum()
    total.backward()
    return {"q": _np(q), "v": _np(v), "row_count": np.array(len(rows)), "grad": x.grad.numpy()}


def case_where_masked_fill_topk_sort(torch):
    x = _leaf(torch, (3, 5), seed=9)
    w = torch.where(x > 0, x, x * 0.1)
    m = x.masked_fill(x < -0.5, 0.0)
    top = torch.topk(x, 2, dim=1)
    low = x.topk(3, dim=0, largest=False)
    srt = torch.sort(x, dim=1, descending=True)
    total = w.sum() + (m * m).sum() + top.values.sum() * 3 + low.values.sum() + (srt.values * torch.arange(5.0)).sum()
    total.backward()
    return {
        "where": _np(w),
        "masked_fill": _np(m),
        "topk_values": _np(top.values),
        "topk_indices": top.indices.numpy(),
        "low_indices": low.indices.numpy(),
        "sort_indices": srt.indices.numpy(),
        "argsort": x.argsort(dim=0).numpy(),
        "grad": x.grad.numpy(),
        "where_scalar": torch.where(x.detach() > 0, 1.0, 0.0).numpy(),
    }


def case_einsum_patterns(torch):
    a = _leaf(torch, (2, 3, 4), seed=10)
    b = _leaf(torch, (2, 4, 5), seed=11)
    q = _leaf(torch, (2, 2, 3, 4), seed=12)
    k = _leaf(torch, (2, 2, 5, 4), seed=13)
    m1 = torch.einsum("bij,bjk->bik", a, b)
    m2 = torch.einsum("bhqd,bhkd->bhqk", q, k)
    m3 = torch.einsum("ij,jk->ik", a[0], b[0])
    (m1.sum() + (m2 * m2).sum() + m3.sum()).backward()
    return {"m1": _np(m1), "m2": _np(m2), "m3": _np(m3), "ga": a.grad.numpy(), "gk": k.grad.numpy()}


# ---- indexing ---------------------------------------------------------------------------------------------
def case_indexing_read(torch):
    x = _leaf(torch, (4, 5, 3), seed=14)
    idx = torch.tensor([3, 0, 3])
    mask = x.detach()[:, 0, 0] > 0
    parts = [
        x[1],
        x[:, 2],
        x[1:3, ::2],
        x[..., -1],
        x[None, 0],
        x[idx],
        x[:, [1, 4]],
        x[mask],
        x[torch.arange(4), torch.tensor([0, 1, 2, 3])],
        x[x > 1.0],
    ]
    total = sum((p * (i + 1)).sum() for i, p in enumerate(parts))
    total.backward()
    out = {f"part{i}": _np(p) for i, p in enumerate(parts)}
    out["grad"] = x.grad.numpy()
    return out


def case_indexing_write_without_grad(torch):
    x = torch.zeros(4, 5)
    x[1] = 1.0
    x[:, 2] = torch.arange(4.0)
    x[x > 2] = -1.0
    x[torch.tensor([0, 3]), torch.tensor([4, 4])] = torch.tensor([7.0, 8.0])
    x[[2, 2], [0, 0]] = 5.0
    return {"x": x.numpy()}


def case_indexing_write_with_grad(torch):
    a = _leaf(torch, (3, 4), seed=15)
    v = _leaf(torch, (4,), seed=16)
    y = a * 2
    y[1] = v
    y[:, 0] = y[:, 0] * 3
    y[y < -1] = 0.0
    (y * torch.arange(12.0).reshape(3, 4)).sum().backward()
    return {"y": _np(y), "grad_a": a.grad.numpy(), "grad_v": v.grad.numpy()}


def case_index_out_of_range(torch):
    torch.zeros(3, 4)[3]


def case_bad_index_dtype(torch):
    torch.zeros(3, 4)[torch.tensor([0.0, 1.0])]


# ---- in place -----------------------------------------------------------------------------------------------
def case_inplace_no_grad(torch):
    x = torch.tensor([1.0, 2.0, 3.0])
    view = x[1:]
    x.add_(1).mul_(2)
    x.sub_(torch.tensor([1.0, 1.0, 1.0]), alpha=0.5)
    x.clamp_(max=7.0)
    view.div_(2)
    y = torch.zeros(2, 3)
    y.copy_(torch.tensor([1, 2, 3]))
    y[0].fill_(0.25)
    z = torch.ones(3)
    z.zero_()
    z += 2
    z *= torch.tensor([1.0, 2.0, 3.0])
    return {"x": x.numpy(), "view": view.numpy(), "y": y.numpy(), "z": z.numpy()}


def case_inplace_in_graph(torch):
    a = _leaf(torch, (5,), seed=17)
    h = a * 3
    h.relu_()
    h.add_(a, alpha=2)
    h.mul_(h.detach())
    h += 1
    h.sum().backward()
    return {"h": _np(h), "grad": a.grad.numpy()}


def case_inplace_on_leaf_refused(torch):
    _leaf(torch, (3,)).add_(1)


def case_inplace_on_saved_value_refused(torch):
    a = _leaf(torch, (3,))
    h = a.exp()
    y = h * h
    h.add_(1)
    y.sum().backward()


def case_int_inplace_with_float_refused(torch):
    torch.tensor([1, 2]).add_(0.5)


# ---- errors and conversions ---------------------------------------------------------------------------------
def case_shape_mismatch_error(torch):
    torch.ones(2, 3) + torch.ones(4, 3)


def case_matmul_mismatch_error(torch):
    torch.ones(2, 3) @ torch.ones(4, 3)


def case_numpy_of_grad_tensor_error(torch):
    _leaf(torch, (2,)).numpy()


def case_backward_non_scalar_error(torch):
    (_leaf(torch, (2,)) * 2).backward()


def case_item_of_many_error(torch):
    torch.ones(2).item()


def case_dim_out_of_range_error(torch):
    torch.ones(2, 3).sum(dim=2)


def case_conversions(torch):
    x = torch.tensor([[1.7, -2.2], [3.5, 0.0]])
    return {
        "long": x.long().numpy(),
        "int": x.int().numpy(),
        "double": x.double().numpy(),
        "bool": x.bool().numpy(),
        "to_dtype": x.to(torch.float64).numpy(),
        "item": np.array(x[0, 0].item()),
        "tolist": np.array(x.tolist()),
        "size": np.array([x.size(1), x.dim(), x.numel(), x.ndim]),
        "type_names": np.array([x.type(), x.long().type(), str(x.dtype), str(x.long().dtype)]),
        "float_int": np.array([float(x[1, 0]), int(x[1, 0])]),
        "len": np.array(len(x)),
        "detach_shares": np.array(x.detach().add_(1)[0, 0].item() == x[0, 0].item()),
        "is_floating": np.array([x.is_floating_point(), x.long().is_floating_point()]),
    }


def case_no_grad_and_modes(torch):
    a = _leaf(torch, (3,))
    with torch.no_grad():
        b = a * 2
    c = a * 2
    with torch.inference_mode():
        d = a + 1

    @torch.no_grad()
    def doubled(t):
        return t * 2

    e = doubled(a)
    with torch.set_grad_enabled(False):
        f = a * 3
    return {
        "requires_grad": np.array(
            [b.requires_grad, c.requires_grad, d.requires_grad, e.requires_grad, f.requires_grad]
        ),
        "leaf": np.array([a.is_leaf, c.is_leaf, b.is_leaf]),
        "enabled": np.array(torch.is_grad_enabled()),
    }


def case_triangles(torch):
    x = _leaf(torch, (2, 3, 4), seed=18)
    upper, lower = torch.triu(x, 1), x.tril(-1)
    (upper * 2 + lower).sum().backward()
    mask = torch.triu(torch.ones(3, 3, dtype=torch.bool), 1)
    return {"upper": _np(upper), "lower": _np(lower), "grad": x.grad.numpy(), "mask": mask.numpy()}


def case_nonzero_and_devices(torch):
    x = torch.tensor([[0, 2, 0], [3, 0, 4]])
    rows, cols = torch.nonzero(x, as_tuple=True)
    cpu = torch.device("cpu")
    return {
        "nonzero": torch.nonzero(x).numpy(),
        "rows": rows.numpy(),
        "cols": cols.numpy(),
        "where_one": torch.where(x > 1)[1].numpy(),
        "device": np.array([str(cpu), repr(cpu), str(x.device), str(torch.device("cuda", 1)), cpu.type]),
        "equal": np.array([x.device == cpu, x.device == "cpu", torch.device("cuda:0").index]),
    }
