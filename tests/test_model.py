"""The towers as the contract declares them: widths, embeddings, normalisation inside the towers, the
history encoder's padding mask (empty history included), L2-normalised outputs, checkpoints that carry
their config, and the EMA update."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dc003.model import checkpoint
from dc003.model.config import NumericStats, fit_numeric_stats
from dc003.model.ema import Ema
from dc003.model.two_tower import ItemFeatures, TwoTowerModel, UserFeatures
from tests.test_train_fixtures import contracts, model_params, tiny_config


def _users(b: int, length: int, n_items: int = 30, seed: int = 0) -> UserFeatures:
    g = torch.Generator().manual_seed(seed)
    hist = torch.randint(0, n_items, (b, length), generator=g)
    pad = torch.zeros(b, length, dtype=torch.bool)
    if length:
        pad[:, length // 2 :] = True  # second half padded
    return UserFeatures(
        torch.randint(0, 3, (b, 4), generator=g), torch.rand(b, 4, generator=g) * 10, hist, pad
    )


def _items(m: int, seed: int = 0) -> ItemFeatures:
    g = torch.Generator().manual_seed(seed)
    return ItemFeatures(
        torch.randint(0, 5, (m, 7), generator=g),
        torch.rand(m, 2, generator=g),
        torch.randn(m, 2, 384, generator=g),
    )


def _model() -> TwoTowerModel:
    """A tiny model in eval mode with its catalogue's (30 items) history tokens stored."""
    model = TwoTowerModel(tiny_config()).eval()
    model.set_item_tokens(_items(30))
    return model


def test_resolved_config_follows_the_contract() -> None:
    dc003, _ = contracts()
    cfg = tiny_config()
    ut, it = cfg.user_tower, cfg.item_tower
    assert {c.name: (c.vocab_size, c.embedding_dim) for c in ut.categorical} == {
        n: (c.vocab_size, c.embedding_dim) for n, c in dc003.user_tower.categorical_embeddings.items()
    }
    assert {c.name: (c.vocab_size, c.embedding_dim) for c in it.categorical} == {
        n: (c.vocab_size, c.embedding_dim) for n, c in dc003.item_tower.categorical_embeddings.items()
    }
    assert ut.input_width() == dc003.user_tower.feature_width() == 132
    assert it.input_width() == dc003.item_tower.feature_width() == 225
    assert [d.units for d in ut.dense] == [256, 128, 64] and [d.units for d in it.dense] == [512, 256, 128]
    assert all(d.batch_norm for d in ut.dense + it.dense)
    assert [d.units for d in ut.projection] == [128, 128] and ut.projection[-1].activation == "none"
    seq = ut.sequence
    assert (seq.d_model, seq.num_heads, seq.num_layers, seq.dropout, seq.max_len, seq.feedforward_dim) == (
        64,
        4,
        2,
        0.1,
        50,
        256,
    )
    price = next(n for n in it.numerical if n.name == "price_normalized")
    assert price.embedding_dim is None and (price.shift, price.scale) == (0.0, 1.0)  # as is, width 1
    assert all(n.embedding_dim == 8 for n in ut.numerical)
    # DC-002 column names come from its compatibility section
    assert next(c for c in it.categorical if c.name == "color_group_name").source == "items.colour_group_name"
    assert [t.source for t in it.text] == ["items.prod_name", "items.detail_desc"]
    assert [(t.embedding_dim, t.projection_dim) for t in it.text] == [(384, 64), (384, 64)]


def test_config_rejects_unknown_category_feature() -> None:
    from dc003.model.config import resolve_model_config

    dc003, dc002 = contracts()
    stats = {n.name: fit_numeric_stats(np.arange(5.0)) for n in dc002.compatibility.numerical}
    with pytest.raises(ValueError, match="category_feature"):
        resolve_model_config(dc003, dc002, model_params(category_feature="age"), n_items=5, stats=stats)


def test_normalisation_fitted_statistics() -> None:
    stats = fit_numeric_stats(np.array([1.0, 3.0, np.nan, 9.0]))
    assert (stats.min, stats.max, stats.mean) == (1.0, 9.0, pytest.approx(13 / 3))
    cfg = tiny_config()
    model = TwoTowerModel(cfg)
    enc = model.user_tower.numerical
    raw = torch.tensor([[float("nan"), 0.0, math.e**2.4 - 1, 5.0]])
    z = enc.normalise(raw)[0]
    # age: min-max (0..10) of the imputed mean 2.0; lifetime: log then min-max (log range 0..2.4)
    assert z[0].item() == pytest.approx(0.2)
    assert z[1].item() == pytest.approx(0.0)
    assert z[2].item() == pytest.approx(1.0, rel=1e-5)
    assert z[3].item() == pytest.approx((5.0 - 2.0) / 3.0)  # standard scaling


