"""Frame sampling, looping, rotation and preprocessing, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srpo.reward.frames import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    batches,
    check_video,
    encode_skipping_empty,
    prefix_frame_rows,
    preprocess_frames,
    resize_size_for_crop,
    resolve_device,
    sample_frame_indices,
    sample_frames,
    sample_videos,
)


def test_indices_match_hand_values_and_official_call() -> None:
    # linspace(0, 9, 4) = 0, 3, 6, 9; linspace(0, 10, 4) = 0, 3.33, 6.67, 10 truncated to 0, 3, 6, 10.
    assert sample_frame_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert sample_frame_indices(11, 4).tolist() == [0, 3, 6, 10]
    assert sample_frame_indices(5, 5).tolist() == [0, 1, 2, 3, 4]
    assert sample_frame_indices(7, 1).tolist() == [0]
    for t in (64, 65, 100, 237, 513):
        assert np.array_equal(sample_frame_indices(t, 64), np.linspace(0, t - 1, num=64, dtype=int))


def test_short_clip_loops_cyclically_like_np_resize() -> None:
    assert sample_frame_indices(3, 8).tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    assert sample_frame_indices(1, 4).tolist() == [0, 0, 0, 0]
    assert sample_frame_indices(63, 64).tolist() == [*range(63), 0]


def test_sample_frames_picks_those_frames() -> None:
    video = np.arange(3, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), dtype=np.uint8)
    out = sample_frames(video, 5)
    assert out[:, 0, 0, 0].tolist() == [0, 1, 2, 0, 1]


def test_rotate_180_flips_both_image_axes() -> None:
    video = np.arange(2 * 2 * 3 * 3, dtype=np.uint8).reshape(2, 2, 3, 3)
    out = sample_frames(video, 2, rotate_180=True)
    assert np.array_equal(out[0], video[0][::-1, ::-1])
    assert out[0, 0, 0].tolist() == video[0, 1, 2].tolist()
    assert not np.array_equal(out, video)


def test_zero_frame_video_is_an_error_unless_skipped() -> None:
    good = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    empty = np.zeros((0, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="video 1 has zero frames"):
        sample_videos([good, empty], 4)
    sampled = sample_videos([good, empty, good], 4, skip_empty=True)
    assert sampled.valid.tolist() == [True, False, True]
    assert len(sampled.frames) == 2


def test_malformed_videos_are_rejected() -> None:
    with pytest.raises(ValueError, match="uint8"):
        sample_videos([np.zeros((2, 4, 4, 3), dtype=np.float32)])
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        sample_videos([np.zeros((2, 4, 4), dtype=np.uint8)])
    with pytest.raises(ValueError, match="no videos"):
        sample_videos([])
    with pytest.raises(ValueError, match="video 2 must be a numpy array, got list"):
        check_video([[0, 0, 0]], index=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"video 0 has empty frames of shape \(0, 4, 3\)"):
        sample_frames(np.zeros((2, 0, 4, 3), dtype=np.uint8))
    check_video(np.zeros((0, 0, 0, 3), dtype=np.uint8))  # a video with no frames is well-formed (skippable)


def test_frame_sampling_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="a video with 0 frames"):
        sample_frame_indices(0, 4)
    with pytest.raises(ValueError, match="num_samples must be >= 1, got 0"):
        sample_frame_indices(4, 0)
    video = np.zeros((5, 2, 2, 3), dtype=np.uint8)
    for length in (0, 6):
        with pytest.raises(ValueError, match=rf"prefix length {length} is outside \[1, 5\]"):
            prefix_frame_rows(video, [3, length], 4)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        batches(3, 0)
    assert batches(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]


def test_preprocess_refuses_bad_frames_and_sizes() -> None:
    frames = torch.zeros((2, 8, 8, 3), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"frames must be \(N, H, W, 3\), got \(2, 8, 8\)"):
        preprocess_frames(frames[..., 0], crop_size=4)
    with pytest.raises(ValueError, match=r"frames must be uint8, got torch\.float32"):
        preprocess_frames(frames.float(), crop_size=4)
    with pytest.raises(ValueError, match="resize_size=4 is smaller than crop_size=6"):
        preprocess_frames(frames, crop_size=6, resize_size=4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_device_without_cuda_names_the_fix() -> None:
    with pytest.raises(RuntimeError, match=r"set encoder\.device='cpu'"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


class _MeanEncoder:
    dim = 1

    def encode(self, videos: list[np.ndarray]) -> np.ndarray:
        return np.array([[float(v.mean())] for v in videos], dtype=np.float32)


def test_encode_skipping_empty_returns_only_valid_rows() -> None:
    videos = [np.full((2, 2, 2, 3), 10, np.uint8), np.zeros((0, 2, 2, 3), np.uint8), np.full((1, 2, 2, 3), 7, np.uint8)]
    emb, valid = encode_skipping_empty(_MeanEncoder(), videos)
    assert valid.tolist() == [True, False, True]
    assert emb[:, 0].tolist() == [10.0, 7.0]


def test_resize_size_for_crop() -> None:
    assert resize_size_for_crop(384) == 438
    assert resize_size_for_crop(224) == 256
    assert resize_size_for_crop(256) == 292


def test_centre_crop_scale_and_normalise_by_hand() -> None:
    frame = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(1, 4, 4, 3)
    out = preprocess_frames(torch.from_numpy(frame), crop_size=2, resize_size=4)
    assert out.shape == (1, 3, 2, 2)
    # No resize (short side already 4); crop rows/cols 1..2. Pixel (1, 1) channel 0 is 1·12 + 1·3 + 0 = 15.
    expected = (15 / 255.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert out[0, 0, 0, 0].item() == pytest.approx(expected, abs=1e-6)
    # Pixel (2, 2) channel 2: 2·12 + 2·3 + 2 = 32.
    assert out[0, 2, 1, 1].item() == pytest.approx((32 / 255.0 - IMAGENET_MEAN[2]) / IMAGENET_STD[2], abs=1e-6)


def test_bilinear_upsampling_by_hand() -> None:
    # Columns [0, 255] doubled to width 4: source x = (i + 0.5) / 2 − 0.5 → clamp(-0.25, .25, .75, 1.25)
    # gives 0, 0.25, 0.75, 1 of the step.
    frame = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    frame[:, :, 1] = 255
    out = preprocess_frames(torch.from_numpy(frame), crop_size=4, resize_size=4, mean=(0, 0, 0), std=(1, 1, 1))
    assert out[0, 0, 0].tolist() == pytest.approx([0.0, 0.25, 0.75, 1.0], abs=1e-6)


def test_short_side_resize_keeps_aspect_and_crops_centre() -> None:
    # 4 × 8 → short side 2 gives 2 × 4; the 2 × 2 crop starts at column round((4 − 2) / 2) = 1.
    frame = np.zeros((1, 4, 8, 3), dtype=np.uint8)
    frame[:, :, :4] = 255  # left half white
    out = preprocess_frames(torch.from_numpy(frame), crop_size=2, resize_size=2, mean=(0, 0, 0), std=(1, 1, 1))
    # Antialiased (triangle, support 2) shrink by 2: output column 1 is centred on source x = 3 and weighs source
    # columns 1, 2, 3, 4 by 1/8, 3/8, 3/8, 1/8; columns 1–3 are white → 7/8. Column 2 mirrors it → 1/8.
    assert out[0, 0, 0].tolist() == pytest.approx([0.875, 0.125], abs=1e-6)


def test_default_resize_is_256_over_224() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (2, 300, 300, 3), dtype=np.uint8)
    out = preprocess_frames(torch.from_numpy(frame), crop_size=224)
    assert out.shape == (2, 3, 224, 224)
    assert out.dtype == torch.float32
