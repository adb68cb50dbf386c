"""Input images and safe output writing."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nfcodec.errors import InputError, NFCodecError, OutputExistsError
from nfcodec.media import atomic_write, load_image, save_image


def _save(tmp_path, name, array, mode=None):
    path = tmp_path / name
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_rgb_png_roundtrip(tmp_path, tiny_image):
    path = tmp_path / "out.png"
    save_image(path, tiny_image)
    assert np.array_equal(load_image(path), tiny_image)


def test_grayscale_expands_to_rgb(tmp_path):
    g = np.arange(48, dtype=np.uint8).reshape(6, 8)
    img = load_image(_save(tmp_path, "g.png", g))
    assert img.shape == (6, 8, 3) and np.array_equal(img[..., 0], g) and np.array_equal(img[..., 2], g)


def test_opaque_rgba_accepted_transparent_refused(tmp_path):
    rgba = np.full((4, 5, 4), 200, dtype=np.uint8)
    rgba[..., 3] = 255
    assert load_image(_save(tmp_path, "o.png", rgba)).shape == (4, 5, 3)
    rgba[0, 0, 3] = 10
    with pytest.raises(InputError, match="transparency"):
        load_image(_save(tmp_path, "t.png", rgba))


def test_16bit_refused(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16)).save(path)
    with pytest.raises(InputError, match="not supported"):
        load_image(path)


def test_non_image_and_missing(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image")
    with pytest.raises(InputError, match="not a readable image"):
        load_image(junk)
    with pytest.raises(InputError, match="input file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="not a regular file"):
        load_image(tmp_path)


def test_jpeg_and_ppm_inputs(tmp_path, tiny_image):
    for name in ("a.jpg", "a.ppm"):
        assert load_image(_save(tmp_path, name, tiny_image)).shape == (24, 32, 3)


def test_existing_output_is_kept(tmp_path, tiny_image):
    out = tmp_path / "x.png"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="output file exists"):
        save_image(out, tiny_image)
    assert out.read_bytes() == b"keep me"
    save_image(out, tiny_image, overwrite=True)
    assert out.read_bytes().startswith(b"\x89PNG")


def test_input_never_overwritten(tmp_path, tiny_image):
    src = _save(tmp_path, "src.png", tiny_image)
    with pytest.raises(OutputExistsError, match="refusing to overwrite the input"):
        save_image(src, tiny_image, overwrite=True, inputs=(src,))


def test_failed_write_leaves_nothing(tmp_path):
    def boom(tmp):
        tmp.write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "o.nfc", boom)
    assert list(tmp_path.iterdir()) == []


def test_unknown_output_format_and_missing_dir(tmp_path, tiny_image):
    with pytest.raises(NFCodecError, match="cannot write image format '.xyz'"):
        save_image(tmp_path / "a.xyz", tiny_image)
    with pytest.raises(NFCodecError, match="output directory does not exist"):
        save_image(tmp_path / "no" / "a.png", tiny_image)
