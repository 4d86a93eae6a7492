"""contracts/dc002.yaml: it loads, lints clean against DC-003, and every lint rule has a failing case."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dc003.contracts import load_dc002, load_dc003
from dc003.contracts.dc002_lint import lint_dc002, require_clean
from dc003.errors import Dc003Error

from .conftest import REPO

DC002 = "contracts/dc002.yaml"


def _findings(path: Path) -> list[str]:
    return [f.line() for f in lint_dc002(load_dc002(path), load_dc003(REPO / "contracts/dc003.yaml"))]


def _errors(path: Path) -> list[str]:
    return [line for line in _findings(path) if line.startswith("error")]


def test_shipped_contract_loads_and_lints_clean() -> None:
    c = load_dc002(REPO / DC002)
    assert c.contract.id == "DC-002" and c.contract.version.count(".") == 2
    assert c.splits.test_days == 7 and c.splits.val_days == 7
    assert _errors(REPO / DC002) == []


def test_vocab_sizes_are_read_from_dc003_not_copied() -> None:
    text = (REPO / DC002).read_text()
    assert "vocab_size:" not in text  # only mentioned in prose, never declared as a key
    c = load_dc002(REPO / DC002)
    names = {(e.tower, e.name) for e in c.compatibility.categorical}
    assert ("item_tower", "color_group_name") in names  # DC-003's spelling ...
    colour = next(e for e in c.compatibility.categorical if e.name == "color_group_name")
    assert colour.column == "items.colour_group_name"  # ... reads DC-002's column
    product = next(e for e in c.compatibility.text if e.name == "product_name")
    assert product.column == "items.prod_name"


def test_every_dc003_categorical_has_a_policy() -> None:
    c = load_dc002(REPO / DC002)
    dc003 = load_dc003(REPO / "contracts/dc003.yaml")
    declared = {n for n in dc003.user_tower.categorical_embeddings} | set(
        dc003.item_tower.categorical_embeddings
    )
    assert {e.name for e in c.compatibility.categorical} == declared
    assert all(e.policy in {"declared_order", "top_k_plus_unknown"} for e in c.compatibility.categorical)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # a rule naming a column the file does not declare
        (
            "{rule: missing_age, file: customers, columns: [age]",
            "{rule: missing_age, file: customers, columns: [agee]",
            "column 'agee' is not declared in raw.customers",
        ),
        # a row problem no rule handles
        (
            "    - {rule: malformed_price, file: transactions, columns: [price], match: [unparseable],",
            "    - {rule: malformed_price, file: transactions, columns: [t_dat], match: [unparseable],",
            "no mess-handling rule handles unparseable on transactions.price",
        ),
        # a vocabulary (pattern) declared in two places differently
        (
            "      article_id: {type: string, from: articles.article_id, unique: true}",
            '      article_id: {type: string, from: articles.article_id, unique: true, pattern: "^[0-9]{9}$"}',  # noqa: E501
            "pattern declared in two places differently",
        ),
        # age buckets that disagree with the age_group vocabulary
        (
            "  age_group: [16-24, 25-34,",
            "  age_group: [16-25, 25-34,",
            "age_group buckets and the age_group vocabulary",
        ),
        # tolerance out of range
        (
            "expected: 0.70, tolerance: 0.12",
            "expected: 0.70, tolerance: -0.12",
            "tolerance out of range: -0.12",
        ),
        (
            "expected: 23.2, tolerance: 0.6, relative: true",
            "expected: 23.2, tolerance: 1.5, relative: true",
            "tolerance out of range",
        ),
        # compatibility entries that do not exist in DC-003
        (
            "{name: index_group_name, tower: item_tower",
            "{name: index_group, tower: item_tower",
            "DC-003 has no categorical feature item_tower.index_group",
        ),
        (
            "{name: product_name, tower: item_tower, column: items.prod_name}",
            "{name: product_title, tower: item_tower, column: items.prod_name}",
            "DC-003 has no text feature",
        ),
        # a declared vocabulary that cannot fit the DC-003 vocab_size
        (
            '  preferred_channel: ["1", "2"]',
            '  preferred_channel: ["1", "2", "3"]',
            "exceed the DC-003 vocab_size 3",
        ),
        # a compatibility column that is not declared
        (
            "column: items.section_name, policy",
            "column: items.sections, policy",
            "items.sections is not a declared dataset column",
        ),
        # a reference to a table that is not the dense index of its parent
        (
            "      - {column: item_idx, table: items, key: item_idx}\n  users_split:",
            "      - {column: item_idx, table: items, key: article_id}\n  users_split:",
            "must be the dense index of items",
        ),
        # accepting a missing value in a column that is not nullable
        (
            "{rule: missing_age, file: customers, columns: [age], match: [missing], action: accept",
            "{rule: missing_age, file: customers, columns: [customer_id], match: [missing], action: accept",
            "not nullable",
        ),
        # a clarification about a key that does not exist
        (
            "  - path: splits.train_window_days",
            "  - path: splits.train_window",
            "splits.train_window does not exist",
        ),
        # a distribution on a per-split table without its split
        (
            "{name: missing_age_share, table: users_split, split: train,",
            "{name: missing_age_share, table: users_split,",
            "users_split needs a split",
        ),
        # free text without a rule for bytes that are not UTF-8 (U+FFFD would be kept)
        (
            "{rule: invalid_postal_code, file: customers, columns: [postal_code]",
            "{rule: invalid_postal_code, file: customers, columns: [age]",
            "no mess-handling rule handles not_utf8 on customers.postal_code",
        ),
        # a lost leading zero on a column whose pattern is not a number of digits
        (
            "{rule: padded_article_ref, file: transactions, columns: [article_id]",
            "{rule: padded_article_ref, file: transactions, columns: [customer_id]",
            "lost_leading_zero cannot match transactions.customer_id",
        ),
        # zero_pad repairing something else than a lost leading zero
        (
            "{rule: padded_article_id, file: articles, columns: [article_id], match: [lost_leading_zero]",
            "{rule: padded_article_id, file: articles, columns: [article_id], match: [duplicate_key]",
            "zero_pad repairs lost_leading_zero matches only",
        ),
    ],
)
def test_lint_reports_each_inconsistency(
    edited: Callable[..., Path], old: str, new: str, expected: str
) -> None:
    errors = _errors(edited(DC002, old, new))
    assert any(expected in line for line in errors), errors


def test_vacuous_share_tolerance_is_a_warning(edited: Callable[..., Path]) -> None:
    path = edited(DC002, "expected: 0.70, tolerance: 0.12", "expected: 0.70, tolerance: 0.9")
    lines = _findings(path)
    assert any(line.startswith("warning") and "admits every share" in line for line in lines)
    assert _errors(path) == []


def test_build_and_validation_refuse_a_contract_with_errors(edited: Callable[..., Path]) -> None:
    path = edited(
        DC002,
        "{rule: missing_age, file: customers, columns: [age]",
        "{rule: missing_age, file: customers, columns: [agee]",
    )
    with pytest.raises(Dc003Error, match="agee"):
        require_clean(load_dc002(path), load_dc003(REPO / "contracts/dc003.yaml"))


def test_structural_errors_are_one_line(edited: Callable[..., Path]) -> None:
    path = edited(DC002, "max_reject_share: 0.01", "max_reject_share: 1.5")
    with pytest.raises(Dc003Error) as exc:
        load_dc002(path)
    assert str(exc.value) == f"{path}: mess_handling.max_reject_share: must be <= 1 (got 1.5)"
    path = edited(
        DC002,
        "out_of_range], action: repair,\n       repair: set_null",
        "out_of_range], action: quarantine,\n       repair: set_null",
    )
    with pytest.raises(Dc003Error, match="repair` is only for action repair"):
        load_dc002(path)


def test_contracts_lint_cli_includes_dc002(edited: Callable[..., Path]) -> None:
    bad = edited(
        DC002,
        "{rule: missing_age, file: customers, columns: [age]",
        "{rule: missing_age, file: customers, columns: [agee]",
    )
    cmd = [sys.executable, "-m", "dc003.cli", "contracts", "lint", "--json", "--dc002", str(bad)]
    code = "from dc003.cli import main; import sys; sys.argv = ['dc003', *sys.argv[1:]]; main()"
    out = subprocess.run([sys.executable, "-c", code, *cmd[3:]], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 1
    findings = json.loads(out.stdout)["findings"]  # lint --json: {passed, counts, findings}
    assert any(f["contract"] == DC002 and "agee" in f["message"] for f in findings)


def test_dataset_params_mirror_the_contracts(edited: Callable[..., Path]) -> None:
    from dc003.params.check import check_params

    report = check_params(REPO / "params.yaml", REPO / "contracts/dc003.yaml", REPO / DC002)
    assert not [d for d in report.deviations if d.key.startswith("dataset.")]
    dev = edited("params.yaml", "  train_window_days: 84", "  train_window_days: 28")
    report = check_params(dev, REPO / "contracts/dc003.yaml", REPO / DC002)
    (d,) = [d for d in report.deviations if d.key == "dataset.train_window_days"]
    assert d.contract_key == "splits.train_window_days" and d.contract_value == 84
