"""A visitor's path through the page in headless Chromium: type, submit, read the bars, open About.

Needs Debian's Chromium (`apt-get install chromium`; `.ci/run` installs it) and never downloads
a browser of its own.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from pathlib import Path

import pytest

import app
import infer

FEEDBACK = Path(tempfile.mkdtemp(prefix="feedback-"))
# Kept after the run for CI to collect as artefacts (git-ignored).
SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Chromium: apt-get install chromium"
    ),
]


@pytest.fixture(scope="module")
def page(model_dir, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    infer.reset()
    demo = app.build_demo(model_dir, FEEDBACK)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        SCREENSHOTS.mkdir(exist_ok=True)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(url)
        yield page
        browser.close()
    demo.close()


def test_typed_review_shows_confidence_bars(page):
    page.locator("#review textarea").fill("great wonderful superb film")
    page.get_by_role("button", name="Submit").click()
    sentiment = page.locator("#sentiment")
    sentiment.get_by_text("POSITIVE").first.wait_for(timeout=20_000)
    text = sentiment.inner_text()
    assert "POSITIVE" in text and "NEGATIVE" in text and "%" in text
    coverage = page.locator("#details")
    coverage.get_by_text("Read all 6 tokens").wait_for(timeout=20_000)
    page.screenshot(path=SCREENSHOTS / "classify.png")


def test_about_tab_shows_the_results_table(page):
    page.get_by_role("tab", name="About this model").click()
    about = page.locator("#about")
    about.get_by_text("Accuracy").first.wait_for(timeout=20_000)
    assert "base model, untrained head" in about.inner_text()


def test_why_and_sentence_by_sentence_show_in_place(page):
    page.get_by_role("tab", name="Classify").click()
    page.locator("#review textarea").fill("great wonderful superb film. awful dull boring plot.")
    page.get_by_role("button", name="Submit").click()
    sentences = page.locator("#sentences")
    sentences.get_by_text("great wonderful superb film.").wait_for(timeout=20_000)
    assert "positive" in sentences.inner_text()
    page.get_by_role("button", name="Why? Show the words that decided it").click()
    why = page.locator("#why")
    why.get_by_text("superb").wait_for(timeout=20_000)
    assert "boring" in why.inner_text()
    page.screenshot(path=SCREENSHOTS / "why.png", full_page=True)


def test_a_file_is_classified_and_its_results_downloaded(page, tmp_path):
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("text\ngreat wonderful film\nawful dull boring plot\n")
    page.get_by_role("tab", name="Whole files").click()
    page.locator("input[type=file]").first.set_input_files(reviews)
    page.get_by_role("button", name="Classify the file").click()
    page.locator("#file-summary").get_by_text("Classified 2 reviews").wait_for(timeout=30_000)
    link = page.locator("#download a").first
    link.wait_for(timeout=20_000)
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "labelled.csv"
    download.value.save_as(saved)
    lines = saved.read_text().splitlines()
    assert lines[0].startswith("text,label,NEGATIVE,POSITIVE,unsure,note")
    assert len(lines) == 3
    page.screenshot(path=SCREENSHOTS / "files.png", full_page=True)


def test_a_wrong_label_marked_on_the_page_lands_in_the_feedback_file(page):
    page.get_by_role("tab", name="Classify").click()
    page.locator("#review textarea").fill("awful dull boring plot")
    page.get_by_role("button", name="Submit").click()
    page.locator("#details").get_by_text("Negative", exact=False).first.wait_for(timeout=20_000)
    page.locator("#feedback").get_by_text("POSITIVE").click()
    page.locator("#feedback").get_by_role("button", name="Send").click()
    page.locator("#thanks").get_by_text("Thanks: saved as positive.").wait_for(timeout=20_000)
    with open(FEEDBACK / "feedback.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[-1]["text"] == "awful dull boring plot"
    assert (rows[-1]["predicted"], rows[-1]["corrected"]) == ("NEGATIVE", "POSITIVE")
