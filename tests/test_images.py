"""Images for ViT-style models: patches as tokens, the picture on the wire (tx_magic.images).

No ViT weights exist offline: the model is built from a config (the real code path, random weights)."""

from __future__ import annotations

import base64
import io
import json
import pathlib

import numpy as np
import pytest
import torch
import transformers as tf
from PIL import Image

import tx_magic
from tx_magic import wire
from tx_magic.capturing.images import ImageInputError

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "js" / "tests" / "fixtures" / "image-fixture.json"


def tiny_vit() -> tf.ViTModel:
    torch.manual_seed(0)
    cfg = tf.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                       image_size=32, patch_size=8)
    return tf.ViTModel(cfg).eval()


def processor():
    return tf.ViTImageProcessorPil(size={"height": 32, "width": 32})


def picture(width: int = 48, height: int = 40) -> Image.Image:
    """A left-to-right red ramp over a top-to-bottom green ramp: every pixel distinct enough to compare."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, np.full_like(x, 90)], -1).astype(np.uint8))


@pytest.fixture(scope="module")
def vit():
    return tiny_vit()


def test_patches_are_tokens_and_the_weights_are_the_models(vit):
    img = picture()
    trace = tx_magic.capture(vit, processor(), img)
    assert list(trace.sequences["input"])[:3] == ["[CLS]", "patch 0,0", "patch 0,1"]
    assert list(trace.sequences["input"])[-1] == "patch 3,3"
    assert trace.sequences["input"].special[0] and not trace.sequences["input"].special[1]
    assert trace.shape() == (2, 4, 17, 17)
    pixels = processor()(images=img, return_tensors="pt")["pixel_values"]
    vit.set_attn_implementation("eager")
    with torch.inference_mode():
        want = vit(pixel_values=pixels, output_attentions=True).attentions
    np.testing.assert_allclose(trace.attention()[1], want[1][0].numpy(), atol=1e-6)
    assert (trace.image.rows, trace.image.cols, trace.image.first) == (4, 4, 1)
    assert (trace.image.width, trace.image.height) == (32, 32)


def test_the_picture_sent_is_the_image_as_the_model_saw_it(vit):
    img = picture()
    trace = tx_magic.capture(vit, processor(), img)
    seen = np.asarray(Image.open(io.BytesIO(trace.image.png)).convert("RGB"), dtype=int)
    assert seen.shape == (32, 32, 3)
    resized = np.asarray(img.resize((32, 32), Image.BILINEAR), dtype=int)  # what the processor does
    assert np.abs(seen - resized).max() <= 2  # normalisation undone, up to rounding


def test_array_tensor_and_path_inputs_give_the_same_trace(vit, tmp_path):
    img = picture()
    path = tmp_path / "ramp.png"
    img.save(path)
    base = tx_magic.capture(vit, processor(), img).attention()
    arr = np.array(img)
    for given in (arr, arr.astype(np.float32) / 255, torch.from_numpy(arr).permute(2, 0, 1), str(path), path):
        np.testing.assert_allclose(tx_magic.capture(vit, processor(), given).attention(), base, atol=1e-5)
    w = tx_magic.explain(vit, processor(), image=path)
    np.testing.assert_allclose(w.trace.attention(), base, atol=1e-5)


def test_the_image_travels_in_the_meta_and_in_reports(vit, tmp_path):
    trace = tx_magic.capture(vit, processor(), picture())
    meta = wire.encode_meta(trace)
    assert set(meta[wire.META_IMAGE]) == set(wire.IMAGE_KEYS)
    assert meta[wire.META_IMAGE]["png"] == trace.image.png
    assert meta[wire.META_IMAGE]["rows"] == 4 and meta[wire.META_IMAGE]["first"] == 1
    assert wire.META_IMAGE not in wire.encode_meta(tx_magic.show(np.eye(3)[None, None], ["a", "b", "c"]).trace)
    out = tx_magic.save_html(trace, tmp_path / "vit.html")
    assert base64.b64encode(trace.image.png).decode() in out.read_text()


def test_bad_images_and_models_get_clear_errors(vit, tmp_path):
    with pytest.raises(ImageInputError, match="No image file"):
        tx_magic.capture(vit, processor(), str(tmp_path / "missing.png"))
    with pytest.raises(ImageInputError, match=r"\(H, W\), \(H, W, 3\)"):
        tx_magic.capture(vit, processor(), np.zeros((4, 5, 6, 7)))
    (tmp_path / "not.png").write_text("hello")
    with pytest.raises(ImageInputError, match=r"Could not read not\.png"):
        tx_magic.capture(vit, processor(), tmp_path / "not.png")
    with pytest.raises(ImageInputError, match="image processor"):
        tx_magic.capture(vit, None, picture())


def test_magic_image_and_ids_options(vit, tmp_path, minilm, shell):
    ip = shell
    path = tmp_path / "ramp.png"
    picture().save(path)
    ip.user_ns.update(vit=vit, proc=processor())
    w = ip.run_line_magic("explain", f"-m vit -t proc --image {path}")
    assert list(w.trace.sequences["input"])[:2] == ["[CLS]", "patch 0,0"]
    assert w.trace.image is not None
    w = ip.run_line_magic("explain", "--ids 101,4937,2938,102")
    assert w.trace.sequences["input"].ids == (101, 4937, 2938, 102)
    assert list(w.trace.sequences["input"]) == ["[CLS]", "cat", "sat", "[SEP]"]
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="whole numbers"):
        ip.run_line_magic("explain", "--ids 101,cat")


def write_fixture() -> dict:
    """The image part of a ViT trace's meta, as the TypeScript test decodes it (js/tests/image.test.ts)."""
    trace = tx_magic.capture(tiny_vit(), processor(), picture())
    meta = wire.encode_meta(trace)
    image = dict(meta[wire.META_IMAGE], png=base64.b64encode(meta[wire.META_IMAGE]["png"]).decode("ascii"))
    return {"sequences": {"input": meta["sequences"]["input"]}, "image": image,
            # rounded: the exact floats of a random model may differ in the last bits across CPUs
            "cls_row_layer0_head0": [round(float(x), 5) for x in trace.attention()[0, 0, 0]]}


def test_image_fixture_decoded_by_the_typescript_tests_is_what_python_writes_now():
    assert FIXTURE.exists(), "run `python tests/test_images.py` to write the image fixture"
    assert json.loads(FIXTURE.read_text()) == json.loads(json.dumps(write_fixture())), (
        "the image wire format changed: run `python tests/test_images.py` and make js/tests/image.test.ts pass"
    )


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(write_fixture()) + "\n")
    print(f"wrote {FIXTURE}")


def test_a_vit_folder_loads_by_name_with_its_image_processor(tmp_path):
    folder = tmp_path / "vit"
    tiny_vit().save_pretrained(folder)
    processor().save_pretrained(folder)
    w = tx_magic.explain(str(folder), image=picture())
    tokens = w.trace.tokens()[0]
    assert list(tokens[:2]) == ["[CLS]", "patch 0,0"] and len(tokens) == 1 + (32 // 8) ** 2
    assert w.trace.image is not None and (w.trace.image.rows, w.trace.image.cols) == (4, 4)
