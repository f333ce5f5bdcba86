"""Action tokenizer: hand-computed bins, round trips, clipping, NaN errors, gripper conventions, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srpo.policies.tokenizer import ActionTokenizer
from srpo.types import Demo


def _tok(q01: float = -1.0, q99: float = 1.0, **kw: object) -> ActionTokenizer:
    return ActionTokenizer(q01=np.full(7, q01), q99=np.full(7, q99), **kw)  # type: ignore[arg-type]


def test_identity_stats_bins_by_hand() -> None:
    tok = _tok()
    a = np.array([[-1.0, 0.0, 1.0, -0.5, 0.999, -0.999, 1.0]])
    bins = tok.encode(a)
    # edges = linspace(-1, 1, 256): -1 → 0, 0 → 127 (edges[127] < 0 < edges[128]), +1 → 255 (OpenVLA layout),
    # -0.5 → floor((−0.5 + 1) · 255 / 2) = 63.
    assert bins[0, :4].tolist() == [0, 127, 255, 63]
    decoded = tok.decode(bins)
    assert decoded[0, 1] == pytest.approx(0.0, abs=1e-7)  # centre 127 is exactly 0
    assert decoded[0, 2] == pytest.approx(1.0 - 1.0 / 255.0, abs=1e-6)  # bin 255 decodes to the last centre
    assert decoded[0, 0] == pytest.approx(-1.0 + 1.0 / 255.0, abs=1e-6)


def test_round_trip_within_half_a_bin() -> None:
    rng = np.random.default_rng(0)
    q01 = np.array([-0.9, -0.3, -0.5, -0.1, -0.2, -0.05, -1.0])
    q99 = np.array([0.8, 0.4, 0.9, 0.1, 0.25, 0.05, 1.0])
    tok = ActionTokenizer(q01=q01, q99=q99)
    a = rng.uniform(q01, q99, size=(500, 7))
    a[:, 6] = rng.choice([-1.0, 1.0], size=500)
    err = np.abs(tok.decode(tok.encode(a)) - a)
    half_bin = (q99 - q01) / 255.0 / 2.0 * 1.0001
    assert np.all(err[:, :6] <= half_bin[:6] + 1e-6)
    assert np.array_equal(tok.decode(tok.encode(a))[:, 6], a[:, 6])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=7, max_size=7))
def test_round_trip_property_clips_to_percentiles(values: list[float]) -> None:
    q01 = np.array([-0.5, -0.2, -1.0, -0.1, -0.3, -0.4, -1.0])
    q99 = np.array([0.5, 0.6, 0.2, 0.1, 0.3, 0.4, 1.0])
    tok = ActionTokenizer(q01=q01, q99=q99)
    a = np.array(values)
    out = tok.decode(tok.encode(a[None]))[0]
    expected = np.clip(a, q01, q99)
    assert np.all(np.abs(out[:6] - expected[:6]) <= (q99 - q01)[:6] / 510.0 + 1e-6)
    assert out[6] == (1.0 if a[6] > 0 else -1.0)


def test_out_of_range_actions_saturate_the_edge_bins() -> None:
    tok = _tok(-0.5, 0.5)
    bins = tok.encode(np.array([[3.0, -3.0, 0.5, -0.5, 100.0, -100.0, 0.0]]))
    assert bins[0, :6].tolist() == [255, 0, 255, 0, 255, 0]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_actions_raise(bad: float) -> None:
    tok = _tok()
    a = np.zeros((3, 7))
    a[1, 2] = bad
    with pytest.raises(ValueError, match=r"NaN/inf at 1 positions \(first index \[1, 2\]\)"):
        tok.encode(a)
    with pytest.raises(ValueError, match="NaN/inf"):
        ActionTokenizer.fit(a)


def test_decode_rejects_out_of_range_bins() -> None:
    with pytest.raises(ValueError, match=r"bins must lie in \[0, 256\)"):
        _tok().decode(np.full((1, 7), 256))


def test_env_gripper_is_binarised_and_not_normalised() -> None:
    # Stats far from [-1, 1] must not touch the gripper; 0 counts as open (-1).
    tok = ActionTokenizer(q01=np.full(7, 0.2), q99=np.full(7, 0.3))
    a = np.zeros((4, 7))
    a[:, 6] = [-1.0, 1.0, 0.3, 0.0]
    assert tok.decode(tok.encode(a))[:, 6].tolist() == [-1.0, 1.0, 1.0, -1.0]


def test_openvla_gripper_maps_unit_interval_and_inverts() -> None:
    tok = _tok(gripper_convention="openvla")
    # Env −1 (open) is OpenVLA's training value 1.0 → top bin; env +1 (close) is 0.0 → middle bin 127.
    assert tok.encode(np.array([[0, 0, 0, 0, 0, 0, -1.0], [0, 0, 0, 0, 0, 0, 1.0]]))[:, 6].tolist() == [255, 127]
    # OpenVLA's model value 1 = open → env -1 (open); 0 = close → env +1 (close).
    bins = np.zeros((2, 7), dtype=np.int64)
    bins[0, 6] = 254  # centre ≈ 0.996 → 2g − 1 > 0 → sign +1 → inverted to −1
    bins[1, 6] = 128  # centre ≈ 0.0078 → 2g − 1 < 0 → −1 → inverted to +1
    assert tok.decode(bins)[:, 6].tolist() == [-1.0, 1.0]
    env = np.zeros((2, 7))
    env[:, 6] = [-1.0, 1.0]
    assert tok.decode(tok.encode(env))[:, 6].tolist() == [-1.0, 1.0]


def test_fit_uses_percentiles_and_json_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    acts = rng.normal(size=(300, 7))
    demo = Demo(np.zeros((300, 4, 4, 3), np.uint8), np.zeros((300, 0), np.float32), acts.astype(np.float32),
                "x", 0, "s")
    tok = ActionTokenizer.fit([demo])
    # The stats are computed in float64 from the float32 actions (numpy 2 would keep float32 and round).
    stored = acts.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(tok.q01, np.quantile(stored, 0.01, axis=0), rtol=1e-12)
    np.testing.assert_allclose(tok.q99, np.quantile(stored, 0.99, axis=0), rtol=1e-12)
    tok.save(tmp_path / "t.json")
    back = ActionTokenizer.load(tmp_path / "t.json")
    np.testing.assert_array_equal(back.q01, tok.q01)
    np.testing.assert_array_equal(back.encode(acts), tok.encode(acts))


def test_chunk_layout_is_step_major() -> None:
    tok = _tok()
    chunk = np.linspace(-0.9, 0.9, 8 * 7).reshape(1, 8, 7)
    tokens = tok.encode_chunk(chunk)
    assert tokens.shape == (1, 56)
    assert tokens[0, 7 * 3 + 2] == tok.encode(chunk[0, 3:4])[0, 2]
    np.testing.assert_allclose(tok.decode_tokens(tokens, 8)[0, :, :6], chunk[0, :, :6], atol=1 / 255)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"q01": np.zeros(7), "q99": np.ones(6)}, r"q01 \(7,\) and q99 \(6,\) must have the same shape"),
        ({"q01": np.full(7, np.nan), "q99": np.ones(7)}, "q01/q99 must be finite"),
        ({"q01": np.zeros(7), "q99": np.full(7, np.inf)}, "q01/q99 must be finite"),
        ({"q01": np.ones(7), "q99": np.zeros(7)}, "q99 must be >= q01 in every dimension"),
        ({"q01": -np.ones(7), "q99": np.ones(7), "num_bins": 1}, "num_bins=1 is invalid: use at least 2"),
        ({"q01": -np.ones(7), "q99": np.ones(7), "gripper_dim": 7}, r"gripper_dim=7 outside 0\.\.6"),
        ({"q01": -np.ones(7), "q99": np.ones(7), "gripper_convention": "ros"}, "gripper_convention='ros'"),
    ],
)
def test_invalid_stats_are_refused_naming_the_value(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        ActionTokenizer(**kwargs)  # type: ignore[arg-type]


def test_damaged_tokenizer_file_is_refused_on_load(tmp_path) -> None:
    # A checkpoint's action_tokenizer.json with swapped stats must not load as a tokenizer that maps every
    # action to the wrong bin.
    path = tmp_path / "action_tokenizer.json"
    _tok().save(path)
    d = json.loads(path.read_text())
    d["q01"], d["q99"] = d["q99"], d["q01"]
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="q99 must be >= q01"):
        ActionTokenizer.load(path)


def test_fit_and_codecs_refuse_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="zero demonstrations"):
        ActionTokenizer.fit([])
    for actions in (np.zeros(7), np.zeros((0, 7))):
        with pytest.raises(ValueError, match=r"expected \(N, action_dim\) actions with N > 0"):
            ActionTokenizer.fit(actions)
    tok = _tok()
    with pytest.raises(ValueError, match="actions have 6 dimensions, tokenizer has 7"):
        tok.encode(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="bins have 6 dimensions, tokenizer has 7"):
        tok.decode(np.zeros((2, 6), dtype=np.int64))
    with pytest.raises(ValueError, match="expected 2 × 7 = 14 tokens, got 13"):
        tok.decode_tokens(np.zeros(13, dtype=np.int64), chunk_size=2)