def test_towers_output_l2_normalised_embeddings() -> None:
    model = TwoTowerModel(tiny_config()).eval()
    with torch.no_grad():
        user, item = model(_users(6, 8), _items(5))
    assert user.shape == (6, 128) and item.shape == (5, 128)
    assert torch.allclose(user.norm(dim=1), torch.ones(6), atol=1e-5)
    assert torch.allclose(item.norm(dim=1), torch.ones(5), atol=1e-5)


def test_empty_history_works_without_nan() -> None:
    model = _model()
    users = _users(4, 0)
    with torch.no_grad():
        out = model.get_user_embeddings(users)
    assert out.shape == (4, 128) and torch.isfinite(out).all()
    # an all-padding history is the same as no history at all
    padded = users._replace(
        history=torch.zeros(4, 3, dtype=torch.long), history_padding=torch.ones(4, 3, dtype=torch.bool)
    )
    with torch.no_grad():
        assert torch.allclose(model.get_user_embeddings(padded), out, atol=1e-5)


def test_padding_mask_hides_padded_items() -> None:
    model = _model()
    users = _users(3, 6)
    other = users.history.clone()
    other[users.history_padding] = 17  # change only padded slots
    with torch.no_grad():
        a = model.get_user_embeddings(users)
        b = model.get_user_embeddings(users._replace(history=other))
        real = users.history.clone()
        real[:, 0] = (real[:, 0] + 1) % 30  # change a real item
        c = model.get_user_embeddings(users._replace(history=real))
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, c, atol=1e-4)


def test_trimming_history_to_real_length_changes_nothing() -> None:
    model = _model()
    users = _users(3, 8)  # real items in the first 4 slots
    trimmed = users._replace(history=users.history[:, :4], history_padding=users.history_padding[:, :4])
    with torch.no_grad():
        assert torch.allclose(model.get_user_embeddings(users), model.get_user_embeddings(trimmed), atol=1e-5)


def test_unknown_category_and_item_ids_fall_back_to_reserved_rows() -> None:
    model = _model()
    items = _items(2)
    odd = items._replace(categorical=torch.full((2, 7), 999))
    zero = items._replace(categorical=torch.zeros(2, 7, dtype=torch.long))
    users = _users(2, 4)
    with torch.no_grad():
        assert torch.allclose(model.get_item_embeddings(odd), model.get_item_embeddings(zero))
        out = model.get_user_embeddings(users._replace(history=torch.full((2, 4), 10_000)))
    assert torch.isfinite(out).all()


def test_history_tokens_are_the_item_towers_view_of_each_item() -> None:
    """A purchase moves the user by what the item tower knows of it: two ids with the same item features
    give the same token (no id embedding by default), an item with other features another one."""
    model = TwoTowerModel(tiny_config()).eval()
    items = _items(30)
    same = items._replace(
        categorical=items.categorical.clone(), numerical=items.numerical.clone(), text=items.text.clone()
    )
    for part in same:
        part[7] = part[3]  # item 7 now looks exactly like item 3
    model.set_item_tokens(same)
    users = _users(2, 2)._replace(history_padding=torch.zeros(2, 2, dtype=torch.bool))
    with torch.no_grad():
        a = model.get_user_embeddings(users._replace(history=torch.tensor([[3, 5], [3, 5]])))
        b = model.get_user_embeddings(users._replace(history=torch.tensor([[7, 5], [7, 5]])))
        c = model.get_user_embeddings(users._replace(history=torch.tensor([[8, 5], [8, 5]])))
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, c, atol=1e-4)


RESIDUAL_VARIANTS = {
    "none": {"history_residual": False},
    "plain": {"history_residual": True},
    "inputs": {"history_residual": True, "history_residual_inputs": True},
    "centred": {"history_residual": True, "history_residual_centred": True},
    "inputs+centred": {
        "history_residual": True,
        "history_residual_inputs": True,
        "history_residual_centred": True,
    },
    "linear skips": {
        "history_residual": True,
        "history_residual_inputs": True,
        "user_linear_skip": True,
        "item_linear_skip": True,
    },
}


