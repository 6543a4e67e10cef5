"""The one way the proving ground's commands report (proving_ground/reports/)."""

from proving_ground import reports


def test_a_table_aligns_each_column_as_asked_and_shows_a_missing_figure_as_a_dash():
    lines = reports.table(["server", "served", "p95 ms"], [["node", 6000, None]], "lr")
    assert lines == [
        "| server | served | p95 ms |",
        "|---|---:|---|",
        "| node | 6000 | - |",
    ]


def test_a_tables_empty_header_cell_is_written_as_people_write_it():
    assert reports.table(["", "on", "off"], [], "lrr")[0] == "| | on | off |"


def test_columns_pad_all_but_a_free_last_column():
    lines = reports.columns(
        [["part", "lines", "note"], ["book", "957", "ok"]], "lr", last_free=True
    )
    assert lines == ["part  lines  note", "book    957  ok"]


def test_a_commands_options_come_from_its_docstring_and_the_shared_ones():
    doc = "Measures a thing\nover two lines.\n\nDetails a reader of --help does not need."
    parser = reports.parser(doc, modes=["smoke", "quick"], out="bench-results")
    args = parser.parse_args([])
    assert parser.description == "Measures a thing over two lines."
    assert args.mode == "quick" and args.out.name == "bench-results"
    assert not hasattr(reports.parser(doc).parse_args([]), "mode")


def test_published_results_go_to_a_folder_of_their_own_with_the_figures(tmp_path, capsys):
    drawn = []
    folder = reports.publish(tmp_path, "memory", "# Report\n", {"a": 1}, 0.0, drawn.append, ["x"])
    assert (folder / "memory.md").read_text() == "# Report\n"
    assert (folder / "memory.json").read_text().replace(" ", "").replace("\n", "") == '{"a":1}'
    assert drawn == [folder]
    printed = capsys.readouterr().out.splitlines()
    assert printed[:3] == ["# Report", "", "x"] and printed[3].startswith(f"written to {folder}")
