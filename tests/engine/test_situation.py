"""The situation abstraction on hand-built 7x7 views."""

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

from workers.situation import Target, describe, mission_targets, target_planes

NAV = ("left", "right", "forward")


def _with(cells: dict) -> np.ndarray:
    """An all-empty 7x7 view; cells maps (x, y) -> (object, color[, state])."""
    image = np.zeros((7, 7, 3), np.uint8)
    image[..., 0] = OBJECT_TO_IDX["empty"]
    for (x, y), (obj, color, *state) in cells.items():
        image[x, y] = (OBJECT_TO_IDX[obj], COLOR_TO_IDX[color], state[0] if state else 0)
    return image


def test_ball_straight_ahead():
    s = describe(_with({(3, 4): ("ball", "red")}), "go to the red ball", NAV)
    assert "The red ball is 2 steps straight ahead." in s.text
    assert s.key.endswith("redball:2c")


def test_right_is_positive_x_and_left_negative():
    right = describe(_with({(5, 3): ("ball", "red")}), "go to the red ball", NAV)
    left = describe(_with({(1, 6): ("ball", "red")}), "go to the red ball", NAV)
    assert "3 steps ahead and 2 steps to your right" in right.text
    assert "2 steps to your left, level with you" in left.text
    assert right.key != left.key


def test_adjacent_cells_and_wall():
    image = _with({(3, 5): ("wall", "grey"), (2, 6): ("door", "yellow", 2), (4, 6): ("ball", "red")})
    s = describe(image, "go to the red ball", NAV)
    assert "In front of you: a wall." in s.text
    assert "On your left: a locked yellow door." in s.text
    assert "On your right: a red ball." in s.text
    assert "level with you" in s.text


def test_target_in_front_and_not_in_view():
    front = describe(_with({(3, 5): ("ball", "red")}), "go to the red ball", NAV)
    assert "right in front of you" in front.text and front.key.endswith("redball:front")
    missing = describe(_with({(3, 2): ("ball", "blue")}), "go to the red ball", NAV)
    assert "You do not see the red ball." in missing.text


def test_nearest_instance_and_far_bucket():
    s = describe(_with({(3, 0): ("key", "green"), (6, 5): ("key", "green")}), "pick up the green key", NAV)
    assert "1 step ahead and 3 steps to your right" in s.text
    far = describe(_with({(3, 0): ("key", "green")}), "pick up the green key", NAV)
    assert "more than 3 steps straight ahead" in far.text and "farc" in far.key


def test_carrying_is_read_from_the_agent_cell():
    s = describe(_with({(3, 6): ("key", "yellow")}), "open the door", NAV)
    assert "You are carrying a yellow key." in s.text


def test_same_key_same_text_and_distances_are_bucketed():
    a = describe(_with({(3, 1): ("ball", "red")}), "go to the red ball", NAV)  # 5 ahead
    b = describe(_with({(3, 0): ("ball", "red")}), "go to the red ball", NAV)  # 6 ahead
    assert a.key == b.key and a.text == b.text


def test_mission_targets_and_planes():
    assert mission_targets("use the key to open the door and then get to the goal") == (
        Target(None, "key"), Target(None, "door"), Target(None, "goal"))
    assert mission_targets("put the red ball next to the blue box") == (Target("red", "ball"), Target("blue", "box"))
    planes = target_planes(mission_targets("go to the red ball"), (7, 7))
    assert (planes[..., 0] == OBJECT_TO_IDX["ball"]).all() and (planes[..., 1] == COLOR_TO_IDX["red"] + 1).all()
    assert not target_planes((), (7, 7)).any()
