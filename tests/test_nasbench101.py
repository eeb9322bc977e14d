"""NAS-Bench-101: the space (hash, pruning, encodings) and the TFRecord benchmark reader."""

from __future__ import annotations

import base64
import json
import pickle
import struct

import numpy as np
import pytest
from conftest import DATA, shared_file

from raynas import benchmarks
from raynas._errors import BenchmarkFormatError, CellNotTabulatedError, InvalidArchitectureError
from raynas.benchmarks import _tfrecord as tfrecord
from raynas.benchmarks._nasbench101 import (
    FIDELITIES,
    METRICS,
    TIME_FN,
    convert_nasbench101,
    load_nasbench101,
    load_nb101_json,
)
from raynas.benchmarks._table import TabularBenchmark
from raynas.benchmarks._tfrecord import (
    _crc32c_py,
    decode_model_metrics,
    iter_fields,
    iter_records,
    masked_crc32c,
    masked_crc32c_batch,
)
from raynas.spaces import get_space
from raynas.spaces._nasbench101 import Cell101, NASBench101Space

C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
FIXTURES = ("energy_4V9E.tfrecord", "energy_5V9E.tfrecord")
# Excerpts of the official-format files, committed under tests/data (see its README).
NB101_EXCERPT = DATA / "nb101_excerpt.json"
TFRECORD_EXCERPT = DATA / "nb101_excerpt.tfrecord"


@pytest.fixture(scope="module")
def space() -> NASBench101Space:
    return NASBench101Space()


@pytest.fixture(scope="module")
def nb101_records():
    """The first 20 records of nb101_1k.json, committed as tests/data/nb101_excerpt.json."""
    with open(NB101_EXCERPT) as fh:
        return json.load(fh)["records"]


@pytest.fixture(scope="module")
def all_nb101_records():
    """All 1,000 records of ../shared/data/nasbench101/nb101_1k.json (skips when absent)."""
    with open(shared_file("nasbench101/nb101_1k.json")) as fh:
        return json.load(fh)["records"]


@pytest.fixture(scope="module")
def bench4():
    """The 8 cells (4 epoch budgets x 3 runs) of tests/data/nb101_excerpt.tfrecord."""
    return benchmarks.load("nasbench101", path=TFRECORD_EXCERPT)


@pytest.fixture(scope="module")
def random_cells(space):
    rng = np.random.default_rng(0)
    return list(dict.fromkeys(space.sample(rng) for _ in range(3000)))


def _raw_records(path):
    return [json.loads(data) for _, data in iter_records(path)]


def _write_tfrecord(path, payloads):
    with open(path, "wb") as fh:
        for data in payloads:
            head = struct.pack("<Q", len(data))
            fh.write(head + struct.pack("<I", masked_crc32c(head)) + data)
            fh.write(struct.pack("<I", masked_crc32c(data)))


# ----------------------------------------------------------------------- hash conformance
def test_hash_matches_all_nb101_1k_records(space, all_nb101_records):
    assert len(all_nb101_records) == 1000
    for rec in all_nb101_records:
        cell = space.from_spec(rec["matrix"], rec["ops"])
        assert space.key(cell) == rec["hash"]


@pytest.mark.parametrize("name", FIXTURES)
def test_hash_matches_every_tfrecord_fixture_record(space, name):
    records = _raw_records(shared_file(f"nasbench101/{name}"))
    assert records
    for hash_, _, adj, ops, _ in records:
        op_list = ops.split(",")
        n = len(op_list)
        matrix = [[int(adj[i * n + j]) for j in range(n)] for i in range(n)]
        assert space.key(space.from_spec(matrix, op_list)) == hash_


