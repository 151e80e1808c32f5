"""Model registry (timm style): a factory registered under its own function name.

The one factory idiom: a factory takes ``**options`` and returns ``build(target, options, **defaults)``;
``build`` checks the options against ``target``'s keyword arguments (the registry's check, for every
model), so a variant states only what differs (its defaults, and ``fixed`` arguments it pins).

>>> from inpaintlab.models import list_models
>>> "telea" in list_models()
True
"""

from __future__ import annotations

import fnmatch
import inspect
from typing import Any, Callable, Iterable, Mapping

from torch import nn

from ..errors import InpaintlabError
from ..types import InpaintDiscriminator, InpaintModel, ModelSpec

_GENERATORS: dict[str, Callable[..., nn.Module]] = {}
_DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {}


def _register(table: dict, kind: str, fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    name = fn.__name__
    if name in table:
        raise RuntimeError(f"{kind} {name!r} is registered twice")
    table[name] = fn
    return fn


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a generator factory under ``fn.__name__``."""
    return _register(_GENERATORS, "model", fn)


def register_discriminator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a discriminator factory under ``fn.__name__``."""
    return _register(_DISCRIMINATORS, "discriminator", fn)


class UnknownOption(InpaintlabError):
    """Raised by ``build``; the registry rewords it with the model's name."""

    def __init__(self, option: str, accepted: list[str]):
        super().__init__(f"no option {option!r}; it accepts: {', '.join(accepted) or 'none'}")
        self.option, self.accepted = option, accepted


def build(
    target: Callable[..., nn.Module],
    options: Mapping[str, Any],
    /,
    *,
    fixed: Mapping[str, Any] | None = None,
    extra: Iterable[str] = (),
    **defaults: Any,
) -> nn.Module:
    """``target(**{**defaults, **options, **fixed})`` after checking ``options``.

    Accepted options: ``target``'s named keyword arguments plus ``extra`` (names it forwards through its own
    ``**kwargs``), less the ``fixed`` ones. An unknown option raises ``UnknownOption``.
    """
    fixed = dict(fixed or {})
    params = inspect.signature(target).parameters
    named = [n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    accepted = [n for n in (*named, *extra) if n not in fixed]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UnknownOption(unknown[0], accepted)
    return target(**{**defaults, **options, **fixed})


def _create(table: dict, kind: str, name: str, kwargs: dict) -> nn.Module:
    if name not in table:
        close = fnmatch.filter(sorted(table), f"*{name.split('_')[0]}*")
        hint = f" (did you mean {', '.join(close[:5])}?)" if close else ""
        raise InpaintlabError(f"unknown {kind} {name!r}{hint}; see `inpaintlab models` for the list")
    fn = table[name]
    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise InpaintlabError(f"{kind} {name!r} has no option {unknown[0]!r}; it accepts: {', '.join(params) or 'none'}")
    try:
        model = fn(**kwargs)
    except UnknownOption as err:
        raise InpaintlabError(
            f"{kind} {name!r} has no option {err.option!r}; it accepts: {', '.join(err.accepted) or 'none'}"
        ) from None
    base = InpaintModel if kind == "model" else InpaintDiscriminator
    if not isinstance(model, base):
        raise InpaintlabError(f"{kind} factory {name!r} returned a {type(model).__name__}, not an {base.__name__}")
    model.spec = ModelSpec(name, dict(kwargs))  # the one record of what was built; checkpoints store it
    return model


def create_model(name: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build generator ``name``. It has ``forward(image, mask) -> InpaintOutput`` (DESIGN.md).

    ``pretrained=True`` builds it with the kwargs of its shipped weights (``pretrained.py``; overriding
    them is an error) and loads those weights, in eval mode; a name without weights is an error.
    """
    if not pretrained:
        return _create(_GENERATORS, "model", name, kwargs)
    from ..pretrained import load_pretrained_weights, model_card

    card_kwargs = model_card(name)["model"]["kwargs"]  # other options fail load_pretrained_weights's check
    return load_pretrained_weights(_create(_GENERATORS, "model", name, {**card_kwargs, **kwargs}), name)


def create_discriminator(name: str, **kwargs) -> nn.Module:
    """Build discriminator ``name`` (see ``list_discriminators``)."""
    return _create(_DISCRIMINATORS, "discriminator", name, kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted generator names matching a glob pattern."""
    return sorted(fnmatch.filter(_GENERATORS, pattern))


def list_discriminators(pattern: str = "*") -> list[str]:
    """Sorted discriminator names matching a glob pattern."""
    return sorted(fnmatch.filter(_DISCRIMINATORS, pattern))


def is_model(name: str) -> bool:
    """Whether a generator named ``name`` is registered."""
    return name in _GENERATORS
