"""The PyTorch example scripts (examples/torch/*.py) side by side: each case loads one script with the
given ``torch`` (for real PyTorch its ``import needle.torch as torch`` lines are read as ``import torch``),
builds its model and optimizer with the script's own functions, sets the trainable parameters from NumPy
with fixed seeds, turns dropout off (its random draws differ between frameworks) and runs three of the
script's own training steps on the script's synthetic batches. The losses after every step and the final
parameters are compared by tests/python/test_torch_examples.py."""

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "torch"
STEPS = 3


def load_example(torch, name):
    """The example module ``name`` with ``torch`` as its torch (its imports of other examples too)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    real = torch.__name__ == "torch"
    source = (EXAMPLES / f"{name}.py").read_text()
    if real:
        source = source.replace("import needle.torch as torch", "import torch")
        source = source.replace("from needle.torch import", "from torch import").replace(
            "from needle.torch.", "from torch."
        )
    if name == "finetune":
        sys.modules["cnn_fashion_mnist"] = load_example(torch, "cnn_fashion_mnist")
    spec = importlib.util.spec_from_loader(f"example_{name}", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(EXAMPLES / f"{name}.py")
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def _no_dropout(torch, model):
    for module in model.modules():
        if type(module).__name__ == "Dropout":
            module.p = 0.0
        elif isinstance(getattr(module, "dropout", None), float):
            module.dropout = 0.0


def _set_trainable(torch, model, seed=5):
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            shape = tuple(p.shape)
            if len(shape) >= 2:
                bound = 1.0 / np.sqrt(np.prod(shape[1:]))
                values = rng.uniform(-bound, bound, shape)
            elif name.endswith("weight"):  # a normalization's scale
                values = 1.0 + 0.1 * rng.uniform(-1, 1, shape)
            else:
                values = 0.1 * rng.uniform(-1, 1, shape)
            p.copy_(torch.tensor(values.astype("float32")))


def trajectory(torch, name, **build_options):
    module = load_example(torch, name)
    torch.manual_seed(0)
    model = module.build_model(**build_options)
    _no_dropout(torch, model)
    _set_trainable(torch, model)
    optimizer, scheduler = module.build_optimizer(model)
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(STEPS):
        batch = module.synthetic_batch(rng)
        extra = () if scheduler is None else (scheduler,)
        out = module.train_step(model, optimizer, batch, *extra)
        losses.append((out[0] if isinstance(out, tuple) else out).item())
    result = {"losses": np.array(losses)}
    result.update({f"param.{k}": p.detach().numpy() for k, p in model.named_parameters()})
    result.update({f"buffer.{k}": b.numpy() for k, b in model.named_buffers()})
    return result


def case_cnn_fashion_mnist(torch):
    return trajectory(torch, "cnn_fashion_mnist")


# Adam divides each gradient element by its running RMS: an element whose gradient is only rounding noise
# (a weight fed by an input that ReLU and pooling keep at zero) moves by up to the learning rate per step in
# either framework, in a direction the noise decides. Parameters trained with Adam are compared to a tenth
# of the learning rate; the losses still agree to 1e-5.
case_cnn_fashion_mnist.tolerance = (1e-5, 1e-4)


def case_resnet_fashion_mnist(torch):
    return trajectory(torch, "resnet_fashion_mnist")


def case_mlp_regression(torch):
    return trajectory(torch, "mlp_regression")


def case_lstm_lm(torch):
    return trajectory(torch, "lstm_lm")


def case_transformer_lm(torch):
    return trajectory(torch, "transformer_lm")


def case_finetune_from_pytorch_checkpoint(torch):
    checkpoint = os.path.join(os.environ["NEEDLE_TORCH_SCRATCH"], "pretrained_cnn.pt")
    if torch.__name__ == "torch":  # real PyTorch writes the checkpoint; needle.torch then reads the same file
        classifier = load_example(torch, "cnn_fashion_mnist").build_model()
        _set_trainable(torch, classifier, seed=9)
        classifier.train()
        with torch.no_grad():  # running statistics worth keeping
            classifier(torch.tensor(np.random.default_rng(2).random((32, 1, 28, 28), dtype=np.float32)))
        torch.save({"model": classifier.state_dict(), "epochs": 1}, checkpoint)
    return trajectory(torch, "finetune", checkpoint=checkpoint)
