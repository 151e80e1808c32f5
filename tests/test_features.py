"""Feature networks: canonical key/shape tables, weight resolution and loading, and forward behaviour.

No real weights exist here: the canonical tables are written out from the published architectures
(torchvision vgg16 / alexnet / inception_v3, lpips v0.1 heads), and loading is proven with random
state dicts saved under the canonical file names.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from inpaintlab.errors import InpaintlabError, WeightsNotFoundError
from inpaintlab.features import (
    ALEXNET_FILE,
    INCEPTION_FID_FILE,
    LPIPS,
    LPIPS_ALEX_FILE,
    VGG16_FILE,
    InceptionV3Pool3,
    VGG16Features,
    resolve_weights,
)

# torchvision vgg16().features: (index, in, out) of each 3x3 conv.
VGG16_CONVS = [
    (0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256),
    (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512),
]  # fmt: skip
# torchvision alexnet().features: (index, in, out, kernel).
ALEXNET_CONVS = [(0, 3, 64, 11), (3, 64, 192, 5), (6, 192, 384, 3), (8, 384, 256, 3), (10, 256, 256, 3)]
LPIPS_ALEX_CHANNELS = [64, 192, 384, 256, 256]


def vgg16_table() -> dict[str, tuple[int, ...]]:
    table = {}
    for index, cin, cout in VGG16_CONVS:
        table[f"features.{index}.weight"] = (cout, cin, 3, 3)
        table[f"features.{index}.bias"] = (cout,)
    return table


def inception_table() -> dict[str, tuple[int, ...]]:
    """torchvision inception_v3(aux_logits=False) BasicConv2d layers, without the fc classifier."""
    convs: dict[str, tuple[int, int, int, int]] = {
        "Conv2d_1a_3x3": (32, 3, 3, 3), "Conv2d_2a_3x3": (32, 32, 3, 3), "Conv2d_2b_3x3": (64, 32, 3, 3),
        "Conv2d_3b_1x1": (80, 64, 1, 1), "Conv2d_4a_3x3": (192, 80, 3, 3),
    }  # fmt: skip

    def block_a(name, cin, pool):
        convs.update({
            f"{name}.branch1x1": (64, cin, 1, 1), f"{name}.branch5x5_1": (48, cin, 1, 1),
            f"{name}.branch5x5_2": (64, 48, 5, 5), f"{name}.branch3x3dbl_1": (64, cin, 1, 1),
            f"{name}.branch3x3dbl_2": (96, 64, 3, 3), f"{name}.branch3x3dbl_3": (96, 96, 3, 3),
            f"{name}.branch_pool": (pool, cin, 1, 1),
        })  # fmt: skip

    def block_c(name, c7):
        convs.update({
            f"{name}.branch1x1": (192, 768, 1, 1), f"{name}.branch7x7_1": (c7, 768, 1, 1),
            f"{name}.branch7x7_2": (c7, c7, 1, 7), f"{name}.branch7x7_3": (192, c7, 7, 1),
            f"{name}.branch7x7dbl_1": (c7, 768, 1, 1), f"{name}.branch7x7dbl_2": (c7, c7, 7, 1),
            f"{name}.branch7x7dbl_3": (c7, c7, 1, 7), f"{name}.branch7x7dbl_4": (c7, c7, 7, 1),
            f"{name}.branch7x7dbl_5": (192, c7, 1, 7), f"{name}.branch_pool": (192, 768, 1, 1),
        })  # fmt: skip

    def block_e(name, cin):
        convs.update({
            f"{name}.branch1x1": (320, cin, 1, 1), f"{name}.branch3x3_1": (384, cin, 1, 1),
            f"{name}.branch3x3_2a": (384, 384, 1, 3), f"{name}.branch3x3_2b": (384, 384, 3, 1),
            f"{name}.branch3x3dbl_1": (448, cin, 1, 1), f"{name}.branch3x3dbl_2": (384, 448, 3, 3),
            f"{name}.branch3x3dbl_3a": (384, 384, 1, 3), f"{name}.branch3x3dbl_3b": (384, 384, 3, 1),
            f"{name}.branch_pool": (192, cin, 1, 1),
        })  # fmt: skip

    block_a("Mixed_5b", 192, 32)
    block_a("Mixed_5c", 256, 64)
    block_a("Mixed_5d", 288, 64)
    convs.update({
        "Mixed_6a.branch3x3": (384, 288, 3, 3), "Mixed_6a.branch3x3dbl_1": (64, 288, 1, 1),
        "Mixed_6a.branch3x3dbl_2": (96, 64, 3, 3), "Mixed_6a.branch3x3dbl_3": (96, 96, 3, 3),
    })  # fmt: skip
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        block_c(name, c7)
    convs.update({
        "Mixed_7a.branch3x3_1": (192, 768, 1, 1), "Mixed_7a.branch3x3_2": (320, 192, 3, 3),
        "Mixed_7a.branch7x7x3_1": (192, 768, 1, 1), "Mixed_7a.branch7x7x3_2": (192, 192, 1, 7),
        "Mixed_7a.branch7x7x3_3": (192, 192, 7, 1), "Mixed_7a.branch7x7x3_4": (192, 192, 3, 3),
    })  # fmt: skip
    block_e("Mixed_7b", 1280)
    block_e("Mixed_7c", 2048)
    table = {}
    for name, shape in convs.items():
        table[f"{name}.conv.weight"] = shape
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            table[f"{name}.bn.{suffix}"] = (shape[0],)
        table[f"{name}.bn.num_batches_tracked"] = ()
    return table


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    folder = tmp_path / "torch_home" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def test_vgg16_keys_and_shapes_are_torchvision_ones():
    net = VGG16Features(layers=("pool5",), weights="random")
    assert shapes(net) == vgg16_table()
    shallow = VGG16Features(layers=("relu2_1",), weights="random")
    assert shapes(shallow) == {k: v for k, v in vgg16_table().items() if int(k.split(".")[1]) <= 5}
    assert len(shallow.features) == 7  # only layers up to the deepest tap are built


def test_vgg16_taps_shapes_and_frozen():
    net = VGG16Features(layers=("relu1_1", "pool1", "relu2_1", "pool3", "relu5_1"), weights="random")
    outs = net(torch.rand(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 64, 64, 64), (2, 64, 32, 32), (2, 128, 32, 32),
                                              (2, 256, 8, 8), (2, 512, 4, 4)]  # fmt: skip
    assert all(not p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training
    with pytest.raises(InpaintlabError, match="unknown VGG16 taps"):
        VGG16Features(layers=("pool6",), weights="random")


def test_vgg16_loads_canonical_file_from_torch_home(torch_home):
    generator = torch.Generator().manual_seed(3)
    state = {k: torch.randn(s, generator=generator) for k, s in vgg16_table().items()}
    state["classifier.0.weight"] = torch.randn(8, 4)  # extra torchvision keys are ignored
    torch.save(state, torch_home / VGG16_FILE)
    net = VGG16Features(layers=("relu1_2", "pool2"))
    assert net.weights_source == str(torch_home / VGG16_FILE)
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key])
    x = torch.rand(1, 3, 32, 32)
    relu1_2 = F.relu(F.conv2d(F.relu(F.conv2d(x, state["features.0.weight"], state["features.0.bias"], padding=1)),
                              state["features.2.weight"], state["features.2.bias"], padding=1))  # fmt: skip
    torch.testing.assert_close(net(x)[0], relu1_2)


def test_explicit_safetensors_path_and_random_seed(tmp_path):
    source = VGG16Features(layers=("pool1",), weights="random", seed=5)
    save_file(source.state_dict(), str(tmp_path / "vgg.safetensors"))
    loaded = VGG16Features(layers=("pool1",), weights=tmp_path / "vgg.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), loaded.state_dict().values()))
    again = VGG16Features(layers=("pool1",), weights="random", seed=5)
    other = VGG16Features(layers=("pool1",), weights="random", seed=6)
    assert torch.equal(again.features[0].weight, source.features[0].weight)
    assert not torch.equal(other.features[0].weight, source.features[0].weight)


def test_missing_weights_message_names_file_and_folder(torch_home):
    with pytest.raises(WeightsNotFoundError) as info:
        VGG16Features()
    message = str(info.value)
    assert (
        VGG16_FILE in message
        and str(torch_home) in message
        and "feature_weights='random'" in message
        and "loss.vgg_weights=random" in message
    )
    assert "\n" not in message
    with pytest.raises(WeightsNotFoundError, match="nowhere.pth"):
        resolve_weights(VGG16_FILE, "/nowhere.pth")
    assert resolve_weights(VGG16_FILE, "random") is None


def test_wrong_file_is_a_clear_error(torch_home):
    torch.save({"features.0.weight": torch.zeros(64, 3, 5, 5)}, torch_home / VGG16_FILE)
    with pytest.raises(InpaintlabError, match=r"features\.0\.weight.*shape"):
        VGG16Features(layers=("pool1",))


def lpips_reference(a, b, trunk, heads):
    """LPIPS v0.1 from the file tensors alone (functional AlexNet, scaling layer, unit norm, heads)."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def taps(x):
        x = (2 * x - 1 - shift) / scale
        w = lambda i: (trunk[f"features.{i}.weight"], trunk[f"features.{i}.bias"])  # noqa: E731
        r1 = F.relu(F.conv2d(x, *w(0), stride=4, padding=2))
        r2 = F.relu(F.conv2d(F.max_pool2d(r1, 3, 2), *w(3), padding=2))
        r3 = F.relu(F.conv2d(F.max_pool2d(r2, 3, 2), *w(6), padding=1))
        r4 = F.relu(F.conv2d(r3, *w(8), padding=1))
        r5 = F.relu(F.conv2d(r4, *w(10), padding=1))
        return [r1, r2, r3, r4, r5]

    total = 0
    for k, (fa, fb) in enumerate(zip(taps(a), taps(b))):
        na = fa / (fa.norm(dim=1, keepdim=True) + 1e-10)
        nb = fb / (fb.norm(dim=1, keepdim=True) + 1e-10)
        total = total + F.conv2d((na - nb) ** 2, heads[f"lin{k}.model.1.weight"]).mean(dim=(1, 2, 3))
    return total


