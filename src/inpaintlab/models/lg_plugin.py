"""LGNet's local and global refinement as a plug-in for any generator (LGNet Sec. IV-D, Table VIII).

"Our local and global refinement network can be directly inserted into the end of any existing networks"
(LGNet abstract): the existing network is the first stage, LGNet's Net_L and Net_G_att follow it, wired as
LGNet wires its own stages (official ``pix2pixglg_model.py``, implementation-notes 1.5). In [-1,1] space::

    first = backbone(image, mask)                      # any registered generator, its own input convention
    comp1 = known * (1 - mask) + first * mask;  local  = Net_L(cat([comp1, mask]))
    comp2 = known * (1 - mask) + local * mask;  global = Net_G_att(cat([comp2, mask]))

``forward(image (B,3,H,W) [0,1], mask (B,1,H,W) 1 = hole, **extras)`` -> ``InpaintOutput(pred = global,
stages = (*backbone stages, backbone pred, local), aux = backbone aux)``, all in [0,1], not composited. The
backbone's aux terms (PEN-Net's pyramid, CSTFNet's contrastive pair, CICM's memory terms) pass through
unchanged, and so do the extra training inputs it declares (``training_inputs``: ``mask2``, ``target``).

* Net_L = ``LocalRefineNet`` (5,483,203 parameters at ``ngf_local=64``), Net_G_att = ``UNetGenerator`` with
  attention at 1/16, 1/8, 1/4 of the input side (55,104,003 at ``ngf_unet=64, num_downs=8``): LGNet's own
  classes, built and initialised (pix2pix normal(0, 0.02), global torch RNG) as ``lgnet`` builds them; the
  backbone keeps its own initialisation. ``size_multiple`` = lcm(backbone's, ``2**num_downs``).
* ``<backbone>_lg`` is registered for every trainable backbone that is a network of its own: ``pennet_lg``
  (PEN_LG, the paper's Table VIII row), ``srpnet_lg``, ``msanet_lg``, ``pconv_unet_lg``, ``cstfnet_lg``, each
  with a ``_tiny`` variant (backbone ``_tiny``, LG stages at ``lgnet_tiny``'s widths: 64x64 inputs). Not
  registered: ``lgnet*`` (already LG-refined), ``unet15`` (``unet15`` + LG *is* LGNet: same layers, same
  wiring, tested), the CICM models (CICM is itself a plug-in; ``lg_refine(create_model("unet_cicm"))``
  composes them) and the classical fills (nothing to train before the LG stages). Any module with the
  generator contract can be wrapped in Python: ``lg_refine(backbone, ngf_unet=..., ...)``.
* Factory keywords: the LG options (``ngf_unet``, ``ngf_local``, ``num_downs``, ``attention_levels``,
  ``use_fast_attention``, ``channels_last`` -- the latter only for the added stages), every other keyword
  goes to the backbone's factory (``create_model("msanet_lg", freeze_encoder_bn=True)``).
* ``param_groups()``: ``G1`` = the backbone (its own groups as ``G1.<name>`` when it has several), ``G2`` =
  Net_L, ``G3`` = Net_G_att, like LGNet's netG1/G2/G3. Training (presets ``<backbone>_lg_<dataset>``): the
  backbone's recipe ("the training strategy also adopts their original setting") plus LGNet's terms on the
  added stages (valid/hole L1 on every stage; perceptual 0.05, style 120, TV 0.1 on stages 2 and 3; the
  discriminator judges the first stage's composite, as in LGNet and in PEN-Net, whose D judges its output's
  composite). Choices are documented next to the presets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import InpaintlabError
from ..layers.blocks import init_pix2pix_weights
from ..types import InpaintModel, InpaintOutput, check_image_mask, check_size_multiple, masked_input
from ._registry import create_model, register_model
from .lgnet import LocalRefineNet, UNetGenerator

LG_OPTIONS = ("ngf_unet", "ngf_local", "num_downs", "attention_levels", "use_fast_attention", "channels_last")
LG_FULL = {"ngf_unet": 64, "ngf_local": 64, "num_downs": 8, "attention_levels": (4, 3, 2)}
LG_TINY = {"ngf_unet": 8, "ngf_local": 8, "num_downs": 6, "attention_levels": (4, 3, 2)}  # = lgnet_tiny
BACKBONES = {
    "pennet": "pennet_tiny",
    "srpnet": "srpnet_tiny",
    "msanet": "msanet_tiny",
    "pconv_unet": "pconv_unet_tiny",
    "cstfnet": "cstfnet_tiny",
}  # full -> tiny backbone


class LGRefined(InpaintModel):
    """``backbone`` -> Net_L -> Net_G_att (module docstring). ``forward(image, mask) -> InpaintOutput``."""

    def __init__(
        self,
        backbone: nn.Module,
        ngf_unet: int = 64,
        ngf_local: int = 64,
        num_downs: int = 8,
        attention_levels: Sequence[int] = (4, 3, 2),
        use_fast_attention: bool = True,
        channels_last: bool = True,
    ):
        super().__init__()
        if not backbone.trainable:
            raise InpaintlabError("the LG refinement needs a network backbone; a classical fill has nothing to train")
        self.backbone = backbone
        self.nets = nn.ModuleDict(
            {
                "L": LocalRefineNet(4, 3, ngf_local),
                "G_att": UNetGenerator(4, 3, ngf_unet, num_downs, tuple(attention_levels), use_fast_attention),
            }
        )
        init_pix2pix_weights(self.nets)
        if channels_last:
            self.nets.to(memory_format=torch.channels_last)
        self.size_multiple = math.lcm(backbone.size_multiple, 2**num_downs)
        self.training_inputs, self.aux_terms = backbone.training_inputs, dict(backbone.aux_terms)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """``G1`` = backbone (``G1.<name>`` per group if it declares several), ``G2`` = Net_L, ``G3`` = Net_G_att."""
        groups = self.backbone.param_groups()
        first = {"G1" if len(groups) == 1 else f"G1.{name}": list(params) for name, params in groups.items()}
        return {**first, "G2": list(self.nets["L"].parameters()), "G3": list(self.nets["G_att"].parameters())}

    def forward(self, image: Tensor, mask: Tensor, **extras: Tensor) -> InpaintOutput:
        """extras: the backbone's declared extra training inputs (``training_inputs``: CSTFNet's ``mask2``,
        CICM's ``target``), passed to it by name; any other keyword is an error."""
        check_image_mask(image, mask)
        check_size_multiple(image, self.size_multiple, self.model_name)
        unknown = sorted(set(extras) - self.training_inputs)
        if unknown:
            raise InpaintlabError(
                f"{self.model_name} takes the extra inputs {sorted(self.training_inputs) or 'none'}, got {unknown[0]!r}"
            )
        image = masked_input(image, mask)
        first = self.backbone(image, mask, **extras)
        known = (image * 2 - 1) * (1 - mask)  # [-1,1], hole = 0
        x = first.pred * 2 - 1
        outputs = []
        for name in ("L", "G_att"):
            x = self.nets[name](torch.cat([known + x * mask, mask], dim=1))
            outputs.append(x)
        local, refined = ((o + 1) / 2 for o in outputs)
        return InpaintOutput(pred=refined, stages=(*first.stages, first.pred, local), aux=dict(first.aux))