def test_key_is_invariant_to_vertex_order_and_pruning(space):
    a = space.from_spec(
        [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", C3, C1, "output"]
    )
    b = space.from_spec(
        [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", C1, C3, "output"]
    )
    assert a != b and space.key(a) == space.key(b)
    # A dangling vertex (no path to the output) is pruned away.
    c = space.from_spec(
        [[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
        ["input", C3, C1, MP, "output"],
    )
    assert c == a and len(c.ops) == 4


def test_unpruned_cell_has_the_key_of_its_pruned_form(space):
    raw = Cell101(((0, 1, 1), (0, 0, 0), (0, 0, 0)), ("input", MP, "output"))
    assert space.key(raw) == space.key(space.from_spec([[0, 1], [0, 0]], ["input", "output"]))
    assert space.prune(raw).ops == ("input", "output")


# ----------------------------------------------------------------------- invalid cells
@pytest.mark.parametrize(
    "matrix, ops, reason",
    [
        ([[0, 1, 0], [0, 0, 1], [0, 1, 0]], ["input", C3, "output"], "cycle"),
        (
            [[0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]],
            ["input", C3, C1, "output"],
            "upper-triangular",
        ),
        (np.eye(8, k=1, dtype=int), ["input"] + [C3] * 6 + ["output"], "at most 7 vertices"),
        (
            [
                [0, 1, 1, 1, 1, 1, 0],
                [0, 0, 1, 0, 0, 0, 0],
                [0, 0, 0, 1, 0, 0, 0],
                [0, 0, 0, 0, 1, 0, 0],
                [0, 0, 0, 0, 0, 1, 0],
                [0, 0, 0, 0, 0, 0, 1],
                [0, 0, 0, 0, 0, 0, 0],
            ],
            ["input", C3, C3, C3, C3, C3, "output"],
            "at most 9 edges",
        ),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv5x5", "output"], "unknown op 'conv5x5'"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [C3, C3, "output"], "first op must be 'input'"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", C3, C1], "last 'output'"),
        (
            [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
            ["input", C3, C1, "output"],
            "disconnected",
        ),
        ([[0, 1], [0, 0]], ["input", C3, "output"], "3x3"),
        ([[0, 2], [0, 0]], ["input", "output"], "0 or 1"),
    ],
)
def test_invalid_specs_raise_with_reason(space, matrix, ops, reason):
    with pytest.raises(InvalidArchitectureError, match=reason):
        space.from_spec(matrix, ops)


def test_validate_rejects_non_cells(space):
    for bad in ((1, 2), None, Cell101([[0, 1], [0, 0]], ["input", "output"])):  # type: ignore[arg-type]
        with pytest.raises(InvalidArchitectureError):
            space.validate(bad)
        with pytest.raises(InvalidArchitectureError):
            space.key(bad)
    assert not space.is_valid(Cell101(((0, 0), (0, 0)), ("input", "output")))


def test_nine_edges_before_pruning_limit_counts_after_pruning(space):
    # 10 edges, but the one into the dangling vertex 5 goes with it: valid after pruning.
    m = np.zeros((7, 7), dtype=int)
    for i, j in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 6), (0, 2), (0, 3), (0, 4), (0, 6), (1, 5)]:
        m[i, j] = 1
    cell = space.from_spec(m, ["input", C3, C3, C3, C3, C3, "output"])
    assert len(cell.ops) == 6 and sum(map(sum, cell.matrix)) == 9


# ----------------------------------------------------------------------- sampling
def test_sample_is_valid_pruned_and_seeded(space, random_cells):
    for cell in random_cells:
        space.validate(cell)
        assert space.prune(cell) == cell
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a == b


def test_mutate_is_valid_and_different(space, random_cells):
    rng = np.random.default_rng(1)
    for cell in random_cells[:300]:
        child = space.mutate(cell, rng)
        space.validate(child)
        assert space.key(child) != space.key(cell)
    tiny = space.from_spec([[0, 1], [0, 0]], ["input", "output"])
    assert len(space.mutate(tiny, rng).ops) > 2  # the only way on is to grow


def test_neighbors_valid_distinct_and_deterministic(space, random_cells):
    for cell in random_cells[:100]:
        nbrs = space.neighbors(cell)
        keys = [space.key(n) for n in nbrs]
        assert len(set(keys)) == len(keys) and space.key(cell) not in keys
        assert all(space.is_valid(n) for n in nbrs)
        assert nbrs == space.neighbors(cell)
    tiny = space.from_spec([[0, 1], [0, 0]], ["input", "output"])
    grown = space.neighbors(tiny)  # one flip activates a padded vertex of each op
    assert sorted(c.ops[1] for c in grown) == sorted([C3, C1, MP])
    assert all(c.matrix == ((0, 1, 1), (0, 0, 1), (0, 0, 0)) for c in grown)


# ----------------------------------------------------------------------- encodings
def test_round_trips(space, random_cells):
    for cell in random_cells:
        config = space.to_config(cell)
        assert len(config) == 26 and all(isinstance(v, (int, str)) for v in config.values())
        assert space.from_config(json.loads(json.dumps(config))) == cell
        seq = space.to_sequence(cell)
        assert len(seq) == space.seq_length and all(0 <= t < space.vocab_size for t in seq)
        assert space.from_sequence(seq) == cell
        full = space.to_full_sequence(cell)
        assert space.token_mask()[np.arange(27), full].all()
        assert space.from_sequence(full) == cell
        assert space.from_string(space.to_string(cell)) == cell
        adj, ops = space.to_graph(cell)
        assert adj.shape == (7, 7) and ops.shape == (7, 5)
        assert adj.sum() == sum(map(sum, cell.matrix)) and ops.sum() == len(cell.ops)
    assert pickle.loads(pickle.dumps(random_cells[0])) == random_cells[0]


def test_sequence_encoding_by_hand(space, nb101_records):
    rec = nb101_records[0]  # 7 vertices
    cell = space.from_spec(rec["matrix"], rec["ops"])
    assert space.to_sequence(cell) == [
        2, 4,
        1, 2, 5,
        1, 1, 2, 4,
        2, 1, 1, 1, 4,
        2, 1, 1, 2, 2, 3,
        1, 1, 2, 1, 1, 2, 6,
    ]  # fmt: skip
    short = space.from_spec(
        [[0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", C1, MP, "output"]
    )
    seq = [2, 3, 1, 2, 5, 2, 1, 2, 6] + [0] * 18
    assert space.to_sequence(short) == seq
    assert space.from_sequence(seq) == short


@pytest.mark.parametrize(
    "tokens, reason",
    [
        (
            [2, 4, 1, 2, 4, 1, 1, 2, 4, 1, 1, 1, 2, 4, 1, 1, 1, 1, 2, 4, 1, 1, 1, 1, 1, 2, 4],
            "no output token",
        ),
        ([2, 4] + [0] * 25, r"token 0 at position 2 \(edge 0->2\)"),
        ([2, 6, 1] + [0] * 24, "must all be the pad 0"),
        ([3, 6] + [0] * 25, "must be 1 .no edge. or 2"),
        ([2, 2] + [0] * 25, "must be 3, 4, 5 or 6"),
        ([1, 6] + [0] * 25, "disconnected"),
        ([2, 6], "27 tokens"),
    ],
)
def test_from_sequence_rejects(space, tokens, reason):
    with pytest.raises(InvalidArchitectureError, match=reason):
        space.from_sequence(tokens)


def test_token_mask_shape_and_masked_sequences_decode(space, random_cells):
    mask = space.token_mask()
    assert mask.shape == (27, 7) and not mask[:, 0].any()
    assert mask[26].tolist() == [False] * 6 + [True]
    assert mask[1].tolist() == [False, False, False, True, True, True, True]
    assert mask[0].tolist() == [False, True, True] + [False] * 4
    for cell in random_cells:  # every non-pad token to_sequence writes is allowed
        seq = space.to_sequence(cell)
        assert all(mask[i, t] for i, t in enumerate(seq) if t)
    rng = np.random.default_rng(3)
    valid = 0
    for _ in range(500):
        toks = [int(rng.choice(np.flatnonzero(row))) for row in mask]
        if 6 in toks[:-1]:  # a sampler stops at the output token and pads the rest
            end = toks.index(6) + 1
            toks = toks[:end] + [0] * (27 - end)
        try:
            space.from_sequence(toks)
            valid += 1
        except InvalidArchitectureError as exc:
            assert "edges" in str(exc) or "disconnected" in str(exc)
    assert valid > 250


def test_config_padding_and_errors(space):
    cell = space.from_spec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", MP, "output"])
    config = space.to_config(cell)
    assert config["edge_0_1"] == 1 and config["edge_1_6"] == 1 and config["edge_1_2"] == 0
    assert config["op_1"] == MP and config["op_2"] == C3
    del config["op_3"]
    with pytest.raises(InvalidArchitectureError, match="op_3"):
        space.from_config(config)
    with pytest.raises(InvalidArchitectureError, match="not a NAS-Bench-101 cell string"):
        space.from_string("{bad json")


def test_space_registry(space):
    assert isinstance(get_space("nasbench101"), NASBench101Space)
    assert space.cardinality == 423_624 and (space.seq_length, space.vocab_size) == (27, 7)
    with pytest.raises(NotImplementedError):
        space.enumerate()
    other = get_space("nasbench101", mutation_rate=2.0)
    assert get_space("nasbench101", **other.options).mutation_rate == 2.0
    with pytest.raises(ValueError, match="mutation_rate"):
        NASBench101Space(mutation_rate=0)


# ----------------------------------------------------------------------- tfrecord + protobuf
def test_crc32c(monkeypatch):
    assert _crc32c_py(b"123456789") == 0xE3069283
    rng = np.random.default_rng(0)
    blobs = [
        rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 300, 50)
    ]
    buf = b"".join(blobs)
    starts = np.cumsum([0] + [len(b) for b in blobs[:-1]]).tolist()
    want = [masked_crc32c(b) for b in blobs]
    assert masked_crc32c_batch(buf, starts, [len(b) for b in blobs]).tolist() == want
    # The path taken when a native crc32c module is installed (emulated here).
    monkeypatch.setattr(tfrecord, "_NATIVE", lambda data: _crc32c_py(bytes(data)))
    assert masked_crc32c_batch(buf, starts, [len(b) for b in blobs]).tolist() == want


def test_protobuf_skips_unknown_fields():
    ev = b"".join(
        [b"\x21" + struct.pack("<d", 0.5), b"\x31" + struct.pack("<d", 9.0), b"\x32\x03abc"]
    )
    msg = (
        b"\x0a" + bytes([len(ev)]) + ev
        + b"\x10\x96\x01"  # trainable_parameters = 150
        + b"\x1d\x00\x00\x00\x00"  # field 3 as fixed32: unknown wire type, skipped
        + b"\x23\x08\x01\x24"  # a group (field 4) holding a varint
        + b"\x19" + struct.pack("<d", 2.5)
        + b"\xa8\x1f\x05"  # field 501 varint
    )  # fmt: skip
    m = decode_model_metrics(msg)
    assert m.trainable_parameters == 150 and m.total_time == 2.5
    assert m.evaluation_data[0].validation_accuracy == 0.5
    assert m.evaluation_data[0].checkpoint_path == "abc"
    assert [f for f, _, _ in iter_fields(msg)] == [1, 2, 3, 3, 501]
    with pytest.raises(ValueError):
        list(iter_fields(b"\x0a\x05ab"))


def _corrupt(tmp_path, src, mutate):
    data = bytearray(src.read_bytes())
    (length0,) = struct.unpack_from("<Q", data)
    second = 16 + length0  # offset of the second record
    mutate(data, second)
    out = tmp_path / "corrupt.tfrecord"
    out.write_bytes(bytes(data))
    return out, second


def test_corrupt_data_crc_names_offset(tmp_path):
    src = TFRECORD_EXCERPT

    def flip(data, off):
        data[off + 12 + 20] ^= 0x01

    path, off = _corrupt(tmp_path, src, flip)
    with pytest.raises(BenchmarkFormatError, match=f"data CRC mismatch.*byte offset {off}"):
        load_nasbench101(path, "cifar10")


def test_corrupt_length_crc_names_offset(tmp_path):
    src = TFRECORD_EXCERPT

    def flip(data, off):
        data[off] ^= 0x04

    path, off = _corrupt(tmp_path, src, flip)
    with pytest.raises(BenchmarkFormatError, match=f"length CRC mismatch.*byte offset {off}"):
        list(iter_records(path))


def test_truncated_file_names_offset(tmp_path):
    src = TFRECORD_EXCERPT
    offsets = [off for off, _ in iter_records(src)]
    path = tmp_path / "short.tfrecord"
    path.write_bytes(src.read_bytes()[: offsets[-1] + 40])
    with pytest.raises(
        BenchmarkFormatError, match=f"truncated record at byte offset {offsets[-1]}"
    ):
        load_nasbench101(path, "cifar10")
    path.write_bytes(src.read_bytes()[: offsets[-1] + 5])
    with pytest.raises(
        BenchmarkFormatError, match=f"truncated record header at byte offset {offsets[-1]}"
    ):
        list(iter_records(path))


def test_wrong_hash_and_bad_payload_name_offset(tmp_path):
    src = TFRECORD_EXCERPT
    payloads = [data for _, data in iter_records(src)][:2]
    rec = json.loads(payloads[1])
    rec[0] = "0" * 32
    path = tmp_path / "wrong.tfrecord"
    _write_tfrecord(path, [payloads[0], json.dumps(rec).encode()])
    with pytest.raises(
        BenchmarkFormatError, match=f"byte offset {16 + len(payloads[0])}.*module hash"
    ):
        load_nasbench101(path, "cifar10")
    _write_tfrecord(path, [payloads[0]] * 4)
    with pytest.raises(BenchmarkFormatError, match="more than 3 runs"):
        load_nasbench101(path, "cifar10")
    _write_tfrecord(path, [])
    with pytest.raises(BenchmarkFormatError, match="no records"):
        load_nasbench101(path, "cifar10")
    _write_tfrecord(path, [b"not json"])
    with pytest.raises(BenchmarkFormatError, match="malformed record at byte offset 0"):
        load_nasbench101(path, "cifar10")


# ----------------------------------------------------------------------- the benchmark
def test_excerpt_shapes(bench4):
    assert len(bench4) == 8 and bench4.values.shape == (8, 4, 3, 5)
    assert bench4.fidelities == list(FIDELITIES) and bench4.metrics == list(METRICS)
    assert not np.isnan(bench4.values).any()
    assert TIME_FN is None and bench4.partial


def test_fixture_shapes():
    bench4 = load_nasbench101(shared_file("nasbench101/energy_4V9E.tfrecord"), "cifar10")
    assert len(bench4) == 91 and bench4.values.shape == (91, 4, 3, 5)
    assert not np.isnan(bench4.values).any()
    bench5 = load_nasbench101(shared_file("nasbench101/energy_5V9E.tfrecord"), "cifar10")
    assert len(bench5) == 2532
    assert not np.isnan(bench5.values[:, 0, 0]).any() and np.isnan(bench5.values[:, 1:]).all()
    assert np.isnan(bench5.values[:, :, 1:]).all()


def test_one_record_by_hand(bench4, space):
    src = TFRECORD_EXCERPT
    hash_, epochs, _, _, b64 = _raw_records(src)[0]
    m = decode_model_metrics(base64.b64decode(b64))
    final = m.evaluation_data[2]
    row = bench4.keys.index(hash_)
    got = bench4.values[row, FIDELITIES.index(epochs), 0]
    want = [final.validation_accuracy * 100, final.test_accuracy * 100, final.train_accuracy * 100,
            m.trainable_parameters, final.training_time]  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    cell = space.from_string(bench4.strings[row])
    assert space.key(cell) == hash_
    assert bench4.query(cell, fidelity=epochs, seed=0) == dict(zip(METRICS, want, strict=True))


def test_query_seed_and_mean(bench4):
    cell = bench4.candidates()[5]
    runs = [bench4.query(cell, fidelity=36, seed=s)["val_accuracy"] for s in range(3)]
    assert len(set(runs)) > 1
    assert bench4.query(cell, fidelity=36)["val_accuracy"] == pytest.approx(np.mean(runs))
    assert set(bench4.query(cell)) == set(METRICS)
    assert bench4.eval_time(cell, 108) == pytest.approx(bench4.query(cell, 108)["train_time"])


def test_untabulated_cell_raises(bench4, space):
    cell = space.from_spec(np.eye(7, k=1, dtype=int), ["input"] + [C3] * 5 + ["output"])
    with pytest.raises(CellNotTabulatedError, match=space.key(cell)):
        bench4.query(cell)


def test_parquet_round_trip(tmp_path, bench4):
    out = convert_nasbench101(TFRECORD_EXCERPT, tmp_path / "nasbench101.parquet")
    for again in (TabularBenchmark.from_parquet(out), benchmarks.load("nasbench101", path=out)):
        assert again.keys == bench4.keys and again.strings == bench4.strings
        assert again.fidelities == bench4.fidelities and again.metrics == bench4.metrics
        np.testing.assert_array_equal(again.values, bench4.values)


def test_nb101_json(nb101_records, space):
    bench = load_nb101_json(NB101_EXCERPT)
    assert len(bench) == 20 and bench.values.shape == (20, 4, 1, 3)
    rec = nb101_records[3]
    cell = space.from_spec(rec["matrix"], rec["ops"])
    res = bench.query(cell, fidelity=12)
    assert res["val_accuracy"] == pytest.approx(100 * rec["validation_accuracy"]["12"])
    assert res["params"] == rec["trainable_parameters"] and "train_time" not in res
    assert bench.query(cell)["train_time"] == pytest.approx(rec["training_time_108"])


def test_nb101_json_complete_file():
    bench = load_nb101_json(shared_file("nasbench101/nb101_1k.json"))
    assert len(bench) == 1000 and bench.values.shape == (1000, 4, 1, 3)


def test_loader_rejects_unknown_options(tmp_path):
    with pytest.raises(TypeError, match="unknown option"):
        load_nasbench101(tmp_path / "x.tfrecord", "cifar10", verbose=True)
