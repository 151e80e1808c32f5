"""CICM: memory generalisation / augmentation against per-region loops, training terms, ablation switches,
checkpoint round trips and the backbones it plugs into."""

import copy
import inspect
import math

import pytest
import torch
import torch.nn.functional as F

from inpaintlab.checkpoint import load_model, save_checkpoint
from inpaintlab.errors import InpaintlabError
from inpaintlab.export import example_inputs, export_model
from inpaintlab.layers.memory import CICMBlock, CrossImageMemory
from inpaintlab.losses import adversarial_images
from inpaintlab.models import create_discriminator, create_model
from inpaintlab.models.cicm import FULL, lgnet_cicm, msanet_cicm, unet_cicm
from inpaintlab.presets import PRESETS
from inpaintlab.types import composite

TINY = ["unet_cicm_tiny", "lgnet_cicm_tiny", "msanet_cicm_tiny"]


def _memory(**kwargs):
    options = dict(channels=6, sets=3, set_size=4, memory_seed=1) | kwargs
    return CrossImageMemory(**options)


def _reference_generalise(anchors, features, feats, additive=False, momentum=0.5, top=None):
    """Eqs. 1-3, one region at a time (lambda from the memory at the start of the batch)."""
    mass = torch.zeros(features.shape[:2])
    injected = torch.zeros_like(features)
    for f in feats:
        l = max(range(len(anchors)), key=lambda o: float(f @ anchors[o]))
        scores = [float(f @ c) for c in features[l]]
        keep = sorted(range(len(scores)), key=lambda k: -scores[k])[: top or len(scores)]
        norm = sum(torch.exp(torch.tensor(scores[k], dtype=torch.float64)) for k in keep)
        for k in keep:
            lam = float(torch.exp(torch.tensor(scores[k], dtype=torch.float64)) / norm)
            mass[l, k] += lam
            injected[l, k] += lam * f
    new = features + injected if additive else (features + injected) / (1 + mass[..., None])
    return momentum * anchors + (1 - momentum) * new.mean(1), new


# ------------------------------------------------------------------------------------------- the memory


