"""ENAS's controller: REINFORCE over an LSTM policy, and the memory regularizer against collapse."""

from __future__ import annotations

import pytest

from raynas.runner._study import StudySpec, run_study
from raynas.searchers import OptionError, get_searcher


def _study(graph, seed: int, budget: int = 300, **options):
    return run_study(StudySpec("enas", seed, "val_accuracy", "max", budget, options=options), graph)


@pytest.mark.parametrize("seed", [0, 1])
def test_memory_regularizer_spreads_the_hidden_states(graph, seed):
    """The ENAS blog's diagnostic: without the regularizer the final hidden state varies little
    across sampled cells; reconstructing past cells makes it encode them."""
    plain, _ = _study(graph, seed)
    regular, _ = _study(graph, seed, memory_regularizer=True)
    # 299 results reach the searcher (the last one would be fed before a 301st suggestion)
    assert plain.updates == regular.updates == 29 and len(regular.memory) == 299 and plain.memory == []
    assert regular.hidden_spread() > 1.3 * plain.hidden_spread()
    assert plain.hidden_spread() == plain.hidden_spread(seed=0)  # a private generator: repeatable


@pytest.mark.parametrize("seed", [0, 1])
def test_the_controller_learns_towards_good_cells(graph, seed):
    """REINFORCE moves the policy: the cells that scored best have become likelier than those that
    scored worst (at the start every cell is about as likely as any other)."""
    searcher, st = _study(graph, seed, budget=400)
    fresh = get_searcher("enas", graph.space, metric="val_accuracy", mode="max", seed=seed)
    ranked = sorted(searcher.evaluated, key=lambda h: h["score"])
    worst, best = [h["arch"] for h in ranked[:50]], [h["arch"] for h in ranked[-50:]]
    gain = searcher.log_likelihood(best).mean() - searcher.log_likelihood(worst).mean()
    before = fresh.log_likelihood(best).mean() - fresh.log_likelihood(worst).mean()
    assert gain > before + 0.5, (gain, before)


def test_bad_options_are_clear_errors(graph):
    with pytest.raises(OptionError, match="num_aggregate must be > 0"):
        get_searcher("enas", graph.space, num_aggregate=0)
    with pytest.raises(OptionError, match="baseline_decay"):
        get_searcher("enas", graph.space, baseline_decay=1.0)
