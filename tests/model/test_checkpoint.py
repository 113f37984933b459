"""Checkpoints: round trip, weights_only loading, refusal of foreign or mismatched files."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch

from clearcube import BadInputError, CheckpointMismatchError
from clearcube.bands import S2_BANDS
from clearcube.model.checkpoint import (
    checkpoint_sha256,
    default_checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from clearcube.model.config import ModelConfig, UNetConfig
from clearcube.model.unet import UNet

CFG = ModelConfig(
    unet=UNetConfig(
        model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_ds=(2,), norm_groups=8
    )
)


def _trained_like_net(seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    net = UNet(CFG.unet)
    for p in net.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    return net


def _inputs():
    g = torch.Generator().manual_seed(3)
    return (
        torch.randn(1, 13, 16, 16, generator=g),
        torch.tensor([5]),
        torch.randn(1, 2, 16, 16, generator=g),
    )


def test_round_trip_gives_same_outputs(tmp_path):
    net, ema = _trained_like_net(0), _trained_like_net(1)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    net(*_inputs()).square().mean().backward()
    opt.step()
    path = save_checkpoint(
        tmp_path / "a" / "m.pt", net, CFG, step=7, ema=ema, optimizer=opt, extra={"note": "x"}
    )
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temp file left behind

    raw, cfg, meta = load_checkpoint(path, use_ema=False, expect_s2_bands=S2_BANDS)
    assert cfg == CFG and meta["step"] == 7 and meta["extra"] == {"note": "x"}
    assert meta["sha256"] == checkpoint_sha256(path) and len(meta["sha256"]) == 64
    with torch.no_grad():
        torch.testing.assert_close(raw(*_inputs()), net.eval()(*_inputs()))
        loaded_ema, _, meta_ema = load_checkpoint(path)
        assert meta_ema["weights"] == "ema"
        torch.testing.assert_close(loaded_ema(*_inputs()), ema.eval()(*_inputs()))

    payload = torch.load(path, weights_only=True)  # only tensors and plain types inside
    assert payload["s2_bands"] == list(S2_BANDS) and payload["step"] == 7
    opt2 = torch.optim.AdamW(raw.parameters(), lr=1e-4)
    opt2.load_state_dict(payload["optimizer"])
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]


def test_other_bands_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", _trained_like_net(), CFG, step=0)
    with pytest.raises(
        CheckpointMismatchError, match=r"trained on bands .*B01.*the cube has \['B02', 'B03'\]"
    ):
        load_checkpoint(path, expect_s2_bands=["B02", "B03"])
    with pytest.raises(CheckpointMismatchError, match="SAR"):
        load_checkpoint(path, expect_s1_bands=["VV"])


def test_foreign_files_are_refused(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": {}}, plain)
    with pytest.raises(CheckpointMismatchError, match="not a clearcube checkpoint"):
        load_checkpoint(plain)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"format": "clearcube-checkpoint", "x": Evil()}, fh)
    with pytest.raises(CheckpointMismatchError, match="cannot be loaded safely"):
        load_checkpoint(evil)
    with pytest.raises(BadInputError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_channel_mismatch_between_config_and_weights_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", _trained_like_net(), CFG, step=0)
    payload = torch.load(path, weights_only=True)
    payload["config"]["unet"]["model_channels"] = 32
    payload["config"]["unet"]["norm_groups"] = 8
    torch.save(payload, path)
    with pytest.raises(CheckpointMismatchError, match="do not fit"):
        load_checkpoint(path)


def test_default_checkpoint_is_found_or_explained():
    try:
        path = default_checkpoint_path()
    except BadInputError as exc:
        assert "clearcube train --config" in str(exc)
    else:
        assert path.name == "demo.pt" and path.is_file()


def test_config_dataclass_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CFG.unet.model_channels = 3  # type: ignore[misc]