def test_lpips_loads_canonical_files_and_matches_reference(torch_home):
    generator = torch.Generator().manual_seed(0)
    trunk = {}
    for index, cin, cout, k in ALEXNET_CONVS:
        std = (2 / (cin * k * k)) ** 0.5
        trunk[f"features.{index}.weight"] = torch.randn(cout, cin, k, k, generator=generator) * std
        trunk[f"features.{index}.bias"] = torch.randn(cout, generator=generator) * 0.1
    trunk["classifier.1.weight"] = torch.zeros(4, 9216)
    heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=generator)
             for k, c in enumerate(LPIPS_ALEX_CHANNELS)}  # fmt: skip
    torch.save(trunk, torch_home / ALEXNET_FILE)
    torch.save(heads, torch_home / LPIPS_ALEX_FILE)
    net = LPIPS()
    expected_keys = {f"features.{i}.{p}" for i, *_ in ALEXNET_CONVS for p in ("weight", "bias")}
    expected_keys |= {f"heads.{k}.weight" for k in range(5)} | {"shift", "scale"}
    assert set(net.state_dict()) == expected_keys
    a, b = torch.rand(2, 3, 64, 64, generator=generator), torch.rand(2, 3, 64, 64, generator=generator)
    out = net(a, b)
    assert out.shape == (2,)
    torch.testing.assert_close(out, lpips_reference(a, b, trunk, heads))
    torch.testing.assert_close(net(a, a), torch.zeros(2))
    assert (out > 0).all() and not out.requires_grad


