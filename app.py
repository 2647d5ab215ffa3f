"""Gradio web app: type a movie review, see how positive or negative it reads, and why.

    python app.py                      # serves ./model on http://127.0.0.1:7860
    MODEL_DIR=path/to/model python app.py

Tabs: one review (verdict, bars, sentence by sentence, the words that decided it), whole
files, the model's results. The module builds `demo` (no model is loaded until the first
review), so `gradio app.py` finds it; `python app.py` hands it to `server.serve`, which loads
and warms the model, then serves the page with the REST API (`serving/server.py`) behind
`serving/guard.py`.

About 370 lines, past the usual 350: the tabs' layout and their handlers, which only check
input, call `infer`, `explain`, `batch` or `feedback`, and put what comes back in words
(`serving/words.py`; the page's texts and examples: `serving/page.py`). On a ZeroGPU Space
each handler that runs the model asks for the GPU (`serving/gpu.py`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr
from gradio_client.utils import is_file_obj_with_meta
from PIL import Image

import infer
from serving import batch, explain, feedback
from serving.gpu import gpu_task
from serving.model_folder import results_section
from serving.page import CSS, DESCRIPTION, EXAMPLES, SENTENCE_COLORS, TITLE, VERDICT_COLORS
from serving.server import MAX_QUEUE, MAX_UPLOAD, MODEL_LOCK, serve
from serving.words import details
from utils import CARD_FILE, CONFUSION_PLOT, top_label


def classify(text: Any, model_dir: Path) -> tuple[dict[str, float], str]:
    """Label probabilities for one review (for `gr.Label`) and Markdown with the verdict in
    words, any warning about the text, and how much of it the model read. A blank box, a
    non-string or a text the model cannot read gets a friendly error."""
    text = readable_review(text)
    classifier = classifier_or_error(model_dir)
    with MODEL_LOCK:
        (prediction,) = classifier.classify([text])
    return prediction.scores, details(prediction, classifier)


def readable_review(text: Any) -> str:
    """`text` if the model can read it (`infer.check_texts`), else a gr.Error saying why."""
    if not isinstance(text, str) or not text.strip():
        raise gr.Error(
            "Type or paste a movie review first.",
            title="Nothing to classify",
            print_exception=False,
        )
    try:
        infer.check_texts([text])
    except ValueError as error:
        message = str(error).removeprefix("Review 0 ")
        raise gr.Error(
            f"The review {message}", title="Cannot read this", print_exception=False
        ) from None
    return text


def classifier_or_error(model_dir: Path) -> infer.Classifier:
    """The loaded classifier, or a gr.Error saying why there is none and how to fix it."""
    try:
        return infer.get_classifier(model_dir)
    except infer.ModelNotFoundError as error:
        raise gr.Error(str(error), title="Model unavailable", print_exception=False) from error


def sentence_view(text: Any, model_dir: Path) -> list[tuple[str, str | None]]:
    """Each sentence with its label, for a review of two or more; [] otherwise."""
    try:
        text = readable_review(text)
    except gr.Error:
        return []  # the verdict's own event has said why
    classifier = classifier_or_error(model_dir)
    with MODEL_LOCK:
        return explain.sentence_labels(classifier, text)


def word_view(text: Any, model_dir: Path) -> list[tuple[str, float | None]]:
    """Each word with its push toward negative (> 0, red) or positive (< 0, purple), at most 1
    in size: `explain.word_scores` negated for Gradio's colours."""
    text = readable_review(text)
    classifier = classifier_or_error(model_dir)
    with MODEL_LOCK:
        scores = explain.word_scores(classifier, text)
    # Gradio paints a score above 0 red and below 0 purple; negated, red reads as negative.
    # Spaces between words, unscored, so the text reads as typed.
    spaced: list[tuple[str, float | None]] = []
    for word, score in scores:
        spaced += [(word, -round(score, 3)), (" ", None)]
    return spaced[:-1]


def file_view(path: str | None, model_dir: Path, progress: Any = None) -> tuple:
    """A summary line, the verdict counts (for the chart), the results table and the path of
    the results CSV, for an uploaded file of reviews."""
    if not path:
        raise gr.Error("Upload a .csv or .txt file first.", print_exception=False)
    try:
        texts = batch.read_reviews(Path(path))
    except batch.FileError as error:
        raise gr.Error(str(error), title="Cannot read this file", print_exception=False) from None
    classifier = classifier_or_error(model_dir)
    done, shown = 0, 0.0

    def step(more: int) -> None:
        nonlocal done, shown
        done += more
        # Each update is a message to the browser: a few a second is enough to watch.
        if progress is not None and (time.perf_counter() - shown > 0.25 or done == len(texts)):
            progress(done / len(texts), desc=f"{done:,} of {len(texts):,} reviews")
            shown = time.perf_counter()

    started = time.perf_counter()
    with MODEL_LOCK:
        table = batch.classify_rows(classifier, texts, step)
    seconds = time.perf_counter() - started
    out = Path(tempfile.mkdtemp(prefix="reviews-")) / f"{Path(path).stem}-labelled.csv"
    table.to_csv(out, index=False)
    counts = batch.verdict_counts(table)
    # The verdict first, so it shows on a phone; the CSV keeps the file's order of columns.
    shown = table.assign(text=table["text"].str.slice(0, 160)).round(3)
    shown = shown[[*shown.columns[1:-1], "text", "note"]]
    summary = f"Classified {len(texts):,} reviews in {seconds:.1f} s: " + ", ".join(
        f"{n:,} {verdict}" for verdict, n in zip(counts["verdict"], counts["reviews"], strict=True)
    )
    return summary + ".", counts, shown, str(out)


