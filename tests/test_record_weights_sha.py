"""tools/record_weights_sha.py refuses, in one line, a table it cannot vouch for (its git checks need the repository)."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("record_weights_sha", ROOT / "tools" / "record_weights_sha.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_table_outside_the_repository_is_refused_in_one_line(tmp_path, capsys):
    table = tmp_path / "table.json"
    table.write_text('{"dataset": "mnist", "rows": []}')
    assert _tool().main([str(table)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a file of this repository" in err
    assert table.read_text() == '{"dataset": "mnist", "rows": []}'  # left as it was


def test_no_argument_prints_the_usage(capsys):
    assert _tool().main([]) == 2
    assert "record_weights_sha.py" in capsys.readouterr().err
