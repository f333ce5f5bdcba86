"""Mesh simplification for rendering (`srpo.envs.mesh_lod`) and its upload into a render context, without MuJoCo."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from srpo.envs.libero import upload_simplified_meshes
from srpo.envs.mesh_lod import cluster_faces

# v0 and v1 share a cell at grid 2 (cell side 0.5 over the unit box); v2 and v3 each have their own.
VERT = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
FACE = np.array([[0, 2, 3], [1, 2, 3], [0, 1, 2]])
NORMAL = np.array([[10, 12, 13], [11, 12, 13], [10, 11, 12]])
TEXCOORD = np.array([[20, 22, 23], [21, 22, 23], [20, 21, 22]])


def test_cluster_faces_hand_computed() -> None:
    face, normal, texcoord = cluster_faces(VERT, FACE, NORMAL, TEXCOORD, grid=2)
    # v1 -> v0: face 1 becomes a duplicate of face 0, face 2 a degenerate (0, 0, 2): both dropped.
    np.testing.assert_array_equal(face, [[0, 2, 3]])
    np.testing.assert_array_equal(normal, [[10, 12, 13]])
    np.testing.assert_array_equal(texcoord, [[20, 22, 23]])
    # A fine grid keeps every vertex apart and every face (with its own corner indices where unambiguous).
    face, normal, _ = cluster_faces(VERT, FACE, NORMAL, TEXCOORD, grid=100)
    np.testing.assert_array_equal(face, FACE)
    np.testing.assert_array_equal(normal[0], [10, 12, 13])


def test_duplicates_are_found_whatever_the_corner_order() -> None:
    face = np.array([[0, 1, 2], [2, 0, 1], [1, 0, 2], [0, 2, 3]])
    vert = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    out, _, _ = cluster_faces(vert, face, face, face, grid=4)
    np.testing.assert_array_equal(out, [[0, 1, 2], [0, 2, 3]])


def _sphere(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere with n × n quads (2 n² triangles, some degenerate at the poles)."""
    theta, phi = np.meshgrid(np.linspace(0, np.pi, n + 1), np.linspace(0, 2 * np.pi, n + 1), indexing="ij")
    vert = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1).reshape(-1, 3)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    return vert, np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])


def test_dense_mesh_keeps_its_shape_with_far_fewer_faces() -> None:
    vert, face = _sphere(80)
    out, normal, texcoord = cluster_faces(vert, face, face, -np.ones_like(face), grid=8)
    assert len(out) < len(face) / 10
    used = np.unique(out)
    # Only the mesh's own vertices are used, and they still span the sphere.
    assert np.all(np.isin(used, np.unique(face)))
    np.testing.assert_allclose(vert[used].min(0), -1, atol=0.1)
    np.testing.assert_allclose(vert[used].max(0), 1, atol=0.1)
    # Corners carry their representative's normal index; texture coordinates pass through.
    np.testing.assert_array_equal(normal, out)
    assert np.all(texcoord == -1)


def test_bad_meshes_are_rejected() -> None:
    with pytest.raises(ValueError, match="grid"):
        cluster_faces(VERT, FACE, NORMAL, TEXCOORD, grid=0)
    with pytest.raises(ValueError, match="share a shape"):
        cluster_faces(VERT, FACE, NORMAL[:2], TEXCOORD, grid=2)
    with pytest.raises(ValueError, match="face indices"):
        cluster_faces(VERT, FACE + 2, NORMAL, TEXCOORD, grid=2)
    empty = np.zeros((0, 3), dtype=np.int64)
    assert cluster_faces(VERT, empty, empty, empty, grid=2)[0].shape == (0, 3)


class _FakeContext:
    """robosuite's MjRenderContext as upload_simplified_meshes sees it; records the faces at upload time."""

    def __init__(self, model: SimpleNamespace, fail: bool = False) -> None:
        self.model = SimpleNamespace(_model=model)
        self.con = SimpleNamespace(free=lambda: None)
        self.fail = fail
        self.uploaded: dict[str, np.ndarray] = {}

    def _set_mujoco_context_and_buffers(self) -> None:
        m = self.model._model
        self.uploaded = {"facenum": m.mesh_facenum.copy(), "face": m.mesh_face.copy()}
        if self.fail:
            raise RuntimeError("GL error")


def _model() -> SimpleNamespace:
    """Two meshes: a dense sphere (3200 triangles) and the 3-triangle mesh above, in MuJoCo's flat layout."""
    sv, sf = _sphere(40)
    vert = np.concatenate([sv, VERT]).astype(np.float32)
    face = np.concatenate([sf, FACE]).astype(np.int32)  # mesh-local vertex indices, as in MjModel
    return SimpleNamespace(nmesh=2, mesh_vert=vert, mesh_face=face, mesh_facenormal=face.copy(),
                           mesh_facetexcoord=np.full_like(face, -1),
                           mesh_vertadr=np.array([0, len(sv)]), mesh_vertnum=np.array([len(sv), len(VERT)]),
                           mesh_faceadr=np.array([0, len(sf)]), mesh_facenum=np.array([len(sf), len(FACE)]))


def test_upload_simplifies_dense_meshes_only_while_the_context_is_built() -> None:
    model = _model()
    before = {k: v.copy() for k, v in vars(model).items() if isinstance(v, np.ndarray)}
    context = _FakeContext(model)
    total = upload_simplified_meshes(context, grid=8, min_faces=100)
    uploaded = context.uploaded
    assert uploaded["facenum"][1] == 3 and 3 < uploaded["facenum"][0] < before["mesh_facenum"][0] / 5
    assert total == uploaded["facenum"].sum()
    # The small mesh's faces were untouched, the dense mesh's uploaded faces are its simplified ones.
    np.testing.assert_array_equal(uploaded["face"][before["mesh_faceadr"][1]:], FACE)
    expected, _, _ = cluster_faces(model.mesh_vert[:before["mesh_vertnum"][0]], before["mesh_face"][:1600 * 2],
                                   before["mesh_facenormal"][:3200], before["mesh_facetexcoord"][:3200], 8)
    np.testing.assert_array_equal(uploaded["face"][:len(expected)], expected)
    # Afterwards the model is bit-for-bit what it was: physics never sees the simplified meshes.
    for key, value in before.items():
        np.testing.assert_array_equal(getattr(model, key), value, err_msg=key)


def test_upload_restores_the_model_when_building_the_context_fails() -> None:
    model = _model()
    before = {k: v.copy() for k, v in vars(model).items() if isinstance(v, np.ndarray)}
    with pytest.raises(RuntimeError, match="GL error"):
        upload_simplified_meshes(_FakeContext(model, fail=True), grid=8, min_faces=100)
    for key, value in before.items():
        np.testing.assert_array_equal(getattr(model, key), value, err_msg=key)