def correction(folder: Path | None, text: Any, shown: Any, label: str | None) -> str:
    """Save a visitor's correction of the label just shown; a line of thanks, or what to do."""
    if folder is None:
        raise gr.Error("Corrections are not collected here.", print_exception=False)
    if not isinstance(text, str) or not text.strip() or not isinstance(shown, dict):
        raise gr.Error("Classify a review first, then mark its label.", print_exception=False)
    if label not in shown:  # the model's own label names, as the bars showed them
        raise gr.Error("Pick the right label first.", print_exception=False)
    feedback.record(folder, text, top_label(shown), label)  # `shown`: the bars, label -> p
    return f"Thanks: saved as {label.lower()}."


def model_labels(model_dir: Path) -> list[str]:
    """The model's label names, offered when a visitor corrects one; none while it does not
    load (the page's notice says why)."""
    try:
        return list(infer.get_classifier(model_dir).labels)
    except infer.ModelNotFoundError:
        return []


def feedback_dir_from_env() -> Path | None:
    """Where corrections go: `$FEEDBACK_DIR`; unset, the page collects none."""
    folder = os.environ.get("FEEDBACK_DIR")
    return Path(folder) if folder else None


def model_notice(model_dir: Path, load: bool = True) -> str:
    """Markdown saying the model is missing or broken and how to fix it; '' if it loads.
    With `load=False` (building the page), only whether the folder's files are there."""
    try:
        infer.get_classifier(model_dir) if load else infer.check_model_dir(model_dir)
    except infer.ModelNotFoundError as error:
        return f"⚠️ **The model is unavailable, so the app cannot classify.** {error}"
    return ""


def about_model(model_dir: Path) -> tuple[str, Image.Image | None]:
    """The model card's results table and the confusion matrix, or a note that there are none."""
    card, matrix = model_dir / CARD_FILE, model_dir / CONFUSION_PLOT
    if not card.is_file():
        return (
            f"No evaluation report in '{model_dir}/' yet. Train a model with "
            "`python main.py --subset 2000`, or re-test one with `python main.py evaluate`; "
            "both write the results shown here.",
            None,
        )
    return results_section(card.read_text()), Image.open(matrix) if matrix.is_file() else None


class Page(gr.Blocks):
    """gr.Blocks whose API answers a call with too few inputs (`"data": []`), or with text
    where a file goes, with a message, where Gradio 6 raises an error and prints its
    traceback, with what was sent, for every such request."""

    def validate_inputs(self, block_fn: Any, inputs: list[Any]) -> None:
        if len(inputs) < len(block_fn.inputs):
            raise gr.Error(
                f"This call takes {len(block_fn.inputs)} input(s) (the review's text); "
                f"it sent {len(inputs)}.",
                title="Missing input",
                print_exception=False,
            )
        for block, value in zip(block_fn.inputs, inputs, strict=False):
            not_a_file = value is not None and not is_file_obj_with_meta(value)
            if isinstance(block, gr.File) and not_a_file:
                raise gr.Error(
                    "This call takes an uploaded .csv or .txt file, not text: with "
                    "gradio_client, pass handle_file(path); for one review, call /predict.",
                    title="Not a file",
                    print_exception=False,
                )