@pytest.mark.parametrize("variant", list(RESIDUAL_VARIANTS))
def test_stored_tokens_reproduce_the_training_path(variant: str) -> None:
    """What serving reads (the stored catalogue tokens and residual rows) is what training computes in the
    batch: the same user embedding, in eval mode, from history rows into the batch's item table."""
    model = TwoTowerModel(tiny_config(**RESIDUAL_VARIANTS[variant])).eval()
    residual = variant != "none"
    assert (model.user_tower.residual_scale is not None) == residual
    history = model.user_tower.history
    if history.residual_projection is not None:  # a trained map, not the initial identity on the embedding
        torch.nn.init.normal_(history.residual_projection.weight, std=0.1)
    if history.residual_centred:
        history.residual_mean.normal_()
    for tower in (model.user_tower, model.item_tower):
        if tower.skip is not None:  # a trained skip, not the initial zero map
            torch.nn.init.normal_(tower.skip.weight, std=0.1)
    catalogue = _items(30)
    users = _users(4, 6)
    picked = torch.tensor([4, 9, 11, 17, 23, 2, 29])  # the batch's distinct items, any order
    row_of = torch.full((30,), 0, dtype=torch.long)
    row_of[picked] = torch.arange(picked.numel())
    hist = torch.where(users.history_padding, picked[0], picked[users.history % picked.numel()])
    users = users._replace(history=hist)
    labels = {"history_rows": row_of[hist]}
    with torch.no_grad():
        trained, _ = model.encode(users, catalogue.take(picked), labels)
        model.set_item_tokens(catalogue)
        served = model.get_user_embeddings(users)
    assert torch.allclose(trained, served, atol=1e-5)


def test_residual_path_pulls_the_user_towards_the_purchased_items() -> None:
    """With the history residual, the user embedding adds the normalised sum of the purchased items'
    embeddings: with a large learned scale it is that direction; an empty history adds nothing."""
    model = TwoTowerModel(tiny_config(history_residual=True)).eval()
    catalogue = _items(30)
    model.set_item_tokens(catalogue)
    users = _users(3, 4)._replace(
        history_padding=torch.tensor([[False] * 4, [False, True, True, True], [True] * 4])
    )
    with torch.no_grad():
        plain = model.get_user_embeddings(users)
        model.user_tower.residual_scale.fill_(1e4)
        pulled = model.get_user_embeddings(users)
        items = model.get_item_embeddings(catalogue)
    for row in (0, 1):
        bought = users.history[row][~users.history_padding[row]]
        direction = torch.nn.functional.normalize(items[bought].sum(0), dim=0)
        assert float(pulled[row] @ direction) > 0.999
        assert float(plain[row] @ direction) < 0.99
    assert torch.allclose(pulled[2], plain[2], atol=1e-6)  # no purchase, no pull


def test_residual_variants_start_as_the_plain_path_and_centre_on_a_training_statistic() -> None:
    """``history_residual_inputs`` starts as the plain path (its map reads the embedding alone); the centred
    path subtracts a running mean of purchased rows that training updates and eval leaves alone."""
    catalogue = _items(30)
    users = _users(4, 6)
    torch.manual_seed(0)
    plain = TwoTowerModel(tiny_config(history_residual=True)).eval()
    torch.manual_seed(0)
    inputs = TwoTowerModel(tiny_config(history_residual=True, history_residual_inputs=True)).eval()
    missing = inputs.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing == ["user_tower.history.residual_projection.weight"]
    with torch.no_grad():
        plain.set_item_tokens(catalogue)
        inputs.set_item_tokens(catalogue)
        assert torch.allclose(plain.get_user_embeddings(users), inputs.get_user_embeddings(users), atol=1e-6)

    centred = TwoTowerModel(tiny_config(history_residual=True, history_residual_centred=True))
    history = centred.user_tower.history
    labels = {"history_rows": users.history % 5}
    centred.eval()
    with torch.no_grad():
        centred.encode(users, _items(5), labels)
    assert float(history.residual_mean.abs().sum()) == 0.0  # eval: no update
    centred.train()
    with torch.no_grad():
        centred.encode(users, _items(5), labels)
    assert float(history.residual_mean.abs().sum()) > 0.0