def lg_refine(backbone: InpaintModel, **options) -> LGRefined:
    """``backbone`` followed by LGNet's Net_L and Net_G_att; ``options``: ``LG_OPTIONS`` (defaults: full width).

    The result declares the backbone's extra training inputs (``mask2``, ``target``) and passes them on.
    """
    unknown = sorted(set(options) - set(LG_OPTIONS))
    if unknown:
        raise InpaintlabError(f"the LG refinement has no option {unknown[0]!r}; it accepts: {', '.join(LG_OPTIONS)}")
    return LGRefined(backbone, **options)


def _register(name: str, backbone: str, lg_defaults: dict) -> None:
    def factory(**options) -> LGRefined:
        lg = {**lg_defaults, **{key: options.pop(key) for key in LG_OPTIONS if key in options}}
        return lg_refine(create_model(backbone, **options), **lg)

    widths = (
        f"Net_L ngf {lg_defaults['ngf_local']}, Net_G_att ngf {lg_defaults['ngf_unet']} with "
        f"{lg_defaults['num_downs']} downsamplings"
    )
    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = (
        f"``{backbone}`` + LGNet's local and global refinement ({widths}); keywords: "
        f"{', '.join(LG_OPTIONS)}, the rest go to ``{backbone}``."
    )
    register_model(factory)


for _full, _tiny in BACKBONES.items():  # pennet first: the paper's PEN_LG
    _register(f"{_full}_lg", _full, LG_FULL)
    _register(f"{_full}_lg_tiny", _tiny, LG_TINY)

__all__ = ["BACKBONES", "LG_OPTIONS", "LGRefined", "lg_refine"]
