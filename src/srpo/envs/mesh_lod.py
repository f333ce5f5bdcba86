"""Coarser copies of triangle meshes for rendering only (vertex clustering), as pure array functions.

LIBERO scenes are geometry-bound under Mesa's software rasteriser: a 128² agentview frame draws ~290 k
triangles (one black bowl alone has 42 k) into ~16 k pixels, and the frame's cost follows the triangle count,
not the image size. Clustering the vertices of the dense meshes on a grid keeps their silhouettes to within a
grid cell and removes most triangles (`LiberoConfig.render_quality="lean"`, benchmarks/render_quality.py).

The simplified faces re-use the mesh's own vertices, normals and texture coordinates, so they fit in the MuJoCo
model's existing arrays: `srpo.envs.libero` swaps them in only while the render context uploads the meshes and
restores the originals right after, so physics never sees them.
"""

from __future__ import annotations

import numpy as np


def cluster_faces(
    vert: np.ndarray,
    face: np.ndarray,
    face_normal: np.ndarray,
    face_texcoord: np.ndarray,
    grid: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertex-clustering simplification of one triangle mesh that adds no vertex, normal or texture coordinate.

    The mesh's bounding box is cut into cubic cells of side (longest box edge) / grid. Every vertex used by a
    face is replaced by the lowest-index used vertex of its cell (its representative); faces are re-indexed,
    faces with two corners in one cell are dropped, and of faces joining the same three cells only the first is
    kept (whatever the corner order). Each corner takes the normal and texture-coordinate indices that its
    representative has at its first corner in `face` (row-major order).

    Args:
        vert: (V, 3) float vertex positions.
        face: (F, 3) int vertex indices in [0, V).
        face_normal: (F, 3) int normal index of each corner (MuJoCo's mesh_facenormal, mesh-local).
        face_texcoord: (F, 3) int texture-coordinate index of each corner (mesh_facetexcoord; any value, e.g.
            -1 for an untextured mesh, is carried through).
        grid: Cells along the longest edge of the bounding box, >= 1.

    Returns:
        (face, face_normal, face_texcoord) of the simplified mesh, each (F', 3) with F' <= F, in the order of the
        first input face each comes from.
    """
    vert = np.asarray(vert, dtype=np.float64)
    face = np.asarray(face, dtype=np.int64)
    face_normal = np.asarray(face_normal, dtype=np.int64)
    face_texcoord = np.asarray(face_texcoord, dtype=np.int64)
    if vert.ndim != 2 or vert.shape[1] != 3:
        raise ValueError(f"vert must have shape (V, 3), got {vert.shape}")
    if face.ndim != 2 or face.shape[1] != 3 or face_normal.shape != face.shape or face_texcoord.shape != face.shape:
        raise ValueError(f"face, face_normal and face_texcoord must share a shape (F, 3), got {face.shape}, "
                         f"{face_normal.shape}, {face_texcoord.shape}")
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    if face.size == 0:
        return face.copy(), face_normal.copy(), face_texcoord.copy()
    if face.min() < 0 or face.max() >= len(vert):
        raise ValueError(f"face indices must lie in [0, {len(vert)}), got [{face.min()}, {face.max()}]")
    corners = face.reshape(-1)
    used, first_corner = np.unique(corners, return_index=True)  # used vertices, ascending
    pos = vert[used]
    low = pos.min(axis=0)
    cell = max(float((pos.max(axis=0) - low).max()) / grid, np.finfo(np.float64).tiny)
    keys = np.minimum(np.floor((pos - low) / cell).astype(np.int64), grid - 1)
    # np.unique's return_index gives the first (lowest-index, since `used` ascends) vertex of every cell.
    _, cell_first, cell_of = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    representative = np.empty(int(corners.max()) + 1, dtype=np.int64)
    representative[used] = used[cell_first[cell_of.reshape(-1)]]
    normal_of = np.empty_like(representative)
    texcoord_of = np.empty_like(representative)
    normal_of[used] = face_normal.reshape(-1)[first_corner]
    texcoord_of[used] = face_texcoord.reshape(-1)[first_corner]

    new_face = representative[face]
    keep = ((new_face[:, 0] != new_face[:, 1]) & (new_face[:, 1] != new_face[:, 2])
            & (new_face[:, 0] != new_face[:, 2]))
    kept = np.flatnonzero(keep)
    _, first = np.unique(np.sort(new_face[kept], axis=1), axis=0, return_index=True)
    kept = kept[np.sort(first)]
    new_face = new_face[kept]
    return new_face, normal_of[new_face], texcoord_of[new_face]
