"""Recipes and the learning-rate schedule (alexnet_lib.config, alexnet_lib.train.schedule):
values checked with their names, the CPU recipes' budgets, a recipe following its preset."""

import pytest

from alexnet_lib.config import RECIPES, TrainConfig, get_recipe
from alexnet_lib.model import build_alexnet
from alexnet_lib.train import learning_rate_at


def test_recipes_validate_and_name_bad_values():
    assert get_recipe("origin").learning_rate == 5e-5 and get_recipe("origin").epochs == 18
    paper = get_recipe("paper")
    assert (paper.optimizer, paper.momentum, paper.weight_decay, paper.batch_size) == (
        "sgd", 0.9, 5e-4, 128)
    with pytest.raises(ValueError, match="Unknown recipe 'fast'"):
        get_recipe("fast")
    with pytest.raises(ValueError, match="epochs=-1"):
        get_recipe("cpu", epochs=-1)
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        get_recipe("cpu", optimizer="rmsprop")
    with pytest.raises(ValueError, match="lr"):
        get_recipe("cpu", lr=0.1)
    with pytest.raises(ValueError, match="eval_views='mirror'"):
        get_recipe("cpu", eval_views="mirror")
    assert get_recipe("cpu").eval_views == "shift10" and get_recipe("origin").eval_views == "center"
    with pytest.raises(ValueError, match="conv1_init='pca'"):
        get_recipe("cpu", conv1_init="pca")
    with pytest.raises(ValueError, match="augment flip=MODE"):
        get_recipe("cpu", augment="flip=never")
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=f"ema={bad}"):
            get_recipe("cpu", ema=bad)
    assert set(RECIPES) == {"origin", "paper", "cpu", "quick", "long", "ablation"}


def test_long_and_quick_recipes_are_the_cpu_recipe_with_their_own_budgets():
    cpu, quick, long = (get_recipe(name) for name in ("cpu", "quick", "long"))
    differ = {"name", "description", "epochs", "warmup_epochs", "preset_overrides"}
    for recipe, extra in ((quick, {"augment", "eval_views"}),
                          (long, {"weight_decay"})):
        changed = {k for k, v in recipe.to_dict().items() if v != cpu.to_dict()[k]}
        assert changed == differ | extra, recipe.name
    assert (cpu.weight_decay, quick.weight_decay, long.weight_decay) == (0.2, 0.2, 0.15)
    for recipe in (cpu, quick, long):
        assert (recipe.batch_size, recipe.learning_rate) == (128, 4e-3), recipe.name
    assert (cpu.epochs, quick.epochs, long.epochs) == (23, 9, 38)
    assert (cpu.augment, quick.augment, long.augment) == (
        "crop=2,flip=alternate", "flip=alternate", "crop=2,flip=alternate")
    # The test views reach as far as training's translations: two pixels; quick's one.
    assert (cpu.eval_views, quick.eval_views, long.eval_views) == ("shift10", "shift6", "shift10")
    cpu_preset = TrainConfig().resolve().preset
    assert (cpu_preset.conv1_filters, cpu_preset.conv_filters, cpu_preset.fc_units) == (
        32, (64, 128, 128, 96), 384)
    # Every tower's width a multiple of 16 (conv2, conv4, conv5 are split in two).
    assert all(f // 2 % 16 == 0 for f in cpu_preset.conv_filters)
    quick_preset = TrainConfig(recipe="quick").resolve().preset
    assert (quick_preset.conv1_filters, quick_preset.conv_filters, quick_preset.fc_units) == (
        32, (64, 96, 96, 64), 256)
    # The long recipe's preset: the cifar topology at 1.5x its widths, conv1 at 64, dropout off.
    preset = TrainConfig(recipe="long").resolve().preset
    assert (preset.conv1_filters, preset.conv_filters, preset.fc_units, preset.dropout) == (
        64, (192, 288, 288, 192), 768, 0.0)
    c1, (c2, c3, c4, c5), fc = 64, (192, 288, 288, 192), 768
    towers = lambda k, cin, cout: 2 * (k * k * (cin // 2) * (cout // 2) + cout // 2)  # noqa: E731
    expected = (5 * 5 * 3 * c1 + c1) + towers(3, c1, c2) + (9 * c2 * c3 + c3) \
        + towers(3, c3, c4) + towers(3, c4, c5) + (3 * 3 * c5 * fc + fc) + (fc * fc + fc) \
        + (fc * 10 + 10)
    assert build_alexnet(preset).count_params() == expected == 3_107_018


def test_learning_rate_schedules():
    onecycle = get_recipe("cpu", epochs=10, learning_rate=0.1, warmup_epochs=2)
    assert learning_rate_at(onecycle, 0, 100) == pytest.approx(0.1 / 200)
    assert learning_rate_at(onecycle, 199, 100) == pytest.approx(0.1)
    assert learning_rate_at(onecycle, 600, 100) == pytest.approx(0.1 * 0.5 + 1e-4 * 0.5)
    assert learning_rate_at(onecycle, 1000, 100) == pytest.approx(1e-4)
    cosine = onecycle.replace(schedule="cosine")
    assert learning_rate_at(cosine, 600, 100) == pytest.approx(0.05)
    assert learning_rate_at(get_recipe("paper"), 12345, 100) == 0.01


def test_recipe_follows_the_preset():
    from alexnet_lib.cli import build_parser, train_config_from_args

    parse = build_parser().parse_args
    assert train_config_from_args(parse(["train", "--preset", "upsampled"])).recipe == "origin"
    assert train_config_from_args(parse(["train", "--recipe", "paper"])).preset == "paper"
    config = train_config_from_args(parse(["train", "--set", "dropout=0.3", "--epochs", "2"]))
    assert (config.preset, config.recipe) == ("cifar", "cpu")
    resolved = config.resolve()
    assert resolved.preset.dropout == 0.3 and resolved.recipe.epochs == 2
    assert TrainConfig().resolve().preset.dropout == 0.0  # the cpu recipe's own choice
    # The validation split: the recipe's (cpu: none, every image trains) unless given.
    assert config.val_size == 0 and RECIPES["cpu"].val_size == 0
    assert train_config_from_args(parse(["train", "--val-size", "100"])).val_size == 100
    assert train_config_from_args(parse(["train", "--recipe", "paper"])).val_size == 5000
