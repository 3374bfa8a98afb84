import json
import random

import pytest

from nas_core.space import Dimension, InvalidArchitectureError, InvalidSpaceError, SearchSpace

RATIOS = [0.25, 0.5, 1, 2, 3, 4]


def space() -> SearchSpace:
    return SearchSpace([Dimension("conv1", tuple(RATIOS)), Dimension("conv2", tuple(RATIOS)),
                        Dimension("act", ("relu", "sign")), Dimension("bn", (True, False))])


def test_size_names_and_sample_is_valid_and_json():
    s = space()
    assert s.size == 6 * 6 * 2 * 2
    assert s.names == ("conv1", "conv2", "act", "bn")
    rng = random.Random(0)
    for _ in range(50):
        arch = s.sample(rng)
        assert s.validate(arch) == arch
        assert json.loads(json.dumps(arch)) == arch


def test_validate_names_bad_key_and_value():
    s = space()
    good = {"conv1": 1, "conv2": 0.5, "act": "relu", "bn": True}
    with pytest.raises(InvalidArchitectureError, match="conv1=5"):
        s.validate({**good, "conv1": 5})
    with pytest.raises(InvalidArchitectureError, match="unknown dimension 'conv9'"):
        s.validate({**good, "conv9": 1})
    with pytest.raises(InvalidArchitectureError, match="missing dimension 'act'"):
        s.validate({k: v for k, v in good.items() if k != "act"})
    with pytest.raises(InvalidArchitectureError, match="bn=1"):
        s.validate({**good, "bn": 1})  # 1 is not True
    assert s.check({**good, "conv2": 7}) is not None
    assert s.check(good) is None


def test_validate_canonicalises_numbers_and_key_is_stable():
    s = space()
    a = {"bn": True, "act": "relu", "conv2": 2.0, "conv1": 1.0}
    b = {"conv1": 1, "conv2": 2, "act": "relu", "bn": True}
    assert s.validate(a) == b
    assert list(s.validate(a)) == list(s.names)
    assert s.key(a) == s.key(b)
    assert s.key(b) != s.key({**b, "conv1": 2})


def test_mutate_changes_at_least_one_gene_and_stays_valid():
    s = space()
    rng = random.Random(1)
    parent = {"conv1": 1, "conv2": 1, "act": "relu", "bn": True}
    for rate in (0.0, 0.25, 1.0):
        child = s.mutate(parent, rng, rate)
        assert s.check(child) is None
        assert child != parent
    with pytest.raises(ValueError, match="mutation rate"):
        s.mutate(parent, rng, 1.5)


def test_crossover_takes_genes_from_parents_only():
    s = space()
    rng = random.Random(2)
    a = {"conv1": 0.25, "conv2": 0.25, "act": "relu", "bn": True}
    b = {"conv1": 4, "conv2": 4, "act": "sign", "bn": False}
    seen_mixed = False
    for _ in range(40):
        child = s.crossover(a, b, rng)
        assert all(child[k] in (a[k], b[k]) for k in s.names)
        seen_mixed |= child not in (a, b)
    assert seen_mixed


def test_nni_json_round_trip_and_generic_space():
    s = space()
    spec = s.to_nni()
    assert spec["conv1"] == {"_type": "choice", "_value": RATIOS}
    assert SearchSpace.from_nni(json.loads(json.dumps(spec))) == s
    assert s.decode(s.encode({"conv1": 4, "conv2": 0.25, "act": "sign", "bn": False})) == {
        "conv1": 4, "conv2": 0.25, "act": "sign", "bn": False}


@pytest.mark.parametrize("spec, message", [
    ({}, "non-empty"),
    ({"x": {"_type": "uniform", "_value": [0, 1]}}, "'uniform' is not supported"),
    ({"x": {"_type": "choice", "_value": []}}, "non-empty list of choices"),
    ({"x": {"_type": "choice", "_value": [1, 1]}}, "appears twice"),
    ({"x": {"_type": "choice", "_value": [[1, 2]]}}, "not a JSON scalar"),
    ({"x": {"_type": "choice", "_value": [{"_name": "a"}]}}, "nested choices"),
    ({"x": {"_type": "choice"}}, "expected"),
    ({"x": {"_type": "choice", "_value": [float("nan")]}}, "not a JSON scalar"),
])
def test_bad_nni_spaces_name_the_problem(spec, message):
    with pytest.raises(InvalidSpaceError, match=message):
        SearchSpace.from_nni(spec)


