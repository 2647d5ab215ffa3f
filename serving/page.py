"""The page's words: its title, description, example reviews, colours and CSS (`app.py` lays
it out)."""

TITLE = "Movie review sentiment"
DESCRIPTION = (
    "Paste a movie review and press **Submit**: the bars show how likely the review is "
    "positive or negative. The model is a transformer fine-tuned on the IMDB reviews "
    "dataset; it reads English film reviews best."
)
# Varied on purpose: the clear cases, the hard ones (mixed, sarcastic), the short and the long.
# Written as a visitor pastes them (paragraphs, no IMDB `<br />` markup): the buttons show them.
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
    "I went in expecting very little from this one.\n\nThe first twenty minutes are "
    "slow, and I nearly gave up: the setup is familiar and the dialogue is clunky. But once the "
    "two brothers finally meet, the film finds its heart. The quiet scenes in the kitchen are "
    "some of the best acting I have seen this year, and the score never tells you what to feel."
    "\n\nIt is not perfect. A subplot about the neighbour goes nowhere and the last "
    "scene is a little too neat. Still, I left the cinema smiling and I have recommended it to "
    "everyone I know. 8/10.",
]
# Wide tables scroll sideways on a phone instead of squeezing to a letter per line; highlighted
# sentences wrap between words, not inside them.
CSS = """
#about table { display: block; overflow-x: auto; }
#about th, #about td { white-space: nowrap; }
#sentences *, #why * { word-break: normal !important; overflow-wrap: normal !important; }
"""
SENTENCE_COLORS = {"positive": "green", "negative": "red", "mixed": "gray"}
VERDICT_COLORS = SENTENCE_COLORS | {"not read": "black"}
