"""tools/record_weights_sha.py refuses, in one line, a table it cannot vouch for (its git checks need the repository)."""


def test_a_table_outside_the_repository_is_refused_in_one_line(tmp_path, capsys, load_tool):
    table = tmp_path / "table.json"
    table.write_text('{"dataset": "mnist", "rows": []}')
    assert load_tool("record_weights_sha").main([str(table)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a file of this repository" in err
    assert table.read_text() == '{"dataset": "mnist", "rows": []}'  # left as it was


def test_no_argument_prints_the_usage(capsys, load_tool):
    assert load_tool("record_weights_sha").main([]) == 2
    assert "record_weights_sha.py" in capsys.readouterr().err