def test_duplicate_dimension_names_rejected():
    with pytest.raises(InvalidSpaceError, match="repeated"):
        SearchSpace([Dimension("a", (1,)), Dimension("a", (2,))])


def test_choice_lookup_keeps_bools_strings_and_numbers_apart():
    """Choices are looked up by value; True is not 1, "1" is not 1, 1.0 is 1, unhashables are named."""
    s = SearchSpace([Dimension("n", (1, 2)), Dimension("flag", (True, False)), Dimension("tag", ("1", "2"))])
    assert s.validate({"n": 1.0, "flag": False, "tag": "2"}) == {"n": 1, "flag": False, "tag": "2"}
    for bad, named in (({"n": True}, "n=True"), ({"flag": 1}, "flag=1"), ({"tag": 1}, "tag=1"),
                       ({"n": "1"}, "n='1'"), ({"n": [1]}, r"n=\[1\]")):
        with pytest.raises(InvalidArchitectureError, match=named):
            s.validate({"n": 1, "flag": True, "tag": "1", **bad})
    assert s.dimension("n").index(2.0) == 1 and s.dimension("flag").index(False) == 1


# --------------------------------------------------------------------------- the paper's width space


def test_width_space_has_one_dimension_per_searchable_layer_of_every_backbone():
    from spaces.layouts import backbone_names, layer_channels, searchable_layers
    from spaces.width import PAPER_RATIOS, BinaryWidthSpace

    for backbone in backbone_names():
        s = BinaryWidthSpace(backbone=backbone)
        assert s.names == tuple(spec.name for spec in searchable_layers(backbone))
        assert s.to_nni()[s.names[0]] == {"_type": "choice", "_value": list(PAPER_RATIOS)}
        assert list(layer_channels(backbone, s.uniform(1))) == list(s.names)
    resnet = BinaryWidthSpace(backbone="resnet18")
    assert list(resnet.to_nni())[:5] == ["stage1.out", "stage2.out", "stage3.out", "stage4.out", "stage1.block1.inner"]


@pytest.mark.parametrize("kwargs, message", [
    ({"backbone": "vgg19"}, "unknown backbone 'vgg19'"),
    ({"ratios": [0.5, -1]}, "ratio -1"),
    ({"ratios": []}, "non-empty list"),
    ({"ratios": [1, True]}, "ratio True"),
])
def test_width_space_refuses_bad_arguments(kwargs, message):
    from spaces.width import BinaryWidthSpace

    with pytest.raises(InvalidSpaceError, match=message):
        BinaryWidthSpace(**kwargs)


def test_layer_channels_round_half_up_and_name_bad_keys():
    from spaces.layouts import layer_channels

    ratios = {f"conv{i}": 1.0 for i in range(1, 7)}
    assert layer_channels("vgg_small", ratios, 0.125) == {"conv1": 16, "conv2": 16, "conv3": 32, "conv4": 32,
                                                           "conv5": 64, "conv6": 64}
    assert layer_channels("vgg_small", {**ratios, "conv1": 0.25}, 0.078125)["conv1"] == 3  # 2.5 -> 3
    with pytest.raises(ValueError, match="'conv7'"):
        layer_channels("vgg_small", {**ratios, "conv7": 1})
    with pytest.raises(ValueError, match="ratio for layer 'conv2' must be a finite number > 0, got 0"):
        layer_channels("vgg_small", {**ratios, "conv2": 0})


def test_spaces_differ_when_a_choice_is_a_bool_in_one_and_a_number_in_the_other() -> None:
    flags, numbers = SearchSpace([Dimension("x", (True, False))]), SearchSpace([Dimension("x", (1, 0))])
    assert flags != numbers and len({flags, numbers}) == 2
    ints, floats = SearchSpace([Dimension("x", (1, 2))]), SearchSpace([Dimension("x", (1.0, 2.0))])
    assert ints == floats and hash(ints) == hash(floats)  # a space file's 1 is an evaluator's 1.0
    big = SearchSpace([Dimension("x", (2**53, 1))])
    assert big != SearchSpace([Dimension("x", (2**53 + 1, 1))])  # they accept different values
    assert hash(SearchSpace([Dimension("x", (10**400, 1))])) is not None  # no float conversion
