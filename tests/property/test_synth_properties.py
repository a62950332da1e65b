"""Invariants of the generator for arbitrary small sizes, seeds and layouts (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.synth import model


@settings(max_examples=12, deadline=None)
@given(records=st.integers(1, 400), seed=st.integers(0, 2**32 - 1), sites=st.integers(1, 12),
       quarters=st.integers(1, 12))
def test_invariants(records, seed, sites, quarters):
    d = model.generate(records, seed, sites=sites, quarters=quarters)
    ep = d.episodes
    assert ep["level"].shape[0] == records  # exactly N discharge rows
    assert (ep["discharge_day"] >= ep["admit_day"]).all()
    assert ep["discharge_day"].max() <= d.data_end_day
    start, _end, labels = model.quarter_bounds("2026Q3", quarters)
    assert (ep["discharge_day"] >= (start - model.date(1970, 1, 1)).days).all()
    assert len(labels) == quarters and labels[-1] == "2026Q3"
    assert ep["site"].max() < sites
    # the observed outcome is the assigned arm's potential outcome
    iop = ep["level"] == model.IOP
    res = np.isin(ep["level"], model.RESIDENTIAL)
    assert (ep["reason"][iop] == ep["po_reason_iop"][iop]).all()
    assert (ep["reason"][res] == ep["po_reason_res"][res]).all()
    assert (ep["res_sub"][res] == ep["level"][res]).all()
    # a person's episodes do not overlap
    order = np.lexsort((ep["admit_day"], ep["person"]))
    same = ep["person"][order][1:] == ep["person"][order][:-1]
    assert (ep["admit_day"][order][1:][same] >= ep["discharge_day"][order][:-1][same]).all()
    fu = d.followups
    if fu["episode"].shape[0]:
        assert (fu["contact_day"] >= ep["discharge_day"][fu["episode"]]).all()
        assert fu["contact_day"].max() <= d.data_end_day
    for entry in d.truth["effects"].values():
        if entry["ate"] is not None:
            assert -1 <= entry["ate"] <= 1
