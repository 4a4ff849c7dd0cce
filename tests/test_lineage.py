"""Run lineage: retrained from, faster copy of, relabelled from; children; deleted parents.

The status fields come from the code that writes them (TrainingRequest.describe, the label
loop's retrain_fields, lineage.origin_fields), so a change there shows up here.
"""

from __future__ import annotations

import pandas as pd
import pytest

from core.config import TrainConfig
from core.label_loop import retrain_fields
from core.lineage import DISTILLED, RELABELLED, RETRAINED, family, origin_fields, origin_of
from core.pipeline import TrainingRequest
from core.runs import RunStore
from core.schema import LabelScheme


def _request(**config) -> TrainingRequest:
    return TrainingRequest(
        table=pd.DataFrame({"text": ["a"], "label": ["x"]}),
        scheme=LabelScheme(text_columns=("text",), label_column="label"),
        config=TrainConfig(**config),
    )


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def _family_of_three(store: RunStore):
    parent = store.create("Category model")
    retrained = _request(parent_run=str(parent.path))
    child = store.create(
        "Category model · retrained", **retrained.describe(), **origin_fields(parent)
    )
    distilled = _request(teacher_run=str(parent.path))
    copy = store.create(
        "Category model · faster copy", **distilled.describe(), **origin_fields(parent)
    )
    relabelled = store.create(
        "Category model · changes v1", **retrain_fields(_request(), "u1", parent, 1)
    )
    return parent, child, copy, relabelled


def test_each_kind_of_origin_is_read_from_the_status(store):
    parent, child, copy, relabelled = _family_of_three(store)
    assert origin_of(child.status()).kind == RETRAINED
    assert origin_of(copy.status()).kind == DISTILLED
    assert origin_of(relabelled.status()).kind == RELABELLED
    assert {origin_of(r.status()).parent_id for r in (child, copy, relabelled)} == {parent.id}
    assert origin_of(parent.status()) is None


def test_the_family_names_parents_and_children(store):
    parent, child, copy, relabelled = _family_of_three(store)
    tree = family(store)
    assert tree.came_from(child.id) == "retrained from Category model"
    assert tree.came_from(copy.id) == "faster copy of Category model"
    assert tree.came_from(relabelled.id) == "relabelled from Category model"
    assert tree.came_from(parent.id) == ""
    assert [c for c, _ in tree.children(parent.id)] == sorted([child.id, copy.id, relabelled.id])
    built = tree.built_on(parent.id)
    assert "Category model · retrained (retrained)" in built
    assert "Category model · faster copy (faster copy)" in built
    assert tree.built_on(child.id) == ""


def test_a_renamed_parent_shows_its_new_name_and_a_deleted_one_its_last_known(store):
    parent, child, *_ = _family_of_three(store)
    store.rename(parent.id, "Renamed model")
    assert family(store).came_from(child.id) == "retrained from Renamed model"
    store.delete(parent.id)
    tree = family(store)
    assert tree.came_from(child.id) == "retrained from Category model (deleted)"
    assert not tree.exists(parent.id) and tree.exists(child.id)
    assert [s.run_id for s in store.list()].count(child.id) == 1


def test_a_relabelled_child_of_a_deleted_parent_falls_back_to_the_id(store):
    parent, _, _, relabelled = _family_of_three(store)
    store.delete(parent.id)
    assert family(store).came_from(relabelled.id) == f"relabelled from {parent.id} (deleted)"


def test_a_damaged_parent_is_not_called_deleted(store):
    parent, child, *_ = _family_of_three(store)
    (parent.path / "status.json").write_text("{broken", encoding="utf-8")
    tree = family(store)
    assert tree.came_from(child.id) == "retrained from Category model"
    assert tree.origin(parent.id) is None and tree.exists(parent.id)


def test_the_run_comparison_defaults_to_the_parent_of_every_kind(store):
    """run_parent (the comparison's default) gave a retrained run's parent folder, not its id,
    so the comparison did not preselect the run it came from."""
    from core.label_loop import run_parent

    parent, child, copy, relabelled = _family_of_three(store)
    assert [run_parent(r) for r in (child, copy, relabelled)] == [parent.id] * 3
    assert run_parent(parent) is None
