"""Strict checkpoint loading, random-init controls and the input-size override."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

from lteval.backbones import BackboneError, load_backbone
from lteval.cli.rank import main as rank_main
from tests.conftest import folder_args


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    torch.save(timm.create_model("vit_tiny_patch16_224").state_dict(), d / "vit.pth")
    r18 = timm.create_model("resnet18").state_dict()
    torch.save({k: v for k, v in r18.items() if not k.startswith("fc.")}, d / "r18_headless.pth")
    torch.save(timm.create_model("resnet18", num_classes=10).state_dict(), d / "r18_10.pth")
    torch.save({**r18, "extra.weight": torch.zeros(1)}, d / "r18_extra.pth")
    torch.save({k: v for k, v in r18.items() if k != "layer1.0.bn1.bias"}, d / "r18_hole.pth")
    torch.save(torchvision.models.mobilenet_v2().state_dict(), d / "mnv2.pth")
    return d


def test_wrong_architecture_checkpoint_exits_2_before_any_work(
    ckpts, image_folder, capsys, tmp_path
):
    out = tmp_path / "run"
    args = folder_args(image_folder, "timm:resnet18")
    args += ["--weights", f"timm:resnet18={ckpts / 'vit.pth'}", "--out", str(out)]
    assert rank_main(args) == 2
    err = capsys.readouterr().err
    assert "vit.pth" in err and "missing keys" in err and "unexpected keys" in err
    assert "blocks.0.attn.qkv.weight" in err  # names the keys
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "file", "match"),
    [
        ("timm:resnet18", "r18_extra.pth", "1 unexpected keys \\(extra.weight\\)"),
        ("timm:resnet18", "r18_hole.pth", "1 missing keys \\(layer1.0.bn1.bias\\)"),
        ("torchvision:resnet18", "mnv2.pth", "missing keys.*unexpected keys"),
        ("file:{dir}/vit.pth#resnet18", None, "does not fit architecture 'resnet18'"),
    ],
)
def test_checkpoints_that_do_not_fit_are_errors(ckpts, name, file, match):
    name = name.format(dir=ckpts)
    with pytest.raises(BackboneError, match=match):
        load_backbone(name, weights_file=ckpts / file if file else None)


def test_shape_mismatch_is_an_error(tmp_path):
    torch.save(timm.create_model("vit_small_patch16_224").state_dict(), tmp_path / "s.pth")
    with pytest.raises(BackboneError, match="keys with other shapes"):
        load_backbone("timm:vit_tiny_patch16_224", weights_file=tmp_path / "s.pth")


@pytest.mark.parametrize("file", ["r18_headless.pth", "r18_10.pth"])
def test_only_the_classifier_may_differ(ckpts, file):
    bb = load_backbone("timm:resnet18", weights_file=ckpts / file)
    assert bb.pretrained
    state = torch.load(ckpts / file, weights_only=True)
    got = bb.model.state_dict()
    assert torch.equal(got["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])
    assert bb.model(torch.zeros(1, 3, 64, 64)).shape == (1, 512)


def test_torchvision_headless_checkpoint_loads(ckpts, tmp_path):
    state = torchvision.models.mobilenet_v2().state_dict()
    torch.save(
        {k: v for k, v in state.items() if not k.startswith("classifier.1")}, tmp_path / "h.pth"
    )
    bb = load_backbone("torchvision:mobilenet_v2", weights_file=tmp_path / "h.pth")
    assert bb.model(torch.zeros(1, 3, 64, 64)).shape == (1, 1280)
    with pytest.raises(BackboneError, match="missing keys \\(classifier.1.bias"):
        load_backbone(
            "torchvision:mobilenet_v2", weights_file=tmp_path / "h.pth", keep_classifier=True
        )


def test_random_control_is_seeded_and_takes_no_weights(ckpts):
    a = load_backbone("random:timm:resnet18", seed=1)
    b = load_backbone("random:timm:resnet18", seed=1)
    c = load_backbone("random:timm:resnet18", seed=2)
    w = "layer1.0.conv1.weight"
    assert torch.equal(a.model.state_dict()[w], b.model.state_dict()[w])
    assert not torch.equal(a.model.state_dict()[w], c.model.state_dict()[w])
    assert a.identity() != c.identity()  # the seed enters the cache key
    assert a.control and not a.pretrained
    with pytest.raises(BackboneError, match="takes no weights"):
        load_backbone("random:timm:resnet18", weights_file=ckpts / "r18_10.pth")


def test_input_size_overrides_the_transform_and_the_identity():
    native = load_backbone("random:torchvision:mobilenet_v2/IMAGENET1K_V1")
    small = load_backbone("random:torchvision:mobilenet_v2/IMAGENET1K_V1", input_size=96)
    assert (native.input_size, small.input_size) == (224, 96)
    assert small.transform.resize_size == [110]  # 96 * 256 / 224, the weights' ratio
    assert native.identity()["transform"] != small.identity()["transform"]
    timm_small = load_backbone("random:timm:tf_efficientnet_lite0", input_size=96)
    assert timm_small.input_size == 96
    with pytest.raises(BackboneError, match="native input size 224"):
        load_backbone("random:timm:vit_tiny_patch16_224", input_size=96)
    with pytest.raises(BackboneError, match="input_size must be an integer"):
        load_backbone("random:timm:resnet18", input_size=3)
