"""LP-FT: the new classifier layer first fitted as a logistic regression on the base model's
features of the training reviews, then fine-tuned with the rest (Kumar et al. 2022,
"Fine-Tuning can Distort Pretrained Features").

    trainer.add_callback(probe_head(train_split, collator, batch_size=32))

On 2,000 held-out training reviews over six seeds, this start and no dropout scored 0.59 ± 0.32
points above a random head (benchmarks/NOTES.md, "Recipe search"). The fit costs one pass over
the training reviews, at most `PROBE_TEXTS` of them drawn at random: 35 to 38 s for 1,000 on 2
cores, counted in the training time.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from training.config import UsageError

logger = logging.getLogger(__name__)

PROBE_C = 1.0  # inverse L2 strength of the regression; scikit-learn's default
# texts; a regression over 384 to 768 features is settled by a few thousand, and a pass over
# the typed-review recipe's 58,336 took about 3 of its training minutes on 2 cores. Runs of
# up to 4,000 texts (the default's 2,000) are fitted on all of them.
PROBE_TEXTS = 4000


def classifier_layer(model: Any) -> Any:
    """The linear layer that turns the head's features into logits: `model.classifier`."""
    from torch import nn

    layer = getattr(model, "classifier", None)
    if not isinstance(layer, nn.Linear):
        raise UsageError(
            f"--head-init probe needs a linear `classifier` layer, which {type(model).__name__} "
            "lacks; use --head-init random."
        )
    return layer


def head_features(model: Any, batches: Any) -> tuple[np.ndarray, np.ndarray]:
    """What the classifier layer reads, (reviews, features), and the labels, over `batches`
    (the model in eval mode: no dropout)."""
    import torch

    layer, features, labels = classifier_layer(model), [], []
    hook = layer.register_forward_hook(lambda _, inputs, __: features.append(inputs[0].float()))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in batches:
                labels.append(batch.pop("labels"))
                batch.pop("soft_labels", None)  # a teacher's targets: the probe fits the labels
                model(**{key: value.to(model.device) for key, value in batch.items()})
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(features).cpu().numpy(), torch.cat(labels).numpy()


def fit_probe(model: Any, features: np.ndarray, labels: np.ndarray) -> float:
    """Set the classifier layer to a logistic regression fitted on (`features`, `labels`);
    return its accuracy on them. With two labels the logits are -z/2 and z/2 for the
    regression's log-odds z, so the softmax gives its probabilities."""
    import torch
    from sklearn.linear_model import LogisticRegression

    layer, held = classifier_layer(model), len(np.unique(labels))
    if held != layer.out_features:  # a column of weights would be missing
        raise UsageError(
            f"--head-init probe: the training reviews hold {held} of the {layer.out_features} "
            "labels; use more reviews (--subset) or --head-init random."
        )
    probe = LogisticRegression(C=PROBE_C, max_iter=1000).fit(features, labels)
    weight, bias = probe.coef_, probe.intercept_
    if held == 2:
        weight, bias = np.vstack([-weight / 2, weight / 2]), np.hstack([-bias / 2, bias / 2])
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype))
        layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))
    return float(probe.score(features, labels))


def probe_head(train_split: Any, collator: Any, batch_size: int) -> Any:
    """A Trainer callback that fits the classifier layer as a linear probe when training begins
    (LP-FT: Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features"), so the encoder's
    first updates follow a head that already reads sentiment, not a random one."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class ProbeHead(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step:  # resumed: the head was fitted and trained already
                return
            started = time.perf_counter()
            # The reviews as training reads them, shortest first to pad little, through a loader
            # of their own and a generator of their own: the training loader's shuffle draws
            # stay as they are without it.
            picked = range(len(train_split))
            if len(train_split) > PROBE_TEXTS:
                rng = np.random.default_rng(args.seed)
                picked = rng.choice(len(train_split), PROBE_TEXTS, replace=False).tolist()
            rows = sorted((train_split[i] for i in picked), key=lambda r: len(r["input_ids"]))
            loader = DataLoader(rows, batch_size=batch_size, collate_fn=collator)
            batches = tqdm(loader, desc="Fitting the head", unit="batch", dynamic_ncols=True)
            accuracy = fit_probe(kwargs["model"], *head_features(kwargs["model"], batches))
            logger.info(
                "Head fitted as a linear probe on %d training reviews in %.0f s: %.1f%% of them "
                "right before fine-tuning",
                len(rows),
                time.perf_counter() - started,
                100 * accuracy,
            )

    return ProbeHead()
