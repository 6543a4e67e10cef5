"""Hostile input through nginx on the native stack: each is rejected and harms no one."""

import pytest

from proving_ground import faults


@pytest.mark.parametrize("scenario", faults.HOSTILE, ids=lambda scenario: scenario.__name__)
async def test_hostile_input_is_rejected(stack, scenario):
    outcome = await faults.run(scenario, stack, "hostile")
    assert outcome.survived, outcome.detail
    assert outcome.stored == len(outcome.acknowledged)
