"""Model binding: every model, even one registered late, uses the configured table."""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute

from offload.table import ALL_MODELS, TableModel, register_model
from tests.support import TABLE_NAME


def test_every_model_is_bound_to_the_table(runtime):
    assert {model.Meta.table_name for model in ALL_MODELS} == {TABLE_NAME}


def test_a_model_registered_after_binding_is_bound_at_once(runtime):
    class Late(TableModel):
        class Meta(TableModel.Meta):
            pass

        note = UnicodeAttribute()

    register_model(Late)
    Late("LATE#1", "LATE", note="bound").save()
    assert Late.get("LATE#1", "LATE").note == "bound"
    assert Late.Meta.table_name == TABLE_NAME
