"""`python -m kitlib doctor --online`: is every model handle, dataset URL and published page the kit names served?

TF Hub handles are asked for in the form `tensorflow_hub` downloads (`?tf-hub-format=compressed`) and
followed through their redirects to wherever they are served now (Kaggle); keras-hub presets by their Kaggle
model page; dataset archives at their manifest URL, their size checked against the manifest's; from a
checkout, the repository, its site and the file each lesson's Colab badge opens (Colab itself answers for
any path, so the badge is checked at GitHub). Each answer is one line: reachable or not, the final URL, the
size where the server says it.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from kitlib.data import manifest

KAGGLE_MODELS = "https://www.kaggle.com/models/"  # keras-hub's `kaggle://owner/model/framework/variation/version`
TFHUB_FORMAT = "?tf-hub-format=compressed"
COLAB_BADGE = re.compile(r"https://colab\.research\.google\.com/github/(?P<path>[^)\s\"]+\.ipynb)")
GITHUB = "https://github.com/"


@dataclasses.dataclass(frozen=True)
class Target:
    """One URL to check, what it is, and the size it must have where pinned."""

    label: str
    url: str
    size: int | None = None
    error: str = ""  # set when the URL itself could not be worked out


@dataclasses.dataclass
class Probe:
    """What the server answered for one target."""

    target: Target
    ok: bool
    final_url: str
    redirects: int = 0
    size: int | None = None
    problem: str = ""

    def line(self) -> str:
        """One line: reachable or not, label, URL and where it ended, size."""
        size = f"{self.size:,} bytes" if self.size is not None else "size not given"
        hops = f" after {self.redirects} redirect{'s' * (self.redirects != 1)}" if self.redirects else ""
        where = f"{self.target.url} -> {self.final_url}{hops}" if self.final_url != self.target.url else self.target.url
        return f"{'ok  ' if self.ok else 'FAIL'} {self.target.label}: {where} ({self.problem or size})"


class _Counting(urllib.request.HTTPRedirectHandler):
    """Follows redirects (urllib's own limits) and counts them."""

    def __init__(self) -> None:
        self.hops = 0

    def redirect_request(self, *args: Any, **kwargs: Any) -> urllib.request.Request | None:
        """Count the hop, then let urllib build the next request."""
        self.hops += 1
        return super().redirect_request(*args, **kwargs)


def probe(target: Target, timeout: float = 30.0) -> Probe:
    """GET the URL through its redirects, read only the headers, and judge the answer."""
    if target.error:
        return Probe(target, False, target.url, problem=target.error)
    counter = _Counting()
    opener = urllib.request.build_opener(counter)
    request = urllib.request.Request(target.url, headers={"User-Agent": "kitlib-doctor"})
    try:
        with opener.open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            found = Probe(target, True, response.geturl(), counter.hops, int(length) if length else None)
    except urllib.error.HTTPError as exc:
        return Probe(target, False, exc.geturl() or target.url, counter.hops, problem=f"HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Probe(target, False, target.url, counter.hops, problem=f"unreachable: {reason}")
    if target.size is not None and found.size is not None and found.size != target.size:
        found.ok = False
        found.problem = f"{found.size:,} bytes where the manifest pins {target.size:,}: the file changed"
    return found


def preset_url(name: str) -> str:
    """The Kaggle page of a keras-hub preset, from keras-hub's own preset list."""
    import keras_hub

    handle = keras_hub.models.Backbone.presets.get(name, {}).get("kaggle_handle", "")
    if not handle.startswith("kaggle://"):
        raise KeyError(f"keras-hub {keras_hub.__version__} has no preset {name!r} on Kaggle.")
    return KAGGLE_MODELS + handle.removeprefix("kaggle://")


def targets() -> list[Target]:
    """Every TF Hub handle in the model registry, every keras-hub preset the lessons use, every dataset URL."""
    from kitlib.models import hub

    found: dict[str, list[str]] = {}
    for model in hub.MODELS.values():
        for profile, handles in model.handles.items():
            for role, url in handles.items():
                found.setdefault(url, []).append(f"{model.name} {role} ({profile})")
    listed = [Target(f"TF Hub {', '.join(dict.fromkeys(labels))}", url + TFHUB_FORMAT)
              for url, labels in found.items()]
    for name in hub.KERAS_HUB_PRESETS:
        try:
            listed.append(Target(f"keras-hub preset {name}", preset_url(name)))
        except (KeyError, ImportError) as exc:
            listed.append(Target(f"keras-hub preset {name}", name, error=str(exc)))
    listed += [Target(f"dataset {spec.name}", spec.url, spec.size) for spec in manifest.ARCHIVES.values()]
    return listed + publication_targets()


def publication_targets(root: Path | None = None) -> list[Target]:
    """The repository and site pyproject names, and the GitHub file each lesson's Colab badge opens."""
    from kitlib import course
    from kitlib.course import notebooks, repository

    try:
        root = course.checkout(root)
        url = repository.repository_url(root)
    except (course.CheckoutError, ValueError, OSError) as exc:
        return [Target("repository", "(none)", error=f"not checked: {exc}")]
    listed = [Target("repository", url), Target("course site", repository.pages_url(url))]
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = notebooks.read(path).cells
        found = COLAB_BADGE.search(notebooks.source(cells[0])) if cells else None
        listed.append(Target(f"Colab badge of {path.name}", GITHUB + found["path"]) if found else
                      Target(f"Colab badge of {path.name}", str(path), error="no Colab badge in its first cell"))
    return listed


def check(listed: list[Target], timeout: float = 30.0) -> list[Probe]:
    """Probe each target in turn, printing its line as it comes."""
    probes = []
    for target in listed:
        probes.append(probe(target, timeout))
        print(probes[-1].line(), flush=True)
    return probes
