"""LIBERO-Plus task names → dimensions, the seeded task draw and the asset check (no simulator needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from srpo.envs.perturbations import (
    PLUS_DIMENSIONS,
    PlusVariant,
    UnknownVariantError,
    bddl_problem,
    missing_assets,
    parse_plus_task,
    plus_catalogue,
    read_plus_task_map,
    scene_index,
    select_variants,
)

BOWL = "pick_up_the_black_bowl_between_the_plate_and_the_ramekin_and_place_it_on_the_plate"
CENTRE = "pick_up_the_black_bowl_from_table_center_and_place_it_on_the_plate"


@pytest.mark.parametrize(
    ("suffix", "dimension", "family", "level", "bddl_suffix"),
    [
        ("_view_11_15_100_0_0_initstate_0", "camera", "view", None, ""),
        ("_view_0_0_115_0_0_initstate_0", "camera", "view", None, ""),
        ("_view_0_0_100_0_0_initstate_7", "robot", "initstate", None, ""),
        ("_language_3_view_0_0_100_0_0_initstate_0", "language", "language", None, "_language_3"),
        ("_light_12", "light", "light", None, "_light_12"),
        ("_table_4", "background", "table", None, "_table_4"),
        ("_tb_12", "background", "tb", None, "_tb_12"),
        ("_view_0_0_100_0_0_initstate_0_noise_23", "noise", "noise", 3, ""),
        ("_add_10", "layout", "add", None, "_add_10"),
        ("_level4_sample2", "layout", "level", 4, "_level4_sample2"),
    ],
)
def test_each_suffix_names_its_dimension(
    suffix: str, dimension: str, family: str, level: int | None, bddl_suffix: str
) -> None:
    variant = parse_plus_task(BOWL + suffix, "libero_spatial")
    assert (variant.dimension, variant.family, variant.level) == (dimension, family, level)
    assert variant.base_name == BOWL
    assert variant.bddl_name == BOWL + bddl_suffix


def test_base_names_that_contain_a_suffix_word_are_kept_whole() -> None:
    # "from_table_center" must not read as a `_table_K` background variant, nor lose its words.
    assert parse_plus_task(CENTRE + "_table_3", "libero_spatial").base_name == CENTRE
    assert parse_plus_task(CENTRE + "_view_0_0_100_0_0_initstate_2", "libero_spatial").dimension == "robot"
    goal = parse_plus_task("open_the_middle_drawer_of_the_cabinet_moved_level2_sample1", "libero_goal")
    assert (goal.base_name, goal.level) == ("open_the_middle_drawer_of_the_cabinet", 2)


def test_noise_index_maps_to_kind_and_severity() -> None:
    kinds = {n: parse_plus_task(f"{BOWL}_view_0_0_100_0_0_initstate_0_noise_{n}", "s") for n in (1, 10, 11, 41, 50)}
    assert [(v.noise_kind, v.level) for v in kinds.values()] == [
        ("motion_blur", 1), ("motion_blur", 10), ("gaussian_blur", 1), ("glass_blur", 1), ("glass_blur", 10)]


def test_robot_variant_and_init_state_counts() -> None:
    robot = parse_plus_task(BOWL + "_view_0_0_100_0_0_initstate_7", "s")
    assert robot.robot_init == 7 and robot.num_init_states == 50
    assert parse_plus_task(BOWL + "_add_3", "s").num_init_states == 1
    assert parse_plus_task(BOWL + "_level1_sample1", "s").num_init_states == 1
    assert parse_plus_task(BOWL + "_light_1", "s").num_init_states == 50


@pytest.mark.parametrize("name", [BOWL, BOWL + "_view_0_0_100_0_0_initstate_0", BOWL + "_shadow_2"])
def test_names_without_a_perturbation_are_rejected(name: str) -> None:
    with pytest.raises(UnknownVariantError):
        parse_plus_task(name, "libero_spatial")


def test_task_map_is_read_without_importing(tmp_path: Path) -> None:
    path = tmp_path / "libero_suite_task_map.py"
    path.write_text("import this_module_does_not_exist\n"
                    "libero_task_map = {'libero_spatial': ['a_light_1', 'b_add_2']}\n")
    task_map = read_plus_task_map(path)
    assert task_map == {"libero_spatial": ["a_light_1", "b_add_2"]}
    assert [v.dimension for v in plus_catalogue(task_map, "libero_spatial")] == ["light", "layout"]
    with pytest.raises(KeyError, match="libero_10"):
        plus_catalogue(task_map, "libero_10")


def _catalogue() -> list[PlusVariant]:
    names = []
    for base in ("task_a", "task_b", "task_c"):
        names += [f"{base}_light_{k}" for k in range(1, 6)]
        names += [f"{base}_view_0_0_100_0_0_initstate_{k}" for k in range(1, 4)]
    return [parse_plus_task(n, "libero_spatial") for n in names]


def test_selection_alternates_base_tasks_and_is_seeded() -> None:
    chosen = select_variants(_catalogue(), ["light", "robot"], ["task_a", "task_b"], 7, seed=0)
    assert list(chosen) == ["light", "robot"]
    assert [v.base_name for v in chosen["light"]] == ["task_a", "task_b"] * 3 + ["task_a"]
    assert all(v.dimension == "light" for v in chosen["light"])
    # Fewer exist than asked: all 6 robot variants of the two tasks, none of task_c.
    assert len(chosen["robot"]) == 6 and {v.base_name for v in chosen["robot"]} == {"task_a", "task_b"}
    again = select_variants(_catalogue(), ["light", "robot"], ["task_a", "task_b"], 7, seed=0)
    assert again == chosen
    others = [select_variants(_catalogue(), ["light"], ["task_a", "task_b"], 2, seed=s)["light"] for s in range(6)]
    assert len({tuple(v.name for v in o) for o in others}) > 1


def test_selection_rejects_unknown_dimensions_and_counts() -> None:
    with pytest.raises(ValueError, match="lighting"):
        select_variants(_catalogue(), ["lighting"], ["task_a"], 1, seed=0)
    with pytest.raises(ValueError, match="num_per_dimension"):
        select_variants(_catalogue(), ["light"], ["task_a"], 0, seed=0)
    assert select_variants(_catalogue(), ["camera"], ["task_a"], 3, seed=0) == {"camera": []}
    assert set(PLUS_DIMENSIONS) == {"camera", "robot", "language", "light", "background", "noise", "layout"}


def test_missing_assets_names_what_an_asset_root_lacks(tmp_path: Path) -> None:
    light = parse_plus_task(BOWL + "_light_3", "libero_spatial")
    add = parse_plus_task(BOWL + "_add_3", "libero_spatial")
    camera = parse_plus_task(BOWL + "_view_11_15_100_0_0_initstate_0", "libero_spatial")
    scene = ("scenes/lights/tabletop_light_sync_modified_3.xml", "textures/gray_floor.png")
    reason = missing_assets(light, tmp_path, scene)
    assert reason is not None and "scenes/lights/tabletop_light_sync_modified_3.xml" in reason and "--assets" in reason
    assert "gray_floor" in reason
    assert missing_assets(add, tmp_path) is not None  # added objects need assets/new_objects
    assert missing_assets(camera, tmp_path) is None
    assert missing_assets(parse_plus_task(BOWL + "_level1_sample1", "s"), tmp_path) is None
    for rel in scene:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("<mujoco/>")
    assert missing_assets(light, tmp_path, scene) is None


def test_scene_index_reads_scene_files_and_textures_from_the_sources(tmp_path: Path) -> None:
    (tmp_path / "arenas").mkdir()
    (tmp_path / "problems").mkdir()
    (tmp_path / "arenas" / "style.py").write_text(
        'FLOOR_STYLE = {"light-gray": "gray_floor.png", "Carbon_6K": "Carbon_6K.png"}\n'
        'WALL_STYLE = {"light-gray-plaster": "light-gray-plaster.png"}\n')
    (tmp_path / "problems" / "floor.py").write_text(
        "class Libero_Floor_Manipulation(BDDLBaseDomain):\n    pass\n\n"
        "class Libero_Floor_Manipulation_Carbon(Libero_Floor_Manipulation):\n"
        '    def __init__(self, **kwargs):\n        kwargs.update({"scene_properties": {"floor_style": "Carbon_6K",\n'
        '            "wall_style": "light-gray-plaster"}})\n\n'
        "class Libero_Tabletop_Manipulation_tabletop_light_sync_modified_0(Base):\n"
        '    def __init__(self, **kwargs):\n        kwargs.update({"scene_xml": "scenes/lights/x_0.xml"})\n')
    index = scene_index(tmp_path)
    assert index == {
        "libero_floor_manipulation_carbon": ("textures/Carbon_6K.png", "textures/light-gray-plaster.png"),
        "libero_tabletop_manipulation_tabletop_light_sync_modified_0": ("scenes/lights/x_0.xml",),
    }
    bddl = tmp_path / "t.bddl"
    bddl.write_text("(define (problem Libero_Floor_Manipulation_Carbon)\n  (:domain robosuite)\n")
    assert bddl_problem(bddl) == "libero_floor_manipulation_carbon"
