"""Tunnels that connect together are offered different public ports at once, instead of
all trying the bottom of the range in turn."""

from __future__ import annotations

from camgate.uplink.port_picker import PortPicker


def test_tunnels_binding_together_are_offered_different_ports():
    picker = PortPicker((20000, 20009))
    first = next(picker.candidates(taken=set()))
    picker.binding.add(first)  # its bind is under way
    second = next(picker.candidates(taken=set()))
    assert (first, second) == (20000, 20001)


def test_the_search_starts_past_the_last_port_handed_out_and_wraps_around():
    picker = PortPicker((20000, 20003))
    assert next(picker.candidates(taken=set())) == 20000
    assert next(picker.candidates(taken={20000})) == 20001
    assert list(picker.candidates(taken={20000, 20001})) == [20002, 20003]
    assert list(picker.candidates(taken={20001, 20002, 20003})) == [20000]


def test_no_range_means_any_port():
    assert list(PortPicker(None).candidates(taken=set())) == [0]
