"""Hypothesis strategies for the allocation properties (keyword-only, small, composable)."""

from __future__ import annotations

from hypothesis import strategies as st


def grad_norms(*, min_layers: int = 2, max_layers: int = 64) -> st.SearchStrategy[list[float]]:
    """Per-layer average gradient norms: finite, 0 or in [1e-6, 100], with repeats and wide dynamic range.

    Non-zero norms below 1e-6 are left out: rescaling them can underflow to subnormals and merge distinct values,
    which no real gradient norm does.
    """
    value = st.one_of(
        st.just(0.0),
        st.floats(min_value=1e-6, max_value=100.0, allow_nan=False, allow_infinity=False),
        st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.0]),  # repeats exercise ties between layers
    )
    return st.lists(value, min_size=min_layers, max_size=max_layers)


def stage_counts(n_layers: int, *, max_stages: int = 17) -> st.SearchStrategy[int]:
    """Mostly 3 or more stages (where eq. 8's ladder has a middle), some 1 and 2."""
    top = max(1, min(n_layers, max_stages))
    several = st.integers(min_value=min(3, top), max_value=top)
    return st.one_of(several, several, several, st.integers(min_value=1, max_value=min(2, top)))


def r_standards() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(1, 512), st.sampled_from([8, 16, 32, 64, 128, 256]))


def delta_ds() -> st.SearchStrategy[int]:
    return st.integers(min_value=1, max_value=8)


def stage_sizes(*, max_stages: int = 17, max_size: int = 16) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(1, max_size), min_size=1, max_size=max_stages)
