"""Wire ids are part of the file format: these tables may only ever grow."""
import pytest

from nfcodec.bitstream import ENTROPY_MODELS, headers
from nfcodec.errors import ConfigError, UnsupportedFeatureError
from nfcodec.archs import ARCHS
from nfcodec.variants import LAYOUTS, REPRESENTATIONS


def test_wire_ids_are_pinned():
    assert ARCHS.wire_ids() == {"siren": 0, "nerv": 1, "grid": 2, "grid-video": 3}
    assert REPRESENTATIONS.wire_ids() == {"dense": 0, "pruned": 1, "supermask": 2}
    assert LAYOUTS.wire_ids() == {"single": 0, "width-chunks": 1, "tiles": 2}


def test_registries_agree_with_the_header_name_tables():
    for reg, table in ((ARCHS, headers.ARCHS), (REPRESENTATIONS, headers.REPRESENTATIONS), (LAYOUTS, headers.LAYOUTS)):
        for name, wire_id in reg.wire_ids().items():
            assert table[wire_id] == name


def test_unknown_names_and_ids():
    with pytest.raises(ConfigError, match=r"unknown representation 'sparse' \(choose from dense, pruned, supermask\)"):
        REPRESENTATIONS.by_name("sparse")
    with pytest.raises(UnsupportedFeatureError, match="layout wire id 3"):
        LAYOUTS.by_id(3)


def test_duplicate_registration_refused():
    with pytest.raises(RuntimeError, match="registered twice"):
        LAYOUTS.register(LAYOUTS.by_name("single"))


def test_entropy_model_ids_pinned():
    assert {name: m.wire_id for name, m in ENTROPY_MODELS.items()} == {"const": 0, "histogram": 1, "laplace": 2,
                                                                      "gaussian": 3, "checkerboard": 4, "causal": 5, "causal4": 6,
                                                                      "arm": 7}


def test_mask_coder_ids_pinned():
    from nfcodec.bitstream.masks import MASK_CODERS

    assert {name: c.wire_id for name, c in MASK_CODERS.items()} == {"const": 0, "bernoulli": 1, "context": 2,
                                                                  "runs": 3}