def test_linear_skips_start_as_the_plain_towers_and_learn() -> None:
    """``model.user_linear_skip`` / ``item_linear_skip`` add a zero-initialised linear map of each tower's
    input: a fresh model embeds exactly as the plain one with the same weights, the contrastive gradient
    reaches both maps, and a non-zero map moves both embeddings."""
    catalogue = _items(30)
    users = _users(4, 6)
    torch.manual_seed(0)
    plain = TwoTowerModel(tiny_config(history_residual=True)).eval()
    skips = TwoTowerModel(tiny_config(history_residual=True, user_linear_skip=True, item_linear_skip=True))
    missing = skips.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["item_tower.skip.weight", "user_tower.skip.weight"]
    skips.eval()

    def embed(model: TwoTowerModel) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            model.set_item_tokens(catalogue)
            return model.get_user_embeddings(users), model.get_item_embeddings(catalogue)

    for a, b in zip(embed(plain), embed(skips), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    skips.train()
    labels = {"history_rows": users.history % 5}
    user, _ = skips.encode(users, _items(5), labels)
    item = skips.item_tower(*_items(4))
    (user[:4] @ item.T).diagonal().sum().backward()
    for tower in (skips.user_tower, skips.item_tower):
        assert tower.skip.weight.grad is not None and tower.skip.weight.grad.abs().sum() > 0
        torch.nn.init.normal_(tower.skip.weight, std=0.1)
    skips.eval()
    for a, b in zip(embed(plain), embed(skips), strict=True):
        assert not torch.allclose(a, b, atol=1e-3)


def test_history_gradients_reach_the_item_tower() -> None:
    model = TwoTowerModel(tiny_config())
    users = _users(4, 6)
    labels = {"history_rows": users.history % 5}
    user, _ = model.encode(users, _items(5), labels)
    user.sum().backward()  # a loss on the user embeddings alone
    text_grad = model.item_tower.text[0].weight.grad
    assert text_grad is not None and text_grad.abs().sum() > 0


def test_forward_returns_loss_in_training_and_embeddings_in_eval() -> None:
    model = TwoTowerModel(tiny_config())
    model.objective = lambda u, i, labels: (u * i).sum()
    out = model(_users(4, 3), _items(4), {})
    assert isinstance(out, torch.Tensor) and out.dim() == 0 and out.requires_grad
    model.eval()
    out = model(_users(4, 3), _items(4), {})
    assert isinstance(out, tuple) and len(out) == 2


def test_checkpoint_rebuilds_model_from_file_alone(tmp_path: Path) -> None:
    model = _model()
    model.user_tower.history.set_item_attributes(torch.arange(60).reshape(30, 2) % 3)
    path = tmp_path / "m.pt"
    checkpoint.save_model(path, model, phase="phase_1")
    raw = torch.load(path, weights_only=True)  # plain data only: no pickled classes
    assert raw["config"]["user_tower"]["sequence"]["d_model"] == 64 and raw["phase"] == "phase_1"
    rebuilt, _ = checkpoint.load_model(path)
    rebuilt.eval()
    users, items = _users(3, 5), _items(3)
    with torch.no_grad():
        assert torch.equal(model(users, items)[0], rebuilt(users, items)[0])
    assert torch.equal(rebuilt.user_tower.history.item_attributes, model.user_tower.history.item_attributes)
    # equal weights, equal bytes: a re-run that reproduces the weights must not change the DVC hash
    (tmp_path / "elsewhere").mkdir()
    checkpoint.save_model(tmp_path / "elsewhere" / "other.pt", model, phase="phase_1")
    assert (tmp_path / "elsewhere" / "other.pt").read_bytes() == path.read_bytes()


def test_ema_update_rule() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
    ema = Ema(net, decay=0.9)
    with torch.no_grad():
        net[0].weight.fill_(3.0)
    ema.update(net)
    assert torch.allclose(ema.shadow["0.weight"], torch.full((1, 2), 0.9 * 1.0 + 0.1 * 3.0))
    ema.update(net)
    assert torch.allclose(ema.shadow["0.weight"], torch.full((1, 2), 0.9 * 1.2 + 0.1 * 3.0))
    net[1].num_batches_tracked.fill_(7)  # integer buffers are copied, not averaged
    ema.update(net)
    assert int(ema.shadow["1.num_batches_tracked"]) == 7
    target = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    ema.copy_to(target)
    assert torch.allclose(target[0].weight, ema.shadow["0.weight"])
    with pytest.raises(ValueError):
        Ema(net, decay=1.0)


def test_parameter_counts_are_per_tower() -> None:
    model = TwoTowerModel(tiny_config())
    counts = model.parameter_counts()
    assert counts["user_tower"] == sum(p.numel() for p in model.user_tower.parameters())
    assert counts["item_tower"] == sum(p.numel() for p in model.item_tower.parameters())
    # the text encoder is not part of the item tower: only the 384 -> 64 projections are
    text_params = sum(p.numel() for p in model.item_tower.text.parameters())
    assert text_params == 2 * 384 * 64  # no bias: the batch norm after the first dense layer cancels it


def test_numeric_stats_for_constant_column_do_not_divide_by_zero() -> None:
    stats = NumericStats(min=2.0, max=2.0, mean=2.0, std=0.0, log_min=1.0, log_max=1.0)
    from dc003.model.config import _numeric_spec

    dc003, _ = contracts()
    spec = _numeric_spec(dc003.user_tower.numerical_features[3], "users_split.avg_basket_size", stats)
    assert spec.scale > 0