def test_lpips_random_is_labelled_and_non_negative():
    net = LPIPS("random", "random")
    assert net.weights_source == "trunk=random, heads=random"
    a = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    different = net(a, a.flip(-1))
    assert (different > 0).all() and torch.equal(net(a, a), torch.zeros_like(different))  # a distance: 0 iff equal
    closer = net(a, (a + 0.05 * torch.rand(a.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1))
    assert (closer < different).all()  # a small change scores less than a mirrored image


def test_inception_keys_shapes_and_parameter_count():
    net = InceptionV3Pool3("random")
    assert shapes(net) == inception_table()
    # torchvision inception_v3: 27,161,264 parameters, of which AuxLogits 3,326,696 and fc 2,049,000.
    assert sum(p.numel() for p in net.parameters()) == 27_161_264 - 3_326_696 - 2_049_000


def test_inception_loads_pytorch_fid_file_and_runs_in_eval_mode(torch_home):
    source = InceptionV3Pool3("random", seed=2)
    generator = torch.Generator().manual_seed(2)
    state = {}
    for key, value in source.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue  # the converted TF file has none
        if key.endswith("running_var"):
            value = torch.rand(value.shape, generator=generator) + 0.5
        elif key.endswith("running_mean"):
            value = torch.randn(value.shape, generator=generator) * 0.1
        state[key] = value
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    torch.save(state, torch_home / INCEPTION_FID_FILE)
    net = InceptionV3Pool3()
    loaded = net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("fc."))
    net.train()  # must stay in eval mode: BatchNorm uses the file's running statistics
    x = torch.rand(2, 3, 48, 40, generator=generator)
    features = net(x)
    assert features.shape == (2, 2048) and (features >= 0).all()
    torch.testing.assert_close(net(x[1:]), features[1:], rtol=1e-4, atol=1e-5)
    resized = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    torch.testing.assert_close(net(resized), features, rtol=1e-4, atol=1e-5)
