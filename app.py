"""Gradio web app: type a movie review, see how positive or negative it reads.

    python app.py                      # serves ./model on http://127.0.0.1:7860
    MODEL_DIR=path/to/model python app.py

The module builds `demo` (no model is loaded until the first review), so Hugging Face Spaces
and `gradio app.py` find it; `demo.launch()` runs only under `__main__`.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
from PIL import Image

import infer
from utils import CARD_FILE, CONFUSION_PLOT, RESULTS_HEADING

TITLE = "Movie review sentiment"
DESCRIPTION = (
    "Paste a movie review and press **Submit**: the bars show how likely the review is "
    "positive or negative. The model is a transformer fine-tuned on the IMDB reviews "
    "dataset; it reads English film reviews best."
)
# Varied on purpose: the clear cases, the hard ones (mixed, sarcastic), the short and the long.
EXAMPLES = [
    "An absolute triumph. The performances are heartfelt, the script is sharp and funny, and "
    "the final act left the whole theatre in tears. I'll be watching it again this weekend.",
    "A complete waste of two hours. The plot makes no sense, the acting is wooden and every "
    "joke falls flat. I walked out before the end.",
    "The cinematography is gorgeous and the lead gives a committed performance, but the story "
    "drags badly in the middle and the ending feels rushed.",
    "Oh great, another three-hour epic where nothing happens. Truly the cinematic event of the "
    "century. I can't wait to forget it.",
    "Loved it!",
    "Not bad at all.",
    "I went in expecting very little from this one.<br /><br />The first twenty minutes are "
    "slow, and I nearly gave up: the setup is familiar and the dialogue is clunky. But once the "
    "two brothers finally meet, the film finds its heart. The quiet scenes in the kitchen are "
    "some of the best acting I have seen this year, and the score never tells you what to feel."
    "<br /><br />It is not perfect. A subplot about the neighbour goes nowhere and the last "
    "scene is a little too neat. Still, I left the cinema smiling and I have recommended it to "
    "everyone I know. 8/10.",
]
MAX_QUEUE = 64  # waiting requests; past this, visitors are told the app is busy


def classify(text: str, model_dir: Path) -> tuple[dict[str, float], str]:
    """Label probabilities for one review (for `gr.Label`) and Markdown with the verdict in
    words, any warning about the text, and how much of it the model read; a blank box gets a
    friendly error."""
    if not text or not text.strip():
        raise gr.Error(
            "Type or paste a movie review first.",
            title="Nothing to classify",
            print_exception=False,
        )
    try:
        classifier = infer.get_classifier(model_dir)
    except infer.ModelNotFoundError as error:
        raise gr.Error(str(error), title="No model yet", print_exception=False) from error
    (prediction,) = classifier.classify([text])
    return prediction.scores, details(prediction, classifier)


def verdict(prediction: infer.Prediction) -> str:
    """The answer in plain words, e.g. '**Positive**, fairly sure (87%).'"""
    share, lean = prediction.scores[prediction.label], prediction.label.lower()
    if prediction.unsure:
        return f"**Mixed or unclear**: it leans {lean} ({share:.0%}), too little to call."
    sure = "very sure" if share >= 0.95 else "fairly sure" if share >= 0.8 else "leaning"
    return f"**{lean.capitalize()}**, {sure} ({share:.0%})."


def details(prediction: infer.Prediction, classifier: infer.Classifier) -> str:
    """The verdict, each warning and the coverage line, as paragraphs of Markdown."""
    warnings = [f"⚠️ {warning}" for warning in prediction.warnings]
    return "\n\n".join([verdict(prediction), *warnings, coverage(prediction, classifier)])


def coverage(prediction: infer.Prediction, classifier: infer.Classifier) -> str:
    """How much of the review the model read, e.g. 'Read 256 of 612 tokens: ...'."""
    if prediction.read < prediction.tokens:
        part = "opening and the ending" if classifier.truncation == "head+tail" else "opening"
        return (
            f"Read {prediction.read} of {prediction.tokens} tokens: a long review, so the model "
            f"read the {part} and skipped the rest."
        )
    if prediction.tokens > classifier.max_length:  # only sliding reads a long review whole
        return (
            f"Read all {prediction.tokens} tokens, in overlapping windows of "
            f"{classifier.max_length} whose verdicts are averaged."
        )
    return f"Read all {prediction.tokens} tokens of the review."


def model_notice(model_dir: Path) -> str:
    """Markdown telling the visitor the model is missing and how to train one; '' if present."""
    try:
        infer.check_model_dir(model_dir)
    except infer.ModelNotFoundError as error:
        return f"⚠️ **The app has no model to classify with.** {error}"
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


def results_section(card: str) -> str:
    """The results section of the model card that training published, without image links."""
    start = card.find(RESULTS_HEADING)
    if start < 0:
        return ""
    end = card.find("\n## ", start + len(RESULTS_HEADING))
    section = card[start : end if end >= 0 else None]
    return "\n".join(line for line in section.splitlines() if not line.startswith("!["))


def build_demo(model_dir: Path) -> gr.Blocks:
    """The page: a review box, Submit and Clear, confidence bars, examples."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# 🎬 {TITLE}\n{DESCRIPTION}")
        notice = gr.Markdown(model_notice(model_dir), elem_id="model-notice")
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
                    result = gr.Label(label="Sentiment", num_top_classes=2, elem_id="sentiment")
                    read = gr.Markdown(elem_id="details")
            gr.Examples(EXAMPLES, inputs=review, label="Example reviews (click one, then Submit)")
        with gr.Tab("About this model"):
            about = gr.Markdown(elem_id="about")
            matrix = gr.Image(label="Test confusion matrix", interactive=False, type="pil")

        def run(text: str) -> tuple[dict[str, float], str]:
            return classify(text, model_dir)

        submit.click(run, inputs=review, outputs=[result, read], api_name="predict")
        review.submit(run, inputs=review, outputs=[result, read], api_visibility="private")
        clear.add([review, result, read])
        # Re-checked on every page view, so a model trained after start-up is noticed.
        demo.load(
            lambda: (model_notice(model_dir), *about_model(model_dir)),
            outputs=[notice, about, matrix],
            api_visibility="private",
        )
    demo.queue(max_size=MAX_QUEUE, default_concurrency_limit=1)
    return demo


demo = build_demo(infer.model_dir_from_env())

if __name__ == "__main__":
    demo.launch(theme=gr.themes.Soft())
