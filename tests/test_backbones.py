import numpy as np
import pytest
import torch

from lteval.backbones import (
    BackboneError,
    WeightsNotFoundError,
    load_backbone,
    parse_name,
    resolve_weights,
)
from lteval.errors import speaking_flags

TINY = "timm:test_resnet"


def test_parse_names():
    assert parse_name("timm:resnet18.a1_in1k").tag == "a1_in1k"
    s = parse_name("open_clip:ViT-B-32/openai")
    assert (s.family, s.arch, s.tag) == ("open_clip", "ViT-B-32", "openai")
    assert parse_name("torchvision:resnet18").tag is None


@pytest.mark.parametrize(
    "name, match",
    [
        ("resnet18", "must look like FAMILY:MODEL"),
        ("keras:resnet18", "unknown backbone family 'keras'"),
        ("timm:resnt18", "Closest matches: resnet18"),
        ("torchvision:resnet18/NOPE", "choose one of \\['IMAGENET1K_V1'\\]"),
        ("open_clip:ViT-B-32", "needs a known pretrained tag"),
        ("open_clip:ViT-Q-99/openai", "unknown open_clip architecture"),
    ],
)
def test_bad_names_are_explained(name, match):
    with pytest.raises(BackboneError, match=match):
        resolve_weights(name)


@pytest.mark.parametrize(
    "name, where",
    [
        (TINY, "models--timm--test_resnet.r160_in1k"),
        ("torchvision:resnet18", "resnet18-f37072fd.pth"),
        ("open_clip:ViT-B-32/openai", "models--timm--vit_base_patch32_clip_224.openai"),
    ],
)
def test_missing_weights_name_model_places_and_fix(name, where, isolated_caches):
    with pytest.raises(WeightsNotFoundError) as e:
        resolve_weights(name)
    msg = str(e.value)
    assert name in msg and where in msg and str(isolated_caches) in msg
    assert "allow_random_init=True" in msg and "on a connected machine run" in msg
    with speaking_flags({}):  # as the command line shows it
        assert "--allow-random-init to run" in str(e.value) and "--weights '" in str(e.value)


def test_random_init_is_seeded_and_has_its_transform():
    a = load_backbone(TINY, allow_random_init=True, seed=0)
    b = load_backbone(TINY, allow_random_init=True, seed=0)
    c = load_backbone(TINY, allow_random_init=True, seed=1)
    assert not a.pretrained and a.weights == "random-init"
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        fa, fb, fc = a.model(x), b.model(x), c.model(x)
    assert fa.ndim == 2 and fa.shape[0] == 2
    torch.testing.assert_close(fa, fb)
    assert not torch.allclose(fa, fc)
    assert "160" in repr(a.transform)  # timm's resolved data config of test_resnet


def _feats(backbone):
    from PIL import Image

    img = Image.fromarray((np.arange(32 * 32 * 3) % 255).astype(np.uint8).reshape(32, 32, 3))
    with torch.no_grad():
        return backbone.model(backbone.transform(img)[None])


def test_timm_weights_found_in_hf_cache_are_loaded(isolated_caches):
    import timm
    from safetensors.torch import save_file

    src = timm.create_model("test_resnet")  # with classifier, like a hub checkpoint
    snap = (
        isolated_caches / "hf" / "hub" / "models--timm--test_resnet.r160_in1k" / "snapshots" / "abc"
    )
    snap.mkdir(parents=True)
    save_file(src.state_dict(), snap / "model.safetensors")
    bb = load_backbone(TINY)
    assert bb.pretrained and bb.weights.endswith("model.safetensors")
    src.reset_classifier(0)
    src.eval()
    from PIL import Image

    img = Image.fromarray(np.full((32, 32, 3), 120, np.uint8))
    with torch.no_grad():
        torch.testing.assert_close(bb.model(bb.transform(img)[None]), src(bb.transform(img)[None]))


