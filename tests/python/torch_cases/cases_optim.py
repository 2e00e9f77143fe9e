"""Optimizer, scheduler, data-loading and training-loop cases, written once against the PyTorch API (see
cases_tensor.py): tests/python/test_torch_optim.py compares each under needle.torch with real PyTorch.
Trajectories run several steps from the same weights and data; every step's loss and the final parameters
are compared."""

import copy

import numpy as np


def _rng(seed=0):
    return np.random.default_rng(seed)


def _set_params(torch, module, seed=1, scale=0.3):
    rng = _rng(seed)
    with torch.no_grad():
        for _, p in module.named_parameters():
            p.copy_(torch.tensor((rng.standard_normal(tuple(p.shape)) * scale).astype("float32")))
    return module


def _data(torch, n=16, features=6, classes=3, seed=2):
    rng = _rng(seed)
    x = torch.tensor(rng.standard_normal((n, features)).astype("float32"))
    y = torch.tensor(rng.integers(0, classes, n))
    return x, y


def _mlp(torch):
    return _set_params(torch, torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)))


def _trajectory(torch, make_optimizer, steps=6, scheduler=None):
    model = _mlp(torch)
    optimizer = make_optimizer(model.parameters())
    sched = scheduler(optimizer) if scheduler is not None else None
    x, y = _data(torch)
    losses, lrs = [], []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if sched is not None:
            sched.step()
            lrs.append(sched.get_last_lr()[0])
    result = {"losses": np.array(losses)}
    result.update({f"param.{name}": p.detach().numpy() for name, p in model.named_parameters()})
    if lrs:
        result["lrs"] = np.array(lrs)
    return result


# ---- optimizers ----------------------------------------------------------------------------------------------
def case_sgd_plain(torch):
    return _trajectory(torch, lambda p: torch.optim.SGD(p, lr=0.1))


def case_sgd_momentum(torch):
    return _trajectory(torch, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))


def case_sgd_momentum_dampening_weight_decay(torch):
    return _trajectory(torch, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01))


def case_sgd_nesterov(torch):
    return _trajectory(torch, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3))


def case_sgd_maximize(torch):
    return _trajectory(torch, lambda p: torch.optim.SGD(p, lr=0.01, maximize=True), steps=3)


def case_adam(torch):
    return _trajectory(torch, lambda p: torch.optim.Adam(p, lr=0.01))


def case_adam_betas_weight_decay(torch):
    return _trajectory(torch, lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1))


def case_adam_amsgrad(torch):
    return _trajectory(torch, lambda p: torch.optim.Adam(p, lr=0.05, amsgrad=True))


def case_adamw(torch):
    return _trajectory(torch, lambda p: torch.optim.AdamW(p, lr=0.01))


def case_adamw_weight_decay(torch):
    return _trajectory(torch, lambda p: torch.optim.AdamW(p, lr=0.02, weight_decay=0.3, betas=(0.85, 0.99)))


def case_param_groups(torch):
    model = _mlp(torch)
    optimizer = torch.optim.SGD(
        [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.5, "momentum": 0.5}],
        lr=0.1,
        momentum=0.9,
    )
    x, y = _data(torch)
    for _ in range(4):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return {
        "options": np.array([[g["lr"], g["momentum"]] for g in optimizer.param_groups]),
        **{f"param.{name}": p.detach().numpy() for name, p in model.named_parameters()},
    }


