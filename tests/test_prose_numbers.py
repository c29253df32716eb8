"""Lint: a measured number in a lesson's prose comes from the run, or from a labelled past run.

Issue 12: prose that states a measurement ("about 86%", "1.7 times faster") cannot be allowed to
disagree silently with what the cells print. So in markdown cells every percentage and every
"N times faster/smaller/..." must be one of:

- in a cell labelled as a past run: the cell names the date (YYYY-MM-DD), the machine (CPU/GPU/
  TPU cores) and the profile ("cpu profile"), as a fixed table of a past run must be;
- a citation of published work on the same line ("Devlin et al., 2018", "(Sun et al., 2019)",
  "published");
- a definition or a setting, not a measurement, listed in DEFINITIONS below with the reason.

Anything else is flagged. The fix is to print the sentence from the run's variables (e.g.
`IPython.display.Markdown(f"...")` in a code cell, which this lint does not read) or to label it
as a past run, and to check comparisons in the lesson's closing assertions.

Issue 27 extends the rule to comparisons: a markdown sentence that names a winner ("beats", "wins",
"outperforms", "pays", "better than") is printed by the run from a race verdict (`kitlib.race`), or
sits in a past-run cell, or cites published work. A goal ("the score to beat") and a question ("does
the student now beat it?") claim nothing and pass.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

NUMBER_WORDS = r"(?:\d+(?:[.,]\d+)?|two|three|four|five|six|seven|eight|nine|ten|several)"
CLAIM = re.compile(
    rf"\d+(?:[.,]\d+)?\s?%"
    rf"|\b{NUMBER_WORDS}\s?(?:x|×|times)\s+(?:faster|slower|smaller|larger|bigger|more|fewer|less|cheaper)\b",
    re.IGNORECASE,
)
PAST_RUN = (re.compile(r"\b20\d\d-\d\d-\d\d\b"), re.compile(r"\b(?:smoke|cpu|gpu) profile\b"),
            re.compile(r"\b(?:v?CPU|GPU|TPU)s?\b|\bcores?\b"))
COMPARISON = re.compile(r"\b(?:beats?|beaten|beating|wins?|won|winner|outperform(?:s|ed|ing)?|pays(?: off)?|paid off"
                        r"|better than|overtakes?|overtook|catch(?:es)? up|caught up|shines?)\b", re.IGNORECASE)
GOAL = re.compile(r"\bto beat\b", re.IGNORECASE)
SENTENCE_END = re.compile(r"(?<!\bal\.)(?<!e\.g\.)(?<!i\.e\.)(?<=[.!?])\s+(?=[A-Z*(`\"])")
BLOCK_START = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*] |\d+\. |#|\|))")
CITATION = re.compile(r"et al\.?,? \(?\d{4}|\([A-Z][\w&.\- ]+,? \d{4}\)|\bpublished\b")

# (lesson number, phrase on the line): why the number is not a measurement of this kit's runs.
DEFINITIONS = {
    ("01", "50% accuracy is what guessing gets"): "chance level of a balanced split, by definition",
    ("02", "reads a 95% interval off the spread"): "the interval's level, a setting of the race",
    ("02", "a model **wins** only when the whole interval"): "defines the race's verdicts",
    ("03", "80% become `[MASK]`, 10% a random word piece and 10% stay"): "BERT's masking recipe",
    ("03", "15% of the pieces, 80/10/10"): "BERT's masking recipe (MASK_RATE)",
    ("06", "1% more accurate but ten times slower"): "a hypothetical trade-off, not a measurement",
    ("07", "pruning 80% at once"): "a setting (the final sparsity), not a measurement",
    ("07", "over the first 70%"): "the pruning schedule's setting",
    ("07", "the last 30% fine-tune"): "the pruning schedule's setting",
    ("07", "4x smaller, float16 2x"): "bytes per weight: 32 bits to 8 or 16, by construction",
    ("08", "90% of the trials above 1e-3"): "arithmetic of a uniform draw on [1e-5, 1e-2]",
    ("08", "10 to 100 times smaller"): "a rule of thumb for the learning rate, not a measurement",
    ("08", "10 to 100 times less"): "the same rule of thumb",
}

def flagged_claims(path: Path) -> list[str]:
    """'cN: line' for each line of a markdown cell stating a number the run does not print."""
    lesson = path.name[:2]
    found = []
    for index, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        if all(label.search(text) for label in PAST_RUN):
            continue
        for line in text.splitlines():
            if not CLAIM.search(line) or CITATION.search(line):
                continue
            if any(lesson == number and phrase in line for number, phrase in DEFINITIONS):
                continue
            found.append(f"c{index}: {line.strip()}")
    return found


def test_the_lint_flags_measurements_and_passes_labelled_cited_and_defined_numbers(tmp_path: Path) -> None:
    def lint(*markdown: str) -> list[str]:
        nb = {"cells": [{"cell_type": "markdown", "source": [text]} for text in markdown]}
        path = tmp_path / "03_example.ipynb"
        path.write_text(json.dumps(nb), encoding="utf-8")
        return flagged_claims(path)

    assert lint("The LSTM reaches about 85–86%.", "Quantisation made it 3x faster here.",
                "It runs several times faster.") == [
        "c0: The LSTM reaches about 85–86%.", "c1: Quantisation made it 3x faster here.",
        "c2: It runs several times faster."]
    labelled = "Measured 2026-11-28 on 2 CPU cores, cpu profile:\n\n| model | accuracy |\n| --- | --- |\n| LSTM | 86.3% |"
    assert lint(labelled) == []
    assert lint("Measured on 2 CPU cores, cpu profile: 86.3%.") == ["c0: Measured on 2 CPU cores, cpu profile: 86.3%."]
    assert lint("BERT (Devlin et al., 2018) hides 15% of the word pieces.") == []
    assert lint("Of the picked ones, 80% become `[MASK]`, 10% a random word piece and 10% stay as they") == []
    assert lint("Three times as many layers; a 2-layer model; 128 wide.") == []


def sentences(markdown: str) -> list[str]:
    """The sentences of a markdown cell, each on one line (a bullet, heading or table row ends one)."""
    found = []
    for block in BLOCK_START.split(markdown):
        found += [" ".join(s.split()) for s in SENTENCE_END.split(" ".join(block.split())) if s.strip()]
    return found


def flagged_comparisons(path: Path) -> list[str]:
    """'cN: sentence' for each markdown sentence that names a winner the run does not print."""
    lesson, found = path.name[:2], []
    for index, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
        text = "".join(cell["source"])
        if cell["cell_type"] != "markdown" or all(label.search(text) for label in PAST_RUN):
            continue
        for sentence in sentences(text):
            if not COMPARISON.search(sentence) or CITATION.search(sentence) or sentence.endswith("?"):
                continue
            if GOAL.search(sentence) and not COMPARISON.search(GOAL.sub("", sentence)):
                continue
            if any(lesson == number and phrase in sentence for number, phrase in DEFINITIONS):
                continue
            found.append(f"c{index}: {sentence}")
    return found


def test_the_comparison_lint_flags_claimed_winners_and_passes_goals_questions_and_past_runs(tmp_path: Path) -> None:
    def lint(*markdown: str) -> list[str]:
        nb = {"cells": [{"cell_type": "markdown", "source": [text]} for text in markdown]}
        path = tmp_path / "06_example.ipynb"
        path.write_text(json.dumps(nb), encoding="utf-8")
        return flagged_comparisons(path)

    assert lint("Fine-tuning beats the frozen\nencoder. It is slower.", "- the CNN wins;\n- pre-training pays",
                "The GRU outperforms the LSTM here.", "It is better than guessing.") == [
        "c0: Fine-tuning beats the frozen encoder.", "c1: - the CNN wins;", "c1: - pre-training pays",
        "c2: The GRU outperforms the LSTM here.", "c3: It is better than guessing."]
    assert lint("A small CNN from scratch: the score to beat.", "Does the distilled student now beat it?",
                "Keeping head and tail beats either alone (Sun et al., 2019).",
                "Measured 2026-11-28 on 2 CPU cores, cpu profile: the GRU beats the LSTM.",
                "The printout above gives the verdict.") == []
    assert lint("It has to beat the baseline, and it beats it.") == ["c0: It has to beat the baseline, and it beats it."]
    assert lint("Scratch models catch up as labels grow.", "Hyperband shines here.", "The CNN overtook it.") == [
        "c0: Scratch models catch up as labels grow.", "c1: Hyperband shines here.", "c2: The CNN overtook it."]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_comparisons_in_prose_come_from_a_verdict(path: Path) -> None:
    flagged = flagged_comparisons(path)
    assert not flagged, (
        "These markdown sentences name a winner the run does not print. Print the verdict from "
        "kitlib.race (its sentence, with the interval), or label the cell as a past run (date, machine, "
        "profile), or say what to compare without asserting the outcome:\n" + "\n".join(flagged))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_numbers_in_prose_come_from_the_run(path: Path) -> None:
    flagged = flagged_claims(path)
    assert not flagged, (
        "These markdown lines state measured numbers the run does not print. Print the sentence from the "
        "run's variables (IPython.display.Markdown), or label the cell as a past run (date, machine, profile), "
        "or, for a definition or setting, add it to DEFINITIONS with the reason:\n" + "\n".join(flagged))
