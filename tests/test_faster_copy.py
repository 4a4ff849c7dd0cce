"""The app's side of a faster copy: the layer counts offered, the extra unlabelled tickets.

(The Review page figures, ``speed_up``, are checked on a real distilled run in test_distill.)
"""

import pandas as pd
import pytest

from core.errors import DataError
from core.faster_copy import student_layer_choices, unlabelled_from_table


def test_the_app_offers_fewer_layers_than_the_teacher_and_reads_unlabelled_files(trained_run):
    assert student_layer_choices(trained_run) == ([1], 1), "the tiny teacher has 2 layers"
    table = pd.DataFrame({"ticket": ["my parcel is late", "", "refund please"], "x": "1"})
    assert unlabelled_from_table(trained_run, table) == ("my parcel is late", "refund please")
    with pytest.raises(DataError, match="'ticket'"):
        unlabelled_from_table(trained_run, table.rename(columns={"ticket": "body"}))