def case_optimizer_state_dict_resume(torch):
    x, y = _data(torch)

    def train(model, optimizer, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

    model = _mlp(torch)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    train(model, optimizer, 3)
    # Deep copies: PyTorch's state dicts share storage with the live model and optimizer.
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    state = saved_opt["state"][0]
    keys, step = np.array(sorted(state.keys())), np.array(float(state["step"]))
    resumed = _mlp(torch)
    resumed.load_state_dict(saved_model)
    resumed_opt = torch.optim.Adam(resumed.parameters(), lr=0.01)
    resumed_opt.load_state_dict(saved_opt)
    train(model, optimizer, 3)
    train(resumed, resumed_opt, 3)
    return {
        "state_keys": keys,
        "step": step,
        "group_keys": np.array(
            sorted(k for k in saved_opt["param_groups"][0] if k in ("lr", "betas", "eps", "params"))
        ),
        "same": np.array(
            [
                np.allclose(a.numpy(), b.numpy())
                for a, b in zip(model.state_dict().values(), resumed.state_dict().values(), strict=True)
            ]
        ),
    }


def case_optimizers_on_parameters_with_gaps(torch):
    # A parameter that is a view with gaps (every other column) cannot be updated by the fused kernels in
    # place; needle.torch takes its general path, with the same numbers.
    result = {}
    makers = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
        "plain_sgd": lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.01),
        "adam": lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.01),
    }
    for name, make in makers.items():
        base = torch.tensor((_rng(3).standard_normal((6, 6)) * 0.5).astype("float32"))
        w = torch.nn.Parameter(base[:, ::2])
        optimizer = make([w])
        x, y = _data(torch)
        for step in range(4):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(x @ w, y)
            loss.backward()
            optimizer.step()
            result[f"{name}.loss{step}"] = np.array(loss.item())
        result[f"{name}.w"] = w.detach().numpy()
        result[f"{name}.base"] = base.numpy()  # the update lands in the viewed memory
    return result


def case_optimizer_empty_parameters(torch):
    torch.optim.SGD([], lr=0.1)


def case_optimizer_bad_learning_rate(torch):
    torch.optim.Adam(_mlp(torch).parameters(), lr=-1.0)


# ---- schedulers -----------------------------------------------------------------------------------------------
def _schedule(torch, make, steps=12):
    return _trajectory(torch, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), steps=steps, scheduler=make)


def case_step_lr(torch):
    return _schedule(torch, lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5))


def case_multistep_lr(torch):
    return _schedule(torch, lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3))


def case_exponential_lr(torch):
    return _schedule(torch, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.8))


def case_cosine_annealing_lr(torch):
    return _schedule(torch, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5, eta_min=0.01))


def case_lambda_lr(torch):
    return _schedule(torch, lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda epoch: 1.0 / (1 + epoch)))


def case_linear_lr(torch):
    return _schedule(torch, lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=4))


# ---- data -----------------------------------------------------------------------------------------------------
def case_dataloader_batches(torch):
    x, y = _data(torch, n=10)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    dropped = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4, drop_last=True)
    batches = list(loader)
    return {
        "sizes": np.array([len(b[1]) for b in batches]),
        "lengths": np.array([len(loader), len(dropped), len(list(dropped))]),
        "first_x": batches[0][0].numpy(),
        "last_y": batches[-1][1].numpy(),
    }


def case_dataloader_shuffle_covers_everything(torch):
    x, y = _data(torch, n=11)
    torch.manual_seed(3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=3, shuffle=True)
    seen = np.concatenate([b[0].numpy() for b in loader])
    return {"rows": np.array(sorted(map(tuple, seen.round(5).tolist()))), "count": np.array(len(seen))}


def case_default_collate(torch):
    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return {"image": np.full((2, 2), i, dtype=np.float32), "label": i, "weight": 0.5 * i, "name": f"n{i}"}

    batch = next(iter(torch.utils.data.DataLoader(Pairs(), batch_size=3)))
    return {
        "image": batch["image"].numpy(),
        "label": batch["label"].numpy(),
        "weight": batch["weight"].numpy(),
        "name": np.array(batch["name"]),
    }


