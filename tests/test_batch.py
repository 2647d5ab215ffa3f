"""Whole files: reading uploads, classifying every row, and the page's file tab."""

from __future__ import annotations

import pandas as pd
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import app
import infer
from serving import batch


@pytest.fixture(scope="module")
def classifier(model_dir):
    return infer.load(model_dir)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("reviews.csv", "id,text\n1,great film\n2,awful dull plot\n"),
        ("one-column.csv", "review\ngreat film\nawful dull plot\n"),
        ("reviews.txt", "great film\n\nawful dull plot\n"),
    ],
)
def test_reviews_are_read_from_csv_and_txt(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    assert batch.read_reviews(path) == ["great film", "awful dull plot"]


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("two.csv", "id,review\n1,great\n", "has columns id, review: name the reviews' column"),
        ("empty.txt", "\n\n", "holds no reviews"),
        ("big.txt", "great film\n" * 11, "holds 11 reviews; the limit is 10 per file"),
        ("reviews.xlsx", "x", "is not a .csv or .txt file"),
        # A comma in the first review once shifted it into an index and emptied the rest.
        ("commas.csv", "text\nGreat film, loved it.\nDull.\n", "put reviews that hold commas"),
        ("later.csv", "text\nDull.\nGreat film, loved it.\n", "put reviews that hold commas"),
        ("blank.csv", "", "holds no reviews"),
    ],
)
def test_unusable_files_get_a_message_naming_the_fix(tmp_path, name, content, says):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(batch.FileError, match=says):
        batch.read_reviews(path, max_rows=10)


def test_every_row_is_classified_in_order_as_infer_does(classifier):
    texts = ["great wonderful film", "", "awful dull boring plot", "😀😀"]
    table = batch.classify_rows(classifier, texts)
    assert list(table.columns) == ["text", "label", "NEGATIVE", "POSITIVE", "unsure", "note"]
    expected = classifier.classify([texts[0], texts[2]])
    assert table.loc[[0, 2], "label"].tolist() == [p.label for p in expected]
    assert table.loc[0, "POSITIVE"] == pytest.approx(expected[0].scores["POSITIVE"])
    assert table.loc[1, "label"] == "" and table.loc[1, "note"].startswith("The review is empty")
    assert table.loc[3, "note"].startswith("The review has no words")


def test_the_file_tab_returns_a_table_a_chart_and_a_csv(served_file_tab, tmp_path):
    path = tmp_path / "mine.csv"
    pd.DataFrame({"text": ["great wonderful film", "awful dull boring plot", ""]}).to_csv(path)
    summary, chart, table, download = served_file_tab.predict(
        handle_file(str(path)), api_name="/classify_file"
    )
    assert summary.startswith("Classified 3 reviews in ")
    assert "1 not read" in summary
    result = pd.read_csv(download)
    assert result["text"].fillna("").tolist() == [
        "great wonderful film",
        "awful dull boring plot",
        "",
    ]
    assert set(result.columns) >= {"label", "NEGATIVE", "POSITIVE", "unsure", "note"}
    assert sum(row[1] for row in chart["data"]) == 3
    assert len(table["data"]) == 3


@pytest.mark.parametrize("sent", ["great wonderful film", 42, {"path": 7}])
def test_the_file_call_refuses_what_is_not_a_file(served_file_tab, sent, capfd):
    with pytest.raises(AppError, match=r"takes an uploaded \.csv or \.txt file"):
        served_file_tab.predict(sent, api_name="/classify_file")
    assert "Traceback" not in capfd.readouterr().err  # nothing of the server in the log


@pytest.fixture(scope="module")
def served_file_tab(model_dir):
    infer.reset()
    demo = app.build_demo(model_dir)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield Client(url, verbose=False)
    demo.close()