@pytest.mark.parametrize("injection", ["average", "additive"])
def test_generalisation_matches_eqs_1_to_3_region_by_region(injection):
    memory = _memory(injection=injection)
    feats = torch.randn(9, 6, generator=torch.Generator().manual_seed(2))
    want_anchors, want_features = _reference_generalise(
        memory.anchors.clone(), memory.features.clone(), feats, additive=injection == "additive"
    )
    anchors, features = memory.generalise(feats)
    torch.testing.assert_close(features, want_features, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(anchors, want_anchors, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(memory.features, want_features, rtol=1e-5, atol=1e-5)  # buffers hold the update
    torch.testing.assert_close(memory.anchors, want_anchors, rtol=1e-5, atol=1e-5)


def test_augmentation_context_matches_eq_4_region_by_region():
    memory = _memory()
    feats = torch.randn(7, 6, generator=torch.Generator().manual_seed(3))
    got = memory.context(feats, memory.anchors, memory.features)
    for f, ctx in zip(feats, got):
        l = int(torch.argmax(torch.stack([f @ a for a in memory.anchors])))
        lam = torch.softmax(memory.features[l] @ f, dim=0)
        torch.testing.assert_close(ctx, (lam[:, None] * memory.features[l]).sum(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fraction, changed", [(1.0, 4), (0.5, 2), (0.0, 1)])
def test_update_fraction_updates_only_the_top_features_of_the_chosen_set(fraction, changed):
    memory = _memory(update_fraction=fraction)
    before, anchors_before = memory.features.clone(), memory.anchors.clone()
    feat = torch.randn(1, 6, generator=torch.Generator().manual_seed(4))
    chosen = int((feat @ memory.anchors.T).argmax())
    memory.generalise(feat)
    moved = (memory.features != before).any(-1)  # (L,K)
    assert moved[chosen].sum() == changed and moved.sum() == changed
    top = (before[chosen] @ feat[0]).topk(changed).indices
    assert moved[chosen, top].all()
    want_anchors, want_features = _reference_generalise(anchors_before, before, feat, top=changed)
    torch.testing.assert_close(memory.features, want_features, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(memory.anchors, want_anchors, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fraction, top", [(0.0, 1), (0.5, 2)])
def test_augment_fraction_mixes_only_the_top_features(fraction, top):
    memory = _memory(augment_fraction=fraction)
    feats = torch.randn(5, 6, generator=torch.Generator().manual_seed(5))
    got = memory.context(feats, memory.anchors, memory.features)
    for f, ctx in zip(feats, got):
        l = int((memory.anchors @ f).argmax())
        scores = memory.features[l] @ f
        idx = scores.topk(top).indices
        lam = torch.softmax(scores[idx], dim=0)
        torch.testing.assert_close(ctx, (lam[:, None] * memory.features[l, idx]).sum(0), rtol=1e-5, atol=1e-6)


def test_anchors_only_and_merged_modes():
    feats = torch.randn(5, 6, generator=torch.Generator().manual_seed(6))
    anchors_only = _memory(memory_mode="anchors_only")
    assert anchors_only.features.shape == (3, 1, 6)
    ctx = anchors_only.context(feats, anchors_only.anchors, anchors_only.features)
    torch.testing.assert_close(ctx, anchors_only.anchors[(feats @ anchors_only.anchors.T).argmax(1)])
    assert set(anchors_only.similarity_terms(anchors_only.anchors, anchors_only.features, True, True)) == {"inter"}

    merged = _memory(memory_mode="merged")
    assert merged.features.shape == (1, 12, 6)  # one set of L*K features, no anchor choice
    ctx = merged.context(feats, merged.anchors, merged.features)
    every = merged.features[0]
    torch.testing.assert_close(ctx, torch.softmax(feats @ every.T, dim=1) @ every, rtol=1e-5, atol=1e-6)
    assert set(merged.similarity_terms(merged.anchors, merged.features, True, True)) == {"intra"}


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_inter_and_intra_terms_follow_eq_8(similarity):
    memory = _memory(term_similarity=similarity)
    anchors, features = memory.anchors, memory.features
    sim = (lambda a, b: float(a @ b)) if similarity == "dot" else (lambda a, b: float(F.cosine_similarity(a, b, dim=0)))
    L, K = features.shape[:2]
    inter = sum(sim(anchors[l], anchors[o]) for l in range(L) for o in range(L)) / L**2
    intra = sum(sim(anchors[l], features[l, k]) for l in range(L) for k in range(K)) / (L * K)
    terms = memory.similarity_terms(anchors, features, True, True)
    assert terms["inter"].item() == pytest.approx(inter, rel=1e-5, abs=1e-6)
    assert terms["intra"].item() == pytest.approx(-intra, rel=1e-5, abs=1e-6)  # negated: minimise to maximise
    assert set(memory.similarity_terms(anchors, features, False, True)) == {"intra"}
    assert set(memory.similarity_terms(anchors, features, True, False)) == {"inter"}


# ------------------------------------------------------------------------------------------- the block


def _block(**kwargs):
    torch.manual_seed(0)
    return CICMBlock(8, sets=3, set_size=4, **kwargs)


def test_block_generalises_only_complete_regions_and_only_in_training():
    block = _block()
    x = torch.randn(1, 8, 4, 4, generator=torch.Generator().manual_seed(7))
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :4, :] = 1  # the first row of regions is (partly) missing
    before = copy.deepcopy(block.memory.state_dict())
    block.eval()(x, mask)
    assert all(torch.equal(before[k], v) for k, v in block.memory.state_dict().items())
    reference = copy.deepcopy(block.memory)
    block.train()(x, mask)
    complete = x[0, :, 1:].permute(1, 2, 0).reshape(-1, 8)  # regions of rows 1..3
    want_anchors, want_features = reference.generalise(complete)
    torch.testing.assert_close(block.memory.features, want_features)
    torch.testing.assert_close(block.memory.anchors, want_anchors)


def test_gamma_zero_makes_augmentation_a_no_op_and_sides_swap():
    x = torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(8))
    mask = torch.zeros(2, 1, 16, 16)
    for side in ("prose", "equation"):
        block = _block(gamma_side=side).eval()
        with torch.no_grad():
            block.ratio.weight.zero_()
            block.ratio.bias.fill_(-1e4)  # sigmoid -> exactly 0
            out, aux = block(x, mask)
        ctx = block.memory.context(x.permute(0, 2, 3, 1).reshape(-1, 8), block.memory.anchors, block.memory.features)
        ctx = ctx.reshape(2, 4, 4, 8).permute(0, 3, 1, 2)
        assert aux == {}
        assert torch.equal(out, x) if side == "prose" else torch.allclose(out, ctx)


def test_gamma_modes_one_and_ground_truth():
    x = torch.randn(1, 8, 2, 2, generator=torch.Generator().manual_seed(9))
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :4] = 1  # region (0,0) fully missing
    mask[..., 4:6, 4:8] = 1  # region (1,1) half missing
    feats = x.permute(0, 2, 3, 1).reshape(-1, 8)
    one = _block(gamma_mode="one").eval()
    assert one.ratio is None
    ctx = one.memory.context(feats, one.memory.anchors, one.memory.features).reshape(1, 2, 2, 8).permute(0, 3, 1, 2)
    torch.testing.assert_close(one(x, mask)[0], ctx)  # w/o ratio: context fully propagated
    gt = _block(gamma_mode="ground_truth").eval()
    out = gt(x, mask)[0]
    torch.testing.assert_close(out[..., 0, 0], ctx[..., 0, 0])
    torch.testing.assert_close(out[..., 0, 1], x[..., 0, 1])
    torch.testing.assert_close(out[..., 1, 1], 0.5 * x[..., 1, 1] + 0.5 * ctx[..., 1, 1])


@pytest.mark.parametrize("ratio_target", ["difference", "mask", "fraction"])
def test_ratio_term_is_eq_7_against_the_regional_ground_truth(ratio_target):
    block = _block(ratio_target=ratio_target).train()
    g = torch.Generator().manual_seed(10)
    x, target = torch.randn(1, 8, 2, 2, generator=g), torch.rand(1, 3, 8, 8, generator=g)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 1:6, 2:7] = 1
    masked = target * (1 - mask)
    gamma = torch.sigmoid(block.ratio(x)).detach()
    _, aux = block(x, mask, masked, target)
    errors = []
    for i in range(2):
        for j in range(2):
            cell = (slice(4 * i, 4 * i + 4), slice(4 * j, 4 * j + 4))
            if ratio_target == "difference":
                truth = (masked[0][(slice(None), *cell)] - target[0][(slice(None), *cell)]).abs().mean()
            else:
                truth = mask[0, 0][cell].mean()
            errors.append(float(gamma[0, 0, i, j] - truth) ** 2)
    assert aux["ratio"].item() == pytest.approx(sum(errors) / 4, rel=1e-5)


def _quarters_mask():
    """(1,1,8,8) over 2x2 regions of 4x4 pixels: (0,0) all hole, (0,1) complete, (1,0) half, (1,1) a quarter."""
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :4] = 1
    mask[..., 4:8, 0:2] = 1
    mask[..., 6:8, 6:8] = 1
    return mask


@pytest.mark.parametrize("brightness", ["black", "white", "photo", "dark photo"])
def test_ratio_ground_truth_is_the_corrupted_fraction_whatever_the_brightness(brightness):
    """Eq. 7's gamma-bar: 1 for an all-hole region, 0 for a complete one, 0.5 for half, for any image."""
    g = torch.Generator().manual_seed(11)
    target = {
        "black": torch.zeros(1, 3, 8, 8),
        "white": torch.ones(1, 3, 8, 8),
        "photo": torch.rand(1, 3, 8, 8, generator=g),
        "dark photo": 0.05 * torch.rand(1, 3, 8, 8, generator=g),
    }[brightness]
    mask = _quarters_mask()
    want = torch.tensor([[[[1.0, 0.0], [0.5, 0.25]]]])
    block = _block().train()  # the default ratio_target
    truth = block.ratio_truth(mask, target * (1 - mask), target, (4, 4))
    torch.testing.assert_close(truth, want)
    torch.testing.assert_close(_block(ratio_target="mask").ratio_truth(mask, None, None, (4, 4)), want)  # old name
    x = torch.randn(1, 8, 2, 2, generator=g)
    gamma = torch.sigmoid(block.ratio(x)).detach()
    _, aux = block(x, mask, target * (1 - mask), target)
    assert aux["ratio"].item() == pytest.approx(float(((gamma - want) ** 2).mean()), rel=1e-5)
    # "w/ GT" uses the same ground truth: R = (1 - gamma-bar) F + gamma-bar ctx
    gt = _block(gamma_mode="ground_truth").eval()
    out, _ = gt(x, mask, target * (1 - mask), target)
    ctx = gt.memory.context(x.permute(0, 2, 3, 1).reshape(-1, 8), gt.memory.anchors, gt.memory.features)
    ctx = ctx.reshape(1, 2, 2, 8).permute(0, 3, 1, 2)
    torch.testing.assert_close(out, (1 - want) * x + want * ctx)


def test_old_difference_ground_truth_is_kept_as_an_option():
    """``ratio_target="difference"``: region mean of |zero-filled input - target| (black holes read as complete)."""
    mask = _quarters_mask()
    block = _block(ratio_target="difference")
    black, white = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    assert block.ratio_truth(mask, black, black, (4, 4)).abs().max() == 0
    torch.testing.assert_close(
        block.ratio_truth(mask, white * (1 - mask), white, (4, 4)), torch.tensor([[[[1.0, 0.0], [0.5, 0.25]]]])
    )
    gt = _block(gamma_mode="ground_truth", ratio_target="difference").eval()
    x = torch.randn(1, 8, 2, 2)
    with pytest.raises(InpaintlabError, match="difference"):
        gt(x, mask, black)  # "w/ GT" with this reading needs the ground truth image


def _weights_at_scale(memory, feats):
    """(N,K) softmax weights of each region over its chosen set (all K features)."""
    k = memory.features.shape[1]
    return memory.set_weights(feats, memory.select(feats, memory.anchors), memory.features, k).sum(1)


@pytest.mark.parametrize("similarity", ["dot", "scaled_dot", "cosine"])
def test_softmax_similarity_follows_its_formula_region_by_region(similarity):
    memory = _memory(softmax_similarity=similarity, softmax_scale=2.0)
    feats = torch.randn(6, 6, generator=torch.Generator().manual_seed(12))
    weights = _weights_at_scale(memory, feats)
    for f, w in zip(feats, weights):
        l = int((memory.anchors @ f).argmax())  # Eq. 1 stays the dot product
        c = memory.features[l]
        scores = {"dot": c @ f, "scaled_dot": c @ f / math.sqrt(6), "cosine": F.cosine_similarity(c, f[None], dim=1)}
        torch.testing.assert_close(w, torch.softmax(2.0 * scores[similarity], 0), rtol=1e-5, atol=1e-6)


def test_scaled_softmax_separates_full_and_top1_augmentation_at_512_channels():
    """The literal dot product is nearly one-hot for 512 channels (so 100 % aug ~ top-1 aug); scaled_dot is not."""
    feats = torch.randn(256, 512, generator=torch.Generator().manual_seed(13))  # unit-variance regional features
    stats = {}
    for similarity in ("dot", "scaled_dot"):
        memory = CrossImageMemory(512, softmax_similarity=similarity)
        w = _weights_at_scale(memory, feats)
        entropy = float(-(w * w.clamp_min(1e-30).log()).sum(1).mean()) / math.log(40)
        full = memory.context(feats, memory.anchors, memory.features)
        memory.augment_top = 1
        top1 = memory.context(feats, memory.anchors, memory.features)
        gap = float(((full - top1).norm(dim=1) / top1.norm(dim=1)).mean())
        stats[similarity] = (float((w.max(1).values > 0.99).float().mean()), entropy, gap)
    assert stats["dot"][0] > 0.5 and stats["dot"][1] < 0.15 and stats["dot"][2] < 0.2
    assert stats["scaled_dot"][0] == 0 and stats["scaled_dot"][1] > 0.7 and stats["scaled_dot"][2] > 0.7
    assert inspect.signature(CrossImageMemory).parameters["softmax_similarity"].default == "dot"  # checkpoints unchanged


def test_docstrings_say_what_unet15_is_and_what_is_not_built():
    import re

    from inpaintlab.models import cicm as cicm_module

    doc = " ".join(cicm_module.__doc__.split())
    found = re.search(r"(\d+) stride-2 convolutions and (\d+) transposed convolutions", doc)
    assert found, "the docstring says how many convolutions unet15 has"
    net = create_model("unet15_tiny", num_downs=8).nets["C"]  # the 256 px layout
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    transposed = sum(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    assert (int(found[1]), int(found[2])) == (convs, transposed) == (8, 8)
    assert "exactly 15" not in doc
    not_built = doc[doc.index("Not built") :]
    assert all(name in not_built for name in ("k-means", "RUC", "RFR", "JPG", "MISF"))


def test_options_are_validated():
    with pytest.raises(InpaintlabError, match="no option"):
        create_model("unet_cicm_tiny", sets=3, bogus=1)
    with pytest.raises(InpaintlabError, match="gamma_side"):
        create_model("unet_cicm_tiny", gamma_side="left")
    with pytest.raises(InpaintlabError, match="update_fraction"):
        create_model("unet_cicm_tiny", update_fraction=2)
    with pytest.raises(InpaintlabError, match="set_size"):
        create_model("unet_cicm_tiny", set_size=0)
    with pytest.raises(InpaintlabError, match="memory_depth"):
        create_model("unet_cicm_tiny", memory_depth=9)
    with pytest.raises(InpaintlabError, match="softmax_scale"):
        create_model("unet_cicm_tiny", softmax_scale=0)
    with pytest.raises(InpaintlabError, match="softmax_similarity"):
        create_model("unet_cicm_tiny", softmax_similarity="l2")
    with pytest.raises(InpaintlabError, match="ratio_target"):
        create_model("unet_cicm_tiny", ratio_target="mean")


# ------------------------------------------------------------------------------------------- the models


@pytest.mark.parametrize("name", TINY)
def test_models_shapes_aux_and_gradients(name, two_hole_batch):
    torch.manual_seed(0)
    model = create_model(name, sets=7, set_size=3).train()
    image, mask, _ = two_hole_batch()
    assert model.cicm.memory.features.shape[:2] == (7, 3)
    out = model(image, mask, target=image)
    assert out.pred.shape == image.shape and all(s.shape == image.shape for s in out.stages)
    assert set(out.aux) == {"ratio", "inter", "intra"} and all(v.ndim == 0 for v in out.aux.values())
    (out.aux["inter"] + out.aux["intra"]).backward()  # Eq. 8 reaches the network through generalisation
    first = next(p for p in model.backbone.parameters() if p.ndim == 4)
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert set(model.eval()(image, mask).aux) == set()
    assert "ratio" in model.train()(image, mask).aux  # the default ground truth needs only the mask
    torch.manual_seed(0)
    difference = create_model(name, ratio_target="difference").train()
    assert "ratio" not in difference(image, mask).aux  # the old reading: no target, no Eq. 7


def test_switches_remove_their_terms(two_hole_batch):
    image, mask, _ = two_hole_batch()
    torch.manual_seed(0)
    aux = (
        create_model("unet_cicm_tiny", use_inter=False, use_intra=False, gamma_mode="ground_truth")
        .train()(image, mask, target=image)
        .aux
    )
    assert aux == {}


def test_zero_gamma_unet_cicm_equals_unet15_with_the_same_weights(two_hole_batch):
    torch.manual_seed(0)
    cicm = create_model("unet_cicm_tiny").eval()
    plain = create_model("unet15_tiny").eval()
    plain.load_state_dict(cicm.backbone.state_dict())
    image, mask, _ = two_hole_batch()
    with torch.no_grad():
        cicm.cicm.ratio.weight.zero_()
        cicm.cicm.ratio.bias.fill_(-1e4)
        assert torch.equal(cicm(image, mask).pred, plain(image, mask).pred)
        cicm.cicm.ratio.bias.fill_(0.0)
        assert not torch.allclose(cicm(image, mask).pred, plain(image, mask).pred, atol=1e-4)


def test_memory_changes_only_in_training_and_hole_noise_is_ignored(two_hole_batch):
    torch.manual_seed(0)
    model = create_model("unet_cicm_tiny")
    image, mask, g = two_hole_batch()
    before = model.cicm.memory.features.clone()
    with torch.no_grad():
        model.eval()
        out = model(image, mask)
        noisy = model(image + mask * torch.rand(image.shape, generator=g), mask)
        assert torch.equal(model.cicm.memory.features, before)
        model.train()(image, mask)
    assert torch.equal(out.pred, noisy.pred)
    assert not torch.equal(model.cicm.memory.features, before)


def test_deep_copy_keeps_its_own_hook(two_hole_batch):
    torch.manual_seed(0)
    model = create_model("unet_cicm_tiny").train()
    twin = copy.deepcopy(model)  # the trainer's EMA copy
    image, mask, _ = two_hole_batch()
    before = model.cicm.memory.features.clone()
    with torch.no_grad():
        twin(image, mask)
    assert torch.equal(model.cicm.memory.features, before)
    assert not torch.equal(twin.cicm.memory.features, before)


def test_state_dict_and_checkpoint_round_trip(tmp_path, two_hole_batch):
    torch.manual_seed(0)
    kwargs = {"sets": 4, "set_size": 5, "gamma_side": "prose"}
    model = create_model("unet_cicm_tiny", **kwargs).train()
    for seed in range(3):
        image, mask, _ = two_hole_batch(seed=seed)
        with torch.no_grad():
            model(image, mask, target=image)
    model.eval()
    assert {"cicm.memory.features", "cicm.memory.anchors"} <= set(model.state_dict())
    image, mask, _ = two_hole_batch(seed=9)
    with torch.no_grad():
        want = model(image, mask).pred
        fresh = create_model("unet_cicm_tiny", **kwargs).eval()
        fresh.load_state_dict(model.state_dict())
        assert torch.equal(fresh(image, mask).pred, want)
        fresh.cicm.memory.load_state_dict(create_model("unet_cicm_tiny", **kwargs).cicm.memory.state_dict())
        assert not torch.allclose(fresh(image, mask).pred, want)  # the trained memory matters
    tensors = {f"generator.{k}": v for k, v in model.state_dict().items()}
    path = save_checkpoint(tmp_path / "cicm.safetensors", tensors, {"model": {"name": "unet_cicm_tiny", "kwargs": kwargs}})
    loaded = load_model(path)
    with torch.no_grad():
        assert torch.equal(loaded(image, mask).pred, want)


def test_unet15_is_the_15_block_unet_and_the_discriminator_gives_logits():
    torch.manual_seed(0)
    unet = create_model("unet15_tiny", num_downs=8)  # the 256 layout: 8 down + 7 up blocks (+ the outermost up)
    net = unet.nets["C"]
    assert len(unet.nets) == 1 and len(net.attention) == 0
    assert len(net.encoder) + len(net.decoder) - 1 == 15
    disc = create_discriminator("cicm_tiny")
    logits = disc(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 1, 3, 3) and logits.min() < 0  # raw logits for the relativistic loss


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load
def test_paper_defaults_and_torchscript_export(tmp_path):
    for factory in (unet_cicm, lgnet_cicm, msanet_cicm):
        with torch.device("meta"):
            model = factory()  # the paper's memory: 13 sets of 40 features at the 16x16 (depth 4) features
        assert tuple(model.cicm.memory.features.shape[:2]) == (13, 40) and model.cicm.memory.features.shape[2] > 0
        assert model.size_multiple == 256
    assert FULL == {"memory_depth": 4, "sets": 13, "set_size": 40}
    assert inspect.signature(CrossImageMemory).parameters["momentum"].default == 0.5  # beta of Eq. 3
    torch.manual_seed(0)
    model = create_model("unet_cicm_tiny", augment_fraction=0.5).eval()
    traced = torch.jit.load(export_model(model, tmp_path / "cicm.pt", "torchscript", size=64))
    image, mask = example_inputs(64, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(traced(image, mask), model(image, mask).pred)


@pytest.mark.parametrize("preset", ["unet_cicm_places2", "unet_cicm_celeba", "unet_cicm_tiny_builtin"])
def test_presets_judge_the_raw_result_as_eq_5_does(preset, two_hole_batch):
    """Eq. 5 feeds D the inpainting result I' itself, the same I' as the whole-image L2 of L_inpaint."""
    torch.manual_seed(0)
    image, mask, _ = two_hole_batch()
    with torch.no_grad():
        out = create_model("unet_cicm_tiny").eval()(image, mask)
    (fake,) = adversarial_images(PRESETS[preset].loss.adv_input, out, image, mask)
    assert torch.equal(fake, out.pred) and not torch.allclose(fake, composite(out.pred, image, mask))