def test_torchvision_weights_from_torch_home_and_from_a_named_file(isolated_caches):
    import torchvision

    src = torchvision.models.mobilenet_v3_small()
    ckpt = isolated_caches / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    url = torchvision.models.MobileNet_V3_Small_Weights.DEFAULT.url
    torch.save(src.state_dict(), ckpt / url.rsplit("/", 1)[1])
    bb = load_backbone("torchvision:mobilenet_v3_small")
    assert bb.pretrained
    named = isolated_caches / "mine.pth"
    torch.save(src.state_dict(), named)
    bb2 = load_backbone("torchvision:mobilenet_v3_small", weights_file=named)
    assert bb2.weights == str(named)
    torch.testing.assert_close(_feats(bb), _feats(bb2))
    assert _feats(bb).shape == (1, 1024)


def test_named_file_that_does_not_exist():
    with pytest.raises(WeightsNotFoundError, match="/no/such.pth"):
        resolve_weights(TINY, "/no/such.pth")


def test_open_clip_checkpoint_found_in_hf_cache(isolated_caches):
    snap = (
        isolated_caches
        / "hf"
        / "hub"
        / "models--timm--vit_base_patch32_clip_224.openai"
        / "snapshots"
        / "r1"
    )
    snap.mkdir(parents=True)
    (snap / "open_clip_model.safetensors").write_bytes(b"")
    assert resolve_weights("open_clip:ViT-B-32/openai").name == "open_clip_model.safetensors"


def test_open_clip_random_init_gives_image_embeddings():
    bb = load_backbone("open_clip:ViT-B-32/openai", allow_random_init=True)
    assert _feats(bb).shape == (1, 512)
    assert "Normalize" in repr(bb.transform) and "0.481" in repr(bb.transform)


def test_file_family_timm_checkpoint_with_arch_entry(tmp_path):
    import timm

    src = timm.create_model("test_resnet")
    torch.save({"arch": "test_resnet", "state_dict": src.state_dict()}, tmp_path / "last.pth")
    bb = load_backbone(f"file:{tmp_path / 'last.pth'}")
    assert bb.pretrained and bb.spec.family == "file" and "160" in repr(bb.transform)
    src.reset_classifier(0)
    src.eval()
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        torch.testing.assert_close(bb.model(x), src(x))
    torch.save(src.state_dict(), tmp_path / "plain.pth")  # no 'arch': needs '#arch'
    with pytest.raises(BackboneError, match="#<timm model>"):
        load_backbone(f"file:{tmp_path / 'plain.pth'}")
    assert load_backbone(f"file:{tmp_path / 'plain.pth'}#test_resnet").pretrained


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_file_family_torchscript_with_sidecar_transform(tmp_path):
    import json

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.ReLU())
    torch.jit.script(net).save(str(tmp_path / "m.pt"))
    (tmp_path / "m.pt.json").write_text(json.dumps({"input_size": [3, 64, 64]}))
    bb = load_backbone(f"file:{tmp_path / 'm.pt'}")
    assert _feats(bb).shape == (1, 5)  # conv map averaged over H, W
    assert "64" in repr(bb.transform)
    a = load_backbone(f"file:{tmp_path / 'm.pt'}").identity()["weights_id"]
    torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3))).save(str(tmp_path / "m.pt"))
    assert load_backbone(f"file:{tmp_path / 'm.pt'}").identity()["weights_id"] != a


def test_file_family_missing_file():
    with pytest.raises(BackboneError, match="/no/model.pt does not exist"):
        resolve_weights("file:/no/model.pt", allow_random_init=True)


def test_list_command(capsys, isolated_caches):
    from lteval.cli.backbones import main

    assert main(["list", "--family", "torchvision", "--filter", "RESNET18"]) == 0
    assert capsys.readouterr().out.split() == ["torchvision:resnet18/IMAGENET1K_V1"]
    main(["list", "--filter", "vit-b-32"])
    out = capsys.readouterr().out.split()
    assert "open_clip:ViT-B-32/openai" in out and all("vit-b-32" in n.lower() for n in out)
    main(["list", "--cached", "--filter", "test_resnet"])
    assert capsys.readouterr().out.split() == []
    snap = (
        isolated_caches / "hf" / "hub" / "models--timm--test_resnet.r160_in1k" / "snapshots" / "x"
    )
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(b"")
    main(["list", "--cached", "--filter", "test_resnet"])
    assert capsys.readouterr().out.split() == ["timm:test_resnet.r160_in1k"]


