"""The DC-002 dataset on disk: what the training and evaluation code reads (``${paths.dataset_dir}``).

Every file is written by the ``dataset`` stage (:func:`dc003.data.build.build_dataset`) and checked by the
``validate`` stage (Pandera + Great Expectations, compiled from ``contracts/dc002.yaml``). Days are int32
days since 1970-01-01. Categorical strings are null where unknown; each has an ``<name>_idx`` int16
encoding with 0 = unknown / overflow and the known values at 1..vocab_size-1 (``vocab.json``).

``items.parquet``
    One row per article, sorted by ``item_idx`` (0..I-1, dense; stable: the order of sorted ``article_id``).
    ``article_id``; the six catalogue categoricals ``product_group_name``, ``colour_group_name``,
    ``garment_group_name``, ``department_name``, ``index_group_name``, ``section_name`` (strings) and their
    ``*_idx`` encodings; ``prod_name`` and ``detail_desc`` (empty string where missing, never null);
    ``first_purchase_day`` (nullable: never bought). ``first_purchase_day`` looks at the whole data: it is
    metadata, not a model feature.

``items_{train,val,test}.parquet``
    Item features AS OF the split's cutoff (only interactions strictly before the split's first day), one
    row per article in ``item_idx`` order: ``price_normalized`` (mean paid price before the cutoff, min-max
    scaled to [0, 1]; never-sold items get the median of sold items), ``price_category`` (p1..p9 price
    quantile bucket, null for never-sold) + ``price_category_idx``, ``popularity_score`` (purchases in the
    ``popularity_window_days`` before the cutoff, min-max scaled), ``window_purchases`` (the raw count),
    ``cold`` (never bought before the cutoff).

``users_{train,val,test}.parquet``
    One row per customer in ``user_idx`` order (0..U-1, dense; stable: sorted ``customer_id``), features as of
    the split's cutoff: ``club_member_status``, ``fashion_news_frequency`` (spelling normalised), ``age``
    (float32, nullable), ``age_group`` (5 buckets, null = unknown), ``preferred_channel`` ("1"/"2": the
    majority channel of the interaction rows before the cutoff; null on ties and without purchases),
    ``lifetime_days`` (cutoff minus first purchase day, 0 without purchases), ``total_purchases`` (sum of
    quantity), ``avg_basket_size`` (items per distinct purchase day), and the four ``*_idx`` encodings.

``interactions.parquet``
    All clean interactions sorted by ``user_idx``, ``day``, ``item_idx``, ``sales_channel_id``: ``user_idx``,
    ``item_idx``, ``day``, ``price`` (float32, mean of merged rows), ``sales_channel_id`` (int8),
    ``quantity`` (int16: same-day repeated rows merged), ``split`` (history / train / val / test),
    ``hist_start``, ``hist_end`` (int64 row indices into this table: the user's last <= max_history
    interactions strictly before this row's day are rows ``[hist_start, hist_end)`` — a slice, never a copy;
    an empty history has ``hist_start == hist_end``).

``splits.json``
    Cutoff (= first) and last day and date of train / val / test, the train window and the data period.

``cold_users.parquet`` / ``cold_items.parquet``
    ``(split, user_idx)`` / ``(split, item_idx)``: users (items) with interactions in the split and none
    before its cutoff.

``vocab.json``
    Per DC-003 categorical: its DC-002 column, the policy, ``vocab_size``, ``values`` in index order (index 0
    is ``null`` = unknown) and the overflow (distinct values, values left out, unknown share per file).

``quarantine.parquet``
    Every rejected raw row: ``file``, ``row`` (1-based record number, header excluded), ``column``, ``rule``
    (the reason code of contracts/dc002.yaml), ``reason``, ``raw`` (the row's raw values as JSON).

``oracle.parquet`` (synthetic data only)
    The generator's ground-truth ranking mapped to indices: ``user_idx``, ``item_idx``, ``rank``, ``score``.

``manifest.json``
    Row counts, cutoffs, cardinalities, reject and repair counts per rule, the sha256 of every file above,
    the params used and the contract version it satisfies.
"""

from __future__ import annotations

SPLITS: tuple[str, str, str] = ("train", "val", "test")
SPLITS_JSON = "splits.json"
VOCAB_JSON = "vocab.json"
MANIFEST_JSON = "manifest.json"
RAW_SOURCE_JSON = "source.json"  # written by the raw stage next to the raw files
ORACLE_RAW = "oracle.parquet"
UNKNOWN_INDEX = 0