def case_random_split_and_subset(torch):
    data = torch.utils.data.TensorDataset(torch.arange(10))
    torch.manual_seed(0)
    a, b = torch.utils.data.random_split(data, [7, 3])
    parts = torch.utils.data.random_split(data, [0.5, 0.3, 0.2])
    everything = sorted(int(a[i][0]) for i in range(len(a))) + sorted(int(b[i][0]) for i in range(len(b)))
    return {"sizes": np.array([len(a), len(b)] + [len(p) for p in parts]), "disjoint": np.array(sorted(everything))}


# ---- training loops ----------------------------------------------------------------------------------------
def _cnn(torch):
    # The convolutions feeding BatchNorm have no bias: BatchNorm cancels it, so its gradient is rounding
    # noise, which Adam scales up to full steps in directions that differ between any two implementations.
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 2 * 2, 16),
        nn.ReLU(),
        nn.Linear(16, 5),
    )


def case_cnn_training_steps(torch):
    model = _set_params(torch, _cnn(torch), seed=11, scale=0.2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = _rng(12)
    losses = []
    for _ in range(5):
        x = torch.tensor(rng.standard_normal((8, 1, 8, 8)).astype("float32"))
        y = torch.tensor(rng.integers(0, 5, 8))
        optimizer.zero_grad()
        loss = torch.nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor(rng.standard_normal((4, 1, 8, 8)).astype("float32")))
    return {
        "losses": np.array(losses),
        "eval_logits": logits.numpy(),
        **{f"state.{k}": v.numpy() for k, v in model.state_dict().items()},
    }


case_cnn_training_steps.tolerance = (1e-4, 1e-5)


def case_regression_mlp_sgd(torch):
    model = _set_params(torch, torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rng = _rng(13)
    x = torch.tensor(rng.standard_normal((32, 3)).astype("float32"))
    target = (x[:, :1] * 2 - x[:, 1:2] + 0.5 * x[:, 2:]).detach()
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = torch.nn.MSELoss()(model(x), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    return {"losses": np.array(losses), **{f"param.{k}": p.detach().numpy() for k, p in model.named_parameters()}}


def case_one_cycle_lr_sgd(torch):
    result = _schedule(torch, lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.2, total_steps=12), steps=12)
    return result


def case_one_cycle_lr_adam_linear_three_phase(torch):
    def make(params):
        return torch.optim.Adam(params, lr=0.01)

    def schedule(optimizer):
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=0.05, epochs=2, steps_per_epoch=5, anneal_strategy="linear", three_phase=True
        )

    result = _trajectory(torch, make, steps=10, scheduler=schedule)
    return result


def case_reduce_lr_on_plateau(torch):
    model = _mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1, cooldown=1, min_lr=0.02)
    lrs = []
    for metric in [1.0, 0.9, 0.95, 0.97, 0.96, 0.99, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]:
        plateau.step(metric)
        lrs.append(optimizer.param_groups[0]["lr"])
    return {"lrs": np.array(lrs)}


def case_sequential_lr_warmup_then_cosine(torch):
    def schedule(optimizer):
        warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=3)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=6, eta_min=0.001)
        return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[3])

    return _schedule(torch, schedule)


def case_sequential_lr_three_parts(torch):
    def schedule(optimizer):
        parts = [
            torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9),
            torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5),
            torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.5**epoch),
        ]
        return torch.optim.lr_scheduler.SequentialLR(optimizer, parts, milestones=[4, 8])

    return _schedule(torch, schedule)


def case_dataloader_worker_threads(torch):
    x, y = _data(torch, n=13)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4, num_workers=2)
    batches = list(loader)
    torch.manual_seed(1)
    shuffled = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=5, shuffle=True, drop_last=True, num_workers=2
    )
    seen = np.concatenate([b[1].numpy() for b in shuffled])
    return {
        "x": np.concatenate([b[0].numpy() for b in batches]),
        "y": np.concatenate([b[1].numpy() for b in batches]),
        "sizes": np.array([len(b[1]) for b in batches]),
        "shuffled_count": np.array([len(seen), len(shuffled)]),
    }