def _hf_repo(cache, repo="models--timm--test_resnet.r160_in1k"):
    return cache / "hf" / "hub" / repo


def _snapshot(repo_dir, commit, state=None, name="model.safetensors"):
    from safetensors.torch import save_file

    snap = repo_dir / "snapshots" / commit
    snap.mkdir(parents=True)
    if state is not None:
        save_file(state, snap / name)
    return snap


def test_hf_cache_reads_the_snapshot_refs_main_names(isolated_caches):
    import timm

    main, other = "0" * 40, "f" * 40  # refs/main is the alphabetically first commit
    repo = _hf_repo(isolated_caches)
    good = timm.create_model("test_resnet").state_dict()
    stale = {k: torch.zeros_like(v) for k, v in good.items()}
    _snapshot(repo, main, good)
    _snapshot(repo, other, stale)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(main)
    assert resolve_weights(TINY).parent.name == main
    bb = load_backbone(TINY)
    assert bb.weights.startswith(str(repo / "snapshots" / main))
    assert _feats(bb).abs().sum() > 0  # the refs/main weights, not the zeroed ones


def test_hf_cache_refs_main_without_the_file_is_not_found(isolated_caches):
    import timm

    main = "a" * 40
    repo = _hf_repo(isolated_caches)
    _snapshot(repo, main)  # refs/main's snapshot lacks the checkpoint
    _snapshot(repo, "b" * 40, timm.create_model("test_resnet").state_dict())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(main)
    with pytest.raises(WeightsNotFoundError) as e:
        resolve_weights(TINY)
    assert f"snapshots/{main}/model.safetensors (refs/main)" in str(e.value)


def test_hf_cache_without_refs_takes_the_newest_snapshot(isolated_caches):
    import os

    import timm

    repo = _hf_repo(isolated_caches)
    state = timm.create_model("test_resnet").state_dict()
    newer, older = _snapshot(repo, "1" * 40, state), _snapshot(repo, "9" * 40, state)
    os.utime(older, ns=(1_000_000_000, 1_000_000_000))
    assert resolve_weights(TINY).parent == newer
    with pytest.raises(WeightsNotFoundError, match="snapshots/\\*/pytorch_model.bin"):
        resolve_weights("timm:test_vit.r160_in1k")  # the message names where it looked


def test_same_weights_at_two_paths_give_one_cache_key(tmp_path):
    import shutil

    import timm

    from lteval.features import cache_key

    torch.save(timm.create_model("test_resnet").state_dict(), tmp_path / "a.pth")
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(tmp_path / "a.pth", tmp_path / "elsewhere" / "b.pth")
    torch.save(timm.create_model("test_resnet").state_dict(), tmp_path / "c.pth")  # new init
    a, b, c = (
        load_backbone(TINY, weights_file=p)
        for p in (tmp_path / "a.pth", tmp_path / "elsewhere" / "b.pth", tmp_path / "c.pth")
    )
    assert a.weights != b.weights  # the path is still recorded, for information
    assert cache_key(a.identity()) == cache_key(b.identity())
    assert cache_key(a.identity()) != cache_key(c.identity())


@pytest.mark.parametrize(
    "name, prefix, library_module",
    [
        ("random:timm:test_resnet", "", "layer1"),
        ("random:torchvision:mobilenet_v3_small", "body.", "features.3"),
        ("random:open_clip:ViT-B-32/openai", "visual.", "transformer.resblocks.0"),
    ],
)
def test_family_declares_its_layer_prefix(name, prefix, library_module):

    bb = load_backbone(name)
    assert bb.layer_prefix == prefix
    assert prefix + library_module in dict(bb.model.named_modules())
