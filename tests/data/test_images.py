"""Image pre/post-processing: every PIL mode becomes RGB, bad files get a named error."""

import io

import numpy as np
import pytest
from PIL import Image

from liquid_jax.data.images import (
    ImageError,
    keep_aspect_ratio,
    load_image,
    make_buckets,
    nearest_bucket,
    open_image,
    resize_center_crop,
    resize_to_bucket,
    to_model_input,
    to_rgb,
    to_uint8,
)


def _save(tmp_path, img, name, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return str(path)


def _rgb_noise(w, h, seed=0):
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB")


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L")
    img = open_image(_save(tmp_path, gray, "g.png"))
    arr = np.asarray(img)
    assert img.mode == "RGB" and arr.shape == (16, 16, 3)
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == np.asarray(gray)).all()


def test_rgba_is_composited_onto_white(tmp_path):
    arr = np.zeros((16, 16, 4), np.uint8)
    arr[..., 0] = 200  # red everywhere
    arr[:, :8, 3] = 255  # left half opaque
    arr[:, 8:, 3] = 0  # right half fully transparent
    arr[0, 15, 3] = 128  # one half-transparent pixel
    img = np.asarray(open_image(_save(tmp_path, Image.fromarray(arr, "RGBA"), "a.png")))
    assert (img[1:, 8:] == 255).all(), "transparent pixels must become white"
    assert (img[:, :8] == [200, 0, 0]).all()
    # (1 - a) * 255 + a * colour, a = 128/255, truncated as Chameleon does.
    a = 128 / 255
    assert tuple(img[0, 15]) == (
        int((1 - a) * 255 + a * 200),
        int((1 - a) * 255),
        int((1 - a) * 255),
    )


def test_la_and_palette_transparency_become_white(tmp_path):
    la = np.zeros((8, 8, 2), np.uint8)
    la[..., 0] = 10
    la[:4, :, 1] = 255
    out = np.asarray(open_image(_save(tmp_path, Image.fromarray(la, "LA"), "la.png")))
    assert (out[:4] == 10).all() and (out[4:] == 255).all()

    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    pal.paste(1, (0, 0, 4, 8))  # left half green, right half index 0 (transparent)
    out = np.asarray(open_image(_save(tmp_path, pal, "p.png", transparency=0)))
    assert (out[:, :4] == [0, 255, 0]).all() and (out[:, 4:] == 255).all()


def test_cmyk_and_16_bit_are_converted(tmp_path):
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    out = np.asarray(open_image(_save(tmp_path, cmyk, "c.jpg", quality=100)))
    assert out.shape == (8, 8, 3) and out[..., 0].min() > 200 and out[..., 1:].max() < 60

    wide = np.full((8, 8), 65535, np.uint16)
    wide[:, :4] = 0
    img16 = Image.fromarray(wide)
    assert img16.mode.startswith("I;16")
    out = np.asarray(open_image(_save(tmp_path, img16, "w.png")))
    assert (out[:, :4] == 0).all() and (out[:, 4:] == 255).all()
    # A 16-bit value in the middle of the range stays in the middle (not clipped to white).
    assert np.asarray(to_rgb(Image.fromarray(np.full((2, 2), 32768, np.uint16))))[0, 0, 0] == 128


def test_bad_files_raise_image_error_naming_the_file(tmp_path):
    cases = {}
    cases["missing"] = str(tmp_path / "missing.png")
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    cases["not an image"] = str(text)
    buf = io.BytesIO()
    _rgb_noise(64, 64).save(buf, "PNG")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    cases["truncated png"] = str(truncated)
    buf = io.BytesIO()
    _rgb_noise(64, 64).save(buf, "JPEG")
    truncated_jpg = tmp_path / "cut.jpg"
    truncated_jpg.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    cases["truncated jpeg"] = str(truncated_jpg)
    cases["1x1"] = _save(tmp_path, _rgb_noise(1, 1), "dot.png")
    cases["directory"] = str(tmp_path)
    for what, path in cases.items():
        with pytest.raises(ImageError) as info:
            open_image(path)
        assert info.value.path == path and path in str(info.value), what
    with pytest.raises(ImageError, match="1x1 pixels is smaller"):
        open_image(cases["1x1"])
    with pytest.raises(ImageError, match="record-7"):
        load_image(b"garbage", name="record-7")


def test_resize_center_crop_matches_chameleon_recipe():
    img = _rgb_noise(300, 200, seed=1)
    out = resize_center_crop(img, 64)
    # Chameleon's tokenizer: short side -> target with LANCZOS, then crop at (W - t) // 2.
    s = 64 / 200
    ref = img.resize((round(s * 300), round(s * 200)), Image.LANCZOS)
    x0 = (ref.width - 64) // 2
    ref = ref.crop((x0, 0, x0 + 64, 64))
    assert out.size == (64, 64)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))
    assert resize_center_crop(img, (96, 48)).size == (96, 48)


def test_model_input_range_and_uint8_round_trip(tmp_path):
    img = _rgb_noise(40, 30, seed=2)
    x = load_image(_save(tmp_path, img, "n.png"), 32)
    assert x.shape == (32, 32, 3) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    arr = np.asarray(img)
    np.testing.assert_array_equal(to_uint8(to_model_input(arr)), arr)
    assert to_uint8(np.array([[-3.0, 0.0, 5.0]])).tolist() == [[0, 128, 255]]
    assert to_uint8(np.zeros((2, 4, 4, 3))).shape == (2, 4, 4, 3)


def test_aspect_ratio_filter():
    assert keep_aspect_ratio(1024, 512) and keep_aspect_ratio(512, 1024)
    assert not keep_aspect_ratio(1025, 512) and not keep_aspect_ratio(100, 201)


def test_buckets_and_nearest_bucket():
    buckets = make_buckets(512 * 512, 16, 2.0)
    assert (512, 512) in buckets
    for w, h in buckets:
        assert w % 16 == 0 and h % 16 == 0
        assert max(w, h) / min(w, h) <= 2.0
        assert abs(w * h / 512**2 - 1) < 0.1
        assert (h, w) in buckets
    assert nearest_bucket(1000, 1000) == (512, 512)
    w, h = nearest_bucket(1920, 1080)
    assert w > h and abs(w / h - 16 / 9) < 0.1
    w, h = nearest_bucket(100, 1000)  # beyond 2:1 -> the most extreme portrait bucket
    assert h / w == max(b[1] / b[0] for b in buckets)
    img, bucket = resize_to_bucket(_rgb_noise(90, 60, seed=3), make_buckets(32 * 32, 8))
    assert img.size == bucket and bucket[0] > bucket[1]
    with pytest.raises(ValueError, match="factor"):
        make_buckets(16, 16)