def build_demo(model_dir: Path, feedback_dir: Path | None = None) -> gr.Blocks:
    """The page: a review box, Submit and Clear, confidence bars, examples, and a "Wrong
    label?" control when `feedback_dir` says where corrections go."""
    with Page(title=TITLE) as demo:
        gr.Markdown(f"# 🎬 {TITLE}\n{DESCRIPTION}")
        notice = gr.Markdown(model_notice(model_dir, load=False), elem_id="model-notice")
        with gr.Tab("Classify"):
            with gr.Row(equal_height=True):
                with gr.Column(scale=3):
                    review = gr.Textbox(
                        label="Review",
                        lines=8,
                        placeholder="e.g. The acting was superb and the story kept me guessing.",
                        elem_id="review",
                    )
                    with gr.Row():
                        clear = gr.ClearButton(value="Clear")
                        submit = gr.Button("Submit", variant="primary")
                with gr.Column(scale=2):
                    result = gr.Label(
                        label="Sentiment",
                        num_top_classes=2,
                        show_heading=False,
                        elem_id="sentiment",
                    )
                    read = gr.Markdown(elem_id="details")
                    why_button = gr.Button("Why? Show the words that decided it", size="sm")
                    with gr.Row(visible=feedback_dir is not None, elem_id="feedback"):
                        corrected = gr.Radio(
                            [],  # the model's labels, filled in when the page loads
                            label="Wrong label? Pick the right one (your review is saved "
                            "to improve the model)",
                            scale=3,
                        )
                        send = gr.Button("Send", size="sm", scale=1)
                    thanks = gr.Markdown(elem_id="thanks")
            by_sentence = gr.HighlightedText(
                label="Sentence by sentence",
                color_map=SENTENCE_COLORS,
                show_legend=True,
                visible=False,
                elem_id="sentences",
            )
            why = gr.HighlightedText(
                label="Why: red words pushed toward negative, purple toward positive",
                show_legend=False,
                visible=False,
                elem_id="why",
            )
            gr.Examples(EXAMPLES, inputs=review, label="Example reviews (click one, then Submit)")
        with gr.Tab("Whole files"):
            gr.Markdown(
                "Upload a **CSV** (a `text` column, or a single column) or a **TXT** (one review "
                f"per line): at most {batch.MAX_ROWS:,} reviews and {MAX_UPLOAD // 2**20} MiB. "
                "Every row gets a label, both probabilities and the unsure flag; rows that "
                "cannot be read say why."
            )
            upload = gr.File(label="Reviews file", file_types=list(batch.SUFFIXES))
            run_file = gr.Button("Classify the file", variant="primary")
            file_summary = gr.Markdown(elem_id="file-summary")
            with gr.Row():
                chart = gr.BarPlot(
                    x="verdict",
                    y="reviews",
                    color="verdict",
                    color_map=VERDICT_COLORS,
                    y_lim=[0, None],
                    sort=list(VERDICT_COLORS),
                    label="Verdicts",
                    elem_id="chart",
                )
                download = gr.File(label="Results (CSV)", elem_id="download")
            file_table = gr.Dataframe(label="Results", wrap=True, elem_id="file-results")
        with gr.Tab("About this model"):
            about = gr.Markdown(elem_id="about")
            matrix = gr.Image(label="Test confusion matrix", interactive=False, type="pil")

        # On a ZeroGPU Space each handler that runs the model gets the GPU for its call.
        @gpu_task(duration=10)
        def run(text: str) -> tuple[dict[str, float], str]:
            return classify(text, model_dir)

        # preprocess=False: the function sees what was sent (a number stays a number and is
        # refused) instead of the textbox's str() of it.
        @gpu_task(duration=20)
        def sentences(text: str) -> Any:
            pairs = sentence_view(text, model_dir)
            return gr.update(value=pairs, visible=bool(pairs))

        submit_event = submit.click(
            run, inputs=review, outputs=[result, read], api_name="predict", preprocess=False
        )
        enter_event = review.submit(
            run,
            inputs=review,
            outputs=[result, read],
            api_visibility="private",
            preprocess=False,
        )
        for event in (submit_event, enter_event):
            event.success(sentences, review, by_sentence, api_visibility="private")
            event.success(lambda: gr.update(visible=False), None, why, api_visibility="private")

        # A gr.Progress default is how Gradio hands a function its progress bar.
        @gpu_task(duration=120)  # 2,000 reviews
        def classify_file(path: str | None, progress: Any = gr.Progress()) -> tuple:  # noqa: B008
            return file_view(path, model_dir, progress)

        run_file.click(
            classify_file,
            upload,
            [file_summary, chart, file_table, download],
            api_name="classify_file",
        )
        send.click(
            lambda text, shown, label: correction(feedback_dir, text, shown, label),
            [review, result, corrected],
            thanks,
            api_visibility="private",
        )

        @gpu_task(duration=60)  # integrated gradients: 2 passes per step
        def why_view(text: str) -> Any:
            return gr.update(value=word_view(text, model_dir), visible=True)

        why_button.click(
            why_view,
            review,
            why,
            api_visibility="private",
        )
        clear.add([review, result, read, by_sentence, why, corrected, thanks])
        # Re-checked on every page view, so a model trained after start-up is noticed.
        demo.load(
            lambda: (
                model_notice(model_dir),
                *about_model(model_dir),
                gr.update(choices=model_labels(model_dir)),
            ),
            outputs=[notice, about, matrix, corrected],
            api_visibility="private",
        )
    # api_open=False: the queue is the only way in (no direct POST to /gradio_api/run/...).
    demo.queue(max_size=MAX_QUEUE, default_concurrency_limit=1, api_open=False)
    return demo


demo = build_demo(infer.model_dir_from_env(), feedback_dir_from_env())

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Hugging Face Spaces sets these to serve on 0.0.0.0:7860; locally, loopback only.
    serve(
        demo,
        CSS,
        infer.model_dir_from_env(),
        os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
    )
