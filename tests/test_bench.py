"""bench.py: parameter and MAC counts against hand computations, latency fields, the CLI on telea."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inpaintlab.bench import benchmark, count_parameters, format_report, thop_macs, true_macs
from inpaintlab.cli import main
from inpaintlab.types import InpaintModel, InpaintOutput

SIZE = 8  # image (1,3,8,8) + mask -> 4 input channels


class _SubConv(nn.Conv2d):
    """A Conv2d subclass: thop (exact type lookup) skips it, isinstance counting does not."""


class Toy(InpaintModel):
    """conv -> transposed conv (stride 2) -> BN -> tokens -> linear -> matmul + SDPA (functional)."""

    def __init__(self, conv_cls=nn.Conv2d):
        super().__init__()
        self.conv = conv_cls(4, 8, 3, padding=1)  # (1,8,8,8)
        self.up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)  # (1,4,16,16)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 6)  # tokens (1,256,4) -> (1,256,6)

    def forward(self, image, mask):
        x = self.bn(self.up(self.conv(torch.cat([image, mask], 1))))
        tokens = self.fc(x.flatten(2).transpose(1, 2))
        scores = tokens @ tokens.transpose(1, 2)  # (1,256,256)
        attended = F.scaled_dot_product_attention(tokens[:, None], tokens[:, None], tokens[:, None])
        return InpaintOutput(pred=image, aux={"s": scores.mean() + attended.mean()})


# Hand counts (MACs): conv out 8*8*8 elements x Cin 4 x 3*3; convT true = input 8*8*8 x Cout 4 x 4*4,
# thop = output 4*16*16 x Cin 8 x 4*4; BN 2 per element of 4*16*16; linear 256*6 outputs x 4 inputs;
# matmul 256x6 @ 6x256 = 256*256*6; SDPA = QK^T + AV = 2 * 256*256*6.
CONV = 512 * 4 * 9
CONVT_TRUE = 512 * 4 * 16
CONVT_THOP = 1024 * 8 * 16
BN_THOP = 2 * 1024
LINEAR = 1536 * 4
MATMUL = 256 * 256 * 6
SDPA = 2 * 256 * 256 * 6


def _inputs():
    gen = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, SIZE, SIZE, generator=gen), torch.zeros(1, 1, SIZE, SIZE)


def test_true_macs_match_hand_count():
    model = Toy().eval()
    result = true_macs(model, *_inputs())
    assert result["total"] == CONV + CONVT_TRUE + LINEAR + MATMUL + SDPA
    assert result["per_child"] == {"conv": CONV, "up": CONVT_TRUE, "bn": 0, "fc": LINEAR}


def test_thop_macs_match_hand_count():
    model = Toy().eval()
    result = thop_macs(model, *_inputs())
    assert CONVT_THOP == 4 * CONVT_TRUE  # the stride-2 over-count the paper numbers carry
    assert result["total"] == CONV + CONVT_THOP + BN_THOP + LINEAR
    assert result["per_child"] == {"conv": CONV, "up": CONVT_THOP, "bn": BN_THOP, "fc": LINEAR}


def test_thop_exact_types_skips_subclasses_like_thop():
    model = Toy(conv_cls=_SubConv).eval()
    assert thop_macs(model, *_inputs())["per_child"]["conv"] == CONV
    assert thop_macs(model, *_inputs(), exact_types=True)["per_child"]["conv"] == 0


def test_parameter_counts():
    model = Toy()
    model.fc.requires_grad_(False)
    counts = count_parameters(model)
    per_child = {"conv": 4 * 8 * 9 + 8, "up": 8 * 4 * 16 + 4, "bn": 4 + 4, "fc": 4 * 6 + 6}
    assert counts["per_child"] == per_child
    assert counts["total"] == sum(per_child.values())
    assert counts["trainable"] == sum(per_child.values()) - per_child["fc"]


def test_shared_parameters_counted_once():
    model = Toy()
    model.conv2 = model.conv
    counts = count_parameters(model)
    assert counts["total"] == 4 * 8 * 9 + 8 + 8 * 4 * 16 + 4 + 8 + 30


def test_benchmark_report_fields_and_table():
    report = benchmark(Toy(), size=SIZE, repeats=3, warmup=1)
    lat = report["cpu_latency"]
    assert lat["median_ms"] > 0 and lat["p90_ms"] >= lat["median_ms"] >= lat["min_ms"] > 0
    assert lat["threads"] == torch.get_num_threads() and lat["repeats"] == 3 and lat["batch"] == 1
    assert report["true_macs"]["total"] == CONV + CONVT_TRUE + LINEAR + MATMUL + SDPA
    assert "gpu" not in report
    table = format_report(report)
    assert "thop GMACs" in table and "fc" in table and "median" in table
    json.dumps(report)  # JSON-serialisable as written by the CLI


def test_benchmark_rejects_bad_settings():
    from inpaintlab.errors import InpaintlabError

    with pytest.raises(InpaintlabError, match="repeats"):
        benchmark(Toy(), size=SIZE, repeats=0)
    if not torch.cuda.is_available():
        with pytest.raises(InpaintlabError, match="CUDA"):
            benchmark(Toy(), size=SIZE, device="cuda")


def test_cli_bench_telea(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", "telea", "--size", "64", "--repeats", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["model"] == "telea"
    assert report["params"]["total"] == 0 and report["true_macs"]["total"] == 0
    assert report["cpu_latency"]["median_ms"] > 0
    assert "CPU latency" in capsys.readouterr().out


def test_cli_bench_bad_input_is_one_line_error(tmp_path, capsys):
    assert main(["bench", "--model", "no_such_model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("inpaintlab: error:") and "\n" not in err
    assert main(["bench", "--checkpoint", str(tmp_path / "missing.safetensors")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


class _Stacked(InpaintModel):
    """A ModuleList child (never called itself) holding two convs: (1,4,8,8) -> (1,6,8,8) -> (1,2,8,8)."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Conv2d(4, 6, 3, padding=1), nn.Conv2d(6, 2, 1)])

    def forward(self, image, mask):
        x = torch.cat([image, mask], 1)
        for block in self.blocks:
            x = block(x)
        return InpaintOutput(pred=image, aux={"x": x.mean()})


def test_per_child_counts_through_module_lists():
    expected = 6 * 64 * 4 * 9 + 2 * 64 * 6  # out elements x Cin x k^2 for each conv
    model = _Stacked().eval()
    assert true_macs(model, *_inputs())["per_child"] == {"blocks": expected}
    assert thop_macs(model, *_inputs())["per_child"] == {"blocks": expected}
